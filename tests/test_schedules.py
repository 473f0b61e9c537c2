"""Scheduling for real: a Prefect server on 127.0.0.1, the deployments served from code, a triggered run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.scratch import scratch_copy
from pipelines.prefect_server import prefect_server

pytestmark = pytest.mark.slow


@pytest.fixture
def prefect_server_env(tmp_path):
    """A real `prefect server start` (SQLite) on a free loopback port (pipelines.prefect_server, as `make demo`
    starts it); yields the environment to reach it."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    with prefect_server(env) as url:
        yield env | {"PREFECT_API_URL": url}


TRIGGER = """
import json, sys
from prefect.deployments import run_deployment
run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=600, as_subflow=False)
print(json.dumps({"state": run.state.type.value, "name": run.name}))
"""


def test_served_deployments_run_when_triggered(prefect_server_env, tmp_path) -> None:
    work = scratch_copy(
        {"data.demo.identities": 6, "data.demo.images_per_identity": 3, "prepare.workers": 0}, into=tmp_path
    )
    served = subprocess.Popen(
        [sys.executable, "-m", "pipelines.schedules"],
        cwd=work,
        env=prefect_server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        listed = ""
        deadline = time.monotonic() + 120
        while "weekly-study" not in listed or "nightly-generate" not in listed:
            assert time.monotonic() < deadline, "deployments never appeared on the server"
            assert served.poll() is None, served.stdout.read()
            time.sleep(2)
            listed = subprocess.run(
                [sys.executable, "-m", "prefect", "deployment", "ls"],
                env=prefect_server_env,
                capture_output=True,
                text=True,
            ).stdout
        triggered = subprocess.run(
            [sys.executable, "-c", TRIGGER, "study/weekly-study", json.dumps({"stages": ["prepare"]})],
            cwd=work,
            env=prefect_server_env,
            capture_output=True,
            text=True,
            timeout=700,
        )
        assert triggered.returncode == 0, triggered.stderr[-3000:]
        assert json.loads(triggered.stdout.strip().splitlines()[-1])["state"] == "COMPLETED"
        assert json.loads((work / "metrics" / "prepare.json").read_text())["images_written"] == 18
        # The schedules are on the server: a cron for each deployment.
        inspected = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "inspect", "study/nightly-generate"],
            env=prefect_server_env,
            capture_output=True,
            text=True,
        ).stdout
        assert "0 2 * * *" in inspected
    finally:
        served.terminate()
        served.wait(30)


def test_study_refuses_unknown_stages() -> None:
    from pipelines.study import study_flow

    with pytest.raises(ValueError, match="unknown stage.*'trian_gan'"):
        study_flow(["prepare", "trian_gan"])


def test_one_prefect_server_for_a_whole_command(tmp_path) -> None:
    """`python -m pipelines.prefect_server CMD` (make demo): CMD sees one running server, which is stopped after;
    CMD's exit code is the command's; a PREFECT_API_URL already set is used as it is, and no server started."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path)}
    probe = (
        "import os, sys, urllib.request; url = os.environ['PREFECT_API_URL']; print(url); "
        "urllib.request.urlopen(url + '/health', timeout=5); sys.exit(3)"
    )
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.prefect_server", sys.executable, "-c", probe],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 3, run.stderr[-3000:]
    url = run.stdout.strip()
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/health", timeout=2)
    given = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.prefect_server",
            sys.executable,
            "-c",
            "import os; print(os.environ['PREFECT_API_URL'])",
        ],
        cwd=Path(__file__).resolve().parents[1],
        env=env | {"PREFECT_API_URL": "http://h:1/api"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert given.stdout.strip() == "http://h:1/api"
