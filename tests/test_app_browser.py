"""End to end in the real App: launch the FiftyOne App server on a small scene dataset, drive
Debian's headless Chromium with Playwright, open the operator browser, run the annotation-queue
export with its form, and check the result in the dataset (tag, run record, files) and on the page;
then the workbench (``test_workbench_*``): planner trajectory overlays, a cluster-row click that
narrows the grid, plot legends, a selection form that warns about and refuses a target with test
scenes, and a scheduled "select by value" that the local worker (as ``autoscale app`` starts it)
runs to "completed" without a manual launch.

Screenshots go to ``artifacts/screenshots/`` (gitignored). Skipped only when Chromium or the
Playwright Python package is missing (``scripts/test.sh`` installs Chromium with apt).
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
from browser.app_driver import chromium_page, chromium_path, free_port, screenshot, wait_http
from browser.engine_records import record_engine_runs

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

SPLITS = ["train"] * 5 + ["val"] + ["test"] * 2


@pytest.fixture(scope="module")
def served(fo, road_batch, plugin_link, tmp_path_factory):
    """One App server for this module's tests, served as ``autoscale app`` serves it (scheduling
    on, a local delegated worker running), on 8 rendered scenes (5 train, 1 val, 2 test) with two
    evaluated planners (overlays, sub-score groups), clusters, value scores and engine records.

    One server, not one per test: its start-up is the slowest step (minutes on a loaded 2-core
    machine). Yields ``(dataset, url, session, queue dir)``.
    """
    from fiftyone_plugin.engine import app as app_env
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.planning import evaluate_planner_on_view

    root = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as env:  # the server and the worker inherit these
        env.setenv("AUTOSCALE_HOME", str(root / "home"))
        for key, value in app_env.APP_ENV_DEFAULTS.items():
            env.setenv(key, value)
        env.setenv(app_env.WORKER_ENV, "1")
        name = f"browser-{uuid.uuid4().hex[:8]}"
        ds = scenes.create_scene_dataset(name, road_batch, media_dir=root / "media")
        ids = road_batch.meta["scene_id"].tolist()
        rng = np.random.default_rng(0)
        scenes.write_scene_fields(ds, {"split": SPLITS, "value_q": rng.random(len(ids)),
                                       "cluster_graph_rae": [f"c{i % 2}" for i in range(len(ids))]}, scene_ids=ids)
        evaluate_planner_on_view(ds, "constant_velocity", key="cv")
        evaluate_planner_on_view(ds, "rule", key="rule")
        record_engine_runs(ds)  # scaling-law and closed-loop records for the panel
        port = free_port()
        url = f"http://localhost:{port}/"
        worker = app_env.start_delegated_worker(root / "worker.log")
        session = None
        try:
            session = _launch_patiently(fo, ds, port, url)
            wait_http(url)
            yield ds, url, session, root / "home" / "queues"
        finally:
            if session is not None:
                session.close()  # the last session of the port stops the server subprocess
            app_env.stop_worker(worker)
            scenes.delete_scene_dataset(name)


def _launch_patiently(fo, ds, port: int, url: str):
    """``fo.launch_app``, once more if the server missed FiftyOne's fixed 60 s start-up wait (a
    loaded machine): the second call finds the server up and connects to it."""
    from fiftyone.core.service import ServiceListenTimeout

    try:
        return fo.launch_app(ds, port=port, remote=True, auto=False)
    except ServiceListenTimeout:
        wait_http(url, timeout=600)
        return fo.launch_app(ds, port=port, remote=True, auto=False)


def _open_dataset(page, url: str, ds) -> None:
    """Open the dataset in the App and wait until the sidebar lists our fields."""
    page.set_default_timeout(60_000)
    page.goto(url + f"datasets/{ds.name}")
    page.get_by_text("value_q", exact=True).first.wait_for(timeout=90_000)
    dismiss = page.get_by_role("button", name="Dismiss")
    if dismiss.count():
        dismiss.first.click()


def _field_input(page, label: str):
    """The text / number input of the operator-form field labelled ``label``.

    By label, not by ``input[value=...]``: FiftyOne's text fields are uncontrolled inputs, so the
    ``value`` attribute keeps the default the field was mounted with, not what was typed.
    """
    return page.locator(f"xpath=//*[normalize-space(text())='{label}']/following::input[1]")


def _fill_field(page, label: str, text: str) -> None:
    """Type ``text`` into the field labelled ``label`` and wait until the form kept it (a dynamic
    form re-resolves after each change and may redraw the field meanwhile)."""
    from playwright.sync_api import expect

    field = _field_input(page, label)
    for _ in range(3):
        field.fill(text)
        page.wait_for_timeout(1500)  # the form re-resolves with the new value
        try:
            expect(field).to_have_value(text, timeout=10_000)
            return
        except AssertionError:
            continue
    expect(field).to_have_value(text)


DRAWN_CANVASES = """(root, n) => [...document.querySelectorAll(root + " canvas")]
    .filter(c => c.width > 0 && !String(c.className).includes("invisible")).length >= n"""


def _wait_for_drawn(page, root: str, count: int = 1) -> None:
    """Wait until ``count`` canvases under ``root`` have their media drawn (FiftyOne marks a looker's
    canvas "invisible" until its image is loaded and drawn)."""
    page.wait_for_function(f"([root, n]) => ({DRAWN_CANVASES})(root, n)", arg=[root, count], timeout=180_000)
    page.wait_for_timeout(500)


def test_export_queue_operator_in_the_app(served):
    ds, url, _, queue_dir = served
    with chromium_page(CHROMIUM, failure_name="export_queue") as page:
        _open_dataset(page, url, ds)
        _wait_for_drawn(page, "[data-cy='looker']", len(ds))  # every thumbnail
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
        _fill_field(page, "Queue name", "browser-q")
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
        page.get_by_text("Gain over the base planner").first.wait_for()
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



# ------------------------------------------------------------------------------ the workbench
def _wait_until(condition, timeout_s: float, what: str):
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _open_operator(page, search: str, label: str) -> None:
    page.keyboard.press("Escape")
    page.locator("body").click(position={"x": 800, "y": 10})
    page.keyboard.press("`")
    page.wait_for_timeout(800)
    page.keyboard.type(search)
    page.get_by_text(label).first.click()


@pytest.mark.timeout(1800)  # dozens of App round trips; minutes each on a loaded 2-core machine
def test_warm_app_server_serves_what_the_first_open_asks_for(served, caplog):
    """``autoscale app``'s warm-up against the real server: every step answers (no warning), the
    plugin's operators are registered by then, and a failing step is logged, not raised."""
    import logging
    import urllib.request

    from fiftyone_plugin.engine.app import warm_app_server

    ds, url, _, _ = served
    with caplog.at_level(logging.WARNING, logger="fiftyone_plugin.engine.app"):
        seconds = warm_app_server(url, ds.name)
    assert set(seconds) == {"page", "operators", "placements", "graphql"}
    assert not [r for r in caplog.records if "warm-up" in r.getMessage()], caplog.text
    request = urllib.request.Request(url + "operators", data=json.dumps({"dataset_name": ds.name}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        uris = {op["uri"] for op in json.loads(response.read())["operators"]}
    assert "@autoscale/autoscale/export_annotation_queue" in uris

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fiftyone_plugin.engine.app"):
        seconds = warm_app_server(url, f"no-such-dataset-{uuid.uuid4().hex[:6]}")
    assert "graphql" in seconds  # every step ran
    assert any("'graphql' failed" in r.getMessage() for r in caplog.records), caplog.text


def test_workbench_overlays_clusters_plots_and_safe_scheduled_selection(served):
    from fiftyone.operators.delegated import DelegatedOperationService

    ds, url, session, _ = served
    if session.view is not None:  # the whole dataset, whatever an earlier test showed (setting
        session.view = None       # it on a fresh session fails while its client still connects)
    with chromium_page(CHROMIUM, failure_name="workbench") as page:
        _open_dataset(page, url, ds)
        page.set_default_timeout(90_000)  # a loaded 2-core machine is slow to draw
        _wait_for_drawn(page, "[data-cy='looker']", len(ds))  # every thumbnail
        screenshot(page, "20_grid")
        # Each evaluated planner's trajectory is an overlay field in the sidebar, beside ego_future.
        for field in ("ego_future", "eval_cv_trajectory", "eval_rule_trajectory"):
            page.get_by_text(field, exact=True).first.wait_for()
        # The sub-scores' group per planner (further down the virtualized sidebar: scroll to it).
        assert {"planner cv", "planner rule"} <= {g.name for g in ds.app_config.sidebar_groups}
        page.locator("[data-cy='sidebar-group-planner rule-field']").first.click()  # expand it
        page.wait_for_timeout(1000)
        screenshot(page, "20b_sidebar_planner_groups")

        _check_sample_overlays(page)
        _check_panel_and_cluster_click(page, session)
        session.view = None  # back to the whole dataset for the selection
        page.wait_for_timeout(1500)
        _check_held_out_refused(page, ds)
        _schedule_train_pool_selection(page)

    uri = "@autoscale/autoscale/select_active"
    service = DelegatedOperationService()

    def completed():
        ops = service.list_operations(operator=uri, dataset_name=ds.name)
        assert ops, "the App scheduled no select_active run"
        assert all(o.run_state != "failed" for o in ops), [(o.run_state, o.failed_at) for o in ops]
        return [o for o in ops if o.run_state == "completed"]

    done = _wait_until(completed, 600, "the scheduled select_active run to complete (local worker)")
    assert done[0].context.request_params["params"]["name"] == "browser-sched"
    ds.reload()
    chosen = ds.match_tags("sel:browser-sched")
    assert len(chosen) == 2 and set(chosen.values("split")) == {"train"}


def _check_sample_overlays(page) -> None:
    """A sample: the planner overlays are drawn (and listed in the sample's sidebar)."""
    page.locator("[data-cy='looker']").first.click()
    modal = page.locator("[data-cy='modal']")
    modal.get_by_text("eval_cv_trajectory", exact=True).first.wait_for()
    modal.get_by_text("eval_rule_trajectory", exact=True).first.wait_for()
    _wait_for_drawn(page, "[data-cy='modal']")  # the sample's image and overlays
    page.wait_for_timeout(1000)
    screenshot(page, "21_sample")
    page.keyboard.press("Escape")
    modal.wait_for(state="detached")


def _check_panel_and_cluster_click(page, session) -> None:
    """The Data Engine panel: plots with legends; a cluster row narrows the grid."""
    page.locator("[data-cy='new-panel-btn'], [title='New panel']").first.click()
    page.get_by_text("AutoScale Data Engine").first.click()
    page.get_by_text("Click a row to show that cluster").first.wait_for(timeout=180_000)
    page.locator(".js-plotly-plot g.legend").first.wait_for(timeout=180_000)  # every plot has a legend
    page.wait_for_timeout(1500)
    screenshot(page, "22_panel")
    assert page.get_by_text("straight pilots").count() >= 1  # legend entries name the traces
    page.get_by_text("c0 /", exact=False).first.click()
    _wait_until(lambda: session.view is not None and len(session.view) == 4, 180,
                "the grid to narrow to cluster c0 (4 of 8 scenes)")
    assert set(session.view.values("cluster_graph_rae")) == {"c0"}
    page.wait_for_timeout(1500)
    screenshot(page, "23_cluster_clicked")


def _check_held_out_refused(page, ds) -> None:
    """Select by value with the whole target as pool (it holds val and test scenes): warned, refused."""
    _open_operator(page, "select by value", "AutoScale: select by value")
    page.get_by_text("Selection name", exact=True).first.wait_for()
    page.wait_for_timeout(1000)
    _fill_field(page, "Selection name", "browser-leak")
    page.get_by_text("train split: the target's", exact=False).first.click()
    page.get_by_role("option", name="the whole target, as chosen above").click()
    page.get_by_text("The pool contains held-out scenes", exact=False).first.wait_for()
    page.wait_for_timeout(1500)
    screenshot(page, "24_form_held_out_warning")
    assert page.get_by_text("2 test", exact=False).count() >= 1
    assert page.get_by_role("button", name="Execute").first.is_disabled()  # refused without the tick
    ds.reload()
    assert not ds.has_saved_view("browser-leak") and not ds.has_run("sel_browser_leak"), \
        "a pool with test scenes was selected from without the explicit choice"


def _schedule_train_pool_selection(page) -> None:
    """Back to the train split; schedule it: the worker runs it without a manual launch."""
    page.get_by_text("the whole target, as chosen above").first.click()
    page.get_by_role("option", name="train split: the target's split='train' scenes (recommended)").click()
    page.get_by_text("The pool contains held-out scenes", exact=False).first.wait_for(state="detached")
    _fill_field(page, "Selection name", "browser-sched")
    _fill_field(page, "Budget (scenes)", "2")
    page.get_by_text("How this runs").first.wait_for()
    screenshot(page, "25_form_train_pool")
    _choose_schedule(page)
    page.wait_for_timeout(2000)
    screenshot(page, "26_scheduled")


def _choose_schedule(page) -> None:
    """Small jobs default to Execute: pick "Schedule" in the split button's menu, then run it.

    The App ignores a click while the dynamic form is still validating ("Cannot execute operator
    while validating form"), so wait until the button is enabled, and click again until the
    prompt closes.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    page.locator("[aria-label='split button'] button[aria-haspopup='menu']").first.click()
    page.wait_for_timeout(800)
    screenshot(page, "25b_execution_menu")
    page.get_by_text("Schedule", exact=True).first.click()
    schedule = page.get_by_role("button", name="Schedule").first
    prompt = page.get_by_text("Select by value", exact=True).first
    for _ in range(5):
        expect(schedule).to_be_enabled(timeout=180_000)
        schedule.click()
        try:
            prompt.wait_for(state="detached", timeout=60_000)
            return
        except PlaywrightTimeout:  # still validating, or the click was swallowed: try again
            continue
    prompt.wait_for(state="detached")
