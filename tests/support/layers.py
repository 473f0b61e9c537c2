"""The import rules of docs/ARCHITECTURE.md, checked on the source (:mod:`tests.support.imports`).

Layers, lowest first: a module imports only modules of lower layers or of its own component. Components of one
layer (synthetic, metrics, report) do not import each other; inside recognition, models/ imports nothing else of it,
and attendance/ and augmentation/ not each other. On top of that: no module imports another module's
private (``_name``) objects, sampling code does not import training code, and no stage imports another stage.
Of the tests, bench/ imports only tests/support; test modules share helpers through tests/support only.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.imports import ROOT, imported_modules, module_file

# (component, layer, the paths it is made of: a file, or a folder ending in "/")
COMPONENTS = (
    (
        "core",
        0,
        (
            "facegen/__init__.py",
            "facegen/config.py",
            "facegen/paths.py",
            "facegen/io.py",
            "facegen/cpu_kernels.py",
            "facegen/locks.py",
            "facegen/mapping.py",
            "facegen/processes.py",
            "facegen/weights.py",
        ),
    ),
    ("data", 1, ("facegen/data/",)),
    ("gan", 2, ("facegen/gan/",)),
    ("synthetic", 3, ("facegen/synthetic/", "facegen/datasets.py")),
    ("metrics", 3, ("facegen/metrics/",)),
    ("report", 3, ("facegen/report/",)),
    ("recognition", 4, ("recognition/",)),
    ("pipelines", 5, ("pipelines/",)),
    ("bench", 6, ("bench/",)),  # benchmarks measure everything, the stages and their server included
)
CHECKED = ("facegen", "recognition", "pipelines", "bench")
# Imports forbidden although the layers allow them: (importer, imported, unless), each a file or a folder ending
# in "/". Sampling code does not import training code; recognition/models/ (the recognizers) sits below the rest of
# recognition/, and the attendance product and the augmentation study do not lean on each other.
FORBIDDEN = (
    ("facegen/gan/inference.py", "facegen/gan/training_loop.py", None),
    ("recognition/models/", "recognition/", "recognition/models/"),
    ("recognition/attendance/", "recognition/augmentation/", None),
    ("recognition/augmentation/", "recognition/attendance/", None),
)
STAGES_SHARED = "pipelines/__init__.py"  # what the stage modules share (run_from_command_line)


def component(relative: str) -> tuple[str, int]:
    """(component, layer) of a project file given relative to the root; ValueError when it has none."""
    for name, layer, paths in COMPONENTS:
        if any(relative == p or (p.endswith("/") and relative.startswith(p)) for p in paths):
            return name, layer
    raise ValueError(f"{relative} belongs to no component of tests/support/layers.py (add it to COMPONENTS)")


def violations(root: Path = ROOT, stages: tuple[str, ...] = ()) -> list[str]:
    """Every broken rule under ``root``, one line each; ``stages``: the stage modules' files (relative)."""
    found = []
    for path in sorted(p for package in CHECKED for p in (root / package).rglob("*.py")):
        relative = str(path.relative_to(root))
        name, layer = component(relative)
        for module in sorted(imported_modules(path, root)):
            target = str(module_file(module, root).relative_to(root))
            if target.split("/")[0] == "tests":
                if not (name == "bench" and target.startswith("tests/support/")):
                    found.append(f"{relative} imports the tests' {module}")
                continue
            other, other_layer = component(target)
            if other != name and other_layer >= layer:
                found.append(f"{relative} ({name}, layer {layer}) imports {module} ({other}, layer {other_layer})")
            if forbidden(relative, target):
                found.append(f"{relative} imports {module}")
            if relative in stages and target in stages and target != relative:
                found.append(f"stage {relative} imports stage {module}")
        found += [f"{relative} imports private {name}" for name in private_imports(path)]
    return found


def forbidden(relative: str, target: str) -> bool:
    """Does ``relative`` importing ``target`` cross a line of FORBIDDEN?"""
    return any(
        relative.startswith(importer) and target.startswith(imported) and not (unless and target.startswith(unless))
        for importer, imported, unless in FORBIDDEN
    )


def shared_helper_violations(root: Path = ROOT) -> list[str]:
    """Test modules share helpers through tests/support: they import neither conftest, nor other test modules,
    nor bench/ (but a tests/test_bench_*.py its bench module, which it tests)."""
    found = []
    for path in sorted((root / "tests").rglob("*.py")):
        relative = str(path.relative_to(root))
        for module in sorted(imported_modules(path, root)):
            if module.startswith("tests.") and not module.startswith("tests.support"):
                found.append(f"{relative} imports {module}")
            elif module.split(".")[0] == "bench" and not path.name.startswith("test_bench_"):
                found.append(f"{relative} imports {module}")
    return found


def private_imports(path: Path) -> list[str]:
    """``module._name`` for each ``from module import _name`` in ``path`` (dunders are public)."""
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
