"""End to end: `dvc repro` in studies/celeba64 (a scratch copy, on 291 real CelebA photos and tiny networks)
prepares the faces, trains the three editors on the generators' people and judges them side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from facegen.data.prepared import PreparedFaces
from recognition.models.backbone import DistilledFacenet, save_backbone
from tests.support.faces import make_celeba_people
from tests.support.scratch import run_in, scratch_copy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a whole study by dvc repro: more than the default 900 s


def test_celeba64_study_rebuilds_with_dvc_repro(
    shared_celeba: Path, shared_faces64: Path, celeba_annotations, tmp_path: Path
) -> None:
    # 60 people with 4 or more photos each (291; 5 of them faces64 people): the judges need several of a person
    celeba = make_celeba_people(shared_celeba, celeba_annotations, tmp_path / "celeba", people=60, min_photos=4)
    work = scratch_copy({}, into=tmp_path)
    # The identity network is the faces64 study's output; here an untrained one, its study left out.
    (work / "studies" / "faces64" / "dvc.yaml").unlink()
    identity = {"pretrained": "test", "align": "landmarks"}  # it learnt landmark-aligned faces, as the study's
    save_backbone(DistilledFacenet(), work / "studies" / "faces64" / "models" / "distilled.pt", identity)
    study = work / "studies" / "celeba64"
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["data"]["local"]["root"] = str(celeba)
    params["prepare"]["workers"] = 0
    tiny = {"steps": 3, "batch_size": 8, "sample_every": 3, "checkpoint_every": 3, "base_channels": 8}
    tiny |= {"editor_channels": 8, "editor_res_blocks": 1}
    for section in ("gan", "gan_baseline", "gan_region", "gan_long", "gan_feature"):
        params[section].update(tiny)
    params["gan_long"]["steps"] = 6  # longer than the identity editor it continues the settings of
    net = {"width": 8, "epochs": 1, "batch_size": 64, "lr": 0.002, "seed": 0}
    params["evaluate"].update(
        classifier=net | {"holdout_fraction": 0.2},
        detector=net | {"holdout_fraction": 0.3},
        samples=80,
        control_samples=8,
        edits=10,
        kid_subsets=3,
        kid_subset_size=40,
    )
    params["editing"].update(strengths=[1.0, 3.0], exclude_folder=str(shared_faces64))
    params["recognition"]["teacher"]["workers"] = 1
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    run_in(study, "dvc", "repro")
    metrics = json.loads((study / "metrics" / "gan.json").read_text())
    judged = {"baseline", "identity", "region", "long", "feature"}
    assert metrics["edited_photos"] == 10 and set(metrics["editors"]) == judged | {
        f"{name}_confined" for name in ("identity", "region", "long", "feature")
    }
    assert "Smiling" in metrics["feature_confined_minus_feature"]
    assert metrics["editors"]["region"]["lambda_region"] > 0 and "Smiling" in metrics["region_minus_identity"]
    assert json.loads((study / "metrics" / "train_gan_region_config.json").read_text())["lambda_region"] == 1.0
    long = json.loads((study / "metrics" / "train_gan_long.json").read_text())
    assert long["steps"] == 6 and long["resumed_from"] == 3  # it continued the identity editor's 3 steps
    assert "Eyeglasses" in metrics["long_minus_identity"] and "Smiling" in metrics["feature_minus_identity"]
    assert json.loads((study / "metrics" / "train_gan_feature_config.json").read_text())["lambda_feature"] == 1.0
    assert "e_feature_loss" in json.loads((study / "metrics" / "train_gan_feature.json").read_text())["final"]
    assert metrics["editors"]["identity"]["editor_mask"] and metrics["editors"]["identity"]["lambda_identity"] > 0
    assert not metrics["editors"]["baseline"]["editor_mask"]
    assert set(metrics["identity_judges"]) == {"teacher", "fisherfaces"}
    for result in metrics["attributes"].values():  # every conditioned attribute, beside its judge and references
        assert 0 <= result["judge_balanced_accuracy"] <= 1
        assert {"edit", "reconstruction", "noop"} <= set(result["identity"])
        assert result["identity"]["noop"]["verified_teacher"] >= 0.9  # a photo is verified as itself
    assert set(metrics["editors"]["identity"]["edits"]["edit"]["Smiling"]) == {"1", "3"}
    # Three groups of people: generators, judges, edited photos; nobody of faces64 in any
    trained = json.loads((study / "metrics" / "train_gan_config.json").read_text())
    assert trained["train_people"] == "generator" and trained["editor_mask"]
    assert all(n > 0 for n in metrics["people"].values())
    prepared = PreparedFaces(study / "data" / "prepared").annotations
    faces64 = {p.name for p in shared_faces64.iterdir()}
    outcomes = pd.read_parquet(study / "data" / "edit_outcomes.parquet")
    editors = 5 + len(params["editing"]["confined"])  # each confined editor is judged twice
    assert (
        len(outcomes) == editors * 6 * (2 + 2) * 10
    )  # editors x attributes x (photo, reconstruction, 2 strengths) x photos
    assert not set(outcomes["identity"].astype(str)) & faces64 and set(prepared["identity"].astype(str)) & faces64
    memorised = metrics["editors"]["identity"]["memorisation"]
    # 3 training steps: the teacher may find no generated face; the test is then reported as not possible
    assert memorised["p_closer"] is None or 0 <= memorised["p_closer"] <= 1
    assert memorised["held_out"] > 0
    if memorised["p_closer"] is not None:  # the data-copying control beside it, on reference sets of one size
        assert 0 <= memorised["data_copying"]["p_training_closer"] <= 1
        assert memorised["data_copying"]["reference_faces"] <= memorised["held_out"]
    assert set(metrics["similarity_curves"]["identity"]) == {"teacher", "fisherfaces"}
    assert "| Eyeglasses |" in (study / "metrics" / "gan.md").read_text()
    for plot in ("edits.png", "identity_curves.png", "nearest_training_faces.png"):
        assert (study / "plots" / plot).stat().st_size > 1000
    assert "up to date" in run_in(study, "dvc", "status", "dvc.yaml").stdout  # nothing left to rebuild
