"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`."""

import os

from facegen.cpu_kernels import pin_avx2_kernels
from facegen.processes import exit_on_sigterm

# These machines are often offline: don't let Prefect's local server try to send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary local server migrates a new database on first start: on a busy 2-core machine that can
# take longer than Prefect's default 20 s wait.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The recorded study's CPU kernels, so that a fresh clone reproduces dvc.lock and metrics/ on any x86-64 CPU.
pin_avx2_kernels()


def run_from_command_line(stage_flow, description: str | None, **options: dict) -> object:
    """`python -m pipelines.<stage> [--params FILE] [--OPTION VALUE ...]`: run the stage's flow on that parameters
    file; each keyword adds ``--<keyword>`` (its argparse settings), passed to the flow by that name."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    for name, settings in options.items():
        parser.add_argument(f"--{name}", **settings)
    args = vars(parser.parse_args())
    exit_on_sigterm()  # a stage ended with `kill` removes its temporary folders and releases its locks
    return stage_flow(params_file=args.pop("params"), **args)
