"""Safe zip extraction: no member may land outside the destination, and a half-done run never looks complete."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeArchiveError(ValueError):
    """A zip member would be written outside the destination, or is a symbolic link."""


def safe_extract_zip(archive: Path, dest: Path) -> int:
    """Extract `archive` into `dest` after checking every member; return the number of files written.

    Members are written to a temporary folder inside `dest`; each top-level entry is then renamed into
    place and a marker file (named after the archive's contents) is written last. A second call with
    the marker present does nothing and returns 0.
    """
    archive, dest = Path(archive), Path(dest)
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        paths = [_member_parts(archive, dest, info) for info in members]  # all checked before any write
        marker = dest / f".extracted-{archive.name}-{_fingerprint(members)}"
        if marker.is_file():
            log.info("%s: already extracted into %s", archive.name, dest)
            return 0
        dest.mkdir(parents=True, exist_ok=True)
        count = 0
        with tempfile.TemporaryDirectory(prefix=f".{archive.name}.extract-", dir=dest) as tmp:
            for info, parts in zip(members, paths):
                if not parts:
                    continue
                target = Path(tmp).joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                count += 1
            for old in dest.glob(f".extracted-{archive.name}-*"):
                old.unlink()
            for entry in Path(tmp).iterdir():
                _replace(entry, dest / entry.name)
        marker.touch()
    log.info("%s: extracted %d files into %s", archive.name, count, dest)
    return count


def _member_parts(archive: Path, dest: Path, info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The member's path components below `dest`; refuses symlinks and anything that could escape `dest`."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {name!r} is a symbolic link; refusing to extract")
    normalised = name.replace("\\", "/")
    parts = tuple(p for p in normalised.split("/") if p not in ("", "."))
    if normalised.startswith("/") or _DRIVE.match(normalised) or ".." in parts or "\0" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside {dest}; refusing to extract")
    return parts


def _fingerprint(members: list[zipfile.ZipInfo]) -> str:
    """A short digest of the member names, CRCs and sizes (the archive's content, read from its directory)."""
    digest = hashlib.sha1()
    for info in members:
        digest.update(f"{info.filename}\0{info.CRC}\0{info.file_size}\n".encode())
    return digest.hexdigest()[:16]


def _replace(src: Path, final: Path) -> None:
    """Rename `src` to `final`, removing whatever `final` was (folder, file or link) first."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    elif final.exists() or final.is_symlink():
        final.unlink()
    os.replace(src, final)
