"""Paired effects of every arm against its recognizer's baseline, with tests and intervals over people (issue 28).

A photo's value is its mean over training seeds and oracle turns; an arm's and the baseline's values are paired
per roster draw and photo, then averaged over the draws in which the photo was a check-in, so each distinct
photo counts once and a person is one cluster whatever the draws.

Endpoints (``endpoints``): the primary ``top1_with_<attribute>`` (check-ins wearing it), the same on the people
the oracle can serve (at least two such photos) and, where the lenses are labelled, on clear glasses and on
sunglasses apart; ``top1``; ``tar_at_far`` (named right *and* accepted) and ``visitor_far`` (lower is better).

Each contrast: ``delta``, a BCa interval over people (``ci``), a sign-flip permutation p-value over people
(``p_permutation``), ``photos`` and ``people``. The pre-specified primary contrast is the primary GAN arm against
the baseline on the primary endpoint for the ``prototypes`` recognizer; every other contrast on that endpoint is
Holm-adjusted together (``p_holm``). For ``tar_at_far`` and ``visitor_far`` the calibration people who set each
run's threshold are resampled with the test people (percentile interval; the p-value holds the thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facegen.config import AugmentationConfig
from recognition.augmentation.arms import BASELINE, ORACLE, other_editor_arms, primary_arm
from recognition.augmentation.experiment import PRIMARY_FAMILY
from recognition.statistics import (
    bca_interval,
    holm,
    minimal_detectable_effect,
    sign_flip_test,
    simulated_power,
)

THRESHOLDED = ("tar_at_far", "visitor_far")


@dataclass(frozen=True)
class Endpoint:
    kind: str  # checkin | visitor
    column: str  # correct | identified | accepted
    where: str | None = None  # a pandas query the photo must meet


def endpoints(primary: str, lenses: bool = False) -> dict[str, Endpoint]:
    wearing = f"group_{primary} == 1"
    out = {
        f"top1_with_{primary}": Endpoint("checkin", "correct", wearing),
        f"top1_with_{primary}_oracle_people": Endpoint("checkin", "correct", f"{wearing} and oracle_people"),
    }
    if lenses:
        out |= {
            f"top1_with_{primary}_{kind}": Endpoint("checkin", "correct", f"{wearing} and lenses == '{kind}'")
            for kind in ("clear", "sun")
        }
    return out | {
        "top1": Endpoint("checkin", "correct"),
        "tar_at_far": Endpoint("checkin", "identified"),
        "visitor_far": Endpoint("visitor", "accepted"),
    }


def summarise(outcomes: pd.DataFrame, settings: AugmentationConfig, far: float, seed: int = 0) -> dict:
    """primary, arms (family -> arm -> endpoint -> effect), oracle_share (the primary arm's share of the oracle's
    gain), power and other_editors (arm -> its share of the oracle's gain, for the second editor and confined edits)."""
    table = outcomes.assign(identified=outcomes["correct"] & outcomes["accepted"])
    primary = settings.primary_attribute
    names = endpoints(primary, lenses=bool((table["lenses"] != "").any()))
    first = f"top1_with_{primary}"
    arms: dict = {}
    for family, rows in table.groupby("family", sort=False):
        arms[family] = {}
        for arm in [a for a in rows["arm"].unique() if a != BASELINE]:
            arms[family][arm] = {
                name: _effect(rows, arm, name, endpoint, settings, far, seed) for name, endpoint in names.items()
            }
    chosen = (PRIMARY_FAMILY, primary_arm(settings))
    rest = {(f, a): arms[f][a][first]["p_permutation"] for f in arms for a in arms[f] if (f, a) != chosen}
    adjusted = holm({f"{f}/{a}": p for (f, a), p in rest.items()})
    for (family, arm), _ in rest.items():
        arms[family][arm][first]["p_holm"] = adjusted[f"{family}/{arm}"]
    if chosen[1] in arms.get(PRIMARY_FAMILY, {}):
        arms[PRIMARY_FAMILY][chosen[1]][first]["p_holm"] = arms[PRIMARY_FAMILY][chosen[1]][first]["p_permutation"]
    summary = {
        "primary": {"family": chosen[0], "arm": chosen[1], "endpoint": first}
        | arms.get(chosen[0], {}).get(chosen[1], {}).get(first, {}),
        "arms": arms,
        "oracle_share": _oracle_shares(table, primary_arm(settings), settings, seed),
        "power": _power(table, primary, settings, seed),
        "other_editors": {arm: _oracle_shares(table, arm, settings, seed) for arm in other_editor_arms(settings)},
    }
    return summary


def _paired(rows: pd.DataFrame, arm: str, endpoint: Endpoint) -> pd.DataFrame:
    """Per distinct photo: the baseline's and the arm's values, and the photo's person."""
    rows = rows[(rows["kind"] == endpoint.kind) & rows["arm"].isin([BASELINE, arm])]
    if endpoint.where:
        rows = rows.query(endpoint.where)
    runs = rows.groupby(["arm", "draw", "image_id", "identity"])[endpoint.column].mean().unstack("arm")
    if rows.empty or BASELINE not in runs or arm not in runs:
        return pd.DataFrame(columns=["baseline", "arm", "identity"])
    pairs = runs[[BASELINE, arm]].dropna()
    photos = pairs.groupby(level=["image_id", "identity"]).mean().reset_index()
    return photos.rename(columns={BASELINE: "baseline", arm: "arm"})


def _effect(
    rows: pd.DataFrame, arm: str, name: str, endpoint: Endpoint, settings: AugmentationConfig, far: float, seed: int
) -> dict:
    photos = _paired(rows, arm, endpoint)
    if photos.empty:  # no photo of this kind (a small roster without eyeglass-wearing check-ins)
        nan = float("nan")
        return {"baseline": nan, "with_arm": nan, "delta": nan, "ci": [nan, nan], "p_permutation": nan, "photos": 0}
    difference = (photos["arm"] - photos["baseline"]).to_numpy(np.float64)
    people = photos["identity"].to_numpy()
    if name in THRESHOLDED:
        low, high = _with_calibration_resampled(rows, arm, endpoint, far, settings.bootstrap_samples, seed)
    else:
        _, low, high = bca_interval(difference, people, settings.bootstrap_samples, seed)
    return {
        "baseline": round(float(photos["baseline"].mean()), 4),
        "with_arm": round(float(photos["arm"].mean()), 4),
        "delta": round(float(difference.mean()), 4),
        "ci": [round(low, 4), round(high, 4)],
        "p_permutation": round(sign_flip_test(difference, people, settings.permutation_samples, seed), 5),
        "photos": int(len(photos)),
        "people": int(len(np.unique(people))),
    }


def _with_calibration_resampled(
    rows: pd.DataFrame, arm: str, endpoint: Endpoint, far: float, samples: int, seed: int
) -> tuple[float, float]:
    """Percentile interval of the paired difference when both the test people and the calibration people (whose
    scores set every run's threshold) are drawn again."""
    rows = rows[rows["arm"].isin([BASELINE, arm])]
    calibration, test = rows[rows["kind"] == "calibration"], rows[rows["kind"] == endpoint.kind]
    cal_people, cal_person = np.unique(calibration["identity"].astype(str), return_inverse=True)
    keys = pd.MultiIndex.from_frame(test[["draw", "image_id", "identity"]]).unique()
    rng = np.random.default_rng(seed)
    cal_weights = rng.multinomial(len(cal_people), np.full(len(cal_people), 1 / len(cal_people)), size=samples)
    cal_person = pd.Series(cal_person, index=calibration.index)
    sums = {a: np.zeros((len(keys), samples)) for a in (BASELINE, arm)}
    counts = {a: np.zeros(len(keys)) for a in (BASELINE, arm)}
    for (a, _, _, _), run in rows.groupby(["arm", "draw", "seed", "turn"]):
        cal = run[run["kind"] == "calibration"]
        thresholds = _weighted_thresholds(
            cal["score"].to_numpy(), cal_weights[:, cal_person[cal.index].to_numpy()], far
        )
        photos = run[run["kind"] == endpoint.kind]
        value = photos["score"].to_numpy()[:, None] > thresholds[None, :]
        if endpoint.column == "identified":
            value &= photos["correct"].to_numpy(bool)[:, None]
        at = keys.get_indexer(pd.MultiIndex.from_frame(photos[["draw", "image_id", "identity"]]))
        sums[a][at] += value
        counts[a][at] += 1
    both = (counts[BASELINE] > 0) & (counts[arm] > 0)
    per_key = sums[arm][both] / counts[arm][both, None] - sums[BASELINE][both] / counts[BASELINE][both, None]
    images = keys[both].droplevel("draw")
    image_codes, distinct = pd.factorize(images)
    per_image = np.zeros((len(distinct), samples))
    np.add.at(per_image, image_codes, per_key)
    per_image /= np.bincount(image_codes)[:, None]
    people, person = np.unique(distinct.get_level_values(1).astype(str), return_inverse=True)  # (image, person)
    test_weights = rng.multinomial(len(people), np.full(len(people), 1 / len(people)), size=samples)[:, person]
    stats = (test_weights * per_image.T).sum(1) / np.maximum(test_weights.sum(1), 1)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def _weighted_thresholds(scores: np.ndarray, weights: np.ndarray, far: float) -> np.ndarray:
    """`threshold_at_far` for each row of ``weights`` (S x n, how often each impostor score is drawn)."""
    order = np.argsort(-scores, kind="stable")
    ranked, cumulative = scores[order], np.cumsum(weights[:, order], axis=1)
    allowed = np.floor(far * cumulative[:, -1] + 1e-9)
    index = (cumulative <= allowed[:, None]).sum(axis=1)
    return np.where(index < len(ranked), ranked[np.minimum(index, len(ranked) - 1)], ranked[-1] - 1e-9)


def _oracle_shares(table: pd.DataFrame, gan: str, settings: AugmentationConfig, seed: int) -> dict:
    """Per recognizer that ran the oracle: the GAN arm's share of its gain."""
    return {
        family: _oracle_share(rows, gan, settings.primary_attribute, settings.bootstrap_samples, seed)
        for family, rows in table.groupby("family", sort=False)
        if ORACLE in set(rows["arm"])
    }


def _oracle_share(rows: pd.DataFrame, gan: str, primary: str, samples: int, seed: int) -> dict:
    """The GAN arm's gain as a share of the oracle's, on the oracle people's photos wearing the attribute."""
    endpoint = endpoints(primary)[f"top1_with_{primary}_oracle_people"]
    oracle, edits = _paired(rows, ORACLE, endpoint), _paired(rows, gan, endpoint)
    both = oracle.merge(edits, on=["image_id", "identity"], suffixes=("_oracle", "_gan"))
    if both.empty:
        return {"share": None, "ci": [None, None], "photos": 0, "people": 0, "reading": "no oracle photos"}
    gain_oracle = (both["arm_oracle"] - both["baseline_oracle"]).to_numpy(np.float64)
    gain_gan = (both["arm_gan"] - both["baseline_gan"]).to_numpy(np.float64)
    people = both["identity"].to_numpy()
    out = {
        "oracle_gain": round(float(gain_oracle.mean()), 4),
        "gan_gain": round(float(gain_gan.mean()), 4),
        "photos": int(len(both)),
        "people": int(len(np.unique(people))),
    }
    if gain_oracle.mean() <= 0:
        return out | {"share": None, "ci": [None, None], "reading": "the oracle does not gain: no share to take"}
    share = float(gain_gan.mean() / gain_oracle.mean())
    return out | {"share": round(share, 4), "ci": _ratio_interval(gain_gan, gain_oracle, people, samples, seed)}


def _ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, people: np.ndarray, samples: int, seed: int
) -> list[float]:
    """Percentile interval of sum(numerator) / sum(denominator) over draws of people (draws with no gain in the
    denominator are left out)."""
    _, index = np.unique(people, return_inverse=True)
    n = index.max() + 1
    draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=samples)
    top, bottom = draws @ np.bincount(index, weights=numerator), draws @ np.bincount(index, weights=denominator)
    ratios = top[bottom > 0] / bottom[bottom > 0]
    return [round(float(np.percentile(ratios, 2.5)), 4), round(float(np.percentile(ratios, 97.5)), 4)]


def _power(table: pd.DataFrame, primary: str, settings: AugmentationConfig, seed: int) -> dict:
    """Prospective power of the primary test by simulation: this design's people and photos wearing the
    attribute, the planned baseline rate, each simulated true gain."""
    wearing = table[
        (table["family"] == PRIMARY_FAMILY)
        & (table["arm"] == BASELINE)
        & (table["kind"] == "checkin")
        & (table[f"group_{primary}"] == 1)
    ]
    per_person = wearing.drop_duplicates("image_id").groupby("identity").size().to_numpy()
    if len(per_person) == 0:
        return {"curve": {}, "mde_80": None, "people": 0, "photos": 0}
    curve = simulated_power(
        per_person,
        settings.planning_baseline_rate,
        settings.power_effects,
        simulations=settings.power_simulations,
        seed=seed,
    )
    return {
        "planning_baseline_rate": settings.planning_baseline_rate,
        "curve": {f"{effect:g}": round(power, 3) for effect, power in curve.items()},
        "mde_80": minimal_detectable_effect(curve),
        "people": int(len(per_person)),
        "photos": int(per_person.sum()),
    }
