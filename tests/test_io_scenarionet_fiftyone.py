"""ScenarioNet scenes through FiftyOne: `autoscale import scenarionet`, the import_scenarionet
operator (real embedded MongoDB, real datasets, the real shared nuScenes/Waymo files)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scenarionet"
SMALL = SHARED / "nuscenes" / "sd_nuscenes_v1.0-mini_scene-0757.pkl"
WAYMO = next((SHARED / "waymo").glob("*.pkl"), None) if SHARED.is_dir() else None

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/scenarionet is absent")


def _cli(*argv) -> int:
    from fiftyone_plugin.cli import main

    return main([str(a) for a in argv])


def _bad_copy(folder: Path, name: str) -> Path:
    """SMALL with an all-NaN ego: a file the importer must refuse."""
    from autoscale_core.io.scenarionet import load_pickle

    scenario = load_pickle(SMALL)
    scenario["tracks"]["ego"]["state"]["position"][:] = np.nan
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(pickle.dumps(scenario, protocol=4))
    return folder / name


def test_import_twice_adds_nothing_and_fields_are_set(fo, dataset_name, autoscale_home, capsys):
    name = dataset_name("sn")
    assert _cli("import", "scenarionet", SMALL, "--dataset", name, "--stride", "1.0") == 0
    dataset = fo.load_dataset(name)
    count = len(dataset)
    assert count >= 10
    assert set(dataset.distinct("source")) == {"nuscenes"}
    assert set(dataset.distinct("log_id")) == {"scene-0757"}
    assert all(Path(p).exists() for p in dataset.values("filepath"))
    assert _cli("import", "scenarionet", SMALL, "--dataset", name, "--stride", "1.0") == 0
    assert '"added": 0' in capsys.readouterr().out
    assert len(fo.load_dataset(name)) == count
    assert _cli("import", "scenarionet", SMALL, "--dataset", name, "--stride", "0.5", "--no-render") == 0
    assert len(fo.load_dataset(name)) == 2 * count - 1  # only the new windows are added


def test_a_failed_file_leaves_the_dataset_as_it_was(fo, dataset_name, autoscale_home, tmp_path, capsys):
    name = dataset_name("snbad")
    folder = tmp_path / "scenes"
    _bad_copy(folder, "a_bad.pkl")
    (folder / SMALL.name).write_bytes(SMALL.read_bytes())
    assert _cli("import", "scenarionet", folder, "--dataset", name, "--no-render") == 1
    err = capsys.readouterr().err
    assert "a_bad.pkl" in err and "no valid finite step" in err
    assert not fo.dataset_exists(name)
    # The good file alone, then the folder again leniently: the bad file is skipped and reported.
    assert _cli("import", "scenarionet", SMALL, "--dataset", name, "--no-render") == 0
    before = sorted(fo.load_dataset(name).values("scene_id"))
    assert _cli("import", "scenarionet", folder, "--dataset", name, "--no-render", "--lenient") == 0
    out = capsys.readouterr().out
    assert "skipped {'bad file': 1}" in out and "a_bad.pkl" in out
    assert sorted(fo.load_dataset(name).values("scene_id")) == before


def test_forbidden_global_is_refused_on_the_cli(fo, dataset_name, autoscale_home, tmp_path, capsys):
    payload = pickle.dumps({"x": 1}, protocol=2).replace(b"}q\x00", b"cos\nsystem\nq\x00")  # GLOBAL os.system
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(payload)
    name = dataset_name("snevil")
    assert _cli("import", "scenarionet", bad, "--dataset", name) == 1
    assert "refused to unpickle global os.system" in capsys.readouterr().err
    assert not fo.dataset_exists(name)


def test_operator_form_run_and_registration(fo, dataset_name, autoscale_home, plugin_link):
    from operator_form_helpers import _execute, _form

    from fiftyone_plugin import operator_classes
    from fiftyone_plugin.operators.scenarionet import ImportScenarioNet

    names = {cls().config.name for cls in operator_classes()}
    assert "import_scenarionet" in names
    manifest = (Path(__file__).resolve().parents[1] / "fiftyone.yml").read_text()
    assert "- import_scenarionet" in manifest

    name = dataset_name("snop")
    props = _form(ImportScenarioNet, None, {"path": str(SMALL.parent.parent / "waymo"), "dataset": name})
    assert "1 ScenarioNet scene file(s) found" in props["found"].view.label
    props = _form(ImportScenarioNet, None, {"path": "/nonexistent/x", "dataset": name})
    assert props["error"].invalid and "does not exist" in props["error"].error_message
    result = _execute("import_scenarionet", None,
                      {"path": str(WAYMO), "dataset": name, "render": False, "stride_s": 1.0})
    assert result.error is None, result.error_message
    dataset = fo.load_dataset(name)
    assert result.result["added"] == len(dataset) >= 10
    assert set(dataset.distinct("source")) == {"waymo"}


def test_export_a_selection_and_import_it_back_identically(fo, dataset_name, autoscale_home, tmp_path, capsys):
    from fiftyone_plugin.engine.scenes import load_scenes

    source, copy = dataset_name("snsrc"), dataset_name("sncopy")
    assert _cli("import", "scenarionet", SMALL, "--dataset", source, "--stride", "2.0", "--no-render") == 0
    dataset = fo.load_dataset(source)
    chosen = dataset.take(4, seed=0)
    chosen.tag_samples("sel:pick")
    out = tmp_path / "picked"
    assert _cli("export", "scenarionet", "--dataset", source, "--selection", "pick", out) == 0
    assert len(list(out.glob("sd_autoscale_*.pkl"))) == 4
    assert _cli("export", "scenarionet", "--dataset", source, "--selection", "pick", out) == 1
    assert "not empty" in capsys.readouterr().err
    assert _cli("export", "scenarionet", "--dataset", source, "--selection", "nothing", tmp_path / "x") == 1
    assert "no selection 'nothing'" in capsys.readouterr().err
    assert _cli("import", "scenarionet", out, "--dataset", copy, "--no-render") == 0
    a = load_scenes(dataset.match_tags("sel:pick").sort_by("scene_id"))
    b = load_scenes(fo.load_dataset(copy).sort_by("scene_id"))
    assert list(a.meta["scene_id"]) == list(b.meta["scene_id"])
    for key, array in a.arrays().items():
        np.testing.assert_array_equal(getattr(b, key), array, err_msg=key)


def test_demo_steps_add_the_real_scenes_and_evaluate_on_them(fo, dataset_name, autoscale_home, monkeypatch, capsys):
    from types import SimpleNamespace

    from fiftyone import ViewField as F

    from autoscale_core.world import generate_world
    from fiftyone_plugin.cli import DEMO_STEPS
    from fiftyone_plugin.cli.scenarionet import demo_eval_step, demo_import_step
    from fiftyone_plugin.engine import scenes

    assert DEMO_STEPS[0] == "fiftyone_plugin.cli.scenarionet:demo_import_step"
    dataset = scenes.create_scene_dataset(dataset_name("demoreal"), generate_world(12, seed=0), render_images=False)
    args = SimpleNamespace(seed=0)
    result = demo_import_step(dataset, args)
    real = dataset.match(F("split") == "real")
    assert set(result["real scenes"]) == {"av2", "nuscenes", "waymo"} and len(real) >= 50
    assert len(dataset.match(F("split") == "real").match(F("source") == "world")) == 0
    assert "reused" in demo_import_step(dataset, args)["real scenes"]
    scores = demo_eval_step(dataset, args)  # no trained planner here: rule and constant velocity
    assert {"real EPDMS rule on nuscenes", "real EPDMS cv on waymo"} <= set(scores)
    assert real.count("eval_real_rule_epdms") == len(real)
    monkeypatch.setenv("AUTOSCALE_SHARED_DATA", "/nonexistent/shared/data")
    other = scenes.create_scene_dataset(dataset_name("demonoreal"), generate_world(4, seed=0), render_images=False)
    assert demo_import_step(other, args) == {"real scenes": "skipped (no shared data)"}
    assert "is absent" in capsys.readouterr().out


def test_large_folders_default_to_a_delegated_run(tmp_path):
    from fiftyone.operators.executor import ExecutionContext

    from fiftyone_plugin.operators.scenarionet import DELEGATE_FROM_FILES, ImportScenarioNet

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(DELEGATE_FROM_FILES + 1):
        (folder / f"scene_{i}.pkl").symlink_to(SMALL)
    operator = ImportScenarioNet()
    assert operator.resolve_delegation(ExecutionContext({"params": {"path": str(folder)}})) is True
    assert operator.resolve_delegation(ExecutionContext({"params": {"path": str(SMALL)}})) is False
    assert operator.resolve_delegation(ExecutionContext({"params": {"path": str(tmp_path / "none")}})) is None


def test_export_operator_writes_the_target_and_refuses_a_full_folder(fo, dataset_name, autoscale_home, tmp_path, plugin_link):
    from operator_form_helpers import _execute, _rejects

    from fiftyone_plugin.engine.scenes import delete_scene_dataset

    name = dataset_name("snexp")
    assert _cli("import", "scenarionet", SMALL, "--dataset", name, "--stride", "4.0", "--no-render") == 0
    dataset = fo.load_dataset(name)
    out = tmp_path / "sn"
    result = _execute("export_scenarionet", dataset, {"path": str(out)})
    assert result.error is None, result.error_message
    assert result.result["scenes"] == len(dataset) == len(list(out.glob("sd_autoscale_*.pkl")))
    _rejects("export_scenarionet", dataset, {"path": str(out)}, "is not an empty folder")
    manifest = (Path(__file__).resolve().parents[1] / "fiftyone.yml").read_text()
    assert "- export_scenarionet" in manifest
    delete_scene_dataset(name)
