"""Retrain the end of the distilled facenet on cached trunk features (issue 19).

The distilled model (``DistilledFacenet``) is split before facenet-pytorch's InceptionResnetV1's last two
blocks: the *trunk* (``conv2d_1a`` ... ``mixed_7a``) stays frozen, and its outputs are computed once per face and
cached (:class:`TrunkFeatures`, an embedder for :class:`recognition.models.embeddings.EmbeddingCache`); the *last
blocks* (``repeat_3``, ``block8``, pooling, ``last_linear``, ``last_bn``, the head into the teacher's space and
the centre) are what retraining changes (:class:`LastBlock`). facenet-pytorch's fine-tuning example retrains the same
end of the network with a classifier on top. Batch norms keep their statistics (eval mode) while their
weights train: a roster of 150 photos would otherwise overwrite statistics learnt on 25,000.

Two ways to retrain it:
- :func:`finetune_roster`: a CosFace classifier over the roster people, on their enrolment photos and an
  arm's added images, for a fixed number of steps, ``repeat_3`` frozen; check-ins are named by cosine to the
  learnt class weights;
- :func:`retrain_embedding`: the distillation objective again (cosine to the teacher's centred descriptors,
  plus CosFace on identities where a face has one) on the background people, with or without GAN faces; both
  last blocks train.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from recognition.models.backbone import DistilledFacenet, standardize
from recognition.models.distill import margin_loss

TRUNK = (
    "conv2d_1a",
    "conv2d_2a",
    "conv2d_2b",
    "maxpool_3a",
    "conv2d_3b",
    "conv2d_4a",
    "conv2d_4b",
    "repeat_1",
    "mixed_6a",
    "repeat_2",
    "mixed_7a",
)
TRUNK_CHANNELS = 1792  # InceptionResnetV1's mixed_7a output


class TrunkFeatures:
    """The frozen trunk as an embedder: N x R x R x 3 uint8 -> N x (1792 h w) float32 (mirrored when ``flip``)."""

    def __init__(
        self, model: DistilledFacenet, fingerprint: str, input_size: int, flip: bool = False, batch_size: int = 64
    ) -> None:
        self.net, self.input_size, self.flip, self.batch_size = model.backbone.eval(), input_size, flip, batch_size
        self.fingerprint = f"trunk-to-mixed_7a|{fingerprint}|{input_size}|flip={flip}"

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> np.ndarray:
        out = []
        starts = tqdm(
            range(0, len(images), self.batch_size),
            desc=f"trunk features: {len(images)} faces",
            unit="batch",
            disable=len(images) <= 256,
        )
        for start in starts:
            x = standardize(images[start : start + self.batch_size], self.input_size)
            x = x.flip(-1) if self.flip else x
            for name in TRUNK:
                x = getattr(self.net, name)(x)
            out.append(x.flatten(1))
        if not out:  # no image: an empty array as wide as the features of one
            return self.embed(np.zeros((1, self.input_size, self.input_size, 3), np.uint8))[:0]
        return torch.cat(out).numpy()


class LastBlock(nn.Module):
    """The distilled model after its trunk: trunk features -> L2-normalised, centred embedding (as the model's)."""

    def __init__(self, model: DistilledFacenet) -> None:
        super().__init__()
        net = model.backbone
        self.repeat_3, self.block8 = copy.deepcopy(net.repeat_3), copy.deepcopy(net.block8)
        self.pool = copy.deepcopy(net.avgpool_1a)
        self.last_linear, self.last_bn = copy.deepcopy(net.last_linear), copy.deepcopy(net.last_bn)
        self.head = copy.deepcopy(model.head)
        self.register_buffer("centre", model.centre.detach().clone())
        self.eval()

    def features(self, trunk: torch.Tensor) -> torch.Tensor:
        """Uncentred head outputs (what the distillation loss sees)."""
        side = int(round((trunk.shape[1] / TRUNK_CHANNELS) ** 0.5))
        x = self.pool(self.block8(self.repeat_3(trunk.view(len(trunk), TRUNK_CHANNELS, side, side))))
        return self.head(F.normalize(self.last_bn(self.last_linear(x.flatten(1))), dim=1))

    def forward(self, trunk: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(trunk) - self.centre, dim=1)

    @torch.no_grad()
    def embed(self, trunk: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """N x D float32 embeddings of N trunk feature rows."""
        parts = [self(torch.from_numpy(trunk[i : i + batch_size])) for i in range(0, len(trunk), batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.head.out_features), np.float32)

    @torch.no_grad()
    def recentre(self, trunk: np.ndarray, batch_size: int = 1024) -> None:
        """Set the centre to the mean head output over ``trunk`` (as distillation sets the student's)."""
        parts = [self.features(torch.from_numpy(trunk[i : i + batch_size])) for i in range(0, len(trunk), batch_size)]
        self.centre.copy_(torch.cat(parts).mean(0))


@dataclass(frozen=True)
class Training:
    """``steps`` optimiser steps (cosine decay over them) of ``batch_size`` shuffled rows, seeded."""

    steps: int
    lr: float
    batch_size: int
    seed: int

    @classmethod
    def epochs(cls, epochs: int, rows: int, lr: float, batch_size: int, seed: int) -> Training:
        """``epochs`` passes over ``rows`` rows (at least one step)."""
        return cls(max(1, epochs * (rows // batch_size)), lr, batch_size, seed)


def finetune_roster(
    block: LastBlock, trunk: np.ndarray, labels: np.ndarray, training: Training
) -> tuple[LastBlock, np.ndarray]:
    """A copy of ``block`` trained with CosFace (margin 0.35, scale 64) to tell the roster's ``labels`` (0..C-1)
    apart, ``repeat_3`` frozen, and its C x D L2-normalised class weights (started at each class's mean
    embedding)."""
    block = copy.deepcopy(block)
    cosface = margin_loss("cosface", block.embed(trunk), labels)
    targets = torch.from_numpy(labels.astype(np.int64))
    trained = [p for name, p in block.named_parameters() if not name.startswith("repeat_3.")]
    _train(
        block,
        [*trained, *cosface.parameters()],
        training,
        len(trunk),
        lambda rows: cosface(block(trunk_rows(trunk, rows)), targets[rows]),
    )
    weights = F.normalize(cosface.W.detach().T, dim=1).numpy()
    return block, weights


def retrain_embedding(
    block: LastBlock,
    trunk: np.ndarray,
    targets: np.ndarray,
    labels: np.ndarray,
    training: Training,
    margin_weight: float,
    real: int | None = None,
) -> LastBlock:
    """A copy of ``block`` trained on ``trunk``: cosine to the teacher's centred descriptors ``targets``, plus
    ``margin_weight`` x CosFace on ``labels`` (-1: a face with no identity, such as a generator sample). Its centre
    is then recomputed on the first ``real`` rows (the real faces; default: every row with an identity)."""
    block = copy.deepcopy(block)
    labelled = labels >= 0
    cosface = margin_loss("cosface", targets[labelled], labels[labelled])
    goal, names = torch.from_numpy(targets.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))

    def loss(rows: torch.Tensor) -> torch.Tensor:
        features = block.features(trunk_rows(trunk, rows))
        value = (1 - F.cosine_similarity(features, goal[rows], dim=1)).mean()
        known = names[rows] >= 0
        if margin_weight and known.any():
            value = value + margin_weight * cosface(features[known], names[rows][known])
        return value

    _train(block, [*block.parameters(), *cosface.parameters()], training, len(trunk), loss)
    block.recentre(trunk[:real] if real is not None else trunk[labelled])
    return block


def trunk_rows(trunk: np.ndarray, rows: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(trunk[rows.numpy()])


def _train(block: LastBlock, parameters: list[nn.Parameter], training: Training, n: int, loss_of) -> None:
    """AdamW on ``parameters`` with cosine decay over ``training.steps`` batches, drawn from shuffled passes over
    the ``n`` rows (a new shuffle each pass); batch norms stay in eval mode."""
    generator = torch.Generator().manual_seed(training.seed)
    torch.manual_seed(training.seed)
    optimizer = torch.optim.AdamW(parameters, lr=training.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, training.steps)
    per_pass = max(1, n // training.batch_size)
    block.eval()
    steps = tqdm(range(training.steps), desc="last block", unit="step", leave=False, disable=training.steps < 500)
    for step in steps:
        if step % per_pass == 0:
            order = torch.randperm(n, generator=generator)
        rows = order[(step % per_pass) * training.batch_size : (step % per_pass + 1) * training.batch_size]
        loss = loss_of(rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
