"""Ego-centric bird's-eye-view (BEV) rendering of scenes, FiftyOne-free (PIL + numpy).

The image frame: the ego at t0 points **up**; it sits horizontally centred and at
``EGO_ROW`` of the image height (more road ahead than behind). The image covers a square of
``extent_m`` × ``extent_m`` metres. :func:`scene_to_image` maps scene-frame metres to
normalized image coordinates in [0, 1] (x right, y down), the convention FiftyOne labels use,
so overlays drawn by the App line up with the rendered pixels.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import geometry
from .scene import AGENT_TYPES, TL_GREEN, TL_RED, TL_YELLOW, SceneBatch

DEFAULT_SIZE = 512  # the App enlarges a sample to the window: 256 px looked pixelated there
DEFAULT_EXTENT_M = 64.0  # 80 m left two thirds of a typical tile as empty background
EGO_ROW = 0.7  # ego centre at 70 % of the image height: 44.8 m ahead, 19.2 m behind by default
FRAME_PX = 2  # per 256 px of image size: a visible tile edge on the App's dark grid

# RGB colours shared with the FiftyOne overlays (fiftyone_plugin.engine.scenes uses the hex forms).
BACKGROUND = (40, 50, 44)  # off-road: a muted green-grey, not the App's own dark grey
DRIVABLE = (84, 88, 96)
FRAME = (150, 158, 170)
LANE_LINE = (140, 146, 156)
INTERSECTION_LANE_LINE = (110, 114, 122)
DIRECTION_HINT = (190, 196, 206)
CROSSWALK = (205, 205, 190)
ROUTE = (40, 110, 200)
TL_COLOURS = {TL_GREEN: (40, 200, 70), TL_YELLOW: (240, 200, 40), TL_RED: (230, 40, 40)}
AGENT_COLOURS = {
    "vehicle": (65, 150, 255),
    "pedestrian": (255, 150, 40),
    "cyclist": (60, 220, 160),
    "static": (160, 160, 160),
    "other": (200, 110, 220),
}
EGO_COLOUR = (255, 40, 200)
# Overlay colours are backgrounds of the App's white label text, so they are dark enough for it.
EGO_HISTORY_COLOUR = (190, 50, 160)
EGO_FUTURE_COLOUR = (200, 110, 0)
ROUTE_OVERLAY_COLOUR = (0, 150, 136)  # differs from the route painted in the image (ROUTE)
# One colour per evaluated planner's trajectory overlay (in order of evaluation), unlike the agents'.
PLANNER_COLOURS = ((214, 39, 40), (44, 140, 44), (23, 130, 160), (148, 103, 189), (140, 86, 75), (120, 120, 20))


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % tuple(rgb)


def scene_to_image(points: np.ndarray, extent_m: float = DEFAULT_EXTENT_M) -> np.ndarray:
    """Scene-frame metres (..., 2) → normalized image coordinates (..., 2) (x right, y down).

    +x (ego heading) points up, +y (ego left) points left.
    """
    points = np.asarray(points, dtype=np.float64)
    u = 0.5 - points[..., 1] / extent_m
    v = EGO_ROW - points[..., 0] / extent_m
    return np.stack([u, v], axis=-1)


def box_corners(centre: np.ndarray, heading: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) of oriented boxes (:func:`autoscale_core.geometry.box_corners` with a
    scene's (..., 2) length-width ``size`` arrays).

    Args:
        centre: (..., 2) m; heading: (...,) rad; size: (..., 2) length, width in m.
    """
    return geometry.box_corners(centre, heading, size[..., 0], size[..., 1])


def _visible(points_px: np.ndarray, size: int, margin: float) -> bool:
    lo, hi = points_px.min(0), points_px.max(0)
    return bool((hi > -margin).all() and (lo < size + margin).all())


def render_bev(
    batch: SceneBatch,
    index: int,
    size: int = DEFAULT_SIZE,
    extent_m: float = DEFAULT_EXTENT_M,
) -> np.ndarray:
    """Render scene ``index`` of ``batch`` as an (size, size, 3) uint8 RGB image.

    Draws, back to front: drivable area (lane corridors + drivable polygons), crosswalks, the
    route, lane centerlines with a direction chevron, traffic-light state at t0 at each lane's
    entry, agents at t0 as oriented boxes coloured by type, and the ego (distinct colour, with
    a nose mark).
    """
    return np.asarray(_render_image(batch, index, size, extent_m))


def _render_image(batch: SceneBatch, i: int, size: int, extent_m: float) -> Image.Image:
    if not 0 <= i < len(batch):
        raise IndexError(f"scene index {i} out of range for a batch of {len(batch)} scenes")
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    px_per_m = size / extent_m
    t0 = batch.history_steps

    def to_px(points: np.ndarray) -> np.ndarray:
        # Clipped far outside the image: absurd sizes (a 1e9 m agent) would make PIL's polygon
        # fill run for minutes; geometry within 16 image widths is drawn exactly.
        return np.clip(scene_to_image(points, extent_m) * size, -16 * size, 17 * size)

    lane_ids = np.flatnonzero(batch.lane_valid[i])
    lanes_px = to_px(batch.lanes[i, lane_ids]) if len(lane_ids) else np.zeros((0, 2, 2))
    visible = [k for k in range(len(lane_ids)) if _visible(lanes_px[k], size, 20)]

    # Drivable area: polygons, then lane corridors as thick strokes.
    polygons_px = to_px(batch.drivable_polygons[i])
    for d in range(polygons_px.shape[0]):
        valid = batch.drivable_vertex_valid[i, d]
        if valid.sum() >= 3:
            draw.polygon([tuple(p) for p in polygons_px[d][valid]], fill=DRIVABLE)
    if visible:
        corridors = lane_corridors(lanes_px[visible], batch.lane_width[i, lane_ids[visible]] * px_per_m)
        for polygon in corridors:
            draw.polygon(polygon.ravel().tolist(), fill=DRIVABLE)

    crosswalks_px = to_px(batch.crosswalks[i])
    for c in np.flatnonzero(batch.crosswalk_valid[i]):
        draw.polygon([tuple(p) for p in crosswalks_px[c]], fill=CROSSWALK)

    route = batch.route_polyline[i][batch.route_valid[i]]
    if len(route) >= 2:
        draw.line([tuple(p) for p in to_px(route)], fill=ROUTE, width=max(2, int(1.2 * px_per_m)))

    for k in visible:
        lane = lane_ids[k]
        line = lanes_px[k].ravel().tolist()
        colour = INTERSECTION_LANE_LINE if batch.lane_is_intersection[i, lane] else LANE_LINE
        draw.line(line, fill=colour, width=max(1, round(px_per_m / 4)))
        _draw_chevron(draw, lanes_px[k], px_per_m)
        state = int(batch.lane_tl[i, lane, t0])
        if state in TL_COLOURS:
            _draw_stop_bar(draw, lanes_px[k], batch.lane_width[i, lane] * px_per_m, TL_COLOURS[state])

    valid_agents = np.flatnonzero(batch.agent_valid[i, :, t0] & (batch.agent_type[i] >= 0))
    if len(valid_agents):
        states = batch.agents[i, valid_agents, t0]
        corners = to_px(box_corners(states[:, :2], states[:, 2], batch.agent_size[i, valid_agents]))
        for a, box in zip(valid_agents, corners):
            colour = AGENT_COLOURS[AGENT_TYPES[int(batch.agent_type[i, a])]]
            draw.polygon([tuple(p) for p in box], fill=colour, outline=(0, 0, 0))

    ego = batch.ego[i, t0]
    ego_box = to_px(box_corners(ego[None, :2], ego[None, 2], batch.ego_size[i][None]))[0]
    draw.polygon([tuple(p) for p in ego_box], fill=EGO_COLOUR, outline=(255, 255, 255))
    nose = to_px(np.array([ego[0] + np.cos(ego[2]) * batch.ego_size[i, 0] / 2,
                           ego[1] + np.sin(ego[2]) * batch.ego_size[i, 0] / 2]))
    centre = to_px(ego[:2])
    draw.line([tuple(centre), tuple(nose)], fill=(255, 255, 255), width=2)
    frame = max(1, round(FRAME_PX * size / 256))
    draw.rectangle([0, 0, size - 1, size - 1], outline=FRAME, width=frame)
    return image


def lane_corridors(lines: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Corridor polygons (L, 2P, 2) of polylines (L, P, 2) offset by ±width/2 along the normals.

    Duplicate consecutive points (padding) reuse the previous segment's direction.
    """
    d = np.gradient(lines, axis=1)  # (L, P, 2) tangent estimate
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    d = np.where(norm > 1e-9, d / np.maximum(norm, 1e-9), np.array([1.0, 0.0]))
    normal = np.stack([-d[..., 1], d[..., 0]], axis=-1) * (widths[:, None, None] / 2)
    return np.concatenate([lines + normal, (lines - normal)[:, ::-1]], axis=1)


def _draw_chevron(draw: ImageDraw.ImageDraw, line_px: np.ndarray, px_per_m: float) -> None:
    """A small arrowhead at the middle of the lane, pointing along travel direction."""
    mid = len(line_px) // 2
    a, b = line_px[max(mid - 1, 0)], line_px[min(mid + 1, len(line_px) - 1)]
    direction = b - a
    norm = np.hypot(*direction)
    if norm < 1e-6:
        return
    d = direction / norm
    n = np.array([-d[1], d[0]])
    tip_len = max(3.0, 1.5 * px_per_m)
    centre = line_px[mid]
    tip = centre + d * tip_len * 0.5
    back = centre - d * tip_len * 0.5
    draw.line([tuple(back + n * tip_len * 0.5), tuple(tip), tuple(back - n * tip_len * 0.5)],
              fill=DIRECTION_HINT, width=max(1, round(px_per_m / 4)))


def _draw_stop_bar(draw: ImageDraw.ImageDraw, line_px: np.ndarray, width_px: float, colour) -> None:
    """A bar across the lane entry (first centerline point) in the light's colour."""
    d = line_px[1] - line_px[0]
    norm = np.hypot(*d)
    if norm < 1e-6:
        return
    n = np.array([-d[1], d[0]]) / norm * max(width_px / 2, 2)
    p = line_px[0]
    draw.line([tuple(p + n), tuple(p - n)], fill=colour, width=3)


MAX_STEM = 200


def safe_file_stem(scene_id: str) -> str:
    """A file-name-safe version of a scene id (path separators and odd characters replaced)."""
    scene_id = str(scene_id)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", scene_id).strip("._")
    if stem != scene_id or len(stem) > MAX_STEM:  # keep distinct ids distinct after the change
        # Bounded length: file systems refuse names over 255 bytes (".<stem>.png.tmp" included).
        stem = f"{stem[:MAX_STEM]}-{hashlib.md5(scene_id.encode()).hexdigest()[:8]}"
    return stem


def render_batch_to_files(
    batch: SceneBatch,
    out_dir: str | os.PathLike,
    size: int = DEFAULT_SIZE,
    extent_m: float = DEFAULT_EXTENT_M,
) -> list[str]:
    """Render every scene to ``<out_dir>/<scene_id>.png``; returns the absolute paths in order.

    Each PNG is written to a temporary name and renamed, so a crash never leaves a truncated
    image under a final name.
    """
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scene_id in enumerate(batch.meta["scene_id"]):
        path = out / f"{safe_file_stem(scene_id)}.png"
        tmp = out / f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"  # no clash between writers
        _render_image(batch, i, size, extent_m).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths


PLACEHOLDER_NAME = ".placeholder-bev"  # no ".png" suffix: never taken for a scene image


def placeholder_name(index: int = 0) -> str:
    """File name of the ``index``-th placeholder of a media folder (0: ``.placeholder-bev``)."""
    return PLACEHOLDER_NAME if index == 0 else f"{PLACEHOLDER_NAME}-{index}"


def write_placeholder(out_dir: str | os.PathLike, size: int = DEFAULT_SIZE, index: int = 0) -> Path:
    """The "not rendered yet" image of a deferred render (background, frame and a hint), written
    once per media folder as ``<out_dir>/.placeholder-bev`` (PNG bytes); returns its path.

    ``index`` > 0 writes a further copy (``.placeholder-bev-<index>``): deferred samples are hard
    links to a placeholder, and a file system caps the links to one file (ext4: 65,000)."""
    out = Path(out_dir).expanduser().resolve()
    path = out / placeholder_name(index)
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, 0, size - 1, size - 1], outline=FRAME, width=max(1, round(FRAME_PX * size / 256)))
        draw.text((size * 0.06, size * 0.06), "BEV image not rendered yet (overlays shown)", fill=FRAME)
        tmp = out / f".{PLACEHOLDER_NAME}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    return path


def render_store_chunk(item: tuple[str, list[str], str, float]) -> int:
    """Executor task: render scenes ``ids`` of the scene store at ``store_root`` into ``out_dir``
    (each replacing its placeholder atomically); ``item = (store_root, ids, out_dir, extent_m)``.
    Returns the number rendered."""
    from .store import SceneStore

    store_root, ids, out_dir, extent_m = item
    render_batch_to_files(SceneStore(store_root).load(ids), out_dir, extent_m=extent_m)
    return len(ids)
