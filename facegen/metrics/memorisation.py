"""Memorisation: are generated faces closer to the training faces than real unseen faces are?

A generator that copies its training faces makes realistic samples, and FID cannot tell. Here each face is
compared with its nearest training face in a descriptor space (e.g. the dlib teacher's 128-d embeddings):
if generated faces sit closer to the training set than held-out real faces do, the generator memorises.

That test alone also fires for faces that are merely generic: blurry, average faces lie near every real face.
The data-copying control compares each generated face's nearest training face with its nearest face among as
many real faces the generator never saw: a copy is closer to the first; a generic face is as close to both. (A
simpler relative of Meehan, Chaudhuri and Dasgupta's test, AISTATS 2020, which compares generated and held-out
faces' distances to the training set cell by cell.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from facegen.gan.inference import save_grid

QUANTILES = (0.05, 0.5, 0.95)


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_neighbours(
    queries: np.ndarray, references: np.ndarray, k: int = 1, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of each query row (N x D) to its ``k`` most similar reference rows (M x D), and their
    indices: two N x k arrays, most similar first. Query rows holding NaN (no face found) get NaN and index -1;
    reference rows holding NaN are never neighbours. Computed ``batch_size`` queries at a time."""
    usable = np.flatnonzero(np.isfinite(references).all(axis=1))
    if not 1 <= k <= len(usable):
        raise ValueError(f"k must be between 1 and the {len(usable)} usable reference rows, got {k}")
    refs = _normalise(np.asarray(references)[usable])
    q = _normalise(queries)
    similarities = np.full((len(q), k), np.nan)
    indices = np.full((len(q), k), -1, dtype=np.int64)
    found = np.flatnonzero(np.isfinite(q).all(axis=1))
    for start in range(0, len(found), batch_size):
        rows = found[start : start + batch_size]
        s = q[rows] @ refs.T
        top = np.argpartition(s, -k, axis=1)[:, -k:]
        top_s = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-top_s, axis=1)
        similarities[rows] = np.take_along_axis(top_s, order, axis=1)
        indices[rows] = usable[np.take_along_axis(top, order, axis=1)]
    return similarities, indices


def memorisation_test(generated: np.ndarray, held_out: np.ndarray) -> dict:
    """One-sided Mann-Whitney U test on each face's similarity to its nearest training face: are ``generated``
    faces closer to the training set than ``held_out`` real faces are? NaN values are dropped and counted.
    ``auc``: P(generated > held-out) + P(tie) / 2, 0.5 when there is no difference; ``copies``: the share of
    generated faces closer than the held-out faces' 99th percentile."""
    g, h = (np.asarray(x, dtype=np.float64).ravel() for x in (generated, held_out))
    g_ok, h_ok = g[np.isfinite(g)], h[np.isfinite(h)]
    if min(len(g_ok), len(h_ok)) < 2:
        raise ValueError(
            f"a memorisation test needs at least 2 usable similarities per side, "
            f"got {len(g_ok)} generated and {len(h_ok)} held-out"
        )
    u, p = mannwhitneyu(g_ok, h_ok, alternative="greater")
    return {
        "generated": len(g_ok),
        "held_out": len(h_ok),
        "dropped": len(g) - len(g_ok) + len(h) - len(h_ok),
        "p_closer": float(f"{p:.5g}"),
        "auc": round(float(u) / (len(g_ok) * len(h_ok)), 4),
        "generated_median": round(float(np.median(g_ok)), 4),
        "held_out_median": round(float(np.median(h_ok)), 4),
        "generated_quantiles": _quantiles(g_ok),
        "held_out_quantiles": _quantiles(h_ok),
        "copies": round(float((g_ok > np.quantile(h_ok, 0.99)).mean()), 4),
    }


def data_copying_test(
    generated: np.ndarray, training: np.ndarray, unseen: np.ndarray, permutations: int = 1000, seed: int = 0
) -> dict:
    """Are generated faces closer to their nearest training face than to their nearest real face the generator never
    saw? Descriptors (rows; NaN rows dropped); ``training`` and ``unseen`` are cut to one size. Statistic: the mean
    over generated faces of (similarity to the nearest training face - to the nearest unseen one). One-sided
    permutation test swapping the two reference sets' labels, so a single central face that every generic face
    finds nearest weighs as one face, not as thousands. ``share_closer_to_training``: 0.5 when it generalises."""
    g, t, u = (_normalise(x)[np.isfinite(x).all(axis=1)] for x in (generated, training, unseen))
    size = min(len(t), len(u))
    if len(g) < 2 or size < 2:
        raise ValueError(
            f"a data-copying test needs at least 2 generated and 2 reference faces per side, got {len(g)} "
            f"generated, {len(t)} training and {len(u)} unseen"
        )
    rng = np.random.default_rng(seed)
    references = np.concatenate(
        [t[rng.choice(len(t), size, replace=False)], u[rng.choice(len(u), size, replace=False)]]
    )
    similarities = (g @ references.T).astype(np.float32)

    def difference(labels: np.ndarray) -> np.ndarray:
        return similarities[:, labels].max(axis=1) - similarities[:, ~labels].max(axis=1)

    observed = difference(np.arange(2 * size) < size)
    null = np.array([difference(rng.permutation(2 * size) < size).mean() for _ in range(permutations)])
    return {
        "generated": int(len(g)),
        "reference_faces": int(size),
        "mean_difference": round(float(observed.mean()), 5),
        "share_closer_to_training": round(float((observed > 0).mean()), 4),
        "p_training_closer": round(float((1 + (null >= observed.mean()).sum()) / (1 + permutations)), 5),
        "permutations": permutations,
    }


def _quantiles(x: np.ndarray) -> dict[str, float]:
    return {str(q): round(float(v), 4) for q, v in zip(QUANTILES, np.quantile(x, QUANTILES), strict=True)}


def neighbour_grid(generated: np.ndarray, training: np.ndarray, indices: np.ndarray, path: Path, rows: int = 8) -> None:
    """A PNG grid (N x R x R x 3 uint8 faces): one row for each of the first ``rows`` generated faces that have
    neighbours, the generated face and then its nearest training faces (``indices``: N x k, from
    :func:`nearest_neighbours`)."""
    chosen = np.flatnonzero((indices >= 0).all(axis=1))[:rows]
    if not len(chosen):
        raise ValueError("no generated face has a training neighbour: nothing to show")
    tiles = np.concatenate([generated[chosen][:, None], training[indices[chosen]]], axis=1)
    save_grid(tiles.reshape(-1, *tiles.shape[2:]), path, nrow=tiles.shape[1])
