"""A face-attribute classifier trained on the real images of the source data set.

It judges generated and edited faces (attribute-control accuracy), its penultimate layer is the feature
space of FID/KID/precision/recall, and the generate stage uses it as a quality filter. Saved with
``torch.save`` of plain tensors and lists; loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from facegen.config import NetTraining
from facegen.gan.inference import to_tensor
from facegen.io import atomic_file, check_file_output
from facegen.metrics.convnet import ConvNet, Uint8Features, fit, holdout_split, predict_logits
from facegen.weights import is_checkpoint, load_checkpoint


CLASSIFIER_KEYS = ("attributes", "resolution", "width", "state_dict", "report")  # what a saved classifier holds


class AttributeClassifier:
    """P(attribute = 1) for each of ``attributes``, from R x R faces; ``report`` holds its held-out scores."""

    def __init__(
        self,
        attributes: Sequence[str],
        resolution: int,
        width: int,
        net: ConvNet | None = None,
        report: dict | None = None,
    ) -> None:
        self.attributes, self.resolution, self.width = tuple(attributes), resolution, width
        self.net = (net or ConvNet(resolution, len(self.attributes), width)).eval()
        self.report = report or {}

    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """N x R x R x 3 uint8 -> N x A probabilities, columns in the order of ``attributes``."""
        logits = predict_logits(self.net, self._check(images), batch_size)
        return 1 / (1 + np.exp(-logits))

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """N x R x R x 3 uint8 -> N x D features: every conv block globally pooled (the last: the penultimate layer)."""
        images = self._check(images)
        self.net.eval()
        out = [self.net.features(to_tensor(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.net.num_features), np.float32)

    def feature_extractor(self) -> Uint8Features:
        """The features as an nn.Module on B x 3 x R x R uint8 (torchmetrics' custom FID/KID extractor)."""
        return Uint8Features(self.net)

    def save(self, path: Path | str) -> None:
        state = {
            "attributes": list(self.attributes),
            "resolution": self.resolution,
            "width": self.width,
            "state_dict": self.net.state_dict(),
            "report": self.report,
        }
        check_file_output(Path(path), lambda p: is_checkpoint(p, CLASSIFIER_KEYS), "an attribute classifier")
        with atomic_file(Path(path)) as f:
            torch.save(state, f)

    @classmethod
    def load(cls, path: Path | str) -> AttributeClassifier:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no attribute classifier; run `dvc repro evaluate_gan` first")
        state = load_checkpoint(
            path,
            "facegen attribute classifier (evaluate_gan)",
            ("attributes", "resolution", "width", "report", "state_dict"),
        )
        classifier = cls(state["attributes"], state["resolution"], state["width"], report=state["report"])
        classifier.net.load_state_dict(state["state_dict"])
        return classifier

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (self.resolution, self.resolution, 3) or images.dtype != np.uint8:
            raise ValueError(
                f"the attribute classifier takes N x {self.resolution} x {self.resolution} x 3 uint8 "
                f"images, got {images.shape} {images.dtype}"
            )
        return images


def train_attribute_classifier(
    images: np.ndarray,
    attributes_matrix: np.ndarray,
    attribute_names: Sequence[str],
    config: NetTraining,
    identities: np.ndarray | None = None,
    held_out: np.ndarray | None = None,
) -> tuple[AttributeClassifier, dict[str, float]]:
    """Train on ``images`` (N x R x R x 3 uint8) with their 0/1 ``attributes_matrix`` (N x A); hold out the rows
    ``held_out``, or else ``config.holdout_fraction`` of the identities (of the images if ``identities`` is None).

    Returns the classifier and its held-out accuracy per attribute. ``classifier.report`` adds the balanced
    accuracy (mean of the true-positive and true-negative rates: 0.5 is chance even for rare attributes), the
    sensitivity and false-positive rate on the held-out faces, the held-out size and the per-epoch training curve.
    """
    attributes_matrix = np.asarray(attributes_matrix, dtype=np.float32)
    if attributes_matrix.shape != (len(images), len(attribute_names)):
        raise ValueError(
            f"attributes_matrix must be {len(images)} x {len(attribute_names)}, got {attributes_matrix.shape}"
        )
    if not np.isin(attributes_matrix, (0, 1)).all():
        raise ValueError("attributes_matrix must hold 0/1 values (attributes the source does not annotate are -1)")
    if held_out is None:
        train, held_out = holdout_split(len(images), config.holdout_fraction, config.seed, identities)
    else:
        train = np.setdiff1d(np.arange(len(images)), held_out)
    classifier = AttributeClassifier(attribute_names, images.shape[1], config.width)
    history = fit(classifier.net, images, attributes_matrix, train, held_out, config, desc="attribute classifier")
    predicted = classifier.predict_proba(images[held_out]) > 0.5
    truth = attributes_matrix[held_out] > 0.5
    accuracy = {name: round(float(v), 4) for name, v in zip(attribute_names, (predicted == truth).mean(0))}
    classifier.report = {
        "heldout_accuracy": accuracy,
        "heldout_balanced_accuracy": {
            name: round(v, 4) for name, v in zip(attribute_names, balanced_accuracy(predicted, truth))
        },
        "heldout_sensitivity": _rates(predicted, truth, positive=True, names=attribute_names),
        "heldout_false_positive_rate": _rates(~predicted, ~truth, positive=False, names=attribute_names),
        "heldout_images": int(len(held_out)),
        "history": history,
    }
    return classifier, accuracy


def _rates(predicted: np.ndarray, truth: np.ndarray, positive: bool, names: Sequence[str]) -> dict:
    """Per attribute: the share of faces with it called so (``positive``), or of faces without it called with it
    (given the negations); None where the held-out faces have no such face."""
    out = {}
    for name, p, t in zip(names, predicted.T, truth.T):
        rate = float(p[t].mean()) if t.any() else None
        out[name] = None if rate is None else round(rate if positive else 1 - rate, 4)
    return out


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per column of N x A booleans: mean of the recall on positives and on negatives (a missing class counts 0.5)."""
    result = []
    for p, t in zip(predicted.T, truth.T):
        rates = [float((p[t == c] == c).mean()) if (t == c).any() else 0.5 for c in (True, False)]
        result.append(sum(rates) / 2)
    return result
