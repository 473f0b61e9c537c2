"""Networks: conditional DCGAN generator, projection + AC discriminator, StarGAN-style editor, region (eye and mouth)
patch discriminator, feature discriminator (on a frozen face network's maps), cVAE baseline.

The convolutional stacks share two blocks, :func:`_down` (halves the size) and :func:`_up` (doubles it). The
generator, discriminator and VAE span 4 x 4 to the image resolution with ``log2(resolution) - 2`` of them
(:func:`down_stack` chains the ``_down`` ones); the editor, like StarGAN, goes down to a quarter of the
resolution and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from itertools import pairwise

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from facegen.gan.regions import face_bands

RESOLUTIONS = (32, 64, 128)

Norm = Callable[[int], nn.Module]
_instance_norm: Norm = partial(nn.InstanceNorm2d, affine=True)


def _n_blocks(resolution: int) -> int:
    """Number of 2x resampling blocks between 4 x 4 and ``resolution``."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS} (got {resolution})")
    return int(math.log2(resolution)) - 2


def _sn(module: nn.Module, enabled: bool) -> nn.Module:
    return spectral_norm(module) if enabled else module


def _down(cin: int, cout: int, *, sn: bool = False, norm: Norm | None = None) -> nn.Sequential:
    """4x4 stride-2 conv (optionally spectrally normalised), optional norm, LeakyReLU(0.2): halves H and W."""
    layers = [_sn(nn.Conv2d(cin, cout, 4, 2, 1, bias=norm is None), sn)]
    if norm is not None:
        layers.append(norm(cout))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


def _up(cin: int, cout: int, *, norm: Norm = nn.BatchNorm2d) -> nn.Sequential:
    """4x4 stride-2 transposed conv, norm, ReLU: doubles H and W."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), norm(cout), nn.ReLU())


def _conv3(cin: int, cout: int) -> nn.Sequential:
    """3x3 same-size conv, instance norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), _instance_norm(cout), nn.ReLU())


def down_stack(
    cin: int, resolution: int, base_channels: int, *, sn: bool = False, norm: Norm | None = None
) -> nn.Sequential:
    """``_down`` blocks from ``resolution`` to 4 x 4, doubling the channels from ``base_channels``: the
    discriminator's and the cVAE encoder's body, and a public building block (facegen.metrics.convnet's judge)."""
    channels = [cin] + [base_channels * 2**i for i in range(_n_blocks(resolution))]
    return nn.Sequential(*(_down(a, b, sn=sn, norm=norm) for a, b in pairwise(channels)))


def _tile(attributes: Tensor, like: Tensor) -> Tensor:
    """The attribute vector as constant feature maps the size of ``like``."""
    return attributes[:, :, None, None].expand(-1, -1, *like.shape[2:]).to(like.dtype)


def init_weights(module: nn.Module) -> None:
    """DCGAN init, for ``net.apply``: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        sn = parametrize.is_parametrized(module, "weight")
        nn.init.normal_(module.parametrizations.weight.original if sn else module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers (BN statistics, ...) are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.copy_(p.lerp(p_ema, decay))
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


class ConditionalBatchNorm(nn.Module):
    """Batch norm whose scale and shift are linear in the attributes (conditional BN, de Vries et al. 2017):
    ``norm(x) * (1 + scale(a)) + shift(a)``, starting as plain batch norm."""

    def __init__(self, channels: int, n_attributes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale, self.shift = nn.Linear(n_attributes, channels), nn.Linear(n_attributes, channels)

    def reset_parameters(self) -> None:
        for linear in (self.scale, self.shift):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor, attributes: Tensor) -> Tensor:
        a = attributes.to(x.dtype)
        return self.norm(x) * (1 + self.scale(a))[:, :, None, None] + self.shift(a)[:, :, None, None]


class Generator(nn.Module):
    """Conditional DCGAN generator: ``G(z, attributes)`` -> images in [-1, 1], (B, 3, R, R).

    The 0/1 attribute vector is embedded linearly to ``z_dim`` and concatenated to ``z``; with
    ``conditional_norm`` every batch norm also takes its scale and shift from the attributes, so each
    resolution is told what to draw (as in SNGAN/BigGAN generators).
    """

    def __init__(
        self, z_dim: int, n_attributes: int, resolution: int, base_channels: int = 64, conditional_norm: bool = False
    ) -> None:
        super().__init__()
        n = _n_blocks(resolution)
        self.z_dim = z_dim
        self.embed = nn.Linear(n_attributes, z_dim)
        norm: Norm = partial(ConditionalBatchNorm, n_attributes=n_attributes) if conditional_norm else nn.BatchNorm2d
        channels = [base_channels * 2 ** (n - 1 - i) for i in range(n)]  # 4x4 ... R/2 x R/2
        self.main = nn.Sequential(
            nn.ConvTranspose2d(2 * z_dim, channels[0], 4, 1, 0, bias=False),  # 1x1 -> 4x4
            norm(channels[0]),
            nn.ReLU(),
            *(_up(a, b, norm=norm) for a, b in pairwise(channels)),
            nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1),
            nn.Tanh(),
        )
        self.apply(init_weights)
        for module in self.modules():
            if isinstance(module, ConditionalBatchNorm):
                module.reset_parameters()
        nn.init.normal_(self.embed.weight, 0.0, n_attributes**-0.5)  # attribute embedding on the scale of z

    def forward(self, z: Tensor, attributes: Tensor) -> Tensor:
        x = torch.cat([z, self.embed(attributes)], dim=1)
        return _conditioned(self.main, x[:, :, None, None], attributes)


def _conditioned(stack: nn.Sequential, x: Tensor, attributes: Tensor) -> Tensor:
    """``stack(x)``, passing ``attributes`` to its :class:`ConditionalBatchNorm` layers (nested stacks too)."""
    for layer in stack:
        if isinstance(layer, nn.Sequential):
            x = _conditioned(layer, x, attributes)
        else:
            x = layer(x, attributes) if isinstance(layer, ConditionalBatchNorm) else layer(x)
    return x


class Discriminator(nn.Module):
    """Projection discriminator with an auxiliary attribute classifier (AC-GAN).

    ``D(images, attributes)`` -> ``(adv_logit (B,), attribute_logits (B, n_attributes))``. Features ``h`` are
    the globally sum-pooled 4 x 4 maps; ``adv = linear(h) + sum(embed(attributes) * h)`` (Miyato & Koyama, 2018),
    the projection term left out when ``attributes`` is None.
    """

    def __init__(self, n_attributes: int, resolution: int, base_channels: int = 64, spectral_norm: bool = True) -> None:
        super().__init__()
        features = base_channels * 2 ** (_n_blocks(resolution) - 1)
        self.main = down_stack(3, resolution, base_channels, sn=spectral_norm)
        self.adv = _sn(nn.Linear(features, 1), spectral_norm)
        self.embed = _sn(nn.Linear(n_attributes, features, bias=False), spectral_norm)
        self.classify = _sn(nn.Linear(features, n_attributes), spectral_norm)
        self.apply(init_weights)

    def forward(self, images: Tensor, attributes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.main(images).sum(dim=(2, 3))
        adv = self.adv(h).squeeze(1)
        if attributes is not None:
            adv = adv + (self.embed(attributes) * h).sum(dim=1)
        return adv, self.classify(h)


class RegionDiscriminator(nn.Module):
    """PatchGAN critic of the eye and mouth bands (facegen/gan/regions.py): ``R(images)`` -> B x P logits, one per
    patch of every band (real: high). The whole-face discriminator judges a face at 4 x 4; this one judges each
    band at about 10 px patches, where an edit's drawn rims and striped teeth show (``gan.lambda_region``)."""

    def __init__(self, base_channels: int = 16, spectral_norm: bool = True) -> None:
        super().__init__()
        c = base_channels
        self.main = nn.Sequential(
            _down(3, c, sn=spectral_norm),
            _down(c, 2 * c, sn=spectral_norm),
            _sn(nn.Conv2d(2 * c, 1, 3, 1, 1), spectral_norm),
        )
        self.apply(init_weights)

    def forward(self, images: Tensor) -> Tensor:
        return torch.cat([self.main(band).flatten(1) for band in face_bands(images).values()], dim=1)


class FeatureDiscriminator(nn.Module):
    """Patch critic of a frozen face network's feature maps (Projected GAN, Sauer et al. 2021): ``P(maps)`` -> B x P
    logits, one per position of every map (real: high). Each map of ``channels[k]`` channels gets its own head
    (1x1 conv down to ``width``, LeakyReLU, 1x1 conv to a logit), so the face network's view of an edit, not its
    pixels, decides (``gan.lambda_feature``)."""

    def __init__(self, channels: tuple[int, ...], width: int = 64, spectral_norm: bool = True) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.heads = nn.ModuleList(
            nn.Sequential(
                _sn(nn.Conv2d(c, width, 1), spectral_norm),
                nn.LeakyReLU(0.2),
                _sn(nn.Conv2d(width, 1, 1), spectral_norm),
            )
            for c in channels
        )
        self.apply(init_weights)

    def forward(self, maps: list[Tensor]) -> Tensor:
        got = tuple(m.shape[1] for m in maps)
        if got != self.channels:
            raise ValueError(
                f"the face network gave feature maps of {got} channels; gan.feature_channels says {self.channels}"
            )
        return torch.cat([head(m.float()).flatten(1) for head, m in zip(self.heads, maps)], dim=1)


class _ResBlock(nn.Module):
    """``x + (conv3x3 -> IN -> ReLU -> conv3x3 -> IN)(x)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv3(channels, channels), nn.Conv2d(channels, channels, 3, 1, 1, bias=False), _instance_norm(channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Editor(nn.Module):
    """StarGAN-style editor: ``E(images, target_attributes)`` -> edited images in [-1, 1], same size.

    Encoder (two ``_down`` blocks to R/4), target attributes tiled and concatenated at the bottleneck,
    ``n_res_blocks`` residual blocks, decoder (two ``_up`` blocks) back to R. The decoder predicts a change
    that is added to the input (as in residual attribute editors, Shen & Liu 2017): keeping the face is
    there from the first step and training goes into the attribute, which a short CPU run needs.

    With ``mask`` the decoder also predicts an attention mask A in [0, 1] (GANimation, Pumarola et al. 2018) and
    the edit is ``x + A * change``: where A is 0 the source pixel is kept, so the change can be made local (the
    objective keeps A small). ``forward(..., return_mask=True)`` also returns A (B x 1 x R x R).
    """

    def __init__(
        self, n_attributes: int, resolution: int, base_channels: int = 64, n_res_blocks: int = 3, mask: bool = False
    ) -> None:
        super().__init__()
        _n_blocks(resolution)  # only validates: the editor always resamples twice
        b = base_channels
        self.encoder = nn.Sequential(
            _conv3(3, b), _down(b, 2 * b, norm=_instance_norm), _down(2 * b, 4 * b, norm=_instance_norm)
        )
        self.fuse = _conv3(4 * b + n_attributes, 4 * b)
        self.decoder = nn.Sequential(
            *(_ResBlock(4 * b) for _ in range(n_res_blocks)),
            _up(4 * b, 2 * b, norm=_instance_norm),
            _up(2 * b, b, norm=_instance_norm),
            nn.Conv2d(b, 4 if mask else 3, 3, 1, 1),
        )
        self.mask = mask
        self.apply(init_weights)
        if mask:  # the mask starts mostly closed (sigmoid(-2) = 0.12): the editor starts near the identity
            nn.init.constant_(self.decoder[-1].bias[3:], -2.0)

    def forward(self, images: Tensor, attributes: Tensor, return_mask: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        h = self.encoder(images)
        out = self.decoder(self.fuse(torch.cat([h, _tile(attributes, h)], dim=1)))
        change = 2 * torch.tanh(out[:, :3])  # can span [-1, 1]
        mask = torch.sigmoid(out[:, 3:]) if self.mask else torch.ones_like(out[:, :1])
        edited = (images + mask * change).clamp(-1, 1).to(change.dtype)  # under autocast: its dtype, like the rest
        return (edited, mask) if return_mask else edited


class ConditionalVAE(nn.Module):
    """Baseline conditional VAE: encoder q(z | x, y) over the image with tiled attributes, decoder a :class:`Generator`.

    ``forward(images, attributes)`` -> ``(recon, mu, logvar)``; ``z`` is sampled in training mode, ``mu`` in eval.
    ``encode`` and ``sample`` (the decoder) give the halves, for editing and for drawing from the prior.
    """

    def __init__(
        self, n_attributes: int, resolution: int, z_dim: int, base_channels: int = 64, conditional_norm: bool = False
    ) -> None:
        super().__init__()
        features = base_channels * 2 ** (_n_blocks(resolution) - 1) * 16
        self.z_dim = z_dim
        self.encoder = nn.Sequential(
            down_stack(3 + n_attributes, resolution, base_channels, norm=nn.BatchNorm2d),
            nn.Flatten(),
            nn.Linear(features, 2 * z_dim),
        )
        self.encoder.apply(init_weights)
        self.decoder = Generator(z_dim, n_attributes, resolution, base_channels, conditional_norm)

    def forward(
        self, images: Tensor, attributes: Tensor, decode_attributes: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Encode under ``attributes``, decode under ``decode_attributes`` (default: the same)."""
        mu, logvar = self.encode(images, attributes)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.sample(z, attributes if decode_attributes is None else decode_attributes), mu, logvar

    def encode(self, images: Tensor, attributes: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of q(z | images, attributes)."""
        mu, logvar = self.encoder(torch.cat([images, _tile(attributes, images)], dim=1)).chunk(2, dim=1)
        return mu, logvar

    def sample(self, z: Tensor, attributes: Tensor) -> Tensor:
        """Decode latents ``z`` (B, z_dim) under ``attributes``."""
        return self.decoder(z, attributes)


class VaeEditor(nn.Module):
    """Attribute editing with a cVAE: the source attributes come from ``classifier`` (a :class:`Discriminator`'s
    attribute head), the image is encoded under them and decoded under the target attributes."""

    def __init__(self, vae: ConditionalVAE, classifier: Discriminator) -> None:
        super().__init__()
        self.vae, self.classifier = vae, classifier

    def forward(self, images: Tensor, attributes: Tensor) -> Tensor:
        source = (self.classifier(images)[1] > 0).to(images.dtype)
        mu, _ = self.vae.encode(images, source)
        return self.vae.sample(mu, attributes)
