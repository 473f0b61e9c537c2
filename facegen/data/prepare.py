"""Preprocessing: crop and resize every face once, and cache the result in a compact format.

Two ways to crop (``prepare.align``). ``landmarks`` (the default) aligns every face as face recognition does:
five landmarks (MTCNN's, from facenet-pytorch whose weights ship with the package, or a landmark file such as
CelebA's) are mapped onto the ArcFace template (facegen/data/align.py). ``box`` keeps the older crops: a centred
square of CelebA-layout images, tight folder crops squared and resized, MTCNN's box for in-the-wild photos.
Unreadable photos and photos with no usable face are counted and listed in ``skipped.csv`` with the reason (or,
with ``strict``, stop the run); photos with several faces keep the largest and are counted; the output folder
appears only when complete.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from numpy.lib.format import open_memmap
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from facegen.data.align import align_face
from facegen.data.base import FaceDataset
from facegen.data.images import CorruptImageError
from facegen.data.prepared import ANNOTATIONS_FILE, IMAGES_FILE, LAYOUT, META_FILE, SKIPPED_FILE
from facegen.io import atomic_dir, write_json
from facegen.mapping import Mapper, chunked, torch_threads, with_torch_threads
from facegen.processes import die_with_parent

log = logging.getLogger(__name__)

# torch threads every crop runs with, in this process, a loader worker or a mapper's: on some CPUs (an AMD EPYC)
# MTCNN's floats, and so the crops' bytes, depend on the thread count, and the cache must not depend on `workers`
CROP_THREADS = 1
NO_FACE = "no face found"
LANDMARKS_OFF = "landmarks outside the photo"
FACES_FOUND = "faces_found"  # key of a crop's ``info``: faces the detector saw in the photo (the largest is kept)


class Cropper(Protocol):
    size: int
    align: str  # "landmarks" or "box": recorded in the cache, so that a backbone can refuse another alignment

    def __call__(self, image: Image.Image, landmarks: np.ndarray | None = None) -> Image.Image | None:
        """The face as a size x size RGB image, or None when no face is found (``NoUsableFace`` says why
        otherwise); `landmarks` are the photo's five points when its source has them."""


class NoUsableFace(ValueError):
    """The photo holds no face that can be cropped; the message is the reason listed in skipped.csv."""


@dataclass(frozen=True)
class CenterCropResize:
    """A centred square crop of `crop` px (None: the largest square), resized to `size`."""

    size: int
    crop: int | None = None
    align = "box"

    def __call__(self, image: Image.Image, landmarks: np.ndarray | None = None) -> Image.Image:
        width, height = image.size
        side = min(width, height, self.crop or max(width, height))
        left, top = (width - side) // 2, (height - side) // 2
        return image.resize((self.size, self.size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))


class MTCNNCrop:
    """Detect the largest face with facenet-pytorch's MTCNN and return its box (facenet's margin) at size x size."""

    align = "box"

    def __init__(self, size: int) -> None:
        self.size = size
        self._mtcnn = None

    def __call__(self, image: Image.Image, landmarks: np.ndarray | None = None) -> Image.Image | None:
        if self._mtcnn is None:  # built lazily, once per worker process
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(image_size=self.size, margin=round(self.size * 14 / 160), post_process=False)
        face = self._mtcnn(image)
        if face is None:
            return None
        return Image.fromarray(face.clamp(0, 255).byte().permute(1, 2, 0).numpy())

    def __getstate__(self) -> dict:
        return {"size": self.size, "_mtcnn": None}


class LandmarkAlign:
    """Align the largest face on the ArcFace template by its five landmarks: the photo's own (a landmark file)
    when given, else MTCNN's.

    Large photos are shrunk to at most `max_detect_side` px before detection (landmarks are scaled back, the crop
    is cut from the full photo); ``tight`` crops (faces64: the face fills the photo) are enlarged to 160 px and
    padded by their edge pixels first, as MTCNN looks for faces with some context around them."""

    align = "landmarks"

    def __init__(self, size: int, *, tight: bool = False, max_detect_side: int = 1024) -> None:
        self.size, self.tight, self.max_detect_side = size, tight, max_detect_side
        self._mtcnn = None

    def __call__(self, image: Image.Image, landmarks: np.ndarray | None = None) -> Image.Image:
        image = image.convert("RGB")
        faces_found = 1
        if landmarks is None:
            landmarks, faces_found = self.detect(image)
        landmarks = np.asarray(landmarks, np.float64).reshape(5, 2)
        width, height = image.size
        if (landmarks < -0.5).any() or (landmarks[:, 0] > width - 0.5).any() or (landmarks[:, 1] > height - 0.5).any():
            raise NoUsableFace(LANDMARKS_OFF)
        face = align_face(image, landmarks, self.size)
        face.info[FACES_FOUND] = faces_found
        return face

    def detect(self, image: Image.Image) -> tuple[np.ndarray, int]:
        """The largest face's five landmarks in `image` coordinates, and how many faces MTCNN found."""
        faces = self.detect_all(image)
        if not faces:
            raise NoUsableFace(NO_FACE)
        return faces[0], len(faces)

    def detect_all(self, image: Image.Image) -> list[np.ndarray]:
        """Every face's five landmarks (5 x 2, in `image` coordinates), the largest face first."""
        canvas, scale, pad = self._detection_canvas(image)
        if self._mtcnn is None:  # built lazily, once per worker process
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(keep_all=True, post_process=False)
        boxes, _, points = self._mtcnn.detect(canvas, landmarks=True)
        if boxes is None or not len(boxes):
            return []
        boxes = np.asarray(boxes, np.float64)
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        return [(np.asarray(points[i], np.float64) - pad) / scale for i in order]

    def _detection_canvas(self, image: Image.Image) -> tuple[Image.Image, float, float]:
        """(image as MTCNN sees it, its scale, its padding): canvas point = photo point x scale + pad."""
        if self.tight:
            scale = 160 / max(image.size)
            resized = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
            pad = round(0.25 * max(resized.size))
            array = np.pad(np.asarray(resized), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
            return Image.fromarray(array), scale, float(pad)
        scale = min(1.0, self.max_detect_side / max(image.size))
        if scale < 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        return image, scale, 0.0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_mtcnn": None}


class PrepareError(RuntimeError):
    """A photo could not be prepared in strict mode; the message names it."""


@dataclass
class PrepareReport:
    """What a prepare run did; ``corrupt`` counts every unreadable photo (corrupt, too large, unsupported format)."""

    images_in: int
    images_written: int
    corrupt: int = 0
    no_face: int = 0
    no_landmarks: int = 0
    several_faces: int = 0  # photos where the detector found more than one face (the largest was kept)
    align: str = "box"
    seconds: float = 0.0
    images_per_second: float = 0.0
    source: dict = field(default_factory=dict)


class _Cropped(Dataset):
    """(row, uint8 array or None, reason) for each row of a face dataset, computed in loader workers."""

    def __init__(self, faces: FaceDataset, cropper: Cropper) -> None:
        self.faces, self.cropper = faces, cropper

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str, int]:
        """(row, face or None, why not, faces the detector found)."""
        try:
            face = self.cropper(self.faces.load_image(i), self.faces.landmarks(i))
        except CorruptImageError as err:
            return i, None, f"{err.kind}: {err}", 0  # "corrupt: ..." or "unreadable: ..."
        except NoUsableFace as err:
            return i, None, str(err), 0
        if face is None:
            return i, None, NO_FACE, 0
        return i, np.asarray(face, dtype=np.uint8), "", int(face.info.get(FACES_FOUND, 1))


def prepare_faces(
    faces: FaceDataset,
    out: Path,
    cropper: Cropper,
    *,
    strict: bool = False,
    workers: int = 2,
    batch_size: int = 256,
    source: dict | None = None,
    mapper: Mapper | None = None,
) -> PrepareReport:
    """Crop every face of `faces` and write the cache to `out` (atomically); returns what happened.

    Every crop runs with :data:`CROP_THREADS` torch threads, so the cache is the same bytes whatever ``workers``.
    With `mapper` (facegen.mapping: e.g. Dask workers), chunks of rows are cropped through it instead of by the
    ``workers`` loader processes, and kept in order: the same bytes again.

    Photos that cannot be used (and ``faces.skipped_files``) are listed in skipped.csv (``strict``: the first
    stops the run); a source with no usable photo at all is an error, not an empty cache."""
    start = time.perf_counter()
    size = cropper.size
    loader = DataLoader(
        _Cropped(faces, cropper),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
        worker_init_fn=partial(_init_worker, os.getpid()),
        # spawn, not fork: callers such as Prefect flows run threads that a forked worker must not inherit
        multiprocessing_context="spawn" if workers else None,
    )
    if mapper is not None:
        crop = with_torch_threads(partial(_crop_rows, _Cropped(faces, cropper)), CROP_THREADS)
        loader = mapper(crop, chunked(range(len(faces)), min(batch_size, MAPPED_CHUNK)))
    kept: list[int] = []
    skipped = list(faces.skipped_files)
    several_faces = 0
    with atomic_dir(Path(out), LAYOUT) as tmp, torch_threads(CROP_THREADS):
        staging = open_memmap(tmp / "staging.npy", mode="w+", dtype=np.uint8, shape=(len(faces), size, size, 3))
        with tqdm(total=len(faces), desc="prepare", unit="img") as progress:
            for batch in loader:
                for i, array, reason, faces_found in batch:
                    several_faces += faces_found > 1
                    if array is None:
                        image_id = faces.annotations.at[i, "image_id"]
                        if strict:
                            raise PrepareError(f"{image_id}: {reason} (strict mode)")
                        skipped.append((image_id, reason))
                    else:
                        staging[len(kept)] = array
                        kept.append(i)
                progress.update(len(batch))
        if not kept:
            raise PrepareError(
                f"no usable face: all {len(skipped)} photos were skipped, e.g. {skipped[0][0]} ({skipped[0][1]})"
                if skipped
                else "no photos to prepare"
            )
        _finalise_images(tmp, staging, len(kept))
        columns = [c for c in faces.annotations.columns if not c.startswith("_")]
        faces.annotations.loc[kept, columns].reset_index(drop=True).to_parquet(tmp / ANNOTATIONS_FILE, index=False)
        pd.DataFrame(skipped, columns=["image_id", "reason"]).to_csv(tmp / SKIPPED_FILE, index=False)
        seconds = time.perf_counter() - start
        report = PrepareReport(
            images_in=len(faces) + len(faces.skipped_files),
            images_written=len(kept),
            corrupt=sum(r not in (NO_FACE, LANDMARKS_OFF) for _, r in skipped),
            no_face=sum(r == NO_FACE for _, r in skipped),
            no_landmarks=sum(r == LANDMARKS_OFF for _, r in skipped),
            several_faces=several_faces,
            align=cropper.align,
            seconds=round(seconds, 2),
            images_per_second=round(len(faces) / max(seconds, 1e-9), 1),
            source=source or {},
        )
        timing = ("seconds", "images_per_second")  # kept out so that equal inputs give identical files
        write_json(
            tmp / META_FILE, {"image_size": size, **{k: v for k, v in asdict(report).items() if k not in timing}}
        )
    if skipped:
        log.warning(
            "%d of %d photos skipped (listed in %s): %s",
            len(skipped),
            len(faces),
            Path(out) / SKIPPED_FILE,
            skipped[:3],
        )
    return report


MAPPED_CHUNK = 32  # photos per chunk sent through a mapper (about 6 s of MTCNN work on one core)


def _crop_rows(dataset: _Cropped, rows: range) -> list[tuple[int, np.ndarray | None, str, int]]:
    """The loader's items for `rows` (a mapper's chunk of work)."""
    return [dataset[i] for i in rows]


def _finalise_images(folder: Path, staging: np.memmap, count: int) -> None:
    """Keep the first `count` staged images as images.npy (a rename when nothing was skipped)."""
    staging.flush()
    if count == len(staging):
        del staging
        (folder / "staging.npy").rename(folder / IMAGES_FILE)
        return
    final = open_memmap(folder / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(count, *staging.shape[1:]))
    for start in range(0, count, 4096):
        final[start : start + 4096] = staging[start : min(start + 4096, count)]
    final.flush()
    del staging
    (folder / "staging.npy").unlink()


def _init_worker(parent_pid: int, worker_id: int) -> None:
    """A loader worker crops with :data:`CROP_THREADS` torch threads and dies with the run (``kill -9`` included)."""
    torch.set_num_threads(CROP_THREADS)
    die_with_parent(parent_pid)
