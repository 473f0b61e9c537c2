"""Paired effects of each augmentation condition against its family's baseline, with intervals over people.

Endpoints (per test photo, so a person's photos move together in the bootstrap):
- primary ``top1_with_<attribute>``: top-1 on check-ins wearing the primary attribute (Eyeglasses);
- ``top1``: top-1 on all check-ins; ``tar_at_far``: check-ins accepted at the calibrated threshold *and* named
  right; ``visitor_far``: visitor photos accepted (lower is better).

A photo's value is its mean over training seeds; the condition's and the baseline's values are paired on the
same draw and photo, and their difference is bootstrapped over people (check-in people, or visitors for
``visitor_far``) pooled across roster draws: a person drawn twice counts as one cluster. The smallest effect
the design detects (two-sided 5%, 80% power) is 2.8 standard errors of the paired difference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recognition.statistics import paired_difference

Z_POWER = 2.8  # z(0.975) + z(0.80): minimal detectable effect in standard errors


def endpoints(primary: str) -> dict[str, tuple[str, str, str | None]]:
    """name -> (photo kind, value column, group column that must be 1)."""
    return {
        f"top1_with_{primary}": ("checkin", "correct", f"group_{primary}"),
        "top1": ("checkin", "correct", None),
        "tar_at_far": ("checkin", "identified", None),
        "visitor_far": ("visitor", "accepted", None),
    }


def paired_effects(outcomes: pd.DataFrame, primary: str, samples: int, seed: int = 0) -> dict:
    """family -> condition -> endpoint -> {baseline, condition, difference, low, high, mde, people, photos}."""
    table = outcomes.assign(identified=outcomes["correct"] & outcomes["accepted"])
    out: dict = {}
    for family, rows in table.groupby("family", sort=False):
        out[family] = {}
        for condition in [c for c in rows["condition"].unique() if c != "baseline"]:
            out[family][condition] = {
                name: _effect(rows, condition, kind, column, group, samples, seed)
                for name, (kind, column, group) in endpoints(primary).items()
            }
    return out


def _effect(
    rows: pd.DataFrame, condition: str, kind: str, column: str, group: str | None, samples: int, seed: int
) -> dict:
    rows = rows[rows["kind"] == kind]
    if group is not None:
        rows = rows[rows[group] == 1]
    if rows.empty:  # no photo in this group (a small roster without eyeglass-wearing check-ins)
        return dict.fromkeys(("baseline", "condition", "difference", "low", "high", "mde"), float("nan")) | {
            "people": 0,
            "photos": 0,
        }
    per_photo = rows.groupby(["condition", "draw", "image_id", "identity"])[column].mean().unstack("condition")
    per_photo = per_photo[["baseline", condition]].dropna()
    people = per_photo.index.get_level_values("identity").to_numpy()
    difference, low, high = paired_difference(
        per_photo[condition].to_numpy(), per_photo["baseline"].to_numpy(), people, samples, seed
    )
    return {
        "baseline": round(float(per_photo["baseline"].mean()), 4),
        "condition": round(float(per_photo[condition].mean()), 4),
        "difference": round(difference, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "mde": round(Z_POWER * (high - low) / 3.92, 4),
        "people": int(len(np.unique(people))),
        "photos": int(len(per_photo)),
    }
