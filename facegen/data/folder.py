"""Folder-per-person photos (``root/<person>/<photo>.jpg``), the way attendance systems collect them.

Attributes come from an optional CSV (``image`` column: a path relative to root or a bare file name;
one 0/1 or -1/1 column per attribute; an optional ``split`` column), or are joined from CelebA's
annotation files on the file name when the photos are CelebA images (``celeba_root``), as in faces64.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from facegen.data.annotations import ATTR_FILE, PARTITION_FILE, AnnotationError, read_attributes, read_partition
from facegen.data.base import FaceDataset
from facegen.data.images import IMAGE_SUFFIXES, decode_image

log = logging.getLogger(__name__)


class FaceFolder(FaceDataset):
    """Photos under ``root/<person>/``; the identity is the folder name, image_id the relative path."""

    def __init__(
        self,
        root: Path | str,
        *,
        attributes_csv: Path | str | None = None,
        celeba_root: Path | str | None = None,
        split: str = "all",
        attributes: Sequence[str] | None = None,
        min_images_per_identity: int = 1,
        strict: bool = False,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder (expected <root>/<person>/<photo>.jpg)")
        frame = _scan(self.root)
        if frame.empty:
            raise FileNotFoundError(f"{self.root}: no photos found in per-person subfolders ({', '.join(IMAGE_SUFFIXES)})")
        self.unannotated_images = 0
        if attributes_csv is not None:
            frame, self.unannotated_images = _join_csv(frame, Path(attributes_csv), strict)
        elif celeba_root is not None:
            frame, self.unannotated_images = _join_celeba(frame, Path(celeba_root), strict)
        if "split" not in frame:
            frame["split"] = "train"
        super().__init__(
            frame.drop(columns="file"),
            attributes=attributes,
            split=split,
            min_images_per_identity=min_images_per_identity,
            transform=transform,
        )

    def load_image(self, i: int) -> Image.Image:
        path = self.root / self.annotations.at[i, "image_id"]
        return decode_image(path, path.read_bytes())


def _scan(root: Path) -> pd.DataFrame:
    rows = [
        (f"{person.name}/{photo.name}", person.name, photo.name)
        for person in sorted(os.scandir(root), key=lambda e: e.name)
        if person.is_dir() and not person.name.startswith(".")
        for photo in sorted(os.scandir(person.path), key=lambda e: e.name)
        if photo.is_file() and photo.name.lower().endswith(IMAGE_SUFFIXES)
    ]
    return pd.DataFrame(rows, columns=["image_id", "identity", "file"])


def _join_csv(frame: pd.DataFrame, csv: Path, strict: bool) -> tuple[pd.DataFrame, int]:
    table = pd.read_csv(csv, dtype={"image": str, "split": str})
    if "image" not in table:
        raise AnnotationError(f"{csv}: needs an 'image' column (path relative to the folder root, or file name)")
    attribute_columns = [c for c in table.columns if c not in ("image", "split")]
    for column in attribute_columns:
        bad = ~pd.to_numeric(table[column], errors="coerce").isin([0, 1, -1])
        if bad.any():
            row = int(bad.idxmax())
            raise AnnotationError(
                f"{csv}: row {row + 2} column {column!r}: values must be 0/1 or -1/1, got {table.at[row, column]!r}"
            )
        table[column] = (pd.to_numeric(table[column]) > 0).astype("int8")
    key = "image_id" if table["image"].str.contains("/").any() else "file"
    return _join(frame, table.rename(columns={"image": key}).set_index(key), key, csv, strict)


def _join_celeba(frame: pd.DataFrame, celeba_root: Path, strict: bool) -> tuple[pd.DataFrame, int]:
    table = read_attributes(celeba_root / ATTR_FILE)
    if (celeba_root / PARTITION_FILE).is_file():
        table = table.join(read_partition(celeba_root / PARTITION_FILE))
    return _join(frame, table, "file", celeba_root / ATTR_FILE, strict)


def _join(frame: pd.DataFrame, table: pd.DataFrame, key: str, source: Path, strict: bool) -> tuple[pd.DataFrame, int]:
    """Left-join annotations on `key`; photos without a row are dropped and counted (an error if strict)."""
    joined = frame.join(table, on=key, how="left")
    columns = list(table.columns)
    unannotated = joined[columns].isna().any(axis=1) if columns else pd.Series(False, index=joined.index)
    if unannotated.any():
        example = joined.loc[unannotated, "image_id"].iloc[0]
        if strict:
            raise AnnotationError(f"{source}: {int(unannotated.sum())} photos have no row, e.g. {example!r} (strict mode)")
        log.warning("%s: %d photos have no annotation row (e.g. %s); skipped", source, int(unannotated.sum()), example)
    joined = joined[~unannotated].copy()
    attribute_columns = [c for c in columns if c != "split"]
    joined[attribute_columns] = joined[attribute_columns].astype("int8")
    return joined, int(unannotated.sum())
