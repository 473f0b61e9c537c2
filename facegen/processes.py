"""Interrupted runs leave nothing behind: helper processes die with their parent, SIGTERM cleans up.

``kill -9`` of a run gives it no chance to stop its DataLoader workers (each holds a copy of the data set,
hundreds of MB), so each worker asks Linux to kill it when its parent dies (``die_with_parent``, called from
the loader's ``worker_init_fn``: ``prctl(PR_SET_PDEATHSIG)``); the Prefect servers and commands the stages and
``pipelines.prefect_server`` start get SIGTERM when their parent dies (``parent_death_signal``, a ``preexec_fn``),
so that they shut down cleanly.
``SIGTERM`` (``kill``, a CI timeout, a scheduler) is turned into ``SystemExit``, so that ``finally`` blocks run:
temporary folders are removed and locks released, as after Ctrl-C.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

PR_SET_PDEATHSIG = 1  # linux/prctl.h


@functools.cache
def _prctl() -> Callable[..., int]:
    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> None:
    """Have the kernel send this process ``signum`` (default SIGKILL) when its parent dies (Linux; elsewhere a
    no-op). Exits at once if the parent is already gone (it died before the request was made). "Parent" is, to
    the kernel, the thread that started this process: start children that should outlive a thread from the main
    thread."""
    if not sys.platform.startswith("linux"):
        return
    if _prctl()(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        os._exit(1)


def parent_death_signal(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``signum`` (default SIGTERM, to shut down
    cleanly) when this process dies, ``kill -9`` included. ``None`` (no hook) outside Linux. The C function is
    looked up here, in the parent: the forked child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    _prctl()
    return functools.partial(die_with_parent, os.getpid(), signum)


def exit_on_sigterm() -> None:
    """From now on SIGTERM raises ``SystemExit(143)`` in the main thread, unwinding ``finally`` blocks."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
