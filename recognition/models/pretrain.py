"""Pretrain InceptionResnetV1 in the project, on background people only (``recognition.pretrained: none``).

The network learns to classify the background identities (softmax cross-entropy over a ``classify=True``
head), the way facenet-pytorch's own fine-tuning example trains it. With a few thousand photos and a couple
of CPU epochs a classification loss is the stable choice: triplet/metric losses need many identities per
batch and hard-example mining to get going, which a short CPU run cannot afford. The embedding (the layer
before the head) is what later stages use.

Every epoch ends with an atomic checkpoint (weights, optimiser, RNG states, a hash of the settings); a
killed run resumes from it, a run given more epochs continues it, and a checkpoint made with other settings
(input size, batch size, learning rate, seed, people) is ignored rather than continued.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1
from torch.nn import functional as F
from tqdm import tqdm

from facegen.io import atomic_file
from recognition.models.backbone import save_backbone, standardize
from recognition.models.epoch_state import EpochCheckpoints, Stateful

METRICS_COLUMNS = ("epoch", "loss", "accuracy", "seconds")


@dataclass(frozen=True)
class PretrainSettings:
    input_size: int
    epochs: int
    batch_size: int
    lr: float
    seed: int

    def fingerprint(self, labels: np.ndarray) -> str:
        """Everything that makes a checkpoint this run's, except the epoch budget (more epochs continue it)."""
        settings = {k: v for k, v in self.__dict__.items() if k != "epochs"}
        text = json.dumps(settings, sort_keys=True) + hashlib.sha256(labels.tobytes()).hexdigest()
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class BackbonePretrainer(EpochCheckpoints):
    """Classification pretraining of the embedding network on uint8 images with integer identity labels."""

    checkpoint_kind = "pretraining checkpoint"

    def __init__(self, settings: PretrainSettings, images: np.ndarray, labels: np.ndarray, work: Path) -> None:
        if len(np.unique(labels)) < 2:
            raise ValueError("backbone pretraining needs at least 2 background identities")
        self.settings, self.images, self.labels, self.work = settings, images, labels.astype(np.int64), Path(work)
        torch.manual_seed(settings.seed)
        self.model = InceptionResnetV1(classify=True, num_classes=int(labels.max()) + 1)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.fingerprint = settings.fingerprint(self.labels)

    def run(self) -> list[dict[str, float]]:
        """Train the remaining epochs; returns one row (epoch, loss, accuracy, seconds) per epoch."""
        while self.epoch < self.settings.epochs:
            self.history.append(self._one_epoch())
            self.epoch += 1
            self.save_checkpoint()
        return self.history

    def save(self, path: Path, meta: dict[str, object]) -> None:
        save_backbone(self.model, path, {**meta, **self.settings.__dict__, "fingerprint": self.fingerprint})

    def write_metrics(self, path: Path) -> None:
        """epoch, loss, accuracy, seconds per epoch as CSV (dvc plots)."""
        _write_csv(path, self.history)

    @staticmethod
    def write_empty_metrics(path: Path) -> None:
        """The same CSV without rows, for backbones that were not trained here."""
        _write_csv(path, [])

    def _one_epoch(self) -> dict[str, float]:
        self.model.train()
        start, total_loss, correct = time.perf_counter(), 0.0, 0
        order = torch.randperm(len(self.images), generator=self.generator).numpy()
        batches = [order[i : i + self.settings.batch_size] for i in range(0, len(order), self.settings.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches[-2] = np.concatenate(batches[-2:])  # batch norm cannot train on a batch of one
            batches.pop()
        bar = tqdm(batches, desc=f"pretrain epoch {self.epoch + 1}/{self.settings.epochs}", unit="batch")
        for rows in bar:
            x = standardize(self.images[rows], self.settings.input_size)
            flip = torch.rand(len(rows), generator=self.generator) < 0.5  # mirrored faces are the same person
            x[flip] = x[flip].flip(-1)
            y = torch.from_numpy(self.labels[rows])
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total_loss += loss.item() * len(rows)
            correct += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        n = len(self.images)
        return {
            "epoch": self.epoch + 1,
            "loss": round(total_loss / n, 5),
            "accuracy": round(correct / n, 5),
            "seconds": round(time.perf_counter() - start, 2),
        }

    def stateful_parts(self) -> dict[str, Stateful]:
        return {"model": self.model, "optimizer": self.optimizer}


def _write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    with atomic_file(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def identity_labels(identities: np.ndarray) -> np.ndarray:
    """Integer class labels 0..K-1 for identity names (sorted, so equal inputs give equal labels)."""
    _, labels = np.unique(identities.astype(str), return_inverse=True)
    return labels.astype(np.int64)
