"""The teacher (dlib's pretrained recognizer, installed offline from PyPI): it tells real people apart,
refuses what cannot be a face crop, counts what it cannot embed, and says how to install it when missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recognition.models import teacher as teacher_module
from recognition.models.embeddings import EmbeddingCache
from recognition.models.teacher import (
    DlibTeacher,
    TeacherUnavailable,
    read_teacher_embeddings,
    write_teacher_embeddings,
)
from tests.support.faces import people_arrays


@pytest.fixture(scope="module")
def people(shared_faces64: Path) -> tuple[np.ndarray, np.ndarray]:
    """Real 64x64 faces64 crops: 4 people x 5 photos, and who is who."""
    return people_arrays(shared_faces64, n_people=4, per_person=5)


def test_teacher_tells_real_people_apart(people) -> None:
    images, identities = people
    embeddings = DlibTeacher(workers=2, chunk_size=8).embed(images)  # 3 chunks over 2 processes
    assert embeddings.shape == (20, 128) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(DlibTeacher(workers=1).embed(images), embeddings, atol=1e-6)  # workers don't matter
    similarity = embeddings @ embeddings.T
    same = identities[:, None] == identities[None, :]
    off_diagonal = ~np.eye(len(images), dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean() + 0.1
    # nearest other photo is the same person for most photos (dlib names 0.90 of faces64 check-ins)
    nearest = np.where(off_diagonal, similarity, -np.inf).argmax(1)
    assert np.mean(identities[nearest] == identities) >= 0.8


def test_blank_crops_are_counted_not_embedded(people) -> None:
    images = np.concatenate([people[0][:2], np.full((1, 64, 64, 3), 200, np.uint8)])
    teacher = DlibTeacher(workers=1)
    embeddings = teacher.embed(images)
    assert np.isnan(embeddings[2]).all() and not np.isnan(embeddings[:2]).any()
    reasons = teacher.skip_reasons(images)
    assert reasons[:2] == ["", ""] and reasons[2].startswith("blank crop")


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 64, 64), np.uint8), "grayscale"),
        (np.zeros((2, 64, 64, 3), np.uint16), "16-bit"),
        (np.zeros((2, 20, 20, 3), np.uint8), "too small"),
    ],
)
def test_what_cannot_be_a_colour_face_crop_is_refused_by_name(images, message) -> None:
    with pytest.raises(ValueError, match=message):
        DlibTeacher(workers=1).embed(images)


def test_a_missing_teacher_package_says_how_to_install_it(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models" else real(name, *a)
    )
    with pytest.raises(TeacherUnavailable, match="pip install dlib-bin face-recognition-models"):
        DlibTeacher()


def test_stored_descriptors_round_trip_and_bad_files_are_named(people, tmp_path: Path) -> None:
    teacher = DlibTeacher(workers=1)
    cache = EmbeddingCache(tmp_path / "cache", teacher, chunk_size=8)
    embeddings = cache.embed(people[0])
    assert (cache.misses, cache.hits) == (3, 0)
    np.testing.assert_array_equal(cache.embed(people[0]), embeddings)  # resumed from the chunks, not recomputed
    assert cache.hits == 3
    folder = tmp_path / "teacher"
    write_teacher_embeddings(
        folder,
        embeddings,
        pd.DataFrame(columns=["image_id", "identity", "reason"]),
        {"faces": 20, "fingerprint": "dlib"},
    )
    np.testing.assert_array_equal(read_teacher_embeddings(folder, 20), embeddings)
    with pytest.raises(ValueError, match="prepared faces changed"):
        read_teacher_embeddings(folder, 21)
    (folder / teacher_module.EMBEDDINGS_FILE).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"teacher/embeddings.npy: unreadable"):
        read_teacher_embeddings(folder, 20)
    with pytest.raises(FileNotFoundError, match="dvc repro teacher_embeddings"):
        read_teacher_embeddings(tmp_path / "nowhere", 20)


def test_pretrained_dlib_makes_the_teacher_the_attendance_recognizer(people, tmp_path: Path) -> None:
    from recognition.models.backbone import BackboneUnavailable, TEACHER, load_backbone, save_backbone
    from recognition.models.embeddings import TorchEmbedder, load_embedder

    save_backbone(None, tmp_path / "backbone.pt", {"pretrained": TEACHER})  # what pretrain_backbone records
    embedder = load_embedder(tmp_path / "backbone.pt", input_size=80)
    assert isinstance(embedder, DlibTeacher)
    assert embedder.embed(people[0][:3]).shape == (3, 128)
    with pytest.raises(BackboneUnavailable, match="names the dlib teacher"):
        load_backbone(str(tmp_path / "backbone.pt"))
    save_backbone(load_backbone("none"), tmp_path / "facenet.pt", {"pretrained": "none"})
    assert isinstance(load_embedder(tmp_path / "facenet.pt", input_size=80), TorchEmbedder)
