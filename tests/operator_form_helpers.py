"""Helpers for the operator-form tests: run an operator or resolve its form the way the App
does (FiftyOne's operator execution API), read back what it asked the App to do, and check that a
rejected input leaves the dataset unchanged (a snapshot of every stored sample document)."""

from __future__ import annotations

import hashlib

import pytest

URI = "@autoscale/autoscale/{}"


def _execute(op: str, dataset, params: dict, **ctx):
    import fiftyone.operators as foo

    name = dataset if isinstance(dataset, str) or dataset is None else dataset.name
    context = {"params": params, **ctx}
    if name is not None:
        context["dataset"] = name
    return foo.execute_operator(URI.format(op), ctx=context, request_delegation=False)


def _form(op_cls, dataset, params: dict, **request):
    """The form the App would show for ``params`` (system view-target input included)."""
    from fiftyone.operators.executor import ExecutionContext

    request = {"params": params, **request}
    if dataset is not None:
        request["dataset_name"] = dataset.name
    return op_cls().resolve_type(ExecutionContext(request), "inputs").type.properties


def _app_calls(result, dataset=None) -> dict:
    """What the operator asked the App to do: {"notify": message, "set_view": the view (rebuilt) or
    the saved view's name, ...}."""
    import fiftyone as fo

    calls = {}
    for request in result.executor.to_json()["requests"]:
        name, params = request["operator_uri"].split("/")[-1], request["params"] or {}
        if name == "notify":
            calls[name] = params["message"]
        elif name == "set_view" and dataset is not None:
            calls[name] = params.get("name") or fo.DatasetView._build(dataset, params["view"])
        else:
            calls[name] = params
    return calls


def snapshot(dataset) -> dict:
    """Counts, schema, a hash of every stored sample document, tags, runs, brain runs, saved views."""
    import bson

    dataset.reload()
    digest = hashlib.sha1()
    for doc in dataset._sample_collection.find({}, sort=[("_id", 1)]):
        doc.pop("last_modified_at", None)
        digest.update(bson.encode(doc))
    return {"count": len(dataset), "schema": {k: str(v) for k, v in dataset.get_field_schema().items()},
            "hash": digest.hexdigest(), "tags": dataset.count_sample_tags(), "runs": sorted(dataset.list_runs()),
            "brain": sorted(dataset.list_brain_runs()), "views": sorted(dataset.list_saved_views())}


def _rejects(op: str, dataset, params: dict, message: str, **ctx) -> None:
    """Execution fails with a validation error whose reason contains ``message``; nothing changes."""
    before = snapshot(dataset) if dataset is not None else None
    with pytest.raises(Exception) as info:
        _execute(op, dataset, params, **ctx)
    text = str(info.value)
    assert "Validation error" in text and message in text, text
    if dataset is not None:
        assert snapshot(dataset) == before
