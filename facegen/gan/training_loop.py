"""Training loop of the attribute-conditional GAN: short and readable, resumable to the exact step.

One step: the discriminator learns real-vs-fake (plus the real images' attributes, AC-GAN style), then
the generator learns to fool it while making the requested attributes recognisable. Every
``sample_every`` steps an image grid and a metrics row are written; every ``checkpoint_every`` steps an
atomic checkpoint holds everything needed to continue identically: weights, optimizers, EMA, RNG
states and the step.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import save_image
from tqdm import tqdm

from facegen.config import GanConfig
from facegen.gan.loss import adversarial_losses, attribute_loss, gradient_penalty
from facegen.gan.networks import Discriminator, Generator, ema_update
from facegen.io import atomic_file

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
METRIC_NAMES = ("step", "d_loss", "g_loss", "d_real_attribute_accuracy", "g_fake_attribute_accuracy")


@dataclass
class Batch:
    images: Tensor  # B x 3 x R x R in [-1, 1]
    attributes: Tensor  # B x A, 0/1


class GanTrainer:
    """Owns the networks, optimizers and RNG of one training run; `run()` trains up to `config.steps`."""

    def __init__(self, config: GanConfig, images: Tensor, attributes: Tensor, out: Path,
                 device: torch.device | str = "cpu") -> None:
        """`images`: N x R x R x 3 uint8 (as in the prepared cache); `attributes`: N x A float 0/1."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be N x R x R x 3 uint8, got {tuple(images.shape)} {images.dtype}")
        if attributes.shape != (len(images), len(config.attributes)):
            raise ValueError(f"attributes must be {len(images)} x {len(config.attributes)} "
                             f"(gan.attributes), got {tuple(attributes.shape)}")
        self.config, self.out, self.device = config, Path(out), torch.device(device)
        self.images, self.attributes = images, attributes.float()
        resolution, n_attr = images.shape[1], attributes.shape[1]
        torch.manual_seed(config.seed)
        self.G = Generator(config.z_dim, n_attr, resolution, config.base_channels).to(self.device)
        self.D = Discriminator(n_attr, resolution, config.base_channels, config.spectral_norm).to(self.device)
        self.G_ema = Generator(config.z_dim, n_attr, resolution, config.base_channels).to(self.device).eval()
        self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=config.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=config.betas)
        self.adversarial = adversarial_losses(config.loss)
        self.data_rng = torch.Generator().manual_seed(config.seed)  # which images each batch holds
        self.noise_rng = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.step = 0
        # Fixed noise for the grids: columns share z across attribute settings.
        self.grid_z = torch.randn(8, config.z_dim, generator=torch.Generator().manual_seed(config.seed + 2))

    def sample_batch(self) -> Batch:
        index = torch.randint(len(self.images), (self.config.batch_size,), generator=self.data_rng)
        images = self.images[index].to(self.device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        return Batch(images, self.attributes[index].to(self.device))

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One discriminator update and one generator update; returns the losses and accuracies."""
        c = self.config
        z = torch.randn(len(batch.images), c.z_dim, device=self.device, generator=self.noise_rng)
        wanted = batch.attributes[torch.randperm(len(batch.images), device=self.device, generator=self.noise_rng)]
        fake = self.G(z, wanted)

        real_adv, real_cls = self.D(batch.images, batch.attributes)
        fake_adv, _ = self.D(fake.detach(), wanted)
        d_loss = self.adversarial.d_loss(real_adv, fake_adv) + c.lambda_cls * attribute_loss(real_cls, batch.attributes)
        if c.loss == "wgan-gp":
            d_loss = d_loss + c.lambda_gp * gradient_penalty(self.D, batch.images, fake.detach(), batch.attributes)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()

        fake_adv, fake_cls = self.D(fake, wanted)
        g_loss = self.adversarial.g_loss(fake_adv) + c.lambda_cls * attribute_loss(fake_cls, wanted)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        # Ramp the decay up (as TensorFlow's ExponentialMovingAverage with num_updates): a fixed 0.999 would
        # keep most of the random initial weights for the first thousands of steps.
        ema_update(self.G_ema, self.G, min(c.ema_decay, (1 + self.step) / (10 + self.step)))
        self.step += 1
        return {
            "d_loss": d_loss.item(),
            "g_loss": g_loss.item(),
            "d_real_attribute_accuracy": _accuracy(real_cls, batch.attributes),
            "g_fake_attribute_accuracy": _accuracy(fake_cls, wanted),
        }

    def run(self) -> None:
        """Train from the current step to `config.steps`, writing grids, metrics and checkpoints."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        with tqdm(total=c.steps, initial=self.step, desc="train_gan", unit="step") as progress:
            while self.step < c.steps:
                losses = self.train_step(self.sample_batch())
                progress.update(1)
                progress.set_postfix(d=f"{losses['d_loss']:.3f}", g=f"{losses['g_loss']:.3f}")
                if self.step % c.sample_every == 0 or self.step == c.steps:
                    self._log_metrics(losses)
                    self.save_grid(self.out / f"grid_{self.step:06d}.png")
                if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                    self.save_checkpoint()

    @torch.no_grad()
    def save_grid(self, path: Path) -> None:
        """Rows: no attribute, then each conditioned attribute alone; columns share z (EMA generator)."""
        n_attr = len(self.config.attributes)
        settings = torch.cat([torch.zeros(1, n_attr), torch.eye(n_attr)])
        z = self.grid_z.repeat(len(settings), 1).to(self.device)
        attributes = settings.repeat_interleave(len(self.grid_z), dim=0).to(self.device)
        with atomic_file(path) as f:
            save_image(self.G_ema(z, attributes).add(1).div(2), f, nrow=len(self.grid_z), format="png")

    def _log_metrics(self, losses: dict[str, float]) -> None:
        path = self.out / METRICS
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_NAMES)
            if new:
                writer.writeheader()
            writer.writerow({"step": self.step, **{k: round(v, 5) for k, v in losses.items()}})

    def state_dict(self) -> dict:
        return {
            "step": self.step, "resolution": self.images.shape[1],
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "data_rng": self.data_rng.get_state(), "noise_rng": self.noise_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": self.config.model_dump(mode="json"),
        }

    def save_checkpoint(self) -> Path:
        path = self.out / CHECKPOINT
        with atomic_file(path) as f:
            torch.save(self.state_dict(), f)
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Continue from a checkpoint (weights only: nothing arbitrary is unpickled)."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["config"]["attributes"] != list(self.config.attributes):
            raise ValueError(f"{path} was trained on attributes {state['config']['attributes']}, "
                             f"not gan.attributes {list(self.config.attributes)}")
        for name in ("G", "D", "G_ema", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.data_rng.set_state(state["data_rng"])
        self.noise_rng.set_state(state["noise_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = state["step"]
        log.info("resumed from %s at step %d", path, self.step)


def _accuracy(logits: Tensor, targets: Tensor) -> float:
    return ((logits > 0).float() == targets).float().mean().item()
