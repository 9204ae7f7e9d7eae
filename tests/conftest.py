"""Shared fixtures: a private embedded MongoDB, unique dataset names, small scene batches.

Tests use FiftyOne's real embedded ``mongod`` but never the user's database: unless
``FIFTYONE_DATABASE_URI`` points at an external MongoDB, ``FIFTYONE_DATABASE_DIR`` is set to a
session temp dir **before** fiftyone is imported, so a fresh mongod serves only this session.
With an external MongoDB, dataset names are unique per session and every dataset a test
creates through ``dataset_name`` is deleted afterwards.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import uuid

import numpy as np
import pytest

_SESSION_DIR = tempfile.mkdtemp(prefix="autoscale-tests-")
if not os.environ.get("FIFTYONE_DATABASE_URI"):
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(_SESSION_DIR, "db")
# Keep test media / stores and FiftyOne's own config away from the user's home.
os.environ["AUTOSCALE_HOME"] = os.path.join(_SESSION_DIR, "home")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The tests use this checkout's plugin, whatever the user configured (see plugin_link).
os.environ["FIFTYONE_PLUGINS_DIR"] = os.path.join(REPO_ROOT, ".plugins")

_SESSION_TAG = uuid.uuid4().hex[:6]




def _remove_session_dir() -> None:
    """Stop the session's private mongod (if we started it), then delete its files.

    Registered before fiftyone is imported, so it runs after fiftyone's own exit handlers
    (atexit is last-in, first-out).
    """
    database = sys.modules.get("fiftyone.core.odm.database")
    service = getattr(database, "_db_service", None) if database else None
    child = getattr(service, "child", None)
    if child is not None and not os.environ.get("FIFTYONE_DATABASE_URI"):
        try:
            child.stdin.close()  # the service stops mongod when its last client leaves
            child.wait(timeout=20)
        except Exception:  # already gone, or slow: leave the folder rather than crash mongod
            return
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


atexit.register(_remove_session_dir)


@pytest.fixture(scope="session")
def fo():
    """The ``fiftyone`` module, connected to the session's private database."""
    import fiftyone

    return fiftyone


@pytest.fixture
def autoscale_home(tmp_path, monkeypatch):
    """A fresh ``AUTOSCALE_HOME`` (media + scene stores) for one test."""
    home = tmp_path / "autoscale-home"
    monkeypatch.setenv("AUTOSCALE_HOME", str(home))
    return home


@pytest.fixture
def dataset_name(fo):
    """Factory of unique dataset names; every dataset made under them is deleted after the test."""
    names: list[str] = []

    def make(prefix: str = "test") -> str:
        name = f"{prefix}-{_SESSION_TAG}-{uuid.uuid4().hex[:8]}"
        names.append(name)
        return name

    yield make
    for name in names:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def make_road_batch(num_scenes: int, prefix: str = "hand", seed: int = 0):
    """A hand-built batch: straight two-lane one-way roads with a lead car and a pedestrian.

    Used when the world generator is not importable, and for exact checks where the content of
    each scene must be known.
    """
    from autoscale_core.scene import CYCLIST, PEDESTRIAN, TL_GREEN, TL_RED, VEHICLE, empty_batch

    rng = np.random.default_rng(seed)
    b = empty_batch(num_scenes, num_agents=3, num_lanes=3, num_crosswalks=1, num_polygons=1, route_lanes=2)
    times = b.times
    for i in range(num_scenes):
        speed = 8.0 + 4.0 * rng.random()
        b.ego[i, :, 0] = speed * times
        b.ego[i, :, 3] = speed
        b.ego_size[i] = (4.6, 1.9)
        xs = np.linspace(-60.0, 100.0, b.lanes.shape[2])
        b.lanes[i, 0] = np.stack([xs, np.zeros_like(xs)], -1)
        b.lanes[i, 1] = np.stack([xs, np.full_like(xs, 3.5)], -1)
        # An oncoming lane (points ordered along its travel direction: decreasing x).
        b.lanes[i, 2] = np.stack([xs[::-1], np.full_like(xs, -3.5)], -1)
        b.lane_valid[i] = True
        b.lane_width[i] = 3.5
        b.lane_speed_limit[i] = 13.9
        b.lane_neighbors[i, 0] = (1, -1)
        b.lane_tl[i, 0] = TL_GREEN if i % 2 else TL_RED
        b.drivable_polygons[i, 0] = [(-10, -6), (10, -6), (10, -9), (-10, -9)]
        b.drivable_vertex_valid[i, 0] = True
        b.crosswalks[i, 0] = [(30, -5), (34, -5), (34, 5), (30, 5)]
        b.crosswalk_valid[i] = True
        b.agents[i, 0, :, 0] = 20.0 + speed * times
        b.agents[i, 0, :, 3] = speed
        b.agents[i, 1, :, 0:2] = (32.0, 6.0)
        b.agents[i, 2, :, 0] = -10.0 + 5.0 * times
        b.agents[i, 2, :, 1] = 3.5
        b.agents[i, 2, :, 3] = 5.0
        b.agent_valid[i] = True
        b.agent_size[i] = [(4.5, 1.9), (0.6, 0.6), (1.8, 0.6)]
        b.agent_type[i] = [VEHICLE, PEDESTRIAN, CYCLIST]
        b.route_lanes[i, 0] = 0
        qs = np.linspace(-20.0, 100.0, b.route_polyline.shape[1])
        b.route_polyline[i] = np.stack([qs, np.zeros_like(qs)], -1)
        b.route_valid[i] = True
        b.global_pose[i] = (1000.0 * i, 0.0, 0.0)
    b.meta["scene_id"] = np.array([f"{prefix}-{i:05d}" for i in range(num_scenes)], dtype=object)
    b.meta["source"][:] = "world"
    b.meta["city"] = np.array([("alpha", "beta")[i % 2] for i in range(num_scenes)], dtype=object)
    b.meta["topology"][:] = "straight"
    b.meta["maneuver"][:] = "follow"
    b.meta["events"] = np.array(["" if i % 3 else "cut_in;hard_brake" for i in range(num_scenes)], dtype=object)
    b.meta["log_id"][:] = f"{prefix}-log"
    b.validate()
    return b


def _world_batch(num_scenes: int, seed: int):
    try:
        from autoscale_core.world import generate_world
    except ImportError:
        return None
    return generate_world(num_scenes, seed=seed)


@pytest.fixture(scope="session")
def small_world_batch():
    """12 scenes from the embedded world when it is importable, else hand-built ones."""
    batch = _world_batch(12, seed=0)
    return batch if batch is not None else make_road_batch(12)


@pytest.fixture(scope="session")
def road_batch():
    """8 hand-built scenes with known content (see :func:`make_road_batch`)."""
    return make_road_batch(8)


@pytest.fixture(scope="session")
def plugin_link():
    """What scripts/setup.sh does: ``.plugins/autoscale`` -> the repo root (FIFTYONE_PLUGINS_DIR)."""
    from pathlib import Path

    link = Path(REPO_ROOT) / ".plugins" / "autoscale"
    if not link.exists() and not link.is_symlink():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to("..")
    assert os.environ["FIFTYONE_PLUGINS_DIR"] == str(link.parent)
    return link
