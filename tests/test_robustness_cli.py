"""Every `facegen` error is one clear line (issue 22): bad params files and --set values, files that are not
project checkpoints (refused without advice to unpickle them), locked outputs; --debug shows the traceback."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facegen.config import ParamsError, load_params
from facegen.gan.inference import FaceModel
from facegen.weights import CheckpointError, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# the `facegen` command of this checkout (the venv's script may belong to another checkout of the project)
FACEGEN = [sys.executable, "-c", "import sys; sys.argv[0] = 'facegen'; from pipelines.cli import run; run()"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _one_line_error(*args: str, cwd: Path) -> str:
    """Run `facegen ARGS`; it must fail with exit code 2 and one line on stderr, which is returned."""
    result = subprocess.run([*FACEGEN, *args], capture_output=True, text=True, cwd=cwd, env=ENV)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("INFO", "WARNING"))]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_params_that_are_not_a_mapping_or_a_set_path_through_a_value_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- data\n- prepare\n")
    line = _one_line_error("data", "acquire", "--params", "list.yaml", cwd=tmp_path)
    assert line == "error: list.yaml: expected a mapping of parameter groups (data:, prepare:, ...), got a YAML list"
    line = _one_line_error(
        "data", "acquire", "--params", str(REPO / "params.yaml"), "--set", "data.source.x=1", cwd=tmp_path
    )
    assert line == "error: --set data.source.x: data.source is a value ('demo'), not a group of parameters"


def test_a_python_tag_in_set_is_refused_in_one_line_and_never_run(tmp_path: Path) -> None:
    value = f'data.image_size=!!python/object/apply:os.system ["touch {tmp_path / "ran"}"]'
    line = _one_line_error("data", "acquire", "--params", str(REPO / "params.yaml"), "--set", value, cwd=tmp_path)
    assert line.startswith(f"error: --set {value}: not a plain YAML value (could not determine a constructor")
    assert not (tmp_path / "ran").exists()


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_that_is_not_a_checkpoint_is_named_without_advice_to_unpickle_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not weights")
    line = _one_line_error("sample", "-c", "notes.txt", "-n", "1", cwd=tmp_path)
    assert (
        line == "error: notes.txt: not a facegen generator checkpoint (train_gan): not a torch file (UnpicklingError)"
    )
    torch.save({"config": _Exploit(tmp_path / "ran")}, tmp_path / "exploit.pt")  # runs code when unpickled
    with pytest.raises(
        CheckpointError,
        match=r"exploit.pt: not a facegen generator checkpoint \(train_gan\): it holds "
        r"Python objects \(getattr\), which are never unpickled",
    ) as error:
        FaceModel.load(tmp_path / "exploit.pt")
    assert "weights_only" not in str(error.value) and not (tmp_path / "ran").exists()
    (tmp_path / "pickled.pt").write_bytes(pickle.dumps(_Exploit(tmp_path / "ran")))  # a bare pickle, not torch's zip
    with pytest.raises(CheckpointError, match="pickled.pt: not a facegen backbone checkpoint"):
        load_checkpoint(tmp_path / "pickled.pt", "facegen backbone checkpoint", ("backbone",))
    assert not (tmp_path / "ran").exists()
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match=r"list.pt: not a facegen attribute classifier .*: no 'attributes' entry"):
        from facegen.metrics.attribute_classifier import AttributeClassifier

        AttributeClassifier.load(tmp_path / "list.pt")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- data\n")
    result = subprocess.run(
        [*FACEGEN, "--debug", "data", "acquire", "--params", "list.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=ENV,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "ParamsError" in result.stderr


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("- a\n", {}, "expected a mapping of parameter groups"),
        ("42\n", {}, "got a YAML int"),
        ("data: [\n", {}, "not valid YAML"),  # held before
        ("data:\n  colour: red\n", {}, r"data.colour: Extra inputs are not permitted"),  # held before
        ("", {"data.image_size.x": 1}, r"--set data.image_size.x: data.image_size is a value \(32\), not a group"),
        ("", {"data..x": 1}, "--set data..x: empty name in the parameter path"),
        ("", {"gan.steps": -1}, r"gan.steps: Input should be greater than 0"),  # held before
    ],
)
def test_bad_params_are_errors_naming_the_parameter(tmp_path: Path, text: str, overrides: dict, message: str) -> None:
    (tmp_path / "params.yaml").write_text(text or (REPO / "params.yaml").read_text())
    with pytest.raises(ParamsError, match=message):
        load_params(tmp_path / "params.yaml", overrides)
