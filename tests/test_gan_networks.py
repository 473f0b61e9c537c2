"""GAN networks and losses: shapes and ranges, conditioning, spectral norm, known loss values, EMA, and a
tiny overfit check that gradients reach the attribute head and the editor learns reconstructions."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from facegen.gan import (
    ConditionalBatchNorm,
    ConditionalVAE,
    Discriminator,
    Editor,
    Generator,
    adversarial_losses,
    attribute_loss,
    ema_update,
    gradient_penalty,
    init_weights,
    kl_divergence,
    mode_seeking_loss,
    reconstruction_loss,
)

N_ATTR = 5
Z_DIM = 16


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _images(n: int, resolution: int) -> Tensor:
    return torch.rand(n, 3, resolution, resolution) * 2 - 1


def _attributes(n: int) -> Tensor:
    return (torch.rand(n, N_ATTR) < 0.5).float()


def _in_range(x: Tensor) -> bool:
    return bool(torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1)


# --- shapes, ranges, memory format, autocast -------------------------------------------------------------

SIZES = [(32, 8), (64, 8), (128, 4)]  # (resolution, base_channels)


@pytest.mark.parametrize("resolution, base", SIZES)
def test_every_network_has_the_right_shapes_and_ranges(resolution: int, base: int) -> None:
    x, y = _images(2, resolution), _attributes(2)
    image_shape = (2, 3, resolution, resolution)

    fake = Generator(Z_DIM, N_ATTR, resolution, base)(torch.randn(2, Z_DIM), y)
    assert fake.shape == image_shape and _in_range(fake)

    adv, logits = Discriminator(N_ATTR, resolution, base)(x, y)
    assert adv.shape == (2,) and logits.shape == (2, N_ATTR)

    edited = Editor(N_ATTR, resolution, base)(x, 1 - y)
    assert edited.shape == image_shape and _in_range(edited)

    vae = ConditionalVAE(N_ATTR, resolution, Z_DIM, base)
    recon, mu, logvar = vae(x, y)
    assert recon.shape == image_shape and _in_range(recon)
    assert mu.shape == logvar.shape == (2, Z_DIM)
    assert vae.sample(torch.randn(3, Z_DIM), _attributes(3)).shape == (3, 3, resolution, resolution)


@pytest.mark.parametrize("resolution", [48, 16, 256])
def test_unsupported_resolution_is_refused(resolution: int) -> None:
    with pytest.raises(ValueError, match=r"resolution must be one of \(32, 64, 128\)"):
        Generator(Z_DIM, N_ATTR, resolution)


def _forwards() -> dict[str, tuple[nn.Module, tuple[Tensor, ...]]]:
    x, y, z = _images(2, 32), _attributes(2), torch.randn(2, Z_DIM)
    return {
        "generator": (Generator(Z_DIM, N_ATTR, 32, 8), (z, y)),
        "discriminator": (Discriminator(N_ATTR, 32, 8), (x, y)),
        "editor": (Editor(N_ATTR, 32, 8), (x, y)),
        "vae": (ConditionalVAE(N_ATTR, 32, Z_DIM, 8), (x, y)),
    }


def _first(out: Tensor | tuple[Tensor, ...]) -> Tensor:
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("name", ["generator", "discriminator", "editor", "vae"])
def test_channels_last_and_autocast_give_the_same_result(name: str) -> None:
    net, inputs = _forwards()[name]
    net.eval()
    with torch.no_grad():
        expected = _first(net(*inputs))
        net_cl = copy.deepcopy(net).to(memory_format=torch.channels_last)
        inputs_cl = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in inputs)
        torch.testing.assert_close(_first(net_cl(*inputs_cl)), expected, rtol=1e-4, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _first(net(*inputs))
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, rtol=0.1, atol=0.05 * expected.abs().max().item())


# --- conditioning ----------------------------------------------------------------------------------------


def test_generator_depends_on_attributes_and_is_deterministic_in_eval() -> None:
    G = Generator(Z_DIM, N_ATTR, 32, 8).eval()
    z, y = torch.randn(4, Z_DIM), _attributes(4)
    with torch.no_grad():
        first, again, flipped = G(z, y), G(z, y), G(z, 1 - y)
    assert torch.equal(first, again)
    change = (first - flipped).flatten(1).norm(dim=1) / first.flatten(1).norm(dim=1)
    assert change.min() > 0.1  # every image changes, by more than round-off


def test_conditional_norm_brings_the_attributes_to_every_resolution() -> None:
    G = Generator(Z_DIM, N_ATTR, 32, 8, conditional_norm=True)
    norms = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm)]
    assert len(norms) == 3  # at 4, 8 and 16 px
    x, y = torch.randn(6, norms[0].norm.num_features, 4, 4), _attributes(6)
    assert torch.equal(norms[0](x, y), norms[0].norm(x))  # starts as plain batch norm: scale and shift 0
    with torch.no_grad():
        G.embed.weight.zero_(), G.embed.bias.zero_()  # the input no longer carries the attributes
        z = torch.randn(4, Z_DIM).repeat(2, 1)
        y = _attributes(4)
        assert torch.allclose(G.eval()(z, torch.cat([y, 1 - y])).chunk(2)[0], G(z[:4], y), atol=1e-6)
        same = G(z, torch.cat([y, 1 - y]))
        assert torch.equal(same[:4], same[4:])  # nothing else tells G the attributes
        for norm in norms:
            norm.scale.weight.normal_(0, 0.5)
        changed = G(z, torch.cat([y, 1 - y]))
    assert (changed[:4] - changed[4:]).flatten(1).norm(dim=1).min() > 0.01
    # The plain generator keeps its layout, so checkpoints made before the option still load.
    assert not any(isinstance(m, ConditionalBatchNorm) for m in Generator(Z_DIM, N_ATTR, 32, 8).modules())
    assert "main.1.weight" in Generator(Z_DIM, N_ATTR, 32, 8).state_dict()


def test_editor_output_depends_on_the_target_attributes() -> None:
    E = Editor(N_ATTR, 32, 8).eval()
    x, y = _images(4, 32), _attributes(4)
    with torch.no_grad():
        same, flipped = E(x, y), E(x, 1 - y)
    assert (same - flipped).flatten(1).norm(dim=1).min() > 0.01 * same.flatten(1).norm(dim=1).max()


def test_projection_term_uses_attributes_only_when_given() -> None:
    D = Discriminator(N_ATTR, 32, 8).eval()  # eval: no power iteration, so the weights stay put
    x, y = _images(4, 32), _attributes(4)
    with torch.no_grad():
        adv, logits = D(x, y)
        adv_flipped, logits_flipped = D(x, 1 - y)
        adv_none, logits_none = D(x)
        adv_zero, _ = D(x, torch.zeros_like(y))
    assert (adv - adv_flipped).abs().min() > 1e-6
    torch.testing.assert_close(adv_none, adv_zero)  # no projection == projection of the all-zero vector
    torch.testing.assert_close(logits, logits_flipped)  # the classifier head sees the image only
    torch.testing.assert_close(logits, logits_none)


def _spectrally_normalised(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]


def test_spectral_norm_is_on_every_weight_layer_when_asked() -> None:
    with_sn = Discriminator(N_ATTR, 32, 8, spectral_norm=True)
    weight_layers = [m for m in with_sn.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weight_layers) == 3 + 3  # three downsamplings, adversarial / embedding / classifier heads
    assert _spectrally_normalised(with_sn) == weight_layers
    assert _spectrally_normalised(Discriminator(N_ATTR, 32, 8, spectral_norm=False)) == []


# --- losses ----------------------------------------------------------------------------------------------


def _full(value: float, n: int = 4) -> Tensor:
    return torch.full((n,), value)


@pytest.mark.parametrize(
    "kind, real, fake, d_expected, g_expected",
    [
        ("hinge", 2.0, -2.0, 0.0, 2.0),
        ("hinge", 0.0, 0.0, 2.0, 0.0),
        ("hinge", -1.0, 3.0, 2.0 + 4.0, -3.0),
        ("wgan-gp", 2.0, -3.0, -5.0, 3.0),
        ("bce", 0.0, 0.0, 2 * math.log(2), math.log(2)),
        ("bce", 40.0, -40.0, 0.0, 40.0),
    ],
)
def test_adversarial_losses_on_known_logits(
    kind: str, real: float, fake: float, d_expected: float, g_expected: float
) -> None:
    loss = adversarial_losses(kind)  # type: ignore[arg-type]
    assert loss.d_loss(_full(real), _full(fake)).item() == pytest.approx(d_expected, abs=1e-6)
    assert loss.g_loss(_full(fake)).item() == pytest.approx(g_expected, abs=1e-6)


def test_unknown_adversarial_loss_names_the_valid_kinds() -> None:
    with pytest.raises(ValueError, match=r"'lsgan'; valid kinds: hinge, wgan-gp, bce"):
        adversarial_losses("lsgan")  # type: ignore[arg-type]


class _LinearCritic(nn.Module):
    """D(x) = <w, x> per image: its input gradient is w everywhere, of norm ``norm``."""

    def __init__(self, norm: float) -> None:
        super().__init__()
        w = torch.randn(3, 32, 32)
        self.w = nn.Parameter(w * norm / w.norm())

    def forward(self, images: Tensor, attributes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return (images * self.w).sum(dim=(1, 2, 3)), images.new_zeros(images.shape[0], N_ATTR)


@pytest.mark.parametrize("norm, expected", [(1.0, 0.0), (2.0, 1.0), (0.5, 0.25)])
def test_gradient_penalty_of_a_linear_critic(norm: float, expected: float) -> None:
    penalty = gradient_penalty(_LinearCritic(norm), _images(4, 32), _images(4, 32), None)
    assert penalty.item() == pytest.approx(expected, abs=1e-5)


def test_gradient_penalty_trains_the_discriminator() -> None:
    D = Discriminator(N_ATTR, 32, 8, spectral_norm=False)
    penalty = gradient_penalty(D, _images(4, 32), _images(4, 32), _attributes(4))
    assert penalty.item() > 0
    penalty.backward()  # the penalty is differentiable w.r.t. D's parameters (double backward)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in D.main.parameters())
    assert any(p.grad.abs().sum() > 0 for p in D.main.parameters())


def test_attribute_reconstruction_and_kl_losses() -> None:
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert attribute_loss(torch.zeros(2, 2), targets).item() == pytest.approx(math.log(2))
    assert attribute_loss(torch.tensor([[30.0, -30.0], [-30.0, 30.0]]), targets).item() == pytest.approx(0, abs=1e-6)
    x = torch.zeros(2, 3, 4, 4)
    assert reconstruction_loss(x, x).item() == 0
    assert reconstruction_loss(x, x - 0.5).item() == pytest.approx(0.5)
    mu, logvar = torch.zeros(2, 8), torch.zeros(2, 8)
    assert kl_divergence(mu, logvar).item() == 0  # posterior == prior
    assert kl_divergence(mu + 1, logvar).item() == pytest.approx(0.5 * 8)  # 0.5 * ||mu||^2 per sample
    assert kl_divergence(mu, logvar + math.log(2)).item() == pytest.approx(0.5 * 8 * (1 - math.log(2)))


def test_positive_weight_balances_a_rare_attribute() -> None:
    # 10% positives: the unweighted loss is lowest at the base rate, the weighted one (9 = negatives/positives)
    # at even odds, as if the attribute were as common as its absence.
    targets = (torch.arange(100) < 10).float()[:, None]
    for weight, best in ((None, 0.1), (torch.tensor([9.0]), 0.5)):
        logit = torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.SGD([logit], lr=1.0)
        for _ in range(200):
            optimizer.zero_grad()
            attribute_loss(logit.expand(100, 1), targets, weight).backward()
            optimizer.step()
        assert torch.sigmoid(logit).item() == pytest.approx(best, abs=0.01)


# --- init and EMA ----------------------------------------------------------------------------------------


def test_mode_seeking_loss_is_large_when_z_is_ignored() -> None:
    z_a, z_b = torch.zeros(4, 8), torch.ones(4, 8)
    same = torch.full((4, 3, 2, 2), 0.5)
    assert mode_seeking_loss(same, same, z_a, z_b).item() == pytest.approx(1e5)  # 1 / eps
    assert mode_seeking_loss(same, -same, z_a, z_b).item() == pytest.approx(1.0, rel=1e-4)  # |a - b| = |z_a - z_b|
    a = same.clone().requires_grad_(True)
    mode_seeking_loss(a, -same, z_a, z_b).backward()
    assert (a.grad < 0).all()  # descending moves a away from b


def test_mode_seeking_on_pooled_images_does_not_count_pixel_noise_as_variety() -> None:
    z_a, z_b = torch.zeros(2, 8), torch.ones(2, 8)
    face = torch.rand(2, 3, 8, 8) * 0.5
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 0.4 - 0.2  # zero mean over 2 x 2 cells
    speckled = face + checker
    assert mode_seeking_loss(face, speckled, z_a, z_b).item() == pytest.approx(1 / 0.2, rel=1e-4)
    assert mode_seeking_loss(face, speckled, z_a, z_b, downsample=2).item() > 1e4  # no variety left: ~1 / eps
    brighter = face + 0.2  # a change that survives pooling still counts in full
    assert mode_seeking_loss(face, brighter, z_a, z_b, downsample=4).item() == pytest.approx(1 / 0.2, rel=1e-4)


def test_init_weights_is_dcgan_init_also_under_spectral_norm() -> None:
    conv = nn.Conv2d(64, 64, 4)
    init_weights(conv)
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05) and not conv.bias.any()
    sn_conv = torch.nn.utils.parametrizations.spectral_norm(nn.Conv2d(64, 64, 4))
    init_weights(sn_conv)
    assert sn_conv.parametrizations.weight.original.std().item() == pytest.approx(0.02, rel=0.05)
    norm = nn.BatchNorm2d(4096)
    init_weights(norm)
    assert norm.weight.mean().item() == pytest.approx(1, abs=0.005) and not norm.bias.any()


def _state(net: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_ema_update_follows_the_decay() -> None:
    model = Generator(Z_DIM, N_ATTR, 32, 8)
    ema = copy.deepcopy(model)
    model(torch.randn(4, Z_DIM), _attributes(4))  # moves the BatchNorm running statistics
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    before = _state(ema)

    ema_update(ema, model, decay=1.0)
    params = {name for name, _ in ema.named_parameters()}
    for name, value in ema.state_dict().items():
        expected = before[name] if name in params else model.state_dict()[name]  # buffers are copied
        assert torch.equal(value, expected), name

    ema_update(ema, model, decay=0.0)
    for name, value in ema.state_dict().items():
        assert torch.equal(value, model.state_dict()[name]), name

    ema.load_state_dict(before)
    ema_update(ema, model, decay=0.75)
    for name, p in ema.named_parameters():
        torch.testing.assert_close(p, 0.75 * before[name] + 0.25 * model.state_dict()[name])


# --- the pieces learn ------------------------------------------------------------------------------------


def test_attribute_head_overfits_a_small_batch() -> None:
    x, y = _images(64, 32), _attributes(64)
    D = Discriminator(N_ATTR, 32, 8)
    optimizer = torch.optim.Adam(D.parameters(), lr=2e-3)
    for _ in range(100):
        loss = attribute_loss(D(x)[1], y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = ((D(x)[1] > 0).float() == y).float().mean().item()
    assert accuracy > 0.9


def test_editor_learns_identity_edits() -> None:
    x = F.interpolate(_images(16, 4), size=32, mode="bilinear")  # smooth random images
    y = _attributes(16)
    E = Editor(N_ATTR, 32, 8)
    optimizer = torch.optim.Adam(E.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        loss = reconstruction_loss(E(x, y), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_masked_editor_keeps_the_source_where_its_mask_is_closed() -> None:
    E = Editor(N_ATTR, 32, 8, mask=True).eval()
    x, y = _images(4, 32), _attributes(4)
    with torch.no_grad():
        edited, mask = E(x, 1 - y, return_mask=True)
        assert mask.shape == (4, 1, 32, 32) and 0 < mask.min() and mask.max() < 1
        assert 0.05 < mask.mean() < 0.2  # starts mostly closed
        E.decoder[-1].bias[3] = -100.0  # closed everywhere: every pixel is the source's
        assert torch.equal(E(x, 1 - y), x)
    plain = Editor(N_ATTR, 32, 8).eval()
    with torch.no_grad():
        edited, mask = plain(x, y, return_mask=True)
    assert torch.equal(mask, torch.ones(4, 1, 32, 32)) and torch.equal(edited, plain(x, y))


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_region_discriminator_sees_the_eye_and_mouth_bands_only(resolution: int) -> None:
    """R's patch logits change when a band's pixels change and stay put when the forehead or cheeks do; the
    ArcFace template's eyes and mouth corners lie inside their bands at every size."""
    from facegen.data.align import template
    from facegen.gan.networks import RegionDiscriminator
    from facegen.gan.regions import FACE_REGIONS, region_bounds

    torch.manual_seed(0)
    critic = RegionDiscriminator(base_channels=4).eval()
    images = torch.rand(2, 3, resolution, resolution) * 2 - 1
    logits = critic(images)
    assert logits.ndim == 2 and logits.shape[0] == 2 and logits.shape[1] >= 2
    outside = images.clone()
    outside[..., : region_bounds("eyes", resolution)[0], :] = 0  # the forehead, above the eye band
    assert torch.equal(critic(outside), logits)
    inside = images.clone()
    top, bottom, left, right = region_bounds("mouth", resolution)
    inside[..., top:bottom, left:right] = 0
    assert not torch.allclose(critic(inside), logits)
    points = template(resolution)
    for region, rows in (("eyes", points[:2]), ("mouth", points[3:])):
        top, bottom, left, right = region_bounds(region, resolution)
        assert all(top <= y < bottom and left <= x < right for x, y in rows), (region, FACE_REGIONS[region])


def test_edit_masks_cover_the_changed_attributes_bands() -> None:
    """A confined edit's mask: each changed attribute's band (feathered), their union for several, the whole face
    for an attribute without a band, nothing where nothing changes; a wrong shape is named."""
    from facegen.gan.regions import FEATHER, edit_masks, region_bounds

    names = ["Eyeglasses", "Smiling", "Male"]
    changed = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    masks = edit_masks(changed, names, 64)
    assert masks.shape == (6, 1, 64, 64) and masks.min() >= 0 and masks.max() <= 1
    for row, region in ((0, "eyes"), (1, "mouth")):
        top, bottom, left, right = region_bounds(region, 64)
        centre = masks[row, 0, (top + bottom) // 2, (left + right) // 2]
        grow = round(2 * FEATHER * 64)  # feathered outwards: the band's own edge still changes almost fully
        assert centre == pytest.approx(1.0, abs=1e-4) and masks[row, 0, top, (left + right) // 2] > 0.95
        assert 0.4 < masks[row, 0, top - grow, (left + right) // 2] < 0.6
        assert masks[row, 0, 0, 0] == 0 and masks[row, 0, -1, 0] == 0  # a corner of the face: untouched
    assert torch.allclose(masks[2], torch.maximum(masks[0], masks[1]))
    assert torch.equal(masks[3], torch.ones(1, 64, 64)) and torch.equal(masks[4], torch.ones(1, 64, 64))
    assert torch.equal(masks[5], torch.zeros(1, 64, 64))
    with pytest.raises(ValueError, match="changed is \\(6, 2\\); expected B x 3"):
        edit_masks(changed[:, :2], names, 64)
