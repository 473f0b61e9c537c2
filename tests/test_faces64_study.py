"""End to end: `dvc repro` in studies/faces64 (a scratch copy, on a few real faces64 people) embeds every face
with the teacher, distils facenet from it, trains the softmax baseline and compares all recognizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.scratch import run_in, scratch_copy
from tests.support.faces import copy_people

pytestmark = pytest.mark.slow

RECOGNIZERS = (
    "dlib_teacher",
    "facenet_distilled",
    "facenet_distilled_no_margin",
    "facenet_trained_here",
    "fisherfaces",
)
REQUIRED = ("top1", "top1_with_Eyeglasses", "top1_without_Eyeglasses", "tar_at_far", "visitor_far")


def test_faces64_study_rebuilds_with_dvc_repro(shared_faces64: Path, shared_celeba: Path, tmp_path: Path) -> None:
    people = copy_people(shared_faces64, tmp_path / "people", n_people=30, per_person=6)
    work = scratch_copy({}, into=tmp_path)
    study = work / "studies" / "faces64"
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["data"]["folder"] = {"root": str(people), "celeba_root": str(shared_celeba)}
    params["prepare"]["workers"] = 0
    params["attendance"].update(roster_size=6, visitors=4)
    params["recognition"].update(calibration_people=4, epochs=1, batch_size=16)
    # the study's own cache as an "extra" one: every held-out person in it must be left out again
    params["recognition"]["distill"].update(epochs=2, margin_epochs=1, batch_size=16, extra_prepared=["data/prepared"])
    params["gan"].update(steps=4, batch_size=8, sample_every=2, checkpoint_every=2)
    params["augmentation"].update(
        roster_draws=2,
        edit_strengths=[1.0, 2.0, 3.0],
        budget=2,
        background_edits=20,
        synthetic_faces=8,
        finetune_epochs=2,
        embedding_epochs=1,
        batch_size=16,
        bootstrap_samples=200,
    )
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    run_in(study, "dvc", "repro")
    summary = json.loads((study / "metrics" / "backbones.json").read_text())
    for name in RECOGNIZERS:
        entry = summary[name]
        assert set(REQUIRED) <= set(entry), entry
        assert all(0 <= entry[k] <= 1 for k in ("top1", "tar_at_far", "visitor_far")), entry
        # a group none of these few check-ins is in has no rate (NaN), never a made-up one
        assert all(entry[k] != entry[k] or 0 <= entry[k] <= 1 for k in REQUIRED), entry
        low, high = entry["top1_interval"]
        assert low <= entry["top1"] <= high
    assert summary["dlib_teacher"]["top1"] >= 0.8  # the pretrained teacher names these real people
    assert summary["split"]["roster"] == 6 and summary["split"]["background_people"] == 30 - 6 - 4 - 4
    assert summary["facenet_distilled"]["top1_minus_facenet_distilled"] == [0.0, 0.0, 0.0]
    teacher = json.loads((study / "metrics" / "teacher_embeddings.json").read_text())
    assert teacher["faces"] == 180 and teacher["skipped"] == 0
    distilled = json.loads((study / "metrics" / "distill_backbone.json").read_text())
    assert distilled["background_faces"] == 16 * 6 and distilled["epochs"] == 2
    assert distilled["extra_faces:data/prepared"] == 16 * 6  # the background people again, under their own labels
    assert distilled["extra_faces_held_out:data/prepared"] == (30 - 16) * 6  # roster, visitors, calibration
    assert distilled["images"] == 2 * 16 * 6 and distilled["identities"] == 2 * 16
    assert "dlib teacher" in (study / "metrics" / "backbones.md").read_text()
    assert (study / "plots" / "backbones.png").stat().st_size > 10_000
    assert "up to date" in run_in(study, "dvc", "status", "dvc.yaml").stdout  # nothing left to rebuild
    _check_augmentation(study)

    # The GPU check's bundle is made from this study and runs anywhere (here on CPU, tiny settings).
    bundle = tmp_path / "gpu" / "faces64.npz"
    made = json.loads(
        run_in(work, "python", "-m", "bench.gpu_distill", "bundle", "--study", str(study), "--out", str(bundle)).stdout
    )
    assert made["photos"]["checkin"] == summary["split"]["checkins"] and made["background_people"] == 16
    result = json.loads(
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
            "--input-size",
            "80",
            "--epochs",
            "2",
            "--margin-epochs",
            "1",
            "--batch-size",
            "16",
            "--loader-workers",
            "0",
        ).stdout
    )
    assert result["teacher"]["top1"] == pytest.approx(summary["dlib_teacher"]["top1"], abs=1e-3)  # float16 descriptors
    assert 0 <= result["student"]["top1"] <= 1 and len(result["epochs"]) == 2
    assert (tmp_path / "gpu" / "gpu_check.json").is_file()


def _check_augmentation(study: Path) -> None:
    """The augmentation stages' outputs: every condition paired with its baseline, every endpoint, over people."""
    made = json.loads((study / "metrics" / "augment_faces.json").read_text())
    # every enrolment photo of both draws, edited towards each attribute at each strength
    assert set(made["enrolment_edits"]) == {"Eyeglasses", "Smiling"}
    assert set(made["enrolment_edits"]["Eyeglasses"]) == {"1", "2", "3"}
    assert made["background_edit"]["made"] == 20 and made["sample"]["made"] == 8
    assert 0 < made["teacher_threshold"] < 1
    summary = json.loads((study / "metrics" / "augmentation.json").read_text())
    effects = summary["effects"]
    assert set(effects) == {"prototypes", "finetuned", "embedding"}
    assert set(effects["prototypes"]) == set(effects["finetuned"]) == {"classic", "gan_Eyeglasses", "gan_mixed"}
    assert set(effects["embedding"]) == {"gan_trained"}
    for family in effects.values():
        for condition in family.values():
            assert set(condition) == {"top1_with_Eyeglasses", "top1", "tar_at_far", "visitor_far"}
            for e in condition.values():
                if e["photos"] == 0:  # e.g. no eyeglass-wearing check-in among these few people: no rate
                    assert e["difference"] != e["difference"]
                    continue
                assert e["low"] <= e["difference"] <= e["high"] and e["mde"] >= 0
                assert e["difference"] == pytest.approx(e["condition"] - e["baseline"], abs=2e-4)
    overall = effects["prototypes"]["classic"]["top1"]
    assert overall["photos"] == sum(summary["design"]["checkins_per_draw"])  # both draws, paired photo by photo
    assert summary["design"]["roster_draws"] == 2 and summary["design"]["training_seeds"] == [0, 1]
    assert "gan_mixed" in (study / "metrics" / "augmentation.md").read_text()
    assert (study / "plots" / "augmentation.png").stat().st_size > 10_000
