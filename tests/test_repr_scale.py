"""Grouped IVF search (the all-vs-all kNN path at 1M scale) and value scores sharing one index."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from autoscale_core.representation import KnnIndex, ValueScorer, normalize_embeddings


def _blobs(n: int = 6000, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3.0, (12, dim))
    return (centres[rng.integers(0, 12, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def test_grouped_search_probing_every_list_is_exact():
    x = _blobs()
    index = KnnIndex("ivf", nlist=20, nprobe=20).fit(x)
    dist, idx = index.search(x, 5, grouped=True)
    d2, truth = faiss.knn(x, x, 5)
    assert np.array_equal(np.sort(idx, 1), np.sort(truth, 1))
    np.testing.assert_allclose(dist, np.sqrt(np.maximum(d2, 0)), atol=1e-3)


def test_grouped_search_is_the_default_for_large_query_batches_and_recalls_well():
    x = _blobs()
    index = KnnIndex("ivf", nlist=40, nprobe=8).fit(x)
    assert index.uses_grouped_search(len(x)) and not index.uses_grouped_search(10)
    dist, idx = index.search(x, 10)
    assert (idx[:, 0] == np.arange(len(x))).mean() > 0.99  # each point finds itself first
    assert index.recall(k=10, sample=500) >= 0.9
    # The candidates of a query depend only on its cell: a small batch gives the same neighbours.
    _, few = index.search(x[:300], 10, grouped=True)
    assert (few == idx[:300]).all(1).mean() > 0.99


def test_grouped_search_after_save_and_load(tmp_path):
    x = _blobs(3000)
    index = KnnIndex("ivf", nlist=30, nprobe=6).fit(x)
    _, before = index.search(x, 4, grouped=True)
    loaded = KnnIndex.load(index.save(str(tmp_path / "ivf.faiss")))
    _, after = loaded.search(x, 4, grouped=True)
    assert (after == before).all(1).mean() > 0.99


def test_grouped_search_pads_when_lists_hold_fewer_than_k():
    x = _blobs(800, dim=8)
    index = KnnIndex("ivf", nlist=20, nprobe=1).fit(x)
    dist, idx = index.search(x[:50], 200, grouped=True)
    short = idx == -1
    assert short.any(), "one probed list of ~40 vectors cannot hold 200 neighbours"
    assert np.isinf(dist[short]).all() and np.isfinite(dist[~short]).all()


def test_value_scorer_reuses_a_shared_index_with_identical_scores():
    x = _blobs(2000)
    safety = np.random.default_rng(1).gamma(2.0, 1.0, len(x))
    own = ValueScorer(k=10).fit(x, safety).score(x, exclude_self=True)
    unit = normalize_embeddings(x)
    shared_index = KnnIndex("flat").fit(unit)
    neighbours = shared_index.search(unit, 11)
    scorer = ValueScorer(k=10).fit(x, safety, index=shared_index)
    assert scorer.index_ is shared_index
    shared = scorer.score(x, exclude_self=True, neighbours=neighbours)
    for key in ("S", "R", "Q"):
        np.testing.assert_allclose(shared[key], own[key], rtol=1e-5, atol=1e-6)


def test_value_scorer_rejects_a_mismatched_index_or_neighbours():
    x = _blobs(500)
    safety = np.ones(len(x))
    with pytest.raises(ValueError, match="not built over these reference embeddings"):
        ValueScorer(k=5).fit(x, safety, index=KnnIndex("flat").fit(x))  # raw, not normalized
    with pytest.raises(ValueError, match="holds 400 vectors"):
        ValueScorer(k=5).fit(x, safety, index=KnnIndex("flat").fit(normalize_embeddings(x[:400])))
    scorer = ValueScorer(k=5).fit(x, safety)
    dist, idx = scorer.index_.search(normalize_embeddings(x), 5)
    with pytest.raises(ValueError, match="neighbours must be"):
        scorer.score(x, exclude_self=True, neighbours=(dist, idx))  # needs k + 1 columns


# ------------------------------------------------------------------ embedding large views in chunks
@pytest.fixture(scope="module")
def world_scenes():
    from autoscale_core.world import generate_world

    return generate_world(30, seed=4)


def _recording_loader(batch, calls):
    def load(rows):
        calls.append(len(rows))
        return batch.subset(np.asarray(rows))
    return load


def test_streamed_handcrafted_embedding_equals_in_memory(world_scenes):
    from autoscale_core.representation.pipeline import embed_scenes, embed_scenes_streamed

    train = np.arange(30) < 20
    whole = embed_scenes(world_scenes, "handcrafted", train_mask=train)
    calls = []
    streamed = embed_scenes_streamed(_recording_loader(world_scenes, calls), 30, "handcrafted", train_mask=train, chunk=7)
    assert max(calls) <= 7 and sum(calls) == 30  # never more than one chunk of scenes in memory
    np.testing.assert_array_equal(streamed.embeddings, whole.embeddings)
    np.testing.assert_array_equal(streamed.safety, whole.safety)


def test_streamed_graph_rae_embedding_matches_in_memory(world_scenes):
    from autoscale_core.representation.pipeline import embed_scenes, embed_scenes_streamed

    whole = embed_scenes(world_scenes, "graph_rae", steps=3, mc_samples=2, seed=1)
    calls = []
    streamed = embed_scenes_streamed(_recording_loader(world_scenes, calls), 30, "graph_rae", steps=3, mc_samples=2,
                                     seed=1, chunk=8)
    assert calls[0] == 30 and max(calls[1:]) <= 8  # the fit set (<= fit_max), then chunks
    np.testing.assert_allclose(streamed.embeddings, whole.embeddings, atol=1e-5)
    # The streamed path keeps only U per scene (the samples would be K·S·D floats at scale).
    assert streamed.mc_samples is None and whole.mc_samples.shape == (2, 30, whole.embeddings.shape[1])
    assert streamed.uncertainty.shape == whole.uncertainty.shape == (30,) and (streamed.uncertainty > 0).all()
    with pytest.raises(ValueError, match="streamed embedding supports"):
        embed_scenes_streamed(_recording_loader(world_scenes, []), 30, "error_pattern")


class _PartLoader:
    """A picklable loader with ``part(rows)`` (what the engine's StoreRowsLoader offers)."""

    def __init__(self, batch, rows=None):
        self.batch, self.rows = batch, np.arange(len(batch)) if rows is None else np.asarray(rows)

    def __call__(self, rows):
        return self.batch.subset(self.rows[np.asarray(rows)])

    def part(self, rows):
        return _PartLoader(self.batch, self.rows[np.asarray(rows)])


def test_streamed_graph_rae_on_an_executor_equals_serial(world_scenes):
    """Chunk i's MC-dropout passes use seed + i wherever they run: two worker processes give the
    same embeddings, U and safety as the serial loop."""
    from autoscale_core.executor import get_executor
    from autoscale_core.representation.pipeline import embed_scenes_streamed

    kwargs = dict(steps=3, mc_samples=3, seed=2, chunk=8)
    serial = embed_scenes_streamed(_PartLoader(world_scenes), 30, "graph_rae", **kwargs)
    parallel = embed_scenes_streamed(_PartLoader(world_scenes), 30, "graph_rae", executor=get_executor("process:2"),
                                     **kwargs)
    np.testing.assert_allclose(parallel.embeddings, serial.embeddings, atol=1e-6)
    np.testing.assert_allclose(parallel.uncertainty, serial.uncertainty, rtol=1e-5)
    np.testing.assert_array_equal(parallel.safety, serial.safety)
    assert "ProcessExecutor" in parallel.config["executor"]


def test_large_view_is_embedded_chunk_by_chunk_in_fiftyone(fo, dataset_name, autoscale_home, world_scenes):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import compute_scene_embeddings
    from fiftyone_plugin.engine.runs import get_run

    ds = scenes.create_scene_dataset(dataset_name("stream"), world_scenes, render_images=False)
    try:
        whole = compute_scene_embeddings(ds, "handcrafted", brain=False)
        expected = np.stack(ds.values("emb_handcrafted"))
        assert "streamed_chunk" not in get_run(ds, "emb_handcrafted")["config"]
        streamed = compute_scene_embeddings(ds, "handcrafted", brain=False, stream_above=10)
        assert streamed["num_scenes"] == whole["num_scenes"] == 30
        assert get_run(ds, "emb_handcrafted")["config"]["streamed_chunk"] > 0
        np.testing.assert_array_equal(np.stack(ds.values("emb_handcrafted")), expected)
        with pytest.raises(ValueError, match="needs the whole view in memory"):
            compute_scene_embeddings(ds, "error_pattern", stream_above=10)
    finally:
        scenes.delete_scene_dataset(ds.name)


def test_streamed_graph_rae_in_fiftyone_keeps_u_not_samples(fo, dataset_name, autoscale_home, world_scenes):
    """A streamed view persists U per scene, not the K·S·D
    MC-dropout samples; value_u is that U; the Brain's PCA map is computed from the arrays; and a
    view the persisted arrays do not cover is read from the emb_ field instead."""
    from fiftyone import ViewField as F

    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import (
        cluster_scenes,
        compute_scene_embeddings,
        compute_value_scores,
        load_repr_arrays,
        repr_dir,
    )

    ds = scenes.create_scene_dataset(dataset_name("stream-u"), world_scenes, render_images=False)
    try:
        out = compute_scene_embeddings(ds, "graph_rae", steps=3, mc_samples=3, stream_above=10, viz_method="pca")
        folder = repr_dir(ds, "graph_rae")
        assert (folder / "uncertainty.npy").exists() and not (folder / "mc_samples.npy").exists()
        ids = ds.values("scene_id")
        arrays = load_repr_arrays(ds, "graph_rae", ids)
        assert arrays["mc_samples"] is None and arrays["uncertainty"].shape == (30,)
        np.testing.assert_allclose(np.stack(ds.values("emb_graph_rae")), arrays["embeddings"], atol=1e-6)
        assert ds.get_brain_info(out["visualization_brain_key"]) is not None
        compute_value_scores(ds, "graph_rae", k=5)
        np.testing.assert_allclose(ds.values("value_u"), arrays["uncertainty"], rtol=1e-6)

        # Re-embed a subset in memory: the arrays now hold 12 scenes (with samples and U), the
        # field still holds all 30, so clustering the whole dataset reads the field.
        subset = ds.match(F("scene_id").is_in(ids[:12]))
        compute_scene_embeddings(subset, "graph_rae", steps=3, mc_samples=2, brain=False)
        assert (folder / "mc_samples.npy").exists() and len(load_repr_arrays(ds, "graph_rae", ids[:12])["uncertainty"]) == 12
        assert cluster_scenes(ds, "graph_rae", k=3)["k"] == 3
        assert ds.count("cluster_graph_rae") == 30
    finally:
        scenes.delete_scene_dataset(ds.name)
