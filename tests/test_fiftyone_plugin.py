"""The plugin through FiftyOne's own machinery: discovery, operator execution (immediate and
delegated), and the ``autoscale`` CLI as a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

OPERATOR_URI = "@autoscale/autoscale/create_demo_dataset"
CITIES = ["boston-like", "vegas-like"]


pytestmark = pytest.mark.usefixtures("plugin_link")



def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_every_registered_operator_is_in_manifest():
    from fiftyone_plugin import operator_classes

    manifest = yaml.safe_load((Path(REPO_ROOT) / "fiftyone.yml").read_text())
    assert manifest["name"] == "@autoscale/autoscale"
    assert manifest["py_entry"] == "fiftyone_plugin/__init__.py"
    listed = set(manifest.get("operators", [])) | set(manifest.get("panels", []))
    names = [cls().config.name for cls in operator_classes(strict=True)]
    assert "create_demo_dataset" in names
    missing = sorted(set(names) - listed)
    assert not missing, f"operators not listed in fiftyone.yml (FiftyOne will skip them): {missing}"


def test_plugin_discovered_by_fiftyone(fo):
    import fiftyone.plugins as fop
    from fiftyone.operators.registry import OperatorRegistry

    assert "@autoscale/autoscale" in [p.name for p in fop.list_plugins()]
    registry = OperatorRegistry()
    assert registry.operator_exists(OPERATOR_URI)


def test_operators_list_cli_subprocess(fo):
    exe = Path(sys.executable).parent / "fiftyone"
    out = subprocess.run([str(exe), "operators", "list"], capture_output=True, text=True,
                         env=_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert OPERATOR_URI in out.stdout


def test_operator_creates_dataset(fo, dataset_name, autoscale_home):
    import fiftyone.operators as foo

    name = dataset_name("op")
    params = {"name": name, "num_scenes": 12, "cities": CITIES, "seed": 3, "overwrite": False}
    result = foo.execute_operator(OPERATOR_URI, params=params)
    assert result.error is None, result.error_message
    assert result.result["num_samples"] == 12
    ds = fo.load_dataset(name)
    assert len(ds) == 12 and set(ds.distinct("city")) <= set(CITIES)
    assert Path(ds.first().filepath).is_file()

    # Same name again without overwrite: the form's inline validation rejects it, untouched.
    with pytest.raises(Exception, match="name.*exists: tick overwrite"):
        foo.execute_operator(OPERATOR_URI, params=params)
    assert len(fo.load_dataset(name)) == 12
    # Bad input names the input and creates nothing.
    bad = dict(params, name=dataset_name("bad"), cities=["atlantis"])
    with pytest.raises(Exception, match="cities"):
        foo.execute_operator(OPERATOR_URI, params=bad)
    assert not fo.dataset_exists(bad["name"])


def test_operator_delegated(fo, dataset_name, autoscale_home):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    host = fo.Dataset(dataset_name("host"))  # delegated operations are queued against a dataset
    name = dataset_name("deleg")
    params = {"name": name, "num_scenes": 6, "cities": CITIES, "seed": 1}
    queued = foo.execute_operator(OPERATOR_URI, dataset=host, params=params, request_delegation=True)
    assert queued.error is None, queued.error_message
    assert queued.delegated and not fo.dataset_exists(name)
    service = DelegatedOperationService()
    results = service.execute_queued_operations(operator=OPERATOR_URI, dataset_name=host.name)
    assert len(results) == 1 and results[0].error is None, results[0].error
    assert len(fo.load_dataset(name)) == 6


def _cli(*args, timeout=240):
    exe = Path(sys.executable).parent / "autoscale"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "fiftyone_plugin.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env=_env(), timeout=timeout)


def test_cli_world_console_script(fo, dataset_name, autoscale_home):
    """The installed ``autoscale`` entry point in a subprocess (one run: each costs an import)."""
    name = dataset_name("cli")
    out = _cli("world", "--scenes", "8", "--seed", "2", "--dataset", name, "--cities", *CITIES)
    assert out.returncode == 0, out.stderr
    assert "8 scenes" in out.stdout and "city" in out.stdout
    assert fo.dataset_exists(name), (out.stdout, out.stderr, fo.list_datasets())
    assert len(fo.load_dataset(name)) == 8


def test_cli_errors_exit_nonzero(fo, dataset_name, autoscale_home, capsys):
    from fiftyone_plugin import cli

    name = dataset_name("cli")
    assert cli.main(["world", "--scenes", "4", "--dataset", name]) == 0
    capsys.readouterr()
    cases = [
        (["world", "--scenes", "4", "--dataset", name], "already exists"),
        (["world", "--scenes", "0", "--dataset", dataset_name("cli")], "--scenes"),
        (["world", "--scenes", "3", "--dataset", dataset_name("cli"), "--cities", "atlantis"], "atlantis"),
        (["info", "--dataset", "no-such-dataset-xyz"], "does not exist"),
        (["demo", "--scenes", "3", "--dataset", dataset_name("plain")], None),
    ]
    fo.Dataset(cases[-1][0][-1])  # a dataset not made by `autoscale demo`
    cases[-1] = (cases[-1][0], "not made by `autoscale demo`")
    for argv, message in cases:
        assert cli.main(argv) != 0, argv
        err = capsys.readouterr().err
        assert err.startswith("autoscale: error:") and message in err, (argv, err)
    assert len(fo.load_dataset(name)) == 4
    with pytest.raises(SystemExit) as exc:  # argparse usage errors exit 2
        cli.main(["world", "--dataset", name])
    assert exc.value.code == 2


def test_cli_demo_is_idempotent(fo, dataset_name, autoscale_home, capsys):
    from fiftyone_plugin import cli

    name = dataset_name("demo")
    # The engine steps after the dataset are their owners' to test; here: build + reuse.
    assert cli.main(["demo", "--scenes", "10", "--dataset", name, "--dataset-only"]) == 0
    out = capsys.readouterr().out
    assert "topology" in out and f"app --dataset {name}" in out
    ids = fo.load_dataset(name).values("id")
    assert cli.main(["demo", "--scenes", "10", "--dataset", name, "--dataset-only"]) == 0
    assert "reusing" in capsys.readouterr().out
    assert fo.load_dataset(name).values("id") == ids
