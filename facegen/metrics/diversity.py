"""Latent diversity: does the generator make different faces from different noise, or one face per request?

A conditional generator can meet every attribute request and still ignore its noise input ``z`` (mode
collapse within a condition: AC-GAN's known failure). Control accuracy cannot see that, and FID sees it only
mixed with everything else. Here, for attribute rows that several real faces share exactly, the mean
distance between faces generated for that row from different ``z`` is divided by the mean distance between
the real faces that share it: about 1 when samples vary as much as real people with the same attributes
do, near 0 when the generator ignores ``z``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def latent_diversity(
    features: Callable[[np.ndarray], np.ndarray],
    images: np.ndarray,
    rows: np.ndarray,
    sample: Callable[[np.ndarray], np.ndarray],
    per_row: int = 8,
    max_rows: int = 20,
    seed: int = 0,
) -> dict[str, float]:
    """``features``: N x R x R x 3 uint8 -> N x F; ``images``/``rows``: real faces and their N x A 0/1 attributes;
    ``sample``: M x A attribute rows -> M faces (fresh z each). Uses up to ``max_rows`` attribute rows held by at
    least ``per_row`` real faces, ``per_row`` real and generated faces each. Returns the two mean distances and
    their ratio."""
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(np.asarray(rows, dtype=np.uint8)):
        groups.setdefault(row.tobytes(), []).append(i)
    shared = [members for members in groups.values() if len(members) >= per_row]
    if not shared:
        raise ValueError(f"no attribute row is shared by {per_row} real faces: cannot measure latent diversity")
    rng = np.random.default_rng(seed)
    chosen = [shared[i] for i in rng.permutation(len(shared))[:max_rows]]
    real = np.stack([rng.choice(members, per_row, replace=False) for members in chosen])  # G x per_row indices
    requests = np.repeat(rows[real[:, 0]], per_row, axis=0).astype(np.float32)
    real_distance = _mean_pairwise_distance(features(images[real.ravel()]), per_row)
    fake_distance = _mean_pairwise_distance(features(sample(requests)), per_row)
    return {
        "real_distance": round(real_distance, 5),
        "generated_distance": round(fake_distance, 5),
        "ratio": round(fake_distance / real_distance, 4),
        "attribute_rows": len(chosen),
    }


def _mean_pairwise_distance(features: np.ndarray, per_row: int) -> float:
    """Mean Euclidean distance between the features of different members of each consecutive group of ``per_row``."""
    groups = torch.from_numpy(np.asarray(features, dtype=np.float32)).reshape(-1, per_row, features.shape[1])
    distances = torch.cdist(groups, groups)  # G x per_row x per_row, zero diagonal
    return float(distances.sum() / (len(groups) * per_row * (per_row - 1)))
