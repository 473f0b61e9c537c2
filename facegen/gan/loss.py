"""GAN losses: the terms (adversarial hinge / WGAN-GP / non-saturating BCE, gradient penalty, attribute,
mode seeking, reconstruction, KL) and the objectives that weigh them into one training step's losses
(:class:`ConditionalGanObjective`, :class:`ConditionalVaeObjective`), as stylegan2-ada-pytorch's ``loss.py``
does for its ``training_loop.py``: the loop schedules, updates, checkpoints and logs; the objective decides
what is computed and how it is weighed."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facegen.config import GanConfig
from facegen.gan.checkpoint import DISCRIMINATORS

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


def mode_seeking_loss(a: Tensor, b: Tensor, z_a: Tensor, z_b: Tensor, downsample: int = 1, eps: float = 1e-5) -> Tensor:
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


class FaceNetwork(Protocol):
    """The frozen face-recognition network the editor's identity and feature terms read (images in [-1, 1]):
    ``net(images)`` -> B x D embeddings; ``net.features(images)`` -> (the embeddings, its feature maps)."""

    def __call__(self, images: Tensor) -> Tensor: ...

    def features(self, images: Tensor) -> tuple[Tensor, list[Tensor]]: ...


def identity_loss(edits: Tensor, sources: Tensor) -> Tensor:
    """``1 - cosine`` between a frozen face-recognition network's embeddings of each edit and of its source, mean
    over the batch: the edit must still be the same person. Pass the sources' embeddings without gradient: they
    flow into the edits only."""
    target = F.normalize(sources.detach().float(), dim=1)
    return (1 - (F.normalize(edits.float(), dim=1) * target).sum(dim=1)).mean()


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dimensions, mean over the batch."""
    return (-0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)).mean()


def flip_one(attributes: Tensor, generator: torch.Generator) -> Tensor:
    """Each row of ``attributes`` with one randomly chosen attribute flipped (the editor's training targets)."""
    column = torch.randint(attributes.shape[1], (len(attributes),), device=attributes.device, generator=generator)
    flip = torch.nn.functional.one_hot(column, attributes.shape[1]).to(attributes.dtype)
    return (attributes - flip).abs()


Autocast = Callable[[], contextlib.AbstractContextManager]
"""The training loop's mixed-precision context (a no-op on CPU): the objective says which passes may use it."""


@dataclass
class Phase:
    """What the discriminator phase computed and the generator phase reuses (inputs, draws, images, logits)."""

    real: Tensor
    source: Tensor
    rng: torch.Generator
    d_loss: Tensor
    real_cls: Tensor
    wanted: Tensor | None = None
    z: Tensor | None = None
    target: Tensor | None = None
    fakes: Tensor | None = None
    fake_attributes: Tensor | None = None
    edit_mask: Tensor | None = None  # the masked editor's attention masks of the edits in ``fakes``
    real_embedding: Tensor | None = None  # the face network's embeddings of ``real``, where the phase needed them


class GanObjective(ABC):
    """One training step's losses, in the two phases the loop updates in turn: the discriminator's, then
    (against the updated discriminator) that of the networks named in :attr:`trains`.

    ``nets``: the trained networks by checkpoint name (``G``, ``D``, ``E``; DDP-wrapped or not);
    ``positive_weight``: per attribute, the weight of positives in the attribute losses (None: unweighed);
    ``identity``: the frozen face network of the editor's identity and feature terms (``gan.lambda_identity``,
    ``gan.lambda_feature``).
    """

    trains: tuple[str, ...]

    def __init__(
        self,
        config: GanConfig,
        nets: Mapping[str, nn.Module],
        positive_weight: Tensor | None,
        autocast: Autocast,
        identity: FaceNetwork | None = None,
    ) -> None:
        if config.uses_identity_network and identity is None:
            raise ValueError(
                "gan.lambda_identity or gan.lambda_feature > 0: the objective needs the identity network "
                "(gan.identity_network)"
            )
        self.config, self.nets, self.positive_weight, self.autocast = config, nets, positive_weight, autocast
        self.identity = identity

    @property
    def discriminators(self) -> tuple[str, ...]:
        """The networks the discriminator phase's loss trains: D, and R and P where the region and feature terms
        are on."""
        return tuple(name for name in DISCRIMINATORS if name in self.nets)

    def attribute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return attribute_loss(logits, targets, self.positive_weight)

    @abstractmethod
    def discriminator_loss(self, real: Tensor, source: Tensor, rng: torch.Generator) -> Phase:
        """The discriminator's loss (``Phase.d_loss``) on real images ``real`` with attributes ``source``; ``rng``
        draws the step's noise."""

    @abstractmethod
    def generator_loss(self, phase: Phase) -> tuple[Tensor, dict[str, float]]:
        """The loss of the networks in :attr:`trains`, and the step's logged losses and accuracies."""


class ConditionalGanObjective(GanObjective):
    """``gan.model: cgan``. D learns real-vs-fake (plus the real images' attributes, AC-GAN style) on G's samples
    and, with an editor, on E's edits. G and E learn to fool it while making the requested attributes
    recognisable; G also makes different faces from different z (mode seeking, on images pooled by
    ``gan.ms_downsample``); E also maps its edit back to the source (cycle), leaves an image with its own
    attributes unchanged (identity pass), keeps the person as the identity network sees it (``lambda_identity``),
    with ``gan.editor_mask`` keeps its attention mask small (``lambda_mask``), with ``gan.lambda_region`` fools a
    second discriminator R that compares the eye and mouth bands of edits with real photos', and with
    ``gan.lambda_feature`` a third, P, that compares the identity network's feature maps of both."""

    @property
    def trains(self) -> tuple[str, ...]:
        return ("G", "E") if "E" in self.nets else ("G",)

    @cached_property
    def adversarial(self) -> AdversarialLoss:
        return adversarial_losses(self.config.loss)

    def discriminator_loss(self, real: Tensor, source: Tensor, rng: torch.Generator) -> Phase:
        c, G, D, E = self.config, self.nets["G"], self.nets["D"], self.nets.get("E")
        n = len(real)
        z = torch.randn(n, c.z_dim, device=real.device, generator=rng)
        wanted = source[torch.randperm(n, device=real.device, generator=rng)]
        half = n // 2
        if c.lambda_ms > 0:  # samples i and half + i share attributes, not z: the mode-seeking term compares them
            wanted[half : 2 * half] = wanted[:half]
        target = mask = None
        with self.autocast():
            fakes, fake_attributes = G(z, wanted), wanted
            if E is not None:
                target = flip_one(source, rng)
                edits, mask = E(real, target, return_mask=True)
                fakes, fake_attributes = torch.cat([fakes, edits]), torch.cat([wanted, target])

            real_adv, real_cls = D(real, source)
            fake_adv, _ = D(fakes.detach(), fake_attributes)
            d_loss = self.adversarial.d_loss(real_adv, fake_adv) + c.lambda_cls_real * self.attribute_loss(
                real_cls, source
            )
            if "R" in self.nets:  # the eye and mouth bands of real photos against those of the edits
                R = self.nets["R"]
                d_loss = d_loss + c.lambda_region * self.adversarial.d_loss(R(real), R(fakes[n:].detach()))
            real_embedding = None
            if "P" in self.nets:  # the face network's maps of real photos against those of the edits
                P = self.nets["P"]
                with torch.no_grad():
                    real_embedding, real_maps = self.identity.features(real)
                    _, edit_maps = self.identity.features(fakes[n:])
                d_loss = d_loss + c.lambda_feature * self.adversarial.d_loss(P(real_maps), P(edit_maps))
        if c.loss == "wgan-gp":
            reals = real.repeat(len(fakes) // n, 1, 1, 1)
            d_loss = d_loss + c.lambda_gp * gradient_penalty(D, reals, fakes.float(), source.repeat(len(fakes) // n, 1))
        return Phase(
            real, source, rng, d_loss, real_cls, wanted, z, target, fakes, fake_attributes, mask, real_embedding
        )

    def generator_loss(self, phase: Phase) -> tuple[Tensor, dict[str, float]]:
        c, D, E = self.config, self.nets["D"], self.nets.get("E")
        real, source, wanted, target = phase.real, phase.source, phase.wanted, phase.target
        fakes, z = phase.fakes, phase.z
        n, half = len(real), len(real) // 2
        with self.autocast():
            fake_adv, fake_cls = D(fakes, phase.fake_attributes)
            g_loss = self.adversarial.g_loss(fake_adv[:n]) + c.lambda_cls * self.attribute_loss(fake_cls[:n], wanted)
            if c.lambda_ms > 0:
                g_loss = g_loss + c.lambda_ms * mode_seeking_loss(
                    fakes[:half], fakes[half : 2 * half], z[:half], z[half : 2 * half], c.ms_downsample
                )
            metrics = {"d_loss": phase.d_loss.item(), "g_loss": g_loss.item()}
            if E is not None:
                # Cycle (edit back to the source attributes) and identity (own attributes: no change), one batch;
                # lambda_id 0 skips the identity pass (a third of the editor's work).
                identity_pass = c.lambda_id > 0
                back = E(
                    torch.cat([fakes[n:], real] if identity_pass else [fakes[n:]]),
                    torch.cat([source, source] if identity_pass else [source]),
                )
                changed = target != source  # the one flipped attribute per row
                e_loss = (
                    self.adversarial.g_loss(fake_adv[n:])
                    + c.lambda_cls * self.attribute_loss(fake_cls[n:], target)
                    + c.lambda_flip * attribute_loss(fake_cls[n:][changed], target[changed])
                    + c.lambda_rec * reconstruction_loss(back[:n], real)
                )
                if identity_pass:
                    e_loss = e_loss + c.lambda_id * reconstruction_loss(back[n:], real)
                if c.editor_mask:
                    e_loss = e_loss + c.lambda_mask * phase.edit_mask.mean()
                    metrics["e_mask_mean"] = phase.edit_mask.mean().item()
                if "R" in self.nets:
                    region = self.adversarial.g_loss(self.nets["R"](fakes[n:]))
                    e_loss = e_loss + c.lambda_region * region
                    metrics["e_region_loss"] = region.item()
                if c.uses_identity_network:  # one pass of the face network gives both terms what they read
                    edit_embedding, edit_maps = self.identity.features(fakes[n:])
                if "P" in self.nets:
                    realism = self.adversarial.g_loss(self.nets["P"](edit_maps))
                    e_loss = e_loss + c.lambda_feature * realism
                    metrics["e_feature_loss"] = realism.item()
                if c.lambda_identity > 0:
                    if phase.real_embedding is None:
                        with torch.no_grad():
                            phase.real_embedding = self.identity(real)
                    kept = identity_loss(edit_embedding, phase.real_embedding)
                    e_loss = e_loss + c.lambda_identity * kept
                    metrics["e_identity_loss"] = kept.item()
                g_loss = g_loss + e_loss
                metrics |= {"e_loss": e_loss.item(), "e_cycle_l1": reconstruction_loss(back[:n], real).item()}
        return g_loss, metrics | {
            "d_real_attribute_accuracy": _accuracy(phase.real_cls, source),
            "g_fake_attribute_accuracy": _accuracy(fake_cls[:n], wanted),
        } | ({"e_edit_attribute_accuracy": _accuracy(fake_cls[n:], target)} if E is not None else {})


class ConditionalVaeObjective(GanObjective):
    """``gan.model: cvae``, in the same step shape: the attribute classifier (the discriminator's attribute head)
    learns the real images' attributes, then the cVAE learns reconstruction + KL and, through the classifier,
    to show the requested attributes when an image is decoded under other attributes."""

    trains = ("G",)

    def discriminator_loss(self, real: Tensor, source: Tensor, rng: torch.Generator) -> Phase:
        with self.autocast():
            _, real_cls = self.nets["D"](real)
            d_loss = self.attribute_loss(real_cls, source)
        return Phase(real, source, rng, d_loss, real_cls)

    def generator_loss(self, phase: Phase) -> tuple[Tensor, dict[str, float]]:
        c, vae, classifier = self.config, self.nets["G"], self.nets["D"]
        real, source = phase.real, phase.source
        n = len(real)
        wanted = source[torch.randperm(n, device=real.device, generator=phase.rng)]
        with self.autocast():
            # Encoded under their own attributes; decoded under them (reconstruction) and under others (edit).
            decoded, mu, logvar = vae(torch.cat([real, real]), torch.cat([source, source]), torch.cat([source, wanted]))
            recon, kl = reconstruction_loss(decoded[:n], real), kl_divergence(mu[:n], logvar[:n])
            _, edit_cls = classifier(decoded[n:])
            g_loss = c.lambda_rec * recon + c.lambda_kl * kl + c.lambda_cls * self.attribute_loss(edit_cls, wanted)
        return g_loss, {
            "d_loss": phase.d_loss.item(),
            "g_loss": g_loss.item(),
            "recon_l1": recon.item(),
            "kl": kl.item(),
            "d_real_attribute_accuracy": _accuracy(phase.real_cls, source),
            "g_edit_attribute_accuracy": _accuracy(edit_cls, wanted),
        }


def objective(
    config: GanConfig,
    nets: Mapping[str, nn.Module],
    positive_weight: Tensor | None,
    autocast: Autocast,
    identity: FaceNetwork | None = None,
) -> GanObjective:
    """The objective of ``config.model`` (``identity``: the frozen face network of the editor's identity and
    feature terms)."""
    kind = ConditionalVaeObjective if config.model == "cvae" else ConditionalGanObjective
    return kind(config, nets, positive_weight, autocast, identity)


def _accuracy(logits: Tensor, targets: Tensor) -> float:
    return ((logits > 0).float() == targets).float().mean().item()
