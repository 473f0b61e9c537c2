"""Fisherfaces (Belhumeur, Hespanha and Kriegman 1997), the classical floor of every recognizer table:
grayscale pixels -> PCA -> LDA, fitted on the background people, compared by cosine like the networks.

scikit-learn's PCA and LinearDiscriminantAnalysis do the work; this only wires them to face crops.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as PIL's "L" mode


class Fisherfaces:
    """An embedder once fitted: ``fit(images, identities)``, then ``embed(images)`` (L2-normalised)."""

    def __init__(self, components: int = 200, seed: int = 0) -> None:
        self.components, self.seed = components, seed
        self.pca: PCA | None = None
        self.lda: LinearDiscriminantAnalysis | None = None
        self.fingerprint = ""

    def fit(self, images: np.ndarray, identities: np.ndarray) -> Fisherfaces:
        people = np.unique(identities)
        if len(people) < 2:
            raise ValueError("Fisherfaces needs faces of at least 2 people to fit on")
        pixels = _gray_pixels(images)
        components = min(self.components, len(pixels) - len(people), pixels.shape[1])
        if components < 1:
            raise ValueError(f"Fisherfaces: {len(pixels)} faces of {len(people)} people leave no PCA components")
        self.pca = PCA(components, svd_solver="randomized", random_state=self.seed).fit(pixels)
        self.lda = LinearDiscriminantAnalysis().fit(self.pca.transform(pixels), identities)
        digest = hashlib.sha256(np.ascontiguousarray(self.pca.components_).tobytes())
        digest.update(np.ascontiguousarray(self.lda.scalings_).tobytes())
        self.fingerprint = f"fisherfaces:{digest.hexdigest()[:16]}"
        return self

    def embed(self, images: np.ndarray) -> np.ndarray:
        if self.pca is None or self.lda is None:
            raise RuntimeError("Fisherfaces.embed before fit")
        projected = self.lda.transform(self.pca.transform(_gray_pixels(images)))
        return (projected / np.linalg.norm(projected, axis=1, keepdims=True)).astype(np.float32)


def _gray_pixels(images: np.ndarray) -> np.ndarray:
    """N x S x S x 3 uint8 -> N x S*S float32 in [0, 1]."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"Fisherfaces: images must be N x S x S x 3, got {images.shape}")
    return (images.astype(np.float32) @ GRAY_WEIGHTS / 255.0).reshape(len(images), -1)
