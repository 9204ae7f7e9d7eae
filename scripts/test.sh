#!/usr/bin/env bash
# Install (idempotent), make sure Chromium is there for the browser test, run the test suite.
# Extra arguments go to pytest. "No tests collected" (pytest exit 5) is a failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh || exit 1

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
    echo "[test] installing Debian chromium for the browser test"
    if ! { $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
           || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1; }; }; then
      echo "[test] WARNING: could not install chromium; the browser test will be skipped" >&2
    fi
  else
    echo "[test] WARNING: no apt-get and no chromium; the browser test will be skipped" >&2
  fi
fi

.venv/bin/python -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "[test] FAILED: pytest collected no tests" >&2
fi
exit "$rc"
