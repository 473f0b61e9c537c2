"""The layers of docs/ARCHITECTURE.md hold: imports run one way, and the checker finds a wrong one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.imports import ROOT
from tests.support.layers import CHECKED, violations
from tests.support.stage_deps import read_stages, stage_module


def _stage_files(root: Path = ROOT) -> tuple[str, ...]:
    return tuple(stage_module(stage).replace(".", "/") + ".py" for stage in read_stages(root).values())


def test_imports_run_one_way() -> None:
    assert violations(ROOT, _stage_files()) == []


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's checked packages, to break on purpose."""
    for package in CHECKED:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize(("file", "line", "expected"), [
    ("facegen/metrics/evaluate.py", "from recognition.backbone import embed_images",
     "facegen/metrics/evaluate.py (metrics, layer 3) imports recognition.backbone (recognition, layer 4)"),
    ("facegen/synthetic/quality.py", "from facegen.metrics import convnet",
     "facegen/synthetic/quality.py (synthetic, layer 3) imports facegen.metrics.convnet (metrics, layer 3)"),
    ("facegen/gan/inference.py", "from facegen.gan.training_loop import GanTrainer",
     "facegen/gan/inference.py imports facegen.gan.training_loop"),
    ("facegen/metrics/convnet.py", "from facegen.gan.networks import _down",
     "facegen/metrics/convnet.py imports private facegen.gan.networks._down"),
    ("pipelines/compare.py", "import pipelines.train_recognizer",
     "stage pipelines/compare.py imports stage pipelines.train_recognizer"),
    ("facegen/config.py", "from pipelines import run_from_command_line",
     "facegen/config.py (core, layer 0) imports pipelines (pipelines, layer 5)"),
])
def test_the_checker_finds_a_wrong_import(tree: Path, file: str, line: str, expected: str) -> None:
    path = tree / file
    path.write_text(f"{path.read_text()}\n\ndef _late() -> None:\n    {line}\n")
    assert violations(tree, _stage_files()) == [expected]


def test_a_module_outside_every_component_is_an_error(tree: Path) -> None:
    (tree / "facegen" / "new_layer").mkdir()
    (tree / "facegen" / "new_layer" / "thing.py").write_text("")
    with pytest.raises(ValueError, match="facegen/new_layer/thing.py belongs to no component"):
        violations(tree)
