"""The pieces of the editors' judgement (issue 20): summaries of per-edit outcomes, FID/KID of ready features, the
detector's common encoding, the identity term's network on generator images, and whom the generators train on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from facenet_pytorch import InceptionResnetV1
from PIL import Image

from facegen.config import GanConfig, NetTraining, Params
from facegen.metrics.convnet import holdout_split
from facegen.metrics.detector import encoded, region_crops
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel
from facegen.metrics.attribute_classifier import train_attribute_classifier
from facegen.metrics.editing import EditJudges, Gallery, IdentityJudge, editing_people, judge_edits, summarise_edits
from facegen.metrics.feature_distance import fid_kid_of_features
from pipelines.train_gan import training_people
from recognition.models.backbone import GeneratorSpaceEmbedding, embed_images
from tests.support.synthetic import ATTRIBUTES, prepare_demo, tiny_checkpoint


def test_edit_summary_counts_flips_verifications_by_source_and_other_photos_per_kind() -> None:
    table = pd.DataFrame(
        {
            "kind": ["edit"] * 4 + ["noop"] * 2,
            "attribute": ["Smiling"] * 6,
            "strength": [1.0] * 4 + [0.0] * 2,
            "flipped": [True, True, False, True, False, False],
            "similarity_a": [0.95, 0.5, 0.97, np.nan, 1.0, 1.0],
            "verified_a": [True, False, True, False, True, True],
            "other_a": [1.0, 0.0, 1.0, np.nan, 1.0, 0.0],
            "similarity_b": [0.9, 0.4, 0.2, 0.8, 1.0, 1.0],
            "verified_b": [True, False, False, True, True, True],
            "other_b": [1.0, 1.0, 0.0, 1.0, 1.0, 1.0],
        }
    )
    summary = summarise_edits(table)
    edit = summary["edit"]["Smiling"]["1"]
    assert edit["flipped"] == 0.75 and edit["rows"] == 4
    assert edit["verified_a"] == 0.5 and edit["no_face_a"] == 0.25
    assert edit["other_a"] == round(2 / 3, 4)  # the edit without a face has no other-photo verdict
    assert edit["flipped_and_other_a"] == 0.25 and edit["flipped_and_other_b"] == 0.75
    assert edit["similarity_mean_a"] == round((0.95 + 0.5 + 0.97) / 3, 4)
    assert edit["judges_agree"] == round(1 / 3, 4)  # row 1 agrees, rows 2 and 3 do not (row 4: no verdict)
    assert summary["noop"]["Smiling"]["0"]["verified_b"] == 1.0 and summary["noop"]["Smiling"]["0"]["flipped"] == 0


def test_editing_people_are_three_disjoint_groups_without_the_excluded() -> None:
    identities = np.repeat([f"p{i}" for i in range(40)], 3)
    groups = editing_people(identities, 0.2, 0.3, seed=0, excluded=frozenset({"p0", "p1"}))
    names = {k: set(identities[v]) for k, v in vars(groups).items()}
    assert not names["generator"] & names["judge"] and not names["judge"] & names["held_out"]
    assert not names["generator"] & names["held_out"] and not {"p0", "p1"} & set().union(*names.values())
    assert len(set().union(*names.values())) == 38 and len(names["held_out"]) == round(38 * 0.2)
    assert len(names["judge"]) == round(len(names["generator"] | names["judge"]) * 0.3)
    shared = editing_people(identities, 0.2, 0.0, seed=0, excluded=frozenset())
    assert np.array_equal(shared.generator, shared.judge)  # judge_fraction 0: the judges' people are the generators'
    _, held_out = holdout_split(len(identities), 0.2, 0, identities)
    assert np.array_equal(shared.held_out, held_out)  # as the judge's hold-out always was


def test_references_and_other_photos_are_judged_like_the_edits(tmp_path) -> None:
    prepared = PreparedFaces(prepare_demo(tmp_path, identities=6, per_identity=4), attributes=list(ATTRIBUTES))
    images, rows = np.asarray(prepared.images), prepared.annotations[list(ATTRIBUTES)].to_numpy(np.float32)
    people, ids = prepared.annotations["identity"].astype(str).to_numpy(), prepared.annotations["image_id"].to_numpy()
    model = FaceModel.load(tiny_checkpoint(prepared.root, tmp_path / "gan"))
    judge, _ = train_attribute_classifier(images, rows, ATTRIBUTES, NetTraining(width=4, epochs=1), people)

    def pixels(x: np.ndarray) -> np.ndarray:  # an identity judge that is only the pixels: cosine 1 for the same face
        return x.reshape(len(x), -1).astype(np.float64)

    judges = EditJudges(judge, {"pixels": IdentityJudge(pixels, 0.99)})
    first, second = (np.flatnonzero(people == p) for p in np.unique(people)[:2])
    sources = np.array([first[0], first[1], second[0]])  # two photos of one person, one of another
    lone = ~np.isin(np.arange(len(images)), second[1:])  # the other person's other photos are not in the gallery
    outcomes = judge_edits(
        model,
        judges,
        images[sources],
        rows[sources],
        ids[sources],
        people[sources],
        [1.0, 2.0],
        Gallery(images[lone], people[lone], ids[lone]),
        keep=2.0,
    )
    table = outcomes.table
    assert len(table) == len(ATTRIBUTES) * (2 + 2) * len(sources)  # noop, reconstruction and two strengths
    noop = table[table["kind"] == "noop"]
    assert np.allclose(noop["similarity_pixels"], 1.0) and noop["verified_pixels"].all()
    assert noop.loc[noop["source"] == 2, "other_pixels"].isna().all()  # nobody else of that person to compare with
    assert set(noop.loc[noop["source"] < 2, "other_pixels"]) <= {0.0, 1.0}
    assert set(outcomes.at_strength) == set(ATTRIBUTES) and len(outcomes.at_strength["Smiling"]) == len(sources)
    rebuilt = table[table["kind"] == "reconstruction"]
    assert (rebuilt["strength"] == 0).all() and rebuilt["similarity_pixels"].lt(1.0).any()  # the editor changed pixels


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


def test_region_crops_cut_the_eye_and_mouth_bands() -> None:
    faces = np.zeros((2, 64, 64, 3), np.uint8)
    faces[:, 19:40, 9:55] = 255  # the eye band of a 64 px aligned face (rows 0.30-0.62, columns 0.14-0.86)
    eyes, mouth = region_crops(faces, "eyes"), region_crops(faces, "mouth")
    assert eyes.shape == mouth.shape == (2, 32, 32, 3)
    assert eyes.min() == 255 and mouth.max() == 0
    with pytest.raises(ValueError, match="eyes, mouth"):
        region_crops(faces, "nose")


def test_identity_network_on_generator_images_embeds_as_the_recognition_stages_do() -> None:
    torch.manual_seed(0)
    model = InceptionResnetV1(classify=False).eval()
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    expected = embed_images(model, images, 80)
    as_generator_output = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    wrapped = GeneratorSpaceEmbedding(model, 80).train()  # stays in eval mode: its batch norms keep their statistics
    assert not wrapped.model.training
    assert np.allclose(wrapped(as_generator_output).detach().numpy(), expected, atol=1e-5)
    embedding, maps = wrapped.features(as_generator_output)  # one pass: the same embedding, and the feature maps
    assert torch.equal(embedding, wrapped(as_generator_output))
    assert [tuple(m.shape) for m in maps] == [(3, 256, 7, 7), (3, 896, 3, 3)]  # after repeat_1 and repeat_2 at 80 px
    assert not any(m._forward_hooks for m in model.modules())  # nothing left on the network between calls
    assert len(GeneratorSpaceEmbedding(model, 80).features(as_generator_output)[1]) == 2  # a second wrapper: its own
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
    generator = training_people(params, config.model_copy(update={"train_people": "generator"}))
    assert generator == chosen  # editing.judge_fraction 0: the judges' people are the generators'
    split = params.model_copy(update={"editing": params.editing.model_copy(update={"judge_fraction": 0.5})})
    fewer = training_people(split, config.model_copy(update={"train_people": "generator"}))
    assert fewer < chosen and len(fewer) == 8  # half of the 16 people not held out train the judges instead
