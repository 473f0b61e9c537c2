"""dvc.yaml's stages declare the code they run: every project file a stage's command imports (transitively) is
covered by its deps, every code dep is imported, and the checker catches a dep taken away."""

from __future__ import annotations

import copy

import pytest
import yaml

from facegen import paths
from facegen.config import CONDITIONS, load_params
from tests.support.imports import ROOT
from tests.support.stage_deps import code_deps, read_stages, undeclared

STAGES = read_stages()


@pytest.mark.parametrize("name", STAGES)
def test_deps_cover_every_imported_project_file(name: str) -> None:
    assert undeclared(STAGES[name]) == [], "run `python -m tests.support.stage_deps` for the lists to declare"


@pytest.mark.parametrize(("name", "dep"), [(n, d) for n, s in STAGES.items() for d in code_deps(s)])
def test_without_any_of_its_code_deps_a_stage_is_caught(name: str, dep: str) -> None:
    """Each code dep is needed (the stage imports what it names), so removing it is reported."""
    stage = copy.deepcopy(STAGES[name])
    stage["deps"].remove(dep)
    missing = undeclared(stage)
    assert missing and all(m == dep or m.startswith(dep + "/") for m in missing)


def test_a_new_import_without_its_dep_is_caught(tmp_path) -> None:
    """A stage module that starts importing a project file outside its deps fails the check."""
    (tmp_path / "facegen").symlink_to(ROOT / "facegen")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "fresh.py").write_text("from facegen.report import page\n")
    stage = {"cmd": "python -m pipelines.fresh", "deps": ["pipelines", "facegen/__init__.py", "facegen/io.py"]}
    assert undeclared(stage, tmp_path) == ["facegen/report/__init__.py", "facegen/report/page.py"]


def test_one_recognizer_stage_per_condition_and_compare_reads_them_all() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert tuple(stages["train_recognizer"]["foreach"]) == CONDITIONS
    assert set(load_params(ROOT / "params.yaml").recognition.conditions) <= set(CONDITIONS)
    outcomes = [o for o in STAGES["train_recognizer"]["outs"] if str(o).startswith(f"{paths.OUTCOMES}/")]
    assert outcomes == [f"{paths.OUTCOMES}/${{key}}.parquet"] and str(paths.OUTCOMES) in STAGES["compare"]["deps"]
    assert [str(paths.RECOGNITION_PLOT)] == [next(iter(p)) for p in STAGES["compare"]["plots"]]
