"""End to end: `dvc repro` in studies/celeba64 (a scratch copy, on 300 real CelebA photos and tiny networks)
prepares the faces, trains both editors on the judge's training people and judges them side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recognition.backbone import DistilledFacenet, save_backbone
from tests.support.faces import make_celeba_subset
from tests.support.scratch import run_in, scratch_copy

pytestmark = pytest.mark.slow


def test_celeba64_study_rebuilds_with_dvc_repro(shared_celeba: Path, celeba_annotations, tmp_path: Path) -> None:
    celeba = make_celeba_subset(shared_celeba, celeba_annotations, tmp_path / "celeba", n=300)
    work = scratch_copy({}, into=tmp_path)
    # The identity network is the faces64 study's output; here an untrained one, its study left out.
    (work / "studies" / "faces64" / "dvc.yaml").unlink()
    save_backbone(DistilledFacenet(), work / "studies" / "faces64" / "models" / "distilled.pt", {"pretrained": "test"})
    study = work / "studies" / "celeba64"
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["data"]["local"]["root"] = str(celeba)
    params["prepare"]["workers"] = 0
    tiny = {"steps": 3, "batch_size": 8, "sample_every": 3, "checkpoint_every": 3, "base_channels": 8}
    tiny |= {"editor_channels": 8, "editor_res_blocks": 1}
    params["gan"].update(tiny)
    params["gan_baseline"].update(tiny)
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
    params["editing"]["strengths"] = [1.0, 3.0]
    params["recognition"]["teacher"]["workers"] = 1
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    run_in(study, "dvc", "repro")
    metrics = json.loads((study / "metrics" / "gan.json").read_text())
    assert metrics["edited_photos"] == 10 and set(metrics["editors"]) == {"baseline", "identity"}
    assert metrics["editors"]["identity"]["editor_mask"] and metrics["editors"]["identity"]["lambda_identity"] > 0
    assert not metrics["editors"]["baseline"]["editor_mask"]
    for result in metrics["attributes"].values():  # every conditioned attribute, beside its judge
        assert 0 <= result["judge_balanced_accuracy"] <= 1
        assert set(result["identity"]["edits"]) == {"1", "3"}
    # The generators trained on the judge's training people only: the edited people are held out of both.
    trained = json.loads((study / "metrics" / "train_gan_config.json").read_text())
    assert trained["train_people"] == "judge_train" and trained["editor_mask"]
    outcomes = pd.read_parquet(study / "data" / "edit_outcomes.parquet")
    assert len(outcomes) == 2 * 6 * 2 * 10  # editors x attributes x strengths x photos
    assert "| Eyeglasses |" in (study / "metrics" / "gan.md").read_text()
    assert (study / "plots" / "edits.png").stat().st_size > 1000
    assert "up to date" in run_in(study, "dvc", "status", "dvc.yaml").stdout  # nothing left to rebuild
