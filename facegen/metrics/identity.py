"""Identity preservation of edits: is the edited face still recognised as the same person?

Embeddings come from any ``embed(images N x R x R x 3 uint8) -> N x D`` function: an :class:`IdentityNetwork`
handed in by the caller (stage `evaluate_gan` hands in the recognition backbone), or the attribute classifier's
features when there is none.
"Same person" uses the threshold at which real different-person pairs are accepted at rate ``far``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Embed = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class IdentityNetwork:
    """A face-recognition embedding, loaded only when edits are judged: ``load()`` returns its ``embed``."""

    name: str  # what metrics/gan.json's identity.embedding says, e.g. "backbone models/backbone.pt"
    load: Callable[[], Embed]


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two N x D arrays (NaN where either row is NaN: no face found)."""
    return np.sum(_normalise(a) * _normalise(b), axis=1)


def far_threshold(embeddings: np.ndarray, identities: np.ndarray, far: float = 0.01) -> float:
    """The cosine similarity that only ``far`` of the different-person pairs among ``embeddings`` exceed."""
    identities = np.asarray(identities)
    e = _normalise(embeddings)
    upper = np.triu_indices(len(e), k=1)
    different = identities[upper[0]] != identities[upper[1]]
    if not different.any():
        raise ValueError("a FAR threshold needs images of at least two different people")
    similarities = (e @ e.T)[upper][different]
    return float(np.quantile(similarities, 1 - far))


def identity_preservation(embed: Embed, sources: np.ndarray, edits: np.ndarray, threshold: float) -> dict[str, float]:
    """Mean cosine similarity between each source face and its edit, and the share above ``threshold``."""
    if len(sources) != len(edits) or not len(sources):
        raise ValueError(f"need as many edits as sources (and some), got {len(sources)} and {len(edits)}")
    similarity = cosine(embed(sources), embed(edits))
    return {
        "cosine_mean": round(float(similarity.mean()), 5),
        "verified_share": round(float((similarity >= threshold).mean()), 5),
        "threshold": round(threshold, 5),
    }
