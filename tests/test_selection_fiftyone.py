"""Selection on real FiftyOne datasets: tags, saved views, run records, the operators' functions and the CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest


@pytest.fixture(scope="module")
def world_dataset(fo, tmp_path_factory):
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scenes

    name = f"sel-{np.random.default_rng().integers(1e9)}"
    batch = generate_world(70, seed=3)
    dataset = scenes.create_scene_dataset(name, batch, media_dir=tmp_path_factory.mktemp("sel-media"),
                                          render_images=False)
    yield dataset
    scenes.delete_scene_dataset(name)


def _tagged(dataset, name):
    return set(dataset.match_tags("sel:" + name).values("scene_id"))


def test_active_random_stores_tag_view_and_run(world_dataset):
    from fiftyone_plugin.engine.runs import get_run
    from fiftyone_plugin.engine.selection import SelectionError, delete_selection, select_active

    ds = world_dataset
    summary = select_active(ds, "rand-b10", 10, method="random", seed=1)
    assert summary["budget"] == 10 and summary["tag"] == "sel:rand-b10"
    run = get_run(ds, "sel_rand_b10")
    ranked = run["results"]["scene_ids"]
    assert len(ranked) == 10 and _tagged(ds, "rand-b10") == set(ranked)
    assert ds.load_saved_view("rand-b10").values("scene_id") == ranked  # rank order kept
    assert run["config"]["method"] == "random" and run["status"] == "completed"
    # The same name again is an error and changes nothing.
    with pytest.raises(SelectionError, match="already exists"):
        select_active(ds, "rand-b10", 5, method="random", seed=2)
    assert _tagged(ds, "rand-b10") == set(ranked)
    summary = select_active(ds, "rand-b10", 5, method="random", seed=2, overwrite=True)
    assert len(_tagged(ds, "rand-b10")) == 5 and len(ds.load_saved_view("rand-b10")) == 5
    delete_selection(ds, "rand-b10")
    assert not _tagged(ds, "rand-b10") and not ds.has_saved_view("rand-b10") and not ds.has_run("sel_rand_b10")


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "bad name!", "budget": 3}, "selection name"),
    ({"name": "ok", "budget": 0}, "budget must be"),
    ({"name": "ok", "budget": 10_000}, "larger than"),
    ({"name": "ok", "budget": 3, "method": "magic"}, "not one of"),
    ({"name": "ok", "budget": 3, "method": "coreset", "embedding_field": "nope"}, "does not exist"),
])
def test_active_bad_input_writes_nothing(world_dataset, kwargs, match):
    from fiftyone_plugin.engine.selection import SelectionError, select_active

    ds = world_dataset
    before = (ds.count_sample_tags(), ds.list_saved_views(), ds.list_runs())
    with pytest.raises(SelectionError, match=match):
        select_active(ds, kwargs.pop("name"), kwargs.pop("budget"), **{"method": "random", **kwargs})
    assert (ds.count_sample_tags(), ds.list_saved_views(), ds.list_runs()) == before


def test_hard_mining_from_an_epdms_field_or_a_planner(world_dataset):
    from fiftyone_plugin.cli.selection import register_commands
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.runs import get_run
    from fiftyone_plugin.engine.selection import ACTIVE_METHODS, SelectionError, select_active

    ds = world_dataset
    ids = ds.values("scene_id")
    epdms = np.random.default_rng(2).random(len(ids))
    scenes.write_scene_fields(ds, {"eval_demo_epdms": epdms}, scene_ids=ids)
    select_active(ds, "hard-f", 5, method="hard_mining", importance_field="eval_demo_epdms")
    assert _tagged(ds, "hard-f") == {ids[i] for i in np.argsort(epdms)[:5]}  # the lowest EPDMS
    assert get_run(ds, "sel_hard_f")["config"]["importance_field"] == "eval_demo_epdms"
    # Without a field: a planner trained on the base set scores the candidates.
    summary = select_active(ds, "hard-p", 4, method="hard_mining", steps=3)
    assert len(_tagged(ds, "hard-p")) == 4 and "1 - EPDMS" in summary["explanation"]
    with pytest.raises(SelectionError, match="does not exist"):
        select_active(ds, "hard-x", 4, method="hard_mining", importance_field="eval_nope_epdms")
    assert not _tagged(ds, "hard-x")
    # The CLI offers every engine method (its list is not imported, to keep the CLI start fast).
    parser = argparse.ArgumentParser()
    register_commands(parser.add_subparsers())
    for method in ACTIVE_METHODS:
        args = parser.parse_args(["select", "active", "--dataset", "d", "--name", "n", "--budget", "1", "--method", method])
        assert args.method == method


def test_value_topm_from_fields_and_coreset_from_planner(world_dataset):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.selection import select_active

    ds = world_dataset
    ids = ds.values("scene_id")
    rng = np.random.default_rng(0)
    values = {f"value_{c}": rng.random(len(ids)) for c in "sru"}  # as compute_value_scores names them
    scenes.write_scene_fields(ds, values, scene_ids=ids)
    select_active(ds, "q-r", 6, components=("R",))
    expected = {ids[i] for i in np.argsort(-values["value_r"])[:6]}
    assert _tagged(ds, "q-r") == expected
    # Coreset without an embedding field: embeddings of a planner trained on the base set.
    summary = select_active(ds.match_tags("sel:q-r", bool=False), "core", 5, method="coreset", steps=3)
    assert len(_tagged(ds, "core")) == 5 and not (_tagged(ds, "core") & _tagged(ds, "q-r"))
    assert "k-center" in summary["explanation"]


def test_mosaic_fit_then_allocate_and_autoscale(world_dataset):
    from fiftyone_plugin.engine.runs import get_run
    from fiftyone_plugin.engine.selection import SelectionError, allocate_budget, fit_scaling_laws, optimize_mixture

    ds = world_dataset
    fit = fit_scaling_laws(ds, "topo", 12, pilot_fractions="0.5,1.5", steps=3, executor="serial", val_limit=8)
    assert fit["run_key"] == "scaling_topo"
    assert 2 <= len(fit["fits"]) and set(fit["fits"]) <= set(ds.distinct("topology"))
    assert all(f["model"] in ("exp", "linear", "zero") for f in fit["fits"].values())
    assert get_run(ds, "scaling_topo")["results"]["fits"] == fit["fits"]
    with pytest.raises(SelectionError, match="already exist"):
        fit_scaling_laws(ds, "topo", 12, steps=3, executor="serial")
    summary = allocate_budget(ds, "mosaic-b12", 12, fits_from="topo", steps=3, val_limit=8)
    assert summary["budget"] == 12 and sum(summary["allocation"].values()) == 12
    run = get_run(ds, "sel_mosaic_b12")
    assert run["method"] == "selection_mosaic" and run["results"]["predicted_gain"] is not None
    assert ds.has_saved_view("mosaic-b12") and len(_tagged(ds, "mosaic-b12")) == 12
    with pytest.raises(SelectionError, match="domain field"):
        allocate_budget(ds, "mosaic-x", 12, fits_from="topo", domain_field="city")
    auto = optimize_mixture(ds, "auto-b10", 10, rounds=2, probes=2, num_clusters=3, steps=3, executor="serial", val_limit=8)
    assert len(auto["history"]) == 2 and len(_tagged(ds, "auto-b10")) == 10


def test_autoscale_embedding_field_and_bad_input(world_dataset):
    """The embedding field drives clusters and retrieval (failures searched in the same space);
    bad input fails before any training and writes nothing."""
    from fiftyone import ViewField as F

    from fiftyone_plugin.engine.runs import get_run
    from fiftyone_plugin.engine.selection import SelectionError, optimize_mixture

    ds = world_dataset
    rng = np.random.default_rng(0)
    ds.set_values("emb_test", [rng.normal(size=5).tolist() for _ in range(len(ds))])
    ds.set_values("emb_ragged", [[1.0, 2.0, 3.0] if i % 2 else [1.0, 2.0] for i in range(len(ds))])
    kw = dict(rounds=1, probes=0, num_clusters=2, steps=3, executor="serial", val_limit=8, eval_seeds=1)
    for bad, match in [(dict(embedding_field="emb_missing"), "does not exist"),
                       (dict(embedding_field="emb_ragged"), "one dimension"),
                       (dict(view=ds.match(F("source") == "synthetic")), "synthetic pool"),
                       (dict(budget=10_000), "larger than the candidate view")]:
        view, budget = bad.pop("view", ds), bad.pop("budget", 6)
        with pytest.raises(SelectionError, match=match):
            optimize_mixture(view, "auto-bad", budget, **kw, **bad)
        assert not _tagged(ds, "auto-bad") and not ds.has_run("sel_auto_bad") and not ds.has_saved_view("auto-bad")
    summary = optimize_mixture(ds, "auto-emb", 6, **kw, embedding_field="emb_test")
    run = get_run(ds, "sel_auto_emb")
    assert len(_tagged(ds, "auto-emb")) == 6 and run["config"]["embedding_field"] == "emb_test"
    assert run["config"]["val_tune"] + run["config"]["val_confirm"] == 8 and "confirmed" in summary["explanation"]


def test_cli_select(world_dataset, capsys):
    from fiftyone_plugin.cli import main

    ds = world_dataset
    assert main(["select", "active", "--dataset", ds.name, "--name", "cli-rand", "--budget", "4",
                 "--method", "random", "--split", ""]) == 0
    assert len(_tagged(ds, "cli-rand")) == 4
    assert main(["select", "active", "--dataset", ds.name, "--name", "cli-rand", "--budget", "4",
                 "--method", "random", "--split", ""]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["select", "active", "--dataset", ds.name, "--name", "cli-big", "--budget", "100000",
                 "--method", "random"]) == 1
    assert "larger than" in capsys.readouterr().err
    assert main(["select", "delete", "--dataset", ds.name, "--name", "cli-rand"]) == 0
    assert not _tagged(ds, "cli-rand")


def test_failed_write_is_rolled_back_and_recorded(world_dataset):
    from fiftyone_plugin.engine.runs import get_run
    from fiftyone_plugin.engine.selection import select_active

    ds = world_dataset
    ds.save_view("slug-x", ds.limit(2))  # a user's view whose URL slug equals that of "slug_x"
    try:
        with pytest.raises(ValueError):
            select_active(ds, "slug_x", 4, method="random")
        assert not _tagged(ds, "slug_x") and not ds.has_saved_view("slug_x")
        assert get_run(ds, "sel_slug_x")["status"] == "failed"
    finally:
        ds.delete_saved_view("slug-x")


def test_resolved_views_are_plain_queries_the_scene_id_index_serves(world_dataset):
    """Id-set views are ``{"scene_id": {"$in": ids}}`` matches (the index serves them), not
    ``$expr`` stages that MongoDB evaluates per document over the whole collection: at 1e6 those
    made each read of a pilot view a full scan of 1e6 x |ids| comparisons."""
    import json

    from fiftyone_plugin.engine.selection import resolve_views

    ds = world_dataset
    candidates = ds.select_by("scene_id", sorted(ds.values("scene_id"))[:40])
    pool, base, val = resolve_views(candidates, base_limit=10, val_limit=5)
    for view in (pool, base, val):
        assert "$expr" not in json.dumps(view._pipeline(), default=str)
    assert not set(pool.values("scene_id")) & (set(base.values("scene_id")) | set(val.values("scene_id")))
    plan = ds._sample_collection.find({"scene_id": {"$in": base.values("scene_id")}}).explain()
    assert "IXSCAN" in json.dumps(plan["queryPlanner"]["winningPlan"])


def test_scenes_of_source_selects_what_the_viewfield_filters_did(world_dataset):
    """The CLIs' --source/--split views (keys.scenes_of_source, a query document) hold the same
    scenes as the ViewField matches they replaced; --split "" means every split."""
    from fiftyone import ViewField as F

    from fiftyone_plugin.engine.keys import scenes_of_source

    ds = world_dataset.clone()
    try:
        ds._sample_collection.update_many({"scene_id": {"$in": ds.values("scene_id")[::5]}},
                                          {"$set": {"source": "synthetic"}})
        by_source = {"real": F("source") != "synthetic", "synthetic": F("source") == "synthetic", "all": None}
        for source, expr in by_source.items():
            for split in (None, "", "train", "val"):
                old = ds.view() if expr is None else ds.match(expr)
                if split:
                    old = old.match(F("split") == split)
                new = scenes_of_source(ds, source, split)
                assert sorted(new.values("scene_id")) == sorted(old.values("scene_id")), (source, split)
        assert len(scenes_of_source(ds, "synthetic")) == len(ds.values("scene_id")[::5])
        with pytest.raises(ValueError, match="source must be"):
            scenes_of_source(ds, "simulated")
    finally:
        ds.delete()
