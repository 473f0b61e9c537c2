"""The project's own import graph, read from the source with `ast` (nothing is imported or run).

A file's imports are the project modules its import statements name (at any depth: lazy imports inside
functions count too), resolved to files; importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("facegen", "recognition", "pipelines", "bench", "tests")


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of a project module (``a.b`` -> a/b.py or a/b/__init__.py), or None."""
    if module.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    """``a/b/c.py`` -> ``a.b.c``; ``a/b/__init__.py`` -> ``a.b``."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """The project modules that ``path``'s import statements name (``from a import b``: ``a.b`` when that is a
    module, else ``a``)."""
    return set(_imported_modules(path.absolute(), root.absolute()))


@cache
def _imported_modules(path: Path, root: Path) -> tuple[str, ...]:
    package = module_name(path, root) if path.name == "__init__.py" else module_name(path, root).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if module_file(child, root) else base)
    return tuple(sorted(m for m in found if module_file(m, root)))


def imported_files(path: Path, root: Path = ROOT) -> set[Path]:
    """The project files that importing ``path``'s imports runs directly (modules and their packages' __init__)."""
    files = set()
    for module in imported_modules(path, root):
        parts = module.split(".")
        files.update(f for f in (module_file(".".join(parts[:i]), root) for i in range(1, len(parts) + 1)) if f)
    return files


def closure(start: Path, root: Path = ROOT) -> set[Path]:
    """Every project file that running ``start`` can import, transitively (``start`` included)."""
    seen, todo = set(), [start.absolute()]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path, root.absolute()))
    return seen
