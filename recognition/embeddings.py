"""Embedders (anything that maps N x S x S x 3 uint8 faces to N x D vectors) and a content-addressed cache of
their embeddings: one ``.npy`` per (embedder fingerprint, chunk of images).

The key hashes the embedder's fingerprint and the image bytes, so a cached file can never belong to other
weights or other images; the conditions and seeds share what they have in common. Large arrays are cached
in chunks, so a killed run resumes at its first unfinished chunk. A cached file that cannot be read is
reported, counted and computed again.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Protocol

import numpy as np
from torch import nn

from facegen.io import atomic_file, md5sum
from facegen.weights import load_checkpoint
from recognition.backbone import TEACHER, BackboneUnavailable, embed_images, load_backbone, trained_input_size

log = logging.getLogger(__name__)


class Embedder(Protocol):
    fingerprint: str  # changes whenever the embeddings would

    def embed(self, images: np.ndarray) -> np.ndarray: ...


class TorchEmbedder:
    """A facenet backbone as an embedder: 512-d L2-normalised embeddings at ``input_size`` px."""

    def __init__(self, model: nn.Module, fingerprint: str, input_size: int, batch_size: int = 64) -> None:
        self.model, self.input_size, self.batch_size = model, input_size, batch_size
        self.fingerprint = f"{fingerprint}|{input_size}"

    def embed(self, images: np.ndarray) -> np.ndarray:
        return embed_images(self.model, images, self.input_size, self.batch_size, progress=len(images) > 256)


def load_embedder(
    backbone: Path, input_size: int, batch_size: int = 64, teacher_workers: int = 1, prepared: Path | None = None
) -> Embedder:
    """The embedder a project backbone file stands for: its facenet network, or the dlib teacher when the file
    records ``recognition.pretrained: dlib`` (stage pretrain_backbone). A facenet embeds at the input size its
    file records it was trained at (`trained_input_size`; ``input_size`` only for files that record none). With
    `prepared` (the cache whose faces it will embed), a facenet trained on faces of another alignment
    (``prepare.align``) is refused."""
    state = load_checkpoint(backbone, "facegen backbone checkpoint", ("backbone",)) if Path(backbone).is_file() else {}
    meta = state.get("meta", {})
    if state and prepared is not None:
        check_alignment(backbone, meta, Path(prepared))
    if meta.get("pretrained") == TEACHER:
        from recognition.teacher import DlibTeacher

        return DlibTeacher(workers=teacher_workers)
    size = trained_input_size(backbone, meta, input_size)
    return TorchEmbedder(load_backbone(str(backbone)), md5sum(backbone), size, batch_size)


def check_alignment(backbone: Path, meta: dict, prepared: Path) -> None:
    """Refuse a facenet file trained on faces of another alignment than the cache `prepared` holds (files from
    before alignment existed were trained on box crops); the dlib teacher aligns every face itself."""
    if meta.get("pretrained") == TEACHER:
        return
    from facegen.data.prepared import PreparedFaces

    trained, cache = str(meta.get("align", "box")), PreparedFaces(prepared).align
    if trained != cache:
        raise BackboneUnavailable(
            f"{backbone} was trained on {trained}-aligned faces, but {prepared} holds {cache}-aligned faces: "
            f"prepare them with prepare.align={trained}, or use a backbone trained on {cache}-aligned faces"
        )


class EmbeddingCache:
    def __init__(self, root: Path, embedder: Embedder, chunk_size: int = 4096) -> None:
        self.root, self.embedder, self.chunk_size = Path(root), embedder, chunk_size
        self.hits = self.misses = self.unreadable = 0

    def key(self, images: np.ndarray) -> str:
        digest = hashlib.sha256(f"{self.embedder.fingerprint}|{images.shape}".encode())
        digest.update(np.ascontiguousarray(images).tobytes())
        return digest.hexdigest()[:32]

    def embed(self, images: np.ndarray) -> np.ndarray:
        """N x D embeddings of `images`, read from the cache or computed and stored, chunk by chunk."""
        chunks = [images[i : i + self.chunk_size] for i in range(0, len(images), self.chunk_size)] or [images]
        return np.concatenate([self._embed_chunk(chunk) for chunk in chunks])

    def _embed_chunk(self, images: np.ndarray) -> np.ndarray:
        path = self.root / f"{self.key(images)}.npy"
        if path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.ndim == 2 and len(cached) == len(images):
                    self.hits += 1
                    return cached
                problem = f"holds a {cached.shape} array for {len(images)} images"
            except (OSError, ValueError, EOFError) as err:
                problem = f"cannot be read ({type(err).__name__}: {err})"
            self.unreadable += 1
            log.warning("embedding cache: %s %s; computing it again", path, problem)
        self.misses += 1
        embeddings = self.embedder.embed(images)
        with atomic_file(path) as f:
            np.save(f, embeddings)
        return embeddings
