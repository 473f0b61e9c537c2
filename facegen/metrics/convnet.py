"""The small CNN behind the attribute classifier and the real-vs-synthetic detector, and its training loop.

Images in are ``N x R x R x 3`` uint8 arrays (the prepared cache's layout); the network sees them in
[-1, 1]. The globally pooled output of the last conv block is the feature vector (``num_features`` wide).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel
from torch import Tensor, nn
from tqdm import tqdm

from facegen.gan.inference import to_tensor
from facegen.gan.loss import attribute_loss, balancing_weight
from facegen.gan.networks import down_stack


class ConvNet(nn.Module):
    """Stride-2 conv blocks (batch norm, LeakyReLU) down to 4 x 4, global average pool, one linear head.

    ``features`` are the globally pooled outputs of every block, concatenated: the last block's (the
    penultimate layer, what the head sees) plus the earlier ones', which keep the low-level image
    statistics (texture, noise, colour) that a generator can get wrong while the attributes look right.
    """

    def __init__(self, resolution: int, outputs: int, width: int = 16) -> None:
        super().__init__()
        self.blocks = down_stack(3, resolution, width, norm=nn.BatchNorm2d)
        widths = [width * 2**i for i in range(len(self.blocks))]
        self.num_features = sum(widths)
        self.head = nn.Linear(widths[-1], outputs)

    def features(self, images: Tensor) -> Tensor:
        """B x 3 x R x R in [-1, 1] -> B x num_features."""
        pooled = []
        for block in self.blocks:
            images = block(images)
            pooled.append(images.mean((2, 3)))
        return torch.cat(pooled, 1)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.blocks(images).mean((2, 3)))


class Uint8Features(nn.Module):
    """A ConvNet's features from B x 3 x R x R uint8 images: the input torchmetrics' FID/KID give a custom extractor."""

    def __init__(self, net: ConvNet) -> None:
        super().__init__()
        self.net, self.num_features = net.eval(), net.num_features

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.net.eval().features(images.float().div(127.5).sub(1))


def holdout_split(
    n: int, fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held out) with about ``fraction`` held out; whole groups (e.g. identities) stay together."""
    rng = np.random.default_rng(seed)
    if groups is None:
        held = rng.permutation(n)[: max(1, round(n * fraction))]
    else:
        names = rng.permutation(np.unique(groups))
        held_names = names[: max(1, round(len(names) * fraction))]
        held = np.flatnonzero(np.isin(groups, held_names))
    mask = np.zeros(n, bool)
    mask[held] = True
    if mask.all() or not mask.any():
        raise ValueError(f"cannot hold out {fraction:.0%} of {n} images and keep some for training")
    return np.flatnonzero(~mask), np.flatnonzero(mask)


@torch.no_grad()
def predict_logits(net: ConvNet, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    net.eval()
    out = [net(to_tensor(images[i : i + batch_size])) for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, net.head.out_features), np.float32)


def fit(
    net: ConvNet,
    images: np.ndarray,
    targets: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    config: BaseModel,
    desc: str,
) -> list[dict[str, float]]:
    """Train ``net`` from fresh weights drawn with ``config.seed`` on rows ``train`` (binary cross-entropy per
    output, positives weighed by negatives/positives, random horizontal flips); after each epoch record the training
    loss and the held-out accuracy (all outputs averaged). Returns those rows. The result depends on the seed and
    the data only: not on what used torch's global random numbers before, and fit leaves them as they were."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        for module in net.modules():
            if module is not net and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        return _train(net, images, targets, train, held_out, config, desc)


def _train(
    net: ConvNet,
    images: np.ndarray,
    targets: np.ndarray,
    train: np.ndarray,
    held_out: np.ndarray,
    config: BaseModel,
    desc: str,
) -> list[dict[str, float]]:
    order = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    targets_t = torch.tensor(targets, dtype=torch.float32)
    positive_weight = balancing_weight(targets_t[train])
    history = []
    steps = config.epochs * -(-len(train) // config.batch_size)
    with tqdm(total=steps, desc=desc, unit="batch") as progress:
        for epoch in range(1, config.epochs + 1):
            net.train()
            total, seen = 0.0, 0
            for batch in torch.randperm(len(train), generator=order).split(config.batch_size):
                rows = train[batch.numpy()]
                x = to_tensor(images[np.sort(rows)])
                y = targets_t[np.sort(rows)]
                flip = torch.rand(len(x), generator=order) < 0.5
                x[flip] = x[flip].flip(-1)
                loss = attribute_loss(net(x), y, positive_weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, seen = total + loss.item() * len(x), seen + len(x)
                progress.update(1)
                progress.set_postfix(loss=f"{loss.item():.3f}")
            predicted = predict_logits(net, images[held_out]) > 0
            accuracy = float((predicted == (targets[held_out] > 0.5)).mean())
            history.append(
                {"epoch": epoch, "train_loss": round(total / seen, 5), "heldout_accuracy": round(accuracy, 5)}
            )
    return history
