"""Safe zip extraction: no member may land outside the destination, a half-done run never looks complete, the
cost is checked before anything is written (zip bombs, free disk), and nothing the extraction did not create is
replaced."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

from facegen.io import md5sum

log = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_RATIO = 100.0  # uncompressed / compressed size above which a large member (or archive) is taken for a zip bomb
RATIO_MIN_BYTES = 10 << 20  # members (and archives) smaller than this are not held to MAX_RATIO


class UnsafeArchiveError(ValueError):
    """A zip member would be written outside the destination, is a symbolic link, or expands like a zip bomb."""


class NotEnoughSpaceError(OSError):
    """The archive's declared uncompressed size does not fit in the destination's free space."""


class ExistingEntryError(FileExistsError):
    """A top-level entry of the archive exists in the destination and no earlier extraction of it created it."""


def marker_path(archive: Path, dest: Path) -> Path:
    """The JSON file in `dest` recording what extracting `archive` there created (name, size, md5, entries)."""
    return Path(dest) / f".extracted-{Path(archive).name}.json"


def safe_extract_zip(
    archive: Path, dest: Path, *, max_ratio: float = MAX_RATIO, ratio_min_bytes: int = RATIO_MIN_BYTES
) -> int:
    """Extract `archive` into `dest` after checking every member; return the number of files written.

    Checked from the zip's directory before anything is written: every member stays inside `dest` and is no
    link; no member over `ratio_min_bytes` expands more than `max_ratio` times, nor the whole archive if it is
    over `ratio_min_bytes` (zipfile never writes more than a member's declared size, so these bound the output);
    the declared total fits in the free space of `dest`; and no top-level entry would replace one in `dest` that
    an earlier extraction of this archive did not create (the marker, `marker_path`, lists those). Members are
    written to a temporary folder inside `dest`, each top-level entry is then renamed into place, and the marker
    is completed last. A second call with the marker complete for the same contents does nothing and returns 0.
    """
    archive, dest = Path(archive), Path(dest)
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        paths = [_member_parts(archive, dest, info) for info in members]  # all checked before any write
        _check_ratios(archive, members, max_ratio, ratio_min_bytes)
        fingerprint = _fingerprint(members)
        marker = marker_path(archive, dest)
        record = _read_marker(marker, archive)
        legacy = dest / f".extracted-{archive.name}-{fingerprint}"  # the empty marker of earlier versions
        if record.get("complete") and record.get("fingerprint") == fingerprint:
            log.info("%s: already extracted into %s", archive.name, dest)
            return 0
        entries = sorted({parts[0] for parts in paths if parts})
        _check_entries(archive, dest, members, paths, marker, legacy, set(record.get("entries", [])))
        if not legacy.is_file():
            _check_owned_unchanged(archive, dest, entries, paths, record)
        if legacy.is_file():  # extracted by an earlier version: its entries are this archive's; record them
            listings = {e: _listing(dest / e) for e in entries if os.path.lexists(dest / e)}
            _write_marker(marker, archive, md5sum(archive), fingerprint, entries, listings, complete=True)
            legacy.unlink()
            log.info("%s: already extracted into %s", archive.name, dest)
            return 0
        _check_space(archive, dest, sum(info.file_size for info in members))
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
            owned, md5 = sorted(set(record.get("entries", [])) | set(entries)), md5sum(archive)
            new = {entry.name: _listing(entry) for entry in Path(tmp).iterdir()}
            old = _listings(record)
            # before any entry is replaced; an interrupted run leaves each entry as either listing
            _write_marker(marker, archive, md5, fingerprint, owned, old, complete=False, pending=new)
            for old in dest.glob(f".extracted-{archive.name}-*"):
                old.unlink()
            for entry in Path(tmp).iterdir():
                _replace(entry, dest / entry.name)
        _write_marker(marker, archive, md5, fingerprint, owned, {**old, **new}, complete=True)
    log.info("%s: extracted %d files into %s", archive.name, count, dest)
    return count


def _check_ratios(archive: Path, members: list[zipfile.ZipInfo], max_ratio: float, min_bytes: int) -> None:
    """Refuse a member, or the whole archive, over `min_bytes` that expands more than `max_ratio` times."""
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > min_bytes and ratio > max_ratio:
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} expands {ratio:.0f}x ({info.file_size:,} bytes from "
                f"{info.compress_size:,}), above {max_ratio:g}x for members over {min_bytes:,} bytes: a zip bomb? "
                "refusing to extract"
            )
    total, packed = sum(i.file_size for i in members), sum(i.compress_size for i in members)
    ratio = total / max(packed, 1)
    if total > min_bytes and ratio > max_ratio:
        raise UnsafeArchiveError(
            f"{archive}: its {len(members)} members expand {ratio:.0f}x ({total:,} bytes from {packed:,}), above "
            f"{max_ratio:g}x for archives over {min_bytes:,} bytes: a zip bomb? refusing to extract"
        )


def _check_space(archive: Path, dest: Path, needed: int) -> None:
    """Refuse to start an extraction whose declared size does not fit in the free space where `dest` is."""
    existing = dest
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise NotEnoughSpaceError(
            f"{archive}: extracting needs {needed / 1e6:,.0f} MB (its declared uncompressed size) but {existing} "
            f"has {free / 1e6:,.0f} MB free; free some space and run again"
        )


def _check_entries(
    archive: Path,
    dest: Path,
    members: list[zipfile.ZipInfo],
    paths: list[tuple[str, ...]],
    marker: Path,
    legacy: Path,
    owned: set[str],
) -> None:
    """Refuse a top-level entry that is the marker, or would replace an entry of `dest` not in `owned` (what earlier
    extractions of this archive created); with an earlier version's marker for these contents, all are its own."""
    for info, parts in zip(members, paths):
        if not parts:
            continue
        top = parts[0]
        if top == marker.name or top.startswith((f".extracted-{archive.name}", f".{archive.name}.extract-")):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} has the name of the extraction's own files")
        final = dest / top
        if (final.exists() or final.is_symlink()) and top not in owned and not legacy.is_file():
            raise ExistingEntryError(
                f"{archive}: member {info.filename!r} would replace {final}, which no earlier extraction of "
                f"{archive.name} created (see {marker.name}); move or rename it, then run again"
            )


def _read_marker(marker: Path, archive: Path) -> dict:
    """The marker's record, or {} if there is none or it is not one this module wrote for `archive`."""
    try:
        record = json.loads(marker.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable (%s); no earlier extraction is taken as known", marker, err)
        return {}
    entries = record.get("entries") if isinstance(record, dict) else None
    if (
        not isinstance(entries, list)
        or record.get("archive") != archive.name
        or not all(isinstance(e, str) and e and "/" not in e and e not in (".", "..") for e in entries)
    ):
        log.warning("%s: not a marker of %s; no earlier extraction is taken as known", marker, archive.name)
        return {}
    return record


def _write_marker(
    marker: Path,
    archive: Path,
    md5: str,
    fingerprint: str,
    entries: list[str],
    listings: dict[str, dict],
    *,
    complete: bool,
    pending: dict[str, dict] | None = None,
) -> None:
    """Write the marker atomically: the archive's name, size, md5 and contents fingerprint, `entries`, and the
    listing (file count and digest, `_listing`) of each entry as written, plus `pending` ones while incomplete."""
    record = {
        "archive": archive.name,
        "size": archive.stat().st_size,
        "md5": md5,
        "fingerprint": fingerprint,
        "entries": entries,
        "listings": listings,
        "complete": complete,
    }
    if pending:
        record["pending"] = pending
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, marker)


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


def _files(path: Path) -> list[tuple[str, int]]:
    """The (relative name, size) of every non-folder below `path` (or of `path` itself, named ""), sorted; links
    are not followed and have size -1."""
    if not path.is_dir() or path.is_symlink():
        st = path.lstat()
        return [("", st.st_size if stat.S_ISREG(st.st_mode) else -1)]
    found = []
    for folder, dirs, names in os.walk(path):
        base = Path(folder).relative_to(path)
        for name in names + [d for d in dirs if (Path(folder) / d).is_symlink()]:
            st = (Path(folder) / name).lstat()
            found.append(((base / name).as_posix(), st.st_size if stat.S_ISREG(st.st_mode) else -1))
    return sorted(found)


def _digest(files: list[tuple[str, int]]) -> str:
    digest = hashlib.sha256()
    for name, size in files:
        digest.update(f"{name}\0{size}\n".encode())
    return digest.hexdigest()


def _listing(path: Path) -> dict:
    """What an extraction wrote at `path`: its file count and the sha256 of its sorted (name, size) list."""
    files = _files(path)
    return {"count": len(files), "sha256": _digest(files)}


def _listings(record: dict) -> dict[str, dict]:
    listings = record.get("listings")
    if not isinstance(listings, dict):
        return {}
    return {k: v for k, v in listings.items() if isinstance(v, dict) and {"count", "sha256"} <= v.keys()}


def _check_owned_unchanged(
    archive: Path, dest: Path, entries: list[str], paths: list[tuple[str, ...]], record: dict
) -> None:
    """Refuse to replace an entry an earlier extraction created whose files are no longer what it wrote (a file
    the user added, removed or changed in size). A record without listings (earlier versions): refuse unless all
    the entry's files are members of the new archive."""
    owned = set(record.get("entries", []))
    known = _listings(record)
    pending = record.get("pending") if isinstance(record.get("pending"), dict) else {}
    members = {"/".join(parts) for parts in paths if parts}
    for entry in entries:
        final = dest / entry
        if entry not in owned or not os.path.lexists(final):
            continue
        files = _files(final)
        names = [f"{entry}/{name}" if name else entry for name, _ in files]
        wants = [w for w in (known.get(entry), pending.get(entry)) if isinstance(w, dict)]
        if wants:
            if {"count": len(files), "sha256": _digest(files)} in wants:
                continue
            # the most recently added file is the likeliest the user's (extracted ones predate the record)
            outside = [n for n in names if n not in members] or names
            newest = max(outside, key=lambda n: (dest / n).lstat().st_ctime, default=None)
            example = f"{len(files)} files now, {wants[0].get('count')} written" + (
                f"; e.g. {newest}, not in {archive.name}" if newest and newest not in members else ""
            )
            if newest and newest in members:
                example += f"; newest file {newest}"
            raise ExistingEntryError(
                f"{archive}: {final} is not what the earlier extraction wrote ({example}); move your files out of "
                "it (or move it away), then run again"
            )
        extra = next((n for n in names if n not in members), None)
        if extra is not None:
            raise ExistingEntryError(
                f"{archive}: {final} holds {extra}, which is not in {archive.name}, and the extraction record has no "
                "listing of it; move your files out of it (or move it away), then run again"
            )


def _replace(src: Path, final: Path) -> None:
    """Rename `src` to `final`, removing whatever `final` was (folder, file or link) first."""
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)
    elif final.exists() or final.is_symlink():
        final.unlink()
    os.replace(src, final)
