"""Interrupted runs leave nothing behind: helper processes die with their parent, SIGTERM cleans up.

``kill -9`` of a run gives it no chance to stop its DataLoader workers (each holds a copy of the data set,
hundreds of MB), so each worker asks Linux to kill it when its parent dies (``die_with_parent``, called from
the loader's ``worker_init_fn``: ``prctl(PR_SET_PDEATHSIG)``).
``SIGTERM`` (``kill``, a CI timeout, a scheduler) is turned into ``SystemExit``, so that ``finally`` blocks run:
temporary folders are removed and locks released, as after Ctrl-C.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux; elsewhere a no-op). Exits at once if
    the parent is already gone (it died before the request was made)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        os._exit(1)


def exit_on_sigterm() -> None:
    """From now on SIGTERM raises ``SystemExit(143)`` in the main thread, unwinding ``finally`` blocks."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
