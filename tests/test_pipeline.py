"""End to end: `dvc repro` runs the prepare flow in a scratch copy of the repo, and only when needed."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.support.scratch import run_in, scratch_copy
from facegen.data.prepared import PreparedFaces

pytestmark = pytest.mark.slow


def test_dvc_repro_prepares_the_demo_once(tmp_path, monkeypatch) -> None:
    from pipelines.study import stale_stages

    work = scratch_copy(
        {"data.demo.identities": 12, "data.demo.images_per_identity": 4, "prepare.workers": 0, "data.image_size": 64},
        into=tmp_path,
    )
    monkeypatch.chdir(work)
    assert stale_stages("prepare") == ["prepare"]  # what the study flow reads: DVC's JSON status
    run_in(work, "dvc", "repro", "prepare")
    assert stale_stages("prepare") == []
    metrics = json.loads((work / "metrics" / "prepare.json").read_text())
    assert metrics["images_in"] == metrics["images_written"] == 48 and metrics["source"]["source"] == "demo"
    prepared = PreparedFaces(work / "data" / "prepared", attributes=["Eyeglasses"])
    assert prepared.images.shape == (48, 64, 64, 3) and len(prepared.identity_names) == 12

    again = run_in(work, "dvc", "repro", "prepare")
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout
    assert "up to date" in run_in(work, "dvc", "status", "prepare").stdout

    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["image_size"] = 32
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    assert "Running stage 'prepare'" in run_in(work, "dvc", "repro", "prepare").stdout
    assert PreparedFaces(work / "data" / "prepared").images.shape == (48, 32, 32, 3)


def test_prepare_flow_runs_standalone(tmp_path, monkeypatch) -> None:
    work = scratch_copy(
        {"data.demo.identities": 5, "data.demo.images_per_identity": 3, "prepare.workers": 1}, into=tmp_path
    )
    run_in(work, "python", "-m", "pipelines.prepare", "--params", "params.yaml")
    assert json.loads((work / "metrics" / "prepare.json").read_text())["images_written"] == 15
