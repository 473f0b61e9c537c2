"""Score one recognizer (its embeddings of the attendance sets) on the split: nearest class mean by cosine over
the enrolment photos, the open-set threshold set on the calibration people, then the check-ins and visitors.

Faces a recognizer could not embed (NaN rows: the teacher found no landmarks) are counted: an enrolment photo
is left out of its prototype, a check-in counts as not recognised, a visitor as rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recognition.classifier import NearestClassMean, threshold_at_far
from recognition.metrics import SeedOutcome, outcome_metrics
from recognition.sets import FaceSet

SPLIT_SETS = ("calibration", "enrol", "checkin", "visitor")


@dataclass(frozen=True)
class SplitScore:
    metrics: dict[str, float]
    correct: np.ndarray  # per check-in: named right (closed set)
    people: np.ndarray  # per check-in: who it is (for people-level intervals)
    skipped: dict[str, int]  # per set: faces the recognizer could not embed


def score_split(
    embeddings: Mapping[str, np.ndarray], sets: Mapping[str, FaceSet], gap_attributes: Sequence[str], far: float
) -> SplitScore:
    """Metrics of `outcome_metrics` (top1, top1_with_<attr>, tar_at_far, visitor_far, ...) for one recognizer."""
    skipped = {name: int(np.isnan(embeddings[name]).any(axis=1).sum()) for name in SPLIT_SETS}
    enrol, usable = embeddings["enrol"], ~np.isnan(embeddings["enrol"]).any(axis=1)
    classifier = NearestClassMean(enrol[usable], sets["enrol"].annotations["identity"].to_numpy()[usable])
    calibration = embeddings["calibration"][~np.isnan(embeddings["calibration"]).any(axis=1)]
    threshold = threshold_at_far(classifier.predict(calibration).score, far)
    label, score = _predict(classifier, embeddings["checkin"])
    _, visitor_score = _predict(classifier, embeddings["visitor"])
    checkin = sets["checkin"].annotations
    true = classifier.labels_of(checkin["identity"].to_numpy())
    groups = {a: checkin[a].to_numpy() for a in gap_attributes}
    outcome = SeedOutcome(true, label, score, visitor_score, groups, threshold, len(classifier.classes))
    return SplitScore(outcome_metrics(outcome, far), true == label, checkin["identity"].astype(str).to_numpy(), skipped)


def _predict(classifier: NearestClassMean, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores; a face without embedding gets label -1 and score -inf (never accepted)."""
    usable = ~np.isnan(embeddings).any(axis=1)
    label, score = np.full(len(embeddings), -1), np.full(len(embeddings), -np.inf)
    if usable.any():
        found = classifier.predict(embeddings[usable])
        label[usable], score[usable] = found.label, found.score
    return label, score
