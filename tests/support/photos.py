"""Small photo folders drawn by the tests themselves (seconds, no real data needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_people(root: Path, n_people: int = 2, per_person: int = 3, size: int = 24) -> Path:
    """``root/person_<k>/<j>.jpg``: noise photos of ``size`` px, different in every file."""
    rng = np.random.default_rng(0)
    for k in range(n_people):
        folder = root / f"person_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_person):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{j}.jpg")
    return root
