"""recognition.statistics: the sign-flip test over people, BCa intervals, Holm's adjustment and the power simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from recognition.statistics import (
    _paired_outcomes,
    bca_interval,
    holm,
    minimal_detectable_effect,
    paired_difference,
    people_bootstrap,
    sign_flip_test,
    simulated_power,
)


def _clustered(rng: np.random.Generator, people: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Paired differences of people with 1-5 photos each: a person-level effect plus photo noise, centred on shift."""
    labels = np.repeat(np.arange(people), rng.integers(1, 6, people))
    return shift + rng.normal(size=people)[labels] + rng.normal(size=labels.size), labels


def test_sign_flip_matches_brute_force_enumeration() -> None:
    rng = np.random.default_rng(5)
    differences, people = _clustered(rng, 5, shift=0.4)
    observed = abs(differences.mean())
    extreme = 0
    for signs in itertools.product((-1, 1), repeat=5):
        flipped = sum(signs[person] * d for person, d in zip(people, differences)) / len(differences)
        extreme += abs(flipped) >= observed - 1e-12
    assert sign_flip_test(differences, people) == pytest.approx(extreme / 32)


def test_sign_flip_sampled_close_to_exact_above_sixteen_people() -> None:
    rng = np.random.default_rng(7)
    differences, people = _clustered(rng, 17, shift=0.3)
    sums = np.bincount(people, weights=differences)
    patterns = np.array(list(itertools.product((-1, 1), repeat=17)), dtype=np.float64)
    exact = np.mean(np.abs(patterns @ sums) >= abs(sums.sum()) - 1e-9)
    assert sign_flip_test(differences, people, samples=20000) == pytest.approx(exact, abs=0.01)


def test_sign_flip_uniform_under_null_small_under_effect() -> None:
    rng = np.random.default_rng(11)
    null = [sign_flip_test(*_clustered(rng, 20), samples=999, seed=i) for i in range(200)]
    assert 0.02 <= np.mean(np.array(null) < 0.05) <= 0.09
    assert sign_flip_test(*_clustered(rng, 20, shift=1.5)) < 0.01
    assert sign_flip_test(np.zeros(6), np.arange(6) // 2) == 1.0


def test_bca_close_to_percentile_on_symmetric_data() -> None:
    rng = np.random.default_rng(2)
    values, people = _clustered(rng, 80)
    mean, low, high = people_bootstrap(values, people)
    bca = bca_interval(values, people)
    assert bca[0] == mean
    assert abs(bca[1] - low) < 0.05 * (high - low) and abs(bca[2] - high) < 0.05 * (high - low)


def test_bca_shifts_right_on_right_skewed_data() -> None:
    rng = np.random.default_rng(3)
    people = np.repeat(np.arange(30), 3)
    values = rng.lognormal(sigma=1.2, size=30)[people] + rng.normal(0, 0.1, people.size)
    _, low, high = people_bootstrap(values, people)
    _, bca_low, bca_high = bca_interval(values, people)
    assert bca_low > low and bca_high > high


def test_bca_covers_mean_of_skewed_cluster_population() -> None:
    # gamma(2) people (skewness 1.4), 1-4 photos each: the BCa interval's coverage here is about 0.87-0.88 at
    # nominal 0.90 (a 40-person bootstrap is a little narrow), so the bound leaves room for 200 repetitions' noise
    rng = np.random.default_rng(0)
    covered = 0
    for repetition in range(200):
        people = np.repeat(np.arange(40), rng.integers(1, 5, 40))
        values = rng.gamma(2.0, size=40)[people] + rng.normal(0, 0.3, people.size)
        _, low, high = bca_interval(values, people, samples=500, seed=repetition, level=0.9)
        covered += low <= 2.0 <= high
    assert covered / 200 >= 0.84


def test_bca_degenerate_cases_are_finite() -> None:
    assert bca_interval(np.array([1.0, 2.0, 4.0]), np.zeros(3)) == pytest.approx((7 / 3,) * 3)
    assert bca_interval(np.full(6, 0.5), np.arange(6)) == (0.5, 0.5, 0.5)
    assert all(map(math.isfinite, bca_interval(np.array([0.0, 0.0, 0.0, 1.0]), np.arange(4), samples=50)))


def test_paired_difference_methods() -> None:
    rng = np.random.default_rng(4)
    a, b, people = rng.random(60), rng.random(60), np.arange(60) // 3
    assert paired_difference(a, b, people) == people_bootstrap(a - b, people)
    assert paired_difference(a, b, people, method="bca") == bca_interval(a - b, people)
    with pytest.raises(ValueError, match="bootstrap-t"):
        paired_difference(a, b, people, method="bootstrap-t")


def test_holm_hand_worked_example_and_monotone() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5})
    assert adjusted == pytest.approx({"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.5})
    raw = dict(zip("abcdefgh", np.random.default_rng(1).random(8).tolist()))
    adjusted = holm(raw)
    ordered = [adjusted[key] for key in sorted(raw, key=raw.get)]
    assert ordered == sorted(ordered) and all(raw[k] <= adjusted[k] <= 1 for k in raw)
    nan = holm({"a": 0.01, "b": float("nan"), "c": 0.04})
    assert nan["a"] == pytest.approx(0.02) and nan["c"] == pytest.approx(0.04) and math.isnan(nan["b"])


def test_paired_outcomes_hit_the_target_rates() -> None:
    uniforms = np.random.default_rng(0).random((3, 200_000))
    baseline, condition = _paired_outcomes(np.full(200_000, 0.6), 0.3, 0.8, uniforms)
    assert baseline.mean() == pytest.approx(0.6, abs=0.005) and condition.mean() == pytest.approx(0.9, abs=0.005)
    agree = 0.8 * (1 - 0.3) + 0.2 * (0.6 * 0.9 + 0.4 * 0.1)  # shared uniform: agree unless it falls in [0.6, 0.9)
    assert np.mean(baseline == condition) == pytest.approx(agree, abs=0.005)


def test_simulated_power_rises_with_effect() -> None:
    photos = np.random.default_rng(1).integers(1, 7, 29)
    power = simulated_power(photos, 0.7, [0.0, 0.1, 0.25], simulations=300, permutations=500)
    assert power[0.0] <= 0.08 < power[0.1] < power[0.25] and power[0.25] > 0.8
    assert simulated_power(photos, 0.7, [0.1], simulations=50, permutations=200, seed=3) == simulated_power(
        photos, 0.7, [0.1], simulations=50, permutations=200, seed=3
    )


def test_simulated_power_near_alpha_without_effect() -> None:
    # concordant binary outcomes make the permutation distribution lumpy (the test is conservative then);
    # independent outcomes bring the rejection rate close to alpha
    photos = np.full(29, 4)
    power = simulated_power(photos, 0.5, [0.0], simulations=400, permutations=500, icc=0.05, concordance=0.0)
    assert 0.015 <= power[0.0] <= 0.08


def test_minimal_detectable_effect_interpolates() -> None:
    curve = {0.2: 0.9, 0.0: 0.05, 0.1: 0.5}
    assert minimal_detectable_effect(curve) == pytest.approx(0.175)
    assert minimal_detectable_effect(curve, target=0.04) == 0.0
    assert minimal_detectable_effect(curve, target=0.95) is None
