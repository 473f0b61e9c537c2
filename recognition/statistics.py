"""Intervals and tests that resample *people*, not photos: a roster person's check-ins succeed or fail together (the
same face, the same glasses), so photos are not independent and a photo bootstrap is too narrow.

Cluster (people) bootstrap, vectorised: each resample draws people with replacement (multinomial counts) and
weighs each drawn person's photos by those counts. Paired differences use the same draws for both sides.
scipy.stats.bootstrap resamples observations, not clusters, hence these few lines.

For a paired comparison of two conditions on the same photos: a sign-flip permutation test over people, BCa
intervals (Efron 1987), Holm's step-down adjustment across comparisons, and a power analysis by simulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import norm

EXACT_PEOPLE = 16  # up to this many people the sign-flip test enumerates all 2**people sign patterns
_CHUNK = 1 << 21  # matrix elements per block of sign patterns (bounds memory for large rosters)


def people_bootstrap(
    values: np.ndarray, people: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the photo-weighted mean of `values` and its percentile interval over people."""
    sums, counts, draws = _per_person(values, people, samples, seed)
    stats = (draws @ sums) / np.maximum(draws @ counts, 1e-12)
    return float(values.mean()), *_percentiles(stats, level)


def bca_interval(
    values: np.ndarray, people: np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): the photo-weighted mean and its bias-corrected and accelerated interval over people.

    Same draws as `people_bootstrap`. Bias z0: the share of bootstrap means below the estimate (ties count half);
    acceleration: skewness of the leave-one-person-out jackknife means. Degenerate data give (mean, mean, mean).
    """
    sums, counts, draws = _per_person(values, people, samples, seed)
    estimate = float(np.mean(values))
    stats = (draws @ sums) / np.maximum(draws @ counts, 1e-12)
    tolerance = 1e-12 * max(1.0, abs(estimate))
    if len(sums) < 2 or np.ptp(stats) <= tolerance:
        return estimate, estimate, estimate
    below = np.mean(stats < estimate - tolerance) + 0.5 * np.mean(np.abs(stats - estimate) <= tolerance)
    z0 = norm.ppf(np.clip(below, 0.5 / samples, 1 - 0.5 / samples))
    jackknife = (sums.sum() - sums) / np.maximum(counts.sum() - counts, 1e-12)
    spread = jackknife.mean() - jackknife
    squares = float(np.sum(spread**2))
    acceleration = float(np.sum(spread**3)) / (6 * squares**1.5) if squares > 0 else 0.0
    z = norm.ppf([(1 - level) / 2, (1 + level) / 2]) + z0
    shares = norm.cdf(z0 + z / np.maximum(1 - acceleration * z, 1e-12))
    low, high = np.percentile(stats, 100 * shares)
    return estimate, float(low), float(high)


def paired_difference(
    a: np.ndarray,
    b: np.ndarray,
    people: np.ndarray,
    samples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    *,
    method: str = "percentile",
) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high) with both sides resampled over the same people; `method`: percentile or bca."""
    intervals = {"percentile": people_bootstrap, "bca": bca_interval}
    if method not in intervals:
        raise ValueError(f"paired_difference: unknown method {method!r} (percentile or bca)")
    if a.shape != b.shape:
        raise ValueError(f"paired_difference: {a.shape} against {b.shape} outcomes")
    return intervals[method](a.astype(np.float64) - b.astype(np.float64), people, samples, seed, level)


def sign_flip_test(differences: np.ndarray, people: np.ndarray, samples: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of the paired permutation test over people: every person's summed differences change
    sign at random (conditions exchangeable within a person); statistic: the photo-weighted mean difference.
    Exact over all 2**people sign patterns up to EXACT_PEOPLE people, else `samples` random patterns."""
    if len(differences) != len(people) or len(differences) == 0:
        raise ValueError(f"sign_flip_test: {len(differences)} differences for {len(people)} people labels")
    differences = np.asarray(differences, dtype=np.float64)
    if not np.any(differences):
        return 1.0
    _, index = np.unique(people, return_inverse=True)
    sums = np.bincount(index, weights=differences)
    return float(_sign_flip_p(sums[None, :], len(differences), samples, np.random.default_rng(seed))[0])


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm–Bonferroni step-down adjusted p-values (monotone, at most 1); NaN stays NaN and does not count in m."""
    keys = [key for key, p in p_values.items() if not np.isnan(p)]
    raw = np.array([p_values[key] for key in keys], dtype=np.float64)
    order = np.argsort(raw, kind="stable")
    steps = (len(raw) - np.arange(len(raw))) * raw[order]
    adjusted = np.empty_like(raw)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    done = dict(zip(keys, adjusted.tolist()))
    return {key: done.get(key, float("nan")) for key in p_values}


def simulated_power(
    photos_per_person: np.ndarray,
    baseline_rate: float,
    effects: Sequence[float],
    simulations: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    permutations: int = 2000,
    icc: float = 0.3,
    concordance: float = 0.8,
) -> dict[float, float]:
    """effect -> power of `sign_flip_test` at `alpha` on a design of these people (photos each), by simulation.

    Each person's baseline success rate p ~ Beta(mean baseline_rate, a + b = (1 - icc) / icc); the condition's
    rate q = clip(p + effect, 0, 1). Per photo, with probability `concordance` both outcomes come from one shared
    uniform u (baseline u < p, condition u < q: they agree unless the rates separate them), else from two
    independent uniforms; either way the marginal rates are exactly p and q. All effects share the same draws.
    """
    counts = np.asarray(photos_per_person, dtype=np.int64)
    counts = counts[counts > 0]
    if counts.size == 0 or not 0 <= icc < 1 or not 0 <= concordance <= 1 or not 0 <= baseline_rate <= 1:
        raise ValueError("simulated_power: needs photos, 0 <= icc < 1, concordance and baseline_rate in [0, 1]")
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(counts.size), counts)
    if icc == 0 or baseline_rate in (0.0, 1.0):
        rates = np.full((simulations, counts.size), float(baseline_rate))
    else:
        total = (1 - icc) / icc
        rates = rng.beta(baseline_rate * total, (1 - baseline_rate) * total, size=(simulations, counts.size))
    uniforms = rng.random((3, simulations, person.size))
    rate, starts = rates[:, person], np.concatenate([[0], np.cumsum(counts)[:-1]])
    power = {}
    for effect in effects:
        baseline, condition = _paired_outcomes(rate, effect, concordance, uniforms)
        differences = condition.astype(np.float64) - baseline
        sums = np.add.reduceat(differences, starts, axis=1)
        p = _sign_flip_p(sums, person.size, permutations, np.random.default_rng(seed + 1))
        power[float(effect)] = float(np.mean(p < alpha))
    return power


def minimal_detectable_effect(power_curve: dict[float, float], target: float = 0.8) -> float | None:
    """The smallest effect whose power reaches `target`, interpolated linearly between the simulated effects
    (taken in ascending order); None if no simulated effect reaches it."""
    grid = sorted(power_curve.items())
    for i, (effect, power) in enumerate(grid):
        if power >= target:
            if i == 0:
                return float(effect)
            previous, below = grid[i - 1]
            return float(previous + (target - below) * (effect - previous) / (power - below))
    return None


def _paired_outcomes(
    rate: np.ndarray, effect: float, concordance: float, uniforms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, condition) successes at rates `rate` and clip(rate + effect, 0, 1): with probability
    `concordance` a photo's two outcomes share one uniform, else they use independent ones."""
    shared, other, coin = uniforms
    condition = np.where(coin < concordance, shared, other) < np.clip(rate + effect, 0, 1)
    return shared < rate, condition


def _sign_flip_p(sums: np.ndarray, photos: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Two-sided sign-flip p-values for each row of per-person sums (rows: data sets, columns: people)."""
    people = sums.shape[1]
    observed = np.abs(sums.sum(axis=1)) / photos - 1e-12
    exact = people <= EXACT_PEOPLE
    total = 1 << people if exact else samples
    extreme = np.zeros(len(sums))
    block = max(1, _CHUNK // max(people, len(sums)))
    for start in range(0, total, block):
        if exact:
            patterns = np.arange(start, min(start + block, total))[:, None] >> np.arange(people) & 1
        else:
            patterns = rng.integers(0, 2, size=(min(block, total - start), people))
        flipped = sums @ (1 - 2 * patterns).T.astype(np.float64) / photos
        extreme += np.sum(np.abs(flipped) >= observed[:, None], axis=1)
    return extreme / total if exact else (1 + extreme) / (1 + samples)


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
