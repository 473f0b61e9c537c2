"""The attendance classifier: nearest class mean on cosine similarity, with an open-set threshold.

:func:`enrolment_classifier` combines a person's real enrolment images with images added to them (augmentation)
by one of three rules (``COMBINATIONS``): ``pooled`` (every image weighs one), ``balanced`` (the mean of the
real images and the mean of the added ones weigh 1:1) or ``max`` (a check-in's score for a person is its best
cosine to any single image, :class:`NearestTemplate`).

Each roster person's prototype is the normalised mean of their enrolment embeddings (real and augmented,
equally weighted). A check-in goes to the most similar prototype; its score is that cosine similarity, the
quantity facenet verification thresholds. With a handful of enrolment photos per person a prototype has
nothing to overfit and no hyperparameters to tune on a test set, and augmented embeddings move the
prototype exactly as extra enrolment photos of that person would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Combination = Literal["pooled", "balanced", "max"]
COMBINATIONS: tuple[Combination, ...] = ("pooled", "balanced", "max")


@dataclass(frozen=True)
class Prediction:
    label: np.ndarray  # index into the classifier's classes
    score: np.ndarray  # cosine similarity to that class's prototype


class NearestClassMean:
    def __init__(self, embeddings: np.ndarray, identities: np.ndarray) -> None:
        self.classes = np.unique(identities.astype(str))
        labels = np.searchsorted(self.classes, identities.astype(str))
        sums = np.zeros((len(self.classes), embeddings.shape[1]), np.float64)
        np.add.at(sums, labels, embeddings)
        self.prototypes = sums / np.linalg.norm(sums, axis=1, keepdims=True)

    @classmethod
    def from_prototypes(cls, classes: np.ndarray, prototypes: np.ndarray) -> NearestClassMean:
        """A classifier whose class prototypes were learnt elsewhere (rows of ``prototypes``, L2-normalised)."""
        classifier = cls.__new__(cls)
        classifier.classes, classifier.prototypes = np.asarray(classes).astype(str), np.asarray(prototypes, np.float64)
        return classifier

    def predict(self, embeddings: np.ndarray) -> Prediction:
        similarity = embeddings.astype(np.float64) @ self.prototypes.T
        return Prediction(similarity.argmax(1), similarity.max(1))

    def labels_of(self, identities: np.ndarray) -> np.ndarray:
        """Class indices of identities (-1 for people not on the roster)."""
        identities = identities.astype(str)
        index = np.searchsorted(self.classes, identities).clip(0, len(self.classes) - 1)
        return np.where(self.classes[index] == identities, index, -1)


class NearestTemplate:
    """Each check-in goes to the person owning its most similar single enrolment image (max over templates)."""

    def __init__(self, embeddings: np.ndarray, identities: np.ndarray) -> None:
        owners = identities.astype(str)
        self.classes = np.unique(owners)
        order = np.argsort(owners, kind="stable")
        self.templates = embeddings[order].astype(np.float64)
        self.starts = np.searchsorted(owners[order], self.classes)

    def predict(self, embeddings: np.ndarray) -> Prediction:
        similarity = np.maximum.reduceat(embeddings.astype(np.float64) @ self.templates.T, self.starts, axis=1)
        return Prediction(similarity.argmax(1), similarity.max(1))


def enrolment_classifier(
    real: np.ndarray,
    real_owners: np.ndarray,
    added: np.ndarray | None = None,
    added_owners: np.ndarray | None = None,
    rule: Combination = "pooled",
) -> NearestClassMean | NearestTemplate:
    """A classifier over the people of ``real_owners`` from their real enrolment embeddings and the embeddings
    added to them (owners must be among the real ones); a person with nothing added keeps their real mean."""
    if rule not in COMBINATIONS:
        raise ValueError(f"combination rule {rule!r}: expected one of {COMBINATIONS}")
    real_owners = real_owners.astype(str)
    if added is None or added_owners is None or len(added) == 0:
        added, added_owners = real[:0], real_owners[:0]
    added_owners = added_owners.astype(str)
    unknown = sorted(set(added_owners) - set(real_owners))
    if unknown:
        raise ValueError(f"added images of {len(unknown)} people with no real enrolment image, e.g. {unknown[0]}")
    if rule == "max":
        return NearestTemplate(np.concatenate([real, added]), np.concatenate([real_owners, added_owners]))
    if rule == "pooled":
        return NearestClassMean(np.concatenate([real, added]), np.concatenate([real_owners, added_owners]))
    classes = np.unique(real_owners)
    prototypes = _class_means(real, real_owners, classes) + _class_means(added, added_owners, classes)
    return NearestClassMean.from_prototypes(classes, prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True))


def _class_means(embeddings: np.ndarray, owners: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per class, the mean of its rows (zeros for a class with none)."""
    labels = np.searchsorted(classes, owners)
    sums = np.zeros((len(classes), embeddings.shape[1]), np.float64)
    np.add.at(sums, labels, embeddings)
    return sums / np.maximum(np.bincount(labels, minlength=len(classes)), 1)[:, None]


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The lowest threshold that accepts (score > threshold) at most floor(far * n) of the n impostor scores."""
    if len(impostor_scores) == 0:
        raise ValueError("no impostor scores to set the open-set threshold on")
    allowed = int(np.floor(far * len(impostor_scores) + 1e-9))
    ranked = np.sort(impostor_scores)[::-1]
    return float(ranked[allowed]) if allowed < len(ranked) else float(ranked[-1]) - 1e-9
