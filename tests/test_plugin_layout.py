"""The plugin's package layering: ``engine`` (service functions) never imports the App's operator
API, and no package imports one above it (engine < operators < panel, cli).

``import fiftyone`` itself imports ``fiftyone.operators``, so "not in ``sys.modules``" cannot tell
the layers apart; the test reads each module's import statements instead (those inside functions
too: a deferred import is still a dependency).
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "fiftyone_plugin"
PACKAGES = ("engine", "operators", "panel", "cli")
# What each package may import from the plugin (besides itself and the top-level __init__).
ALLOWED = {"engine": set(), "operators": {"engine"}, "panel": {"engine", "operators"}, "cli": {"engine"}}


def _imports(path: Path) -> list[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]  # `from pkg import module`
    return names


def _modules(package: str) -> list[Path]:
    return sorted((PLUGIN / package).glob("*.py"))


def test_plugin_is_packages_only():
    flat = sorted(p.name for p in PLUGIN.glob("*.py"))
    assert flat == ["__init__.py"], f"modules outside engine/operators/panel/cli: {flat}"
    for package in PACKAGES:
        assert (PLUGIN / package / "__init__.py").is_file(), package


@pytest.mark.parametrize("path", _modules("engine"), ids=lambda p: p.name)
def test_engine_never_imports_fiftyone_operators(path):
    bad = [n for n in _imports(path) if n == "fiftyone.operators" or n.startswith("fiftyone.operators.")]
    assert not bad, f"{path.name} imports {bad}: App forms belong in fiftyone_plugin/operators"


@pytest.mark.parametrize("path", [p for pkg in PACKAGES for p in _modules(pkg)],
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_import_runs_up_a_layer(path):
    package = path.parent.name
    used = {n.split(".")[1] for n in _imports(path) if n.startswith("fiftyone_plugin.") and n.count(".") >= 1}
    used &= set(PACKAGES)
    assert used <= ALLOWED[package] | {package}, f"{package}/{path.name} imports {sorted(used - ALLOWED[package])}"


def test_console_script_and_operator_modules_resolve():
    import importlib

    import fiftyone_plugin

    target = re.search(r'^autoscale = "([\w.:]+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    module, _, function = target.partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    for name in fiftyone_plugin.OPERATOR_MODULES:
        assert name.split(".")[1] in ("operators", "panel"), name
        assert importlib.import_module(name).OPERATORS, name


def test_shared_data_is_still_found_beside_the_repository(monkeypatch, tmp_path):
    """Modules that locate ``../shared/data`` from their own path moved one folder deeper (cli/)."""
    from types import SimpleNamespace

    from fiftyone_plugin.cli.experiment import _real_test_roots
    from fiftyone_plugin.cli.scenarionet import _shared_data

    monkeypatch.delenv("AUTOSCALE_SHARED_DATA", raising=False)
    shared = ROOT.parent / "shared" / "data"
    assert _shared_data() == shared
    args = SimpleNamespace(real_test="auto", quick=False, dataset=None)
    expected = [str(shared / sub) for sub in ("scenarionet", "av2") if (shared / sub).is_dir()]
    assert [str(Path(p).resolve()) for p in _real_test_roots(args)] == expected
