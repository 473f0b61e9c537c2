"""Do dvc.yaml's stages declare, as deps, every project file their command imports?

A stage's code is what ``python -m <module>`` in its ``cmd`` imports, transitively (:mod:`tests.support.imports`);
a dep covers a file when it names the file or a folder above it. ``python -m tests.support.stage_deps`` prints,
per stage, the shortest deps list that covers its code (a folder when the stage imports all of its files).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.support.imports import PACKAGES, ROOT, closure, module_file

CODE_ROOTS = ("facegen", "recognition", "pipelines")  # what a stage may import (never bench/ or tests/)
DVC_FILES = ("dvc.yaml", "studies/faces64/dvc.yaml", "studies/celeba64/dvc.yaml", "studies/ownphotos/dvc.yaml")


def read_stages(root: Path = ROOT, dvc_file: str = "dvc.yaml") -> dict[str, dict]:
    """The stages of ``dvc_file``, each as its body (a foreach stage's ``do``), with its deps given relative to
    ``root`` (a dvc.yaml in a subfolder names them relative to itself, through its ``vars``)."""
    document = yaml.safe_load((root / dvc_file).read_text())
    variables = {k: v for entry in document.get("vars", []) for k, v in entry.items()}
    folder = Path(dvc_file).parent

    stages = {}
    for name, stage in document["stages"].items():
        body = dict(stage.get("do", stage))
        body["deps"] = [_substitute(d, variables, folder) if isinstance(d, str) else d for d in body.get("deps", [])]
        stages[name] = body
    return stages


def _substitute(dep: str, variables: Mapping[str, str], folder: Path) -> str:
    """``dep`` with the dvc.yaml's ``vars`` filled in, relative to the project root."""
    for key, value in variables.items():
        dep = dep.replace("${" + key + "}", str(value))
    return dep if folder == Path(".") or "$" in dep else os.path.normpath(folder / dep)


def stage_module(stage: Mapping) -> str:
    """The module that the stage's cmd runs with ``python -m``."""
    match = re.search(r"python -m ([\w.]+)", stage["cmd"])
    if match is None:
        raise ValueError(f"cmd {stage['cmd']!r} does not run `python -m <module>`")
    return match.group(1)


def stage_option(stage: Mapping, option: str) -> str:
    """The value of ``--option VALUE`` in the stage's cmd."""
    match = re.search(rf"{re.escape(option)} (\S+)", stage["cmd"])
    if match is None:
        raise ValueError(f"cmd {stage['cmd']!r} has no {option}")
    return match.group(1)


def stage_code(stage: Mapping, root: Path = ROOT) -> set[Path]:
    """The project files ``python -m <module>`` of the stage's cmd runs: the module, its packages, their imports."""
    parts = stage_module(stage).split(".")
    files = set()
    for i in range(1, len(parts) + 1):
        start = module_file(".".join(parts[:i]), root)
        if start is None:
            raise ValueError(f"cmd {stage['cmd']!r}: no module {'.'.join(parts[:i])} under {root}")
        files |= closure(start, root)
    return files


def code_deps(stage: Mapping) -> list[str]:
    """The deps that name project code (files or folders of the importable packages)."""
    return [d for d in stage.get("deps", []) if isinstance(d, str) and d.split("/")[0] in PACKAGES]


def undeclared(stage: Mapping, root: Path = ROOT) -> list[str]:
    """The stage's code files (relative paths) that none of its deps covers."""
    deps = [d.rstrip("/") for d in code_deps(stage)]
    files = sorted(str(f.relative_to(root.absolute())) for f in stage_code(stage, root))
    return [f for f in files if not any(f == d or f.startswith(d + "/") for d in deps)]


def shortest_deps(files: set[Path], root: Path = ROOT) -> list[str]:
    """Paths covering exactly ``files``: a folder when every .py file below it is in ``files``."""
    root = root.absolute()
    chosen: list[str] = []
    for path in sorted(files):
        relative = path.relative_to(root)
        folder = next(
            (p for p in reversed(relative.parents[:-1]) if all(f in files for f in (root / p).rglob("*.py"))), None
        )
        entry = str(folder if folder is not None else relative)
        if entry not in chosen and not any(entry.startswith(c + "/") for c in chosen):
            chosen.append(entry)
    return chosen


def main() -> None:
    for dvc_file in DVC_FILES:
        print(f"# {dvc_file}")
        for name, stage in read_stages(dvc_file=dvc_file).items():
            print(f"{name}:\n" + "".join(f"  - {d}\n" for d in shortest_deps(stage_code(stage))))


if __name__ == "__main__":
    main()
