"""Scene representation in FiftyOne: embeddings, clusters and value scores as sample fields.

Three functions do the work (used by the App forms in
:mod:`fiftyone_plugin.operators.representation`, the CLI and Python):

* :func:`compute_scene_embeddings` — one encoder ("handcrafted", "graph_rae", "error_pattern")
  over the view; writes ``emb_<method>`` (vector field), persists the embeddings, MC-dropout
  samples (views held in memory) and their per-scene uncertainty U (every view; a streamed view
  keeps only U), safety values and a faiss index under ``<scene store>/../repr/<method>/``, registers a
  FiftyOne Brain similarity index (``repr_<method>_sim``: "sort by similarity") and a 2-D
  visualization (``repr_<method>_viz``: the Embeddings panel), and records run ``emb_<method>``.
* :func:`cluster_scenes` — k-means (k given or chosen by silhouette) or metadata domains on
  ``emb_<method>``; writes ``cluster_<method>`` and records run ``cluster_<method>`` with
  per-cluster stats. Cluster labels are strings: "c0", "c1", ... (k-means) or the domain names.
* :func:`compute_value_scores` — S / R / U / Q against the view's ``split == "train"`` scenes
  (all scenes when none is marked train); writes ``value_s``, ``value_r``, ``value_u``,
  ``value_q`` and records run ``value_<method>``.

Everything is computed first and then written in bulk (one ``set_values`` per field); bad
input raises ValueError naming it before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import fiftyone as fo
import numpy as np

from autoscale_core.representation import KnnIndex, SceneClusterer
from autoscale_core.representation.pipeline import (
    METHODS,
    STREAMED_METHODS,
    embed_scenes,
    embed_scenes_streamed,
    value_scores,
)
from autoscale_core.representation.value import mc_uncertainty

from . import scenes
from .keys import Progress, root_dataset
from .runs import record_run

VIZ_METHODS = ("auto", "pca", "tsne")
STREAM_ABOVE = 50_000  # larger views are embedded chunk by chunk (a 50k-scene batch is ≈ 1.5 GB)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {METHODS}")
    return method


def repr_dir(dataset: fo.Dataset, method: str) -> Path:
    """Where a method's arrays and faiss index live: beside the dataset's scene store."""
    return scenes.get_store(dataset).root.parent / "repr" / _check_method(method)


def _train_mask(view) -> np.ndarray:
    splits = np.asarray([s or "" for s in view.values("split")], dtype=object) if view.has_field("split") else None
    if splits is None or not (splits == "train").any():
        return np.ones(len(view), dtype=bool)
    return splits == "train"


def _planner_for(view, train_mask, planner_path, planner_steps, seed, batch):
    from autoscale_core.planning import load_planner, train_planner

    if planner_path:
        return load_planner(planner_path), {"planner": str(planner_path)}
    planner = train_planner(batch.subset(np.flatnonzero(train_mask)), steps=planner_steps, seed=seed)
    return planner, {"planner": f"regression planner trained on the view's train scenes ({planner_steps} steps)"}


def compute_scene_embeddings(
    view: fo.Dataset | fo.DatasetView, method: str = "graph_rae", *, seed: int = 0, steps: int | None = None,
    mc_samples: int = 10, planner_path: str | None = None, planner_steps: int = 300, viz_method: str = "auto",
    brain: bool = True, progress: Progress | None = None, stream_above: int = STREAM_ABOVE, executor=None,
) -> dict:
    """Embed the scenes of ``view`` with ``method`` and write ``emb_<method>`` (see module docstring).

    Views of more than ``stream_above`` scenes are embedded chunk by chunk from the scene store
    (:func:`~autoscale_core.representation.pipeline.embed_scenes_streamed`: bounded memory;
    hand-crafted and Graph-RAE only — "error_pattern" then raises ValueError); ``executor`` (a spec
    such as "process:2" or an executor) encodes those chunks in parallel."""
    _check_method(method)
    if viz_method not in VIZ_METHODS:
        raise ValueError(f"viz_method: {viz_method!r} is not one of {VIZ_METHODS}")
    if mc_samples != 0 and mc_samples < 2:
        raise ValueError(f"mc_samples: must be 0 (off) or >= 2, got {mc_samples}")
    report = progress or (lambda f, m: None)
    dataset = root_dataset(view)
    if len(view) < 2:
        raise ValueError(f"the view of dataset {dataset.name!r} has {len(view)} scene(s); at least 2 are needed")
    from autoscale_core.executor import get_executor

    pool = None if executor is None else get_executor(executor)  # a bad spec fails before any work
    train_mask = _train_mask(view)
    planner, planner_info = (None, {})
    embed_progress = lambda f, m: report(0.05 + 0.7 * f, m)  # noqa: E731
    if len(view) > stream_above:
        if method not in STREAMED_METHODS:
            raise ValueError(f"method {method!r} needs the whole view in memory; this view has {len(view)} scenes "
                             f"(more than {stream_above}): use one of {STREAMED_METHODS} or a smaller view")
        view_ids, load = scenes.scene_loader(view)
        scene_ids = [str(s) for s in view_ids]
        res = embed_scenes_streamed(load, len(scene_ids), method, train_mask=train_mask, seed=seed, steps=steps,
                                    mc_samples=mc_samples, executor=pool, progress=embed_progress)
    else:
        report(0.0, f"loading {len(view)} scenes")
        batch = scenes.load_scenes(view)
        scene_ids = [str(s) for s in batch.meta["scene_id"]]
        if method == "error_pattern":
            report(0.02, "preparing the planner")
            planner, planner_info = _planner_for(view, train_mask, planner_path, planner_steps, seed, batch)
        res = embed_scenes(batch, method, planner=planner, train_mask=train_mask, seed=seed, steps=steps,
                           mc_samples=mc_samples, progress=embed_progress)
    report(0.8, "building the faiss index")
    index = KnnIndex().fit(res.embeddings)
    out_dir = repr_dir(dataset, method)
    out_dir.mkdir(parents=True, exist_ok=True)
    field = f"emb_{method}"
    report(0.85, f"writing {field}")
    # Files are staged first (a full disk fails here, before the dataset is touched), then the
    # field is written, then the staged files are renamed into place (no space needed).
    staging = _stage_arrays(out_dir, scene_ids, res, index, dataset.name)
    try:
        scenes.write_scene_fields(view, {field: res.embeddings}, scene_ids=scene_ids)
        _publish_arrays(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    index_path = str(out_dir / "index.faiss")
    brain_keys = _register_brain(view, method, field, viz_method, report, res.embeddings) if brain else {}
    results = {
        "field": field, "num_scenes": len(scene_ids), "dim": int(res.embeddings.shape[1]),
        "num_train": int(train_mask.sum()), "index_path": index_path, "index_kind": index.built_kind,
        "index_reason": index.reason, "repr_dir": str(out_dir), **brain_keys,
    }
    config = {**{k: v for k, v in res.config.items() if k != "final_loss"}, **planner_info, "viz_method": viz_method}
    if "final_loss" in res.config:
        results["final_loss"] = res.config["final_loss"]
    record_run(dataset, f"emb_{method}", "repr_embeddings", config, results)
    report(1.0, f"embedded {len(scene_ids)} scenes")
    return {"run": f"emb_{method}", **results}


def _stage_arrays(out_dir: Path, scene_ids, res, index, dataset_name: str) -> Path:
    """Embeddings, safety, MC samples (when held in memory), their uncertainty U (plain .npy + JSON,
    no pickle) and the faiss index, written
    to a staging folder beside ``out_dir``; a write error (e.g. a full disk) removes it and is
    raised as a ``ValueError`` naming the dataset and folder."""
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-staging-"))
    try:
        np.save(staging / "embeddings.npy", res.embeddings)
        np.save(staging / "safety.npy", np.asarray(res.safety, dtype=np.float32))
        if res.mc_samples is not None:
            np.save(staging / "mc_samples.npy", res.mc_samples.astype(np.float32))
        if res.uncertainty is not None:
            np.save(staging / "uncertainty.npy", np.asarray(res.uncertainty, dtype=np.float64))
        (staging / "scene_ids.json").write_text(json.dumps(list(scene_ids)))
        index.save(str(staging / "index.faiss"))
    except (OSError, RuntimeError) as exc:  # faiss reports write errors as RuntimeError
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"could not write the embeddings of dataset {dataset_name!r} under {out_dir}: {exc}; "
                         "nothing was changed") from exc
    return staging


def _publish_arrays(staging: Path, out_dir: Path) -> None:
    optional = [name for name in ("mc_samples.npy", "uncertainty.npy") if not (staging / name).exists()]
    for path in staging.iterdir():
        os.replace(path, out_dir / path.name)
    for name in optional:  # stale samples / U of an earlier run
        (out_dir / name).unlink(missing_ok=True)


def load_repr_arrays(dataset: fo.Dataset, method: str, scene_ids) -> dict:
    """The persisted embeddings / safety / MC samples / uncertainty U of ``scene_ids`` (in that
    order); "mc_samples" is None for streamed runs (only U is kept) and "uncertainty" None when
    the run had no MC-dropout samples."""
    out_dir = repr_dir(dataset, method)
    ids_path = out_dir / "scene_ids.json"
    if not ids_path.exists():
        raise ValueError(f"no {method!r} embeddings for dataset {dataset.name!r}: run compute_scene_embeddings first")
    stored = json.loads(ids_path.read_text())
    pos = {s: i for i, s in enumerate(stored)}
    missing = [s for s in scene_ids if s not in pos]
    if missing:
        raise ValueError(f"{len(missing)} scene(s) of the view have no {method!r} embedding, e.g. {missing[:3]}; "
                         "re-run compute_scene_embeddings on them")
    rows = np.array([pos[s] for s in scene_ids], dtype=np.int64)
    out = {"embeddings": np.load(out_dir / "embeddings.npy")[rows], "safety": np.load(out_dir / "safety.npy")[rows]}
    mc_path, u_path = out_dir / "mc_samples.npy", out_dir / "uncertainty.npy"
    out["mc_samples"] = np.load(mc_path, mmap_mode="r")[:, rows] if mc_path.exists() else None
    if u_path.exists():
        out["uncertainty"] = np.load(u_path)[rows]
    else:  # runs written before U was stored
        out["uncertainty"] = None if out["mc_samples"] is None else mc_uncertainty(out["mc_samples"])
    return out


def _register_brain(view, method, field, viz_method, report, embeddings: np.ndarray) -> dict:
    """FiftyOne Brain similarity (sort by similarity) and a 2-D visualization on ``field``;
    ``embeddings`` (S, D): the values just written to ``field`` in the view's order. A PCA map is
    computed from them and handed to the Brain as ``points`` (the same sklearn PCA the Brain
    would run, without reading S vectors back from MongoDB)."""
    import fiftyone.brain as fob

    dataset = root_dataset(view)
    sim_key, viz_key = f"repr_{method}_sim", f"repr_{method}_viz"
    for key in (sim_key, viz_key):
        if dataset.has_brain_run(key):
            dataset.delete_brain_run(key)
    report(0.9, "registering the similarity index")
    fob.compute_similarity(view, embeddings=field, brain_key=sim_key, backend="sklearn", metric="euclidean")
    chosen = viz_method if viz_method != "auto" else ("tsne" if 50 <= len(view) <= 3000 else "pca")
    report(0.93, f"2-D map ({chosen})")
    kwargs = {}
    if chosen == "tsne":
        # t-SNE runs on a 50-d PCA first; that PCA needs more than 50 dims and samples.
        dim = len(view.first()[field])
        kwargs = {"seed": 51, "pca_dims": 50 if min(dim, len(view)) > 50 else None}
    if chosen == "pca":
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, svd_solver="full").fit_transform(np.asarray(embeddings, dtype=np.float64))
        fob.compute_visualization(view, points=points, brain_key=viz_key, method=chosen, num_dims=2, verbose=False)
    else:
        fob.compute_visualization(view, embeddings=field, brain_key=viz_key, method=chosen, num_dims=2, verbose=False,
                                  **kwargs)
    return {"similarity_brain_key": sim_key, "visualization_brain_key": viz_key, "visualization_method": chosen}


def _embedding_field(view, method: str) -> str:
    """``emb_<method>``, checked to exist on the view."""
    field = f"emb_{_check_method(method)}"
    if not view.has_field(field):
        raise ValueError(f"field {field!r} does not exist: run compute_scene_embeddings with method {method!r} first")
    return field


def _view_embeddings(view, method: str) -> tuple[list[str], np.ndarray]:
    """(scene ids, (S, D) float32 embeddings) of the view, from the run's persisted arrays when
    they cover the view (the field holds the same values: both are written by
    :func:`compute_scene_embeddings`), else from the ``emb_<method>`` field. Reading S vectors
    back from MongoDB as Python lists costs ≈ 1.6 kB of memory per scene (13 GB at 1e6)."""
    field = _embedding_field(view, method)
    ids = [str(s) for s in view.values("scene_id")]
    try:
        return ids, load_repr_arrays(root_dataset(view), method, ids)["embeddings"].astype(np.float32)
    except ValueError:
        pass  # some scenes of the view were embedded by an earlier run: read the field
    values = view.values(field)
    missing = [i for i, v in zip(ids, values) if v is None]
    if missing:
        raise ValueError(f"{len(missing)} scene(s) have no {field!r}, e.g. {missing[:3]}")
    return ids, np.stack([np.asarray(v, dtype=np.float32) for v in values])


def cluster_scenes(view, method: str = "graph_rae", *, k: int | None = None, domains_field: str | None = None,
                   seed: int = 0, progress: Progress | None = None) -> dict:
    """Cluster ``emb_<method>`` into ``cluster_<method>``; ``domains_field`` (e.g. "city") uses
    metadata domains instead of k-means. Returns the run's results."""
    report = progress or (lambda f, m: None)
    dataset = root_dataset(view)
    ids, emb = _view_embeddings(view, method)
    report(0.1, f"clustering {len(ids)} scenes")
    if domains_field:
        if not view.has_field(domains_field):
            raise ValueError(f"domains_field: {domains_field!r} is not a field of dataset {dataset.name!r}")
        clusterer = SceneClusterer(method="metadata").fit(emb, domains=[str(v) for v in view.values(domains_field)])
    else:
        if k is not None and k > len(ids):
            raise ValueError(f"k: {k} clusters requested for a view of {len(ids)} scenes")
        clusterer = SceneClusterer(k=k, seed=seed).fit(emb)
    stats_values = {}
    for name in ("value_q", "ego_speed"):
        if view.has_field(name):
            vals = view.values(name)
            if all(v is not None for v in vals):
                stats_values[name] = np.asarray(vals, dtype=np.float64)
    stats = clusterer.cluster_stats(stats_values)
    field = f"cluster_{method}"
    # Strings either way ("c0", "c1", ... or the domain names), so the field keeps one type.
    names = clusterer.domain_names_ or [f"c{c}" for c in range(clusterer.k_)]
    scenes.write_scene_fields(view, {field: [names[c] for c in clusterer.labels_]}, scene_ids=ids)
    results = {"field": field, "k": int(clusterer.k_), "criterion": clusterer.criterion_, "stats": stats,
               "silhouette": {str(kk): round(v, 4) for kk, v in clusterer.silhouette_.items()}}
    record_run(dataset, f"cluster_{method}", "repr_clusters",
               {"method": method, "k": k, "domains_field": domains_field, "seed": seed}, results)
    report(1.0, f"{clusterer.k_} clusters")
    return {"run": f"cluster_{method}", **results}


def compute_value_scores(view, method: str = "graph_rae", *, alpha_s: float = 1.0, alpha_r: float = 1.0,
                         alpha_u: float = 1.0, k: int = 20, progress: Progress | None = None) -> dict:
    """Write ``value_s``, ``value_r``, ``value_u``, ``value_q`` for the view's scenes."""
    report = progress or (lambda f, m: None)
    for name, a in (("alpha_s", alpha_s), ("alpha_r", alpha_r), ("alpha_u", alpha_u)):
        if not np.isfinite(a) or a < 0:
            raise ValueError(f"{name}: must be a finite number >= 0, got {a!r}")
    dataset = root_dataset(view)
    _embedding_field(view, method)
    ids = [str(s) for s in view.values("scene_id")]
    arrays = load_repr_arrays(dataset, method, ids)  # S, R, U need the run's safety and U: its embeddings too
    emb = arrays["embeddings"].astype(np.float32)
    train_mask = _train_mask(view)
    if train_mask.sum() < k + 1:
        raise ValueError(f"k: the view has {int(train_mask.sum())} training scenes; k={k} needs at least {k + 1}")
    report(0.2, "scoring")
    scores, scorer = value_scores(emb, arrays["safety"], train_mask=train_mask, uncertainty=arrays["uncertainty"],
                                  alpha_s=alpha_s, alpha_r=alpha_r, alpha_u=alpha_u, k=k)
    report(0.8, "writing value fields")
    scenes.write_scene_fields(view, {f"value_{n.lower()}": np.asarray(v, dtype=np.float64) for n, v in scores.items()},
                              scene_ids=ids)
    summary = {f"value_{n.lower()}": {"mean": float(v.mean()), "std": float(v.std()), "max": float(v.max())}
               for n, v in scores.items()}
    results = {"num_scenes": len(ids), "num_reference": int(train_mask.sum()),
               "uncertainty": arrays["uncertainty"] is not None,
               "scorer": scorer.config(), "summary": summary}
    record_run(dataset, f"value_{method}", "repr_value_scores",
               {"method": method, "alpha_s": alpha_s, "alpha_r": alpha_r, "alpha_u": alpha_u, "k": k}, results)
    report(1.0, "done")
    return {"run": f"value_{method}", **results}
