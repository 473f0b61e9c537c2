"""The augmentation study's parts (issues 19, 28): the last blocks of the distilled facenet on cached trunk
features, roster draws, what each arm adds (oracle turns, reconstructions, verified edits only), the teacher's
verification threshold and paired effects with their tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from facegen.config import AttendanceConfig, AugmentationConfig, ClassicAugmentation
from recognition.augmentation.arms import Arms, Draw, oracle_people, oracle_photos
from recognition.augmentation.effects import summarise
from recognition.augmentation.verified_edits import RECONSTRUCTION_KIND, TABLE_COLUMNS, MadeFaces, teacher_threshold
from recognition.models.backbone import DistilledFacenet, embed_images
from recognition.models.embeddings import EmbeddingCache
from recognition.models.last_block import LastBlock, Training, TrunkFeatures, finetune_roster, retrain_embedding
from recognition.sets import attendance_sets


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
    assert TrunkFeatures(model, "random", 112).embed(images[:0]).shape == (0, 1792 * 2 * 2)  # as wide as one face's


def test_finetuning_learns_the_roster_and_leaves_the_frozen_block_alone(model: DistilledFacenet) -> None:
    block = LastBlock(model)
    before = {k: v.clone() for k, v in block.state_dict().items()}
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 1792)).astype(np.float32)
    labels = np.repeat(np.arange(4), 8)
    trunk = np.abs(centres[labels] + 0.3 * rng.normal(size=(32, 1792)).astype(np.float32))
    tuned, weights = finetune_roster(block, trunk, labels, Training(steps=40, lr=1e-3, batch_size=16, seed=0))
    named = (tuned.embed(trunk) @ weights.T).argmax(1)
    assert np.mean(named == labels) == 1.0
    assert np.allclose(np.linalg.norm(weights, axis=1), 1, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in block.state_dict().items())  # a copy was trained
    after = tuned.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("repeat_3."))  # frozen
    assert not torch.equal(before["block8.conv2d.weight"], after["block8.conv2d.weight"])
    again, _ = finetune_roster(block, trunk, labels, Training(steps=40, lr=1e-3, batch_size=16, seed=0))
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

    training = Training.epochs(10, len(trunk), 1e-3, 16, 0)
    assert training.steps == 40
    retrained = retrain_embedding(block, trunk, targets, labels, training, margin_weight=0.0)
    assert agreement(retrained) > agreement(block) + 0.5
    with torch.no_grad():
        assert torch.allclose(retrained.centre, retrained.features(torch.from_numpy(trunk[:48])).mean(0), atol=1e-5)
    assert not torch.equal(block.repeat_3[0].conv2d.weight, retrained.repeat_3[0].conv2d.weight)  # unfrozen here
    real_only = retrain_embedding(block, trunk, targets, labels, training, margin_weight=0.0, real=20)
    with torch.no_grad():  # the centre from the real faces alone (the first 20 rows)
        assert torch.allclose(real_only.centre, real_only.features(torch.from_numpy(trunk[:20])).mean(0), atol=1e-5)


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


def _face_set(images: np.ndarray, annotations: pd.DataFrame):
    return type("FaceSet", (), {"images": images, "annotations": annotations, "rows": np.arange(len(images))})()


def test_arms_add_verified_edits_reconstructions_and_oracle_photos(model: DistilledFacenet, tmp_path) -> None:
    enrol = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "identity": ["p", "p", "q", "q"]})
    rows = []
    for source, owner in zip(enrol["image_id"], enrol["identity"]):
        verified = {"a": 3, "b": 1, "c": 0, "d": 2}[source]  # verified candidates rank first
        for rank in range(3):
            edit = ("Eyeglasses", 1.0 + rank, rank, True, 0.9, rank < verified)
            rows.append(("enrolment_edit", "own", source, owner, *edit))
        rows.append((RECONSTRUCTION_KIND, "own", source, owner, "none", 0.0, 0, False, 0.99, True))
    for source, owner in zip(enrol["image_id"], enrol["identity"]):  # a second editor: only d's edit verified
        rows.append(("enrolment_edit", "other", source, owner, "Eyeglasses", 2.0, 0, True, 0.8, source == "d"))
    for source, owner in zip(enrol["image_id"], enrol["identity"]):  # the own editor confined: a's and c's verified
        rows.append(("enrolment_edit", "own_confined", source, owner, "Eyeglasses", 3.0, 0, True, 0.9, source in "ac"))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    made = MadeFaces(_faces(len(table), seed=3), table, np.zeros((len(table), 128), np.float32))
    trunk = EmbeddingCache(tmp_path / "trunk", TrunkFeatures(model, "random", 80))
    flipped = EmbeddingCache(tmp_path / "trunk", TrunkFeatures(model, "random", 80, flip=True))
    checkins = pd.DataFrame(
        {
            "image_id": ["e", "f", "g", "h", "i"],
            "identity": ["p", "p", "p", "q", "q"],
            "Eyeglasses": [1, 0, 1, 1, 0],
        }
    )
    sets = {"enrol": _face_set(_faces(4, seed=2), enrol), "checkin": _face_set(_faces(5, seed=4), checkins)}
    draw = Draw(0, sets, {"checkin": trunk.embed(sets["checkin"].images)}, np.zeros((4, 1792), np.float32))
    arms_inputs = (ClassicAugmentation(), trunk, flipped)
    arms = Arms(AugmentationConfig(), *arms_inputs, made)
    assert arms.added("baseline", draw, seed=0) is None
    classic = arms.added("classic", draw, seed=0)
    assert len(classic.trunk) == len(classic.trunk_flipped) == 4 and list(classic.identities) == ["p", "p", "q", "q"]
    rebuilt = arms.added("reconstruction", draw, seed=0)
    assert list(rebuilt.identities) == ["p", "p", "q", "q"]
    # one verified edit per photo where there is one (c has none: nothing, never an unverified edit)
    assert sorted(arms.added("gan_Eyeglasses_1", draw, seed=0).identities) == ["p", "p", "q"]
    assert len(arms.added("gan_Eyeglasses_2", draw, seed=0).identities) == 2 + 1 + 0 + 2
    assert len(arms.added("gan_Eyeglasses_4", draw, seed=0).identities) == 3 + 1 + 0 + 2
    # the second editor's arm takes its own edits only
    two = Arms(AugmentationConfig(second_editor={"name": "other", "checkpoint": "x.pt"}), *arms_inputs, made)
    assert list(two.added("gan_other_Eyeglasses_1", draw, seed=0).identities) == ["q"]
    assert (
        two.added("gan_Eyeglasses_1", draw, seed=0).trunk.tolist()
        == arms.added("gan_Eyeglasses_1", draw, seed=0).trunk.tolist()
    )
    confined = Arms(AugmentationConfig(confined=["own"]), *arms_inputs, made)  # its confined edits only
    assert list(confined.added("gan_own_confined_Eyeglasses_1", draw, seed=0).identities) == ["p", "q"]
    with pytest.raises(ValueError, match="unknown arm 'gan_other_Eyeglasses_1'; this study's arms: baseline, "):
        arms.added("gan_other_Eyeglasses_1", draw, seed=0)  # no second editor configured: no such arm
    # the oracle: p has two eyeglass check-ins (e, g), q one (not eligible); each turn enrols the next of p's
    first, second = arms.added("oracle", draw, 0, turn=0), arms.added("oracle", draw, 0, turn=1)
    assert list(first.held_out) == [0] and list(second.held_out) == [2] and list(first.identities) == ["p"]
    assert np.array_equal(first.trunk, draw.trunk["checkin"][[0]])
    assert list(oracle_people(checkins, "Eyeglasses")) == [True, True, True, False, False]
    assert list(oracle_photos(checkins, "Eyeglasses", 2)) == [0]  # turns wrap around a person's photos
    partial = MadeFaces(made.images[:4], table.iloc[:4], made.teacher[:4])  # a's candidates only
    with pytest.raises(ValueError, match="no edit candidates by editor 'own'"):
        Arms(AugmentationConfig(), *arms_inputs, partial).added("gan_Eyeglasses_1", draw, 0)
    with pytest.raises(ValueError, match="reconstructions for 4 enrolment photos"):
        Arms(AugmentationConfig(), *arms_inputs, partial).added("reconstruction", draw, 0)


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


def _checkin(run: dict, person: int, photo: int, correct: bool, glasses: bool, oracle_people: bool) -> dict:
    """An outcome row of a roster person's check-in photo, accepted at score 0.9."""
    return run | dict(
        kind="checkin",
        image_id=f"{person}-{photo}",
        identity=str(person),
        correct=correct,
        score=0.9,
        accepted=True,
        oracle_people=oracle_people,
        group_Eyeglasses=int(glasses),
    )


def _stranger(run: dict, kind: str, name: str, score: float, person: str | None = None) -> dict:
    """An outcome row of a visitor or calibration photo (no roster identity to name, no eyeglasses group)."""
    return run | dict(
        kind=kind,
        image_id=name,
        identity=person or name,
        correct=False,
        score=score,
        accepted=kind == "visitor" and score > 0.5,
        oracle_people=False,
        group_Eyeglasses=0,
    )


def _outcomes(better: set[str]) -> pd.DataFrame:
    """Two draws of the same 20 people x 5 check-ins (photo 0 with eyeglasses), 10 calibration people, 20
    visitors: the arm names right what the baseline missed (odd photos) for the people in ``better``."""
    rows = []
    for draw in (0, 1):
        for arm in ("baseline", "gan_Eyeglasses_1"):
            for seed in (0, 1):
                run = dict(family="prototypes", arm=arm, seed=seed, turn=0, draw=draw, lenses="")
                for person in range(20):
                    for photo in range(5):
                        correct = photo % 2 == 0 or (arm != "baseline" and str(person) in better)
                        rows.append(_checkin(run, person, photo, correct, glasses=photo == 0, oracle_people=False))
                    rows.append(_stranger(run, "visitor", f"v{person}", 0.95 if person < 2 else 0.1))
                rows += [
                    _stranger(run, "calibration", f"c{person}-{photo}", 0.5 - 0.01 * person, f"c{person}")
                    for person in range(10)
                    for photo in range(3)
                ]
    return pd.DataFrame(rows)


def test_paired_effects_test_and_interval_over_people_on_distinct_photos() -> None:
    settings = AugmentationConfig(bootstrap_samples=500, permutation_samples=2000, power_simulations=50)
    summary = summarise(_outcomes(better={str(p) for p in range(10)}), settings, far=0.01)
    gan = summary["arms"]["prototypes"]["gan_Eyeglasses_1"]
    # half of the people gain their odd photos (2 of 5 check-ins): +0.2 overall
    assert gan["top1"]["delta"] == pytest.approx(0.2)
    assert 0 < gan["top1"]["ci"][0] < 0.2 < gan["top1"]["ci"][1]
    assert gan["top1"]["p_permutation"] < 0.01
    assert gan["top1"]["people"] == 20 and gan["top1"]["photos"] == 100  # each photo once, over both draws
    # eyeglass photos are photo 0, which the baseline already names: no change
    primary = gan["top1_with_Eyeglasses"]
    assert primary["delta"] == 0 and primary["ci"] == [0, 0] and primary["p_permutation"] == 1.0
    assert summary["primary"]["arm"] == "gan_Eyeglasses_1" and summary["primary"]["p_holm"] == 1.0
    # visitors: 2 of 20 score above every calibration score, in both arms; resampling calibration moves nothing
    assert gan["visitor_far"]["baseline"] == pytest.approx(0.1) and gan["visitor_far"]["delta"] == 0
    assert gan["tar_at_far"]["delta"] == pytest.approx(0.2) and gan["tar_at_far"]["ci"][0] > 0
    assert summary["power"]["people"] == 20 and summary["power"]["photos"] == 20
    assert list(summary["power"]["curve"]) == ["0.05", "0.1", "0.15", "0.2", "0.3"]
    none = summarise(_outcomes(better=set()), settings, far=0.01)["arms"]["prototypes"]["gan_Eyeglasses_1"]["top1"]
    assert none["delta"] == 0 and none["ci"] == [0, 0] and none["p_permutation"] == 1.0


def test_calibration_resampling_widens_the_open_set_interval() -> None:
    """When the arm's calibration scores sit near its check-ins' scores, which check-ins are accepted depends
    on which calibration people are drawn: the TAR interval must reflect it."""
    table = _outcomes(better=set())
    arm = table["arm"] != "baseline"
    table.loc[arm & (table["identity"] == "c9"), "score"] = 0.94  # one calibration person above the check-ins
    table.loc[arm & (table["kind"] == "checkin"), "accepted"] = False
    summary = summarise(table, AugmentationConfig(bootstrap_samples=500, power_simulations=10), far=0.05)
    tar = summary["arms"]["prototypes"]["gan_Eyeglasses_1"]["tar_at_far"]
    assert tar["delta"] == pytest.approx(-0.6)  # the arm accepts no check-in at its own threshold
    assert tar["ci"][1] > tar["ci"][0] + 0.3  # draws without c9 (about a third) accept them all again


def test_oracle_share_and_the_clear_and_sun_strata() -> None:
    """Photos 0 (clear glasses) and 1 (sunglasses) of 12 people wear eyeglasses; the baseline misses both, the
    oracle names both, the GAN arm only the clear ones: half of the oracle's gain, all of it on clear glasses."""
    named = {"baseline": set(), "oracle": {0, 1}, "gan_Eyeglasses_1": {0}, "gan_other_Eyeglasses_1": set()}
    named["gan_own_confined_Eyeglasses_1"] = {0, 1}
    rows = []
    for arm, fixed in named.items():
        run = dict(family="prototypes", arm=arm, seed=0, turn=0, draw=0)
        for person in range(12):
            for photo in range(4):
                correct = photo >= 2 or photo in fixed
                row = _checkin(run, person, photo, correct, glasses=photo < 2, oracle_people=True)
                rows.append(row | {"lenses": {0: "clear", 1: "sun"}.get(photo, "")})
            rows += [_stranger(run, "calibration", f"c{person}", 0.1), _stranger(run, "visitor", f"v{person}", 0.2)]
    settings = AugmentationConfig(
        bootstrap_samples=200,
        permutation_samples=500,
        power_simulations=10,
        second_editor={"name": "other", "checkpoint": "x.pt"},
        confined=["own"],
    )
    summary = summarise(pd.DataFrame(rows), settings, far=0.1)
    gan = summary["arms"]["prototypes"]["gan_Eyeglasses_1"]
    assert gan["top1_with_Eyeglasses"]["delta"] == pytest.approx(0.5)
    assert gan["top1_with_Eyeglasses_clear"]["delta"] == 1.0 and gan["top1_with_Eyeglasses_sun"]["delta"] == 0
    assert gan["top1_with_Eyeglasses_clear"]["photos"] == 12 and gan["top1_with_Eyeglasses_clear"]["people"] == 12
    oracle = summary["arms"]["prototypes"]["oracle"]["top1_with_Eyeglasses_oracle_people"]
    assert oracle["delta"] == 1.0 and oracle["p_permutation"] < 0.01
    share = summary["oracle_share"]["prototypes"]
    assert share["share"] == pytest.approx(0.5) and share["ci"] == [0.5, 0.5] and share["people"] == 12
    # an editor that names nothing more reaches none of the oracle's gain; one that names every photo, all of it
    others = summary["other_editors"]
    assert list(others) == ["gan_other_Eyeglasses_1", "gan_own_confined_Eyeglasses_1"]
    assert others["gan_other_Eyeglasses_1"]["prototypes"]["share"] == 0
    assert others["gan_own_confined_Eyeglasses_1"]["prototypes"]["share"] == pytest.approx(1.0)
    # the primary contrast stands alone; the oracle's test is adjusted with the rest (Holm)
    assert summary["primary"]["p_holm"] == summary["primary"]["p_permutation"]
    assert oracle["p_permutation"] <= summary["arms"]["prototypes"]["oracle"]["top1_with_Eyeglasses"]["p_holm"]
