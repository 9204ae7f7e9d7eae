"""A full disk during import and embed: a clear error, and the dataset and its files as before.

The dataset's folders live on a small tmpfs the test mounts (needs root and ``mount``; the test
is skipped with the reason otherwise). MongoDB stays on the normal disk: it is the scene files
that fill up, as on a shared media volume.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_road_batch
from reliability_helpers import snapshot


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """``AUTOSCALE_HOME`` on a 600 KiB tmpfs; unmounted after the test."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    monkeypatch.setenv("AUTOSCALE_HOME", str(mount_point))
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _files(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def test_full_disk_during_import_leaves_dataset_and_files_unchanged(fo, small_disk, dataset_name, tmp_path, capsys):
    from autoscale_core.io import export_scenes
    from fiftyone_plugin.cli import main
    from fiftyone_plugin.engine import runs, scenes

    dataset = scenes.create_scene_dataset(dataset_name("disk"), make_road_batch(2, prefix="small"))
    before, files = snapshot(dataset), _files(small_disk)
    rows = len(scenes.get_store(dataset))
    big = export_scenes(make_road_batch(300, prefix="big"), tmp_path / "big")  # far more than 600 KiB of images

    assert main(["import", "scenes", str(big), "--dataset", dataset.name]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and dataset.name in err and "Traceback" not in err
    assert snapshot(dataset) == before
    assert _files(small_disk).keys() == files.keys() or set(_files(small_disk)) - set(files) <= {
        p for p in _files(small_disk) if "/store/" in p}  # only complete, unreferenced store shards may remain
    assert len(scenes.get_store(dataset).scene_ids()) >= rows
    assert set(str(p) for p in Path(dataset.info["autoscale_media"]).iterdir()) == set(dataset.values("filepath"))
    failed = [r for r in runs.list_runs(dataset, method="add_scenes") if r["status"] == "failed"]
    assert len(failed) == 1 and "No space left" in failed[0]["results"]["error"]

    # After freeing space, the same import works.
    small = export_scenes(make_road_batch(3, prefix="after"), tmp_path / "after")
    assert main(["import", "scenes", str(small), "--dataset", dataset.name]) == 0
    assert len(dataset) == 5


def test_full_disk_during_embed_writes_nothing(fo, small_disk, dataset_name):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import compute_scene_embeddings, repr_dir

    dataset = scenes.create_scene_dataset(dataset_name("disk-emb"), make_road_batch(4, prefix="e"))
    # Fill the disk, leaving a few KB.
    filler = small_disk / "filler.bin"
    stat = os.statvfs(small_disk)
    filler.write_bytes(b"\0" * max(stat.f_bavail * stat.f_frsize - 8192, 0))
    before = snapshot(dataset)
    with pytest.raises(ValueError, match=r"could not write the embeddings of dataset .*nothing was changed"):
        compute_scene_embeddings(dataset, "handcrafted", mc_samples=64, brain=False)
    assert snapshot(dataset) == before
    assert not dataset.has_run("emb_handcrafted")
    out_dir = repr_dir(dataset, "handcrafted")
    assert not [p for p in out_dir.parent.iterdir() if p.name.startswith(".")]  # no staging left
    assert not (out_dir / "embeddings.npy").exists()

    filler.unlink()
    compute_scene_embeddings(dataset, "handcrafted", mc_samples=0, brain=False)
    dataset.reload()
    assert np.asarray(dataset.values("emb_handcrafted")).shape[0] == 4
