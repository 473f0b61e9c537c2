"""Intervals that resample *people*, not photos: a roster person's check-ins succeed or fail together (the same
face, the same glasses), so photos are not independent and a photo bootstrap is too narrow.

Cluster (people) bootstrap, vectorised: each resample draws people with replacement (multinomial counts) and
weighs each drawn person's photos by those counts. Paired differences use the same draws for both sides.
scipy.stats.bootstrap resamples observations, not clusters, hence these few lines.
"""

from __future__ import annotations

import numpy as np


def people_bootstrap(
    values: np.ndarray, people: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the photo-weighted mean of `values` and its percentile interval over people."""
    sums, counts, draws = _per_person(values, people, samples, seed)
    stats = (draws @ sums) / np.maximum(draws @ counts, 1e-12)
    return float(values.mean()), *_percentiles(stats, level)


def paired_difference(
    a: np.ndarray, b: np.ndarray, people: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high) with both sides resampled over the same people."""
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.shape} against {b.shape} outcomes")
    return people_bootstrap(a.astype(np.float64) - b.astype(np.float64), people, samples, seed, level)


def _per_person(
    values: np.ndarray, people: np.ndarray, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(values) != len(people) or len(values) == 0:
        raise ValueError(f"people bootstrap: {len(values)} values for {len(people)} people labels")
    _, index = np.unique(people, return_inverse=True)
    sums = np.bincount(index, weights=values.astype(np.float64))
    counts = np.bincount(index).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(sums), np.full(len(sums), 1 / len(sums)), size=samples).astype(np.float64)
    return sums, counts, draws


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))
