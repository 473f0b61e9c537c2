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
from functools import partial
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from facegen.io import atomic_file, md5sum
from facegen.mapping import Mapper, chunked, with_torch_threads
from facegen.weights import load_checkpoint
from recognition.models.backbone import TEACHER, BackboneUnavailable, embed_images, load_backbone, trained_input_size

log = logging.getLogger(__name__)


class Embedder(Protocol):
    fingerprint: str  # changes whenever the embeddings would

    def embed(self, images: np.ndarray) -> np.ndarray: ...


class TorchEmbedder:
    """A facenet backbone as an embedder: 512-d L2-normalised embeddings at ``input_size`` px.

    With ``mapper`` (facegen.mapping: e.g. Dask workers) chunks of whole batches are embedded through it, with
    this process's torch threads: the same batches, so the same floats. A worker reads the network from
    ``backbone`` (the file it was loaded from; once per worker) when given, else receives it with every chunk."""

    def __init__(
        self,
        model: nn.Module,
        fingerprint: str,
        input_size: int,
        batch_size: int = 64,
        mapper: Mapper | None = None,
        backbone: Path | None = None,
    ) -> None:
        self.model, self.input_size, self.batch_size = model, input_size, batch_size
        self.fingerprint = f"{fingerprint}|{input_size}"
        self.mapper, self.backbone = mapper, backbone

    def embed(self, images: np.ndarray) -> np.ndarray:
        if self.mapper is None:
            return embed_images(self.model, images, self.input_size, self.batch_size, progress=len(images) > 256)
        network = (str(self.backbone), self.fingerprint) if self.backbone is not None else self.model
        work = partial(_embed_chunk, network, self.input_size, self.batch_size)
        chunks = chunked(images, self.batch_size * MAPPED_BATCHES)
        parts = list(self.mapper(with_torch_threads(work, torch.get_num_threads()), chunks))
        return np.concatenate(parts) if parts else embed_images(self.model, images, self.input_size, self.batch_size)


MAPPED_BATCHES = 8  # batches per chunk sent through a mapper
_NETWORKS: dict[tuple[str, str], nn.Module] = {}  # a mapper worker's networks, read once per file


def _embed_chunk(network: nn.Module | tuple[str, str], input_size: int, batch_size: int, images: np.ndarray):
    """`embed_images` of one chunk in any process; `network` is the network or its (file, fingerprint)."""
    if isinstance(network, tuple):
        if network not in _NETWORKS:
            _NETWORKS.clear()
            _NETWORKS[network] = load_backbone(network[0])
        network = _NETWORKS[network]
    return embed_images(network, images, input_size, batch_size)


def load_embedder(
    backbone: Path,
    input_size: int,
    batch_size: int = 64,
    teacher_workers: int = 1,
    prepared: Path | None = None,
    mapper: Mapper | None = None,
) -> Embedder:
    """The embedder a project backbone file stands for: its facenet network, or the dlib teacher when the file
    records ``recognition.pretrained: dlib`` (stage pretrain_backbone). A facenet embeds at the input size its
    file records it was trained at (`trained_input_size`; ``input_size`` only for files that record none). With
    `prepared` (the cache whose faces it will embed), a facenet trained on faces of another alignment
    (``prepare.align``) is refused. `mapper` (facegen.mapping) embeds chunks elsewhere, e.g. on Dask workers."""
    state = load_checkpoint(backbone, "facegen backbone checkpoint", ("backbone",)) if Path(backbone).is_file() else {}
    meta = state.get("meta", {})
    if state and prepared is not None:
        check_alignment(backbone, meta, Path(prepared))
    if meta.get("pretrained") == TEACHER:
        from recognition.models.teacher import DlibTeacher

        return DlibTeacher(workers=teacher_workers, mapper=mapper)
    size = trained_input_size(backbone, meta, input_size)
    file = Path(backbone) if Path(backbone).is_file() else None  # else a name such as "none"
    return TorchEmbedder(load_backbone(str(backbone)), md5sum(backbone), size, batch_size, mapper, file)


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
