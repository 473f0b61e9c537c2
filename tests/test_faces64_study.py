"""End to end: `dvc repro` in studies/faces64 (a scratch copy, on a few real faces64 people) embeds every face
with the teacher, distils facenet from it, trains the softmax baseline and compares all recognizers; then
studies/ownphotos scores them on a user's photos of people none of them saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from facegen.data.prepared import PreparedFaces
from facegen.gan.regions import edit_masks
from recognition.augmentation.verified_edits import read_made_faces
from tests.support.scratch import run_in, scratch_copy
from tests.support.faces import copy_people, make_celeba_people
from tests.support.synthetic import prepare_demo, tiny_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # two studies end to end: longer than the default 900 s

RECOGNIZERS = (
    "dlib_teacher",
    "facenet_distilled",
    "facenet_distilled_no_margin",
    "facenet_trained_here",
    "fisherfaces",
)
REQUIRED = ("top1", "top1_with_Eyeglasses", "top1_without_Eyeglasses", "tar_at_far", "visitor_far")


def test_faces64_and_ownphotos_studies_rebuild_with_dvc_repro(
    shared_faces64: Path, shared_celeba: Path, celeba_annotations, tmp_path: Path
) -> None:
    """faces64 on 30 real people (aligned by their landmarks), distilled with a small CelebA folder as the extra
    cache, minus the ownphotos people; then ownphotos: 8 CelebA people's photos through the user's path."""
    people = copy_people(shared_faces64, tmp_path / "people", n_people=30, per_person=6)
    celeba = make_celeba_people(shared_celeba, celeba_annotations, tmp_path / "celeba", people=14)
    work = scratch_copy({}, into=tmp_path)
    study, own = work / "studies" / "faces64", work / "studies" / "ownphotos"
    # The second editor (celeba64's in the real study): a tiny generator trained on drawn 64 px faces.
    second_editor = tiny_checkpoint(prepare_demo(tmp_path / "drawn", image_size=64), tmp_path / "second_editor")
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["data"]["folder"] = {"root": str(people), "celeba_root": str(shared_celeba)}
    params["prepare"]["workers"] = 0
    params["attendance"].update(roster_size=6, visitors=4)
    params["recognition"].update(calibration_people=4, epochs=1, batch_size=16)
    params["recognition"]["distill"].update(epochs=2, margin_epochs=1, batch_size=16)
    params["gan"].update(steps=4, batch_size=8, sample_every=2, checkpoint_every=2)
    params["augmentation"].update(
        roster_draws=2,
        training_seeds=[0],
        edit_strengths=[1.0, 2.0, 3.0],
        budgets=[1, 2],
        background_edits=20,
        synthetic_faces=8,
        finetune_step_grid=[2, 4],
        embedding_epochs=1,
        batch_size=16,
        bootstrap_samples=200,
        permutation_samples=200,
        power_simulations=20,
        second_editor={"name": "drawn", "checkpoint": str(second_editor)},
        confined=["own", "drawn"],
    )
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    second = yaml.safe_load((study / "celeba.yaml").read_text())
    second["data"]["local"]["root"] = str(celeba)
    second["prepare"]["workers"] = 0
    (study / "celeba.yaml").write_text(yaml.safe_dump(second, sort_keys=False))
    own_params = yaml.safe_load((own / "params.yaml").read_text())
    own_params["photo_folder"].update(celeba_root=str(celeba), exclude_folder=str(people), people=9)
    own_params["data"]["folder"]["celeba_root"] = str(celeba)
    own_params["prepare"]["workers"] = 0
    own_params["attendance"].update(roster_size=3, visitors=2)
    own_params["recognition"].update(calibration_people=2)
    own_params["recognition"]["distill"].update(epochs=2, margin_epochs=1)
    (own / "params.yaml").write_text(yaml.safe_dump(own_params, sort_keys=False))

    run_in(study, "dvc", "repro")
    summary = json.loads((study / "metrics" / "backbones.json").read_text())
    _check_recognizers(summary)
    assert summary["split"]["roster"] == 6 and summary["split"]["background_people"] == 30 - 6 - 4 - 4
    prepared = json.loads((study / "metrics" / "prepare.json").read_text())
    assert prepared["align"] == "landmarks" and prepared["images_written"] >= 170  # few tight crops lack landmarks
    assert prepared["images_written"] + prepared["no_face"] + prepared["no_landmarks"] == 180
    teacher = json.loads((study / "metrics" / "teacher_embeddings.json").read_text())
    assert teacher["faces"] == prepared["images_written"]
    distilled = json.loads((study / "metrics" / "distill_backbone.json").read_text())
    assert distilled["align"] == "landmarks" and distilled["epochs"] == 2
    assert distilled["background_faces"] == summary["split"]["background_photos"]
    assert distilled["background_faces_excluded"] == 0  # the ownphotos people are not faces64 people
    extra = json.loads((study / "metrics" / "prepare_celeba.json").read_text())["images_written"]
    counts = [distilled[f"{k}:data/celeba_prepared"] for k in ("extra_faces", "extra_faces_held_out")]
    held_out_people = set(pd.read_csv(own / "people.csv", dtype={"identity": str})["identity"])
    assert (
        len(held_out_people) == 9
        and counts[0] + counts[1] + distilled["extra_faces_already_in_study:data/celeba_prepared"] == extra
    )
    extra_people = PreparedFaces(study / "data" / "celeba_prepared").annotations["identity"].astype(str)
    assert counts[1] >= int(extra_people.isin(held_out_people).sum()) > 0  # every ownphotos face kept out
    assert "dlib teacher" in (study / "metrics" / "backbones.md").read_text()
    assert (study / "plots" / "backbones.png").stat().st_size > 10_000
    assert "up to date" in run_in(study, "dvc", "status", "dvc.yaml").stdout  # nothing left to rebuild
    _check_augmentation(study)

    run_in(own, "dvc", "repro")  # the faces64 recognizers are up to date: only ownphotos' own stages run
    own_summary = json.loads((own / "metrics" / "backbones.json").read_text())
    _check_recognizers(own_summary)
    assert own_summary["split"]["roster"] == 3 and own_summary["split"]["background_people"] == 9 - 3 - 2 - 2
    own_prepared = json.loads((own / "metrics" / "prepare.json").read_text())
    assert own_prepared["align"] == "landmarks" and own_prepared["source"]["source"] == "folder"
    photos = sorted(p.name for p in (own / "data" / "photos").iterdir() if p.is_dir())
    assert set(photos) == held_out_people and not held_out_people & {p.name for p in people.iterdir()}
    assert "up to date" in run_in(own, "dvc", "status", "dvc.yaml").stdout

    # The GPU check's bundle is made from both studies and runs anywhere (here on CPU, tiny settings).
    bundle = tmp_path / "gpu" / "faces64.npz"
    made = json.loads(
        run_in(
            work,
            "python",
            "-m",
            "bench.gpu_distill",
            "bundle",
            "--faces64",
            str(study),
            "--ownphotos",
            str(own),
            "--out",
            str(bundle),
        ).stdout
    )
    assert made["faces"]["faces64:checkin"] <= summary["split"]["checkins"] and made["background_people"] >= 1
    run_in(
        work,
        "python",
        "-m",
        "bench.gpu_distill",
        "run",
        "--bundle",
        str(bundle),
        "--out",
        str(tmp_path / "gpu"),
        "--device",
        "cpu",
        "--students",
        "landmarks@80",
        "box@80",
        "--epochs",
        "2",
        "--margin-epochs",
        "1",
        "--batch-size",
        "16",
        "--loader-workers",
        "0",
    )
    result = json.loads((tmp_path / "gpu" / "gpu_check.json").read_text())
    for name, split in (("faces64", summary), ("ownphotos", own_summary)):
        if made["faces"].get(f"{name}:skipped", 0) == 0:  # the same faces as the study's split
            assert result["teacher"][name]["top1"] == pytest.approx(split["dlib_teacher"]["top1"], abs=1e-3)
        assert 0 <= result["students"]["box@80"][name]["top1"] <= 1


def _check_recognizers(summary: dict) -> None:
    for name in RECOGNIZERS:
        entry = summary[name]
        assert set(REQUIRED) <= set(entry), entry
        assert all(0 <= entry[k] <= 1 for k in ("top1", "tar_at_far", "visitor_far")), entry
        # a group none of these few check-ins is in has no rate (NaN), never a made-up one
        assert all(entry[k] != entry[k] or 0 <= entry[k] <= 1 for k in REQUIRED), entry
        low, high = entry["top1_interval"]
        assert low <= entry["top1"] <= high
    assert summary["dlib_teacher"]["top1"] >= 0.8  # the pretrained teacher names these real people
    assert summary["facenet_distilled"]["top1_minus_facenet_distilled"] == [0.0, 0.0, 0.0]


def _check_augmentation(study: Path) -> None:
    """The augmentation stages' outputs: every arm paired with its baseline, every endpoint, over people."""
    made = json.loads((study / "metrics" / "augment_faces.json").read_text())
    # every enrolment photo of both draws, edited towards eyeglasses at each strength, and reconstructed
    assert set(made["enrolment_edits"]) == {"Eyeglasses"}
    assert set(made["enrolment_edits"]["Eyeglasses"]) == {"1", "2", "3"}
    assert made["reconstructions"]["made"] == made["enrolment_photos"] > 0
    assert made["background_edit"]["made"] == 20 and made["sample"]["made"] == 8
    assert 0 < made["teacher_threshold"] < 1
    # the second editor's candidates and both editors' confined ones, at the same strengths
    assert set(made["other_editors"]) == {"drawn", "own_confined", "drawn_confined"}
    assert all(set(e["enrolment_edits"]["Eyeglasses"]) == {"1", "2", "3"} for e in made["other_editors"].values())
    _check_confined_edits(study)
    summary = json.loads((study / "metrics" / "augmentation.json").read_text())
    arms = summary["arms"]
    assert set(arms) == {"prototypes", "prototypes_pooled", "prototypes_max", "finetuned", "embedding"}
    roster_arms = {"classic", "oracle", "reconstruction", "gan_Eyeglasses_1", "gan_Eyeglasses_2"}
    roster_arms.add("gan_drawn_Eyeglasses_1")  # the second editor's verified edits, budget 1
    roster_arms |= {"gan_own_confined_Eyeglasses_1", "gan_drawn_confined_Eyeglasses_1"}  # and confined edits
    assert all(set(arms[f]) == roster_arms for f in arms if f != "embedding")
    assert set(arms["embedding"]) == {"gan_trained"}
    for family in arms.values():
        for arm in family.values():
            assert {"top1_with_Eyeglasses", "top1_with_Eyeglasses_oracle_people", "top1", "tar_at_far"} <= set(arm)
            assert "p_holm" in arm["top1_with_Eyeglasses"]
            for e in arm.values():
                if e["photos"] == 0:  # e.g. no eyeglass-wearing check-in among these few people: no rate
                    assert e["delta"] != e["delta"]
                    continue
                assert e["ci"][0] <= e["ci"][1] and 0 < e["p_permutation"] <= 1 and e["people"] <= e["photos"]
                assert e["delta"] == pytest.approx(e["with_arm"] - e["baseline"], abs=2e-4)
    overall = arms["prototypes"]["classic"]["top1"]
    per_draw = summary["design"]["checkins_per_draw"]
    assert max(per_draw) <= overall["photos"] <= sum(per_draw)  # each distinct check-in photo once
    assert summary["design"]["roster_draws"] == 2 and summary["design"]["training_seeds"] == [0]
    assert summary["design"]["finetune_steps"] in (2, 4) and set(summary["design"]["finetune_validation_top1"]) == {
        "2",
        "4",
    }
    assert summary["primary"]["arm"] == "gan_Eyeglasses_1" and summary["primary"]["family"] == "prototypes"
    others = {"gan_drawn_Eyeglasses_1", "gan_own_confined_Eyeglasses_1", "gan_drawn_confined_Eyeglasses_1"}
    assert set(summary["other_editors"]) == others
    assert all(set(share) <= set(arms) for share in summary["other_editors"].values())
    assert set(summary["power"]["curve"]) == {"0.05", "0.1", "0.15", "0.2", "0.3"}
    table = (study / "metrics" / "augmentation.md").read_text()
    assert "oracle" in table and "reconstruction" in table and "Primary contrast" in table
    assert (study / "plots" / "augmentation.png").stat().st_size > 10_000


def _check_confined_edits(study: Path) -> None:
    """Each confined eyeglass edit is its source photo wherever the eye band's mask is zero; the plain edits are
    not (the editor's round trip changes the whole face)."""
    made = read_made_faces(study / "data" / "augment")
    prepared = PreparedFaces(study / "data" / "prepared")
    row_of = dict(zip(prepared.annotations["image_id"].astype(str), range(len(prepared.annotations))))
    outside = edit_masks(torch.ones(1, 1, dtype=torch.bool), ["Eyeglasses"], prepared.images.shape[1])[0, 0] == 0
    for editor, kept in (("own_confined", True), ("drawn_confined", True), ("own", False), ("drawn", False)):
        rows = np.flatnonzero((made.table["editor"] == editor) & (made.table["kind"] == "enrolment_edit"))
        sources = prepared.images[[row_of[s] for s in made.table["source_image"].iloc[rows]]]
        same = (made.images[rows] == sources)[:, outside.numpy()].all()
        assert len(rows) and same == kept, editor
