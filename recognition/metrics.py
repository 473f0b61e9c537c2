"""Attendance metrics: closed-set top-1 and macro-F1, accuracy per attribute group, open-set TAR at a FAR,
and percentile-bootstrap intervals over the test photos (averaged over seeds).

TAR here is the open-set identification rate: a check-in counts only if it is accepted (score above the
threshold) *and* given the right name. The threshold either comes from elsewhere (the calibration people;
``tar_at_threshold``) or is the one that lets a FAR fraction of the test visitors in (``tar_at_far``, the
usual ROC-style figure). No library computes this open-set rate, hence the few lines here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_f1_score

from recognition.classifier import threshold_at_far


@dataclass(frozen=True)
class SeedOutcome:
    """One seed's predictions on the test photos, everything the metrics need."""

    true: np.ndarray  # check-in class indices
    pred: np.ndarray  # predicted class indices
    score: np.ndarray  # check-in scores
    visitor_score: np.ndarray  # scores of the visitors' photos
    groups: Mapping[str, np.ndarray]  # attribute -> 0/1 per check-in
    threshold: float  # calibrated open-set threshold
    num_classes: int

    def subset(self, checkins: np.ndarray, visitors: np.ndarray) -> SeedOutcome:
        return SeedOutcome(
            self.true[checkins],
            self.pred[checkins],
            self.score[checkins],
            self.visitor_score[visitors],
            {a: g[checkins] for a, g in self.groups.items()},
            self.threshold,
            self.num_classes,
        )


def top1_accuracy(true: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(true == pred)) if len(true) else float("nan")


def macro_f1(true: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    return float(multiclass_f1_score(torch.tensor(pred), torch.tensor(true), num_classes=num_classes, average="macro"))


def tar_at_threshold(correct: np.ndarray, score: np.ndarray, threshold: float) -> float:
    return float(np.mean(correct & (score > threshold))) if len(score) else float("nan")


def tar_at_far(correct: np.ndarray, score: np.ndarray, impostor_score: np.ndarray, far: float) -> float:
    return tar_at_threshold(correct, score, threshold_at_far(impostor_score, far))


def outcome_metrics(o: SeedOutcome, far: float) -> dict[str, float]:
    correct = o.true == o.pred
    metrics = {
        "top1": top1_accuracy(o.true, o.pred),
        "macro_f1": macro_f1(o.true, o.pred, o.num_classes),
        "tar_at_far": tar_at_threshold(correct, o.score, o.threshold),
        "visitor_far": float(np.mean(o.visitor_score > o.threshold)) if len(o.visitor_score) else float("nan"),
        "tar_at_far_test": tar_at_far(correct, o.score, o.visitor_score, far) if len(o.visitor_score) else float("nan"),
    }
    for attribute, has in o.groups.items():
        metrics[f"top1_with_{attribute}"] = top1_accuracy(o.true[has == 1], o.pred[has == 1])
        metrics[f"top1_without_{attribute}"] = top1_accuracy(o.true[has == 0], o.pred[has == 0])
    return metrics


def mean_over_seeds(outcomes: Sequence[SeedOutcome], far: float) -> dict[str, float]:
    per_seed = [outcome_metrics(o, far) for o in outcomes]
    return {k: float(np.mean([m[k] for m in per_seed])) for k in per_seed[0]}


def bootstrap_ci(
    outcomes: Sequence[SeedOutcome], far: float, samples: int, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the seed-averaged metrics when check-ins and visitors are resampled (the same
    resample for every seed, since all seeds are tested on the same photos)."""
    rng = np.random.default_rng(seed)
    n_checkins, n_visitors = len(outcomes[0].true), len(outcomes[0].visitor_score)
    draws = []
    for _ in range(samples):
        checkins, visitors = rng.integers(0, n_checkins, n_checkins), rng.integers(0, n_visitors, n_visitors)
        draws.append(mean_over_seeds([o.subset(checkins, visitors) for o in outcomes], far))
    tail = (1 - level) / 2 * 100
    return {
        k: (
            float(np.nanpercentile([d[k] for d in draws], tail)),
            float(np.nanpercentile([d[k] for d in draws], 100 - tail)),
        )
        for k in draws[0]
    }
