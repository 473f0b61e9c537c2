"""The augmentation experiment's parts (issue 19): the last block of the distilled facenet on cached trunk
features, roster draws, budgets per condition, the teacher's verification threshold and paired effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facegen.config import AttendanceConfig, AugmentationConfig, ClassicAugmentation
from recognition.augmentation import Draw, Experiment
from recognition.backbone import DistilledFacenet, embed_images
from recognition.effects import paired_effects
from recognition.embeddings import EmbeddingCache
from recognition.last_block import LastBlock, Training, TrunkFeatures, finetune_roster, retrain_embedding
from recognition.sets import attendance_sets
from recognition.verified_edits import TABLE_COLUMNS, MadeFaces, teacher_threshold


@pytest.fixture(scope="module")
def model() -> DistilledFacenet:
    torch.manual_seed(0)
    net = DistilledFacenet()
    with torch.no_grad():
        net.centre.normal_()
    return net.eval()


def _faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_last_block_on_trunk_features_is_the_whole_model(model: DistilledFacenet, tmp_path) -> None:
    images = _faces(6)
    trunk = TrunkFeatures(model, "random", 80).embed(images)
    assert trunk.shape == (6, 1792)  # 1 x 1 spatial at 80 px
    whole = embed_images(model, images, 80)
    assert np.allclose(LastBlock(model).embed(trunk), whole, atol=1e-5)
    flipped = TrunkFeatures(model, "random", 80, flip=True).embed(images)
    assert np.allclose(LastBlock(model).embed(flipped), embed_images(model, images[:, :, ::-1].copy(), 80), atol=1e-5)


def test_finetuning_learns_the_roster_and_leaves_the_frozen_block_alone(model: DistilledFacenet) -> None:
    block = LastBlock(model)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 1792)).astype(np.float32)
    labels = np.repeat(np.arange(4), 8)
    trunk = np.abs(centres[labels] + 0.3 * rng.normal(size=(32, 1792)).astype(np.float32))
    tuned, weights = finetune_roster(block, trunk, labels, Training(epochs=20, lr=1e-3, batch_size=16, seed=0))
    named = (tuned.embed(trunk) @ weights.T).argmax(1)
    assert np.mean(named == labels) == 1.0
    assert np.allclose(np.linalg.norm(weights, axis=1), 1, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())  # a copy was trained
    again, _ = finetune_roster(block, trunk, labels, Training(epochs=20, lr=1e-3, batch_size=16, seed=0))
    assert np.array_equal(again.embed(trunk), tuned.embed(trunk))  # seeded


def test_retraining_the_embedding_moves_it_towards_the_targets(model: DistilledFacenet) -> None:
    block = LastBlock(model)
    rng = np.random.default_rng(1)
    trunk = np.abs(rng.normal(size=(64, 1792))).astype(np.float32)
    targets = rng.normal(size=(64, 128)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    labels = np.where(np.arange(64) < 48, np.arange(64) % 6, -1)  # the last 16: no identity (generator samples)

    def agreement(b: LastBlock) -> float:
        with torch.no_grad():
            features = b.features(torch.from_numpy(trunk))
        return float(torch.nn.functional.cosine_similarity(features, torch.from_numpy(targets)).mean())

    retrained = retrain_embedding(block, trunk, targets, labels, Training(10, 1e-3, 16, 0), margin_weight=0.0)
    assert agreement(retrained) > agreement(block) + 0.5
    with torch.no_grad():
        assert torch.allclose(retrained.centre, retrained.features(torch.from_numpy(trunk[:48])).mean(0), atol=1e-5)


def _prepared(folder, n_people: int, per_person: int):
    """A prepared cache made here: random pixels, 1 photo in 3 with eyeglasses."""
    folder.mkdir()
    n = n_people * per_person
    np.save(folder / "images.npy", _faces(n))
    pd.DataFrame(
        {
            "image_id": [f"{i:06d}.jpg" for i in range(n)],
            "identity": [str(1000 + i // per_person) for i in range(n)],
            "Eyeglasses": (np.arange(n) % 3 == 0).astype(np.int8),
            "split": "train",
        }
    ).to_parquet(folder / "annotations.parquet")
    (folder / "meta.json").write_text("{}")
    return folder


def test_roster_draws_reshuffle_the_same_people_and_keep_the_background(tmp_path) -> None:
    prepared = _prepared(tmp_path / "prepared", n_people=24, per_person=6)
    attendance = AttendanceConfig(roster_size=6, enrol_per_person=3, visitors=4, gap_attributes=("Eyeglasses",))
    first = attendance_sets(prepared, attendance, calibration_people=4)
    second = attendance_sets(prepared, attendance, calibration_people=4, draw=1)

    def people(sets, *names):
        return set().union(*(set(sets[n].annotations["identity"].astype(str)) for n in names))

    assert people(first, "enrol", "visitor") == people(second, "enrol", "visitor")  # the same pool of people
    assert people(first, "enrol") != people(second, "enrol")
    assert np.array_equal(first["pretrain"].rows, second["pretrain"].rows)
    assert np.array_equal(first["calibration"].rows, second["calibration"].rows)
    assert len(people(second, "enrol")) == 6 and len(people(second, "visitor")) == 4


def test_every_augmented_condition_adds_the_same_budget(model: DistilledFacenet, tmp_path) -> None:
    enrol_images = _faces(4, seed=2)
    enrol = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "identity": ["p", "p", "q", "q"]})
    rows = []
    for source, owner in zip(enrol["image_id"], enrol["identity"]):
        for attribute in ("Eyeglasses", "Smiling"):
            for rank in range(3):
                rows.append(("enrolment_edit", source, owner, attribute, 1.0 + rank, rank, True, 0.95, True))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    made = MadeFaces(_faces(len(table), seed=3), table, np.zeros((len(table), 128), np.float32))
    trunk = EmbeddingCache(tmp_path / "trunk", TrunkFeatures(model, "random", 80))
    flipped = EmbeddingCache(tmp_path / "trunk", TrunkFeatures(model, "random", 80, flip=True))
    settings = AugmentationConfig(budget=2)
    experiment = Experiment(settings, ClassicAugmentation(), LastBlock(model), trunk, flipped, made, 0.01, ())
    face_set = type("FaceSet", (), {"images": enrol_images, "annotations": enrol, "rows": np.arange(4)})()
    draw = Draw(0, {"enrol": face_set}, {}, np.zeros((4, 1792), np.float32))
    assert experiment.added("baseline", draw, seed=0) is None
    for condition in ("classic", "gan_Eyeglasses", "gan_mixed"):
        added = experiment.added(condition, draw, seed=0)
        assert len(added.trunk) == len(added.trunk_flipped) == 2 * 4, condition
        assert sorted(added.identities) == ["p"] * 4 + ["q"] * 4
    mixed = experiment.added("gan_mixed", draw, seed=0)
    eyeglasses = experiment.added("gan_Eyeglasses", draw, seed=0)
    assert not np.array_equal(mixed.trunk, eyeglasses.trunk)  # half of the mixed budget is smiles
    with pytest.raises(ValueError, match="budget"):
        Experiment(
            AugmentationConfig(budget=4), ClassicAugmentation(), LastBlock(model), trunk, flipped, made, 0.01, ()
        ).added("gan_Eyeglasses", draw, seed=0)  # only 3 candidates per photo and attribute


def test_teacher_threshold_admits_the_far_share_of_different_person_pairs() -> None:
    rng = np.random.default_rng(0)
    people = np.repeat(np.arange(30), 4)
    descriptors = rng.normal(size=(30, 128))[people] + 0.3 * rng.normal(size=(120, 128))
    threshold = teacher_threshold(descriptors, people, far=0.01)
    unit = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    scores = unit @ unit.T
    different = people[:, None] != people[None, :]
    accepted = np.mean(scores[np.triu(different, 1)] > threshold)
    assert accepted <= 0.01 and np.mean(scores[np.triu(~different, 1) & ~np.eye(120, dtype=bool)] > threshold) > 0.9


def _outcomes(better: set[str]) -> pd.DataFrame:
    """Two draws, 20 people x 5 check-ins: the condition names right what the baseline missed for ``better``."""
    rows = []
    for draw in (0, 1):
        for person in range(20):
            for photo in range(5):
                glasses = int(photo == 0)
                base = photo % 2 == 0
                for condition in ("baseline", "gan"):
                    correct = base or (condition == "gan" and str(person) in better)
                    for seed in (0, 1):
                        rows.append(
                            dict(
                                family="prototypes",
                                condition=condition,
                                seed=seed,
                                draw=draw,
                                kind="checkin",
                                image_id=f"{person}-{photo}",
                                identity=str(person),
                                correct=correct,
                                accepted=True,
                                group_Eyeglasses=glasses,
                            )
                        )
            rows.append(
                dict(
                    family="prototypes",
                    condition="baseline",
                    seed=0,
                    draw=draw,
                    kind="visitor",
                    image_id=f"v{person}",
                    identity=f"v{person}",
                    correct=False,
                    accepted=person < 2,
                    group_Eyeglasses=-1,
                )
            )
    table = pd.DataFrame(rows)
    visitors = table[table["kind"] == "visitor"]
    return pd.concat([table, visitors.assign(condition="gan")], ignore_index=True)


def test_paired_effects_measure_the_difference_on_the_same_photos() -> None:
    effects = paired_effects(_outcomes(better={str(p) for p in range(10)}), "Eyeglasses", samples=500)
    gan = effects["prototypes"]["gan"]
    # half of the people gain their odd photos (2 of 5 check-ins): +0.2 overall
    assert gan["top1"]["difference"] == pytest.approx(0.2)
    assert gan["top1"]["low"] < 0.2 < gan["top1"]["high"] and gan["top1"]["low"] > 0
    assert gan["top1"]["people"] == 20 and gan["top1"]["photos"] == 200
    # eyeglass photos are photo 0, which the baseline already names: no change, and an interval of width 0
    assert gan["top1_with_Eyeglasses"]["difference"] == 0 and gan["top1_with_Eyeglasses"]["mde"] == 0
    assert gan["visitor_far"]["difference"] == 0 and gan["visitor_far"]["baseline"] == pytest.approx(0.1)
    none = paired_effects(_outcomes(better=set()), "Eyeglasses", samples=500)["prototypes"]["gan"]["top1"]
    assert none["difference"] == 0 and none["low"] == none["high"] == 0
