"""Photos as users have them (issue 31): phone photos stored sideways with an EXIF orientation, photos in
sub-folders of a person's folder, dangling symbolic links, files nobody may read, fifos, names that are no UTF-8,
and files far too large to be a photo. Each is used correctly or counted in skipped.csv with its reason; none is
silently dropped, none stops the run, none is read whole before it is checked. All files are real ones the
tests make (links, fifos, chmod 000, a non-UTF-8 name through a bytes path, sparse files)."""

from __future__ import annotations

import io
import os
import signal
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facegen.data.annotations import (
    ATTR_FILE,
    IDENTITY_FILE,
    IMAGES_DIR,
    IMAGES_ZIP,
    PARTITION_FILE,
    write_attributes,
    write_identities,
    write_partition,
)
from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from facegen.data.images import (
    CorruptImageError,
    UnreadablePhotoError,
    load_photo,
    max_photo_bytes,
    read_photo_bytes,
    walk_files,
)
from facegen.data.prepare import CenterCropResize, prepare_faces
from facegen.data.prepared import PreparedFaces
from recognition.attendance.faces import photo_files, read_photo
from tests.support.photos import make_people


def _reads_chmod_000() -> bool:
    """Whether this process reads a file of mode 000 all the same: root does (os.geteuid() == 0), unless its
    CAP_DAC_OVERRIDE is dropped (``setpriv --bounding-set -dac_override,-dac_read_search``), so ask the kernel."""
    if os.geteuid() != 0:
        return False
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return False
        return True


AS_ROOT = _reads_chmod_000()  # root reads a chmod 000 file: those assertions cannot hold there
ORIENTATION = 0x0112  # the EXIF tag (PIL.ExifTags.Base.Orientation)


def _prepare(faces, out: Path):
    return prepare_faces(faces, out, CenterCropResize(16), workers=0)


@pytest.fixture
def no_hang():
    """Fail, rather than hang the suite, if something blocks on a fifo."""
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("blocked for 20 s (a fifo opened for reading?)"))
    signal.alarm(20)
    yield
    signal.alarm(0)


def _upright(shared_faces64: Path) -> np.ndarray:
    """A real face, 48 wide and 64 high (not square, so a sideways decode shows in its size)."""
    photo = sorted(next(p for p in sorted(shared_faces64.iterdir()) if p.is_dir()).glob("*.jpg"))[0]
    return np.asarray(Image.open(photo).convert("RGB"))[:, 8:56]


def _phone_photo(upright: np.ndarray, path: Path, orientation: int = 6) -> None:
    """Stored as a phone stores a portrait: pixels turned sideways, EXIF orientation 6 ('turn 90 degrees
    clockwise to show'), as PIL writes it with its Exif class."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(path, "JPEG", quality=95, exif=exif)


# --- EXIF orientation --------------------------------------------------------------------------------------


def test_a_sideways_phone_photo_is_read_upright_by_every_reader(shared_faces64: Path, tmp_path: Path) -> None:
    upright = _upright(shared_faces64)
    photos = tmp_path / "photos"
    (photos / "ann").mkdir(parents=True)
    _phone_photo(upright, photos / "ann" / "portrait.jpg")
    stored = Image.open(photos / "ann" / "portrait.jpg")
    assert stored.size == (64, 48) and stored.getexif()[ORIENTATION] == 6  # really stored sideways
    for image in (
        load_photo(photos / "ann" / "portrait.jpg"),
        FaceFolder(photos).load_image(0),
        read_photo(photos / "ann" / "portrait.jpg"),  # attendance
    ):
        assert image.size == (48, 64)
        assert np.abs(np.asarray(image, np.float64) - upright).mean() < 4  # the face, upright (JPEG's loss)
    _prepare(FaceFolder(photos), tmp_path / "out")
    crop = PreparedFaces(tmp_path / "out").images[0]
    expected = np.asarray(CenterCropResize(16)(Image.fromarray(upright)))
    assert np.abs(crop.astype(np.float64) - expected).mean() < 4


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7, 8])
def test_every_exif_orientation_is_applied(shared_faces64: Path, tmp_path: Path, orientation: int) -> None:
    upright = _upright(shared_faces64)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    # store the photo so that the orientation's transpose brings it back (each is its own inverse but 6 and 8)
    undo = {
        2: "FLIP_LEFT_RIGHT",
        3: "ROTATE_180",
        4: "FLIP_TOP_BOTTOM",
        5: "TRANSPOSE",
        7: "TRANSVERSE",
        8: "ROTATE_270",
    }
    Image.fromarray(upright).transpose(Image.Transpose[undo[orientation]]).save(
        tmp_path / "p.jpg", quality=95, exif=exif
    )
    image = load_photo(tmp_path / "p.jpg")
    assert image.size == (48, 64)
    assert np.abs(np.asarray(image, np.float64) - upright).mean() < 4


# --- the shapes of a user's folder -------------------------------------------------------------------------


def test_a_users_folder_with_every_kind_of_trouble_is_prepared_and_each_file_accounted_for(
    tmp_path: Path, no_hang
) -> None:
    photos = make_people(tmp_path / "photos")  # person_0/{0,1,2}.jpg, person_1/{0,1,2}.jpg
    good = (photos / "person_0" / "0.jpg").read_bytes()
    (photos / "person_0" / "2024" / "holiday").mkdir(parents=True)
    (photos / "person_0" / "2024" / "holiday" / "beach.jpg").write_bytes(good)  # a sub-folder: still person_0
    elsewhere = tmp_path / "elsewhere.jpg"
    elsewhere.write_bytes(good)
    os.symlink(elsewhere, photos / "person_1" / "linked.jpg")  # a link to a photo: used
    os.symlink(tmp_path / "deleted.jpg", photos / "person_1" / "gone.jpg")  # dangling
    os.symlink(photos, photos / "person_1" / "loop")  # a link to a folder that holds it
    os.mkfifo(photos / "person_1" / "pipe.jpg")
    locked = photos / "person_1" / "locked.jpg"
    locked.write_bytes(good)
    locked.chmod(0)
    huge = photos / "person_1" / "huge.jpg"  # a video renamed .jpg, say: sparse, so it costs no disk
    with open(huge, "wb") as f:
        f.truncate(max_photo_bytes() + 1)
    name = os.fsencode(photos) + b"/person_1/caf\xe9.jpg"  # Latin-1 bytes: no UTF-8
    with open(name, "wb") as f:
        f.write(good)
    os.mkdir(os.fsencode(photos) + b"/Jos\xe9")
    with open(os.fsencode(photos) + b"/Jos\xe9/1.jpg", "wb") as f:
        f.write(good)

    faces = FaceFolder(photos)
    report = _prepare(faces, tmp_path / "out")
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv", keep_default_na=False)
    reasons = dict(zip(skipped.image_id, skipped.reason))
    assert reasons["person_1/gone.jpg"] == "a dangling symbolic link"
    assert reasons["person_1/loop"] == "a link to a folder that holds it (a loop); not followed"
    assert reasons["person_1/pipe.jpg"] == "not a regular file (a fifo)"
    assert reasons["person_1/huge.jpg"].startswith(
        f"corrupt: {photos}/person_1/huge.jpg: too large: {max_photo_bytes() + 1:,} bytes, more than a photo of "
        "data.max_image_pixels (100,000,000) takes"
    )
    if AS_ROOT:
        assert "person_1/locked.jpg" not in reasons  # root may read it, and does
    else:
        assert (
            reasons["person_1/locked.jpg"]
            == f"unreadable: {photos}/person_1/locked.jpg: cannot be read (Permission denied)"
        )
    written = set(PreparedFaces(tmp_path / "out").annotations.image_id)
    assert {
        "person_0/2024/holiday/beach.jpg",
        "person_1/linked.jpg",
        "person_1/caf\\xe9.jpg",  # shown with the byte escaped, read from the real name
        "Jos\\xe9/1.jpg",
    } <= written
    annotations = PreparedFaces(tmp_path / "out").annotations.set_index("image_id")
    assert annotations.at["person_0/2024/holiday/beach.jpg", "identity"] == "person_0"
    assert annotations.at["Jos\\xe9/1.jpg", "identity"] == "Jos\\xe9"
    # nothing dropped silently: every entry is written or listed
    assert report.images_in == report.images_written + len(skipped) == 15
    assert report.images_written == (11 if AS_ROOT else 10)
    assert written | set(skipped.image_id) == {
        *(f"person_{k}/{j}.jpg" for k in (0, 1) for j in range(3)),
        "person_0/2024/holiday/beach.jpg",
        "person_1/linked.jpg",
        "person_1/caf\\xe9.jpg",
        "Jos\\xe9/1.jpg",
        "person_1/gone.jpg",
        "person_1/loop",
        "person_1/pipe.jpg",
        "person_1/huge.jpg",
        "person_1/locked.jpg",
    }


def test_an_unreadable_photo_is_a_counted_skip(tmp_path: Path, monkeypatch) -> None:
    photos = make_people(tmp_path / "photos")
    locked = photos / "person_0" / "1.jpg"
    locked.chmod(0)
    if AS_ROOT:  # root reads it all the same: make open() answer as it answers anyone else
        real_open = os.open

        def refuse(path, *args, **kwargs):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(UnreadablePhotoError, match=r"person_0/1.jpg: cannot be read \(Permission denied\)"):
        read_photo_bytes(locked)
    report = _prepare(FaceFolder(photos), tmp_path / "out")
    assert (report.images_written, report.corrupt) == (5, 1)
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped.image_id.tolist() == ["person_0/1.jpg"]
    assert skipped.reason[0].startswith("unreadable: ")


def test_a_folder_nobody_may_read_is_listed_not_fatal(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos", n_people=3)
    (photos / "person_2").chmod(0)
    try:
        faces = FaceFolder(photos)
    finally:
        (photos / "person_2").chmod(0o755)
    if AS_ROOT:
        assert len(faces) == 9 and not faces.skipped_files
    else:
        assert len(faces) == 6
        assert faces.skipped_files == [("person_2", "folder cannot be read (Permission denied)")]


def test_a_fifo_named_like_a_photo_is_refused_without_waiting(tmp_path: Path, no_hang) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(UnreadablePhotoError, match=r"pipe.jpg: not a regular file \(a fifo\)"):
        load_photo(tmp_path / "pipe.jpg")
    with pytest.raises(UnreadablePhotoError, match=r"folder.jpg: not a regular file \(a folder\)"):
        (tmp_path / "folder.jpg").mkdir()
        load_photo(tmp_path / "folder.jpg")
    with pytest.raises(UnreadablePhotoError, match=r"gone.jpg: cannot be read \(a dangling symbolic link\)"):
        os.symlink(tmp_path / "nothing", tmp_path / "gone.jpg")
        load_photo(tmp_path / "gone.jpg")


def test_walk_files_follows_links_once_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "deep" / "x.jpg").write_bytes(b"x")
    (tmp_path / "a.jpg").write_bytes(b"a")
    os.symlink(tmp_path / "b", tmp_path / "c")  # a second name for a folder: walked again under its name
    os.symlink("self", tmp_path / "self")  # a link to itself
    (tmp_path / ".hidden").write_bytes(b"")
    files, problems = walk_files(tmp_path)
    assert [parts for parts, _ in files] == [("a.jpg",), ("b", "deep", "x.jpg"), ("c", "deep", "x.jpg")]
    assert files[1][1] == str(tmp_path / "b" / "deep" / "x.jpg")
    assert problems == [("self", "cannot be read (Too many levels of symbolic links)")]


def test_attendance_lists_every_file_of_a_user_folder(tmp_path: Path, no_hang) -> None:
    photos = make_people(tmp_path / "roster")
    (photos / "person_0" / "old").mkdir()
    (photos / "person_0" / "old" / "9.jpg").write_bytes((photos / "person_0" / "0.jpg").read_bytes())
    os.symlink(tmp_path / "deleted.jpg", photos / "person_1" / "gone.jpg")
    os.mkfifo(photos / "person_1" / "pipe.jpg")
    with open(os.fsencode(photos) + b"/person_1/caf\xe9.jpg", "wb") as f:
        f.write((photos / "person_0" / "0.jpg").read_bytes())
    found, others = photo_files(photos)
    assert photos / "person_0" / "old" / "9.jpg" in found
    assert len(found) == 8
    assert others == [
        (f"{photos}/person_1/gone.jpg", "a dangling symbolic link"),
        (f"{photos}/person_1/pipe.jpg", "not a regular file (a fifo)"),
    ]
    weird = next(p for p in found if "caf" in p.name)
    assert read_photo(weird).size == (24, 24)  # the real name opens
    # one path given, not a folder: it is the photo, and reading it refuses it as a skip (the CLI counts it)
    assert photo_files(photos / "person_1" / "pipe.jpg") == ([photos / "person_1" / "pipe.jpg"], [])
    with pytest.raises(UnreadablePhotoError, match=r"pipe.jpg: not a regular file \(a fifo\)"):
        read_photo(photos / "person_1" / "pipe.jpg")
    with pytest.raises(FileNotFoundError, match="no such photo or folder"):
        photo_files(photos / "nobody.jpg")


# --- bounded cost of a photo file --------------------------------------------------------------------------


def test_a_huge_file_is_refused_from_its_size_before_it_is_read(tmp_path: Path) -> None:
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(50 * 2**30)  # 50 GiB, sparse: read whole, it would exhaust memory
    # the size in the message is the file's (from fstat), not that of bytes read
    with pytest.raises(CorruptImageError, match=r"huge.jpg: too large: 53,687,091,200 bytes"):
        load_photo(huge)
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    assert load_photo(small, max_pixels=10_000).size == (100, 100)  # within the limit: read
    limit = max_photo_bytes(10)
    with open(small, "ab") as f:  # a photo padded past the size that its pixel limit allows
        f.truncate(limit + 1)
    with pytest.raises(CorruptImageError, match=rf"small.png: too large: {limit + 1:,} bytes"):
        load_photo(small, max_pixels=10)


def test_a_decompression_bomb_in_pillows_warning_range_is_refused_quietly(tmp_path: Path) -> None:
    Image.new("1", (12_000, 10_000)).save(tmp_path / "bomb.png")  # 120 MP: Pillow warns, it does not refuse
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning escapes either
        with pytest.raises(CorruptImageError, match=r"bomb.png: too large: 120,000,000 pixels"):
            load_photo(tmp_path / "bomb.png")
        with pytest.raises(CorruptImageError, match=r"bomb.png: too large: 120,000,000 pixels"):
            read_photo(tmp_path / "bomb.png")  # attendance


def _celeba_zip(root: Path, members: dict[str, bytes]) -> Path:
    root.mkdir(parents=True)
    with zipfile.ZipFile(root / IMAGES_ZIP, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(f"{IMAGES_DIR}/{name}", data)
    index = pd.Index(list(members), name="image_id")
    write_attributes(root / ATTR_FILE, pd.DataFrame({"Smiling": [0, 1, 0][: len(members)]}, index=index))
    write_identities(root / IDENTITY_FILE, pd.Series(["1"] * len(members), index=index))
    write_partition(root / PARTITION_FILE, pd.Series(["train"] * len(members), index=index))
    return root


def test_a_zip_member_declaring_more_bytes_than_a_photo_is_a_counted_skip(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(buffer, "JPEG")
    limit = max_photo_bytes(40 * 40)
    root = _celeba_zip(
        tmp_path / "celeba",
        {"000001.jpg": buffer.getvalue(), "000002.jpg": b"\0" * (limit + 1), "000003.jpg": buffer.getvalue()},
    )
    report = _prepare(CelebA(root, max_image_pixels=40 * 40), tmp_path / "out")
    assert (report.images_written, report.corrupt) == (2, 1)
    reason = pd.read_csv(tmp_path / "out" / "skipped.csv").reason[0]
    assert f"member img_align_celeba/000002.jpg: too large: {limit + 1:,} bytes" in reason
