"""Landmark alignment: the five points land on the template, every way of cropping is reproducible, and photos
without a usable face are counted with the reason."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from facegen.config import DataConfig, PrepareConfig
from facegen.data.align import align_face, apply_transform, similarity_transform, template
from facegen.data.annotations import LANDMARKS_FILE
from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from facegen.data.prepare import LANDMARKS_OFF, NO_FACE, LandmarkAlign, prepare_faces
from facegen.data.prepared import PreparedFaces
from facegen.data.sources import cropper_for
from tests.support.faces import copy_people

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def dots_photo(landmarks: np.ndarray, size: tuple[int, int] = (300, 260), radius: int = 3) -> Image.Image:
    """A grey photo with one coloured dot on each landmark."""
    photo = Image.new("RGB", size, (128, 128, 128))
    draw = ImageDraw.Draw(photo)
    for (x, y), colour in zip(landmarks, COLOURS):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return photo


def dot_centres(crop: np.ndarray) -> np.ndarray:
    """The centroid of each coloured dot in an aligned crop (weighted by how close a pixel is to its colour)."""
    centres = []
    for colour in COLOURS:
        closeness = np.clip(1 - np.abs(crop.astype(float) - colour).sum(axis=2) / 200, 0, None)
        ys, xs = np.mgrid[: crop.shape[0], : crop.shape[1]]
        centres.append([(xs * closeness).sum() / closeness.sum(), (ys * closeness).sum() / closeness.sum()])
    return np.array(centres)


def test_the_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.4, 1.7, np.array([12.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * points @ rotation.T + shift
    matrix = similarity_transform(points, moved)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(apply_transform(matrix, points), moved, atol=1e-9)


@pytest.mark.parametrize(
    ("angle", "scale", "size"), [(0.0, 2.0, 64), (0.35, 3.1, 64), (-0.5, 1.2, 112), (0.2, 5.0, 32)]
)
def test_alignment_puts_the_landmarks_on_the_template(angle: float, scale: float, size: int) -> None:
    """A photo whose five landmarks are the template turned, scaled and moved: after alignment each landmark sits
    on its template point (within a pixel at 64 px), whatever the turn and scale (large scales are shrunk first)."""
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = scale * (template(112) - 56) @ rotation.T + [150, 130]
    photo = dots_photo(
        landmarks, size=(300 + int(scale * 60), 260 + int(scale * 60)), radius=max(2, round(1.5 * scale * 112 / size))
    )
    crop = np.asarray(align_face(photo, landmarks, size))
    assert crop.shape == (size, size, 3)
    np.testing.assert_allclose(dot_centres(crop), template(size), atol=0.6 * max(1.0, size / 64))


def test_a_face_at_the_photo_edge_is_padded_with_its_edge_pixels_not_black() -> None:
    landmarks = template(112) * 2 + [-60, -40]  # the crop reaches past the top-left corner
    photo = dots_photo(landmarks, size=(240, 240), radius=6)
    crop = np.asarray(align_face(photo, landmarks, 64))
    assert (crop.sum(axis=2) > 0).all(), "black bars where the crop left the photo"
    np.testing.assert_allclose(dot_centres(crop), template(64), atol=0.6)


def test_landmarks_given_by_the_source_are_used_and_checked() -> None:
    """A landmark file's points align without a detector; points off the photo are refused with the reason."""
    landmarks = template(112) * 2 + [40, 20]
    photo = dots_photo(landmarks, radius=6)
    crop = np.asarray(LandmarkAlign(64)(photo, landmarks))
    np.testing.assert_allclose(dot_centres(crop), template(64), atol=0.6)
    with pytest.raises(ValueError, match=LANDMARKS_OFF):
        LandmarkAlign(64)(photo, landmarks + [250, 0])


def test_celeba_landmark_file_aligns_without_mtcnn(celeba_subset: Path, tmp_path: Path) -> None:
    """With list_landmarks_align_celeba.txt, prepare uses its points: here dots drawn where the file says."""
    with zipfile.ZipFile(celeba_subset / "img_align_celeba.zip") as zf:
        names = sorted(Path(n).name for n in zf.namelist() if n.endswith(".jpg"))
    rng = np.random.default_rng(1)
    rows, photos = [], {}
    for name in names:
        points = template(112) * rng.uniform(0.9, 1.1) + rng.uniform([20, 40], [50, 70])
        rows.append(f"{name} " + " ".join(str(int(round(v))) for v in points.ravel()))
        photos[name] = dots_photo(np.round(points), size=(178, 218))
    with zipfile.ZipFile(celeba_subset / "img_align_celeba.zip", "w") as zf:
        for name, photo in photos.items():
            path = tmp_path / name
            photo.save(path, format="PNG")  # lossless, though named .jpg: the decoder reads the content
            zf.write(path, f"img_align_celeba/{name}")
    header = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (celeba_subset / LANDMARKS_FILE).write_text("\r\n".join([str(len(rows)), header, *rows]) + "\r\n")
    faces = CelebA(celeba_subset)
    assert faces.landmarks(0) is not None
    cropper = cropper_for(DataConfig(source="local", image_size=64), PrepareConfig())
    report = prepare_faces(faces, tmp_path / "out", cropper, workers=0)
    assert (report.images_written, report.align) == (len(names), "landmarks")
    prepared = PreparedFaces(tmp_path / "out")
    assert prepared.align == "landmarks"
    assert "_landmark_0" not in prepared.annotations  # private columns stay out of the cache
    for crop in prepared.images[:5]:
        np.testing.assert_allclose(dot_centres(crop), template(64), atol=1.0)


def test_mtcnn_alignment_of_real_photos(shared_celeba: Path) -> None:
    """Real CelebA photos: MTCNN's landmarks found again on the aligned face lie near the template (a few px at
    64 px: real faces are turned and smile, and MTCNN's points move with its box), the right way round."""
    with zipfile.ZipFile(shared_celeba / "img_align_celeba.zip") as zf:
        photos = [Image.open(zf.open(f"img_align_celeba/{i:06d}.jpg")).convert("RGB") for i in range(1, 9)]
    again = LandmarkAlign(64, tight=True)  # the aligned crop is tight: enlarge and pad it before detection
    errors = []
    for photo in photos:
        points, found = again.detect(LandmarkAlign(64)(photo))
        assert found == 1
        errors.append(np.linalg.norm(points - template(64), axis=1).mean())
        (left_eye, right_eye, nose, mouth_left, mouth_right) = points
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # not mirrored
        assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert np.median(errors) < 3.5 and max(errors) < 7, errors


def test_prepare_counts_no_face_several_faces_and_is_reproducible(shared_faces64: Path, tmp_path: Path) -> None:
    """A wall (no face), two people in one photo (the larger is kept, the photo counted) and faces64's tight
    crops: each counted or kept, and a second run writes the same bytes."""
    root = copy_people(shared_faces64, tmp_path / "people", n_people=2, per_person=3)
    people = sorted(p for p in root.iterdir())
    faces = [Image.open(p).convert("RGB") for p in sorted(people[0].iterdir())[:2]]
    group = Image.new("RGB", (520, 320), (70, 90, 110))
    group.paste(faces[0].resize((200, 200), Image.Resampling.BICUBIC), (20, 60))
    group.paste(faces[1].resize((110, 110), Image.Resampling.BICUBIC), (360, 100))
    wild = tmp_path / "wild" / "class"
    wild.mkdir(parents=True)
    group.save(wild / "group.jpg", quality=95)
    Image.new("RGB", (300, 200), (210, 210, 220)).save(wild / "wall.jpg")
    report = prepare_faces(FaceFolder(tmp_path / "wild"), tmp_path / "wild_out", LandmarkAlign(64), workers=0)
    assert (report.images_written, report.no_face, report.several_faces) == (1, 1, 1)
    skipped = pd.read_csv(tmp_path / "wild_out" / "skipped.csv")
    assert skipped.to_dict("records") == [{"image_id": "class/wall.jpg", "reason": NO_FACE}]
    kept = PreparedFaces(tmp_path / "wild_out").images[0].astype(float)
    larger = np.asarray(faces[0].resize((64, 64)), float)
    assert np.abs(kept.mean((0, 1)) - larger.mean((0, 1))).max() < 30  # the larger face, not the wall

    tight = cropper_for(DataConfig(source="folder", image_size=64), PrepareConfig(workers=0))
    assert isinstance(tight, LandmarkAlign) and tight.tight
    threads = torch.get_num_threads()
    first = prepare_faces(FaceFolder(root), tmp_path / "a", tight, workers=0)  # in this process: 1 torch thread
    assert torch.get_num_threads() == threads  # for the crops only (CROP_THREADS), as loader workers crop
    prepare_faces(FaceFolder(root), tmp_path / "b", tight, workers=2, batch_size=2)
    assert first.images_written == 6
    for name in ("images.npy", "annotations.parquet", "meta.json", "skipped.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_box_mode_keeps_the_older_crops(shared_faces64: Path, tmp_path: Path) -> None:
    """prepare.align: box gives the older crops: tight photos resized as they are, recorded as box."""
    root = copy_people(shared_faces64, tmp_path / "people", n_people=1, per_person=2)
    box = cropper_for(DataConfig(source="folder", image_size=64), PrepareConfig(align="box"))
    report = prepare_faces(FaceFolder(root), tmp_path / "out", box, workers=0)
    assert report.align == "box"
    photo = np.asarray(Image.open(sorted(next(root.iterdir()).iterdir())[0]).convert("RGB"))
    np.testing.assert_array_equal(PreparedFaces(tmp_path / "out").images[0], photo)  # 64 px already
