"""CelebA in its official layout, read from the image zip or the extracted folder.

Unlike torchvision's ``datasets.CelebA`` the bbox and landmark files are optional (the landmarks, when there,
align the faces in ``prepare``; an image without a row there is aligned by MTCNN), and a folder holding
only part of the images (a subset mirror) works: rows without an image are counted and reported, and
``strict=True`` turns that into an error.
"""

from __future__ import annotations

import logging
import os
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from facegen.data.annotations import (
    ATTR_FILE,
    IDENTITY_FILE,
    IMAGES_DIR,
    IMAGES_ZIP,
    LANDMARKS_FILE,
    PARTITION_FILE,
    AnnotationError,
    read_attributes,
    read_identities,
    read_landmarks,
    read_partition,
)
from facegen.data.base import FaceDataset
from facegen.config import MAX_IMAGE_PIXELS
from facegen.data.images import CorruptImageError, decode_image, max_photo_bytes, read_photo_bytes

log = logging.getLogger(__name__)


class CelebA(FaceDataset):
    """The official CelebA files under ``root`` (``img_align_celeba.zip`` or ``img_align_celeba/``)."""

    def __init__(
        self,
        root: Path | str,
        *,
        split: str = "all",
        attributes: Sequence[str] | None = None,
        min_images_per_identity: int = 1,
        strict: bool = False,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.root = Path(root)
        for name in (ATTR_FILE, IDENTITY_FILE, PARTITION_FILE):
            if not (self.root / name).is_file():
                raise FileNotFoundError(f"{self.root / name} is missing: {self.root} is not a CelebA folder")
        self._images = _ImageStore.open(self.root, max_image_pixels)
        annotations = read_celeba_annotations(self.root)
        present = annotations["image_id"].isin(self._images.names)
        self.missing_images = int((~present).sum())
        self.unannotated_images = len(self._images.names) - int(present.sum())
        if strict and (self.missing_images or self.unannotated_images):
            raise AnnotationError(
                f"{self.root}: {self.missing_images} annotation rows have no image and "
                f"{self.unannotated_images} images have no annotation row (strict mode)"
            )
        if self.missing_images:
            log.warning(
                "%s: %d of %d annotation rows have no image (a subset copy?); using the %d present",
                self.root,
                self.missing_images,
                len(annotations),
                int(present.sum()),
            )
        if self.unannotated_images:
            log.warning("%s: %d images have no annotation row; ignored", self.root, self.unannotated_images)
        super().__init__(
            annotations[present],
            attributes=attributes,
            split=split,
            min_images_per_identity=min_images_per_identity,
            transform=transform,
        )

    def load_image(self, i: int) -> Image.Image:
        return self._images.read(self.annotations.at[i, "image_id"])

    def read_bytes(self, image_id: str) -> bytes:
        """The image file's bytes as stored (e.g. to copy the JPEG untouched)."""
        return self._images.read_bytes(image_id)


def read_celeba_annotations(root: Path) -> pd.DataFrame:
    """Join the attribute, identity and partition files; an image missing from one of them is an error."""
    attributes = read_attributes(root / ATTR_FILE)
    identities = read_identities(root / IDENTITY_FILE)
    splits = read_partition(root / PARTITION_FILE)
    for name, series in ((IDENTITY_FILE, identities), (PARTITION_FILE, splits)):
        if len(series) != len(attributes) or not series.index.equals(attributes.index):
            missing = attributes.index.difference(series.index)
            extra = series.index.difference(attributes.index)
            raise AnnotationError(
                f"{root / name} and {root / ATTR_FILE} list different images: "
                f"{len(missing)} only in {ATTR_FILE} (e.g. {list(missing[:3])}), "
                f"{len(extra)} only in {name} (e.g. {list(extra[:3])})"
            )
    frame = pd.concat([identities, splits, attributes], axis=1)
    if (root / LANDMARKS_FILE).is_file():  # optional: the official five points of every aligned image
        frame = frame.join(read_landmarks(root / LANDMARKS_FILE))
    return frame.reset_index()


class _ImageStore:
    """Images by file name from the extracted folder, or lazily (once per worker process) from the zip."""

    def __init__(self, folder: Path | None, archive: Path | None, names: set[str], max_pixels: int) -> None:
        self.folder, self.archive, self.names, self.max_pixels = folder, archive, names, max_pixels
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1

    @classmethod
    def open(cls, root: Path, max_pixels: int) -> _ImageStore:
        folder, archive = root / IMAGES_DIR, root / IMAGES_ZIP
        if folder.is_dir():
            return cls(folder, None, {e.name for e in os.scandir(folder) if e.is_file()}, max_pixels)
        if archive.is_file():
            try:
                with zipfile.ZipFile(archive) as zf:
                    names = {
                        Path(n).name for n in zf.namelist() if n.startswith(f"{IMAGES_DIR}/") and not n.endswith("/")
                    }
            except zipfile.BadZipFile:
                raise AnnotationError(f"{archive}: not a valid zip archive (truncated, or an HTML page?)") from None
            return cls(None, archive, names, max_pixels)
        raise FileNotFoundError(f"{root}: neither {IMAGES_DIR}/ nor {IMAGES_ZIP} is present")

    def read(self, name: str) -> Image.Image:
        path = self.folder / name if self.folder is not None else self.archive / name
        return decode_image(path, self.read_bytes(name), self.max_pixels)

    def read_bytes(self, name: str) -> bytes:
        if self.folder is not None:
            return read_photo_bytes(self.folder / name, self.max_pixels)
        if self._zip is None or self._zip_pid != os.getpid():  # zip handles must not cross a fork
            self._zip, self._zip_pid = zipfile.ZipFile(self.archive), os.getpid()
        member = f"{IMAGES_DIR}/{name}"
        try:
            # the declared size bounds what zipfile inflates (it stops there), so it is checked before reading
            size, limit = self._zip.getinfo(member).file_size, max_photo_bytes(self.max_pixels)
            if size > limit:
                raise CorruptImageError(
                    f"{self.archive}: member {member}: too large: {size:,} bytes, more than a photo of "
                    f"data.max_image_pixels ({self.max_pixels:,}) takes"
                )
            data = self._zip.read(member)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:  # bad CRC, damaged member
            raise CorruptImageError(f"{self.archive}: member {member}: cannot be read ({err})") from None
        return data

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None, "_zip_pid": -1}
