"""Hostile-input families for ``tests/test_bad_inputs.py`` (issue #21).

Each builder returns ``(id, entry, action, expect, also)`` rows that the table turns into
cases: the error must contain ``expect`` and every string of ``also`` (file, scene, field).

* interchange: 3 scenes of the table's dataset exported, one table or header broken, then
  ``autoscale import scenes --strict`` (the dataset already holds those scenes, so only a
  refusal leaves it unchanged: a silent acceptance fails the case);
* AV2: copies of the shared forecasting scenario and sensor log with one field broken;
* names and limits: dataset names that cannot be folder names, limits from the environment.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

AV2_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "av2"


def _cli_main(argv: list[str]) -> tuple:
    from fiftyone_plugin.cli import main

    return ("cli", main(argv))


# ---------------------------------------------------------------------------------- interchange
def _export(env) -> Path:
    from autoscale_core.io.interchange import export_scenes
    from fiftyone_plugin.engine import scenes

    return export_scenes(scenes.load_scenes(env.dataset.limit(3)), os.path.join(env.tmp, "tables"))


def _rewrite(folder: Path, name: str, edit: Callable[[dict], None]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(folder / f"{name}.parquet")
    data = table.to_pydict()
    edit(data)
    pq.write_table(pa.table(data).replace_schema_metadata(table.schema.metadata), folder / f"{name}.parquet")


def _header(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        import pyarrow.parquet as pq

        table = pq.read_table(folder / "scenes.parquet")
        header = json.loads(table.schema.metadata[b"autoscale"])
        edit(header)
        pq.write_table(table.replace_schema_metadata({"autoscale": json.dumps(header)}), folder / "scenes.parquet")

    return mutate


def _cell(name: str, column: str, value, row: int = 0) -> Callable[[Path], None]:
    def edit(data: dict) -> None:
        data[column][row] = value(data[column][row]) if callable(value) else value

    return lambda folder: _rewrite(folder, name, edit)


def _column(name: str, column: str, fn: Callable[[list], list]) -> Callable[[Path], None]:
    def edit(data: dict) -> None:
        data[column] = fn(data[column])

    return lambda folder: _rewrite(folder, name, edit)


def _duplicate_first_row(name: str) -> Callable[[Path], None]:
    def edit(data: dict) -> None:
        for column in data.values():
            column.insert(0, column[0])

    return lambda folder: _rewrite(folder, name, edit)


def _degenerate_lane(folder: Path) -> None:
    def edit(data: dict) -> None:
        data["xs"][0] = [1.0] * len(data["xs"][0])
        data["ys"][0] = [2.0] * len(data["ys"][0])

    _rewrite(folder, "lanes", edit)


def _import_strict(mutate: Callable[[Path], None], extra_env: dict | None = None):
    def run(env):
        folder = _export(env)
        mutate(folder)
        saved = {k: os.environ.get(k) for k in (extra_env or {})}
        os.environ.update(extra_env or {})
        try:
            return _cli_main(["import", "scenes", str(folder), "--dataset", env.name, "--strict", "--no-render"])
        finally:
            for key, value in saved.items():
                os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)

    return run


NAN, INF = float("nan"), float("inf")


def interchange_cases() -> list[tuple]:
    """(id, mutation, expect, also) for the interchange importer."""
    rows = [
        # indices out of range (silently wrapped or out of bounds before)
        ("agent-index-negative", _cell("agents", "agent_index", -1), "agent_index", ("agents.parquet", "scene ")),
        ("agent-index-huge", _cell("agents", "agent_index", 5000), "agent_index", ("agents.parquet", "limit")),
        ("agent-index-fractional", _column("agents", "agent_index", lambda c: [x + 0.5 for x in c]), "agent_index", ("agents.parquet",)),
        ("agent-state-index-negative", _cell("agent_states", "agent_index", -3), "agent_index", ("agent_states.parquet",)),
        ("agent-state-step-high", _cell("agent_states", "step", 99), "step", ("agent_states.parquet",)),
        ("agent-state-step-negative", _cell("agent_states", "step", -1), "step", ("agent_states.parquet",)),
        ("ego-step-high", _cell("ego_states", "step", 13), "step", ("ego_states.parquet",)),
        ("lane-index-negative", _cell("lanes", "lane_index", -1), "lane_index", ("lanes.parquet",)),
        ("lane-index-huge", _cell("lanes", "lane_index", 500_000), "lane_index", ("lanes.parquet",)),
        ("successor-out-of-range", _cell("lanes", "successors", [3000]), "successors", ("lanes.parquet",)),
        ("successor-negative", _cell("lanes", "successors", [-5]), "successors", ("lanes.parquet",)),
        ("successor-to-missing-lane", _cell("lanes", "successors", [900]), "lane_successors", ("scene ",)),
        ("left-neighbor-out-of-range", _cell("lanes", "left_neighbor", 7777), "left_neighbor", ("lanes.parquet",)),
        ("left-neighbor-to-missing-lane", _cell("lanes", "left_neighbor", 777), "lane_neighbors", ("scene ",)),
        ("right-neighbor-negative", _cell("lanes", "right_neighbor", -9), "right_neighbor", ("lanes.parquet",)),
        ("tl-code-out-of-range", _cell("lanes", "tl", lambda v: [9] * len(v)), "tl", ("lanes.parquet",)),
        ("tl-wrong-length", _cell("lanes", "tl", lambda v: v[:3]), "tl", ("lanes.parquet",)),
        ("route-lane-out-of-range", _cell("routes", "lane_indices", [12345]), "lane_indices", ("routes.parquet",)),
        ("route-lane-negative", _cell("routes", "lane_indices", [-2]), "lane_indices", ("routes.parquet",)),
        ("route-lane-to-missing-lane", _cell("routes", "lane_indices", [400]), "route_lanes", ("scene ",)),
        ("polygon-index-huge", _cell("drivable_polygons", "polygon_index", 99_999), "polygon_index", ("drivable_polygons.parquet",)),
        ("crosswalk-index-negative", _cell("crosswalks", "crosswalk_index", -1), "crosswalk_index", ("crosswalks.parquet",)),
        # lists: lengths and limits
        ("lane-one-point", _cell("lanes", "xs", lambda v: v[:1]), "xs", ("lanes.parquet", "2..")),
        ("lane-xs-ys-mismatch", _cell("lanes", "ys", lambda v: v[:-1]), "same length", ("lanes.parquet",)),
        ("lane-too-many-points", _cell("lanes", "xs", lambda v: list(np.linspace(0, 1, 5000))), "xs", ("lanes.parquet",)),
        ("lane-degenerate-points", _degenerate_lane, "lanes", ("2 distinct points",)),
        ("crosswalk-three-corners", _cell("crosswalks", "xs", lambda v: v[:3]), "crosswalk corners", ("crosswalks.parquet",)),
        ("route-xs-ys-mismatch", _cell("routes", "ys", lambda v: v[:-1]), "same length", ("routes.parquet",)),
        # non-finite and absurd values
        ("ego-x-nan", _cell("ego_states", "x", NAN), "ego", ("scene ",)),
        ("ego-heading-inf", _cell("ego_states", "heading", INF), "ego", ("scene ",)),
        ("ego-x-string", _column("ego_states", "x", lambda c: [str(v) for v in c]), "'x' must be numeric", ("ego_states.parquet",)),
        ("ego-x-not-a-number-text", _column("ego_states", "x", lambda c: ["nope"] * len(c)), "'x' must be numeric", ("ego_states.parquet",)),
        ("ego-x-null", _cell("ego_states", "x", None), "null", ("ego_states.parquet", "'x'")),
        ("agent-x-far-away", _cell("agent_states", "x", 1e12), "coordinates", ("agents",)),
        ("lane-x-nan", _cell("lanes", "xs", lambda v: [NAN] * len(v)), "lanes", ("finite",)),
        ("lane-width-zero", _cell("lanes", "width", 0.0), "lane_width", ("scene ",)),
        ("lane-width-negative", _cell("lanes", "width", -3.5), "lane_width", ("scene ",)),
        ("lane-speed-limit-negative", _cell("lanes", "speed_limit", -1.0), "lane_speed_limit", ("scene ",)),
        ("route-x-nan", _cell("routes", "xs", lambda v: [NAN] * len(v)), "route_polyline", ("scene ",)),
        ("route-duplicated", _duplicate_first_row("routes"), "route row", ("routes.parquet",)),
        ("agent-length-negative", _cell("agents", "length", -4.5), "agent_size", ("scene ",)),
        ("agent-width-huge", _cell("agents", "width", 1e9), "agent_size", ("100",)),
        ("agent-length-nan", _cell("agents", "length", NAN), "agent_size", ("scene ",)),
        ("agent-duplicated", _duplicate_first_row("agents"), "appears more than once", ("agents.parquet",)),
        ("agent-state-duplicated", _duplicate_first_row("agent_states"), "appears more than once", ("agent_states.parquet",)),
        ("ego-state-duplicated", _duplicate_first_row("ego_states"), "appears more than once", ("ego_states.parquet",)),
        ("ego-length-zero", _cell("scenes", "ego_length", 0.0), "ego_size", ("scene ",)),
        ("ego-width-nan", _cell("scenes", "ego_width", NAN), "ego_size", ("scene ",)),
        ("origin-inf", _cell("scenes", "origin_x", INF), "global_pose", ("scene ",)),
        ("scene-id-duplicated", _duplicate_first_row("scenes"), "appears more than once", ("scenes.parquet",)),
        # header sizes: refused before any allocation
        ("header-ten-million-steps", _header(lambda h: h.update(num_steps=10_000_000)), "time steps", ("limit",)),
        ("header-ten-million-agents", _header(lambda h: h.setdefault("dims", {}).update(N=10_000_000)), "agents per scene", ("limit",)),
        ("header-dt-negative", _header(lambda h: h.update(dt=-0.5)), "dt", ("scenes.parquet",)),
        ("header-dt-text", _header(lambda h: h.update(dt="fast")), "dt", ("scenes.parquet",)),
        ("header-history-too-long", _header(lambda h: h.update(history_steps=20)), "history_steps", ("scenes.parquet",)),
        ("header-dims-negative", _header(lambda h: h.setdefault("dims", {}).update(N=-4)), "dims", ("scenes.parquet",)),
        ("header-time-span", _header(lambda h: h.update(dt=5000.0)), "max_time_span_s", ("scenes.parquet",)),
    ]
    return rows


def interchange_env_cases() -> list[tuple]:
    """Limits changed through the environment (documented configuration)."""
    return [
        ("limit-env-agents", _import_strict(lambda f: None, {"AUTOSCALE_LIMIT_MAX_AGENTS": "1"}), "agent_index",
         ("limit 1",)),
        ("limit-env-batch-bytes", _import_strict(lambda f: None, {"AUTOSCALE_LIMIT_MAX_BATCH_BYTES": "1000"}),
         "max_batch_bytes", ("GiB",)),
        ("limit-env-not-a-number", _import_strict(lambda f: None, {"AUTOSCALE_LIMIT_MAX_LANES": "many"}),
         "AUTOSCALE_LIMIT_MAX_LANES", ("not a number",)),
    ]


# ---------------------------------------------------------------------------------- AV2
def _av2_copy(env, kind: str) -> Path:
    source = next((AV2_ROOT / ("forecasting" if kind == "scenario" else "sensor_logs")).iterdir())
    target = Path(env.tmp) / "av2" / source.name
    shutil.copytree(source, target)
    return target


def _av2_case(kind: str, mutate: Callable[[Path], None], *extra: str):
    def run(env):
        folder = _av2_copy(env, kind)
        mutate(folder)
        return _cli_main(["import", "av2", str(folder), "--dataset", env.name, "--no-render", *extra])

    return run


def _feather_edit(file: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        import pyarrow as pa
        import pyarrow.feather as feather

        data = feather.read_table(folder / file).to_pydict()
        edit(data)
        feather.write_feather(pa.table(data), folder / file)

    return mutate


def _scenario_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = next(folder.glob("scenario_*.parquet"))
        table = pq.read_table(path)
        data = table.to_pydict()
        edit(data)
        pq.write_table(pa.table(data).replace_schema_metadata(table.schema.metadata), path)

    return mutate


def _set_all(column: str, fn) -> Callable[[dict], None]:
    return lambda data: data.__setitem__(column, [fn(i, v) for i, v in enumerate(data[column])])


def av2_cases() -> list[tuple]:
    if not AV2_ROOT.is_dir():
        return []
    av = lambda data, value: lambda i, v: value if data["track_id"][i] == "AV" else v  # noqa: E731
    return [
        ("av2-scenario-step-negative", _av2_case("scenario", _scenario_edit(_set_all("timestep", lambda i, v: v - 5))),
         "timestep", ("scenario_",)),
        ("av2-scenario-step-huge", _av2_case("scenario", _scenario_edit(lambda d: d["timestep"].__setitem__(0, 10**9))),
         "max_time_span_s", ("scenario_",)),
        ("av2-scenario-ego-nan-strict",
         _av2_case("scenario", _scenario_edit(lambda d: _set_all("position_x", av(d, NAN))(d)), "--strict"),
         "ego", ("scenario_",)),
        ("av2-sensor-pose-nan", _av2_case("sensor", _feather_edit("city_SE3_egovehicle.feather",
                                                                   lambda d: d["tx_m"].__setitem__(3, NAN))),
         "finite", ("city_SE3_egovehicle.feather",)),
        ("av2-sensor-duplicate-timestamp-other-pose", _av2_case("sensor", _feather_edit(
            "city_SE3_egovehicle.feather",
            lambda d: [d[k].insert(1, d[k][0] if k == "timestamp_ns" else d[k][0] + 5.0) for k in list(d)])),
         "repeats", ("city_SE3_egovehicle.feather",)),
        ("av2-sensor-huge-time-gap", _av2_case("sensor", _feather_edit(
            "annotations.feather", lambda d: d["timestamp_ns"].__setitem__(0, d["timestamp_ns"][0] - 10**15))),
         "poses do not cover", ("city_SE3_egovehicle.feather",)),
        ("av2-sensor-pose-gap", _av2_case("sensor", _feather_edit(
            "city_SE3_egovehicle.feather", _set_all("timestamp_ns", lambda i, v: v + i * 10**13))),
         "max_time_span_s", ("city_SE3_egovehicle.feather",)),
    ]


# ---------------------------------------------------------------------------------- names
def name_cases() -> list[tuple]:
    def world(name: str):
        return lambda env: _cli_main(["world", "--scenes", "2", "--dataset", name])

    return [
        ("name-too-long", world("n" * 300), "folder name", ()),
        ("name-hidden-dot", world(".hidden"), "folder name", ()),
        ("name-backslash", world("a\\b"), "folder name", ()),
        ("name-nul", world("a\x00b"), "folder name", ()),
    ]


# ---------------------------------------------------------------------------------- checkpoints
def _checkpoint(env, name: str, edit_header) -> str:
    """A real (tiny) checkpoint whose JSON header is edited."""
    import torch
    from conftest import make_road_batch

    from autoscale_core.planning import train_planner

    path = os.path.join(env.tmp, name)
    train_planner(make_road_batch(4), steps=2, device="cpu").save(path)
    blob = torch.load(path, weights_only=True)
    header = json.loads(blob["header"])
    blob["header"] = json.dumps(edit_header(header))
    torch.save(blob, path)
    return path


def checkpoint_cases() -> list[tuple]:
    def load(name, edit):
        def run(env):
            from autoscale_core.planning import load_planner

            load_planner(_checkpoint(env, name, edit))

        return run

    def huge_hidden(h):
        h["config"]["hidden"] = 10**7
        return h

    return [
        ("checkpoint-header-list", load("list.pt", lambda h: [h]), "list.pt", ("checkpoint format",)),
        ("checkpoint-huge-hidden", load("huge.pt", huge_hidden), "huge.pt", ("do not fit",)),
        ("checkpoint-no-config", load("noconf.pt", lambda h: {k: v for k, v in h.items() if k != "config"}),
         "noconf.pt", ("config",)),
    ]
