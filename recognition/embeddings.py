"""A content-addressed cache of embeddings: one ``.npy`` per (backbone, input size, exact image array).

The key hashes the backbone's fingerprint, the input size and the image bytes, so a cached file can never
belong to other weights or other images; the four conditions and every seed share what they have in common.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from torch import nn

from facegen.io import atomic_file
from recognition.backbone import embed_images


class EmbeddingCache:
    def __init__(self, root: Path, model: nn.Module, backbone_fingerprint: str, input_size: int,
                 batch_size: int = 64) -> None:
        self.root, self.model, self.fingerprint = Path(root), model, backbone_fingerprint
        self.input_size, self.batch_size = input_size, batch_size
        self.hits = self.misses = 0

    def key(self, images: np.ndarray) -> str:
        digest = hashlib.sha256(f"{self.fingerprint}|{self.input_size}|{images.shape}".encode())
        digest.update(np.ascontiguousarray(images).tobytes())
        return digest.hexdigest()[:32]

    def embed(self, images: np.ndarray) -> np.ndarray:
        """N x D embeddings of `images`, read from the cache or computed and stored."""
        path = self.root / f"{self.key(images)}.npy"
        if path.is_file():
            self.hits += 1
            return np.load(path)
        self.misses += 1
        embeddings = embed_images(self.model, images, self.input_size, self.batch_size, progress=len(images) > 256)
        with atomic_file(path) as f:
            np.save(f, embeddings)
        return embeddings
