"""Atomic file and folder writes, and where outputs may go: nothing half-written ever looks complete, and
nothing the project did not write is ever replaced."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import logging
import os
import re
import reprlib
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


STAMP_FILE = ".facegen.json"  # in every output folder: {"facegen": <kind>, "version": STAMP_VERSION}
STAMP_VERSION = 1
MAX_STAMP_BYTES = 4096  # a stamp larger than this is not one of ours (and is not read)


@dataclass(frozen=True)
class Layout:
    """What a folder of one kind that facegen writes holds, to tell it from anyone else's by content: its stamp
    (`STAMP_FILE`, naming this kind and the stamp's version exactly), the names of every entry (``entries``:
    fnmatch patterns; ``.<name>.tmp-*`` files of killed runs always), and ``marker``, the file written last
    (a folder without it is unfinished)."""

    kind: str  # what the folder is, for messages and its stamp: "prepared faces"
    marker: str
    entries: tuple[str, ...]
    # a folder facegen wrote before stamps existed, told by content no other tool writes (a persisted GAN
    # training folder: its checkpoint); it counts as this kind's and is stamped when written again
    unstamped: Callable[[Path], bool] | None = None

    def stamp(self, folder: Path) -> None:
        """Mark ``folder`` as a folder of this kind that facegen writes."""
        write_json(Path(folder) / STAMP_FILE, {"facegen": self.kind, "version": STAMP_VERSION})

    def foreign(self, folder: Path) -> str | None:
        """Why ``folder`` is not a folder of this kind (None when it is one, is empty or is missing)."""
        folder = Path(folder)
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return "it exists and is not a folder"
        if not folder.is_dir():
            return None
        names = _relative_paths(folder)
        if not names:
            return None
        allowed = [pattern.split("/") for pattern in (*self.entries, STAMP_FILE)]
        strangers = [n for n in names if not LEFTOVER.match(n.rsplit("/", 1)[-1]) and not _fits(n, allowed)]
        if strangers:
            shown = ", ".join(strangers[:3]) + (" ..." if len(strangers) > 3 else "")
            return f"it holds {shown}, which no folder of {self.kind} has"
        problem = self._stamp_problem(folder / STAMP_FILE)
        if problem and not (folder / STAMP_FILE).exists() and self.unstamped is not None and self.unstamped(folder):
            return None
        return problem

    def _stamp_problem(self, stamp: Path) -> str | None:
        if stamp.is_symlink() or not stamp.is_file():
            return f"it has no {STAMP_FILE} naming it facegen's (made by facegen before 2026-12-06? delete it yourself)"
        expected = {"facegen": self.kind, "version": STAMP_VERSION}
        try:
            if stamp.stat().st_size > MAX_STAMP_BYTES:
                raise ValueError
            with open(stamp, "rb") as f:
                found = json.loads(f.read(MAX_STAMP_BYTES).decode())
        except (OSError, UnicodeDecodeError, ValueError):
            return f"its {STAMP_FILE} is not facegen's"
        if found != expected:
            return f"its {STAMP_FILE} says {short_repr(found)}, not {expected}"
        return None


def _relative_paths(folder: Path) -> list[str]:
    """Every entry below ``folder`` (files, folders, links: not followed), as sorted relative POSIX paths."""
    found = []
    for parent, folders, files in os.walk(folder):
        base = Path(parent).relative_to(folder)
        found += [(base / name).as_posix() for name in (*folders, *files)]
    return sorted(found)


def _fits(relative: str, patterns: list[list[str]]) -> bool:
    """Whether a relative path matches one of the patterns, part by part (``images/*.png``: one level down)."""
    parts = relative.split("/")
    return any(len(p) == len(parts) and all(map(fnmatch.fnmatchcase, parts, p)) for p in patterns)


_SHORT = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 4
_SHORT.maxlevel = 1


def short_repr(value: object) -> str:
    """A value for a message, capped: long strings, long or deep containers shortened with '...'."""
    return _SHORT.repr(value)


@contextlib.contextmanager
def atomic_dir(final: Path, layout: Layout) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `final` in one rename, on error it is removed.

    The block must write ``layout.marker`` (last); the folder gets ``layout``'s stamp. A `final` that exists is
    replaced only when it is a folder of ``layout`` (its stamp and every entry's name say so) or empty, never a
    folder of someone else's.
    The run holds `final`'s lock (:func:`facegen.locks.output_lock`) throughout; its temporary folder is named
    after its pid, and those of dead runs (``kill -9``) are removed first.
    """
    final = Path(final)
    check_replaceable(final, layout)
    with output_lock(final):
        remove_leftovers(final.parent, final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            yield tmp
            if not (tmp / layout.marker).is_file():
                raise RuntimeError(f"{final}: the run wrote no {layout.marker}; its output would not be complete")
            layout.stamp(tmp)
            check_replaceable(final, layout)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


LEFTOVER = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>[0-9]+)-")  # atomic_file's and atomic_dir's temporary names


def remove_leftovers(folder: Path, name: str | None = None) -> None:
    """Remove the temporary files and folders (``.<name>.tmp-<pid>-...``; any name when None) that runs which
    are no longer alive left in ``folder``: nothing else, not a user's ``.thesis.tmp-v2``. Only for a caller
    that holds the lock of what it writes there."""
    folder = Path(folder)
    found = [(entry, LEFTOVER.match(entry.name)) for entry in folder.iterdir()] if folder.is_dir() else []
    for leftover, match in found:
        if match is None or (name is not None and match["name"] != name) or _alive(int(match["pid"])):
            continue
        log.info("removing %s, left by an interrupted run", leftover)
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def check_replaceable(final: Path, layout: Layout) -> None:
    """Refuse a `final` that exists and is not an empty folder or a folder of ``layout``, saying why."""
    why = layout.foreign(final)
    if why is not None:
        raise UnsafeOutputError(
            f"{final} is not a folder of {layout.kind} that facegen wrote ({why}); refusing to replace it: "
            "choose an empty or new output folder"
        )


def check_file_output(path: Path, ours: Callable[[Path], bool], what: str) -> None:
    """Refuse to replace an existing file at ``path`` that ``ours`` does not recognise as a file of ``what`` that
    facegen wrote (a user's photo given as ``-o``, a checkpoint named as another stage's output), or a folder."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UnsafeOutputError(f"{path} exists and is not a plain file; refusing to replace it with {what}")
    if path.is_file() and not ours(path):
        raise UnsafeOutputError(
            f"{path} exists and is not {what} that facegen wrote; refusing to replace it: choose another file name"
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


PNG_SOFTWARE = "facegen"  # the tEXt "Software" entry of every PNG facegen writes outside DVC's outputs: replaceable


def is_facegen_png(path: Path) -> bool:
    """Whether ``path`` is a PNG facegen wrote (its ``Software`` text entry says so)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == PNG_SOFTWARE
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


class InputTooLargeError(ValueError):
    """An input file is larger than any file of its kind should be; the message names it and the cap."""


def read_text_file(path: Path | str, max_bytes: int, encoding: str = "utf-8") -> str:
    """The text of the regular file ``path`` (universal newlines, as ``Path.read_text``), read only when it
    holds at most ``max_bytes`` (checked before
    reading; a fifo or device is refused without waiting on it). OSError or ValueError (UnicodeDecodeError,
    InputTooLargeError) otherwise; a caller names the setting in its own message."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise InputTooLargeError(f"{path}: not a regular file")
        if status.st_size > max_bytes:
            raise InputTooLargeError(
                f"{path}: {status.st_size:,} bytes, more than the {max_bytes:,} such a file may have"
            )
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputTooLargeError(f"{path}: grew past {max_bytes:,} bytes while read")
    return data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")  # newlines as text mode reads them


@contextlib.contextmanager
def atomic_file(final: Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary sibling of `final` for writing; it is renamed into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent)
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


def read_json(path: Path) -> Any:
    """A JSON file's content; a truncated or hand-broken file is an error naming it (json's own names no file)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON ({err.msg}: line {err.lineno} column {err.colno}); cut short or edited? "
            "rerun what writes it"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid JSON (not UTF-8 text); rerun what writes it") from None


def load_array(path: Path, mmap_mode: str | None = None) -> Any:
    """An .npy file's array (never unpickled: an array of Python objects is refused), or an error naming the
    file; numpy's own messages name none."""
    import numpy as np

    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise ValueError(
            f"{path}: not an array facegen wrote ({' '.join(str(err).split())}); rerun what writes it"
        ) from None


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
