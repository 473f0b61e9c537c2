"""The per-photo outcomes of one condition, one row per seed and test photo: written by `train_recognizer`,
read back by `compare` (which bootstraps from them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from facegen.io import atomic_file
from recognition.metrics import SeedOutcome


def write_outcomes(path: Path, outcomes: Sequence[SeedOutcome], seeds: Sequence[int]) -> None:
    """One row per seed and test photo: kind (checkin/visitor), true, pred, score, threshold, group columns."""
    frames = []
    for seed, o in zip(seeds, outcomes):
        checkins = pd.DataFrame(
            {
                "seed": seed,
                "kind": "checkin",
                "true": o.true,
                "pred": o.pred,
                "score": o.score,
                **{f"group_{a}": g for a, g in o.groups.items()},
            }
        )
        visitors = pd.DataFrame(
            {
                "seed": seed,
                "kind": "visitor",
                "true": -1,
                "pred": -1,
                "score": o.visitor_score,
                **{f"group_{a}": -1 for a in o.groups},
            }
        )
        frames.append(pd.concat([checkins, visitors]).assign(threshold=o.threshold, num_classes=o.num_classes))
    with atomic_file(path) as f:
        pd.concat(frames, ignore_index=True).to_parquet(f, index=False)


def read_outcomes(path: Path) -> list[SeedOutcome]:
    """The per-seed outcomes written by `write_outcomes`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no outcomes; run `dvc repro train_recognizer` first")
    table = pd.read_parquet(path)
    attributes = [c.removeprefix("group_") for c in table.columns if c.startswith("group_")]
    outcomes = []
    for _, rows in table.groupby("seed", sort=True):
        checkins, visitors = rows[rows["kind"] == "checkin"], rows[rows["kind"] == "visitor"]
        outcomes.append(
            SeedOutcome(
                checkins["true"].to_numpy(),
                checkins["pred"].to_numpy(),
                checkins["score"].to_numpy(),
                visitors["score"].to_numpy(),
                {a: checkins[f"group_{a}"].to_numpy() for a in attributes},
                float(rows["threshold"].iloc[0]),
                int(rows["num_classes"].iloc[0]),
            )
        )
    return outcomes
