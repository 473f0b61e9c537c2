"""GAN losses: adversarial objectives (hinge, WGAN-GP, non-saturating BCE), gradient penalty, and the
attribute / reconstruction / KL terms of the conditional models. Weights (lambdas) are applied by the caller."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

AdversarialKind = Literal["hinge", "wgan-gp", "bce"]


class AdversarialLoss(ABC):
    """Interface: ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)``, each a scalar to minimise."""

    @abstractmethod
    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor: ...

    @abstractmethod
    def g_loss(self, fake_logits: Tensor) -> Tensor: ...


class HingeLoss(AdversarialLoss):
    """Hinge loss (Lim & Ye 2017; SNGAN, BigGAN)."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


class WassersteinLoss(AdversarialLoss):
    """Wasserstein critic loss; pair it with :func:`gradient_penalty` (WGAN-GP)."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return fake_logits.mean() - real_logits.mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


class NonSaturatingLoss(AdversarialLoss):
    """Binary cross-entropy on logits, non-saturating for G (Goodfellow et al. 2014)."""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return F.softplus(-fake_logits).mean()


ADVERSARIAL_LOSSES: dict[str, type[AdversarialLoss]] = {
    "hinge": HingeLoss,
    "wgan-gp": WassersteinLoss,
    "bce": NonSaturatingLoss,
}


def adversarial_losses(kind: AdversarialKind) -> AdversarialLoss:
    """The D and G losses of ``kind``; ValueError naming the valid kinds otherwise."""
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; valid kinds: {', '.join(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[kind]()


Critic = Callable[[Tensor, Tensor | None], tuple[Tensor, Tensor]]


def gradient_penalty(D: Critic, real: Tensor, fake: Tensor, attributes: Tensor | None) -> Tensor:
    """WGAN-GP: mean of ``(||grad_x D(x)||_2 - 1)^2`` at random interpolates of real and fake images."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x = real.detach().lerp(fake.detach(), alpha).requires_grad_(True)
    adv, _ = D(x, attributes)
    (grad,) = torch.autograd.grad(adv.sum(), x, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def attribute_loss(logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with logits over the 0/1 attributes, mean over batch and attributes; ``pos_weight``
    (per attribute) weighs the positives, e.g. negatives/positives: a rare attribute counts as much as a common one."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), pos_weight=pos_weight)


def balancing_weight(targets: Tensor) -> Tensor:
    """Per attribute, negatives/positives among the N x A 0/1 ``targets`` (shares clamped to [0.01, 0.99]): the
    ``pos_weight`` of :func:`attribute_loss` that makes a rare attribute count as much as a common one."""
    positives = targets.float().mean(0).clamp(0.01, 0.99)
    return (1 - positives) / positives


def mode_seeking_loss(a: Tensor, b: Tensor, z_a: Tensor, z_b: Tensor, downsample: int = 1, eps: float = 1e-5
                      ) -> Tensor:
    """Mode seeking (Mao et al. 2019, MSGAN): ``1 / (mean|a - b| / mean|z_a - z_b| + eps)`` for images ``a`` and
    ``b`` generated under the same attributes from latents ``z_a`` and ``z_b``. Minimising it keeps a conditional
    generator from ignoring z, which an attribute classification loss otherwise rewards (one face per request).

    ``downsample`` > 1 compares the images average-pooled by that factor: per-pixel noise, the cheapest way to
    make two images differ, then no longer counts as variety."""
    if downsample > 1:
        a, b = F.avg_pool2d(a, downsample), F.avg_pool2d(b, downsample)
    ratio = (a - b).abs().mean(dim=(1, 2, 3)) / (z_a - z_b).abs().mean(dim=1)
    return 1 / (ratio.mean() + eps)


def reconstruction_loss(x: Tensor, y: Tensor) -> Tensor:
    """Mean absolute error (L1)."""
    return F.l1_loss(x, y)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dimensions, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)).mean()
