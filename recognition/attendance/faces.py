"""The faces of a user's photos, found and aligned exactly as stage `prepare` aligns them: MTCNN's five landmarks
of every face mapped onto the ArcFace template (``LandmarkAlign``), largest face first."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from facegen.config import MAX_IMAGE_PIXELS
from facegen.data.images import IMAGE_SUFFIXES, display_path, load_photo, walk_files
from facegen.data.prepare import NO_FACE, LandmarkAlign, NoUsableFace


@dataclass
class PhotoFaces:
    """The aligned faces of one photo: ``crops[i]`` is face number ``numbers[i]`` (1: the largest); faces that
    could not be aligned keep their number and are listed in ``problems``."""

    photo: str
    detected: int  # faces MTCNN found in the photo
    crops: list[np.ndarray] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class FaceFinder:
    """Aligned `size` x `size` uint8 RGB faces of photo files; ``tight``: the photos are face crops that the face
    fills (as faces64), enlarged and padded before detection."""

    def __init__(self, size: int, *, tight: bool = False, max_pixels: int = MAX_IMAGE_PIXELS) -> None:
        self.size, self.max_pixels = size, max_pixels
        self._align = LandmarkAlign(size, tight=tight)

    def faces(self, photo: Path, largest_only: bool = False) -> PhotoFaces:
        """Every face of `photo` (only the largest with `largest_only`). Raises OSError (``CorruptImageError``:
        unreadable) or ``NoUsableFace`` when the photo cannot be read or holds no face that can be aligned."""
        image = read_photo(photo, self.max_pixels)
        found = self._align.detect_all(image)
        if not found:
            raise NoUsableFace(NO_FACE)
        result = PhotoFaces(display_path(photo), len(found))
        for number, landmarks in enumerate(found[:1] if largest_only else found, start=1):
            try:
                crop = self._align(image, landmarks)
            except NoUsableFace as err:
                result.problems.append(f"face {number}: {err}")
                continue
            result.crops.append(np.asarray(crop, np.uint8))
            result.numbers.append(number)
        if not result.crops:
            raise NoUsableFace("; ".join(result.problems))
        return result


def read_photo(path: Path, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """The photo as 8-bit RGB, upright as its camera's EXIF orientation says (phones store portraits sideways);
    files too large for ``max_pixels``, fifos and unreadable files raise ``CorruptImageError`` naming the file."""
    return load_photo(path, max_pixels)


def photo_files(path: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """The photos a path names (itself, or every image file under a folder and its sub-folders, sorted; hidden
    files ignored) and the other entries found there as (path, reason): other formats, dangling symbolic links,
    fifos, folders that cannot be read (``walk_files``). Names that are no UTF-8 are shown with ``\\xNN``."""
    path = Path(path)
    if not path.is_dir():
        if not os.path.lexists(path):
            raise FileNotFoundError(f"{display_path(path)}: no such photo or folder")
        return [path], []  # a file, or a fifo or dangling link that reading it refuses as a counted skip
    files, problems = walk_files(path)
    photos, others = [], [(f"{display_path(path)}/{name}", reason) for name, reason in problems]
    for _, name in files:
        file = Path(name)
        if file.name.lower().endswith(IMAGE_SUFFIXES):
            photos.append(file)
        else:
            others.append((display_path(file), f"not a photo ({file.suffix or 'no extension'})"))
    return photos, sorted(others)
