"""Helpers to drive the real FiftyOne App in Debian's headless Chromium with Playwright.

Chromium comes from the system (``/usr/bin/chromium``, installed by ``scripts/test.sh`` via apt);
Playwright for Python is used only as the DevTools-protocol driver (``playwright install`` is never
run). The flags are the ones that work on sandbox-less, GPU-less, offline machines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# FiftyOne's own convention for Playwright-driven Apps: no analytics, and none of the pop-ups that
# open at a random moment after load (the "Explore Enterprise" popover, the query-performance
# toast) and swallow every click behind their invisible backdrop until dismissed.
APP_INIT_SCRIPT = "window.IS_PLAYWRIGHT = true;"


def chromium_path() -> str | None:
    """The system Chromium executable, or None."""
    env = os.environ.get("AUTOSCALE_CHROMIUM")
    for candidate in ([env] if env else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium")
    return found


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0) -> None:
    """Wait until ``url`` answers (the App server is up)."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s: {last}")


@contextlib.contextmanager
def chromium_page(executable: str, width: int = 1600, height: int = 1000, failure_name: str | None = None,
                  profile: str | None = None):
    """A Playwright page in a fresh headless Chromium with an empty user-data dir (or with
    ``profile``, a user-data dir kept by the caller: a browser that has been here before, with
    its HTTP and code caches).

    With ``failure_name``, an exception inside the block first saves what the page showed then
    (``FAILED_<name>.png`` and ``.html`` beside the screenshots), so a failure can be diagnosed.
    """
    from playwright.sync_api import sync_playwright

    keep = profile is not None
    profile = profile if keep else tempfile.mkdtemp(prefix="autoscale-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": width, "height": height},
            )
            try:
                context.add_init_script(APP_INIT_SCRIPT)
                page = context.pages[0] if context.pages else context.new_page()
                try:
                    yield page
                except BaseException:
                    if failure_name:
                        save_failure(page, failure_name)
                    raise
            finally:
                context.close()
    finally:
        if not keep:
            shutil.rmtree(profile, ignore_errors=True)


def screenshot(page, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def save_failure(page, name: str) -> None:
    """The page's screenshot and HTML as ``FAILED_<name>.{png,html}`` (best effort: the page or
    the browser may be gone, and the original error matters more)."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        (SCREENSHOT_DIR / f"FAILED_{name}.html").write_text(page.content())
        page.screenshot(path=str(SCREENSHOT_DIR / f"FAILED_{name}.png"))
    except (PlaywrightError, OSError) as exc:
        print(f"could not save the failure's page ({name}): {exc}")
