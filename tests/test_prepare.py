"""prepare: crops land in a complete cache, bad photos are counted (or stop a strict run), nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from facegen.data.prepare import CenterCropResize, MTCNNCrop, PrepareError, prepare_faces
from facegen.data.prepared import PreparedFaces
from tests.support.faces import copy_people


def test_prepare_celeba_layout_round_trips(celeba_subset: Path, tmp_path: Path) -> None:
    faces = CelebA(celeba_subset)
    out = tmp_path / "prepared"
    report = prepare_faces(faces, out, CenterCropResize(32, crop=140), workers=0, batch_size=16)
    assert (report.images_in, report.images_written, report.corrupt) == (40, 40, 0)
    assert sorted(p.name for p in out.iterdir()) == [
        ".facegen.json",  # the stamp: facegen wrote this folder
        "annotations.parquet",
        "images.npy",
        "meta.json",
        "skipped.csv",
    ]
    assert json.loads((out / "meta.json").read_text())["image_size"] == 32
    prepared = PreparedFaces(out, attributes=["Eyeglasses", "Male"])
    assert prepared.images.shape == (40, 32, 32, 3) and prepared.images.dtype == np.uint8
    pd.testing.assert_frame_equal(prepared.annotations.drop(columns="_row"), faces.annotations)
    expected = np.asarray(CenterCropResize(32, crop=140)(faces.load_image(7)))
    assert np.array_equal(prepared.images[7], expected)
    assert (
        prepared[7][1].tolist()
        == faces[7][1][[faces.attribute_names.index("Eyeglasses"), faces.attribute_names.index("Male")]].tolist()
    )
    train = PreparedFaces(out, split="train")
    assert len(train) == 40 and len(PreparedFaces(out, split="valid")) == 0


def test_center_crop_takes_the_middle_square() -> None:
    image = Image.new("RGB", (178, 218), "white")
    image.paste((255, 0, 0), (19, 39, 159, 179))  # the central 140 x 140 square is red
    crop = np.asarray(CenterCropResize(16, crop=140)(image))
    inner = crop[1:-1, 1:-1]  # the outermost pixels see a little white through the Lanczos filter
    assert crop.shape == (16, 16, 3) and (inner[..., 0] > 250).all() and (inner[..., 1] < 5).all()


@pytest.fixture
def people_with_a_corrupt_photo(tmp_path: Path, shared_faces64: Path) -> Path:
    root = copy_people(shared_faces64, tmp_path / "people", n_people=3, per_person=5)
    victim = sorted((root / sorted(p.name for p in root.iterdir())[1]).iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:300])  # truncated JPEG
    return root


def test_corrupt_photo_is_counted_and_listed(people_with_a_corrupt_photo: Path, tmp_path: Path) -> None:
    faces = FaceFolder(people_with_a_corrupt_photo)
    report = prepare_faces(faces, tmp_path / "out", CenterCropResize(64), workers=2, batch_size=4)
    assert (report.images_in, report.images_written, report.corrupt) == (15, 14, 1)
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert len(skipped) == 1 and skipped.reason[0].startswith("corrupt:")
    prepared = PreparedFaces(tmp_path / "out")
    assert len(prepared) == 14 and skipped.image_id[0] not in set(prepared.annotations.image_id)
    original = np.asarray(Image.open(people_with_a_corrupt_photo / prepared.annotations.image_id[13]))
    assert np.abs(prepared.images[13].astype(int) - original).mean() < 2  # 64x64 crops pass through unchanged


def test_strict_run_stops_and_leaves_nothing(people_with_a_corrupt_photo: Path, tmp_path: Path) -> None:
    with pytest.raises(PrepareError, match=r"cannot decode image .*strict mode"):
        prepare_faces(
            FaceFolder(people_with_a_corrupt_photo), tmp_path / "out", CenterCropResize(64), strict=True, workers=0
        )
    assert list(tmp_path.glob("*out*")) == []  # neither the output nor its temporary folder


def test_failed_rerun_keeps_the_previous_complete_output(people_with_a_corrupt_photo, tmp_path: Path) -> None:
    faces = FaceFolder(people_with_a_corrupt_photo)
    prepare_faces(faces, tmp_path / "out", CenterCropResize(64), workers=0)
    with pytest.raises(PrepareError):
        prepare_faces(faces, tmp_path / "out", CenterCropResize(32), strict=True, workers=0)
    assert PreparedFaces(tmp_path / "out").images.shape == (14, 64, 64, 3)


def test_mtcnn_finds_a_face_in_a_wild_photo_and_counts_photos_without_one(shared_faces64: Path, tmp_path: Path) -> None:
    person = tmp_path / "wild" / "alice"
    person.mkdir(parents=True)
    face = Image.open(sorted(sorted(shared_faces64.iterdir())[0].iterdir())[0]).resize(
        (160, 160), Image.Resampling.BICUBIC
    )
    scene = Image.new("RGB", (480, 360), (90, 120, 90))
    scene.paste(face, (250, 90))
    scene.save(person / "classroom.jpg", quality=95)
    Image.new("RGB", (480, 360), (200, 200, 230)).save(person / "empty_wall.jpg")
    report = prepare_faces(FaceFolder(tmp_path / "wild"), tmp_path / "out", MTCNNCrop(64), workers=0)
    assert (report.images_written, report.no_face) == (1, 1)
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped.to_dict("records") == [{"image_id": "alice/empty_wall.jpg", "reason": "no face found"}]
    crop = PreparedFaces(tmp_path / "out").images[0].astype(float)
    reference = np.asarray(face.resize((64, 64)), dtype=float)
    assert np.abs(crop.mean(axis=(0, 1)) - reference.mean(axis=(0, 1))).max() < 25  # the face, not the green wall
