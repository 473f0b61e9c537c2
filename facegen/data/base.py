"""The common shape of every face dataset: an annotations table plus a way to load one image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from facegen.data.annotations import LANDMARK_COLUMNS, SPLIT_NAMES, select_attributes

ANNOTATION_KEYS = ("image_id", "identity", "split")


class FaceDataset(Dataset):
    """Rows of an annotations DataFrame (image_id, identity, split, one 0/1 column per attribute;
    columns starting with "_" are private bookkeeping).
    ``missing_images`` / ``unannotated_images`` count annotation rows without a photo and the reverse;
    ``skipped_files`` lists files of the source that are no usable photos, as (path, reason).

    ``dataset[i]`` is ``(image, attributes, identity)``: the (transformed) PIL image, a float tensor of the
    chosen attributes in the order asked for, and the person's index into ``identity_names``.
    """

    missing_images: int = 0
    unannotated_images: int = 0
    skipped_files: Sequence[tuple[str, str]] = ()

    def __init__(
        self,
        annotations: pd.DataFrame,
        *,
        attributes: Sequence[str] | None = None,
        split: str = "all",
        min_images_per_identity: int = 1,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        available = tuple(c for c in annotations.columns if c not in ANNOTATION_KEYS and not c.startswith("_"))
        self.attribute_names = select_attributes(list(available if attributes is None else attributes), available)
        if split != "all" and split not in SPLIT_NAMES:
            raise ValueError(f"split must be 'all' or one of {SPLIT_NAMES}, got {split!r}")
        if min_images_per_identity < 1:
            raise ValueError(f"min_images_per_identity must be >= 1, got {min_images_per_identity}")
        rows = annotations if split == "all" else annotations[annotations["split"] == split]
        if min_images_per_identity > 1:
            counts = rows["identity"].map(rows["identity"].value_counts())
            rows = rows[counts >= min_images_per_identity]
        self._annotations = rows.reset_index(drop=True)
        self.identity_names: list[str] = sorted(self._annotations["identity"].unique(), key=_natural)
        index = {name: i for i, name in enumerate(self.identity_names)}
        self._identity_index = torch.tensor(self._annotations["identity"].map(index).to_numpy(dtype=np.int64))
        self._targets = torch.tensor(self._annotations[self.attribute_names].to_numpy(dtype=np.float32))
        self.transform = transform

    @property
    def annotations(self) -> pd.DataFrame:
        """image_id, identity, split and every attribute column of the selected rows."""
        return self._annotations

    def __len__(self) -> int:
        return len(self._annotations)

    def __getitem__(self, i: int) -> tuple[Any, torch.Tensor, int]:
        image = self.load_image(i)
        if self.transform is not None:
            image = self.transform(image)
        return image, self._targets[i], int(self._identity_index[i])

    def load_image(self, i: int) -> Image.Image:
        """The i-th image as RGB; subclasses read it from their storage."""
        raise NotImplementedError

    def landmarks(self, i: int) -> np.ndarray | None:
        """The i-th image's five landmarks (5 x 2, x then y) when the source lists them, else None."""
        if LANDMARK_COLUMNS[0] not in self._annotations:
            return None
        row = self._annotations.loc[i, list(LANDMARK_COLUMNS)].to_numpy(np.float64)
        return None if np.isnan(row).any() else row.reshape(5, 2)


def _natural(name: str) -> tuple[int, int | str]:
    """Sort numeric identity labels numerically and others alphabetically."""
    return (0, int(name)) if name.isdigit() else (1, name)
