"""dvc.yaml's stages declare the code they run: every project file a stage's command imports (transitively) is
covered by its deps, every code dep is imported, and the checker catches a dep taken away."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from facegen import paths
from facegen.config import CONDITIONS, load_params
from tests.support.imports import ROOT
from tests.support.stage_deps import DVC_FILES, code_deps, read_stages, stage_option, undeclared

STAGES = read_stages()
EVERY_STAGE = {(f, n): s for f in DVC_FILES for n, s in read_stages(dvc_file=f).items()}


@pytest.mark.parametrize("where", EVERY_STAGE, ids=lambda w: f"{w[0]}:{w[1]}")
def test_deps_cover_every_imported_project_file(where: tuple[str, str]) -> None:
    assert undeclared(EVERY_STAGE[where]) == [], "run `python -m tests.support.stage_deps` for the lists to declare"


@pytest.mark.parametrize(
    ("where", "dep"),
    [(w, d) for w, s in EVERY_STAGE.items() for d in code_deps(s)],
    ids=lambda x: x if isinstance(x, str) else f"{x[0]}:{x[1]}",
)
def test_without_any_of_its_code_deps_a_stage_is_caught(where: tuple[str, str], dep: str) -> None:
    """Each code dep is needed (the stage imports what it names), so removing it is reported."""
    stage = copy.deepcopy(EVERY_STAGE[where])
    stage["deps"].remove(dep)
    missing = undeclared(stage)
    assert missing and all(m == dep or m.startswith(dep.rstrip("/") + "/") for m in missing)


def test_a_new_import_without_its_dep_is_caught(tmp_path) -> None:
    """A stage module that starts importing a project file outside its deps fails the check."""
    (tmp_path / "facegen").symlink_to(ROOT / "facegen")
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "__init__.py").write_text("")
    (tmp_path / "pipelines" / "fresh.py").write_text("from facegen.report import page\n")
    stage = {"cmd": "python -m pipelines.fresh", "deps": ["pipelines", "facegen/__init__.py", "facegen/io.py"]}
    assert undeclared(stage, tmp_path) == ["facegen/locks.py", "facegen/report/__init__.py", "facegen/report/page.py"]


def test_one_recognizer_stage_per_condition_and_compare_reads_them_all() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert tuple(stages["train_recognizer"]["foreach"]) == CONDITIONS
    assert set(load_params(ROOT / "params.yaml").recognition.conditions) <= set(CONDITIONS)
    outcomes = [o for o in STAGES["train_recognizer"]["outs"] if str(o).startswith(f"{paths.OUTCOMES}/")]
    assert outcomes == [f"{paths.OUTCOMES}/${{key}}.parquet"] and str(paths.OUTCOMES) in STAGES["compare"]["deps"]
    assert [str(paths.RECOGNITION_PLOT)] == [next(iter(p)) for p in STAGES["compare"]["plots"]]


def _outputs(stage: dict) -> set[str]:
    return {
        next(iter(o)) if isinstance(o, dict) else o
        for kind in ("outs", "metrics", "plots")
        for o in stage.get(kind, [])
    }


def test_dvc_yaml_declares_the_paths_the_code_writes() -> None:
    """facegen/paths.py (and params.yaml's paths) and dvc.yaml's outputs name the same files."""
    declared = {name: _outputs(stage) for name, stage in STAGES.items()}
    params = load_params(ROOT / "params.yaml")
    expected = {
        "prepare": {params.prepare.out, paths.PREPARE_METRICS},
        "train_gan": {params.gan.out, paths.TRAIN_GAN_METRICS, paths.TRAIN_GAN_CONFIG},
        "evaluate_gan": {
            params.evaluate.classifier_out,
            paths.GAN_METRICS,
            *(paths.GAN_PLOTS / f for f in ("control_accuracy.csv", "classifier_training.csv", paths.CONTROL_SAMPLES)),
        },
        "generate": {params.generate.out, paths.GENERATE_METRICS},
        "pretrain_backbone": {paths.BACKBONE, paths.BACKBONE_TRAINING, paths.PRETRAIN_METRICS, paths.PRETRAIN_CURVE},
        "train_recognizer": {paths.OUTCOMES / "${key}.parquet", paths.RECOGNITION_METRICS / "${key}.json"},
        "compare": {paths.RECOGNITION_SUMMARY, paths.RECOGNITION_TABLE, paths.RECOGNITION_PLOT},
        "report": {params.report.out.parent},
    }
    assert declared == {name: {str(p) for p in files} for name, files in expected.items()}
    assert (params.prepare.out, params.gan.out, params.generate.out, params.report.out) == (
        paths.PREPARED,
        paths.GAN_OUT,
        paths.SYNTHETIC,
        paths.REPORT,
    )  # the config's defaults are the study's
    assert params.generate.checkpoint == params.gan.out / paths.GAN_CHECKPOINT_NAME


def test_the_faces64_study_declares_the_paths_its_stages_write() -> None:
    from recognition.models.distill import no_margin_path
    from recognition.models.teacher import cache_folder

    study = "studies/faces64"
    declared = {name: _outputs(stage) for name, stage in read_stages(dvc_file=f"{study}/dvc.yaml").items()}
    params = load_params(ROOT / study / "params.yaml")
    rec = params.recognition
    celeba = load_params(ROOT / study / "celeba.yaml")  # the second source, stage prepare_celeba
    celeba_metrics = stage_option(read_stages(dvc_file=f"{study}/dvc.yaml")["prepare_celeba"], "--metrics")
    assert celeba.prepare.out in rec.distill.extra_prepared
    expected = {
        "prepare": {params.prepare.out, paths.PREPARE_METRICS},
        "prepare_celeba": {celeba.prepare.out, celeba_metrics},
        "teacher_embeddings": {rec.teacher.embeddings, f"{rec.teacher.embeddings}_cache", paths.TEACHER_METRICS},
        "distill_backbone": {
            rec.distill.out,
            no_margin_path(rec.distill.out),
            paths.DISTILL_TRAINING,
            paths.DISTILL_METRICS,
            paths.DISTILL_CURVE,
        },
        "pretrain_backbone": {paths.BACKBONE, paths.BACKBONE_TRAINING, paths.PRETRAIN_METRICS, paths.PRETRAIN_CURVE},
        "compare_backbones": {paths.BACKBONES_SUMMARY, paths.BACKBONES_TABLE, paths.BACKBONES_PLOT},
        "train_gan": {params.gan.out, paths.TRAIN_GAN_METRICS, paths.TRAIN_GAN_CONFIG},
        "augment_faces": {
            params.augmentation.out,
            cache_folder(params.augmentation.out),
            paths.AUGMENT_FACES_METRICS,
            paths.AUGMENT_FACES_GRID,
        },
        "augmentation": {
            paths.AUGMENTATION_OUTCOMES,
            paths.AUGMENT_WORK,
            paths.AUGMENTATION_SUMMARY,
            paths.AUGMENTATION_TABLE,
            paths.AUGMENTATION_PLOT,
        },
        "report": {params.report.out},
    }
    assert declared == {name: {str(p) for p in files} for name, files in expected.items()}
    assert (rec.teacher.embeddings, rec.distill.out) == (paths.TEACHER_EMBEDDINGS, paths.DISTILLED)


def test_the_ownphotos_study_declares_the_paths_its_stages_write_and_reads_faces64s() -> None:
    study = "studies/ownphotos"
    stages = read_stages(dvc_file=f"{study}/dvc.yaml")
    params = load_params(ROOT / study / "params.yaml")
    rec, faces64 = params.recognition, load_params(ROOT / "studies/faces64/params.yaml")
    expected = {
        "photo_folder": {params.photo_folder.out, params.photo_folder.people_csv},
        "prepare": {params.prepare.out, paths.PREPARE_METRICS},
        "teacher_embeddings": {rec.teacher.embeddings, f"{rec.teacher.embeddings}_cache", paths.TEACHER_METRICS},
        "compare_backbones": {paths.BACKBONES_SUMMARY, paths.BACKBONES_TABLE, paths.BACKBONES_PLOT},
    }
    assert {name: _outputs(stage) for name, stage in stages.items()} == {
        name: {str(p) for p in files} for name, files in expected.items()
    }
    assert params.data.folder.root == params.photo_folder.out  # the user's path over the folder it made
    # the recognizers it scores are the faces64 study's, and that study leaves its people out
    study_root = Path("studies/ownphotos")
    assert os.path.normpath(study_root / rec.distill.out) == os.path.normpath(
        Path("studies/faces64") / faces64.recognition.distill.out
    )
    assert os.path.normpath(study_root / rec.trained_here) == os.path.normpath(Path("studies/faces64") / paths.BACKBONE)
    assert rec.distill.margin_epochs == faces64.recognition.distill.margin_epochs
    people = [os.path.normpath(Path("studies/faces64") / p) for p in faces64.recognition.distill.exclude_people]
    assert os.path.normpath(study_root / params.photo_folder.people_csv) in people
    deps = set(stages["compare_backbones"]["deps"])
    for model in (rec.distill.out, rec.trained_here):
        assert os.path.normpath(study_root / model) in deps
