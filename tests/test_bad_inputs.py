"""Malformed inputs across the entry points (CLI, Python API, operators), one table.

Every case must fail with an error whose message names the bad input, a non-zero exit code for
the CLI, and leave the shared dataset exactly as it was (snapshot of counts, schema, field
values, tags and saved views). CLI cases call ``fiftyone_plugin.cli.main`` in this process
(the console script's entry point; one fiftyone import for the whole table) except the
``cli-subprocess`` cases, which run the real command in a child process.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Callable

import bad_input_cases
import numpy as np
import pytest
from reliability_helpers import run_cli, snapshot

N = 30


@dataclass
class Env:
    dataset: object
    name: str
    tmp: str  # a scratch folder for this case


@dataclass
class Case:
    id: str
    entry: str  # "cli", "cli-subprocess", "py", "op"
    action: Callable[[Env], object]
    expect: str  # substring the error must contain (case-insensitive)
    also: tuple[str, ...] = ()  # more substrings it must contain (file, scene, field)


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bad_env(fo, tmp_path_factory):
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import compute_scene_embeddings, compute_value_scores

    name = f"bad-inputs-{uuid.uuid4().hex[:8]}"
    home = tmp_path_factory.mktemp("bad-home")
    dataset = scenes.create_scene_dataset(name, generate_world(N, seed=11), media_dir=home / name)
    compute_scene_embeddings(dataset, "handcrafted", mc_samples=0, brain=False)
    compute_value_scores(dataset, "handcrafted", k=5)
    yield dataset
    scenes.delete_scene_dataset(name)


def _cli(*argv: str) -> Callable[[Env], object]:
    def run(env: Env):
        from fiftyone_plugin.cli import main

        args = [a.replace("{ds}", env.name).replace("{tmp}", env.tmp) for a in argv]
        return ("cli", main(args))

    return run


def _cli_sub(*argv: str) -> Callable[[Env], object]:
    def run(env: Env):
        args = [a.replace("{ds}", env.name).replace("{tmp}", env.tmp) for a in argv]
        proc = run_cli(*args, timeout=240)
        return ("cli-subprocess", proc.returncode, proc.stderr)

    return run


def _op(uri: str, params: dict, dataset: str | None = None) -> Callable[[Env], object]:
    def run(env: Env):
        import fiftyone.operators as foo

        p = {k: (v.replace("{tmp}", env.tmp) if isinstance(v, str) else v) for k, v in params.items()}
        result = foo.execute_operator(f"@autoscale/autoscale/{uri}", ctx={"dataset": dataset or env.name, "params": p},
                                      request_delegation=False)
        return ("op", result)

    return run


# ---------------------------------------------------------------------------------- helpers
def _ids(env):
    return env.dataset.values("scene_id")


def _write(values_fn):
    def run(env):
        from fiftyone_plugin.engine import scenes

        scenes.write_scene_fields(env.dataset, values_fn(env))

    return run


def _batch_with(mutate):
    def run(env):
        from fiftyone_plugin.engine import scenes

        batch = scenes.load_scenes(env.dataset.limit(2))
        batch.meta["scene_id"] = np.array([f"new-{i}" for i in range(len(batch))], dtype=object)
        mutate(batch)
        scenes.add_scenes(env.dataset, batch, render=False)

    return run


def _set_nan_ego(batch):
    batch.ego[0, -1, 0] = np.nan


def _set_inf_agents(batch):
    batch.agents[1, 0, 3, 1] = np.inf


def _wrong_shape_agents(batch):
    batch.agents = batch.agents[:, :, :-3]


def _score(traj_fn):
    def run(env):
        from autoscale_core.sim.scoring import score_trajectories
        from fiftyone_plugin.engine import scenes

        batch = scenes.load_scenes(env.dataset.limit(3))
        score_trajectories(batch, traj_fn(batch))

    return run


def _nan_traj(batch):
    t = np.zeros((len(batch), 2, 8, 3))
    t[0, 1, 4, 0] = np.nan
    return t


def _inf_traj(batch):
    t = np.zeros((len(batch), 2, 8, 3))
    t[2, 0, 7, 2] = -np.inf
    return t


def _short_traj(batch):
    return np.zeros((len(batch), 2, 7, 3))


def _wrong_count_traj(batch):
    return np.zeros((len(batch) + 1, 2, 8, 3))


def _corrupt_file(env, name: str, data: bytes) -> str:
    path = os.path.join(env.tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _load_planner(data_fn):
    def run(env):
        from autoscale_core.planning import load_planner

        load_planner(data_fn(env))

    return run


class _Evil:
    """Unpickling this would create a marker file: a checkpoint must never be unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_checkpoint(env) -> str:
    import torch

    path = os.path.join(env.tmp, "evil.pt")
    torch.save({"header": _Evil(os.path.join(env.tmp, "PWNED")), "state_dict": {}}, path)
    return path


def _truncated_checkpoint(env) -> str:
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"header": "{}", "state_dict": {"w": torch.zeros(100, 100)}}, buf)
    return _corrupt_file(env, "truncated.pt", buf.getvalue()[: len(buf.getvalue()) // 3])


def _knn_load(data: bytes):
    def run(env):
        from autoscale_core.representation import KnnIndex

        KnnIndex.load(_corrupt_file(env, "index.faiss", data))

    return run


def _truncated_store(env):
    """Copy the dataset's store, truncate one array file, load from the copy."""
    import shutil

    from autoscale_core.store import SceneStore
    from fiftyone_plugin.engine import scenes

    src = scenes.get_store(env.dataset).root
    dst = os.path.join(env.tmp, "store")
    shutil.copytree(src, dst)
    shard = SceneStore(dst).shards[0]["name"]
    victim = os.path.join(dst, shard, "ego.npy")
    size = os.path.getsize(victim)
    with open(victim, "r+b") as f:
        f.truncate(size // 2)
    SceneStore(dst).load()


def _truncated_parquet(env):
    """Export 3 scenes as interchange tables, truncate one file, import with the CLI."""
    from autoscale_core.io.interchange import export_scenes
    from fiftyone_plugin.engine import scenes

    out = export_scenes(scenes.load_scenes(env.dataset.limit(3)), os.path.join(env.tmp, "tables"))
    files = sorted(p for p in os.listdir(out) if p.endswith(".parquet"))
    victim = os.path.join(out, files[0])
    with open(victim, "r+b") as f:
        f.truncate(os.path.getsize(victim) // 2)
    return _cli("import", "scenes", str(out), "--dataset", env.name, "--no-render")(env)


def _without_first_image(env, action):
    """Run ``action`` while the first sample's BEV image is missing from disk."""
    path = env.dataset.first().filepath
    hidden = path + ".hidden"
    os.rename(path, hidden)
    try:
        return action(env)
    finally:
        os.rename(hidden, path)


def _with_user_file(action):
    """Run ``action`` with a user's file in the case's folder (an export must not touch it)."""
    def run(env):
        user_file = os.path.join(env.tmp, "user-notes.txt")
        with open(user_file, "w") as f:
            f.write("mine")
        try:
            return action(env)
        finally:
            assert open(user_file).read() == "mine", "an export touched a user file"

    return run


def _empty_view_load(env):
    from fiftyone import ViewField as F

    from fiftyone_plugin.engine import scenes

    scenes.load_scenes(env.dataset.match(F("split") == "no-such-split"))


def _staged(values_fn):
    def run(env):
        from fiftyone_plugin.engine.safe_write import staged_write

        staged_write(env.dataset, "bad_input", values_fn(env))

    return run


# ---------------------------------------------------------------------------------- the table
CASES = [
    # --- CLI: counts, budgets, k
    Case("cli-world-zero-scenes", "cli", _cli("world", "--scenes", "0", "--dataset", "{ds}-new"), "--scenes"),
    Case("cli-world-negative-scenes", "cli", _cli("world", "--scenes", "-5", "--dataset", "{ds}-new"), "--scenes"),
    Case("cli-world-existing-name", "cli", _cli("world", "--scenes", "3", "--dataset", "{ds}"), "already exists"),
    Case("cli-unknown-dataset", "cli-subprocess", _cli_sub("value", "--dataset", "no-such-dataset-xyz"),
         "no-such-dataset-xyz"),
    Case("cli-unknown-dataset-select", "cli", _cli("select", "active", "--dataset", "nope-404", "--name", "s",
                                                   "--budget", "3"), "nope-404"),
    Case("cli-value-k-larger-than-view", "cli", _cli("value", "--dataset", "{ds}", "--method", "handcrafted",
                                                     "--k", "500"), "k"),
    Case("cli-value-alpha-nan", "cli", _cli("value", "--dataset", "{ds}", "--method", "handcrafted",
                                            "--alpha", "nan", "1", "1"), "alpha_s"),
    Case("cli-value-missing-embedding", "cli", _cli("value", "--dataset", "{ds}", "--method", "graph_rae"),
         "emb_graph_rae"),
    Case("cli-cluster-k-larger-than-view", "cli", _cli("cluster", "--dataset", "{ds}", "--method", "handcrafted",
                                                       "--k", "500"), "500"),
    Case("cli-cluster-k-zero", "cli", _cli("cluster", "--dataset", "{ds}", "--method", "handcrafted", "--k", "0"),
         "--k"),
    Case("cli-select-budget-zero", "cli", _cli("select", "active", "--dataset", "{ds}", "--name", "z",
                                               "--budget", "0", "--method", "random", "--split", ""), "budget"),
    Case("cli-select-budget-negative", "cli", _cli("select", "active", "--dataset", "{ds}", "--name", "z",
                                                   "--budget", "-4", "--method", "random", "--split", ""), "budget"),
    Case("cli-select-budget-larger-than-pool", "cli-subprocess",
         _cli_sub("select", "active", "--dataset", "{ds}", "--name", "z", "--budget", "999", "--method", "random",
                  "--split", ""), "budget"),
    Case("cli-select-empty-view", "cli", _cli("select", "active", "--dataset", "{ds}", "--name", "z",
                                              "--budget", "3", "--method", "random", "--split", "no-such-split"),
         "0 scenes"),
    Case("cli-select-unknown-saved-view", "cli", _cli("select", "active", "--dataset", "{ds}", "--name", "z",
                                                      "--budget", "3", "--view", "no-such-view"), "no-such-view"),
    Case("cli-select-bad-name", "cli", _cli("select", "active", "--dataset", "{ds}", "--name", "bad name!",
                                            "--budget", "3", "--method", "random", "--split", ""), "bad name!"),
    # --- CLI: export paths, media, wrong field types
    Case("cli-export-unwritable-path", "cli", _cli("export", "queue", "--dataset", "{ds}", "--name", "q1",
                                                   "--out-dir", "/proc/autoscale-no", "--no-copy-media"),
         "/proc/autoscale-no"),
    Case("cli-export-path-escapes", "cli", _cli("export", "queue", "--dataset", "{ds}", "--name", "../../escape",
                                                "--out-dir", "{tmp}", "--no-copy-media"), "../../escape"),
    Case("cli-export-missing-media", "cli", lambda env: _without_first_image(env, _cli(
        "export", "queue", "--dataset", "{ds}", "--name", "q2", "--out-dir", "{tmp}")), ".png"),
    Case("cli-export-rank-field-wrong-type", "cli", _cli("export", "queue", "--dataset", "{ds}", "--name", "q3",
                                                         "--out-dir", "{tmp}", "--rank-field", "city",
                                                         "--no-copy-media"), "city"),
    Case("cli-export-rank-field-unknown", "cli", _cli("export", "queue", "--dataset", "{ds}", "--name", "q4",
                                                      "--out-dir", "{tmp}", "--rank-field", "no_field",
                                                      "--no-copy-media"), "no_field"),
    Case("cli-export-limit-zero", "cli", _cli("export", "queue", "--dataset", "{ds}", "--name", "q5",
                                              "--out-dir", "{tmp}", "--limit", "0"), "--limit"),
    Case("cli-export-scenes-existing-path", "cli",
         _with_user_file(_cli("export", "scenes", "{tmp}", "--dataset", "{ds}")), "{tmp}"),
    Case("cli-import-missing-path", "cli", _cli("import", "scenes", "{tmp}/nothing-here", "--dataset", "{ds}"),
         "nothing-here"),
    Case("cli-import-truncated-parquet", "cli", _truncated_parquet, ".parquet"),
    Case("cli-train-weight-field-wrong-type", "cli", _cli("train", "--dataset", "{ds}", "--weight-field", "city",
                                                          "--steps", "2"), "city"),
    Case("cli-evaluate-corrupt-checkpoint", "cli",
         lambda env: _cli("evaluate", "--dataset", "{ds}", "--planner",
                          _corrupt_file(env, "junk.pt", b"\x00not a checkpoint" * 50))(env), "junk.pt"),
    # --- Python API
    Case("py-write-nan", "py", _write(lambda env: {"value_bad": np.full(N, np.nan)}), "value_bad"),
    Case("py-write-inf-vectors", "py", _write(lambda env: {"emb_bad": np.full((N, 4), np.inf)}), "emb_bad"),
    Case("py-write-wrong-length", "py", _write(lambda env: {"value_bad": np.zeros(3)}), "value_bad"),
    Case("py-write-3d-array", "py", _write(lambda env: {"value_bad": np.zeros((N, 2, 2))}), "value_bad"),
    Case("py-write-protected-field", "py", _write(lambda env: {"filepath": ["x"] * N}), "filepath"),
    Case("py-write-wrong-type-existing-field", "py",
         _write(lambda env: {"value_new_ok": np.ones(N), "value_q": ["high"] * N}), "value_q"),
    Case("py-write-unknown-scene-ids", "py",
         lambda env: __import__("fiftyone_plugin.engine.scenes", fromlist=["x"]).write_scene_fields(
             env.dataset, {"value_bad": np.ones(2)}, scene_ids=["nope-1", "nope-2"]), "nope-1"),
    Case("py-staged-write-bad-run-key", "py",
         lambda env: __import__("fiftyone_plugin.engine.safe_write", fromlist=["x"]).staged_write(
             env.dataset, "bad key!", {"value_bad": np.ones(N)}), "bad key!"),
    Case("py-staged-write-wrong-type", "py", _staged(lambda env: {"city": np.arange(N, dtype=float)}), "city"),
    Case("py-add-scenes-nan-trajectory", "py", _batch_with(_set_nan_ego), "ego"),
    Case("py-add-scenes-inf-agents", "py", _batch_with(_set_inf_agents), "agents"),
    Case("py-add-scenes-wrong-shape", "py", _batch_with(_wrong_shape_agents), "agents"),
    Case("py-load-empty-view", "py", _empty_view_load, "no samples"),
    Case("py-score-nan-trajectories", "py", _score(_nan_traj), "trajector"),
    Case("py-score-inf-trajectories", "py", _score(_inf_traj), "trajector"),
    Case("py-score-wrong-horizon", "py", _score(_short_traj), "trajector"),
    Case("py-score-wrong-scene-count", "py", _score(_wrong_count_traj), "trajector"),
    Case("py-corrupt-checkpoint", "py", _load_planner(lambda env: _corrupt_file(env, "bad.pt", os.urandom(4096))),
         "bad.pt"),
    Case("py-truncated-checkpoint", "py", _load_planner(_truncated_checkpoint), "truncated.pt"),
    Case("py-pickle-payload-checkpoint", "py", _load_planner(_evil_checkpoint), "evil.pt"),
    Case("py-corrupt-faiss-index", "py", _knn_load(b"IxFl" + os.urandom(64)), "index.faiss"),
    Case("py-truncated-store-array", "py", _truncated_store, "ego.npy"),
    # --- operators
    Case("op-value-k-too-large", "op", _op("compute_value_scores", {"method": "handcrafted", "k": 500}), "k"),
    Case("op-cluster-unknown-method", "op", _op("cluster_scenes", {"method": "nonsense"}), "method"),
    Case("op-select-budget-zero", "op", _op("select_active", {"name": "opz", "budget": 0, "method": "random"}),
         "budget"),
    Case("op-select-budget-too-large", "op",
         _op("select_active", {"name": "opz", "budget": 10_000, "method": "random"}), "budget"),
    Case("op-export-scenes-unwritable", "op", _op("export_scenes", {"path": "/proc/autoscale-no/x"}),
         "/proc/autoscale-no"),
    Case("op-unknown-dataset", "op", _op("compute_value_scores", {"method": "handcrafted"}, dataset="no-such-ds-42"),
         "no-such-ds-42"),
]


# Hostile-input families (issue #21): every interchange table / header field, AV2 logs, names.
CASES += [Case(f"ix-{id_}", "cli", bad_input_cases._import_strict(mutate), expect, also)
          for id_, mutate, expect, also in bad_input_cases.interchange_cases()]
CASES += [Case(f"ix-{id_}", "cli", action, expect, also) for id_, action, expect, also in
          bad_input_cases.interchange_env_cases() + bad_input_cases.av2_cases() + bad_input_cases.name_cases()]
CASES += [Case(f"py-{id_}", "py", action, expect, also) for id_, action, expect, also in bad_input_cases.checkpoint_cases()]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, bad_env, tmp_path, capsys):
    from fiftyone_plugin.engine import safe_write

    env = Env(bad_env, bad_env.name, str(tmp_path))
    before = snapshot(bad_env)
    expect = case.expect.replace("{tmp}", env.tmp).lower()
    try:
        outcome = case.action(env)
    except Exception as exc:  # Python API cases, and operators (execute_operator raises ExecutionError)
        assert case.entry in ("py", "op"), f"{case.id}: {case.entry} entry raised instead of reporting: {exc!r}"
        message = f"{type(exc).__name__}: {exc}"
        if case.entry == "py":
            from autoscale_core.store import SceneStoreError

            assert isinstance(exc, (ValueError, FileNotFoundError, SceneStoreError)), message
    else:
        assert case.entry != "py", f"{case.id}: no error raised"
        if outcome[0] == "cli":
            err = capsys.readouterr().err
            assert outcome[1] != 0, f"{case.id}: exit code 0; stderr: {err}"
            message = err
            assert "Traceback" not in err
        elif outcome[0] == "cli-subprocess":
            assert outcome[1] != 0, f"{case.id}: exit code 0; stderr: {outcome[2][-2000:]}"
            message = outcome[2]
            assert "autoscale: error:" in message and "Traceback" not in message, message[-2000:]
        else:
            result = outcome[1]
            assert result.error is not None, f"{case.id}: operator succeeded: {result.result}"
            message = f"{result.error} {result.error_message or ''}"
    assert expect in message.lower(), f"{case.id}: error does not name {case.expect!r}: {message[-1500:]}"
    for part in case.also:
        assert part.lower() in message.lower(), f"{case.id}: error does not name {part!r}: {message[-1500:]}"
    assert not os.path.exists(os.path.join(env.tmp, "PWNED")), "a checkpoint's pickle payload was executed"
    assert snapshot(bad_env) == before, f"{case.id}: the dataset changed"
    # Nothing of this dataset is left staged either.
    assert [c for c in safe_write.staging_collections() if str(bad_env._doc.id) in c] == []


def test_table_is_large_enough():
    assert len(CASES) >= 100
    assert {c.entry for c in CASES} == {"cli", "cli-subprocess", "py", "op"}
