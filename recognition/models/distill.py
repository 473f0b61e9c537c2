"""Distil facenet-pytorch's InceptionResnetV1 from the teacher (dlib's pretrained recognizer), without
internet weights.

The student learns to map each face to the teacher's *centred* descriptor: the teacher's mean over the
training faces is subtracted before normalising, so the cosine loss rewards what tells people apart, not
the direction all faces share (without centring a pilot reached top-1 0.08 after two epochs). A linear
head maps the network's 512-d embedding into the teacher's 128-d space. The last ``margin_epochs`` add a
margin loss on the identities (CosFace or ArcFace from pytorch-metric-learning), which sharpens the
classes the teacher's targets only imply. AdamW with a one-cycle schedule. Every face is seen through random
flips, resized crops, shifts and colour changes (``jitter``), so that the student learns the person rather than
one crop style and one camera.

After training the student's own mean over (up to 4,096) training faces is stored as its centre, and
embeddings are centred by it before normalising, as the targets were.

Every epoch ends with an atomic checkpoint (model, optimiser, schedule, loss parameters, RNG states, a hash
of the settings and data); a killed run resumes from it, and a checkpoint of other settings is ignored.
CUDA runs use bf16 autocast.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from facegen.io import atomic_file
from recognition.models.backbone import DistilledFacenet, load_backbone, save_backbone, standardize
from recognition.models.epoch_state import EpochCheckpoints, Stateful

CENTRE_SAMPLE = 4096
METRICS_COLUMNS = ("epoch", "distill_loss", "margin_loss", "teacher_cosine", "lr", "seconds")


@dataclass(frozen=True)
class DistillSettings:
    input_size: int = 80
    epochs: int = 6
    margin_epochs: int = 1
    margin_loss: str = "cosface"
    margin_weight: float = 0.1
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    crop_scale: tuple[float, float] = (0.8, 1.0)
    max_shift: float = 0.06
    colour_jitter: float = 0.3
    seed: int = 0
    device: str = "auto"

    def fingerprint(self, targets: np.ndarray, labels: np.ndarray) -> str:
        """Everything that makes a checkpoint this run's: the settings (the device aside) and the data."""
        settings = {k: v for k, v in asdict(self).items() if k != "device"}
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        digest.update(np.ascontiguousarray(targets, np.float32).tobytes())
        digest.update(np.ascontiguousarray(labels, np.int64).tobytes())
        return digest.hexdigest()[:16]


def centred_targets(teacher: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """The teacher's descriptors minus their mean (or a given one: the training faces' centre for other faces),
    L2-normalised: what the student learns to predict."""
    centred = teacher - (teacher.mean(axis=0, keepdims=True) if mean is None else mean)
    return (centred / np.linalg.norm(centred, axis=1, keepdims=True)).astype(np.float32)


def no_margin_path(out: Path) -> Path:
    """Where `Distiller.save` puts the student before its margin epochs, beside `out`."""
    return out.with_name(f"{out.stem}_no_margin{out.suffix}")


class _Faces(Dataset):
    def __init__(self, images: np.ndarray, targets: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.targets, self.labels = images, torch.from_numpy(targets), torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.images[i])), self.targets[i], self.labels[i]


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("recognition.distill.device=cuda, but PyTorch sees no CUDA device")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


class Distiller(EpochCheckpoints):
    """Trains a `DistilledFacenet` on uint8 faces, their teacher descriptors and integer identity labels."""

    checkpoint_kind = "distillation checkpoint"

    def __init__(
        self,
        settings: DistillSettings,
        images: np.ndarray,
        teacher: np.ndarray,
        labels: np.ndarray,
        work: Path,
        loader_workers: int = 0,
    ) -> None:
        if len(images) != len(teacher) or len(images) != len(labels):
            raise ValueError(f"distill: {len(images)} images, {len(teacher)} teacher descriptors, {len(labels)} labels")
        if np.isnan(teacher).any():
            raise ValueError(
                "distill: teacher descriptors contain NaN rows (faces the teacher skipped): drop them first"
            )
        if settings.margin_epochs > settings.epochs:
            raise ValueError(
                f"recognition.distill.margin_epochs={settings.margin_epochs} exceeds epochs={settings.epochs}"
            )
        self.settings, self.work = settings, Path(work)
        self.device = resolve_device(settings.device)
        self.images, self.labels = images, labels.astype(np.int64)
        self.targets = centred_targets(teacher.astype(np.float32))
        torch.manual_seed(settings.seed)
        self.model = DistilledFacenet(self.targets.shape[1]).to(self.device)
        self.margin = margin_loss(settings.margin_loss, self.targets, self.labels).to(self.device)
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.loader = DataLoader(
            _Faces(images, self.targets, self.labels),
            batch_size=settings.batch_size,
            shuffle=True,
            drop_last=True,
            generator=self.generator,
            num_workers=loader_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=loader_workers > 0,
        )
        if len(self.loader) == 0:
            raise ValueError(f"distill: {len(images)} faces make no batch of {settings.batch_size}")
        self.optimizer = torch.optim.AdamW(
            [*self.model.parameters(), *self.margin.parameters()], lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=settings.lr, total_steps=settings.epochs * len(self.loader)
        )
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self.fingerprint = settings.fingerprint(self.targets, self.labels)

    @property
    def before_margin_path(self) -> Path:
        """The student as the distillation alone left it (before the margin epochs): the margin's ablation."""
        return self.work / "before_margin.pt"

    def save(self, path: Path, meta: dict[str, object]) -> None:
        """The trained student, and beside it (``<name>_no_margin.pt``) the student before the margin epochs."""
        meta = {**meta, **asdict(self.settings), "fingerprint": self.fingerprint}
        save_backbone(self.model, path, meta)
        if self.before_margin_path.is_file():  # with the same metadata (its faces' alignment among them)
            epochs = self.settings.epochs - self.settings.margin_epochs
            save_backbone(
                load_backbone(str(self.before_margin_path)),
                no_margin_path(path),
                meta | {"epochs": epochs, "margin": False},
            )

    def run(self, stop_after: int | None = None) -> list[dict[str, float]]:
        """Train the remaining epochs (or up to epoch `stop_after`, leaving the checkpoint as a killed run would),
        then set the student's centre; one row of metrics per epoch."""
        last = self.settings.epochs if stop_after is None else min(stop_after, self.settings.epochs)
        while self.epoch < last:
            self.history.append(self._one_epoch())
            self.epoch += 1
            if self.epoch == self.settings.epochs - self.settings.margin_epochs and self.settings.margin_epochs:
                self._set_centre()
                save_backbone(
                    self.model,
                    self.before_margin_path,
                    {"pretrained": "distilled", "margin": False, "epochs": self.epoch},
                )
            self.save_checkpoint()
        self._set_centre()
        return self.history

    def write_metrics(self, path: Path) -> None:
        with atomic_file(path, "w") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            writer.writeheader()
            writer.writerows(self.history)

    def _one_epoch(self) -> dict[str, float]:
        s = self.settings
        with_margin = self.epoch >= s.epochs - s.margin_epochs and s.margin_weight > 0
        self.model.train()
        start, sums, n = time.perf_counter(), np.zeros(3), 0
        bar = tqdm(
            self.loader,
            desc=f"distill epoch {self.epoch + 1}/{s.epochs}" + (" (+margin)" if with_margin else ""),
            unit="batch",
        )
        for images, targets, labels in bar:
            x = standardize(images.to(self.device, non_blocking=True), s.input_size)  # resized where it trains
            x = jitter(x, s, self.generator)  # the same person: the same targets
            targets, labels = targets.to(self.device), labels.to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
                features = self.model.features(x)
            features = features.float()
            cosine = F.cosine_similarity(features, targets, dim=1)
            distill = (1 - cosine).mean()
            margin = self.margin(features, labels) if with_margin else torch.zeros((), device=self.device)
            loss = distill + s.margin_weight * margin
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            sums += [distill.item() * len(x), margin.item() * len(x), cosine.sum().item()]
            n += len(x)
            bar.set_postfix(cos=f"{cosine.mean().item():.3f}")
        distill_loss, margin_loss, teacher_cosine = sums / n
        return {
            "epoch": self.epoch + 1,
            "distill_loss": round(distill_loss, 5),
            "margin_loss": round(margin_loss, 5),
            "teacher_cosine": round(teacher_cosine, 5),
            "lr": self.schedule.get_last_lr()[0],
            "seconds": round(time.perf_counter() - start, 1),
        }

    @torch.no_grad()
    def _set_centre(self) -> None:
        self.model.eval()
        rows = np.sort(
            torch.randperm(len(self.images), generator=torch.Generator().manual_seed(self.settings.seed))[
                :CENTRE_SAMPLE
            ].numpy()
        )
        features = [
            self.model.features(
                standardize(self.images[rows[i : i + 256]], self.settings.input_size).to(self.device)
            ).float()
            for i in range(0, len(rows), 256)
        ]
        self.model.centre.copy_(torch.cat(features).mean(0))

    def stateful_parts(self) -> dict[str, Stateful]:
        return {"model": self.model, "margin": self.margin, "optimizer": self.optimizer, "schedule": self.schedule}


def jitter(x: torch.Tensor, settings: DistillSettings, generator: torch.Generator) -> torch.Tensor:
    """A standardised batch (B x 3 x S x S) mirrored at random, cropped to ``crop_scale`` of its area, shifted by
    up to ``max_shift`` of its side (edges repeat) and changed in brightness, contrast and saturation by up to
    ``colour_jitter``; the random numbers come from `generator`, so a resumed run draws the same ones."""

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(x.device)

    n = len(x)
    low, high = settings.crop_scale
    side = torch.sqrt(low + (high - low) * uniform(n))
    mirror = torch.where(uniform(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = side * mirror, side
    theta[:, :, 2] = (uniform(n, 2) * 2 - 1) * 2 * settings.max_shift  # the grid spans [-1, 1]: 2 per side
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if settings.colour_jitter == 0:
        return x
    brightness, contrast, saturation = (1 + (uniform(3, n, 1, 1, 1) * 2 - 1) * settings.colour_jitter).unbind(0)
    pixels = (x * 128 + 127.5) * brightness
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    pixels = (pixels - mean) * contrast + mean
    grey = (pixels * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    pixels = (pixels - grey) * saturation + grey
    return (pixels.clamp(0, 255) - 127.5) / 128


def margin_loss(name: str, targets: np.ndarray, labels: np.ndarray) -> nn.Module:
    """CosFace (margin 0.35) or ArcFace (28.6 degrees), scale 64, over the identities ``labels`` (0..C-1), whose
    class weights start at each identity's mean direction among ``targets``: the margin then sharpens the classes
    the targets imply from the first step, instead of pulling faces towards random directions while its weights
    are learnt."""
    from pytorch_metric_learning import losses

    num_classes, size = int(labels.max()) + 1, targets.shape[1]
    if name == "cosface":
        loss = losses.CosFaceLoss(num_classes=num_classes, embedding_size=size, margin=0.35, scale=64)
    elif name == "arcface":
        loss = losses.ArcFaceLoss(num_classes=num_classes, embedding_size=size, margin=28.6, scale=64)
    else:
        raise ValueError(f"recognition.distill.margin_loss={name!r}: cosface or arcface")
    sums = np.zeros((num_classes, size), np.float64)
    np.add.at(sums, labels, targets)
    with torch.no_grad():
        loss.W.copy_(torch.from_numpy(sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).T)
    return loss
