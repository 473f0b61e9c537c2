"""Where the real data the tests and benchmarks read lives: ../shared beside the checkout, or $FACEGEN_SHARED."""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("FACEGEN_SHARED", Path(__file__).resolve().parents[3] / "shared"))
