"""The core library's boundaries: it never imports fiftyone, and its modules import no cycle.

Import cycles are checked on every import statement, including those inside functions: a
deferred import does not fail at import time, but it still makes two modules depend on each
other (the scorer and the rule planner did, through one). Importing a package's ``__init__`` as
a side effect of importing one of its modules is not an edge.
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "autoscale_core"

PIPELINE = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    import numpy as np
    import autoscale_core
    from autoscale_core.world import generate_world
    from autoscale_core.planning import evaluate_planner, train_planner
    from autoscale_core.representation.handcrafted import HandcraftedFeatures
    from autoscale_core.selection import CoresetSelector, Pool, importance_from_epdms

    batch = generate_world(24, seed=5)
    train, test = batch.subset(np.arange(16)), batch.subset(np.arange(16, 24))
    trained = train_planner(train, steps=6, batch_size=8, val_fraction=0.25, device="cpu")
    result = evaluate_planner(trained, test, two_stage=False)
    embeddings = HandcraftedFeatures().fit(test).transform(test)
    pool = Pool(test.meta["scene_id"], embeddings, domains=np.arange(len(test)) % 2,
                scores={"importance": importance_from_epdms(result.scores["epdms"])})
    assert len(CoresetSelector().select(pool, 3).scene_ids) == 3
    # Every core module, imported too (optional backends such as ray may be missing: skipped).
    for info in pkgutil.walk_packages(autoscale_core.__path__, "autoscale_core."):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            if "fiftyone" in str(exc):
                raise
    leaked = sorted(m for m in sys.modules if m == "fiftyone" or m.startswith("fiftyone."))
    print("LEAKED" if leaked else "CLEAN", leaked[:5], autoscale_core.__file__)
    """
)


def test_core_pipeline_never_imports_fiftyone():
    done = subprocess.run(
        [sys.executable, "-c", PIPELINE], cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CLEAN" in done.stdout, done.stdout
    assert str(CORE) in done.stdout  # this checkout's code ran


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """Core modules ``path`` imports anywhere in its body (``from x import y``: x.y if a module)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") if node.level else node.module
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return (found & modules) - {name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycles_among_core_modules():
    paths = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph = {name: _imported_modules(name, path, set(paths)) for name, path in paths.items()}
    assert graph["autoscale_core.sim.planner"] >= {"autoscale_core.sim.scorer"}  # the parser sees imports
    assert _cycles(graph) == []
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]  # and finds cycles


def test_core_never_imports_fiftyone_in_its_source():
    offenders = [
        str(p.relative_to(ROOT)) for p in CORE.rglob("*.py")
        if any(m == "fiftyone" or m.startswith("fiftyone.") for m in _all_imports(p))
    ]
    assert offenders == []


def _all_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
    return names
