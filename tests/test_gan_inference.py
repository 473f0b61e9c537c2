"""FaceModel: loading a train_gan checkpoint, seeded sampling, attribute matrices, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.config import SamplingConfig
from facegen.gan.inference import FaceModel, to_tensor, to_uint8
from facegen.gan.training_loop import GanTrainer
from tests.support.synthetic import tiny_gan


def _checkpoint(out, **changes):
    config = tiny_gan(**({"attributes": ("Male", "Smiling"), "editor_channels": 4} | changes))
    images = torch.randint(0, 256, (16, 32, 32, 3), dtype=torch.uint8)
    GanTrainer(config, images, torch.randint(0, 2, (16, 2)).float(), out).run()
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("gan"))


@pytest.mark.parametrize("changes", [dict(), dict(model="cvae")], ids=["cgan", "cvae"])
def test_edit_is_deterministic_and_batched(tmp_path, changes) -> None:
    model = FaceModel.load(_checkpoint(tmp_path, **changes))
    photos = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    targets = model.attribute_matrix({"Male": 1}, 5)
    edited = model.edit(photos, targets)
    assert edited.shape == photos.shape and edited.dtype == np.uint8
    assert np.array_equal(edited, model.edit(photos, targets, batch_size=2))
    assert not np.array_equal(edited, model.edit(photos, model.attribute_matrix({"Smiling": 1}, 5)))
    assert model.sample(targets, seed=1).shape == (5, 32, 32, 3)
    with pytest.raises(ValueError, match="expected 4 x 32 x 32 x 3 uint8 images"):
        model.edit(photos, targets[:4])


def test_candidates_keep_the_face_the_discriminator_agrees_with_most(checkpoint) -> None:
    plain = FaceModel.load(checkpoint, sampling=SamplingConfig(candidates=1))
    guided = FaceModel.load(checkpoint, sampling=SamplingConfig(candidates=4))
    wanted = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]).repeat(4, 1)
    # Candidate j of every row is the generator at the j-th N x z_dim block of the seeded latents.
    z = torch.randn(4, len(wanted), plain.config.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        candidates = np.stack([to_uint8(plain.generator(z[j], wanted)) for j in range(4)])
    scores = torch.stack([plain.agreement(to_tensor(c), wanted) for c in candidates])
    expected = candidates[scores.argmax(0), np.arange(len(wanted))]
    chosen = guided.sample(wanted, seed=7)
    assert np.array_equal(chosen, expected)
    assert np.array_equal(plain.sample(wanted, seed=7), candidates[0])  # 1 candidate: plain sampling
    assert (scores.argmax(0) > 0).any()  # some row did pick a later candidate
    assert np.array_equal(chosen, guided.sample(wanted, seed=7, batch_size=3))


def test_refine_edits_each_candidate_before_they_are_compared(checkpoint) -> None:
    plain = FaceModel.load(checkpoint, sampling=SamplingConfig(candidates=1, edit_strength=1.5))
    wanted = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]).repeat(2, 1)
    # Refining edits at sampling.refine_strength (here 1.5, as plain's edit_strength), not at edit_strength.
    faces = plain.sample(wanted, seed=3)
    p = plain.attribute_probabilities(faces)
    assert ((p > 0) & (p < 1)).all() and torch.equal(plain.predict_attributes(faces), (p > 0.5).float())
    with torch.no_grad():  # the editor on the drawn faces, asked for the request at strength 1.5 from D's probabilities
        expected = to_uint8(plain.editor(to_tensor(faces), p + 1.5 * (wanted - p)))
    refined = FaceModel.load(
        checkpoint, sampling=SamplingConfig(candidates=1, refine_strength=1.5, edit_strength=3, refine=True)
    )
    got = refined.sample(wanted, seed=3)
    assert np.array_equal(got, expected) and np.array_equal(got, plain.edit(faces, wanted, source_attributes=p))
    assert not np.array_equal(got, plain.edit(faces, wanted))  # not from D's 0/1 view
    assert np.abs(got.astype(int) - faces).mean() > 1  # the editor did change them
    # At refine strength 1 the editor is asked for the request itself.
    with torch.no_grad():
        at_one = to_uint8(plain.editor(to_tensor(faces), wanted))
    assert np.array_equal(
        FaceModel.load(checkpoint, sampling=SamplingConfig(refine=True)).sample(wanted, seed=3), at_one
    )

    # With candidates, every candidate is refined and the refined faces are compared.
    z = torch.randn(3, len(wanted), plain.config.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        raw = [to_uint8(plain.generator(z[j], wanted)) for j in range(3)]
        drawn = [plain.edit(r, wanted, source_attributes=plain.attribute_probabilities(r)) for r in raw]
    scores = torch.stack([plain.agreement(to_tensor(c), wanted) for c in drawn])
    best = np.stack(drawn)[scores.argmax(0), np.arange(len(wanted))]
    assert (scores.argmax(0) > 0).any()  # a later candidate wins somewhere
    guided = FaceModel.load(checkpoint, sampling=SamplingConfig(candidates=3, refine_strength=1.5, refine=True))
    assert np.array_equal(guided.sample(wanted, seed=3), best)
    assert np.array_equal(guided.sample(wanted, seed=3), guided.sample(wanted, seed=3, batch_size=3))


def test_refine_without_an_editor_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="sampling.refine needs the attribute editor"):
        FaceModel.load(_checkpoint(tmp_path, editor=False), sampling=SamplingConfig(refine=True))


@pytest.mark.parametrize("changes", [dict(), dict(model="cvae")], ids=["cgan", "cvae"])
def test_edit_strength_pushes_only_the_changed_attributes(tmp_path, changes) -> None:
    path = _checkpoint(tmp_path, **changes)
    plain = FaceModel.load(path, sampling=SamplingConfig(edit_strength=1.0))
    strong = FaceModel.load(path, sampling=SamplingConfig(edit_strength=2.5))
    photos = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    source = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    targets = source.clone()
    targets[:, 0] = 1 - targets[:, 0]  # flip Male, keep Smiling
    pushed = strong.edit(photos, targets, source_attributes=source)
    # The editor is asked for Male at 2.5 (or -1.5) and Smiling as the source has it.
    asked = torch.stack([source[:, 0] + 2.5 * (targets[:, 0] - source[:, 0]), source[:, 1]], dim=1)
    assert asked[:, 0].tolist() == [2.5, -1.5, 2.5, -1.5]
    assert np.array_equal(pushed, plain.edit(photos, asked))
    assert not np.array_equal(pushed, plain.edit(photos, targets))
    assert np.array_equal(plain.edit(photos, targets, source_attributes=source), plain.edit(photos, targets))
    # Without source attributes, the discriminator's view of the photos is the source.
    seen = strong.predict_attributes(photos)
    assert np.array_equal(strong.edit(photos, targets), strong.edit(photos, targets, source_attributes=seen))
    with pytest.raises(ValueError, match="3 source attribute rows for 4 targets"):
        strong.edit(photos, targets, source_attributes=source[:3])


def test_confined_edits_change_only_the_changed_attributes_bands(checkpoint) -> None:
    """sampling.confine_edits: a Smiling edit keeps the photo outside the mouth band (feathered edge: a blend of the
    two), equals the plain edit deep inside it; a Male edit (no band) is the plain edit; nothing asked, nothing
    changed."""
    from facegen.gan.regions import region_bounds

    plain = FaceModel.load(checkpoint)
    confined = plain.with_sampling(SamplingConfig(confine_edits=True, edit_strength=2.0))
    photos = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    source = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # Male, Smiling
    smiling, male = source.clone(), source.clone()
    smiling[:, 1], male[:, 0] = 1 - source[:, 1], 1 - source[:, 0]
    kept = confined.edit(photos, smiling, source_attributes=source)
    edited = plain.edit(photos, smiling, source_attributes=source, strength=2.0)
    top, bottom, left, right = region_bounds("mouth", 32)
    outside = np.ones((32, 32), bool)
    outside[top - 8 : bottom + 8, max(left - 8, 0) : right + 8] = False  # the band, grown and feathered
    assert np.array_equal(kept[:, outside], photos[:, outside])
    assert np.array_equal(
        kept[:, top + 3 : bottom - 3, left + 3 : right - 3], edited[:, top + 3 : bottom - 3, left + 3 : right - 3]
    )
    edge = (slice(None), top - 3, slice(left + 3, right - 3))  # the feathered edge: between the photo and the edit
    low, high = np.minimum(photos[edge], edited[edge]).astype(int), np.maximum(photos[edge], edited[edge]).astype(int)
    assert ((kept[edge] >= low - 1) & (kept[edge] <= high + 1)).all() and not np.array_equal(kept[edge], photos[edge])
    assert np.array_equal(
        confined.edit(photos, male, source_attributes=source),
        plain.edit(photos, male, source_attributes=source, strength=2.0),
    )
    assert np.array_equal(confined.edit(photos, source, source_attributes=source), photos)
    # Without source attributes the discriminator's view says what changes, as for the plain edit.
    seen = plain.predict_attributes(photos)
    assert np.array_equal(confined.edit(photos, smiling), confined.edit(photos, smiling, source_attributes=seen))
    with pytest.raises(ValueError, match="3 source attribute rows for 4 targets"):
        confined.edit(photos, smiling, source_attributes=source[:3])


def test_no_editor_is_a_clear_error(tmp_path) -> None:
    model = FaceModel.load(_checkpoint(tmp_path, editor=False))
    with pytest.raises(ValueError, match="no attribute editor; train one with gan.editor: true"):
        model.edit(np.zeros((1, 32, 32, 3), np.uint8), model.attribute_matrix({}, 1))


def test_sample_is_seeded_and_shaped(checkpoint) -> None:
    model = FaceModel.load(checkpoint)
    assert model.attributes == ("Male", "Smiling") and model.resolution == 32
    wanted = model.attribute_matrix({"Smiling": 1}, 5)
    assert wanted.tolist() == [[0.0, 1.0]] * 5
    a, b = model.sample(wanted, seed=3), model.sample(wanted, seed=3)
    assert a.shape == (5, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, model.sample(wanted, seed=4))
    # Batching does not change the result.
    assert np.array_equal(a, model.sample(wanted, seed=3, batch_size=2))
    assert len(model.checkpoint_sha256) == 64


def test_errors_name_the_problem(checkpoint, tmp_path) -> None:
    model = FaceModel.load(checkpoint)
    with pytest.raises(ValueError, match="unknown attribute.*Bald"):
        model.attribute_matrix({"Bald": 1}, 2)
    with pytest.raises(ValueError, match="N x 2"):
        model.sample(torch.zeros(3, 5), seed=0)
    with pytest.raises(FileNotFoundError, match="train_gan"):
        FaceModel.load(tmp_path / "missing.pt")


def test_uint8_round_trip() -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(to_uint8(to_tensor(images)), images)
