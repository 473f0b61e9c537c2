"""Attribute-conditional GAN: networks (``networks``) and their training objectives (``loss``)."""

from facegen.gan.loss import (
    ADVERSARIAL_LOSSES,
    AdversarialLoss,
    adversarial_losses,
    attribute_loss,
    gradient_penalty,
    kl_divergence,
    mode_seeking_loss,
    reconstruction_loss,
)
from facegen.gan.networks import (
    ConditionalBatchNorm,
    ConditionalVAE,
    Discriminator,
    Editor,
    Generator,
    ema_update,
    init_weights,
)

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "ConditionalBatchNorm",
    "ConditionalVAE",
    "Discriminator",
    "Editor",
    "Generator",
    "adversarial_losses",
    "attribute_loss",
    "ema_update",
    "gradient_penalty",
    "init_weights",
    "kl_divergence",
    "mode_seeking_loss",
    "reconstruction_loss",
]
