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
from facegen.data.attribute_csv import read_attribute_csv
from facegen.data.base import FaceDataset
from facegen.config import MAX_IMAGE_PIXELS
from facegen.data.images import IMAGE_SUFFIXES, display_path, load_photo, walk_files

log = logging.getLogger(__name__)


class FaceFolder(FaceDataset):
    """Photos under ``root/<person>/`` (sub-folders of a person's folder included); the identity is the
    top-level folder's name, image_id the relative path.

    Files there that cannot be photos (``.heic``, ``.txt``, photos outside a person's folder, dangling symbolic
    links, fifos, folders that cannot be read) are listed in ``skipped_files`` with the reason; hidden files are
    ignored. A name whose bytes are no UTF-8 is read all the same, and shown with ``\\xNN`` escapes."""

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
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.root = Path(root)
        self.max_image_pixels = max_image_pixels
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder (expected <root>/<person>/<photo>.jpg)")
        frame, self.skipped_files = _scan(self.root)
        if frame.empty:
            raise FileNotFoundError(
                f"{self.root}: no photos found in per-person subfolders ({', '.join(IMAGE_SUFFIXES)})"
            )
        if strict and self.skipped_files:
            raise AnnotationError(
                f"{self.root / self.skipped_files[0][0]}: {self.skipped_files[0][1]} (strict mode; "
                f"{len(self.skipped_files)} such file(s))"
            )
        if self.skipped_files:
            log.warning(
                "%s: %d file(s) are not usable photos, e.g. %s (%s); skipped",
                self.root,
                len(self.skipped_files),
                *self.skipped_files[0],
            )
        self.unannotated_images = 0
        if attributes_csv is not None:
            table = read_attribute_csv(Path(attributes_csv))
            frame, self.unannotated_images, self.missing_images = _join_csv(frame, table, Path(attributes_csv), strict)
        elif celeba_root is not None:
            frame, self.unannotated_images = _join_celeba(frame, Path(celeba_root), strict)
        if "split" not in frame:
            frame["split"] = "train"
        super().__init__(
            frame.drop(columns="file"),  # keeps "_path": the relative path to open (image_id is for display)
            attributes=attributes,
            split=split,
            min_images_per_identity=min_images_per_identity,
            transform=transform,
        )

    def load_image(self, i: int) -> Image.Image:
        return load_photo(self.root / os.fsdecode(self.annotations.at[i, "_path"]), self.max_image_pixels)


def _scan(root: Path) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Photos as (image_id, identity, file, _path) rows, and the other files found as (path, reason). ``_path``
    is the relative path to open as bytes (a pandas string column cannot hold a name's non-UTF-8 bytes)."""
    files, skipped = walk_files(root)
    rows, ids = [], set()
    for parts, _ in files:
        relative = "/".join(parts)
        image_id = display_path(relative)
        if len(parts) == 1:
            skipped.append((image_id, "not in a per-person folder"))
        elif not parts[-1].lower().endswith(IMAGE_SUFFIXES):
            skipped.append((image_id, f"unsupported format ({Path(parts[-1]).suffix or 'no extension'})"))
        elif image_id in ids:  # "caf\xe9.jpg" spelt out by hand beside a caf<0xe9>.jpg that reads the same
            skipped.append((image_id, "its name reads the same as another photo's; rename it"))
        else:
            ids.add(image_id)
            rows.append((image_id, display_path(parts[0]), display_path(parts[-1]), os.fsencode(relative)))
    return pd.DataFrame(rows, columns=["image_id", "identity", "file", "_path"]), sorted(skipped)


def _join_csv(frame: pd.DataFrame, table: pd.DataFrame, csv: Path, strict: bool) -> tuple[pd.DataFrame, int, int]:
    """Join a validated attributes table on its keys: paths (person/photo) or bare file names."""
    key = "image_id" if table["image"].str.contains("/").all() else "file"
    if key == "file":
        named = frame[frame["file"].isin(table["image"])]
        repeated = named[named["file"].duplicated(keep=False)]
        if len(repeated):
            raise AnnotationError(
                f"{csv}: the bare name {repeated['file'].iloc[0]!r} matches photos in several "
                f"folders ({', '.join(repeated['image_id'].iloc[:2])}); use person/photo paths"
            )
    missing = int((~table["image"].isin(frame[key])).sum())
    if missing:
        example = table.loc[~table["image"].isin(frame[key]), "image"].iloc[0]
        if strict:
            raise AnnotationError(f"{csv}: {missing} rows have no photo, e.g. {example!r} (strict mode)")
        log.warning("%s: %d rows have no photo under the folder (e.g. %s); ignored", csv, missing, example)
    joined, unannotated = _join(frame, table.rename(columns={"image": key}).set_index(key), key, csv, strict)
    return joined, unannotated, missing


def _join_celeba(frame: pd.DataFrame, celeba_root: Path, strict: bool) -> tuple[pd.DataFrame, int]:
    table = read_attributes(celeba_root / ATTR_FILE)
    if (celeba_root / PARTITION_FILE).is_file():
        table = table.join(read_partition(celeba_root / PARTITION_FILE))
    return _join(frame, table, "file", celeba_root / ATTR_FILE, strict)


def _join(frame: pd.DataFrame, table: pd.DataFrame, key: str, source: Path, strict: bool) -> tuple[pd.DataFrame, int]:
    """Left-join annotations on `key`; photos without a row are dropped and counted (an error if strict)."""
    joined = frame.join(table, on=key, how="left")
    columns = list(table.columns)
    unannotated = ~joined[key].isin(table.index)
    if unannotated.all():
        raise AnnotationError(
            f"{source}: no photo has a row (photos are like {frame[key].iloc[0]!r}, rows like "
            f"{table.index[0] if len(table) else None!r}); check the file names"
        )
    if unannotated.any():
        example = joined.loc[unannotated, "image_id"].iloc[0]
        if strict:
            raise AnnotationError(
                f"{source}: {int(unannotated.sum())} photos have no row, e.g. {example!r} (strict mode)"
            )
        log.warning("%s: %d photos have no annotation row (e.g. %s); skipped", source, int(unannotated.sum()), example)
    joined = joined[~unannotated].copy()
    attribute_columns = [c for c in columns if c != "split"]
    joined[attribute_columns] = joined[attribute_columns].astype("int8")
    return joined, int(unannotated.sum())
