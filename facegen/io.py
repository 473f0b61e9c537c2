"""Atomic file and folder writes, and where outputs may go: nothing half-written ever looks complete, and
nothing the project did not write is ever replaced."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from facegen.locks import output_lock

log = logging.getLogger(__name__)


def md5sum(path: Path) -> str:
    """Hex MD5 of a file's bytes (what download checks compare with published sums)."""
    return _file_digest(path, "md5")


def sha256sum(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (what outputs record of the checkpoints and data they were made from)."""
    return _file_digest(path, "sha256")


def _file_digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


class UnsafeOutputError(ValueError):
    """An output would replace a folder the project did not write, or overlaps an input; the message names it."""


@contextlib.contextmanager
def atomic_dir(final: Path, marker: str) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `final` in one rename, on error it is removed.

    The block must write the file named ``marker`` (the one the project writes into every such folder): a
    `final` that exists is replaced only when it holds that file or nothing, never a folder of someone else's.
    The run holds `final`'s lock (:func:`facegen.locks.output_lock`) throughout; its temporary folder is named
    after its pid, and those of dead runs (``kill -9``) are removed first.
    """
    final = Path(final)
    check_replaceable(final, marker)
    with output_lock(final):
        remove_leftovers(final.parent, final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
            if not (tmp / marker).is_file():
                raise RuntimeError(f"{final}: the run wrote no {marker}; its output would not be recognised later")
            check_replaceable(final, marker)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def remove_leftovers(folder: Path, name: str = "*") -> None:
    """Remove the temporary files and folders (``.<name>.tmp-*``) that killed runs left in ``folder``. Only for
    a caller that holds the lock of what it writes there: no live run can be using them."""
    for leftover in Path(folder).glob(f".{name}.tmp-*"):
        log.info("removing %s, left by an interrupted run", leftover)
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def check_replaceable(final: Path, marker: str) -> None:
    """Refuse a `final` that is a file, or a non-empty folder without the project's ``marker`` file."""
    final = Path(final)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise UnsafeOutputError(f"{final} exists and is not a folder; refusing to replace it (choose another output)")
    if final.is_dir() and not (final / marker).is_file() and any(final.iterdir()):
        raise UnsafeOutputError(
            f"{final} holds files this project did not write (no {marker}); refusing to "
            f"replace it: choose an empty or new output folder"
        )


def check_separate(output: Path, inputs: Iterable[Path | None], what: str = "output") -> None:
    """Refuse an output that is, or lies inside or around, one of the inputs (``None`` entries are skipped)."""
    out = Path(output).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if out == source or source in out.parents or out in source.parents:
            raise UnsafeOutputError(
                f"{what} {output} overlaps the input {given}: an output must not be an input, "
                f"lie inside one or hold one; choose another folder"
            )


@contextlib.contextmanager
def atomic_file(final: Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary sibling of `final` for writing; it is renamed into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-", dir=final.parent)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    """The process umask (mkstemp/mkdtemp ignore it and create private files; outputs should not be)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
