"""The pieces of the editors' judgement (issue 20): summaries of per-edit outcomes, FID/KID of ready features, the
detector's common encoding, the identity term's network on generator images, and whom the generators train on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from facenet_pytorch import InceptionResnetV1
from PIL import Image

from facegen.config import GanConfig, Params
from facegen.metrics.convnet import holdout_split
from facegen.metrics.detector import encoded
from facegen.metrics.editing import summarise_edits
from facegen.metrics.feature_distance import fid_kid_of_features
from pipelines.train_gan import training_people
from recognition.backbone import GeneratorSpaceEmbedding, embed_images


def test_edit_summary_counts_flips_verifications_and_faces_not_found() -> None:
    table = pd.DataFrame(
        {
            "attribute": ["Smiling"] * 4 + ["Eyeglasses"] * 2,
            "strength": [1.0] * 4 + [2.0] * 2,
            "flipped": [True, True, False, True, False, True],
            "verified": [True, False, True, True, False, False],
            "similarity": [0.95, 0.5, 0.97, 0.99, np.nan, 0.3],
        }
    )
    summary = summarise_edits(table)
    assert summary["Smiling"]["1"] == {
        "flipped": 0.75,
        "verified": 0.75,
        "flipped_and_verified": 0.5,
        "similarity_mean": round((0.95 + 0.5 + 0.97 + 0.99) / 4, 4),
        "no_face": 0.0,
        "edits": 4,
    }
    assert summary["Eyeglasses"]["2"]["no_face"] == 0.5 and summary["Eyeglasses"]["2"]["similarity_mean"] == 0.3


def test_fid_kid_of_features_near_zero_for_one_distribution_large_for_a_shifted_one() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    same, shifted = fid_kid_of_features(a, b, 500, 5), fid_kid_of_features(a, b + 1.0, 500, 5)
    assert same["fid"] < 0.1 and abs(same["kid_mean"]) < 0.01
    assert shifted["fid"] == pytest.approx(16, rel=0.1) and shifted["kid_mean"] > 0.5
    b[:3] = np.nan  # faces the recognizer did not find: left out and counted
    counted = fid_kid_of_features(a, b, 500, 5)
    assert counted["generated"] == 1997 and counted["generated_without_face"] == 3 and np.isfinite(counted["fid"])
    assert fid_kid_of_features(a, np.full((5, 16), np.nan))["fid"] is None


def test_detector_encoding_is_the_same_for_both_sets(shared_faces64) -> None:
    photos = sorted(shared_faces64.rglob("*.jpg"))[:4]
    faces = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in photos])
    assert np.array_equal(encoded(faces, "png"), faces)
    jpeg = encoded(faces, "jpeg", quality=90)
    assert jpeg.shape == faces.shape and jpeg.dtype == np.uint8 and not np.array_equal(jpeg, faces)
    assert np.abs(jpeg.astype(int) - faces).mean() < 4  # close to the original
    with pytest.raises(ValueError, match="png, jpeg"):
        encoded(faces, "webp")


def test_identity_network_on_generator_images_embeds_as_the_recognition_stages_do() -> None:
    torch.manual_seed(0)
    model = InceptionResnetV1(classify=False).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    expected = embed_images(model, images, 80)
    as_generator_output = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    wrapped = GeneratorSpaceEmbedding(model, 80).train()  # stays in eval mode: its batch norms keep their statistics
    assert not wrapped.model.training
    assert np.allclose(wrapped(as_generator_output).detach().numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="at least 80"):
        GeneratorSpaceEmbedding(model, 64)


def test_judge_train_people_are_the_attribute_judges_training_people(tmp_path) -> None:
    people = np.repeat([f"p{i}" for i in range(20)], 3)
    root = tmp_path / "prepared"
    root.mkdir()
    np.save(root / "images.npy", np.zeros((len(people), 8, 8, 3), np.uint8))
    pd.DataFrame({"image_id": [f"{i}.jpg" for i in range(len(people))], "identity": people, "split": "train"}).assign(
        Smiling=0
    ).to_parquet(root / "annotations.parquet")
    (root / "meta.json").write_text("{}")
    params = Params.model_validate({"prepare": {"out": str(root)}})
    config = GanConfig(attributes=("Smiling",), train_people="judge_train")
    chosen = training_people(params, config)
    train, held_out = holdout_split(len(people), 0.2, 0, people)  # evaluate.classifier's defaults
    assert chosen == set(people[train]) and not chosen & set(people[held_out]) and len(set(people[held_out])) == 4
    assert training_people(params, config.model_copy(update={"train_people": "split"})) is None
