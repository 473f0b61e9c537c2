"""The compact cache that ``prepare`` writes and every later stage reads.

Layout of ``data/prepared/``: ``images.npy`` (N x S x S x 3 uint8, memory-mapped), ``annotations.parquet``
(row i describes image i), ``skipped.csv`` (what was left out and why) and ``meta.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from facegen.data.base import ANNOTATION_KEYS, FaceDataset
from facegen.io import Layout, load_array, read_json

IMAGES_FILE = "images.npy"
ANNOTATIONS_FILE = "annotations.parquet"
SKIPPED_FILE = "skipped.csv"
META_FILE = "meta.json"
LAYOUT = Layout("prepared faces", META_FILE, (IMAGES_FILE, ANNOTATIONS_FILE, SKIPPED_FILE, META_FILE))


class PreparedFaces(FaceDataset):
    """Faces from a ``prepare`` cache; ``images`` gives the whole uint8 array for in-memory training."""

    def __init__(
        self,
        root: Path | str = "data/prepared",
        *,
        split: str = "all",
        attributes: Sequence[str] | None = None,
        min_images_per_identity: int = 1,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.root = Path(root)
        if not (self.root / META_FILE).is_file():
            raise FileNotFoundError(f"{self.root}: no prepared faces here; run `dvc repro prepare` first")
        self.meta = read_json(self.root / META_FILE)
        annotations = pd.read_parquet(self.root / ANNOTATIONS_FILE)
        missing = [c for c in ANNOTATION_KEYS if c not in annotations.columns]  # every source gives all three
        if missing:
            raise ValueError(
                f"{self.root / ANNOTATIONS_FILE}: no {', '.join(map(repr, missing))} column; prepare again"
            )
        annotations["_row"] = np.arange(len(annotations))
        self._all_images = load_array(self.root / IMAGES_FILE, mmap_mode="r")
        if len(self._all_images) != len(annotations):
            raise ValueError(
                f"{self.root}: {IMAGES_FILE} has {len(self._all_images)} images "
                f"but {ANNOTATIONS_FILE} has {len(annotations)} rows"
            )
        super().__init__(
            annotations,
            attributes=attributes,
            split=split,
            min_images_per_identity=min_images_per_identity,
            transform=transform,
        )
        self._rows = self.annotations["_row"].to_numpy()

    @property
    def align(self) -> str:
        """How the faces were cropped: "landmarks" or "box" (caches from before alignment existed: box)."""
        return str(self.meta.get("align", "box"))

    @property
    def images(self) -> np.ndarray:
        """The selected images, N x S x S x 3 uint8 (loaded into memory)."""
        return self._all_images[self._rows]

    def load_image(self, i: int) -> Image.Image:
        return Image.fromarray(np.asarray(self._all_images[self._rows[i]]))
