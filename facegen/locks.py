"""One run per output: a lock file beside the output records who writes it, and refuses a second writer.

A small hand-written lock rather than the ``filelock`` package, because the lock file must say who holds it
(pid, host, start time, command) for the refusal message. Holding is an ``fcntl.flock`` on the file, which
the operating system drops when its process dies however it dies (``kill -9`` too): a lock left by a dead
run is free, and the next run takes it over and says so. Linux and macOS; locks are not re-entrant.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class OutputLockedError(RuntimeError):
    """Another live run writes the same output; the message names it, the owner and the lock file."""


class ForeignLockFileError(ValueError):
    """Where the lock file goes there is something facegen did not put there (a link, a fifo, a user's file)."""


def lock_path(output: Path) -> Path:
    """The lock file of ``output``: ``<parent>/.<name>.lock`` (beside it, so never part of it)."""
    output = Path(output)
    return output.parent / f".{output.name}.lock"


@contextlib.contextmanager
def output_lock(output: Path | str) -> Iterator[Path]:
    """Hold the lock of ``output`` for the block (yields the lock file); a live holder is an error."""
    path = lock_path(Path(output))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, Path(output))
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


def _acquire(path: Path, output: Path) -> int:
    """Open and flock ``path``, retrying when the file was replaced between open and flock; record the owner."""
    while True:
        fd = _open_lock_file(path, output)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLockedError(
                f"{output} is being written by another run ({_describe(read_owner(path))}); "
                f"wait for it to finish or stop it (lock file {path})"
            ) from None
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:  # its holder removed it on release, after our open
            same_file = False
        if same_file:
            break
        os.close(fd)
    previous = read_owner(path)
    if previous:
        log.warning("%s: taking over the lock of a run that died (%s)", output, _describe(previous))
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
    return fd


def _open_lock_file(path: Path, output: Path) -> int:
    """Open (or create) the lock file, never through a symbolic link or a hard link (either could be a file of the
    user's), and only when it is a regular file that is empty or holds a lock record (it is rewritten)."""
    refusal = f"{path}, the lock file of {output}, {{}}; facegen writes nothing through it: remove it and run again"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise ForeignLockFileError(refusal.format("is a symbolic link")) from None
        raise
    status = os.fstat(fd)
    if stat.S_ISREG(status.st_mode) and status.st_nlink > 1:  # another name of the same file: maybe the user's
        os.close(fd)
        raise ForeignLockFileError(refusal.format(f"is a hard link ({status.st_nlink} names for one file)"))
    content = os.pread(fd, 4096, 0) if stat.S_ISREG(status.st_mode) and status.st_size <= 4096 else None
    if content is None or (content.strip() and not _is_owner_record(content)):
        os.close(fd)
        raise ForeignLockFileError(refusal.format("is not a lock file facegen wrote"))
    return fd


def _is_owner_record(content: bytes) -> bool:
    try:
        owner = json.loads(content)
    except ValueError:
        return False
    return isinstance(owner, dict) and {"pid", "host", "started", "command"} <= set(owner)


def read_owner(path: Path) -> dict:
    """The owner recorded in a lock file ({} when empty, unreadable or gone)."""
    try:
        owner = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "owner not recorded yet"
    return f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}: {owner.get('command')}"
