"""Exports never delete files they did not write (issue #21).

``autoscale export scenes DIR`` and ``autoscale export queue`` refuse an existing non-empty target
unless ``--overwrite``; with it only the previous export's files (its ``.autoscale-export.json``
manifest) are replaced; a user file placed in the target survives every case.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_road_batch


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def small_dataset(fo, autoscale_home, dataset_name):
    from fiftyone_plugin.engine import scenes

    return scenes.create_scene_dataset(dataset_name("export"), make_road_batch(4))


# ---------------------------------------------------------------------------------- core, no FiftyOne
def test_publish_into_user_folder_keeps_user_files(tmp_path):
    from autoscale_core.export_folder import ExportTargetError, publish_export

    target = tmp_path / "target"
    (target / "notes").mkdir(parents=True)
    (target / "notes" / "mine.txt").write_text("user data")
    tmp = tmp_path / "tmp1"
    (tmp / "sub").mkdir(parents=True)
    (tmp / "a.txt").write_text("export 1")
    (tmp / "sub" / "b.txt").write_text("export 1")
    with pytest.raises(ExportTargetError, match="not empty"):
        publish_export(tmp, target, overwrite=False)
    with pytest.raises(ExportTargetError, match="was not written by an export"):
        publish_export(tmp, target, overwrite=True)
    assert _tree(target) == {"notes/mine.txt": b"user data"}


def test_overwrite_replaces_only_the_previous_exports_files(tmp_path):
    from autoscale_core.export_folder import MANIFEST, ExportTargetError, publish_export

    def export(files: dict[str, str], name: str, overwrite: bool):
        tmp = tmp_path / name
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)
        return publish_export(tmp, tmp_path / "out", overwrite=overwrite)

    out = export({"a.txt": "1", "old/b.txt": "1"}, "t1", overwrite=False)
    (out / "user.txt").write_text("mine")
    (out / "old" / "user2.txt").write_text("mine too")
    (out / "empty-user-dir").mkdir()
    export({"a.txt": "2", "c.txt": "2"}, "t2", overwrite=True)
    tree = _tree(out)
    tree.pop(MANIFEST)
    assert tree == {"a.txt": b"2", "c.txt": b"2", "user.txt": b"mine", "old/user2.txt": b"mine too"}
    assert (out / "empty-user-dir").is_dir()
    # A new export file that would land on a user file: refused, nothing changed.
    before = _tree(out)
    with pytest.raises(ExportTargetError, match="user files.*user.txt"):
        export({"user.txt": "3"}, "t3", overwrite=True)
    assert _tree(out) == before


# ---------------------------------------------------------------------------------- CLI
def test_cli_export_scenes_refuses_and_keeps_user_files(small_dataset, tmp_path, capsys):
    from autoscale_core.io import import_scenes
    from fiftyone_plugin.cli import main

    target = tmp_path / "scenes"
    target.mkdir()
    (target / "README.user").write_text("do not delete")
    assert main(["export", "scenes", "--dataset", small_dataset.name, str(target)]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert _tree(target) == {"README.user": b"do not delete"}
    # --overwrite still refuses: the folder was never an export.
    assert main(["export", "scenes", "--dataset", small_dataset.name, str(target), "--overwrite"]) == 1
    assert "not written by an export" in capsys.readouterr().err
    assert _tree(target) == {"README.user": b"do not delete"}

    fresh = tmp_path / "fresh"
    assert main(["export", "scenes", "--dataset", small_dataset.name, str(fresh)]) == 0
    (fresh / "README.user").write_text("added after the export")
    assert main(["export", "scenes", "--dataset", small_dataset.name, str(fresh)]) == 1
    assert main(["export", "scenes", "--dataset", small_dataset.name, str(fresh), "--overwrite"]) == 0
    assert (fresh / "README.user").read_text() == "added after the export"
    assert len(import_scenes(fresh)) == 4


def test_cli_export_queue_refuses_and_keeps_user_files(small_dataset, tmp_path, capsys):
    from fiftyone_plugin.cli import main

    args = ["export", "queue", "--dataset", small_dataset.name, "--name", "q", "--out-dir", str(tmp_path),
            "--no-tag"]
    queue_dir = tmp_path / "q"
    queue_dir.mkdir()
    (queue_dir / "labels-in-progress.json").write_text("{}")
    assert main(args) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 1
    assert _tree(queue_dir) == {"labels-in-progress.json": b"{}"}

    (queue_dir / "labels-in-progress.json").unlink()
    assert main(args) == 0  # an empty folder is fine
    (queue_dir / "media" / "annotator-note.txt").write_text("keep me")
    assert main(args) == 1
    assert main(args + ["--overwrite"]) == 0
    assert (queue_dir / "media" / "annotator-note.txt").read_text() == "keep me"
    assert len(list((queue_dir / "media").glob("*.png"))) == 4
    assert (queue_dir / "manifest.jsonl").read_text().count("\n") == 4
