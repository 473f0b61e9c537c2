"""What Prefect costs a stage: one trivial stage, run as DVC runs a stage (a fresh `python -m` process), three ways.

- ``no_flow``: the stage's command line without a Prefect flow (imports and argument parsing only);
- ``own_server``: a flow with no ``PREFECT_API_URL``, so the process starts and stops a temporary server of its
  own (every stage of `dvc repro` before issue 21);
- ``shared_server``: a flow reporting to one `prefect server start` (`make demo`: pipelines.prefect_server).

    python -m bench.prefect_overhead [--runs 3]

prints JSON: the median seconds per run of each, the overheads over ``no_flow``, and the shared server's one-off
start. Each way gets one unrecorded warm-up run (a new Prefect database migrates on its first start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.prefect_server import prefect_server

REPO = Path(__file__).resolve().parents[1]
STAGE = """
from prefect import flow
from pipelines import run_from_command_line

@flow(name="trivial")
def trivial(params_file: str = "params.yaml") -> str:
    return params_file

run_from_command_line({target}, None)
"""


def stage_seconds(flow: bool, env: dict[str, str], runs: int) -> float:
    """Median wall time of ``runs`` fresh stage processes (after one warm-up run)."""
    code = STAGE.format(target="trivial" if flow else "trivial.fn")
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each way (default 3)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="prefect-overhead-") as home:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": home}
        result = {
            "runs": runs,
            "no_flow_s": stage_seconds(False, env, runs),
            "own_server_s": stage_seconds(True, env, runs),
        }
        start = time.perf_counter()
        with prefect_server(env) as url:
            result["shared_server_start_s"] = time.perf_counter() - start
            result["shared_server_s"] = stage_seconds(True, env | {"PREFECT_API_URL": url}, runs)
    result["own_server_overhead_s"] = result["own_server_s"] - result["no_flow_s"]
    result["shared_server_overhead_s"] = result["shared_server_s"] - result["no_flow_s"]
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}, indent=2))


if __name__ == "__main__":
    main()
