"""End to end: `dvc repro generate` in a scratch repo, `dvc push` to the default local remote, then a fresh
clone pulls it, `dvc get` fetches one data set, and dvc.api reads a data set at two git revisions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.scratch import run_in, scratch_copy
from facegen.datasets import SyntheticFaces, fetch_dataset, load_manifest, read_manifest
from tests.support.synthetic import ATTENDANCE, ATTRIBUTES, files, prepare_demo, tiny_checkpoint

pytestmark = pytest.mark.slow

DATASETS = [
    {"name": "enrolment_edits", "mode": "edit", "sources": "enrol", "attributes": ["Eyeglasses", "Smiling"]},
    {"name": "balanced_attributes", "mode": "per_attribute", "attributes": ["Eyeglasses", "Smiling"], "n": 20},
]


def commit(work: Path, message: str) -> str:
    run_in(work, "git", "add", "-A", "--", ".", ":!models")  # the checkpoint here is made by hand, not by DVC
    run_in(work, "git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", message)
    return run_in(work, "git", "rev-parse", "HEAD").stdout.strip()


def test_push_clone_pull_get_and_read_at_a_revision(tmp_path) -> None:
    work = scratch_copy(
        {
            "generate.chunk_size": 16,
            "generate.datasets": DATASETS,
            **{f"attendance.{k}": v for k, v in ATTENDANCE.model_dump().items() if k != "gap_attributes"},
        },
        into=tmp_path,
    )
    params = yaml.safe_load((work / "params.yaml").read_text())
    params.setdefault("gan", {"attributes": list(ATTRIBUTES)})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # The inputs of `generate` are made directly (its own stage is what this test is about).
    tiny_checkpoint(prepare_demo(tmp_path, work / "data" / "prepared"), work / "models" / "gan")
    run_in(work, "dvc", "repro", "-s", "generate")
    first = commit(work, "synthetic data, n=20")
    made = work / "data" / "synthetic"
    assert len(load_manifest(made / "balanced_attributes")) == 80
    assert len(load_manifest(made / "enrolment_edits")) == ATTENDANCE.roster_size * ATTENDANCE.enrol_per_person * 2

    # The default remote (.dvc/config) is a folder beside the checkout.
    run_in(work, "dvc", "push")
    assert (tmp_path / "facegen-dvc-remote" / "files" / "md5").is_dir()

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(work), str(clone)], check=True)
    run_in(clone, "dvc", "pull", "generate")
    assert files(clone / "data" / "synthetic") == files(made)

    run_in(tmp_path, "dvc", "get", str(work), "data/synthetic/balanced_attributes", "-o", "got")
    assert files(tmp_path / "got") == files(made / "balanced_attributes")
    assert len(SyntheticFaces(tmp_path / "got", attributes={"Smiling": 1})) >= 20

    # A second revision with more faces; each revision's data stays readable.
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["generate"]["datasets"][1]["n"] = 30
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # Made with the CLI this time (no second Prefect start), recorded with `dvc commit`.
    run_in(work, "python", "-c", "from pipelines.cli import run; run()", "generate")
    run_in(work, "dvc", "commit", "-f", "generate")
    assert "up to date" in run_in(work, "dvc", "status", "generate").stdout
    second = commit(work, "synthetic data, n=30")
    run_in(work, "dvc", "push")
    path = "data/synthetic/balanced_attributes"
    assert len(read_manifest(path, repo=str(work), rev=first)) == 80
    assert len(read_manifest(path, repo=str(work), rev=second)) == 120
    old = fetch_dataset(path, tmp_path / "old", repo=str(work), rev=first)
    assert files(old) == files(tmp_path / "got")
