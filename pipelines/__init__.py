"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`.

Importing this package changes nothing: a stage process sets itself up in :func:`run_from_command_line`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from facegen.cpu_kernels import pin_avx2_kernels
from facegen.processes import exit_on_sigterm

# Errors whose message says all a user needs: the file, parameter or output and what is wrong with it (the
# project's own errors derive from these: ParamsError, CheckpointError, AnnotationError, UnsafeOutputError,
# OutputLockedError, ...; pydantic's ValidationError is a ValueError). `facegen` and the stages print them in one
# line (:func:`one_line`) and exit with code 2.
USER_ERRORS = (ValueError, OSError, RuntimeError)
DEBUG_VARIABLE = "FACEGEN_DEBUG"  # =1: errors end in their traceback, in the stages and in `facegen`
# Seconds a stage whose parent died has to unwind (its own finally blocks run first, in well under a second) and
# report to Prefect before it ends at once: a stage under `pipelines.prefect_server` gets its parent-death SIGTERM
# as that server does, and Prefect's client then retries the dead server for two minutes and more.
ORPHAN_GRACE_S = 10.0
PR_GET_PDEATHSIG = 2  # linux/prctl.h


def one_line(err: BaseException) -> str:
    """The error's message on one line: its whitespace runs made single spaces (its type's name if it has none)."""
    return " ".join(str(err).split()) or type(err).__name__


def debugging() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def run_from_command_line(stage_flow: Callable[..., Any], description: str | None, **options: dict) -> object:
    """`python -m pipelines.<stage> [--params FILE] [--OPTION VALUE ...]`: run the stage's flow on that parameters
    file; each keyword adds ``--<keyword>`` (its argparse settings), passed to the flow by that name.

    First, the recorded study's CPU kernels (facegen.cpu_kernels: a fresh clone reproduces dvc.lock and
    metrics/ on any x86-64 CPU; no tensor op has run yet), then the flow under :func:`stage_settings`.
    A user error (:data:`USER_ERRORS`) ends the stage as one line, ``error: <message>`` on stderr, and exit code 2,
    with no traceback from Prefect either; ``FACEGEN_DEBUG=1`` keeps the tracebacks."""
    pin_avx2_kernels()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    for name, settings in options.items():
        parser.add_argument(f"--{name}", **settings)
    args = vars(parser.parse_args())
    exit_on_sigterm()  # a stage ended with `kill` removes its temporary folders and releases its locks
    _end_when_orphaned(ORPHAN_GRACE_S)
    debug = debugging()
    for name in () if debug else ("prefect.flow_runs", "prefect.task_runs"):
        logging.getLogger(name).addFilter(_NoTracebackOfUserErrors())
    try:
        with stage_settings():
            return stage_flow(params_file=args.pop("params"), **args)
    except USER_ERRORS as err:  # one line, as from `facegen`, also under `dvc repro`
        if debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def _end_when_orphaned(grace_s: float) -> None:
    """When this process was started to die with its parent (a parent-death signal is set: by
    `pipelines.prefect_server`, or a stage's own server), end it ``grace_s`` after its parent is gone, whatever it is
    still doing. The kernel's SIGTERM lets it unwind; this bounds the unwinding, which Prefect's retries against a
    server killed with the parent would stretch to minutes. A stage started otherwise (a shell, `nohup`, dvc) is
    left alone: outliving its parent is then the user's choice."""
    if not sys.platform.startswith("linux"):
        return
    signum = ctypes.c_int(0)
    if ctypes.CDLL(None, use_errno=True).prctl(PR_GET_PDEATHSIG, ctypes.byref(signum), 0, 0, 0) != 0 or not signum:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        time.sleep(grace_s)
        os._exit(128 + signum.value)

    threading.Thread(target=watch, name="end-when-orphaned", daemon=True).start()


class _NoTracebackOfUserErrors(logging.Filter):
    """Prefect logs a failed run's exception with its traceback, which the stage then reports itself: for a user
    error (:data:`USER_ERRORS`), its log record keeps the message and loses the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], USER_ERRORS):
            record.exc_info = record.exc_text = None
        return True


@contextlib.contextmanager
def stage_settings() -> Iterator[None]:
    """Prefect settings for a stage's flow, each unless its variable is set in the environment (yours wins):
    no usage telemetry (these machines are often offline), and a Prefect server. Without an API URL (``make demo``
    and ``python -m pipelines.prefect_server`` set ``PREFECT_API_URL``), the stage starts a temporary server of
    its own, `prefect server start` without its UI (pipelines.prefect_server), which the kernel stops with the
    stage even after ``kill -9``: the temporary server Prefect would start itself outlives a killed stage.
    Prefect reads its environment once, at import: hence settings, not environment variables."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings

    from pipelines.prefect_server import prefect_server

    defaults = {PREFECT_SERVER_ANALYTICS_ENABLED: False}
    updates = {s: v for s, v in defaults.items() if s.name not in os.environ}
    with contextlib.ExitStack() as stack:
        if not PREFECT_API_URL.value():
            server_env = {"PREFECT_UI_ENABLED": "false", **os.environ}
            updates[PREFECT_API_URL] = stack.enter_context(prefect_server(server_env, startup_seconds=120))
        stack.callback(_send_prefect_logs_and_events)  # before the stage's server stops
        stack.enter_context(temporary_settings(updates=updates))
        yield


def _send_prefect_logs_and_events(seconds: float = 30) -> None:
    """Wait for Prefect's background workers to send the logs and events they hold. Prefect does so at exit,
    when a stage's own server has stopped (each would then retry against a closed port for a minute or more),
    and says so ("Still processing items") after a stage's last line."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    loggers = {logging.getLogger(w.__name__): logging.getLogger(w.__name__).level for w in (APILogWorker, EventsWorker)}
    for logger in loggers:  # their "Still processing items: 1 items remaining..." is no news here
        logger.setLevel(logging.ERROR)
    try:
        for worker in (APILogWorker, EventsWorker):
            worker.drain_all(timeout=seconds, at_exit=False)
    finally:
        for logger, level in loggers.items():
            logger.setLevel(level)
