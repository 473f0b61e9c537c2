"""Recognition building blocks: backbone loading and embeddings, pretraining resume, augmentations, the
contract-4 edits reader, the classifier, and the metrics on cases whose answers are known."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest
import torch

from facegen.config import ClassicAugmentation
from recognition.augment import EditsUnavailable, classic_copies, gan_edits
from recognition.models.backbone import (
    BackboneUnavailable,
    embed_images,
    identity_network,
    load_backbone,
    save_backbone,
)
from recognition.classifier import NearestClassMean, enrolment_classifier, threshold_at_far
from recognition.models.embeddings import EmbeddingCache, TorchEmbedder
from recognition.metrics import SeedOutcome, bootstrap_ci, macro_f1, outcome_metrics, tar_at_far, top1_accuracy
from recognition.models.pretrain import BackbonePretrainer, PretrainSettings, identity_labels
from tests.support.edits import make_edits_dataset
from tests.support.faces import people_arrays


@pytest.fixture(scope="module")
def faces(shared_faces64: Path) -> tuple[np.ndarray, np.ndarray]:
    """Real 64x64 faces: 3 people x 4 photos, and their identities."""
    return people_arrays(shared_faces64, n_people=3, per_person=4)


def test_facenet_weights_offline_error_says_what_to_do(monkeypatch, tmp_path: Path) -> None:
    import facenet_pytorch.models.inception_resnet_v1 as irv1

    def offline(url: str, dst: str, *args, **kwargs) -> None:
        Path(dst).write_bytes(b"<html>")  # what an interrupted download may leave behind
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(irv1, "download_url_to_file", offline)
    with pytest.raises(BackboneUnavailable, match=r"vggface2 weights.*20180402-114759-vggface2\.pt.*pretrained: none"):
        load_backbone("vggface2")
    assert not list(tmp_path.rglob("*.pt"))  # the stub is not left to pass for the weights next time
    with pytest.raises(BackboneUnavailable, match="no such backbone file"):
        load_backbone(str(tmp_path / "missing.pt"))
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(BackboneUnavailable, match="not a facegen backbone"):
        load_backbone(str(tmp_path / "other.pt"))


def test_embeddings_are_normalised_deterministic_and_survive_saving(faces, tmp_path: Path) -> None:
    images, _ = faces
    torch.manual_seed(0)
    model = load_backbone("none")
    a = embed_images(model, images, input_size=80, batch_size=5)
    assert a.shape == (12, 512) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(embed_images(model, images, input_size=80, batch_size=12), a, atol=1e-5)
    save_backbone(model, tmp_path / "backbone.pt", {"pretrained": "none"})
    np.testing.assert_allclose(embed_images(load_backbone(str(tmp_path / "backbone.pt")), images, 80), a, atol=1e-5)
    # evaluate_gan's identity judge: the saved backbone, loaded when asked; none where nothing was trained.
    judge = identity_network(tmp_path / "backbone.pt", input_size=80)
    assert judge.name == f"backbone {tmp_path / 'backbone.pt'}"
    np.testing.assert_allclose(judge.load()(images), a, atol=1e-5)
    assert identity_network(tmp_path / "missing.pt", input_size=80) is None
    with pytest.raises(ValueError, match="input_size=64"):
        embed_images(model, images, input_size=64)

    cache = EmbeddingCache(tmp_path / "cache", TorchEmbedder(model, "fingerprint", 80), chunk_size=5)
    np.testing.assert_allclose(cache.embed(images), a, atol=1e-5)
    np.testing.assert_array_equal(cache.embed(images.copy()), cache.embed(images))
    assert (cache.misses, cache.hits) == (3, 6)  # 12 images in chunks of 5, 5 and 2
    cache.embed(images[::-1])
    assert cache.misses == 6  # other images, other keys
    stored = sorted((tmp_path / "cache").glob("*.npy"))
    stored[0].write_bytes(b"not an array")  # a damaged cache file is computed again, not trusted or fatal
    np.testing.assert_allclose(cache.embed(images), a, atol=1e-5)
    np.testing.assert_allclose(cache.embed(images[::-1]), a[::-1], atol=1e-5)
    assert cache.unreadable == 1


def test_pretraining_learns_and_resumes_where_it_stopped(faces, tmp_path: Path) -> None:
    images, identities = faces[0][::2], faces[1][::2]  # 3 people x 2 photos
    labels = identity_labels(identities)
    settings = PretrainSettings(input_size=80, epochs=1, batch_size=6, lr=1e-3, seed=0)
    first = BackbonePretrainer(settings, images, labels, tmp_path)
    first.run()
    other = PretrainSettings(input_size=80, epochs=2, batch_size=6, lr=1e-3, seed=1)
    assert not BackbonePretrainer(other, images, labels, tmp_path).resume()  # another seed: not its checkpoint
    longer = PretrainSettings(input_size=80, epochs=2, batch_size=6, lr=1e-3, seed=0)
    again = BackbonePretrainer(longer, images, labels, tmp_path)
    assert again.resume() and again.epoch == 1  # the same run, allowed one more epoch
    history = again.run()
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["loss"] < history[0]["loss"]
    again.save(tmp_path / "backbone.pt", {"pretrained": "none"})
    assert embed_images(load_backbone(str(tmp_path / "backbone.pt")), images, 80).shape == (6, 512)


def test_classic_copies_are_seeded_transforms_of_each_photo(faces) -> None:
    images, _ = faces
    settings = ClassicAugmentation()
    caller = torch.get_rng_state()
    a = classic_copies(images, 2, settings, seed=3)
    assert torch.equal(torch.get_rng_state(), caller)  # the caller's random numbers are left alone
    assert a.shape == (24, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, classic_copies(images, 2, settings, seed=3))
    assert not np.array_equal(a, classic_copies(images, 2, settings, seed=4))
    assert not np.array_equal(a[:12], images)
    still = ClassicAugmentation(flip=0, crop_scale=(1.0, 1.0), brightness=0, contrast=0, saturation=0, hue=0)
    np.testing.assert_array_equal(classic_copies(images, 2, still, seed=3), np.concatenate([images, images]))


def test_gan_condition_reads_the_contract_dataset_balanced_over_attributes(faces, tmp_path: Path) -> None:
    images, identities = faces
    enrol = pd.DataFrame({"image_id": [f"{p}/{i}.jpg" for i, p in enumerate(identities)], "identity": identities})
    dataset = make_edits_dataset(tmp_path / "enrolment_edits", enrol, images)
    edits, rows = gan_edits(dataset, enrol.iloc[:6], copies=2, seed=0)
    assert edits.shape == (12, 64, 64, 3) and len(rows) == 12
    assert set(rows["source_image"]) == set(enrol["image_id"][:6])
    assert (rows.groupby("source_image")["edited_attribute"].nunique() == 2).all()  # one of each, not two of one
    np.testing.assert_array_equal(edits, gan_edits(dataset, enrol.iloc[:6], copies=2, seed=0)[0])  # seeded
    assert (rows["identity"].to_numpy() == enrol.set_index("image_id").loc[rows["source_image"], "identity"]).all()

    with pytest.raises(EditsUnavailable, match="made for another roster"):
        gan_edits(dataset, enrol.assign(image_id="other.jpg"), 2, 0)
    with pytest.raises(EditsUnavailable, match="dvc repro generate"):
        gan_edits(tmp_path / "nothing", enrol, 2, 0)
    wrong = enrol.copy()
    wrong.loc[0, "identity"] = "someone else"
    with pytest.raises(EditsUnavailable, match="whose owner is 'someone else'"):
        gan_edits(dataset, wrong, 2, 0)


def test_nearest_class_mean_names_and_scores() -> None:
    enrol = np.eye(3, 4)
    classifier = NearestClassMean(np.concatenate([enrol, enrol]), np.array(["b", "a", "c"] * 2))
    found = classifier.predict(np.array([[0.0, 0.9, 0.1, 0.0], [0.0, 0.0, 0.0, 1.0]]))
    assert classifier.classes.tolist() == ["a", "b", "c"]
    assert classifier.classes[found.label[0]] == "a" and found.score[1] == pytest.approx(0)
    assert classifier.labels_of(np.array(["c", "zed", "a"])).tolist() == [2, -1, 0]


def test_enrolment_images_combine_pooled_balanced_or_by_the_best_template() -> None:
    real = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # a: three alike; b: one
    owners = np.array(["a", "a", "a", "b"])
    added, added_owners = np.array([[0.6, 0.8]]), np.array(["a"])
    probe = np.array([[0.6, 0.8]])
    pooled = enrolment_classifier(real, owners, added, added_owners, "pooled")
    balanced = enrolment_classifier(real, owners, added, added_owners, "balanced")
    best = enrolment_classifier(real, owners, added, added_owners, "max")
    # pooled: one added image among four moves a's prototype a quarter of the way; balanced: half of the way
    assert np.allclose(pooled.prototypes[0], [0.9, 0.2] / np.linalg.norm([0.9, 0.2]))
    assert np.allclose(balanced.prototypes[0], [0.8, 0.4] / np.linalg.norm([0.8, 0.4]))
    assert np.allclose(balanced.prototypes[1], [0.0, 1.0])  # nothing added to b: its real mean
    assert best.predict(probe).score[0] == pytest.approx(1.0)  # the probe is one of a's templates
    assert best.classes[best.predict(probe).label[0]] == "a"
    assert balanced.predict(probe).score[0] > pooled.predict(probe).score[0]
    plain = enrolment_classifier(real, owners, rule="balanced")
    assert np.allclose(plain.prototypes, NearestClassMean(real, owners).prototypes)
    with pytest.raises(ValueError, match="no real enrolment image"):
        enrolment_classifier(real, owners, added, np.array(["z"]), "balanced")
    with pytest.raises(ValueError, match="combination rule 'mean'"):
        enrolment_classifier(real, owners, rule="mean")


def test_threshold_and_tar_at_far_on_a_constructed_case() -> None:
    impostors = np.arange(100) / 100  # 0.00 .. 0.99
    t = threshold_at_far(impostors, far=0.01)
    assert t == pytest.approx(0.98) and np.mean(impostors > t) == pytest.approx(0.01)
    assert np.mean(impostors > threshold_at_far(impostors, 0.05)) == pytest.approx(0.05)
    genuine = np.array([0.995, 0.99, 0.985, 0.97, 0.5])
    correct = np.array([True, True, False, True, True])
    assert tar_at_far(correct, genuine, impostors, 0.01) == pytest.approx(2 / 5)  # 0.985 is accepted but wrong
    assert tar_at_far(correct, genuine, impostors, 0.05) == pytest.approx(3 / 5)  # t = 0.94


def _outcome(true: np.ndarray, pred: np.ndarray, rng: np.random.Generator) -> SeedOutcome:
    return SeedOutcome(
        true,
        pred,
        np.where(true == pred, 0.9, 0.2) + rng.random(len(true)) * 0.05,
        rng.random(200) * 0.5,
        {"Eyeglasses": (np.arange(len(true)) % 4 == 0).astype(int)},
        threshold=0.6,
        num_classes=10,
    )


def test_metrics_perfect_chance_and_bootstrap() -> None:
    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(10), 20)
    perfect = outcome_metrics(_outcome(true, true, rng), far=0.01)
    assert perfect["top1"] == perfect["tar_at_far"] == perfect["tar_at_far_test"] == 1.0
    assert perfect["macro_f1"] == pytest.approx(1.0)
    assert perfect["visitor_far"] == 0 and perfect["top1_with_Eyeglasses"] == perfect["top1_without_Eyeglasses"] == 1
    chance = outcome_metrics(_outcome(true, rng.integers(0, 10, len(true)), rng), far=0.01)
    assert chance["top1"] < 0.25 and chance["macro_f1"] < 0.25 and chance["tar_at_far"] < 0.25
    assert top1_accuracy(true, true) == 1 and macro_f1(true, (true + 1) % 10, 10) == 0

    half = np.where(np.arange(len(true)) % 2 == 0, true, (true + 1) % 10)
    outcomes = [_outcome(true, half, rng), _outcome(true, np.where(rng.random(len(true)) < 0.6, true, 0), rng)]
    ci = bootstrap_ci(outcomes, far=0.01, samples=200, seed=0)
    point = np.mean([outcome_metrics(o, 0.01)["top1"] for o in outcomes])
    assert ci["top1"][0] < point < ci["top1"][1] and ci["top1"][1] - ci["top1"][0] < 0.2
    assert ci["macro_f1"][0] <= ci["macro_f1"][1]


@pytest.mark.slow  # a Prefect flow: a temporary server starts
def test_compare_bootstrap_is_cached_on_the_outcome_files(tmp_path) -> None:
    """Prefect task caching where it is safe: same outcome bytes -> cached; changed bytes -> recomputed."""
    from prefect import flow

    from pipelines.compare import bootstrap
    from recognition.outcomes import write_outcomes

    rng = np.random.default_rng(0)
    true = np.repeat(np.arange(10), 20)
    files = {}
    for condition in ("baseline", "gan"):
        files[condition] = str(tmp_path / f"{condition}.parquet")
        write_outcomes(Path(files[condition]), [_outcome(true, true, rng)], [0])

    @flow
    def twice() -> list:
        return [bootstrap(files, 0.01, 50, 0, return_state=True) for _ in range(2)]

    first, second = twice()
    assert first.name != "Cached"
    assert second.name == "Cached" and second.result() == first.result()
    write_outcomes(Path(files["gan"]), [_outcome(true, (true + 1) % 10, rng)], [0])
    changed, _ = twice()
    assert changed.name != "Cached" and changed.result()["gan"]["top1"]["mean"] == 0
