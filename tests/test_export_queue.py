"""Annotation-queue export (core, no FiftyOne): formats, ranking, idempotence, bad input."""

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from autoscale_core.export import ExportError, QueueItem, export_queue


def _items(tmp_path: Path, n: int = 3) -> list[QueueItem]:
    items = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(path)
        items.append(QueueItem(scene_id=f"s{i}", media_path=str(path), rank=n - i,
                               score=float(i), reasons={"cluster": i % 2, "value_s": 0.5 * i}))
    return items


def test_export_writes_every_format_in_rank_order(tmp_path):
    paths = export_queue(_items(tmp_path), tmp_path / "out", "queue-a")
    assert set(paths) == {"jsonl", "csv", "cvat", "labelstudio"}
    rows = [json.loads(line) for line in Path(paths["jsonl"]).read_text().splitlines()]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["scene_id"] for r in rows] == ["s2", "s1", "s0"]
    assert rows[0]["reason_cluster"] == 0 and rows[0]["reason_value_s"] == 1.0
    queue_dir = Path(paths["jsonl"]).parent
    assert all((queue_dir / r["media"]).is_file() for r in rows)
    with open(paths["csv"]) as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["scene_id"] for r in csv_rows] == ["s2", "s1", "s0"]
    xml = Path(paths["cvat"]).read_text()
    assert xml.count("<image ") == 3 and "reason_cluster" in xml
    tasks = json.loads(Path(paths["labelstudio"]).read_text())
    assert [t["data"]["scene_id"] for t in tasks] == ["s2", "s1", "s0"]


def test_reexport_with_overwrite_is_idempotent(tmp_path):
    items = _items(tmp_path)
    first = export_queue(items, tmp_path / "out", "q")
    content = {k: Path(p).read_bytes() for k, p in first.items()}
    with pytest.raises(ExportError, match="exists and is not empty"):
        export_queue(items, tmp_path / "out", "q")
    second = export_queue(items, tmp_path / "out", "q", overwrite=True)
    assert {k: Path(p).read_bytes() for k, p in second.items()} == content
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["q"]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(ExportError):
        export_queue(_items(tmp_path), tmp_path / "out", name)


def test_empty_queue_and_missing_media_are_clear_errors(tmp_path):
    with pytest.raises(ExportError, match="empty"):
        export_queue([], tmp_path / "out", "q")
    items = _items(tmp_path)
    Path(items[0].media_path).unlink()
    with pytest.raises(ExportError, match="missing"):
        export_queue(items, tmp_path / "out", "q")
    assert not (tmp_path / "out" / "q").exists()


def test_failed_export_keeps_previous_one(tmp_path):
    items = _items(tmp_path)
    export_queue(items, tmp_path / "out", "q")
    with pytest.raises(ExportError):
        export_queue(items, tmp_path / "out", "q", formats=("jsonl", "pdf"))
    assert (tmp_path / "out" / "q" / "manifest.jsonl").is_file()
