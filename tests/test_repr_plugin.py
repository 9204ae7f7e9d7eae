"""Scene representation in FiftyOne (real embedded MongoDB, real torch / faiss / Brain): fields,
persisted faiss index, similarity sort, run records, operators, CLI and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_road_batch


@pytest.fixture
def repr_dataset(fo, dataset_name, autoscale_home):
    from fiftyone_plugin.engine import scenes

    try:
        from autoscale_core.world import generate_world

        batch = generate_world(40, seed=3)
    except ImportError:  # the world is another area's; fall back to hand-built scenes
        batch = make_road_batch(40, prefix="repr")
    ds = scenes.create_scene_dataset(dataset_name("repr"), batch, render_images=False)
    # A fixed split so the reference (train) set is known: 30 train, 10 val.
    scenes.write_scene_fields(ds, {"split": ["train"] * 30 + ["val"] * 10}, scene_ids=batch.meta["scene_id"].tolist())
    yield ds
    scenes.delete_scene_dataset(ds.name)


def test_embed_cluster_value_end_to_end(fo, repr_dataset):
    from autoscale_core.representation import KnnIndex
    from fiftyone_plugin.engine.representation import cluster_scenes, compute_scene_embeddings, compute_value_scores
    from fiftyone_plugin.engine.runs import get_run

    ds = repr_dataset
    out = compute_scene_embeddings(ds, "graph_rae", steps=4, mc_samples=3, viz_method="pca")
    emb = np.stack(ds.values("emb_graph_rae"))
    assert emb.shape == (40, 64) and np.isfinite(emb).all()
    run = get_run(ds, "emb_graph_rae")
    assert run["method"] == "repr_embeddings" and run["results"]["num_train"] == 30
    index = KnnIndex.load(out["index_path"])
    assert index.built_kind == "flat" and len(index) == 40
    _, nn = index.search(emb[:3], 1)
    assert nn[:, 0].tolist() == [0, 1, 2]
    # FiftyOne Brain: similarity sort puts the query first; the 2-D map exists.
    assert {"repr_graph_rae_sim", "repr_graph_rae_viz"} <= set(ds.list_brain_runs())
    first = ds.first()
    ranked = ds.sort_by_similarity(first.id, k=5, brain_key="repr_graph_rae_sim")
    assert ranked.first().id == first.id and len(ranked) == 5
    assert ds.load_brain_results("repr_graph_rae_viz").points.shape == (40, 2)

    clusters = cluster_scenes(ds, "graph_rae", k=3)
    assert set(ds.values("cluster_graph_rae")) <= {"c0", "c1", "c2"} and clusters["k"] == 3
    assert sum(s["size"] for s in get_run(ds, "cluster_graph_rae")["results"]["stats"]) == 40
    by_city = cluster_scenes(ds, "graph_rae", domains_field="city")
    assert set(ds.values("cluster_graph_rae")) == set(ds.values("city")) and by_city["criterion"] == "metadata domains"

    values = compute_value_scores(ds, "graph_rae", k=5, alpha_u=2.0)
    s, r, u, q = (np.array(ds.values(f"value_{n}")) for n in "sruq")
    assert np.isfinite(q).all() and (s >= 0).all() and (s <= 1).all() and (u > 0).all()
    np.testing.assert_allclose(q, s / s.std() + r / r.std() + 2.0 * u / u.std(), rtol=1e-6)
    assert values["num_reference"] == 30 and get_run(ds, "value_graph_rae")["config"]["alpha_u"] == 2.0


def test_bad_input_is_clear_and_writes_nothing(fo, repr_dataset):
    from fiftyone_plugin.engine.representation import cluster_scenes, compute_scene_embeddings, compute_value_scores

    ds = repr_dataset
    with pytest.raises(ValueError, match="run compute_scene_embeddings"):
        cluster_scenes(ds, "handcrafted", k=2)
    with pytest.raises(ValueError, match="method"):
        compute_scene_embeddings(ds, "pixels")
    compute_scene_embeddings(ds, "handcrafted", brain=False)
    with pytest.raises(ValueError, match="k=31 needs at least 32"):
        compute_value_scores(ds, "handcrafted", k=31)
    with pytest.raises(ValueError, match="k: 41 clusters"):
        cluster_scenes(ds, "handcrafted", k=41)
    with pytest.raises(ValueError, match="alpha_s"):
        compute_value_scores(ds, "handcrafted", alpha_s=float("nan"))
    with pytest.raises(ValueError, match="at least 2"):
        compute_scene_embeddings(ds.limit(1), "handcrafted", brain=False)
    assert not ds.has_field("value_q") and not ds.has_field("cluster_handcrafted")


def test_error_pattern_embeddings_with_a_trained_planner(fo, repr_dataset):
    from fiftyone_plugin.engine.representation import compute_scene_embeddings, compute_value_scores

    ds = repr_dataset
    out = compute_scene_embeddings(ds, "error_pattern", steps=5, mc_samples=3, planner_steps=5, brain=False)
    emb = np.stack(ds.values("emb_error_pattern"))
    assert emb.shape == (40, 128) and out["dim"] == 128
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    compute_value_scores(ds, "error_pattern", k=5)
    assert np.isfinite(ds.values("value_q")).all()


def test_operators_and_cli(fo, repr_dataset, capsys, plugin_link):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    from fiftyone_plugin.cli import main

    ds = repr_dataset
    uri = "@autoscale/autoscale/compute_scene_embeddings"
    result = foo.execute_operator(uri, view=ds.view(), params={"method": "handcrafted", "viz_method": "pca"})
    assert result.error is None, result.error_message
    assert result.result["field"] == "emb_handcrafted" and ds.has_field("emb_handcrafted")
    queued = foo.execute_operator("@autoscale/autoscale/cluster_scenes", view=ds.view(),
                                  params={"method": "handcrafted", "k": 2}, request_delegation=True)
    assert queued.delegated
    done = DelegatedOperationService().execute_queued_operations(operator="@autoscale/autoscale/cluster_scenes",
                                                                 dataset_name=ds.name)
    assert len(done) == 1 and done[0].error is None, done[0].error
    assert set(ds.values("cluster_handcrafted")) == {"c0", "c1"}
    result = foo.execute_operator("@autoscale/autoscale/compute_value_scores", view=ds.view(),
                                  params={"method": "handcrafted", "k": 5})
    assert result.error is None, result.error_message and ds.has_field("value_q")

    assert main(["cluster", "--dataset", ds.name, "--method", "handcrafted", "--k", "3"]) == 0
    assert '"k": 3' in capsys.readouterr().out
    assert main(["value", "--dataset", ds.name, "--method", "handcrafted", "--k", "99"]) != 0
    assert "k=99" in capsys.readouterr().err
    assert main(["embed", "--dataset", ds.name, "--method", "handcrafted", "--no-brain"]) == 0
    # A bad executor spec fails before any work, even for a view too small to be streamed.
    assert main(["embed", "--dataset", ds.name, "--method", "handcrafted", "--executor", "gpu:9"]) != 0
    assert "unknown" in capsys.readouterr().err


def test_tsne_map_of_low_dimensional_embeddings(fo, dataset_name, autoscale_home):
    """t-SNE is chosen for 50..3000 scenes; 35-d hand-crafted features must not hit its 50-d PCA."""
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import compute_scene_embeddings

    ds = scenes.create_scene_dataset(dataset_name("tsne"), make_road_batch(60, prefix="tsne"), render_images=False)
    result = compute_scene_embeddings(ds, "handcrafted")
    assert result["visualization_method"] == "tsne"
    assert ds.has_brain_run(result["visualization_brain_key"])
