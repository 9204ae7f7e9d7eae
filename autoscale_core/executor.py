"""One interface for the heavy loops (pilot training runs, closed-loop rounds, synthetic
generation, batch scoring): ``map(fn, items)``.

* :class:`SerialExecutor` — in-process, for tests and debugging.
* :class:`ProcessExecutor` — a local ``concurrent.futures`` process pool with the *spawn* start
  method (safe with torch / faiss threads). The default.
* :class:`RayExecutor` — Ray tasks, ``ray.init()`` locally or against a cluster address.

Contract shared by all three:

* results come back in the order of ``items`` (``map`` is a plain ordered map);
* ``fn`` must be deterministic in its item (put the seed *in* the item), so the results are the
  same whichever executor runs it. ``fn`` must be picklable (a module-level function or an
  instance of a module-level class) for the process and Ray executors;
* a task that raises is retried ``retries`` times, then :class:`TaskError` is raised naming the
  item's position and value — a result is never silently dropped.

**The one default.** Wherever no executor is named, :func:`default_executor` decides:
``AUTOSCALE_EXECUTOR`` (``serial``, ``process`` or ``ray``, optionally ``process:4`` / ``ray:auto`` /
``ray:<address>``) when set, else :data:`DEFAULT_EXECUTOR` (``process``). :func:`get_executor`,
:func:`executor_from_choice` and batch scoring all read it. Work that a pool does not speed up
asks for in-process explicitly (``executor_from_choice(..., in_process_by_default=True)``):
closed-loop evaluation (its per-scene EP-reference cache stays warm) and synthetic generation
below a size threshold (worker start-up outweighs the gain); ``AUTOSCALE_EXECUTOR`` still
overrides those. Functions with an ``executor=`` argument take ``None`` as "no executor: run in
this process" (:func:`resolve_executor`); the plugin and CLI resolve a user's choice first.

"""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = [
    "Executor",
    "SerialExecutor",
    "ProcessExecutor",
    "RayExecutor",
    "TaskError",
    "TaskFailure",
    "Tolerant",
    "get_executor",
    "resolve_executor",
    "configured_executor",
    "executor_from_choice",
    "SceneChunk",
    "EXECUTOR_ENV",
    "EXECUTOR_NAMES",
    "DEFAULT_EXECUTOR",
    "default_executor",
]

EXECUTOR_ENV = "AUTOSCALE_EXECUTOR"
DEFAULT_EXECUTOR = "process"  # what runs a map when no executor is named and AUTOSCALE_EXECUTOR is unset


class TaskError(RuntimeError):
    """A task failed after all its retries. ``index`` and ``item`` name the failing input."""

    def __init__(self, index: int, item: Any, attempts: int, cause: str):
        self.index, self.item, self.attempts, self.cause = index, item, attempts, cause
        shown = repr(item)
        if len(shown) > 300:
            shown = shown[:300] + "..."
        super().__init__(f"task {index} failed after {attempts} attempt(s) on input {shown}: {cause}")


class TaskFailure:
    """What :class:`Tolerant` returns for a task that failed on every attempt (kept, not dropped)."""

    def __init__(self, item: Any, attempts: int, cause: str):
        self.item, self.attempts, self.cause = item, attempts, cause

    def __repr__(self) -> str:
        return f"TaskFailure(item={self.item!r}, attempts={self.attempts}, cause={self.cause!r})"


class Tolerant:
    """Wrap ``fn`` so a task that still fails after ``retries`` retries returns a
    :class:`TaskFailure` in its slot instead of aborting the whole ``map`` — for callers that can
    degrade (e.g. MOSAIC pilots) and must report what failed."""

    def __init__(self, fn: Callable[[Any], Any], retries: int = 1):
        self.fn, self.retries = fn, int(retries)

    def __call__(self, item: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return self.fn(item)
            except Exception as exc:  # noqa: BLE001 - turned into a reported TaskFailure
                if attempt == self.retries:
                    return TaskFailure(item, attempt + 1, _describe(exc))
        raise AssertionError("unreachable")


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class Executor(ABC):
    """Ordered ``map`` with retries; see the module docstring for the contract."""

    name = "executor"

    def __init__(self, retries: int = 1):
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.retries = int(retries)

    @abstractmethod
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list:
        """``[fn(item) for item in items]``, possibly in parallel; raises :class:`TaskError`."""

    def close(self) -> None:  # noqa: B027 (optional hook, not abstract)  # pragma: no cover - trivial
        """Release workers (no-op for executors without persistent workers)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(retries={self.retries})"


class SerialExecutor(Executor):
    """Runs tasks one after another in this process."""

    name = "serial"

    def map(self, fn, items):
        results = []
        for index, item in enumerate(items):
            for attempt in range(self.retries + 1):
                try:
                    results.append(fn(item))
                    break
                except Exception as exc:  # noqa: BLE001 - re-raised as TaskError below
                    if attempt == self.retries:
                        raise TaskError(index, item, attempt + 1, _describe(exc)) from exc
        return results


# The process pool's workers receive ``fn`` once through the initializer instead of once per task
# (an oracle may hold a large SceneBatch).
_WORKER_FN: Callable | None = None


def _install_fn(fn: Callable) -> None:
    global _WORKER_FN
    _WORKER_FN = fn


def _call_installed(item: Any) -> Any:
    return _WORKER_FN(item)  # type: ignore[misc]


class ProcessExecutor(Executor):
    """A local process pool (spawn start method); a fresh pool per ``map`` call.

    A worker that dies (segfault, OOM kill) breaks the pool; the pool is then rebuilt and the
    unfinished tasks are resubmitted, counting one attempt each.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None, retries: int = 1):
        super().__init__(retries)
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers or max(1, min(4, os.cpu_count() or 1))

    def map(self, fn, items):
        items = list(items)
        if not items:
            return []
        results: dict[int, Any] = {}
        attempts = [0] * len(items)
        pending = list(range(len(items)))
        context = multiprocessing.get_context("spawn")
        while pending:
            workers = min(self.max_workers, len(pending))
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_install_fn, initargs=(fn,)) as pool:
                futures = {i: pool.submit(_call_installed, items[i]) for i in pending}
                retry = []
                for i, future in futures.items():
                    try:
                        results[i] = future.result()
                    except BrokenProcessPool as exc:
                        attempts[i] += 1
                        if attempts[i] > self.retries:
                            raise TaskError(i, items[i], attempts[i], "worker process died: " + _describe(exc)) from exc
                        retry.append(i)
                    except Exception as exc:  # noqa: BLE001
                        attempts[i] += 1
                        if attempts[i] > self.retries:
                            pool.shutdown(wait=False, cancel_futures=True)
                            raise TaskError(i, items[i], attempts[i], _describe(exc)) from exc
                        retry.append(i)
            pending = retry
        return [results[i] for i in range(len(items))]

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers}, retries={self.retries})"


def _ray_call(fn, item):
    return fn(item)


class RayExecutor(Executor):
    """Ray tasks. Starts a local Ray (``address=None``) unless Ray is already initialised.

    Args:
        address: ``None`` for a local instance, ``"auto"`` or ``"ray://host:port"`` for a cluster.
        num_cpus: CPUs for a local instance (ignored when connecting to a cluster).
        retries: application-level retries (Ray's own task retries are disabled so every failure
            is reported the same way as with the other executors).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, retries: int = 1):
        super().__init__(retries)
        try:
            import ray  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "RayExecutor needs Ray: pip install 'autoscale[ray]' (or pip install ray), "
                f"or set {EXECUTOR_ENV}=process"
            ) from exc
        self.address = address
        self.num_cpus = num_cpus
        self._started_here = False

    def _ensure_init(self):
        import ray

        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus or max(1, min(4, os.cpu_count() or 1))
                # Local workers must import this package even when it is not pip-installed.
                paths = [p for p in sys.path if p and os.path.isdir(p)]
                kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
            else:
                kwargs["address"] = self.address
            ray.init(**kwargs)
            self._started_here = True
        return ray

    def map(self, fn, items):
        items = list(items)
        if not items:
            return []
        ray = self._ensure_init()
        remote = ray.remote(max_retries=0)(_ray_call)
        fn_ref = ray.put(fn)
        refs = {i: remote.remote(fn_ref, items[i]) for i in range(len(items))}
        results: dict[int, Any] = {}
        attempts = [0] * len(items)
        while refs:
            retry = {}
            for i, ref in refs.items():
                try:
                    results[i] = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - RayTaskError wraps the task's exception
                    attempts[i] += 1
                    if attempts[i] > self.retries:
                        cause = getattr(exc, "cause", None) or exc
                        raise TaskError(i, items[i], attempts[i], _describe(cause)) from exc
                    retry[i] = remote.remote(fn_ref, items[i])
            refs = retry
        return [results[i] for i in range(len(items))]

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, retries={self.retries})"


def get_executor(spec: str | Executor | None = None, *, retries: int = 1) -> Executor:
    """An executor from a name: ``serial``, ``process[:N]``, ``ray[:address]`` (or an Executor).

    ``None`` is :func:`default_executor` (``AUTOSCALE_EXECUTOR``, else :data:`DEFAULT_EXECUTOR`).
    """
    if isinstance(spec, Executor):
        return spec
    text = spec if spec is not None else os.environ.get(EXECUTOR_ENV, DEFAULT_EXECUTOR)
    name, _, arg = str(text).strip().partition(":")
    name = name.lower()
    if name == "serial":
        return SerialExecutor(retries=retries)
    if name == "process":
        if arg and not arg.isdigit():
            raise ValueError(f"executor {text!r}: the worker count after 'process:' must be an integer")
        return ProcessExecutor(int(arg) if arg else None, retries=retries)
    if name == "ray":
        return RayExecutor(address=arg or None, retries=retries)
    source = f"environment variable {EXECUTOR_ENV}" if spec is None else "executor name"
    raise ValueError(f"unknown {source} {text!r}: expected 'serial', 'process[:N]' or 'ray[:address]'")


def configured_executor() -> str | None:
    """The executor named by ``AUTOSCALE_EXECUTOR``, or ``None`` when the variable is unset/empty."""
    value = os.environ.get(EXECUTOR_ENV, "").strip()
    if not value:
        return None
    get_executor(None)  # reject a bad value here, naming the variable
    return value


def default_executor(*, in_process_by_default: bool = False) -> str:
    """The executor meant when none is named: ``AUTOSCALE_EXECUTOR`` if set (checked), else
    :data:`DEFAULT_EXECUTOR` — or ``"serial"`` with ``in_process_by_default`` (work a pool does not
    speed up; see the module docstring)."""
    return configured_executor() or ("serial" if in_process_by_default else DEFAULT_EXECUTOR)


EXECUTOR_NAMES = ("serial", "process", "ray")


def executor_from_choice(choice: str | None, *, in_process_by_default: bool = False) -> str | None:
    """The executor spec for a user's choice (form, CLI, plugin argument); ``None`` = in-process.

    ``None``/``""`` → :func:`default_executor` (``AUTOSCALE_EXECUTOR`` if set, else
    :data:`DEFAULT_EXECUTOR`, or in-process with ``in_process_by_default``); ``"serial"`` →
    ``None``; a bare ``"process"`` / ``"ray"`` takes the worker count / cluster address from
    ``AUTOSCALE_EXECUTOR`` when that names the same executor; ``"process:4"``, ``"ray:auto"`` are
    used as given. Raises ValueError starting with "executor:" for an unknown name (or Ray not
    installed).
    """
    if choice is None or choice == "":
        spec = default_executor(in_process_by_default=in_process_by_default)
    else:
        spec = str(choice).strip()
        configured = os.environ.get(EXECUTOR_ENV, "").strip()
        if spec in EXECUTOR_NAMES and configured.partition(":")[0].lower() == spec:
            spec = configured
        try:
            get_executor(spec)
        except (ValueError, ImportError) as exc:
            raise ValueError(f"executor: {exc}") from exc
    return None if spec is None or spec.lower() == "serial" else spec


def resolve_executor(spec: str | Executor | None, num_tasks: int) -> tuple[Executor | None, bool]:
    """For functions with an ``executor=`` argument: ``(executor, close_after)``.

    ``None`` gives ``(None, False)``: run in-process without an executor (callers that want
    ``AUTOSCALE_EXECUTOR`` pass ``get_executor(None)`` or the string). A name builds the executor
    (closed after use, which shuts down a Ray instance it started); an :class:`Executor` is used as
    is and left open. A single task never needs workers: with ``num_tasks <= 1`` a name resolves to
    ``None`` too (no pool spawned, no Ray started for one task).
    """
    if spec is None:
        return None, False
    if isinstance(spec, Executor):
        return spec, False
    if num_tasks <= 1:
        get_executor(spec)  # still reject a bad name
        return None, False
    return get_executor(spec), True


@dataclass
class SceneChunk:
    """A task input: ``scenes`` = rows ``start … start + len(scenes) − 1`` of a larger SceneBatch,
    plus per-scene ``extra`` arrays. Its repr (what :class:`TaskError` shows) names the rows and
    scene ids, not the arrays."""

    scenes: Any  # SceneBatch
    start: int
    extra: dict = field(default_factory=dict)
    label: str = ""

    def __repr__(self) -> str:
        n = len(self.scenes)
        ids = self.scenes.meta.get("scene_id") if hasattr(self.scenes, "meta") else None
        shown = ""
        if ids is not None and n:
            names = [str(i) for i in list(ids)[:4]]
            shown = ", scene_id " + ", ".join(repr(x) for x in names) + (", ..." if n > 4 else "")
        label = f"{self.label}: " if self.label else ""
        return f"SceneChunk({label}rows {self.start}..{self.start + n - 1} ({n} scenes){shown})"
