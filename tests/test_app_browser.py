"""End to end in the real App: launch the FiftyOne App server on a small scene dataset, drive
Debian's headless Chromium with Playwright, open the operator browser, run the annotation-queue
export with its form, and check the result in the dataset (tag, run record, files) and on the page;
then schedule a delegated "select by value" from its form, run the queue as ``fiftyone delegated
launch`` does, and find the selection in the dataset and in the Data Engine panel.

Screenshots go to ``artifacts/screenshots/`` (gitignored). Skipped only when Chromium or the
Playwright Python package is missing (``scripts/test.sh`` installs Chromium with apt).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from browser.engine_records import record_engine_runs
from browser.app_driver import chromium_page, chromium_path, free_port, screenshot, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("plugin_link")]

CHROMIUM = chromium_path()
try:
    import playwright.sync_api  # noqa: F401
    PLAYWRIGHT = True
except ImportError:
    PLAYWRIGHT = False

if CHROMIUM is None:
    pytest.skip("Chromium is not installed (/usr/bin/chromium missing; scripts/test.sh installs it with apt)",
                allow_module_level=True)
if not PLAYWRIGHT:
    pytest.skip("the playwright Python package is missing (pip install -e '.[dev]')", allow_module_level=True)




@pytest.fixture
def app(fo, dataset_name, road_batch, tmp_path, monkeypatch):
    """(dataset, url, queue dir): a rendered 8-scene dataset served by a real App server."""
    from fiftyone_plugin import scenes

    home = tmp_path / "home"
    monkeypatch.setenv("AUTOSCALE_HOME", str(home))  # the server process inherits it
    ds = scenes.create_scene_dataset(dataset_name("browser"), road_batch, media_dir=tmp_path / "media")
    rng = np.random.default_rng(0)
    n = len(ds)
    scenes.write_scene_fields(ds, {"value_q": rng.random(n), "eval_rule_epdms": rng.random(n),
                                   "cluster_graph_rae": np.array([f"c{i % 2}" for i in range(n)], dtype=object)})
    record_engine_runs(ds)  # scaling-law, allocation and closed-loop records for the panel
    port = free_port()
    session = fo.launch_app(ds, port=port, remote=True, auto=False)
    url = f"http://localhost:{port}/"
    try:
        wait_http(url)
        yield ds, url, home / "queues"
    finally:
        session.close()  # the last session of the port stops the server subprocess


def _open_dataset(page, url: str, ds) -> None:
    """Open the dataset in the App and wait until the sidebar lists our fields."""
    page.set_default_timeout(60_000)
    page.goto(url + f"datasets/{ds.name}")
    page.get_by_text("value_q", exact=True).first.wait_for(timeout=90_000)
    dismiss = page.get_by_role("button", name="Dismiss")
    if dismiss.count():
        dismiss.first.click()


@pytest.fixture
def scheduling_app(monkeypatch, request):
    """``app`` served with scheduling enabled, as ``autoscale app`` serves it (open-source
    FiftyOne only offers "Schedule" when legacy orchestrators are allowed)."""
    monkeypatch.setenv("FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS", "true")  # the server subprocess reads it
    return request.getfixturevalue("app")


def test_export_queue_operator_in_the_app(app):
    ds, url, queue_dir = app
    with chromium_page(CHROMIUM) as page:
        _open_dataset(page, url, ds)
        page.wait_for_timeout(1000)  # let the grid draw its thumbnails
        screenshot(page, "01_dataset")

        # The operator browser: backtick, then search for the operator.
        page.locator("body").click(position={"x": 800, "y": 10})
        page.keyboard.press("`")
        page.wait_for_timeout(800)
        screenshot(page, "02_operator_browser")
        page.keyboard.type("export annotation")
        page.get_by_text("AutoScale: export annotation queue").first.wait_for()
        screenshot(page, "03_search")
        page.get_by_text("AutoScale: export annotation queue").first.click()
        page.wait_for_selector("text=Queue name")
        page.wait_for_timeout(800)
        screenshot(page, "04_form")
        # Rank by value_q (a dropdown of the dataset's numeric fields), queue name typed in.
        page.get_by_text("(selection order)", exact=True).first.click()
        page.get_by_role("option", name="value_q", exact=True).click()
        page.wait_for_timeout(1000)  # the dynamic form re-resolves
        name_input = page.locator("input[value='queue']")
        name_input.fill("browser-q")
        page.wait_for_timeout(1500)
        screenshot(page, "05_form_filled")
        page.get_by_role("button", name="Execute").click()
        page.wait_for_selector("text=Exported 8 scenes", timeout=90_000)
        page.wait_for_timeout(500)
        screenshot(page, "06_done")
        page.get_by_role("button", name="Close").click()
        page.wait_for_timeout(1000)
        screenshot(page, "07_queue_view")  # the App now shows the queued scenes (ctx.ops.set_view)

        # The Data Engine panel: a new tab, then our panel; it lists the export's run record.
        page.locator("[data-cy='new-panel-btn'], [title='New panel']").first.click()
        page.get_by_text("AutoScale Data Engine").first.click()
        page.get_by_text("Recent runs").first.wait_for()
        page.get_by_text("queue_browser_q").first.wait_for()
        page.get_by_text("Fitted gain a(1").first.wait_for()
        assert page.get_by_text("No clusters yet").count() == 0
        assert page.get_by_text("cluster_graph_rae").count() >= 1
        page.wait_for_timeout(1500)  # plotly draws
        screenshot(page, "08_data_engine_panel")
        page.mouse.move(1300, 500)
        page.mouse.wheel(0, 900)
        page.wait_for_timeout(800)
        screenshot(page, "09_data_engine_panel_scrolled")

    ds.reload()
    assert len(ds.match_tags("queue:browser-q")) == len(ds)
    assert ds.has_run("queue_browser_q")
    rows = [json.loads(line) for line in (queue_dir / "browser-q" / "manifest.jsonl").read_text().splitlines()]
    q = dict(zip(ds.values("scene_id"), ds.values("value_q")))
    assert [r["scene_id"] for r in rows] == sorted(q, key=lambda s: -q[s])  # ranked by value_q, as chosen


def test_select_by_value_scheduled_from_the_app_then_run_by_the_delegated_service(scheduling_app):
    """The long operators are delegated by default: schedule "select by value" from the App's
    form, run the queue as ``fiftyone delegated launch`` would, and find the selection in the
    dataset and in the Data Engine panel."""
    from fiftyone.operators.delegated import DelegatedOperationService

    ds, url, _ = scheduling_app
    uri = "@autoscale/autoscale/select_active"
    with chromium_page(CHROMIUM) as page:
        _open_dataset(page, url, ds)
        page.locator("body").click(position={"x": 800, "y": 10})
        page.keyboard.press("`")
        page.wait_for_timeout(800)
        page.keyboard.type("select by value")
        page.get_by_text("AutoScale: select by value").first.click()
        page.wait_for_selector("text=Selection name")
        page.wait_for_timeout(800)
        page.locator("input[value='active-1'], input[value^='active']").first.fill("browser-top")
        budget = page.locator("input[type='number']").first
        budget.fill("3")
        page.wait_for_timeout(1500)  # the dynamic form re-resolves and validates
        screenshot(page, "10_select_form")
        # Delegated by default: the form's main button schedules the run.
        page.get_by_role("button", name="Schedule").first.click()
        page.wait_for_timeout(2000)
        screenshot(page, "13_scheduled")

    queued = DelegatedOperationService().get_queued_operations(operator=uri, dataset_name=ds.name)
    assert len(queued) == 1, "the App scheduled exactly one delegated select_active run"
    assert queued[0].context.request_params["params"]["name"] == "browser-top"
    results = DelegatedOperationService().execute_queued_operations(operator=uri, dataset_name=ds.name)
    assert len(results) == 1 and results[0].error is None, results[0].error

    ds.reload()
    q = dict(zip(ds.values("scene_id"), ds.values("value_q")))
    top = sorted(q, key=lambda s: -q[s])[:3]
    assert sorted(ds.match_tags("sel:browser-top").values("scene_id")) == sorted(top)
    assert ds.has_saved_view("browser-top") and ds.has_run("sel_browser_top")

    with chromium_page(CHROMIUM) as page:  # a fresh page: the panel reads the finished run
        _open_dataset(page, url, ds)
        page.wait_for_timeout(1000)
        screenshot(page, "14_fresh_page")
        page.locator("[data-cy='new-panel-btn'], [title='New panel']").first.click()
        page.get_by_text("AutoScale Data Engine").first.click()
        page.get_by_text("Recent runs").first.wait_for()
        page.get_by_text("sel_browser_top").first.wait_for()
        screenshot(page, "15_panel_after_delegated_run")
