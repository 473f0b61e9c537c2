"""Scheduling for real: a Prefect server on 127.0.0.1, the deployments served from code, a triggered run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.scratch import scratch_copy

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prefect server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no healthy Prefect server at {url} after {seconds} s")


@pytest.fixture
def prefect_server(tmp_path):
    """A real `prefect server start` (SQLite) on a free loopback port; yields the environment to reach it."""
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(env["PREFECT_API_URL"], server, 180)
        yield env
    finally:
        server.terminate()
        server.wait(30)


TRIGGER = """
import json, sys
from prefect.deployments import run_deployment
run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=600, as_subflow=False)
print(json.dumps({"state": run.state.type.value, "name": run.name}))
"""


def test_served_deployments_run_when_triggered(prefect_server, tmp_path) -> None:
    work = scratch_copy({"data.demo.identities": 6, "data.demo.images_per_identity": 3, "prepare.workers": 0},
                        into=tmp_path)
    served = subprocess.Popen([sys.executable, "-m", "pipelines.schedules"], cwd=work, env=prefect_server,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        listed = ""
        deadline = time.monotonic() + 120
        while "weekly-study" not in listed or "nightly-generate" not in listed:
            assert time.monotonic() < deadline, "deployments never appeared on the server"
            assert served.poll() is None, served.stdout.read()
            time.sleep(2)
            listed = subprocess.run([sys.executable, "-m", "prefect", "deployment", "ls"], env=prefect_server,
                                    capture_output=True, text=True).stdout
        triggered = subprocess.run([sys.executable, "-c", TRIGGER, "study/weekly-study", json.dumps({"stages": ["prepare"]})],
                                   cwd=work, env=prefect_server, capture_output=True, text=True, timeout=700)
        assert triggered.returncode == 0, triggered.stderr[-3000:]
        assert json.loads(triggered.stdout.strip().splitlines()[-1])["state"] == "COMPLETED"
        assert json.loads((work / "metrics" / "prepare.json").read_text())["images_written"] == 18
        # The schedules are on the server: a cron for each deployment.
        inspected = subprocess.run([sys.executable, "-m", "prefect", "deployment", "inspect", "study/nightly-generate"],
                                   env=prefect_server, capture_output=True, text=True).stdout
        assert "0 2 * * *" in inspected
    finally:
        served.terminate()
        served.wait(30)


def test_study_refuses_unknown_stages() -> None:
    from pipelines.study import study_flow

    with pytest.raises(ValueError, match="unknown stage.*'trian_gan'"):
        study_flow(["prepare", "trian_gan"])
