#!/usr/bin/env bash
# Idempotent setup: project-local .venv, AutoScale installed (editable) with the embedded
# MongoDB, and the FiftyOne plugin made discoverable. Fast when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
  echo "[setup] creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed (or the package is missing).
STAMP="$VENV/.autoscale-pyproject.sha256"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
HAVE="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$WANT" != "$HAVE" ] || ! (cd / && "$PY" -c "import importlib.metadata as m; m.version('autoscale')") >/dev/null 2>&1; then
  echo "[setup] installing AutoScale and its dependencies into $VENV"
  # torch first, pinned: the CPU wheel; a bare 'torch' requirement may pull a multi-GB CUDA build.
  "$PY" -m pip install -q "torch==2.13.0"
  "$PY" -m pip install -q "setuptools>=64" wheel
  "$PY" -m pip install -q --no-build-isolation -e ".[dev,embedded-db]"
  echo "$WANT" > "$STAMP"
fi

# Plugin discovery: FiftyOne walks FIFTYONE_PLUGINS_DIR for fiftyone.yml files (skipping hidden
# folders, stopping at the first fiftyone.yml), so .plugins/autoscale -> the repo root is found
# without descending into .venv.
mkdir -p "$ROOT/.plugins"
ln -sfn .. "$ROOT/.plugins/autoscale"
SITE="$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")"
cat > "$SITE/_autoscale_plugins_hook.py" <<PYEOF
"""Written by AutoScale's scripts/setup.sh: point FiftyOne at the AutoScale plugin by default.

Sets FIFTYONE_PLUGINS_DIR=$ROOT/.plugins unless the environment or the FiftyOne config file
already names a plugins dir (then setup.sh links the plugin into that dir instead).
"""
import json
import os


def _configured_plugins_dir():
    path = os.environ.get("FIFTYONE_CONFIG_PATH") or os.path.expanduser("~/.fiftyone/config.json")
    try:
        with open(path) as f:
            return json.load(f).get("plugins_dir")
    except Exception:
        return None


if not os.environ.get("FIFTYONE_PLUGINS_DIR") and not _configured_plugins_dir():
    os.environ["FIFTYONE_PLUGINS_DIR"] = "$ROOT/.plugins"
PYEOF
echo "import _autoscale_plugins_hook" > "$SITE/_autoscale_plugins.pth"

# A user-configured plugins dir (env or ~/.fiftyone/config.json) gets a link to the plugin too.
USER_PLUGINS="$(cd / && "$PY" -c "import _autoscale_plugins_hook as h, os; print(os.environ.get('FIFTYONE_PLUGINS_DIR') or h._configured_plugins_dir() or '')")"
if [ -n "$USER_PLUGINS" ] && [ "$USER_PLUGINS" != "$ROOT/.plugins" ]; then
  mkdir -p "$USER_PLUGINS" && ln -sfn "$ROOT" "$USER_PLUGINS/autoscale" \
    && echo "[setup] linked the plugin into your plugins dir $USER_PLUGINS"
fi
echo "[setup] ready: $VENV (plugin @autoscale/autoscale discoverable)"
