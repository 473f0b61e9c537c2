"""Fetch the official CelebA files from Google Drive (gdown) or a mirror: md5-verified, resumable, idempotent.

Each file is written to ``<name>.part`` and renamed to its official name only once its md5 matches, so a
file under its final name is always complete. Files already present with the right md5 are not fetched
again. The small annotation files come first, so a misconfigured mirror fails before the 1.4 GB zip.

A mirror's cost is bounded: a transfer slower on average than ``min_rate_bytes_per_s`` over ``rate_window_s`` is
stopped (its ``.part`` is kept and resumed next run), and small text answers (MD5SUMS) are read up to 1 MiB only.
Each file is capped at its official size (twice that when the mirror's MD5SUMS or ``checksums: none`` vouch for a
file other than the official one): a larger Content-Length is refused and a longer body stopped. Files still to
fetch must fit the free space of the root before any is requested.

A file under an official name that fails its md5 (a user's edited copy, a broken download) is never overwritten:
once the new file is verified, the old one is moved aside to ``<name>.unverified-<UTC time>`` first.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import requests
from tqdm import tqdm
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from facegen.data.annotations import (
    ATTR_FILE,
    CELEBA_FILES,
    IDENTITY_FILE,
    IMAGES_ZIP,
    LANDMARKS_FILE,
    PARTITION_FILE,
    CelebAFile,
)
from facegen.data.extract import safe_extract_zip
from facegen.io import md5sum

log = logging.getLogger(__name__)

BACKOFF_S = 1.0  # delay before the first retry; doubled for each further one
_CHUNK = 64 << 10  # most bytes per read; what arrived before a connection is lost is kept and resumed from
_SNIFF = 64 << 10  # bytes read to recognise a web page saved in place of the data
_TEXT_CAP = 1 << 20  # a small text answer (MD5SUMS: a few hundred bytes) larger than this is refused, not read whole
_QUOTA_MARKERS = (b"quota exceeded", b"too many users have viewed or downloaded")
_ADVICE = (
    "wait 24 h and retry, set data.celeba.mirror_url to a mirror, "
    "or point data.source=local at an existing copy (data.local.root)"
)
# Bytes of each official file: the three annotation files measured from copies whose md5 is the official one; the
# zip, the bbox and the landmark files as torchvision's download of them reports (it reports the others as here).
OFFICIAL_SIZES = {
    IMAGES_ZIP: 1_443_490_838,
    ATTR_FILE: 26_721_026,
    IDENTITY_FILE: 3_424_458,
    PARTITION_FILE: 2_836_386,
    "list_bbox_celeba.txt": 6_082_035,
    LANDMARKS_FILE: 12_156_055,
}
_OTHER_FILE_FACTOR = 2  # a file other than the official one (the mirror's md5, or none) may be this much larger
_MD5_LINE = re.compile(r"^([0-9a-fA-F]{32}) [ *](.+)$")

T = TypeVar("T")


class DownloadError(RuntimeError):
    """A download failed in a way the user can act on; the message says what to do."""


class _ServerError(Exception):
    """A 5xx answer: worth retrying."""


_RETRYABLE = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, _ServerError)


@dataclass(frozen=True)
class DownloadConfig:
    mirror_url: str | None = None  # base URL, e.g. "http://lab-server/celeba/"; None = Google Drive via gdown
    checksums: str = "auto"  # "auto": the mirror's MD5SUMS if served, else official; "official"; "none"
    include_optional: bool = True  # also fetch the bbox/landmark files; unavailable ones are skipped
    extract: bool = True  # extract img_align_celeba.zip into root/img_align_celeba/
    retries: int = 3
    timeout_s: float = 60.0  # per read: a server that sends nothing for this long has its request retried
    # a transfer averaging fewer bytes/s than this over the last rate_window_s is stopped (0: never): per-read
    # timeouts never fire for a server trickling a byte every few seconds
    min_rate_bytes_per_s: float = 10_000.0
    rate_window_s: float = 120.0


def download_celeba(root: Path, config: DownloadConfig) -> dict:
    """Make the CelebA files present and verified under `root`; returns what was fetched, present and skipped."""
    if config.checksums not in ("auto", "official", "none"):
        raise ValueError(f"checksums must be 'auto', 'official' or 'none', got {config.checksums!r}")
    if config.min_rate_bytes_per_s < 0 or config.rate_window_s <= 0:
        raise ValueError("min_rate_bytes_per_s must be >= 0 and rate_window_s > 0")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = sorted(
        (f for f in CELEBA_FILES if f.required or config.include_optional), key=lambda f: f.name == IMAGES_ZIP
    )
    report: dict = {"fetched": [], "present": [], "skipped": [], "bytes": 0, "extracted": 0}
    with requests.Session() as session:
        session.headers["Accept-Encoding"] = "identity"  # byte offsets for Range must be those of the file
        expected, report["checksums"] = _expected_md5s(session, config)
        missing = []
        for file in files:
            path = root / file.name
            if path.is_file() and _is_verified(path, expected.get(file.name)):
                log.info("%s: already present%s", file.name, "" if file.name not in expected else ", md5 verified")
                report["present"].append(file.name)
            else:
                missing.append(file)
        _check_free_space(root, [f for f in missing if _is_official(f, expected.get(f.name))])
        for file in missing:
            path = root / file.name
            try:
                report["bytes"] += _fetch(session, file, path, expected.get(file.name), config)
            except DownloadError as err:
                if file.required:
                    raise
                log.warning("%s (optional) skipped: %s", file.name, err)
                report["skipped"].append(file.name)
                continue
            report["fetched"].append(file.name)
    if config.extract:
        report["extracted"] = _extract(root / IMAGES_ZIP)
    return report


def looks_like_html(head: bytes) -> str | None:
    """Why a file starting with `head` is a web page, not data: "quota" (Google Drive's quota page), "html", or None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not text.startswith((b"<!doctype html", b"<html")):
        return None
    return "quota" if any(marker in text for marker in _QUOTA_MARKERS) else "html"


def _expected_md5s(session: requests.Session, config: DownloadConfig) -> tuple[dict[str, tuple[str, str]], str]:
    """File name -> (md5, where it comes from), and a label for the report."""
    if config.checksums == "none":
        return {}, "none"
    official = {f.name: (f.md5, "official") for f in CELEBA_FILES}
    if config.checksums == "official" or config.mirror_url is None:
        return official, "official"
    url = _url(config.mirror_url, "MD5SUMS")
    text = _retrying(lambda: _get_text(session, url, config), f"GET {url}", config)
    if text is None:
        log.info("%s: not found (404); using the official md5s", url)
        return official, "official"
    mirror = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _MD5_LINE.match(line.strip())
        if match is None:
            raise DownloadError(
                f"{url}:{lineno}: expected '<md5>  <file name>', got {line.strip()[:80]!r}; "
                "fix the mirror's MD5SUMS or set data.celeba.checksums: official"
            )
        mirror[match[2]] = (match[1].lower(), "the mirror's MD5SUMS")
    log.info("%s: using the mirror's md5s for %d files", url, len(mirror))
    return {**official, **mirror}, "mirror"


def _is_verified(path: Path, expected: tuple[str, str] | None) -> bool:
    if expected is None:
        return True
    if md5sum(path) == expected[0]:
        return True
    log.warning(
        "%s: present but its md5 differs from %s; downloading it again (the present file is kept, moved aside)",
        path,
        expected[1],
    )
    return False


def _is_official(file: CelebAFile, expected: tuple[str, str] | None) -> bool:
    """Whether the file expected is the official one (so its size is known exactly)."""
    return expected is not None and expected[0] == file.md5


def _max_bytes(file: CelebAFile, expected: tuple[str, str] | None) -> tuple[int, str]:
    """The most bytes `file` may have, and why."""
    size = OFFICIAL_SIZES[file.name]
    if _is_official(file, expected):
        return size, "its official size"
    return _OTHER_FILE_FACTOR * size, f"{_OTHER_FILE_FACTOR} x its official size"


def _part_size(part: Path) -> int:
    return part.stat().st_size if part.is_file() and not part.is_symlink() else 0


def _check_part(part: Path) -> None:
    """Refuse a `.part` that is not this program's own: a symbolic link, not a regular file, or a hard link."""
    try:
        st = part.lstat()
    except FileNotFoundError:
        return
    if part.is_symlink() or not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        what = (
            "a symbolic link"
            if part.is_symlink()
            else "not a regular file"
            if not stat.S_ISREG(st.st_mode)
            else "a hard link"
        )
        raise DownloadError(f"{part}: is {what}, not a partial download of this program; move it away and run again")


def _check_free_space(root: Path, files: list[CelebAFile]) -> None:
    """Refuse before any request when the files still to fetch (less what their .part files hold) do not fit."""
    need = sum(max(OFFICIAL_SIZES[f.name] - _part_size(root / f"{f.name}.part"), 0) for f in files)
    free = shutil.disk_usage(root).free
    if need > free:
        raise DownloadError(
            f"{root}: {need:,} bytes still to download ({', '.join(f.name for f in files)}) but only {free:,} bytes "
            "free there; free some space or set data.celeba.root to a larger disk"
        )


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _move_aside(path: Path) -> Path:
    """Rename `path` to a sibling `<name>.unverified-<UTC time>[-n]` that does not exist yet; returns the new path."""
    stamp = _utc_stamp()
    for n in range(1000):
        aside = path.with_name(f"{path.name}.unverified-{stamp}" + (f"-{n}" if n else ""))
        if not os.path.lexists(aside):
            os.rename(path, aside)
            log.warning(
                "%s: its md5 did not match, so it was moved to %s before the verified download took its place",
                path,
                aside,
            )
            return aside
    raise DownloadError(f"{path}: no free name to move it aside to; move it yourself and run again")


def _fetch(
    session: requests.Session, file: CelebAFile, path: Path, expected: tuple[str, str] | None, config: DownloadConfig
) -> int:
    """Download one file to `<name>.part`, check it, rename it into place; returns the bytes received."""
    part = path.with_name(path.name + ".part")
    _check_part(part)
    limit = _max_bytes(file, expected)
    if config.mirror_url is None:
        received = _fetch_gdrive(file, part)
    else:
        url = _url(config.mirror_url, file.name)
        received = _retrying(lambda: _stream(session, url, part, config, limit), f"download of {url}", config)
    _reject_html(part, file.name)
    if expected is not None:
        _check_md5(part, file.name, expected)
    if os.path.lexists(path):  # not verified (else it was not fetched): never overwritten
        _move_aside(path)
    os.replace(part, path)
    log.info("%s: downloaded (%d bytes)%s", file.name, received, "" if expected is None else ", md5 verified")
    return received


def _open_part(part: Path, append: bool):
    """Open `part` for writing without following a symbolic link at it (O_NOFOLLOW)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(part, flags, 0o644)
    except OSError as err:
        raise DownloadError(
            f"{part}: cannot be opened as a partial download ({err}); move it away and run again"
        ) from err
    return os.fdopen(fd, "ab" if append else "wb")


def _fetch_gdrive(file: CelebAFile, part: Path) -> int:
    import gdown

    try:
        gdown.download(id=file.gdrive_id, output=str(part), quiet=False, resume=True)
    except Exception as err:  # gdown raises its own errors, requests' and OSError: all mean "did not work"
        if any(marker.decode() in str(err).lower() for marker in _QUOTA_MARKERS):
            raise DownloadError(_quota_message(file.name)) from err
        raise DownloadError(f"Google Drive download of {file.name} failed ({err}); {_ADVICE}") from err
    return part.stat().st_size


def _stream(session: requests.Session, url: str, part: Path, config: DownloadConfig, limit: tuple[int, str]) -> int:
    """GET `url` into `part`, resuming what `part` holds with a Range request; returns the bytes received.
    More than `limit` bytes in all (announced or sent) is refused, and `part` deleted."""
    most, why = limit
    name = part.name.removesuffix(".part")
    _check_part(part)
    start = part.stat().st_size if os.path.lexists(part) else 0
    if start > most:  # an earlier version's unbounded .part: start over
        part.unlink()
        start = 0
    headers = {"Range": f"bytes={start}-"} if start else {}
    guard = _RateGuard(url, config, f"the partial download is kept in {part} and resumes on the next run")
    with session.get(url, headers=headers, stream=True, timeout=config.timeout_s) as response:
        if response.status_code == 416 and start:  # nothing left to send: .part is complete (the md5 will tell)
            return 0
        _check_status(response, url)
        if response.status_code == 200:
            start = 0  # the server ignored the range: start over
        elif not response.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
            raise DownloadError(
                f"{url}: asked for bytes {start}- but got {response.headers.get('Content-Range')!r}; "
                f"delete {part} and run again"
            )
        size = response.headers.get("Content-Length")
        total = start + int(size) if size is not None and size.isdigit() else None
        if total is not None and total > most:
            raise DownloadError(
                f"{url}: announces {total:,} bytes for {name}, more than {most:,} ({why}); nothing was written. "
                "Check data.celeba.mirror_url"
            )
        if total is not None and total - start > (free := shutil.disk_usage(part.parent).free):
            raise DownloadError(
                f"{url}: {total - start:,} bytes of {name} to download but only {free:,} bytes free in {part.parent}"
            )
        received = 0
        with (
            _open_part(part, append=bool(start)) as out,
            tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=part.stem) as bar,
        ):
            for chunk in _body(response, guard):
                if start + received + len(chunk) > most:
                    out.close()
                    part.unlink()
                    raise DownloadError(
                        f"{url}: sent more than {most:,} bytes for {name} ({why}); stopped, and {part} deleted. "
                        "Check data.celeba.mirror_url"
                    )
                out.write(chunk)
                bar.update(len(chunk))
                received += len(chunk)
    return received


def _get_text(session: requests.Session, url: str, config: DownloadConfig) -> str | None:
    """The body of `url` (at most `_TEXT_CAP` bytes, else an error), or None if the server answers 404."""
    guard = _RateGuard(url, config, "run again or use another mirror (data.celeba.mirror_url)")
    with session.get(url, stream=True, timeout=config.timeout_s) as response:
        if response.status_code == 404:
            return None
        _check_status(response, url)
        body = bytearray()
        for piece in _body(response, guard):
            body += piece
            if len(body) > _TEXT_CAP:
                raise DownloadError(
                    f"{url}: larger than {_TEXT_CAP >> 10} KiB, not a checksum list (stopped reading it); "
                    "check data.celeba.mirror_url or set data.celeba.checksums: official"
                )
    return body.decode(response.encoding or "utf-8", errors="replace")


class _RateGuard:
    """Stops a transfer whose average rate over the last `config.rate_window_s` seconds (counted from the request)
    falls below `config.min_rate_bytes_per_s`, with a DownloadError naming the URL and the rate.

    Per-read timeouts restart with every byte, so a server trickling one byte every few seconds would otherwise
    hold a download for ever; with the guard it holds one for about a window (plus one read timeout if it stops
    sending altogether). Samples are kept about every 1/64 window, so memory does not grow with the rate.
    """

    def __init__(self, url: str, config: DownloadConfig, then: str) -> None:
        self.url, self.then = url, then
        self.min_rate, self.window = config.min_rate_bytes_per_s, config.rate_window_s
        self.total = 0
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])

    def update(self, received: int) -> None:
        self.total += received
        now = time.monotonic()
        samples = self._samples
        if now - samples[-1][0] >= self.window / 64:
            samples.append((now, self.total))
        start = now - self.window
        while len(samples) > 1 and samples[1][0] <= start:  # keep the last sample at or before the window's start
            samples.popleft()
        since, before = samples[0]
        if self.min_rate <= 0 or since > start:  # not a whole window since the request yet
            return
        rate = (self.total - before) / (now - since)
        if rate < self.min_rate:
            raise DownloadError(
                f"{self.url}: {rate / 1000:.3g} kB/s averaged over the last {now - since:.0f} s, below the minimum "
                f"of {self.min_rate / 1000:g} kB/s (data.celeba.min_rate_bytes_per_s over rate_window_s); {self.then}"
            )


def _body(response: requests.Response, guard: _RateGuard) -> Iterator[bytes]:
    """The body as it arrives, each piece after one read from the socket, so that `guard` sees every piece
    (iter_content would wait for whole 64 KiB chunks). Errors are mapped as iter_content maps them."""
    try:
        while piece := response.raw.read1(_CHUNK, decode_content=True):
            yield piece  # written before the guard may stop the transfer: a resumed download keeps it
            guard.update(len(piece))
    except ProtocolError as err:
        raise requests.exceptions.ChunkedEncodingError(err) from err
    except DecodeError as err:
        raise requests.exceptions.ContentDecodingError(err) from err
    except ReadTimeoutError as err:
        raise requests.ConnectionError(err) from err


def _check_status(response: requests.Response, url: str) -> None:
    status = response.status_code
    if status == 404:
        raise DownloadError(f"{url}: not found (HTTP 404); check data.celeba.mirror_url")
    if status >= 500:
        raise _ServerError(f"HTTP {status}")
    if status not in (200, 206):
        raise DownloadError(f"{url}: HTTP {status} {response.reason}; check data.celeba.mirror_url")


def _retrying(action: Callable[[], T], what: str, config: DownloadConfig) -> T:
    """Run `action`, retrying connection errors, timeouts and 5xx answers with exponential backoff."""
    attempt = 0
    while True:
        try:
            return action()
        except _RETRYABLE as err:
            if attempt >= config.retries:
                raise DownloadError(
                    f"{what} failed after {attempt + 1} attempt(s): {err}; check the network and "
                    "data.celeba.mirror_url, then run again (partial downloads resume)"
                ) from err
            delay = BACKOFF_S * 2**attempt
            log.warning("%s failed (%s); retrying in %.1f s", what, err, delay)
            time.sleep(delay)
            attempt += 1


def _reject_html(part: Path, name: str) -> None:
    with open(part, "rb") as f:
        reason = looks_like_html(f.read(_SNIFF))
    if reason is None:
        return
    part.unlink()
    if reason == "quota":
        raise DownloadError(_quota_message(name))
    raise DownloadError(f"the server returned a web page instead of {name}; check the URL, or {_ADVICE}")


def _quota_message(name: str) -> str:
    return f"{name}: Google Drive's download quota for this file is exceeded: {_ADVICE}"


def _check_md5(part: Path, name: str, expected: tuple[str, str]) -> None:
    actual = md5sum(part)
    if actual == expected[0]:
        return
    part.unlink()
    raise DownloadError(
        f"{name}: downloaded md5 {actual} does not match {expected[0]} (expected by {expected[1]}); the file is "
        "corrupt or not the one expected. Run again or use another mirror (data.celeba.mirror_url); only for a "
        "trusted mirror that serves different files, set data.celeba.checksums: none"
    )


def _extract(archive: Path) -> int:
    try:
        return safe_extract_zip(archive, archive.parent)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive} is not a valid zip ({err}): delete it and run again") from err


def _url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"
