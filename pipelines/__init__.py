"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`.

Importing this package changes nothing: a stage process sets itself up in :func:`run_from_command_line`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

from facegen.cpu_kernels import pin_avx2_kernels
from facegen.processes import exit_on_sigterm


def run_from_command_line(stage_flow: Callable[..., Any], description: str | None, **options: dict) -> object:
    """`python -m pipelines.<stage> [--params FILE] [--OPTION VALUE ...]`: run the stage's flow on that parameters
    file; each keyword adds ``--<keyword>`` (its argparse settings), passed to the flow by that name.

    First, the recorded study's CPU kernels (facegen.cpu_kernels: a fresh clone reproduces dvc.lock and
    metrics/ on any x86-64 CPU; no tensor op has run yet), then the flow under :func:`stage_settings`."""
    pin_avx2_kernels()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    for name, settings in options.items():
        parser.add_argument(f"--{name}", **settings)
    args = vars(parser.parse_args())
    exit_on_sigterm()  # a stage ended with `kill` removes its temporary folders and releases its locks
    with stage_settings():
        return stage_flow(params_file=args.pop("params"), **args)


@contextlib.contextmanager
def stage_settings() -> Iterator[None]:
    """Prefect settings for a stage's flow, each unless its variable is set in the environment (yours wins):
    no usage telemetry (these machines are often offline), and 120 s rather than 20 s for a temporary local
    server to start (its first start migrates a new database, which a busy 2-core machine can take longer for).
    Prefect reads its environment once, at import: hence settings, not environment variables."""
    from prefect.settings import (
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    defaults = {PREFECT_SERVER_ANALYTICS_ENABLED: False, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 120}
    with temporary_settings(updates={s: v for s, v in defaults.items() if s.name not in os.environ}):
        yield
