"""Distilling facenet from the teacher: the student moves towards the teacher's centred descriptors, resumes
where it stopped, survives saving as a project backbone; Fisherfaces and people-level intervals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.config import GanConfig
from facegen.data.folder import FaceFolder
from facegen.data.prepare import CenterCropResize, LandmarkAlign, prepare_faces
from pipelines.train_gan import identity_term
from recognition.models.backbone import (
    BackboneUnavailable,
    DistilledFacenet,
    embed_images,
    generator_space_embedding,
    load_backbone,
    save_backbone,
)
from recognition.models.distill import Distiller, DistillSettings, centred_targets, jitter
from recognition.models.embeddings import load_embedder
from recognition.models.fisherfaces import Fisherfaces
from recognition.models.pretrain import identity_labels
from recognition.statistics import paired_difference, people_bootstrap
from recognition.models.teacher import DlibTeacher
from tests.support.faces import copy_people


@pytest.fixture(scope="module")
def taught(shared_faces64: Path, tmp_path_factory) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real faces64 crops of 4 people x 6 photos, their teacher descriptors and identities."""
    root = copy_people(shared_faces64, tmp_path_factory.mktemp("people"), n_people=4, per_person=6)
    paths = sorted(root.glob("*/*.jpg"))
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    return images, DlibTeacher(workers=2, chunk_size=12).embed(images), np.array([p.parent.name for p in paths])


def test_targets_are_the_teachers_centred_directions() -> None:
    teacher = np.array([[1.0, 0.9], [1.0, 0.8], [1.0, 1.3]], np.float32)  # mean (1, 1)
    targets = centred_targets(teacher)
    np.testing.assert_allclose(np.linalg.norm(targets, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(targets, [[0, -1], [0, -1], [0, 1]], atol=1e-6)  # the shared direction is gone


def test_student_learns_the_teacher_resumes_and_saves(taught, tmp_path: Path) -> None:
    images, teacher, identities = taught
    labels = identity_labels(identities)
    settings = DistillSettings(epochs=4, margin_epochs=1, batch_size=12, lr=3e-3, device="cpu")
    first = Distiller(settings, images, teacher, labels, tmp_path)
    first.run(stop_after=2)  # stopped halfway, as a killed run would be
    assert first.checkpoint_path.is_file()
    other = Distiller(DistillSettings(**{**settings.__dict__, "seed": 1}), images, teacher, labels, tmp_path)
    assert not other.resume()  # another seed: not its checkpoint
    again = Distiller(settings, images, teacher, labels, tmp_path)
    assert again.resume() and again.epoch == 2
    history = again.run()
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert [h["margin_loss"] > 0 for h in history] == [False, False, False, True]  # the last epoch adds the margin
    assert history[-1]["teacher_cosine"] > history[0]["teacher_cosine"]
    assert history[-1]["distill_loss"] < history[0]["distill_loss"]
    before_margin = load_backbone(str(again.before_margin_path))  # the ablation: distillation alone, 3 epochs
    assert isinstance(before_margin, DistilledFacenet)
    assert not torch.equal(before_margin.head.weight, again.model.head.weight)

    save_backbone(again.model, tmp_path / "distilled.pt", {"pretrained": "distilled"})
    model = load_backbone(str(tmp_path / "distilled.pt"))
    assert isinstance(model, DistilledFacenet)
    torch.testing.assert_close(model.centre, again.model.centre)
    assert model.centre.abs().sum() > 0  # the student's own training mean, set after training
    embeddings = embed_images(model, images, 80)
    assert embeddings.shape == (24, 128)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)


def test_jitter_keeps_the_batch_and_is_drawn_from_the_run_generator() -> None:
    """Without crops, shifts or colour the jitter only mirrors; with them it changes faces the same way again for
    the same generator state (a resumed run draws what the killed one would have)."""
    x = torch.rand(6, 3, 80, 80) * 2 - 1
    mirror_only = DistillSettings(crop_scale=(1.0, 1.0), max_shift=0.0, colour_jitter=0.0)
    out = jitter(x, mirror_only, torch.Generator().manual_seed(0))
    for a, b in zip(out, x):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)
    first = jitter(x, DistillSettings(), torch.Generator().manual_seed(3))
    assert torch.equal(first, jitter(x, DistillSettings(), torch.Generator().manual_seed(3)))
    assert first.shape == x.shape and first.abs().max() <= 1 and not torch.allclose(first, x, atol=0.05)


def test_a_backbone_refuses_faces_of_another_alignment(shared_faces64: Path, tmp_path: Path) -> None:
    """A facenet trained on landmark-aligned faces embeds no box crops (and the reverse), with one line naming both."""
    root = copy_people(shared_faces64, tmp_path / "people", n_people=1, per_person=2)
    prepare_faces(FaceFolder(root), tmp_path / "box", CenterCropResize(64), workers=0)
    prepare_faces(FaceFolder(root), tmp_path / "aligned", LandmarkAlign(64, tight=True), workers=0)
    save_backbone(DistilledFacenet(), tmp_path / "student.pt", {"pretrained": "distilled", "align": "landmarks"})
    assert load_embedder(tmp_path / "student.pt", 80, prepared=tmp_path / "aligned").fingerprint
    with pytest.raises(BackboneUnavailable, match=r"student.pt was trained on landmarks-aligned faces, but .*box "):
        load_embedder(tmp_path / "student.pt", 80, prepared=tmp_path / "box")
    save_backbone(DistilledFacenet(), tmp_path / "old.pt", {"pretrained": "distilled"})  # before alignment: box
    with pytest.raises(BackboneUnavailable, match="old.pt was trained on box-aligned faces"):
        load_embedder(tmp_path / "old.pt", 80, prepared=tmp_path / "aligned")
    # the editor's identity term (gan.identity_network) is held to the faces the editor trains on, too
    gan = GanConfig(lambda_identity=1.0, identity_network=tmp_path / "student.pt", identity_input_size=80)
    assert identity_term(gan, tmp_path / "aligned") is not None
    with pytest.raises(BackboneUnavailable, match="student.pt was trained on landmarks-aligned faces"):
        identity_term(gan, tmp_path / "box")


def test_distiller_refuses_skipped_faces_and_mismatched_inputs(taught, tmp_path: Path) -> None:
    images, teacher, identities = taught
    labels = identity_labels(identities)
    with_nan = teacher.copy()
    with_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN rows"):
        Distiller(DistillSettings(), images, with_nan, labels, tmp_path)
    with pytest.raises(ValueError, match="24 images, 23 teacher descriptors"):
        Distiller(DistillSettings(), images, teacher[:-1], labels, tmp_path)
    with pytest.raises(ValueError, match="margin_epochs=3 exceeds epochs=2"):
        Distiller(DistillSettings(epochs=2, margin_epochs=3), images, teacher, labels, tmp_path)


def test_fisherfaces_separates_the_people_it_was_fitted_on(taught) -> None:
    images, _, identities = taught
    fisher = Fisherfaces(components=12).fit(images, identities)
    embeddings = fisher.embed(images)
    assert embeddings.shape == (24, 3)  # LDA keeps people - 1 directions
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    people = np.unique(identities)
    means = np.stack([embeddings[identities == p].mean(0) for p in people])
    assert np.mean(people[(embeddings @ means.T).argmax(1)] == identities) >= 0.9
    with pytest.raises(ValueError, match="at least 2 people"):
        Fisherfaces().fit(images[:6], identities[:6])


def test_people_intervals_are_wider_than_photo_intervals_when_people_differ() -> None:
    people = np.repeat(np.arange(20), 10)
    correct = (people < 10).astype(float)  # half the people always recognised, half never
    mean, low, high = people_bootstrap(correct, people, samples=2000)
    assert mean == 0.5
    assert low < 0.35 and high > 0.65  # a photo bootstrap would give about 0.43-0.57
    assert people_bootstrap(np.ones(200), people) == (1.0, 1.0, 1.0)
    assert paired_difference(correct, correct, people) == (0.0, 0.0, 0.0)
    better = correct.copy()
    better[people == 15] = 1  # one more person recognised
    difference, low, high = paired_difference(better, correct, people)
    assert difference == pytest.approx(0.05) and 0 <= low <= high


def test_a_backbone_embeds_at_the_input_size_it_was_trained_at(tmp_path: Path) -> None:
    """The size a file records wins over the size asked (a 112 px student read at 80 px sees faces at another
    scale); a file that records none is read at the size asked."""
    torch.manual_seed(0)
    student = DistilledFacenet()
    save_backbone(student, tmp_path / "s112.pt", {"pretrained": "distilled", "input_size": 112})
    save_backbone(student, tmp_path / "plain.pt", {"pretrained": "distilled"})
    faces = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    at_112 = load_embedder(tmp_path / "s112.pt", 80)
    assert at_112.input_size == 112 and at_112.fingerprint.endswith("|112")
    assert np.allclose(at_112.embed(faces), embed_images(student.eval(), faces, 112), atol=1e-5)
    assert not np.allclose(at_112.embed(faces), embed_images(student.eval(), faces, 80), atol=1e-3)
    assert load_embedder(tmp_path / "plain.pt", 96).input_size == 96
    assert generator_space_embedding(tmp_path / "s112.pt", 80).input_size == 112
