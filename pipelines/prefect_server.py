"""One Prefect server for many stage processes: `python -m pipelines.prefect_server dvc repro`.

Without ``PREFECT_API_URL`` every stage process starts and stops a temporary server of its own (15-25 s of each
stage on a 2-core machine). Under this command the stages of one `dvc repro` all report to a single
`prefect server start` on 127.0.0.1, started before the command and stopped after it. When ``PREFECT_API_URL``
is set already, that server is used and none is started.

Nothing outlives this command: the server and the command get SIGTERM when it dies (``kill -9`` included:
``facegen.processes.parent_death_signal``), and a SIGTERM it receives is passed on to the command, after which the
server is stopped. A stage run as the command ends at most ``pipelines.ORPHAN_GRACE_S`` (10 s) after this process
dies, even while Prefect retries the server that died with it; a command that has not ended
``STOP_GRACE_S`` after a SIGTERM or Ctrl-C passed on to it (the server may have got one too) is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from typing import IO

from facegen.processes import parent_death_signal

STOP_GRACE_S = 15.0  # seconds a command has to end after a SIGTERM or Ctrl-C, before it is killed


@contextlib.contextmanager
def prefect_server(env: Mapping[str, str] | None = None, startup_seconds: float = 180) -> Iterator[str]:
    """Yield the API URL of a running Prefect server: ``PREFECT_API_URL`` of ``env`` (default: this process's
    environment) when set, else a `prefect server start` on a free loopback port (its database under ``env``'s
    ``PREFECT_HOME``), stopped when the block ends, or sent SIGTERM by the kernel if this process dies first
    (start it from the main thread: the kernel takes the starting thread for the parent)."""
    env = os.environ if env is None else env
    if url := env.get("PREFECT_API_URL"):
        yield url
        return
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", **env}  # offline machines: no telemetry
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=parent_death_signal(signal.SIGTERM),
        )
        try:
            _wait_healthy(url, server, startup_seconds, log)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, seconds: float, log: IO[str]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    log.seek(0)
    state = f"exited with {server.returncode}" if server.poll() is not None else f"not healthy after {seconds} s"
    raise RuntimeError(f"prefect server start on {url}: {state}\n{log.read()[-3000:]}")


def main() -> None:
    """Run the command line given as arguments with ``PREFECT_API_URL`` set to one server; exit with its code.
    SIGTERM is passed on to the command; the server is stopped when the command has ended."""
    if len(sys.argv) < 2:
        sys.exit(f"usage: python -m pipelines.prefect_server COMMAND [ARG ...]\n\n{__doc__}")
    with prefect_server() as url:
        command = subprocess.Popen(
            sys.argv[1:],
            env={**os.environ, "PREFECT_API_URL": url},
            preexec_fn=parent_death_signal(signal.SIGTERM),
        )
        stop_by: list[float] = []  # when a command told to stop is killed

        def _pass_on(signum: int, frame: object) -> None:
            command.send_signal(signum)
            stop_by.append(time.monotonic() + STOP_GRACE_S)

        signal.signal(signal.SIGTERM, _pass_on)
        code = None
        while code is None:
            try:
                code = command.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if stop_by and time.monotonic() > stop_by[0]:
                    command.kill()
            except KeyboardInterrupt:  # Ctrl-C reached the command too (one process group): let it unwind first
                stop_by.append(time.monotonic() + STOP_GRACE_S)
    sys.exit(128 - code if code < 0 else code)  # a command ended by signal N exits as a shell reports it, 128 + N


if __name__ == "__main__":
    main()
