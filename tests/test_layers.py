"""The layers of docs/ARCHITECTURE.md hold: imports run one way, and the checker finds a wrong one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.imports import ROOT
from tests.support.layers import CHECKED, shared_helper_violations, violations
from tests.support.stage_deps import read_stages, stage_module


def _stage_files(root: Path = ROOT) -> tuple[str, ...]:
    return tuple(stage_module(stage).replace(".", "/") + ".py" for stage in read_stages(root).values())


def test_imports_run_one_way() -> None:
    assert violations(ROOT, _stage_files()) == []


def test_tests_share_helpers_through_tests_support() -> None:
    assert shared_helper_violations(ROOT) == []


def test_a_test_importing_another_test_or_bench_is_caught(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("")
    (tmp_path / "tests" / "test_x.py").write_text("from tests.conftest import thing\nimport tests.test_bench_y\n")
    (tmp_path / "tests" / "test_bench_y.py").write_text("from bench import speed\n")
    (tmp_path / "tests" / "test_z.py").write_text("from bench import speed\n")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "speed.py").write_text("")
    assert shared_helper_violations(tmp_path) == [
        "tests/test_x.py imports tests.conftest",
        "tests/test_x.py imports tests.test_bench_y",
        "tests/test_z.py imports bench.speed",
    ]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's checked packages, to break on purpose."""
    for package in CHECKED:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@pytest.mark.parametrize(
    ("file", "line", "expected"),
    [
        (
            "facegen/metrics/evaluate.py",
            "from recognition.models.backbone import embed_images",
            "facegen/metrics/evaluate.py (metrics, layer 3) imports recognition.models.backbone (recognition, layer 4)",
        ),
        (
            "facegen/synthetic/quality.py",
            "from facegen.metrics import convnet",
            "facegen/synthetic/quality.py (synthetic, layer 3) imports facegen.metrics.convnet (metrics, layer 3)",
        ),
        (
            "facegen/gan/inference.py",
            "from facegen.gan.training_loop import GanTrainer",
            "facegen/gan/inference.py imports facegen.gan.training_loop",
        ),
        (
            "facegen/metrics/convnet.py",
            "from facegen.gan.networks import _down",
            "facegen/metrics/convnet.py imports private facegen.gan.networks._down",
        ),
        (
            "pipelines/compare.py",
            "import pipelines.train_recognizer",
            "stage pipelines/compare.py imports stage pipelines.train_recognizer",
        ),
        (
            "recognition/models/teacher.py",
            "from recognition.sets import attendance_sets",
            "recognition/models/teacher.py imports recognition.sets",
        ),
        (
            "recognition/attendance/service.py",
            "from recognition.augmentation import arms",
            "recognition/attendance/service.py imports recognition.augmentation.arms",
        ),
        (
            "facegen/config.py",
            "from pipelines import run_from_command_line",
            "facegen/config.py (core, layer 0) imports pipelines (pipelines, layer 5)",
        ),
    ],
)
def test_the_checker_finds_a_wrong_import(tree: Path, file: str, line: str, expected: str) -> None:
    path = tree / file
    path.write_text(f"{path.read_text()}\n\ndef _late() -> None:\n    {line}\n")
    assert violations(tree, _stage_files()) == [expected]


def test_a_module_outside_every_component_is_an_error(tree: Path) -> None:
    (tree / "facegen" / "new_layer").mkdir()
    (tree / "facegen" / "new_layer" / "thing.py").write_text("")
    with pytest.raises(ValueError, match="facegen/new_layer/thing.py belongs to no component"):
        violations(tree)
