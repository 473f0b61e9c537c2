"""Every bad file counted (issue 22): unreadable photos are listed skips (or, strict, errors naming them),
label tables are validated with file, row and column, and nothing reads outside its data set folder."""

from __future__ import annotations

import io
import os
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
    AnnotationError,
    write_attributes,
    write_identities,
    write_partition,
)
from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from facegen.data.images import CorruptImageError, decode_image
from facegen.data.prepare import CenterCropResize, PrepareError, prepare_faces
from facegen.data.prepared import PreparedFaces
from tests.support.photos import make_people


def _prepare(faces, out: Path, strict: bool = False):
    return prepare_faces(faces, out, CenterCropResize(16), strict=strict, workers=0)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


# --- unreadable photos -----------------------------------------------------------------------------------


def test_a_decompression_bomb_is_a_counted_skip_and_strict_names_it(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos")
    Image.new("1", (15_000, 15_000)).save(photos / "person_0" / "bomb.png")  # 225 MP in a few hundred kB
    report = _prepare(FaceFolder(photos), tmp_path / "out")
    assert (report.images_in, report.images_written, report.corrupt) == (7, 6, 1)
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped.image_id.tolist() == ["person_0/bomb.png"]
    assert "bomb.png: too large: 225,000,000 pixels, more than data.max_image_pixels (100,000,000)" in skipped.reason[0]
    with pytest.raises(PrepareError, match=r"person_0/bomb.png: too large.*strict mode"):
        _prepare(FaceFolder(photos), tmp_path / "strict", strict=True)


def test_the_pixel_limit_is_configurable(tmp_path: Path) -> None:
    data = _png(np.zeros((100, 100, 3), np.uint8))
    assert decode_image("ok.png", data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(
        CorruptImageError, match=r"big.png: too large: 10,000 pixels, more than data.max_image_pixels \(9,999\)"
    ):
        decode_image("big.png", data, max_pixels=9_999)
    photos = make_people(tmp_path / "photos", per_person=1, size=24)
    faces = FaceFolder(photos, max_image_pixels=24 * 24 - 1)
    with pytest.raises(PrepareError, match="no usable face: all 2 photos were skipped"):
        _prepare(faces, tmp_path / "out")


def test_a_16_bit_greyscale_png_keeps_its_tones(tmp_path: Path) -> None:
    ramp = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    image = decode_image("ramp16.png", _png(ramp))
    assert image.mode == "RGB"
    assert abs(np.asarray(image).mean() - ramp.mean() / 257) < 0.6  # not washed out to white (254.5)
    assert np.asarray(image)[0, 0].tolist() == [0, 0, 0] and np.asarray(image)[-1, -1].tolist() == [255, 255, 255]


def test_tif_and_gif_photos_are_read_and_heic_and_stray_files_listed(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos", per_person=1)
    rgb = np.asarray(Image.open(photos / "person_0" / "0.jpg"))
    Image.fromarray(rgb).save(photos / "person_0" / "1.tif")
    Image.fromarray(rgb).save(photos / "person_1" / "1.gif")
    (photos / "person_1" / "2.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (photos / "person_1" / "notes.txt").write_text("who is who")
    (photos / "loose.jpg").write_bytes((photos / "person_0" / "0.jpg").read_bytes())
    (photos / "person_1" / ".DS_Store").write_bytes(b"\x00")  # hidden: not a photo anyone took
    report = _prepare(FaceFolder(photos), tmp_path / "out")
    assert (report.images_in, report.images_written, report.corrupt) == (7, 4, 3)
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert dict(zip(skipped.image_id, skipped.reason)) == {
        "loose.jpg": "not in a per-person folder",
        "person_1/2.heic": "unsupported format (.heic)",
        "person_1/notes.txt": "unsupported format (.txt)",
    }
    assert sorted(PreparedFaces(tmp_path / "out").annotations.image_id) == [
        "person_0/0.jpg",
        "person_0/1.tif",
        "person_1/0.jpg",
        "person_1/1.gif",
    ]
    with pytest.raises(AnnotationError, match=r"loose.jpg: not in a per-person folder \(strict mode; 3 such"):
        FaceFolder(photos, strict=True)


def test_a_folder_whose_every_photo_is_corrupt_is_an_error_not_an_empty_cache(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos")
    for photo in photos.rglob("*.jpg"):
        photo.write_bytes(photo.read_bytes()[:100])
    with pytest.raises(PrepareError, match=r"no usable face: all 6 photos were skipped, e.g. person_0/0.jpg"):
        _prepare(FaceFolder(photos), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_a_truncated_jpeg_is_a_counted_skip(tmp_path: Path) -> None:  # held before: a regression test
    photos = make_people(tmp_path / "photos")
    victim = photos / "person_1" / "2.jpg"
    victim.write_bytes(victim.read_bytes()[:200])
    report = _prepare(FaceFolder(photos), tmp_path / "out")
    assert (report.images_written, report.corrupt) == (5, 1)
    assert pd.read_csv(tmp_path / "out" / "skipped.csv").reason[0].startswith("corrupt: ")


def _celeba(root: Path, n: int = 4) -> Path:
    """A CelebA-layout folder of n noise photos (zip stored, so member bytes can be damaged in place)."""
    root.mkdir(parents=True)
    ids = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(root / IMAGES_ZIP, "w", zipfile.ZIP_STORED) as zf:
        for image_id in ids:
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buffer, "JPEG")
            zf.writestr(f"{IMAGES_DIR}/{image_id}", buffer.getvalue())
    index = pd.Index(ids, name="image_id")
    write_attributes(root / ATTR_FILE, pd.DataFrame({"Smiling": [0, 1] * (n // 2)}, index=index))
    write_identities(root / IDENTITY_FILE, pd.Series(["1", "1", "2", "2"][:n], index=index))
    write_partition(root / PARTITION_FILE, pd.Series(["train"] * n, index=index))
    return root


def test_a_zip_member_with_a_bad_crc_is_a_counted_skip(tmp_path: Path) -> None:
    root = _celeba(tmp_path / "celeba")
    with zipfile.ZipFile(root / IMAGES_ZIP) as zf:
        info = zf.getinfo(f"{IMAGES_DIR}/000002.jpg")
    data = bytearray((root / IMAGES_ZIP).read_bytes())
    data[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF  # one byte of its JPEG data
    (root / IMAGES_ZIP).write_bytes(bytes(data))
    report = _prepare(CelebA(root), tmp_path / "out")
    assert (report.images_written, report.corrupt) == (3, 1)
    reason = pd.read_csv(tmp_path / "out" / "skipped.csv").reason[0]
    assert "img_align_celeba.zip: member img_align_celeba/000002.jpg: cannot be read (Bad CRC-32" in reason
    with pytest.raises(PrepareError, match=r"000002.jpg: cannot be read .*strict mode"):
        _prepare(CelebA(root), tmp_path / "strict", strict=True)


def test_html_saved_as_the_image_zip_is_a_clear_error(tmp_path: Path) -> None:  # held before
    root = _celeba(tmp_path / "celeba")
    (root / IMAGES_ZIP).write_text("<html>Google Drive - Quota exceeded</html>")
    with pytest.raises(AnnotationError, match="not a valid zip archive"):
        CelebA(root)


# --- the attributes CSV of a folder source ---------------------------------------------------------------

CSV_CASES = {  # name: (csv text, the error it must give); the photos are person_0/0..2.jpg, person_1/0..2.jpg
    "duplicate row": (
        "image,Smiling\nperson_0/0.jpg,1\nperson_0/1.jpg,0\nperson_0/0.jpg,0\n",
        r"row 4 column 'image': 'person_0/0.jpg' is listed again \(first at row 2\)",
    ),
    "unknown split": (
        "image,Smiling,split\nperson_0/0.jpg,1,train\nperson_0/1.jpg,0,banana\n",
        r"row 3 column 'split': values must be one of train, valid, test, got 'banana'",
    ),
    "mixed keys": (
        "image,Smiling\nperson_0/0.jpg,1\n1.jpg,0\n",
        r"row 3 column 'image': '1.jpg' is a bare file name but row 2 has a path",
    ),
    "empty file": ("", r"attributes.csv: empty file"),
    "header only": ("image,Smiling\n", r"attributes.csv: no rows under the header"),
    "no image column": ("photo,Smiling\nperson_0/0.jpg,1\n", r"row 1: needs an 'image' column"),
    "repeated column": (
        "image,Smiling,Smiling\nperson_0/0.jpg,1,0\n",
        r"row 1: column 'Smiling' appears more than once",
    ),
    "bad value": (
        "image,Smiling\nperson_0/0.jpg,yes\n",
        r"row 2 column 'Smiling': values must be 0/1 or -1/1, got 'yes'",
    ),
    "empty value": ("image,Smiling\nperson_0/0.jpg,\n", r"row 2 column 'Smiling': values must be 0/1 or -1/1, got ''"),
    "empty image": ("image,Smiling\n,1\n", r"row 2 column 'image': values must be a photo's path or file name"),
    "ragged row": (
        "image,Smiling\nperson_0/0.jpg,1\nperson_0/1.jpg,1,1,1\n",
        r"row 3: expected 2 fields like the header, got 4",
    ),
    "matches no photo": ("image,Smiling\nsomeone/else.jpg,1\n", r"no photo has a row"),
    "ambiguous bare name": ("image,Smiling\n0.jpg,1\n", r"the bare name '0.jpg' matches photos in several folders"),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_a_bad_attributes_csv_is_an_error_naming_file_row_and_column(tmp_path: Path, case: str) -> None:
    text, message = CSV_CASES[case]
    photos = make_people(tmp_path / "photos")
    (tmp_path / "attributes.csv").write_text(text)
    with pytest.raises(AnnotationError, match=message) as error:
        FaceFolder(photos, attributes_csv=tmp_path / "attributes.csv")
    assert str(tmp_path / "attributes.csv") in str(error.value)


def test_a_good_csv_with_a_byte_order_mark_bare_names_and_splits_is_read(tmp_path: Path) -> None:
    photos = make_people(tmp_path / "photos", n_people=1)
    (tmp_path / "attributes.csv").write_bytes("\ufeffimage,Smiling,split\n0.jpg,1,train\n 1.jpg ,-1,test\n".encode())
    faces = FaceFolder(photos, attributes_csv=tmp_path / "attributes.csv")
    assert faces.annotations[["image_id", "Smiling", "split"]].values.tolist() == [
        ["person_0/0.jpg", 1, "train"],
        ["person_0/1.jpg", 0, "test"],
    ]
    assert (faces.unannotated_images, faces.missing_images) == (1, 0)
    (tmp_path / "attributes.csv").write_text("image,Smiling\nperson_0/0.jpg,1\nperson_9/9.jpg,0\n")
    assert FaceFolder(photos, attributes_csv=tmp_path / "attributes.csv").missing_images == 1
    with pytest.raises(AnnotationError, match=r"1 rows have no photo, e.g. 'person_9/9.jpg' \(strict mode\)"):
        FaceFolder(photos, attributes_csv=tmp_path / "attributes.csv", strict=True)
    with pytest.raises(FileNotFoundError, match="nowhere.csv: no such attributes CSV"):
        FaceFolder(photos, attributes_csv=tmp_path / "nowhere.csv")


# --- synthetic data set manifests --------------------------------------------------------------------------


def _synthetic(root: Path, files: list[str]) -> Path:
    from facegen.synthetic.writer import MANIFEST_PARQUET

    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8), "red").save(root / "images" / "000000.png")
    pd.DataFrame(
        {
            "file": files,
            "Smiling": 1,
            "mode": "per_attribute",
            "seed": 0,
            "sample_index": 0,
            "source_image": "",
            "identity": "",
            "edited_attribute": "",
        }
    ).to_parquet(root / MANIFEST_PARQUET)
    return root


@pytest.mark.parametrize("file", ["../../outside/secret.jpg", "/etc/passwd", "images/../../secret.jpg", "link/x.png"])
def test_a_manifest_file_outside_its_data_set_is_refused(tmp_path: Path, file: str) -> None:
    from facegen.datasets import SyntheticFaces

    (tmp_path / "outside").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "outside" / "secret.jpg")
    root = _synthetic(tmp_path / "data" / "faces", ["images/000000.png", file])
    os.symlink(tmp_path / "outside", root / "link")
    with pytest.raises(ValueError, match=rf"row 1: file {file!r} is not inside .*faces; refusing to read it"):
        SyntheticFaces(root)


def test_a_manifest_inside_its_data_set_reads(tmp_path: Path) -> None:  # held before
    from facegen.datasets import SyntheticFaces

    faces = SyntheticFaces(_synthetic(tmp_path / "faces", ["images/000000.png"]))
    assert len(faces) == 1 and faces[0][0].size == (8, 8)
