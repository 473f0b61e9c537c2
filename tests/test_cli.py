"""The `facegen` command line: real commands on real data; user errors are one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.faces import copy_people

FACEGEN = str(Path(sys.executable).parent / "facegen")


def _facegen(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FACEGEN, *args], capture_output=True, text=True, cwd=cwd)


def test_info_summarises_a_folder_dataset(shared_faces64: Path) -> None:
    result = _facegen("data", "info", str(shared_faces64))
    assert result.returncode == 0, result.stderr
    assert "27600 images of 1289 identities" in result.stdout


def test_prepare_then_info_on_the_cache(tmp_path: Path, shared_faces64: Path) -> None:
    people = copy_people(shared_faces64, tmp_path / "people", n_people=2, per_person=3)
    repo = Path(__file__).resolve().parents[1]
    result = _facegen(
        "data",
        "prepare",
        "--params",
        str(repo / "params.yaml"),
        "--set",
        "data.source=folder",
        "--set",
        f"data.folder.root={people}",
        "--set",
        "data.folder.celeba_root=null",
        "--set",
        "data.image_size=32",
        "--set",
        f"prepare.out={tmp_path / 'cache'}",
        "--set",
        "prepare.workers=0",
    )
    assert result.returncode == 0, result.stderr
    assert "6 of 6 faces written" in result.stdout
    assert "6 images of 2 identities" in _facegen("data", "info", str(tmp_path / "cache")).stdout


def test_user_errors_are_one_line(tmp_path: Path, shared_celeba: Path) -> None:
    missing = _facegen("data", "info", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.strip().endswith(
        "no such folder (expected <root>/<person>/<photo>.jpg)"
    )
    assert "Traceback" not in missing.stderr
    bad_attr = _facegen("data", "info", str(shared_celeba), "--attr", "Glasses")
    assert bad_attr.returncode == 2 and "unknown attribute(s) ['Glasses']; valid names are:" in bad_attr.stderr
    (tmp_path / "params.yaml").write_text("data:\n  image_size: 48\n")
    bad_param = _facegen("data", "acquire", "--params", str(tmp_path / "params.yaml"))
    assert bad_param.returncode == 2 and "data.image_size: Input should be 32, 64 or 128" in bad_param.stderr
