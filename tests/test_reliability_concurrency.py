"""Two processes working on the same dataset at once.

Process A computes value scores, then makes selection ``a``, then selection ``same``; process B
clusters, then makes selection ``b``, then selection ``same``. File barriers line the steps up
so each pair really runs at the same time. Both representation steps and both differently
named selections must succeed without overwriting each other; of the two ``same`` selections
exactly one succeeds and the other is a clear "already exists" error — the surviving selection
is intact (its tag, saved view and run record agree).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from reliability_helpers import REPO_ROOT, cli_env

BUDGET = 5


def _script(barrier_dir: str, me: str, other: str, steps: list[list[str]]) -> str:
    return f"""
import os, sys, time
from fiftyone_plugin.cli import main

def barrier(step):
    open(os.path.join({barrier_dir!r}, f"{me}-{{step}}"), "w").close()
    deadline = time.time() + 240
    while not os.path.exists(os.path.join({barrier_dir!r}, f"{other}-{{step}}")):
        if time.time() > deadline:
            sys.exit("barrier timeout")
        time.sleep(0.05)

for i, argv in enumerate({steps!r}):
    barrier(i)
    code = main(argv)
    print(f"RC {{i}} {{code}}", flush=True)
"""


@pytest.fixture
def embedded_dataset(fo, dataset_name, autoscale_home):
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import compute_scene_embeddings

    dataset = scenes.create_scene_dataset(dataset_name("conc"), generate_world(30, seed=5), render_images=False)
    compute_scene_embeddings(dataset, "handcrafted", mc_samples=0, brain=False)
    return dataset


def _select(name: str, dataset: str, seed: int) -> list[str]:
    return ["select", "active", "--dataset", dataset, "--name", name, "--budget", str(BUDGET),
            "--method", "random", "--split", "", "--seed", str(seed)]


def test_two_processes_on_one_dataset(embedded_dataset, tmp_path):
    from fiftyone_plugin.engine import runs

    dataset = embedded_dataset
    name = dataset.name
    steps_a = [["value", "--dataset", name, "--method", "handcrafted", "--k", "5"], _select("a", name, 1),
               _select("same", name, 1)]
    steps_b = [["cluster", "--dataset", name, "--method", "handcrafted", "--k", "3"], _select("b", name, 2),
               _select("same", name, 2)]
    env = cli_env()
    procs = [subprocess.Popen([sys.executable, "-c", _script(str(tmp_path), me, other, steps)], cwd=REPO_ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me, other, steps in (("A", "B", steps_a), ("B", "A", steps_b))]
    outs = [p.communicate(timeout=400) for p in procs]
    codes = [{int(line.split()[1]): int(line.split()[2]) for line in out.splitlines() if line.startswith("RC ")}
             for out, _ in outs]
    log = "\n".join(f"--- {who}\n{out[-2000:]}\n{err[-3000:]}" for who, (out, err) in zip("AB", outs))
    assert all(p.returncode == 0 for p in procs), log
    assert codes[0][0] == 0 and codes[1][0] == 0, log  # value scores and clustering
    assert codes[0][1] == 0 and codes[1][1] == 0, log  # selections a and b
    same = sorted([codes[0][2], codes[1][2]])
    assert same == [0, 1], log  # exactly one "same" wins...
    loser = 0 if codes[0][2] else 1
    assert "already exists" in outs[loser][1] and "'same'" in outs[loser][1], log  # ...the other is told why

    dataset.reload()
    schema = dataset.get_field_schema()
    for field in ("value_s", "value_r", "value_u", "value_q"):
        assert field in schema
        values = np.asarray(dataset.values(field), dtype=float)
        assert np.isfinite(values).all() and values.shape == (30,), field
    labels = dataset.values("cluster_handcrafted")
    assert None not in labels and len(set(labels)) == 3
    keys = {r["key"] for r in runs.list_runs(dataset)}
    assert {"value_handcrafted", "cluster_handcrafted", "sel_a", "sel_b", "sel_same"} <= keys, keys
    for sel in ("a", "b", "same"):
        tagged = set(dataset.match_tags(f"sel:{sel}").values("id"))
        assert len(tagged) == BUDGET, (sel, len(tagged))
        assert set(dataset.load_saved_view(sel).values("id")) == tagged, sel
        assert sorted(runs.get_run(dataset, f"sel_{sel}")["results"]["scene_ids"]) == \
            sorted(dataset.match_tags(f"sel:{sel}").values("scene_id")), sel
    from fiftyone_plugin.engine import safe_write

    assert safe_write.staging_collections() == []
