"""Failure triage in the App: why did a planner score low on a scene?

After an evaluation (``eval_<key>_*`` fields, see ``engine.planning.evaluate_planner_on_view``)
:func:`apply_planner_triage` makes the result inspectable in the App:

* ``eval_<key>_trajectory`` — the planner's plan as an overlay beside ``ego_future`` (written by
  the evaluation with the scores), one colour per planner, listed with the other overlays;
* a sidebar group ``planner <key>`` holding the planner's EPDMS and sub-scores, each field with a
  one-line description the App shows on hover (:data:`SUBSCORE_MEANINGS`);
* saved views ``worst-<key>`` (lowest EPDMS first) and, when the scenes are clustered,
  ``worst-<key>-<cluster>`` per cluster of the latest ``cluster_*`` field.

Everything here is App configuration (colour scheme, sidebar groups, field descriptions, saved
views); sample values are written by the evaluation itself through ``scenes.write_scene_fields``.
"""

from __future__ import annotations

import re

import fiftyone as fo
import numpy as np
from fiftyone import ViewField as F

from autoscale_core import render as bev

TRAJECTORY_SUFFIX = "trajectory"
WORST_LIMIT = 50  # scenes per "worst scenes" saved view
WORST_PREFIX = "worst-"

# One line per EPDMS sub-score (NAVSIM abbreviations), shown as the field's description.
SUBSCORE_MEANINGS = {
    "epdms": "EPDMS in [0, 1]: product of the hard penalties (NC, DAC, DDC, TLC) times the weighted mean of EP, TTC, LK, HC, EC",
    "pdms": "PDMS v1 in [0, 1] on unfiltered metrics (the NAVSIM v1 score)",
    "nc": "no at-fault collision: 1 none, 0.5 with a static object, 0 at-fault collision",
    "dac": "drivable-area compliance: 1 if the ego footprint stays on drivable area",
    "ddc": "driving-direction compliance: 0 if > 6 m driven against the lane direction, 0.5 if > 2 m",
    "tlc": "traffic-light compliance: 0 if the ego enters a lane on red",
    "ep": "ego progress along the route relative to the rule planner's best safe progress (0-1)",
    "ttc": "time to collision: 0 if a constant-velocity projection (0.3-0.9 s) would hit an agent",
    "lk": "lane keeping: 0 if > 0.5 m from every aligned lane centre for > 2 s outside intersections",
    "hc": "history comfort: accelerations and jerks within nuPlan's comfort bounds",
    "ec": "extended comfort: the plan is consistent with the previous frame's plan (1 without one)",
    "l2_1s": "L2 distance (m) between the plan and the logged future at t = 1 s",
    "l2_2s": "L2 distance (m) between the plan and the logged future at t = 2 s",
    "l2_3s": "L2 distance (m) between the plan and the logged future at t = 3 s",
    "collision": "any collision of the simulated ego with an agent, at fault or not",
    TRAJECTORY_SUFFIX: "the planner's plan (t = 0.5 ... 4 s) drawn over the scene, beside ego_future (the logged plan)",
}
_EVAL_FIELD = re.compile(r"^eval_(?P<key>.+)_(?P<sub>" + "|".join(sorted(SUBSCORE_MEANINGS, key=len, reverse=True)) + r")$")


def trajectory_field(key: str) -> str:
    return f"eval_{key}_{TRAJECTORY_SUFFIX}"


def trajectory_overlays(trajectories: np.ndarray, starts: np.ndarray, key: str, extent_m: float) -> list[fo.Polylines]:
    """One ``Polylines`` per scene: the plan from the ego's t0 position, clipped to the image.

    Args:
        trajectories: (S, F, 3) planned poses (x, y, heading) in the scene frame, metres / rad.
        starts: (S, 2) ego position at t0 in the scene frame (m), the plan's first point.
        key: the evaluation key, used as the label (so the App's tooltip names the planner).
        extent_m: the BEV image's extent (``dataset.info["autoscale_bev_extent_m"]``).
    """
    from .scenes import clip_polylines

    points = np.concatenate([np.asarray(starts, np.float64)[:, None], np.asarray(trajectories)[..., :2]], axis=1)
    shapes = clip_polylines(bev.scene_to_image(points, extent_m))
    return [fo.Polylines(polylines=[fo.Polyline(label=key, points=s)] if s else []) for s in shapes]


def evaluated_keys(dataset: fo.Dataset) -> list[str]:
    """Evaluation keys with an ``eval_<key>_epdms`` field, in the order their runs were recorded."""
    from .runs import list_runs
    from .summary import evaluated_planners

    return evaluated_planners(dataset.get_field_schema(), list_runs(dataset))


def planner_colour(dataset: fo.Dataset, key: str) -> str:
    """A stable colour per evaluated planner: the n-th evaluated key gets the n-th palette colour."""
    keys = evaluated_keys(dataset)
    index = keys.index(key) if key in keys else len(keys)
    return bev.hex_colour(bev.PLANNER_COLOURS[index % len(bev.PLANNER_COLOURS)])


def apply_planner_triage(dataset: fo.Dataset, key: str, *, limit: int = WORST_LIMIT) -> list[str]:
    """Colour, group, describe and save worst-scene views for evaluation ``key``; returns the views saved."""
    _describe_fields(dataset, key)
    _colour_trajectory(dataset, key)
    _sidebar_group(dataset, key)
    return save_worst_views(dataset, key, limit=limit)


def _describe_fields(dataset: fo.Dataset, key: str) -> None:
    for name in dataset.get_field_schema():
        match = _EVAL_FIELD.match(name)
        if match and match["key"] == key:
            field = dataset.get_field(name)
            field.description = f"{key}: {SUBSCORE_MEANINGS[match['sub']]}"
            field.save()


def _colour_trajectory(dataset: fo.Dataset, key: str) -> None:
    path = trajectory_field(key)
    if not dataset.has_field(path):
        return
    scheme = dataset.app_config.color_scheme or fo.ColorScheme(color_by="value", fields=[])
    fields = [f for f in (scheme.fields or []) if f.get("path") != path]
    fields.append({"path": path, "fieldColor": planner_colour(dataset, key), "colorByAttribute": "label",
                   "valueColors": [{"value": key, "color": planner_colour(dataset, key)}]})
    scheme.fields = fields
    dataset.app_config.color_scheme = scheme
    active = dataset.app_config.active_fields
    if active is not None and path not in (active.paths or []):
        active.paths = [*(active.paths or []), path]  # shown by default, toggled in the sidebar
    dataset.save()


def _sidebar_group(dataset: fo.Dataset, key: str) -> None:
    """One collapsed sidebar group ``planner <key>`` with the planner's scores (the trajectory
    overlay stays among the labels, beside ``ego_future``)."""
    from fiftyone.core.odm.dataset import SidebarGroupDocument

    groups = dataset.app_config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(dataset)
    planner_fields = sorted(n for n in dataset.get_field_schema()
                            if n.startswith(f"eval_{key}_") and n != trajectory_field(key))
    name = f"planner {key}"
    moved = set(planner_fields)
    groups = [SidebarGroupDocument(name=g.name, paths=[p for p in g.paths if p not in moved], expanded=g.expanded)
              for g in groups if g.name != name]
    groups.append(SidebarGroupDocument(name=name, paths=planner_fields, expanded=False))
    dataset.app_config.sidebar_groups = groups
    dataset.save()


def latest_cluster_field(dataset: fo.Dataset) -> str | None:
    """The ``cluster_*`` string field whose run was recorded last (None without clusters)."""
    from .runs import list_runs

    clusters = [n for n, f in dataset.get_field_schema().items()
                if n.startswith("cluster_") and isinstance(f, fo.StringField)]
    if not clusters:
        return None
    order = {r["key"]: i for i, r in enumerate(list_runs(dataset))}
    return max(sorted(clusters), key=lambda n: max(order.get(n, -1), order.get(n.rsplit("_", 1)[0], -1)))


def _view_name(*parts: str) -> str:
    """A saved-view name from parts (FiftyOne slugs names: keep letters, digits and '-')."""
    return WORST_PREFIX + "-".join(re.sub(r"[^A-Za-z0-9]+", "-", p).strip("-") for p in parts)


def save_worst_views(dataset: fo.Dataset, key: str, *, limit: int = WORST_LIMIT) -> list[str]:
    """Saved views of the ``limit`` lowest-EPDMS scenes of ``key``, overall and per cluster.

    Views are saved by their stages (re-evaluated when opened), replacing older views of the
    same name; returns their names.
    """
    epdms = f"eval_{key}_epdms"
    if not dataset.has_field(epdms):
        raise ValueError(f"dataset {dataset.name!r} has no field {epdms!r}: evaluate planner {key!r} first")
    scored = dataset.exists(epdms)
    views = {_view_name(key): scored.sort_by(epdms).limit(limit)}
    cluster_field = latest_cluster_field(dataset)
    if cluster_field:
        for cluster in sorted(str(c) for c in dataset.distinct(cluster_field)):
            views[_view_name(key, cluster)] = scored.match(F(cluster_field) == cluster).sort_by(epdms).limit(limit)
    for name, view in views.items():
        dataset.save_view(name, view, description=f"lowest {epdms} first", overwrite=True)
    return list(views)
