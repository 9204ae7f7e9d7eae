"""App form for drawing scenes on demand: the overlays and BEV images a lean or deferred ingest
left out, for the chosen samples. The work is :func:`fiftyone_plugin.engine.bev_render.draw_scenes`'s.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from ..engine.bev_render import draw_scenes, pending
from ..engine.scene_docs import OVERLAY_FIELDS
from . import ui


def _missing(view) -> tuple[int, int]:
    """(samples of ``view`` without overlays, samples still showing the placeholder image)."""
    return len(view) - view.count(OVERLAY_FIELDS[0]), len(pending(view)[0])


class DrawScenes(ui.DelegatedOperator):
    _name, _label, _icon = "draw_scenes", "AutoScale: draw scenes (overlays + images)", "brush"
    _description = ("Write the overlays and render the BEV images the target's samples lack (after a lean "
                    "`--overlays on-demand` or deferred-render ingest)")

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        no_overlays, placeholders = _missing(view)
        inputs.view("todo", types.Notice(label=f"{no_overlays} of {len(view)} target scenes have no overlays; "
                                                f"{placeholders} show the placeholder image"))
        inputs.bool("images", default=True, label="Render the placeholder images too")
        return types.Property(inputs, view=types.View(label="Draw scenes"))

    def execute(self, ctx):
        view = ctx.target_view()
        out = draw_scenes(view, images=bool(ctx.params.get("images", True)), progress=ui.progress_reporter(ctx))
        ui.finish(ctx, f"Drew the overlays of {out['overlays']} scenes and rendered {out['images']} images")
        return out

    def resolve_output(self, ctx):
        return ui.result_view(("int", "overlays", "Scenes given overlays"), ("int", "images", "Images rendered"))


OPERATORS = [DrawScenes]
