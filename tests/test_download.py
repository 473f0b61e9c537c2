"""Downloads from a real HTTP mirror on 127.0.0.1 (and a fake gdown): verification, resume, HTML pages, extraction."""

from __future__ import annotations

import io
import json
import shutil
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.data import download, extract
from facegen.data.annotations import ATTR_FILE, CELEBA_FILES, IDENTITY_FILE, IMAGES_DIR, IMAGES_ZIP, PARTITION_FILE
from facegen.data.download import DownloadConfig, DownloadError, download_celeba, looks_like_html
from facegen.data.extract import (
    ExistingEntryError,
    NotEnoughSpaceError,
    UnsafeArchiveError,
    marker_path,
    safe_extract_zip,
)
from facegen.io import md5sum
from tests.support.http_mirror import BASE_PATH, Mirror

BBOX_FILE, LANDMARKS_FILE = "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt"
ANNOTATION_FILES = (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE)
N_IMAGES = 20
OFFICIAL_MD5 = {f.name: f.md5 for f in CELEBA_FILES}
QUOTA_PAGE = (
    b'\n<!DOCTYPE html><html><head><meta charset="utf-8"><title>Google Drive - Quota exceeded</title>'
    b'</head><body><p class="uc-error-caption">Sorry, you can\'t view or download this file at this '
    b'time.</p><p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
    b"recently. Please try accessing the file again later.</p></body></html>\n"
)


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (218, 178, 3), dtype=np.uint8)  # CelebA size
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write_md5sums(folder: Path, overrides: dict[str, str] | None = None) -> None:
    sums = {p.name: md5sum(p) for p in sorted(folder.iterdir()) if p.name != "MD5SUMS"} | (overrides or {})
    (folder / "MD5SUMS").write_text("".join(f"{md5}  {name}\n" for name, md5 in sums.items()))


@pytest.fixture
def mirror_folder(tmp_path: Path, shared_celeba: Path) -> Path:
    """The real annotation files (linked from ../shared/celeba), a 20-image zip, a small bbox file, MD5SUMS."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    for name in ANNOTATION_FILES:
        (folder / name).symlink_to(shared_celeba / name)
    with zipfile.ZipFile(folder / IMAGES_ZIP, "w") as zf:
        for i in range(1, N_IMAGES + 1):
            zf.writestr(f"{IMAGES_DIR}/{i:06d}.jpg", _jpeg(i))
    (folder / BBOX_FILE).write_bytes(b"2\r\nimage_id x_1 y_1 width height\r\n000001.jpg 95 71 226 313\r\n")
    _write_md5sums(folder)
    return folder


@pytest.fixture
def mirror(mirror_folder: Path) -> Iterator[Mirror]:
    server = Mirror(mirror_folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)


def _config(mirror: Mirror, **changes) -> DownloadConfig:
    return DownloadConfig(**{"mirror_url": mirror.url, "retries": 2, "timeout_s": 10.0, **changes})


def _assert_nothing_left(root: Path, name: str = IMAGES_ZIP) -> None:
    assert not (root / name).exists()
    assert not list(root.glob("*.part"))
    assert not (root / IMAGES_DIR).exists()


def test_mirror_download_verifies_extracts_and_is_idempotent(mirror: Mirror, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    report = download_celeba(root, _config(mirror))
    fetched = [*ANNOTATION_FILES, BBOX_FILE, IMAGES_ZIP]  # small files first, the zip last
    assert report == {
        "fetched": fetched,
        "present": [],
        "skipped": [LANDMARKS_FILE],
        "checksums": "mirror",
        "bytes": sum((mirror.folder / n).stat().st_size for n in fetched),
        "extracted": N_IMAGES,
    }
    for name in fetched:
        assert md5sum(root / name) == md5sum(mirror.folder / name)
    assert sorted(p.name for p in (root / IMAGES_DIR).iterdir()) == [f"{i:06d}.jpg" for i in range(1, N_IMAGES + 1)]
    assert not list(root.glob("*.part"))

    mirror.requests.clear()
    again = download_celeba(root, _config(mirror))
    assert again["fetched"] == [] and again["present"] == fetched and again["bytes"] == 0 and again["extracted"] == 0
    # only the checksum list, and the optional file the mirror does not have (404 again)
    assert [r.path for r in mirror.requests] == [BASE_PATH + "MD5SUMS", BASE_PATH + LANDMARKS_FILE]

    with open(root / IDENTITY_FILE, "ab") as f:  # a corrupted file is fetched again, and only it
        f.write(b"x")
    third = download_celeba(root, _config(mirror, include_optional=False))
    assert third["fetched"] == [IDENTITY_FILE]
    assert md5sum(root / IDENTITY_FILE) == OFFICIAL_MD5[IDENTITY_FILE]


@pytest.mark.parametrize(
    ("page", "expected"),
    [
        (QUOTA_PAGE, r"download quota for this file is exceeded: wait 24 h and retry, set data\.celeba\.mirror_url"),
        (b"<html><body>Welcome to nginx!</body></html>", "returned a web page instead of img_align_celeba.zip"),
    ],
)
def test_html_page_instead_of_the_zip_is_an_error(mirror: Mirror, tmp_path: Path, page: bytes, expected: str) -> None:
    mirror.html[IMAGES_ZIP] = page
    root = tmp_path / "celeba"
    with pytest.raises(DownloadError, match=expected) as err:
        download_celeba(root, _config(mirror))
    assert IMAGES_ZIP in str(err.value) and "data.source=local" in str(err.value)
    _assert_nothing_left(root)


def test_md5_mismatch_names_the_file_and_both_md5s(mirror: Mirror, tmp_path: Path) -> None:
    wrong = "0123456789abcdef0123456789abcdef"
    _write_md5sums(mirror.folder, {IMAGES_ZIP: wrong})
    root = tmp_path / "celeba"
    with pytest.raises(DownloadError) as err:
        download_celeba(root, _config(mirror))
    message = str(err.value)
    assert IMAGES_ZIP in message and wrong in message and md5sum(mirror.folder / IMAGES_ZIP) in message
    assert "MD5SUMS" in message and "checksums: none" in message and "another mirror" in message
    _assert_nothing_left(root)


def test_interrupted_download_resumes_with_a_range_request(mirror: Mirror, tmp_path: Path) -> None:
    cut = 2 * download._CHUNK  # at a chunk boundary: bytes of a chunk cut short are dropped by urllib3, and re-read
    assert (mirror.folder / IMAGES_ZIP).stat().st_size > cut + download._CHUNK
    mirror.drop_after[IMAGES_ZIP] = cut
    root = tmp_path / "celeba"
    report = download_celeba(root, _config(mirror, include_optional=False))
    assert [r.range for r in mirror.requested(IMAGES_ZIP)] == [None, f"bytes={cut}-"]
    assert md5sum(root / IMAGES_ZIP) == md5sum(mirror.folder / IMAGES_ZIP)
    assert report["extracted"] == N_IMAGES and not list(root.glob("*.part"))


@pytest.mark.parametrize("kept", ["half", "all"])
def test_part_file_from_an_earlier_run_is_resumed(mirror: Mirror, tmp_path: Path, kept: str) -> None:
    data = (mirror.folder / IMAGES_ZIP).read_bytes()
    cut = len(data) // 2 if kept == "half" else len(data)  # "all": the server answers 416, the .part is kept
    root = tmp_path / "celeba"
    root.mkdir()
    (root / f"{IMAGES_ZIP}.part").write_bytes(data[:cut])
    report = download_celeba(root, _config(mirror, include_optional=False))
    assert [r.range for r in mirror.requested(IMAGES_ZIP)] == [f"bytes={cut}-"]
    assert (root / IMAGES_ZIP).read_bytes() == data
    assert report["bytes"] - sum((mirror.folder / n).stat().st_size for n in ANNOTATION_FILES) == len(data) - cut


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_part_that_links_to_a_user_file_is_refused(mirror: Mirror, tmp_path: Path, kind: str) -> None:
    """A `.part` that is a link to a user's file is refused: that file is never truncated, appended or renamed."""
    root = tmp_path / "celeba"
    root.mkdir()
    user = tmp_path / "thesis.txt"
    user.write_bytes(b"my thesis, years of work")
    part = root / f"{IMAGES_ZIP}.part"
    part.symlink_to(user) if kind == "symlink" else part.hardlink_to(user)
    with pytest.raises(DownloadError, match="link") as err:
        download_celeba(root, _config(mirror, include_optional=False))
    assert str(part) in str(err.value) and "\n" not in str(err.value)
    assert user.read_bytes() == b"my thesis, years of work"
    assert not (root / IMAGES_ZIP).exists() and not mirror.requested(IMAGES_ZIP)


def test_without_md5sums_the_official_md5s_are_used(mirror: Mirror, tmp_path: Path) -> None:
    mirror.missing.add("MD5SUMS")
    root = tmp_path / "celeba"
    with pytest.raises(DownloadError) as err:
        download_celeba(root, _config(mirror))
    message = str(err.value)
    assert IMAGES_ZIP in message and OFFICIAL_MD5[IMAGES_ZIP] in message and "official" in message
    for name in ANNOTATION_FILES:  # the real annotation files pass the official checks
        assert md5sum(root / name) == OFFICIAL_MD5[name]
    assert not (root / BBOX_FILE).exists()  # optional, and not the official file: skipped, not fatal
    _assert_nothing_left(root)

    report = download_celeba(root, _config(mirror, checksums="none"))
    assert report["checksums"] == "none" and report["present"] == list(ANNOTATION_FILES)
    assert report["fetched"] == [BBOX_FILE, IMAGES_ZIP] and report["extracted"] == N_IMAGES


def test_looks_like_html(shared_celeba: Path) -> None:
    assert looks_like_html(QUOTA_PAGE) == "quota"
    assert looks_like_html(b"\xef\xbb\xbf \r\n<HTML><head><title>Error 403</title>") == "html"
    with open(shared_celeba / IMAGES_ZIP, "rb") as f:
        assert looks_like_html(f.read(2048)) is None
    with open(shared_celeba / ATTR_FILE, "rb") as f:
        assert looks_like_html(f.read(2048)) is None
    assert looks_like_html(_jpeg(0)[:2048]) is None
    assert looks_like_html(b"") is None


def _zip_with(path: Path, name: str, symlink: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/a.txt", b"fine")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"/etc/passwd" if symlink else b"evil")
    return path


@pytest.mark.parametrize(
    ("member", "symlink"),
    [
        ("../evil.txt", False),
        ("ok/../../evil.txt", False),
        ("/tmp/evil.txt", False),
        ("C:/evil.txt", False),
        ("..\\evil.txt", False),
        ("ok/link", True),
    ],
)
def test_safe_extract_refuses_unsafe_members(tmp_path: Path, member: str, symlink: bool) -> None:
    archive = _zip_with(tmp_path / "bad.zip", member, symlink)
    dest = tmp_path / "out" / "dest"
    with pytest.raises(UnsafeArchiveError, match="symbolic link" if symlink else "outside") as err:
        safe_extract_zip(archive, dest)
    assert repr(member) in str(err.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()  # nothing written at all


def test_safe_extract_is_atomic_and_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/", b"")
        for i in range(3):
            zf.writestr(f"{IMAGES_DIR}/{i}.jpg", _jpeg(i))
    dest = tmp_path / "dest"

    calls = {"n": 0}
    real_copy = shutil.copyfileobj

    def failing_copy(src, dst, length=0):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_copy(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        safe_extract_zip(archive, dest)
    assert list(dest.iterdir()) == []  # no half-filled folder, no marker, no temporary folder left
    monkeypatch.undo()

    assert safe_extract_zip(archive, dest) == 3
    assert sorted(p.name for p in (dest / IMAGES_DIR).iterdir()) == ["0.jpg", "1.jpg", "2.jpg"]
    assert (dest / IMAGES_DIR / "1.jpg").read_bytes() == _jpeg(1)
    record = json.loads(marker_path(archive, dest).read_text())  # what the extraction created, and from what
    assert record["entries"] == [IMAGES_DIR] and record["complete"] and record["archive"] == "good.zip"
    assert record["size"] == archive.stat().st_size and record["md5"] == md5sum(archive)
    assert safe_extract_zip(archive, dest) == 0


def test_gdown_quota_page_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gdown

    def fake_download(*, id: str, output: str, quiet: bool, resume: bool) -> str:
        Path(output).write_bytes(QUOTA_PAGE)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    root = tmp_path / "celeba"
    with pytest.raises(DownloadError, match="quota for this file is exceeded") as err:
        download_celeba(root, DownloadConfig())
    assert "data.celeba.mirror_url" in str(err.value) and "data.local.root" in str(err.value)
    assert list(root.iterdir()) == []


def test_gdown_quota_error_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gdown
    from gdown.exceptions import FileURLRetrievalError

    def fake_download(**kwargs) -> str:
        raise FileURLRetrievalError("Too many users have viewed or downloaded this file recently. Please try later.")

    monkeypatch.setattr(gdown, "download", fake_download)
    with pytest.raises(DownloadError, match="quota for this file is exceeded: wait 24 h"):
        download_celeba(tmp_path / "celeba", DownloadConfig())


def test_gdown_download_is_verified_and_renamed(
    mirror_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gdown

    names = {f.gdrive_id: f.name for f in CELEBA_FILES}
    requested: list[str] = []

    def fake_download(*, id: str, output: str, quiet: bool, resume: bool) -> str:
        requested.append(names[id])
        assert output.endswith(".part") and resume
        shutil.copyfile(mirror_folder / names[id], output)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    root = tmp_path / "celeba"
    with pytest.raises(DownloadError, match=OFFICIAL_MD5[IMAGES_ZIP]):  # official md5s: the test zip fails them
        download_celeba(root, DownloadConfig(include_optional=False))
    assert sorted(p.name for p in root.iterdir()) == sorted(ANNOTATION_FILES)  # the real ones pass

    report = download_celeba(root, DownloadConfig(include_optional=False, checksums="none"))
    assert report["fetched"] == [IMAGES_ZIP] and report["present"] == list(ANNOTATION_FILES)
    assert report["extracted"] == N_IMAGES
    assert requested == [*ANNOTATION_FILES, IMAGES_ZIP, IMAGES_ZIP]


def test_celeba_source_from_params_downloads_and_prepares(mirror: Mirror, tmp_path: Path) -> None:
    from facegen.config import load_params
    from facegen.data.prepare import prepare_faces
    from facegen.data.sources import acquire, cropper_for, open_faces
    from tests.support.imports import ROOT as REPO

    params = load_params(
        REPO / "params.yaml",
        {
            "data.source": "celeba",
            "data.celeba.root": str(tmp_path / "celeba"),
            "data.celeba.mirror_url": mirror.url,
            "data.image_size": 32,
        },
    )
    root = acquire(params.data)
    faces = open_faces(params.data, root)
    assert len(faces) == 20 and faces.missing_images == 202_599 - 20  # the test zip holds 20 images
    report = prepare_faces(faces, tmp_path / "prepared", cropper_for(params.data, params.prepare), workers=0)
    assert report.images_written == 20
    fetched_before = len(mirror.requests)
    assert acquire(params.data) == root and len(mirror.requests) - fetched_before <= 2  # MD5SUMS (+ 404 landmarks)


# Issue 31: the cost of a slow mirror, a large answer and an archive is bounded; nothing of the user's is replaced.


def test_a_trickling_mirror_is_stopped_by_the_rate_guard_and_the_part_file_resumes(
    mirror: Mirror, tmp_path: Path
) -> None:
    mirror.trickle[IMAGES_ZIP] = 0.5  # a byte every 0.5 s: no per-read timeout (10 s) ever fires
    root = tmp_path / "celeba"
    slow = _config(mirror, include_optional=False, min_rate_bytes_per_s=1000, rate_window_s=2.0)
    with pytest.raises(DownloadError) as err:
        download_celeba(root, slow)
    message = str(err.value)
    assert "\n" not in message and message.startswith(mirror.url + IMAGES_ZIP)
    assert "kB/s averaged over the last 2 s" in message and "minimum of 1 kB/s" in message
    part = root / f"{IMAGES_ZIP}.part"
    assert str(part) in message and "resumes on the next run" in message
    kept = part.stat().st_size
    assert 1 <= kept <= 10 and not (root / IMAGES_ZIP).exists()  # a few bytes in about 2 s, all kept

    mirror.trickle.clear()
    report = download_celeba(root, slow)
    assert mirror.requested(IMAGES_ZIP)[-1].range == f"bytes={kept}-"
    assert md5sum(root / IMAGES_ZIP) == md5sum(mirror.folder / IMAGES_ZIP) and report["extracted"] == N_IMAGES


def test_a_trickled_checksum_list_is_stopped_too(mirror: Mirror, tmp_path: Path) -> None:
    mirror.trickle["MD5SUMS"] = 0.5
    with pytest.raises(DownloadError, match=r"/MD5SUMS: .* kB/s averaged over the last 2 s"):
        download_celeba(tmp_path / "celeba", _config(mirror, min_rate_bytes_per_s=1000, rate_window_s=2.0))


def test_a_checksum_list_over_1_mib_is_refused_unread(mirror: Mirror, tmp_path: Path) -> None:
    line = f"{'0' * 32}  some_file.txt\n"
    (mirror.folder / "MD5SUMS").write_text(line * ((1 << 20) // len(line) + 100))  # 1 MiB and a bit
    with pytest.raises(DownloadError) as err:
        download_celeba(tmp_path / "celeba", _config(mirror))
    assert str(err.value).startswith(f"{mirror.url}MD5SUMS: larger than 1024 KiB, not a checksum list")
    assert "checksums: official" in str(err.value)
    assert list((tmp_path / "celeba").iterdir()) == []


def _zeros_zip(path: Path, sizes: dict[str, int]) -> Path:
    """A real zip of zero-filled members, deflated (about 1000x smaller than they expand)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, size in sizes.items():
            zf.writestr(name, bytes(size))
    return path


@pytest.mark.parametrize("layout", ["member", "overall"])
def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path, layout: str) -> None:
    if layout == "member":  # one member of 11 MiB from about 11 kB, at the default limits (100x over 10 MiB)
        archive = _zeros_zip(tmp_path / "bomb.zip", {"ok.txt": 10, "inner/zeros.bin": 11 << 20})
        limits: dict = {}
    else:  # 40 members of 100 kB each, none over the size limit, 4 MB together
        archive = _zeros_zip(tmp_path / "bomb.zip", {f"z/{i}.bin": 100_000 for i in range(40)})
        limits = {"ratio_min_bytes": 1 << 20}
    assert archive.stat().st_size < 40_000
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract_zip(archive, dest, **limits)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{archive}: ") and "zip bomb" in message
    assert ("member 'inner/zeros.bin' expands" if layout == "member" else "its 40 members expand") in message
    assert not dest.exists()
    assert safe_extract_zip(archive, dest, **limits, max_ratio=1e6) > 0  # the limit is what refused it


def test_an_archive_larger_than_the_free_space_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zeros_zip(tmp_path / "big.zip", {"data/a.bin": 3_000_000, "data/b.bin": 2_000_000})
    real_usage = shutil.disk_usage
    monkeypatch.setattr(extract.shutil, "disk_usage", lambda p: real_usage(p)._replace(free=4_000_000))
    with pytest.raises(NotEnoughSpaceError, match=rf"^{archive}: extracting needs 5 MB .* has 4 MB free"):
        safe_extract_zip(archive, tmp_path / "out" / "dest")
    assert not (tmp_path / "out").exists()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_same_named_folder_of_the_user_is_never_replaced(tmp_path: Path) -> None:
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/000001.jpg", _jpeg(1))
    dest = tmp_path / "dest"
    (dest / IMAGES_DIR).mkdir(parents=True)
    (dest / IMAGES_DIR / "000001.jpg").write_bytes(b"the user's own photo")
    before = _snapshot(dest)
    with pytest.raises(ExistingEntryError) as err:
        safe_extract_zip(archive, dest)
    assert str(err.value) == (
        f"{archive}: member '{IMAGES_DIR}/000001.jpg' would replace {dest / IMAGES_DIR}, which no earlier extraction "
        f"of good.zip created (see .extracted-good.zip.json); move or rename it, then run again"
    )
    assert _snapshot(dest) == before and sorted(p.name for p in dest.iterdir()) == [IMAGES_DIR]

    shutil.rmtree(dest / IMAGES_DIR)  # the user moved it away: extracted, and then the folder is the extraction's
    assert safe_extract_zip(archive, dest) == 1
    with zipfile.ZipFile(archive, "w") as zf:  # a new version of the archive replaces what the first one created
        zf.writestr(f"{IMAGES_DIR}/000002.jpg", _jpeg(2))
    assert safe_extract_zip(archive, dest) == 1
    assert sorted(p.name for p in (dest / IMAGES_DIR).iterdir()) == ["000002.jpg"]


def test_reextraction_keeps_files_the_user_added_to_an_extracted_folder(tmp_path: Path) -> None:
    archive, dest = tmp_path / "good.zip", tmp_path / "dest"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/000001.jpg", _jpeg(1))
    assert safe_extract_zip(archive, dest) == 1
    (dest / IMAGES_DIR / "my_photo.jpg").write_bytes(b"the user's own photo")
    with zipfile.ZipFile(archive, "w") as zf:  # a changed archive
        zf.writestr(f"{IMAGES_DIR}/000002.jpg", _jpeg(2))
    with pytest.raises(ExistingEntryError) as err:
        safe_extract_zip(archive, dest)
    message = str(err.value)
    assert "good.zip" in message and IMAGES_DIR in message and "my_photo.jpg" in message and "\n" not in message
    assert (dest / IMAGES_DIR / "my_photo.jpg").read_bytes() == b"the user's own photo"
    assert (dest / IMAGES_DIR / "000001.jpg").read_bytes() == _jpeg(1)

    (dest / IMAGES_DIR / "my_photo.jpg").unlink()  # without the user's file: re-extracted
    assert safe_extract_zip(archive, dest) == 1
    assert sorted(p.name for p in (dest / IMAGES_DIR).iterdir()) == ["000002.jpg"]


def test_reextraction_with_a_record_without_listings_checks_the_new_archive(tmp_path: Path) -> None:
    archive, dest = tmp_path / "good.zip", tmp_path / "dest"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/000001.jpg", _jpeg(1))
    assert safe_extract_zip(archive, dest) == 1
    marker = marker_path(archive, dest)
    record = json.loads(marker.read_text())
    del record["listings"]  # as written before listings were recorded
    marker.write_text(json.dumps(record))
    (dest / IMAGES_DIR / "my_photo.jpg").write_bytes(b"the user's own photo")
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/000001.jpg", _jpeg(1))
        zf.writestr(f"{IMAGES_DIR}/000002.jpg", _jpeg(2))
    with pytest.raises(ExistingEntryError, match="my_photo.jpg"):
        safe_extract_zip(archive, dest)
    assert (dest / IMAGES_DIR / "my_photo.jpg").read_bytes() == b"the user's own photo"
    (dest / IMAGES_DIR / "my_photo.jpg").unlink()  # all its files are the new archive's members: re-extracted
    assert safe_extract_zip(archive, dest) == 2


def test_an_extraction_marked_by_an_earlier_version_is_recognised(tmp_path: Path) -> None:
    archive = tmp_path / "good.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{IMAGES_DIR}/000001.jpg", _jpeg(1))
    dest = tmp_path / "dest"
    assert safe_extract_zip(archive, dest) == 1
    marker_path(archive, dest).unlink()
    with zipfile.ZipFile(archive) as zf:
        legacy = dest / f".extracted-good.zip-{extract._fingerprint(zf.infolist())}"
    legacy.touch()
    assert safe_extract_zip(archive, dest) == 0
    assert not legacy.exists() and json.loads(marker_path(archive, dest).read_text())["entries"] == [IMAGES_DIR]


def test_download_into_a_users_folder_deletes_nothing_of_theirs(mirror: Mirror, tmp_path: Path) -> None:
    root = tmp_path / "celeba"  # data.celeba.root pointed at a folder the user already had
    (root / "photos").mkdir(parents=True)
    (root / "photos" / "me.jpg").write_bytes(_jpeg(7))
    (root / "notes.txt").write_text("my notes\n")
    (root / ".hidden").write_text("x")
    (root / f"{IMAGES_ZIP}.bak").write_bytes(b"an old copy")
    (root / IMAGES_DIR).mkdir()
    (root / IMAGES_DIR / "000001.jpg").write_bytes(b"the user's own photo")
    foreign = _snapshot(root)

    with pytest.raises(ExistingEntryError, match=f"would replace {root / IMAGES_DIR}, which no earlier extraction"):
        download_celeba(root, _config(mirror, include_optional=False))
    assert {k: v for k, v in _snapshot(root).items() if k in foreign} == foreign
    assert md5sum(root / IMAGES_ZIP) == md5sum(mirror.folder / IMAGES_ZIP)  # downloaded, verified and kept
    assert set(_snapshot(root)) == set(foreign) | {*ANNOTATION_FILES, IMAGES_ZIP}

    (root / IMAGES_DIR).rename(root / "my_faces")  # once the user moved their folder, the rerun extracts
    report = download_celeba(root, _config(mirror, include_optional=False))
    assert report["fetched"] == [] and report["extracted"] == N_IMAGES
    after = _snapshot(root)
    assert after["my_faces/000001.jpg"] == b"the user's own photo"
    assert {k: v for k, v in after.items() if k in foreign and not k.startswith(IMAGES_DIR)} == {
        k: v for k, v in foreign.items() if not k.startswith(IMAGES_DIR)
    }


def test_a_users_edited_file_under_an_official_name_is_moved_aside_not_overwritten(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "celeba"
    root.mkdir()
    edited = (mirror.folder / ATTR_FILE).read_bytes().replace(b" -1", b"  1", 5)  # a user's corrections
    (root / ATTR_FILE).write_bytes(edited)
    stamp = "20260101T000000Z"
    monkeypatch.setattr(download, "_utc_stamp", lambda: stamp)
    taken = root / f"{ATTR_FILE}.unverified-{stamp}"
    taken.write_bytes(b"an earlier one, also the user's")  # never overwritten either

    with caplog.at_level("WARNING", logger=download.__name__):
        report = download_celeba(root, _config(mirror, include_optional=False, extract=False))
    assert ATTR_FILE in report["fetched"]
    assert md5sum(root / ATTR_FILE) == OFFICIAL_MD5[ATTR_FILE]  # the verified file is in place
    aside = root / f"{ATTR_FILE}.unverified-{stamp}-1"
    assert aside.read_bytes() == edited and taken.read_bytes() == b"an earlier one, also the user's"
    assert any(str(root / ATTR_FILE) in r.message and str(aside) in r.message for r in caplog.records)


def test_the_official_sizes_are_those_of_the_official_files(shared_celeba: Path) -> None:
    assert set(download.OFFICIAL_SIZES) == set(OFFICIAL_MD5)
    for name in ANNOTATION_FILES:  # the shared copies are the official files
        assert md5sum(shared_celeba / name) == OFFICIAL_MD5[name]
        assert (shared_celeba / name).stat().st_size == download.OFFICIAL_SIZES[name]


@pytest.mark.parametrize("announced", [None, 10 << 30], ids=["no-length", "length-too-large"])
def test_an_endless_body_is_stopped_at_the_files_size(mirror: Mirror, tmp_path: Path, announced: int | None) -> None:
    mirror.endless[PARTITION_FILE] = announced
    root = tmp_path / "celeba"
    limit = download.OFFICIAL_SIZES[PARTITION_FILE]
    with pytest.raises(DownloadError) as err:
        download_celeba(root, _config(mirror, checksums="official", include_optional=False))
    message = str(err.value)
    url = mirror.url + PARTITION_FILE
    assert "\n" not in message and message.startswith(url) and f"{limit:,}" in message and PARTITION_FILE in message
    if announced is None:
        assert "sent more than" in message and mirror.sent[PARTITION_FILE] < limit + (8 << 20)  # then it hung up
    else:
        assert f"announces {announced:,} bytes" in message and "nothing was written" in message
    assert len(mirror.requested(PARTITION_FILE)) == 1  # not retried
    assert not (root / f"{PARTITION_FILE}.part").exists() and not (root / PARTITION_FILE).exists()
    assert not (root / IMAGES_ZIP).exists()


def test_files_larger_than_the_free_space_are_refused_before_any_request(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "celeba"
    root.mkdir()
    real = shutil.disk_usage(root)
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: real._replace(free=100 << 20))  # 100 MiB free
    with pytest.raises(DownloadError, match=r"1,4\d\d,\d{3},\d{3} bytes still to download .* but only 104,857,600"):
        download_celeba(root, _config(mirror, checksums="official", include_optional=False))
    assert [r.path for r in mirror.requests] == []  # official md5s: not even MD5SUMS is asked for
    assert list(root.iterdir()) == []
