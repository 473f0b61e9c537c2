"""What `pip install .` promises: every runtime need is declared in pyproject.toml and installs by the normal
resolver (no --no-deps step), and the teacher's weights come inside a package."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]


def declared() -> dict[str, Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {Requirement(r).name: Requirement(r) for r in project["dependencies"]}


def test_recognizer_packages_are_declared_and_installed_as_declared() -> None:
    requirements = declared()
    for name in ("facenet-pytorch", "dlib-bin", "face-recognition-models", "pytorch-metric-learning", "scikit-learn"):
        assert name in requirements, f"{name} is imported by recognition/ but not declared in pyproject.toml"
        assert requirements[name].specifier.contains(metadata.version(name)), name


def test_every_installed_requirement_is_met_so_no_no_deps_step_is_needed() -> None:
    # facenet-pytorch 2.6.0 pinned torch<2.3 and numpy<2: installed beside torch 2.14 only with --no-deps, and
    # `pip check` then fails. The declared 2.5.3 (the same code) states its real needs.
    facenet = [Requirement(r) for r in metadata.requires("facenet-pytorch") or []]
    for requirement in facenet:
        assert requirement.specifier.contains(metadata.version(requirement.name), prereleases=True), requirement
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_makefile_installs_through_pyproject_only() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "--no-deps" not in makefile and 'pip install -q -e ".[dev]"' in makefile
