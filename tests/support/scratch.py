"""A scratch copy of this repository (its tracked files, as a git + DVC repo of its own) for end-to-end runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def scratch_copy(overrides: dict[str, object], into: Path | None = None) -> Path:
    """Copy the tracked files to a new folder and apply dotted params.yaml overrides (e.g. data.source)."""
    work = Path(tempfile.mkdtemp(prefix="facegen-scratch-", dir=into))
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    for name in filter(None, files.split("\0")):
        if not (REPO / name).exists():  # a tracked metric that a running stage has just removed
            continue
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[leaf] = value
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


def run_in(work: Path, *cmd: str) -> subprocess.CompletedProcess:
    """Run a command in `work` with this interpreter's environment (its venv's dvc and python) first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(
            f"{' '.join(cmd)} failed in {work} (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result
