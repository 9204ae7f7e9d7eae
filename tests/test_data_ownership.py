"""Ownership: a dataset's scene store and images are deleted only when no other dataset uses them.

Cases from issue #21: a FiftyOne clone overwritten through the CLI, a rename followed by a new
dataset under the old name (overwritten, then deleted), and deleting through the plugin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_road_batch


@pytest.fixture
def scenes(fo, autoscale_home):
    from fiftyone_plugin.engine import scenes

    return scenes


def _files(dataset) -> dict[str, int]:
    """Every file of the dataset's store and media folders with its size (what must survive)."""
    out = {}
    for key in ("autoscale_store", "autoscale_media"):
        root = Path(dataset.info[key])
        out.update({str(p): p.stat().st_size for p in root.rglob("*") if p.is_file()})
    return out


def _intact(dataset, files: dict[str, int], num_scenes: int) -> None:
    from fiftyone_plugin.engine import scenes

    dataset.reload()
    assert {p: Path(p).stat().st_size for p in files if Path(p).is_file()} == files, "files lost"
    assert all(Path(p).is_file() for p in dataset.values("filepath"))
    loaded = scenes.load_scenes(dataset)
    assert len(loaded) == num_scenes
    assert len(scenes.get_store(dataset)) == num_scenes


def test_clone_then_cli_overwrite_keeps_original(fo, scenes, dataset_name):
    from fiftyone_plugin.cli import main

    original = scenes.create_scene_dataset(dataset_name("orig"), make_road_batch(6))
    files = _files(original)
    copy_name = dataset_name("copy")
    original.clone(copy_name, persistent=True)

    assert main(["world", "--dataset", copy_name, "--scenes", "4", "--overwrite"]) == 0
    _intact(original, files, 6)
    copy = fo.load_dataset(copy_name)
    assert len(copy) == 4
    assert copy.info["autoscale_store"] != original.info["autoscale_store"]
    assert len(scenes.get_store(copy)) == 4  # its own store, not rows appended to the original's

    # Deleting the original now removes its folders (the overwritten copy no longer uses them).
    store = Path(original.info["autoscale_store"])
    scenes.delete_scene_dataset(original.name)
    assert not store.exists()
    _intact(copy, _files(copy), 4)


def test_delete_a_clone_through_the_plugin_keeps_the_original(fo, scenes, dataset_name):
    original = scenes.create_scene_dataset(dataset_name("orig"), make_road_batch(5))
    files = _files(original)
    clone = original.clone(dataset_name("clone"), persistent=True)
    kept = scenes.delete_scene_dataset(clone.name)
    assert not fo.dataset_exists(clone.name)
    assert original.name in kept[original.info["autoscale_store"]]
    _intact(original, files, 5)


def test_rename_then_reuse_old_name_then_overwrite_and_delete(fo, scenes, dataset_name):
    old_name, new_name = dataset_name("old"), dataset_name("renamed")
    renamed = scenes.create_scene_dataset(old_name, make_road_batch(5, prefix="r"))
    files = _files(renamed)
    renamed.name = new_name

    again = scenes.create_scene_dataset(old_name, make_road_batch(3, prefix="n"))
    assert Path(again.info["autoscale_store"]).parent != Path(renamed.info["autoscale_store"]).parent
    _intact(renamed, files, 5)

    again = scenes.create_scene_dataset(old_name, make_road_batch(4, prefix="m"), overwrite=True)
    _intact(renamed, files, 5)
    assert len(scenes.load_scenes(again)) == 4

    again_store = Path(again.info["autoscale_store"])
    scenes.delete_scene_dataset(old_name)
    assert not again_store.exists()  # its own folder is removed...
    _intact(renamed, files, 5)  # ...the renamed dataset's is not


def test_samples_merged_elsewhere_keep_their_images(fo, scenes, dataset_name):
    """Media referenced by another dataset's samples (not its info) is kept too."""
    source = scenes.create_scene_dataset(dataset_name("src"), make_road_batch(4, prefix="s"))
    media = Path(source.info["autoscale_media"])
    other = fo.Dataset(dataset_name("plain"), persistent=True)
    other.add_samples([fo.Sample(filepath=p) for p in source.values("filepath")[:2]])
    kept = scenes.delete_scene_dataset(source.name)
    assert str(media) in kept and other.name in kept[str(media)]
    assert all(Path(p).is_file() for p in other.values("filepath"))


def test_explicit_media_dir_of_another_dataset_is_refused(fo, scenes, dataset_name, tmp_path):
    first = scenes.create_scene_dataset(dataset_name("first"), make_road_batch(3), media_dir=tmp_path / "shared")
    files = _files(first)
    name = dataset_name("second")
    with pytest.raises(scenes.SceneDatasetError, match=r"media_dir .*shared.* is used by dataset"):
        scenes.create_scene_dataset(name, make_road_batch(3), media_dir=tmp_path / "shared")
    assert not fo.dataset_exists(name)
    _intact(first, files, 3)
    np.testing.assert_array_equal(sorted(first.values("scene_id")), sorted(make_road_batch(3).meta["scene_id"]))
