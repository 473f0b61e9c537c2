"""The attendance classifier: nearest class mean on cosine similarity, with an open-set threshold.

Each roster person's prototype is the normalised mean of their enrolment embeddings (real and augmented,
equally weighted). A check-in goes to the most similar prototype; its score is that cosine similarity, the
quantity facenet verification thresholds. With a handful of enrolment photos per person a prototype has
nothing to overfit and no hyperparameters to tune on a test set, and augmented embeddings move the
prototype exactly as extra enrolment photos of that person would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def threshold_at_far(impostor_scores: np.ndarray, far: float) -> float:
    """The lowest threshold that accepts (score > threshold) at most floor(far * n) of the n impostor scores."""
    if len(impostor_scores) == 0:
        raise ValueError("no impostor scores to set the open-set threshold on")
    allowed = int(np.floor(far * len(impostor_scores) + 1e-9))
    ranked = np.sort(impostor_scores)[::-1]
    return float(ranked[allowed]) if allowed < len(ranked) else float(ranked[-1]) - 1e-9
