"""Optional quality filter: keep a generated face only if an attribute classifier agrees with the request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from facegen.config import QualityFilterConfig


class AttributePredictor(Protocol):
    """What the filter needs of a classifier (contract 2: facegen.metrics.attribute_classifier)."""

    attributes: Sequence[str]

    def predict_proba(self, images: np.ndarray) -> np.ndarray: ...


PredictorLoader = Callable[[Path], AttributePredictor]
"""Reads a saved classifier; the caller hands it in (the `generate` stage: ``AttributeClassifier.load``)."""


class QualityFilter:
    """Checks the requested value of ``checked`` attributes (for edits: only the flipped one) per face."""

    def __init__(self, predictor: AttributePredictor, checked: Sequence[str], threshold: float = 0.5) -> None:
        unknown = [a for a in checked if a not in predictor.attributes]
        if unknown:
            raise ValueError(
                f"the attribute classifier does not predict {unknown} "
                f"(it knows {list(predictor.attributes)}); retrain it or filter fewer attributes"
            )
        self.predictor, self.checked, self.threshold = predictor, list(checked), threshold

    @classmethod
    def load(
        cls, config: QualityFilterConfig, checked: Sequence[str], load_predictor: PredictorLoader
    ) -> QualityFilter:
        """The classifier saved by `evaluate_gan`, read by ``load_predictor``; a clear error when it is missing."""
        if not Path(config.classifier).is_file():
            raise FileNotFoundError(
                f"{config.classifier}: no attribute classifier for the quality filter; run "
                f"`dvc repro evaluate_gan` or set filter.enabled: false"
            )
        return cls(load_predictor(config.classifier), checked, config.threshold)

    def accept(self, images: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
        """Boolean mask over ``rows``: the classifier's call matches every checked requested value."""
        proba = np.asarray(self.predictor.predict_proba(images))
        columns = [list(self.predictor.attributes).index(a) for a in self.checked]
        predicted = (proba[:, columns] >= self.threshold).astype(np.int64)
        requested = rows[self.checked].to_numpy(dtype=np.int64)
        relevant = np.ones_like(requested, dtype=bool)
        if "edited_attribute" in rows and (rows["edited_attribute"] != "").any():
            relevant = rows["edited_attribute"].to_numpy()[:, None] == np.asarray(self.checked)[None, :]
        return ((predicted == requested) | ~relevant).all(axis=1)
