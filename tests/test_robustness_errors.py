"""Every error names its file or parameter, in one line (issue 31): a stage's user error ends as one line
`error: <message>` and exit code 2, without Prefect's traceback (FACEGEN_DEBUG=1 keeps it), also under
`dvc repro`; truncated JSON, object arrays, checkpoints whose weights do not fit their config and manifests
without a column are named; GAN training warns of an attribute no face has. Real files throughout."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from facegen.config import AugmentationConfig
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel
from facegen.gan.training_loop import training_tensors
from facegen.synthetic.reader import load_manifest
from facegen.weights import CheckpointError
from pipelines import one_line
from pipelines.augment_faces import second_editor
from pipelines.prefect_server import prefect_server
from tests.support.scratch import run_in, scratch_copy
from tests.support.synthetic import prepare_demo, tiny_checkpoint

REPO = Path(__file__).resolve().parents[1]
# the `facegen` command of this checkout (the venv's script may belong to another checkout of the project)
FACEGEN = [sys.executable, "-c", "import sys; sys.argv[0] = 'facegen'; from pipelines.cli import run; run()"]


def _error_lines(stderr: str) -> list[str]:
    """What a run printed on stderr besides logs (Prefect's, with a time and level, and dvc's own)."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and " | " not in line and not line.startswith(("INFO", "WARNING", "ERROR:", "Running"))
    ]


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """One Prefect server for this module's stage runs (as `make demo` gives dvc repro's)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with prefect_server(env) as url:
        yield {**env, "PREFECT_API_URL": url, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_a_stage_with_an_unknown_parameter_ends_in_one_line_and_debug_shows_the_traceback(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    (tmp_path / "bad.yaml").write_text("data:\n  colour: red\n")
    stage = [sys.executable, "-m", "pipelines.prepare", "--params", "bad.yaml"]
    result = subprocess.run(stage, cwd=tmp_path, env=server_env, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert _error_lines(result.stderr) == ["error: bad.yaml: data.colour: Extra inputs are not permitted (got 'red')"]
    debug = subprocess.run(
        stage, cwd=tmp_path, env={**server_env, "FACEGEN_DEBUG": "1"}, capture_output=True, text=True
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ParamsError" in debug.stderr


@pytest.mark.slow
def test_a_bad_parameter_under_dvc_repro_is_one_line(tmp_path: Path, server_env: dict[str, str], monkeypatch) -> None:
    work = scratch_copy({"data.image_size": 48}, into=tmp_path)
    for name, value in server_env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(RuntimeError) as failed:
        run_in(work, "dvc", "repro", "prepare")
    message = str(failed.value)
    assert "Traceback" not in message and "python -m pipelines.prepare, exited with 2" in message
    assert message.count("error: params.yaml: data.image_size: Input should be 32, 64 or 128") == 1, message


def test_one_line_joins_a_message_and_names_an_empty_one() -> None:
    assert one_line(ValueError("a.json:\n  not\tvalid ")) == "a.json: not valid"
    assert one_line(KeyError()) == "KeyError"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return prepare_demo(tmp_path_factory.mktemp("demo"))


def _copy(prepared: Path, to: Path) -> Path:
    to.mkdir()
    for file in prepared.iterdir():
        (to / file.name).write_bytes(file.read_bytes())
    return to


def test_a_truncated_meta_json_is_named(prepared: Path, tmp_path: Path) -> None:
    cache = _copy(prepared, tmp_path / "prepared")
    meta = (cache / "meta.json").read_text()
    (cache / "meta.json").write_text(meta[: len(meta) // 2])  # a disk that filled up, a copy cut short
    with pytest.raises(ValueError, match=rf"^{cache / 'meta.json'}: not valid JSON \(.*line \d+ column \d+\)"):
        PreparedFaces(cache)
    (cache / "meta.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match=r"meta.json: not valid JSON \(not UTF-8 text\)"):
        PreparedFaces(cache)


def test_an_object_array_is_refused_naming_the_file(prepared: Path, tmp_path: Path) -> None:
    cache = _copy(prepared, tmp_path / "prepared")
    n = len(np.load(prepared / "images.npy", mmap_mode="r"))
    np.save(cache / "images.npy", np.array([{"not": "pixels"}] * n, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=rf"^{cache / 'images.npy'}: not an array facegen wrote \("):
        PreparedFaces(cache)
    (cache / "images.npy").write_bytes((prepared / "images.npy").read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match=r"images.npy: not an array facegen wrote"):
        PreparedFaces(cache)


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_line(prepared: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(prepared, tmp_path / "gan")
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["base_channels"] *= 2  # the config edited, or weights of another version
    torch.save(state, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match=r"edited.pt: its G_ema weights do not match its config \(size mismatch"):
        FaceModel.load(tmp_path / "edited.pt")
    result = subprocess.run(
        [*FACEGEN, "sample", "-c", "edited.pt", "-n", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("INFO", "WARN"))]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: edited.pt: its G_ema weights do not match its config (size mismatch for ")


def test_other_editors_missing_unknown_or_unfit_for_the_study_are_named(prepared: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(prepared, tmp_path / "gan")  # 32 px faces; Male, Eyeglasses, Smiling

    def settings(path: Path, attribute: str = "Eyeglasses") -> AugmentationConfig:
        return AugmentationConfig(primary_attribute=attribute, second_editor={"name": "other", "checkpoint": path})

    assert second_editor(settings(checkpoint), 32).resolution == 32
    with pytest.raises(FileNotFoundError, match=r"augmentation.second_editor.checkpoint .*none.pt does not exist"):
        second_editor(settings(tmp_path / "none.pt"), 32)
    with pytest.raises(ValueError, match=r"edits 32 px faces .*; this study needs 64 px and Eyeglasses"):
        second_editor(settings(checkpoint), 64)
    with pytest.raises(ValueError, match=r"this study needs 32 px and Young"):
        second_editor(settings(checkpoint, "Young"), 32)
    with pytest.raises(ValueError, match="second_editor.name"):
        AugmentationConfig.model_validate({"second_editor": {"name": "Celeba 64", "checkpoint": "x.pt"}})
    with pytest.raises(ValueError, match="second_editor.name: 'own' names the study's own editor"):
        AugmentationConfig(second_editor={"name": "own", "checkpoint": "x.pt"})
    for confined in (["other"], ["own", "own"]):  # no second editor named other; each editor once
        with pytest.raises(ValueError, match=r"augmentation.confined=.*each editor once, of own \(own:"):
            AugmentationConfig(confined=confined)
    assert AugmentationConfig(confined=["own", "other"], second_editor={"name": "other", "checkpoint": "x.pt"})


def test_a_manifest_without_a_column_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"file": ["images/0.png"], "Male": [1], "mode": ["sample"]}).to_parquet(tmp_path / "manifest.parquet")
    with pytest.raises(ValueError, match=r"manifest.parquet: no 'identity' column; a synthetic data set's manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.parquet").write_text("file,mode\n")  # a CSV under the parquet name
    with pytest.raises(ValueError, match=r"manifest.parquet: not a manifest table \("):
        load_manifest(tmp_path)


def test_training_on_an_attribute_no_face_has_warns(prepared: Path, caplog) -> None:
    meta = json.loads((prepared / "meta.json").read_text())
    assert meta["images_written"] > 0
    with caplog.at_level(logging.WARNING, logger="facegen.gan.training_loop"):
        _, values = training_tensors(prepared, ("Male", "Wearing_Necktie"), "all")  # the demo draws no neckties
    assert values[:, 1].sum() == 0 and 0 < values[:, 0].mean() < 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{prepared}: gan.attributes Wearing_Necktie: none of the {len(values)} training faces has it; "
        "the GAN cannot learn it"
    ]


# --- found by the hostile probe of issue 31: every bad input named in one line, read at bounded cost --------------


def test_a_params_file_that_is_not_text_too_deep_too_large_or_no_file_is_named(tmp_path: Path) -> None:
    from facegen.config import MAX_PARAMS_BYTES, ParamsError, load_params

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"data:\n  source: demo\n# caf\xe9\n" + b"#" * 100_000)
    deep = tmp_path / "deep.yaml"
    deep.write_text("gan:\n  attributes: " + "[" * 100_000 + "]" * 100_000 + "\n")
    large = tmp_path / "large.yaml"
    with open(large, "wb") as f:  # sparse: no disk used
        f.truncate(MAX_PARAMS_BYTES + 1)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    cases = {latin1: "not UTF-8 text", deep: "nested too deeply", large: "more than the", fifo: "not a regular file"}
    for path, why in cases.items():
        with pytest.raises(ParamsError) as err:
            load_params(path)
        message = str(err.value)
        assert message.startswith(f"{path}: ") and why in message and len(message) < 500, message


def test_a_boolean_is_no_number_in_params() -> None:
    from facegen.config import ParamsError, load_params

    with pytest.raises(ParamsError, match="data.demo.identities: .*expected a number, got a boolean"):
        load_params(Path(__file__).parents[1] / "params.yaml", {"data.demo.identities": True})


def test_a_prepared_cache_without_a_column_and_a_data_set_with_a_foreign_meta_are_named(tmp_path: Path) -> None:
    from facegen.synthetic.writer import DatasetJob, is_complete

    prepared = prepare_demo(tmp_path / "prepared")
    table = pd.read_parquet(prepared / "annotations.parquet").drop(columns="identity")
    table.to_parquet(prepared / "annotations.parquet", index=False)
    with pytest.raises(ValueError, match=r"annotations.parquet: no 'identity' column"):
        PreparedFaces(prepared)
    (tmp_path / "sets" / "balanced").mkdir(parents=True)
    (tmp_path / "sets" / "balanced" / "meta.json").write_text("[1, 2, 3]")
    job = DatasetJob("balanced", tmp_path / "sets", pd.DataFrame(), (), {"params_sha256": "x"}, 8, 1)
    assert not is_complete(job)  # not ours, so not complete (the writer then refuses to replace it)


def test_a_photo_pillow_cannot_read_is_named_without_its_buffer() -> None:
    from facegen.data.images import CorruptImageError, decode_image

    with pytest.raises(CorruptImageError) as err:
        decode_image("class/notes.jpg", b"this is text, not a photo")
    assert str(err.value) == "class/notes.jpg: cannot decode image (cannot identify image file)"


def test_an_attributes_csv_that_is_a_fifo_or_too_large_is_refused_unread(tmp_path: Path) -> None:
    from facegen.data.annotations import AnnotationError
    from facegen.data.attribute_csv import MAX_CSV_BYTES, read_attribute_csv

    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    with pytest.raises(AnnotationError, match=r"labels.csv: not a regular file \(data.folder.attributes_csv\)"):
        read_attribute_csv(fifo)
    large = tmp_path / "huge.csv"
    with open(large, "wb") as f:
        f.truncate(MAX_CSV_BYTES + 1)
    with pytest.raises(AnnotationError, match="huge.csv: .* bytes, more than the"):
        read_attribute_csv(large)


def test_acquiring_retries_the_network_not_a_refusal() -> None:
    """A refused output or bad input fails at once; a dropped connection is retried (pipelines/prepare.py)."""
    from prefect.states import Failed

    from facegen.io import UnsafeOutputError
    from pipelines.prepare import _may_pass

    assert not _may_pass(None, None, Failed(data=UnsafeOutputError("data/raw/demo is not a folder of ...")))
    assert not _may_pass(None, None, Failed(data=FileNotFoundError("no such folder")))
    assert _may_pass(None, None, Failed(data=ConnectionError("connection reset")))
