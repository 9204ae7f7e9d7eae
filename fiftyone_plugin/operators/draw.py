"""App form for drawing scenes on demand: the overlays and BEV images a lean or deferred ingest
left out, for the chosen samples. The work is :func:`fiftyone_plugin.engine.bev_render.draw_scenes`'s.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from ..engine.bev_render import draw_scenes, missing_overlays, pending
from . import ui


def _todo(view) -> str:
    """What drawing ``view`` would do. Placeholders are found by a stat of each image file, so
    they are counted only for targets that run now by default: the form is resolved again on
    every change, and a million stats would stall it."""
    text = f"{len(missing_overlays(view))} of {len(view)} target scenes have no overlays"
    if len(view) > ui.SMALL_JOB_SCENES:
        return text + "; placeholder images are found and rendered when it runs"
    return text + f"; {len(pending(view)[0])} show the placeholder image"


class DrawScenes(ui.DelegatedOperator):
    _name, _label, _icon = "draw_scenes", "AutoScale: draw scenes (overlays + images)", "brush"
    _description = ("Write the overlays and render the BEV images the target's samples lack (after a lean "
                    "`--overlays on-demand` or deferred-render ingest)")

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        inputs.view("todo", types.Notice(label=_todo(view)))
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
