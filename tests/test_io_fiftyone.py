"""Recorded data through FiftyOne: `autoscale import av2|scenes`, `autoscale export scenes`, operators
(real embedded MongoDB, real datasets)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

AV2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "av2"
LOG = sorted((AV2 / "sensor_logs").iterdir())[0]


def _cli(*argv) -> int:
    from fiftyone_plugin.cli import main

    return main([str(a) for a in argv])


def test_import_av2_twice_adds_nothing_the_second_time(fo, dataset_name, autoscale_home, capsys):
    name = dataset_name("av2")
    assert _cli("import", "av2", LOG, "--dataset", name, "--stride", "1.0") == 0
    dataset = fo.load_dataset(name)
    count = len(dataset)
    assert count == 10
    assert set(dataset.distinct("source")) == {"av2"} and set(dataset.distinct("city")) == {"PIT"}
    assert all(Path(p).exists() for p in dataset.values("filepath"))
    assert _cli("import", "av2", LOG, "--dataset", name, "--stride", "1.0") == 0
    assert len(fo.load_dataset(name)) == count
    assert '"added": 0' in capsys.readouterr().out
    assert _cli("import", "av2", LOG, "--dataset", name, "--stride", "1.0", "--fail-on-existing") == 1
    assert "already in dataset" in capsys.readouterr().err
    assert len(fo.load_dataset(name)) == count
    # A denser stride adds only the new windows.
    assert _cli("import", "av2", LOG, "--dataset", name, "--stride", "0.5") == 0
    assert len(fo.load_dataset(name)) == 20


def test_bad_av2_input_writes_nothing(fo, dataset_name, autoscale_home, tmp_path, capsys):
    bad = tmp_path / "logs" / LOG.name
    shutil.copytree(LOG, bad)
    shutil.rmtree(bad / "map")
    name = dataset_name("av2bad")
    assert _cli("import", "av2", tmp_path / "logs", "--dataset", name) == 1
    err = capsys.readouterr().err
    assert "missing map" in err and LOG.name in err
    assert not fo.dataset_exists(name)
    assert not (autoscale_home / "datasets" / name).exists()


def test_export_then_import_scenes_round_trip(fo, dataset_name, autoscale_home, tmp_path):
    from fiftyone_plugin.engine.scenes import load_scenes

    source, copy = dataset_name("src"), dataset_name("copy")
    assert _cli("import", "av2", LOG, "--dataset", source, "--stride", "1.0", "--no-render") == 0
    out = tmp_path / "exported"
    assert _cli("export", "scenes", "--dataset", source, out) == 0
    assert (out / "scenes.parquet").exists()
    assert _cli("export", "scenes", "--dataset", source, out) == 1  # never overwrites silently
    assert _cli("import", "scenes", out, "--dataset", copy) == 0
    a, b = load_scenes(fo.load_dataset(source)), load_scenes(fo.load_dataset(copy))
    assert list(a.meta["scene_id"]) == list(b.meta["scene_id"])
    for key, array in a.arrays().items():
        np.testing.assert_array_equal(getattr(b, key), array, err_msg=key)


def test_operators_are_registered():
    from fiftyone_plugin import operator_classes

    names = {cls().config.name for cls in operator_classes()}
    assert {"import_av2", "import_scenes", "export_scenes"} <= names
    manifest = (Path(__file__).resolve().parents[1] / "fiftyone.yml").read_text()
    for op in ("import_av2", "import_scenes", "export_scenes"):
        assert f"- {op}" in manifest
