"""A `train_gan` checkpoint's networks: which ones it holds, how they are built, and reading it back safely.

Training (:mod:`facegen.gan.training_loop`) writes checkpoints and sampling (:mod:`facegen.gan.inference`) reads
them; both build their networks here, so neither needs the other.
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from facegen.config import GanConfig
from facegen.gan.networks import (
    ConditionalVAE,
    Discriminator,
    Editor,
    FeatureDiscriminator,
    Generator,
    RegionDiscriminator,
    VaeEditor,
)
from facegen.weights import load_checkpoint

DISCRIMINATORS = ("D", "R", "P")  # trained against the others, never sampled from: no EMA copy


def build_networks(config: GanConfig, n_attributes: int, resolution: int) -> dict[str, nn.Module]:
    """The trained networks by checkpoint name: ``G`` (generator or cVAE), ``D`` (discriminator / attribute
    classifier), ``E`` (editor, cgan with ``gan.editor``), ``R`` (region discriminator, ``gan.lambda_region``),
    ``P`` (feature discriminator, ``gan.lambda_feature``), and an EMA copy ``<name>_ema`` of G and E."""
    c = config
    discriminator = Discriminator(n_attributes, resolution, c.base_channels, c.spectral_norm)
    if c.model == "cvae":
        nets = {
            "G": ConditionalVAE(n_attributes, resolution, c.z_dim, c.base_channels, c.conditional_norm),
            "D": discriminator,
        }
    else:
        nets = {
            "G": Generator(c.z_dim, n_attributes, resolution, c.base_channels, c.conditional_norm),
            "D": discriminator,
        }
        if c.editor:
            nets["E"] = Editor(n_attributes, resolution, c.editor_channels, c.editor_res_blocks, c.editor_mask)
        if c.lambda_region > 0:
            nets["R"] = RegionDiscriminator(c.base_channels, c.spectral_norm)
        if c.lambda_feature > 0:
            nets["P"] = FeatureDiscriminator(c.feature_channels, 4 * c.base_channels, c.spectral_norm)
    for name in [n for n in nets if n not in DISCRIMINATORS]:
        nets[f"{name}_ema"] = copy.deepcopy(nets[name]).eval().requires_grad_(False)
    return nets


def sampling_networks(nets: dict[str, nn.Module]) -> tuple[nn.Module, nn.Module | None]:
    """(generator, editor or None) of :func:`build_networks`' EMA copies: ``generator(z, attributes)`` and
    ``editor(images, target_attributes)``. A cVAE samples with its decoder and edits by re-encoding."""
    ema = nets["G_ema"]
    if isinstance(ema, ConditionalVAE):
        return ema.decoder, VaeEditor(ema, nets["D"])
    return ema, nets.get("E_ema")


def read_checkpoint(path: Path) -> dict:
    """A checkpoint's contents, on the CPU (``load_state_dict`` moves weights to their device; RNG states must
    stay CPU tensors), unpickling nothing but tensors and plain values."""
    return load_checkpoint(path, "facegen generator checkpoint (train_gan)", ("config", "resolution", "step"))
