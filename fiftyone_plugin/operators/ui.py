"""Shared form helpers for AutoScale operators: target choice, field pickers, validation, results.

Every operator form should look and behave the same in the App:

* :func:`target_input` — the "whole dataset / current view / selected samples" choice. FiftyOne
  1.22 adds its system ``view_target`` input to any form whose ``resolve_input`` calls
  ``ctx.target_view()``; on older FiftyOne we add ``types.ViewTargetProperty`` ourselves.
  At execution time read the chosen samples with ``ctx.target_view()``.
* :func:`field_choices` / :func:`field_input` — pickers over *existing* fields, filtered by kind
  (numeric, string, vector, list) and name prefix (``cluster_``, ``value_``, ``eval_``...), so users
  choose instead of typing field names. An empty choice list shows "run X first".
* :func:`show_error` / :func:`check_form` / :func:`budget_error` — inline validation messages:
  the form shows a red notice and the operator's own ``execute`` raises the same message.
* :func:`progress_reporter`, :func:`finish` — progress callbacks and the standard success
  ending (notification + ``ctx.ops.set_view`` of what was written).

Use::

    from . import ui

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ui.target_input(inputs, ctx)
        ui.field_input(inputs, ctx, "rank_field", kind="numeric", label="Rank by",
                       missing_hint="run compute_value_scores first")
        ui.check_form(inputs, lambda: ui.budget_error(ctx.params.get("budget"), view))
        return types.Property(inputs, view=types.View(label="..."))
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import fiftyone as fo
import fiftyone.core.fields as fof
import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..engine.keys import Progress

FIELD_KINDS = ("numeric", "string", "vector", "list", "any")
# Fields every AutoScale scene has; hidden from "result field" pickers unless asked for.
SCENE_FIELDS = ("scene_id", "source", "city", "topology", "maneuver", "events", "ego_speed", "parent_id", "split",
                "t0", "log_id")


# ---------------------------------------------------------------------------------- targets
def target_input(inputs: types.Object, ctx) -> fo.DatasetView | fo.Dataset:
    """Offer the target choice (dataset / current view / selected samples); returns the target now.

    Must be called from ``resolve_input``. With FiftyOne's system view-target input (1.22+) calling
    ``ctx.target_view()`` is what adds the choice; older versions get an explicit property.
    """
    view = ctx.target_view()
    if not hasattr(ctx, "_view_target_resolved") and hasattr(types, "ViewTargetProperty"):
        inputs.add_property("view_target", types.ViewTargetProperty(ctx))  # FiftyOne < 1.22
    return view


# ---------------------------------------------------------------------------------- fields
def _matches_kind(field, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "numeric":
        return isinstance(field, (fof.FloatField, fof.IntField)) and not isinstance(field, fof.ObjectIdField)
    if kind == "string":
        return isinstance(field, fof.StringField)
    if kind == "vector":
        return isinstance(field, (fof.VectorField, fof.ArrayField))
    if kind == "list":
        return isinstance(field, fof.ListField)
    raise ValueError(f"kind: {kind!r} is not one of {FIELD_KINDS}")


def field_choices(collection, kind: str = "numeric", prefixes: Sequence[str] | str | None = None,
                  include_scene_fields: bool = False) -> list[str]:
    """Names of top-level sample fields of ``collection`` of ``kind`` whose name starts with a prefix.

    Sorted by name; FiftyOne's own fields (``id``, ``filepath``, ``tags``, ``metadata``...) never appear.
    """
    if kind not in FIELD_KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {FIELD_KINDS}")
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    schema = collection.get_field_schema()
    names = []
    for name, field in schema.items():
        if name.startswith("_") or name in ("id", "filepath", "tags", "metadata", "created_at", "last_modified_at"):
            continue
        if not include_scene_fields and name in SCENE_FIELDS:
            continue
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        if _matches_kind(field, kind):
            names.append(name)
    return sorted(names)


def field_input(inputs: types.Object, ctx, name: str, *, kind: str = "numeric",
                prefixes: Sequence[str] | str | None = None, label: str | None = None, description: str = "",
                required: bool = False, default: str | None = None, include_scene_fields: bool = False,
                extra_choices: Iterable[str] = (), missing_hint: str | None = None) -> list[str]:
    """A dropdown of existing fields (see :func:`field_choices`); returns the choices offered.

    ``extra_choices`` are offered first (e.g. "(none)" alternatives or scene metadata fields).
    When there is nothing to choose and ``missing_hint`` is given, a warning shows it instead.
    """
    choices = list(dict.fromkeys([*extra_choices, *field_choices(ctx.dataset, kind, prefixes, include_scene_fields)]))
    if not choices:
        if missing_hint:
            inputs.view(f"{name}_missing", types.Warning(label=f"No {label or name} available", description=missing_hint))
        return []
    dropdown = types.Dropdown(label=label or name, description=description)
    for choice in choices:
        dropdown.add_choice(choice, label=choice)
    if default is not None and default not in choices:
        default = None
    inputs.enum(name, dropdown.values(), default=default if default is not None else (choices[0] if required else None),
                required=required, label=label or name, description=description, view=dropdown)
    return choices


# ---------------------------------------------------------------------------------- validation
def show_error(inputs: types.Object, message: str, name: str = "error") -> None:
    """Show ``message`` as an inline red notice; the form is invalid (App and API refuse to run it)."""
    inputs.view(name, types.Error(label="Invalid input", description=str(message)), invalid=True,
                error_message=str(message))


def check_form(inputs: types.Object, check: Callable[[], Any], name: str = "error") -> bool:
    """Run ``check()``; if it raises ``ValueError`` (or returns a message), show it inline. True if fine."""
    try:
        message = check()
    except ValueError as exc:
        message = str(exc)
    if message:
        show_error(inputs, message, name)
        return False
    return True


def budget_error(budget: Any, collection, what: str = "budget", of: str = "target") -> str | None:
    """A readable message if ``budget`` is not an integer in 1..len(collection); else None."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or int(budget) != budget:
        return f"{what} must be a whole number of scenes, got {budget!r}"
    size = len(collection)
    if budget < 1:
        return f"{what} must be at least 1, got {int(budget)}"
    if budget > size:
        return f"{what} {int(budget)} is larger than the {of} ({size} scenes)"
    return None


def require_field(collection, field: str | None, what: str, hint: str = "") -> str:
    """Return ``field`` if the collection has it, else raise ``ValueError`` naming it (and the hint)."""
    if not field:
        raise ValueError(f"{what}: no field chosen" + (f" ({hint})" if hint else ""))
    if not collection.has_field(field):
        dataset = collection._root_dataset if isinstance(collection, fo.DatasetView) else collection
        raise ValueError(f"{what}: field {field!r} does not exist on dataset {dataset.name!r}"
                         + (f" ({hint})" if hint else ""))
    return field


# ---------------------------------------------------------------------------------- selection pools
HELD_OUT_SPLITS = ("val", "test", "hard")  # scenes that measure planners: never trained on by accident
POOL_CHOICES = [("train", "train split: the target's split='train' scenes (recommended)"),
                ("target", "the whole target, as chosen above")]


def selection_pool(view, choice: str | None):
    """The scenes a selection may pick from: the target's ``split="train"`` scenes (default) or the
    whole target (``choice="target"``)."""
    if (choice or "train") == "train" and view.has_field("split"):
        return view.match(fo.ViewField("split") == "train")
    return view


def held_out_counts(pool) -> dict[str, int]:
    """Scenes of ``pool`` per held-out split (val / test / hard) that it contains."""
    if not pool.has_field("split"):
        return {}
    counts = pool.count_values("split")
    return {s: int(counts[s]) for s in HELD_OUT_SPLITS if counts.get(s)}


def held_out_error(pool, allowed: bool) -> str | None:
    """Why a pool with val / test / hard scenes is refused unless ``allowed`` (else None)."""
    counts = held_out_counts(pool)
    if not counts or allowed:
        return None
    listed = ", ".join(f"{n} {s}" for s, n in counts.items())
    return (f"the pool contains held-out scenes ({listed}); selecting them for training leaks them into "
            "the evaluation: choose Pool = train split, or tick 'Select held-out scenes anyway'")


def selection_pool_input(inputs: types.Object, ctx, view):
    """The pool choice (default: the train split) and, when the pool holds val / test / hard scenes,
    a warning plus the explicit 'anyway' tick the form is refused without; returns the pool."""
    choice = choice_input(inputs, ctx, "pool", POOL_CHOICES, default="train", label="Pool",
                          description="which of the target's scenes may be selected")
    pool = selection_pool(view, choice)
    counts = held_out_counts(pool)
    if counts:
        listed = ", ".join(f"{n} {s}" for s, n in counts.items())
        inputs.view("held_out_warning", types.Warning(
            label=f"The pool contains held-out scenes: {listed}",
            description="val, test and hard scenes measure planners; training on them inflates every score"))
        inputs.bool("allow_held_out", default=False, label="Select held-out scenes anyway")
        check_form(inputs, lambda: held_out_error(pool, bool(ctx.params.get("allow_held_out"))), name="held_out_error")
    return pool


def checked_pool(ctx):
    """At execution: the chosen pool of ``ctx.target_view()``; raises if it holds held-out scenes
    without the explicit choice (the same rule the form shows)."""
    pool = selection_pool(ctx.target_view(), ctx.params.get("pool"))
    error = held_out_error(pool, bool(ctx.params.get("allow_held_out")))
    if error:
        raise ValueError(error)
    return pool


# ---------------------------------------------------------------------------------- results
def progress_reporter(ctx) -> Progress:
    """``progress(fraction, label)`` that updates the App's progress bar (and delegated runs')."""
    return lambda fraction, label: ctx.set_progress(progress=float(fraction), label=str(label))


def finish(ctx, message: str, *, view=None, saved_view: str | None = None, reload: bool = True) -> None:
    """Standard success ending: reload, show ``view`` (or saved view ``saved_view``), notify.

    Nothing happens for delegated runs (no App to talk to); their results are the run record.
    """
    if ctx.delegated:
        return
    if reload:
        ctx.ops.reload_dataset()
    if saved_view is not None:
        ctx.ops.set_view(name=saved_view)
    elif view is not None:
        ctx.ops.set_view(view=view)
    ctx.ops.notify(message, variant="success")


def no_dataset_error(inputs, ctx) -> bool:
    """True (and an inline error) when no dataset is open: there are no samples to target."""
    if ctx.dataset is not None:
        return False
    show_error(inputs, "no dataset is open: open the dataset whose scenes this operator should use")
    return True


def target_form(ctx) -> tuple[types.Object, Any]:
    """A form's start: ``(inputs, target)`` with the target chooser (:func:`target_input`), or
    ``(inputs, None)`` with an inline error when no dataset is open."""
    inputs = types.Object()
    if no_dataset_error(inputs, ctx):
        return inputs, None
    return inputs, target_input(inputs, ctx)


def result_view(*fields: tuple[str, str, str]) -> types.Property:
    """An operator's output panel: one ``(kind, name, label)`` per value, kind ``str``, ``int``,
    ``float`` or ``json`` (an object shown as JSON)."""
    outputs = types.Object()
    for kind, name, label in fields:
        if kind == "json":
            outputs.obj(name, label=label, view=types.JSONView())
        else:
            getattr(outputs, kind)(name, label=label)
    return types.Property(outputs)


def choice_input(inputs: types.Object, ctx, name: str, choices: list[tuple[str, str]], *, default: str, label: str,
                 description: str = "", radio: bool = False, unknown: Callable[[str], str] | None = None) -> str:
    """A dropdown (or radio group) of ``(value, label)`` choices; returns the chosen value.

    A value that is not a choice (e.g. from the Python API) marks the input invalid with a readable
    message (``unknown(value)``) instead of FiftyOne's bare "Invalid enum value".
    """
    view = (types.RadioGroup if radio else types.Dropdown)(label=label, description=description)
    for value, text in choices:
        view.add_choice(value, label=text)
    values = [value for value, _ in choices]
    chosen = ctx.params.get(name)
    chosen = default if chosen is None else chosen
    error = ""
    if chosen not in values:
        error = (unknown(chosen) if unknown else "") or f"{name}: {chosen!r} is not one of {values}"
    inputs.enum(name, values, default=default, label=label, description=description, view=view,
                invalid=bool(error), error_message=error)
    return chosen


def executor_input(inputs: types.Object, ctx, help_by_name: dict[str, str], *, label: str,
                   description: str = "", in_process_by_default: bool = True) -> str:
    """The executor dropdown (serial / process / ray, each with its help text); the default is
    :func:`autoscale_core.executor.default_executor`'s name: the executor named in
    ``AUTOSCALE_EXECUTOR``, else ``serial`` (``process`` with ``in_process_by_default=False``)."""
    from autoscale_core.executor import EXECUTOR_NAMES, default_executor

    default = default_executor(in_process_by_default=in_process_by_default).partition(":")[0].lower()
    return choice_input(inputs, ctx, "executor", [(e, f"{e}: {help_by_name[e]}") for e in EXECUTOR_NAMES],
                        default=default, label=label, description=description)


SMALL_JOB_SCENES = 2000  # targets up to this size default to Execute; larger ones to Schedule


def scheduling_notice(inputs: types.Object) -> None:
    """Say, in the form, what happens to a scheduled run (FiftyOne only says "scheduled")."""
    import os

    from ..engine.app import WORKER_ENV

    if os.environ.get(WORKER_ENV):
        text = ("Schedule queues the run; the local worker `autoscale app` started runs it within seconds "
                "(Runs page / Data Engine panel show its status).")
    else:
        text = ("Schedule only queues the run: start a worker with `fiftyone delegated launch` (or open the "
                "App with `autoscale app`, which starts one) to run it. Execute runs it now.")
    inputs.view("scheduling_notice", types.Notice(label="How this runs", description=text))


class DelegatedOperator(foo.Operator):
    """Base of the long-running operators: dynamic form, immediate or delegated; small targets
    default to Execute, large ones to Schedule.

    Subclasses set ``_name``, ``_label``, ``_description`` and ``_icon``.
    """

    _name = _label = _description = _icon = ""

    def resolve_execution_options(self, ctx):
        from fiftyone.operators.executor import ExecutionOptions

        try:
            small = len(ctx.target_view()) <= SMALL_JOB_SCENES
        except Exception:  # no dataset open yet: the form itself says so
            small = True
        return ExecutionOptions(allow_immediate_execution=True, allow_delegated_execution=True,
                                default_choice_to_delegated=not small)

    @property
    def config(self):
        return foo.OperatorConfig(name=self._name, label=self._label, description=self._description,
                                  icon=self._icon or None, allow_immediate_execution=True,
                                  allow_delegated_execution=True, default_choice_to_delegated=True, dynamic=True)


def operator_config(name: str, label: str, description: str, icon: str, **options) -> foo.OperatorConfig:
    """An operator's config with the plugin's defaults: runs now or scheduled, dynamic form."""
    defaults = {"allow_immediate_execution": True, "allow_delegated_execution": True, "dynamic": True}
    return foo.OperatorConfig(name=name, label=label, description=description, icon=icon, **(defaults | options))
