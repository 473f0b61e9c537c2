"""Benchmarks (results in docs/BENCHMARKS.md). They, and the tests, read the real data in ``SHARED``."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("FACEGEN_SHARED", Path(__file__).resolve().parents[2] / "shared"))  # ../shared by default
