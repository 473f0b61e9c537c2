"""Processes die with their parent (issue 31): `kill -9` or SIGTERM of a stage or of
`python -m pipelines.prefect_server COMMAND` (what `make demo` runs) leaves no Prefect server and no command running.
Real signals to real processes; Linux only (the parent-death signal and /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.processes import alive, children, command_line, wait_gone

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal and /proc are Linux's"),
]


def _env() -> dict[str, str]:
    """This environment (its PREFECT_HOME: conftest's) without a server to report to, with this checkout first."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _servers(pid: int) -> list[int]:
    """The Prefect servers ``pid`` started: `prefect server start`, or the uvicorn Prefect starts by itself."""
    return [
        p for p in children(pid) if any(s in command_line(p) for s in ("prefect server start", "server:create_app"))
    ]


def _wait_for(condition, seconds: float, what: str, run: subprocess.Popen) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if run.poll() is not None or time.monotonic() > deadline:
            run.kill()
            pytest.fail(f"{what} not seen within {seconds} s (exit {run.wait()})")
        time.sleep(0.2)


def test_kill_9_of_a_stage_mid_run_leaves_no_prefect_server(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["workers"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = subprocess.Popen(
        [sys.executable, "-m", "pipelines.prepare", "--params", "params.yaml"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: _servers(stage.pid), 120, "the stage's Prefect server", stage)
    servers = _servers(stage.pid)
    _wait_for(lambda: (tmp_path / "data").exists(), 180, "the flow writing data/", stage)  # the flow is running
    assert all(alive(p) for p in servers)
    stage.send_signal(signal.SIGKILL)
    stage.wait()
    assert wait_gone(servers) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_signal_to_prefect_server_command_ends_both_the_server_and_the_command(signum: int) -> None:
    sleeper = "import time; print('started', flush=True); time.sleep(600)"
    run = subprocess.Popen(
        [sys.executable, "-m", "pipelines.prefect_server", sys.executable, "-c", sleeper],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert run.stdout.readline().strip() == "started"  # the server is up and the command running
    servers = _servers(run.pid)
    commands = [p for p in children(run.pid) if "time.sleep(600)" in command_line(p)]
    assert len(servers) == len(commands) == 1
    run.send_signal(signum)
    code = run.wait(timeout=60)
    assert wait_gone(servers + commands) == []
    # SIGTERM is passed on: the command ends by it and the wrapper reports so, as a shell would (128 + 15)
    assert code == (128 + signal.SIGTERM if signum == signal.SIGTERM else -signal.SIGKILL)


def test_kill_9_of_prefect_server_command_mid_stage_ends_the_stage_within_seconds(tmp_path: Path) -> None:
    """`make demo`'s wrapper killed while a stage runs: the server and the stage get their parent-death SIGTERM
    together, and Prefect's retries against the dead server used to keep the stage alive for about 150 s."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["prepare"]["workers"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = [sys.executable, "-m", "pipelines.prepare", "--params", "params.yaml"]
    run = subprocess.Popen(
        [sys.executable, "-m", "pipelines.prefect_server", *stage],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: (tmp_path / "data").exists(), 180, "the stage's flow writing data/", run)
    servers = _servers(run.pid)
    commands = [p for p in children(run.pid) if "pipelines.prepare" in command_line(p)]
    tree = servers + commands + [c for p in servers + commands for c in children(p)]
    assert len(servers) == len(commands) == 1 and all(alive(p) for p in tree)
    run.send_signal(signal.SIGKILL)
    run.wait()
    killed = time.monotonic()
    assert wait_gone(tree, seconds=20) == []
    assert time.monotonic() - killed < 20  # the stage's own bound is 10 s (pipelines.ORPHAN_GRACE_S)
