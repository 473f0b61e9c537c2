"""Training loop of the attribute-conditional GAN (and of its cVAE baseline): one trainer, resumable to the exact step.

The loop schedules: each step it draws a batch, has the objective of ``gan.model`` (facegen/gan/loss.py: what is
computed and how it is weighed) give the discriminator's loss, updates D, then has it give the generator's (and
editor's) loss against the updated D, updates them, and moves the EMA copies.

Every ``sample_every`` steps an image grid, an edit strip and a metrics row are written; every
``checkpoint_every`` steps an atomic checkpoint holds everything needed to continue identically:
weights, optimizers, EMA copies, RNG states and the step. On CUDA the forward passes run under
autocast (``gan.amp``) in channels_last; under ``torchrun`` each process trains on its share of the
batch and the networks are wrapped in DistributedDataParallel (rank 0 writes the outputs).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import save_image
from tqdm import tqdm

from facegen.config import GanConfig
from facegen.data.prepared import PreparedFaces
from facegen.gan.checkpoint import DISCRIMINATORS, build_networks, read_checkpoint, sampling_networks
from facegen.gan.loss import balancing_weight, objective
from facegen.gan.networks import ema_update
from facegen.io import Layout, atomic_file, check_replaceable, check_separate, remove_leftovers
from facegen.locks import output_lock
from facegen.paths import GAN_CHECKPOINT_NAME
from facegen.weights import CheckpointError, load_weights

log = logging.getLogger(__name__)

METRICS = "metrics.csv"
# gan.out: its training log (written from the first logged step on) marks a folder this project trains into
LAYOUT = Layout(
    "GAN training outputs",
    METRICS,
    (GAN_CHECKPOINT_NAME, METRICS, "grid_*.png", "edits_*.png"),
    unstamped=lambda folder: _holds_a_training_checkpoint(folder),
)
GRID_COLUMNS = 8  # grid columns (shared z) and edit-strip rows (source images)


@dataclass
class Batch:
    images: Tensor  # B x 3 x R x R in [-1, 1]
    attributes: Tensor  # B x A, 0/1


def training_tensors(
    prepared: Path, attributes: Sequence[str], split: str = "train", people: Collection[str] | None = None
) -> tuple[Tensor, Tensor]:
    """The prepared faces of ``split`` as :class:`GanTrainer` takes them: N x R x R x 3 uint8 images and
    N x A float 0/1 attributes (in ``attributes`` order); only the photos of ``people`` when given."""
    faces = PreparedFaces(prepared, attributes=list(attributes), split=split)
    keep = np.ones(len(faces.annotations), bool)
    if people is not None:
        keep = faces.annotations["identity"].astype(str).isin({str(p) for p in people}).to_numpy()
        if not keep.any():
            raise ValueError(f"{prepared}: none of the {len(people)} people to train the GAN on is in this cache")
    values = torch.tensor(faces.annotations[list(attributes)].to_numpy()[keep], dtype=torch.float32)
    for name, share in zip(attributes, values.mean(0).tolist()):
        if share in (0.0, 1.0):  # the GAN cannot learn to draw (or leave out) what it never sees
            log.warning(
                "%s: gan.attributes %s: %s of the %d training faces has it; the GAN cannot learn it",
                prepared,
                name,
                "none" if share == 0.0 else "every one",
                len(values),
            )
    return torch.from_numpy(np.ascontiguousarray(faces.images[keep])), values


class GanTrainer:
    """Owns the networks, optimizers and RNG of one training run; `run()` trains up to `config.steps`."""

    def __init__(
        self,
        config: GanConfig,
        images: Tensor,
        attributes: Tensor,
        out: Path,
        device: torch.device | str = "cpu",
        identity: nn.Module | None = None,
    ) -> None:
        """`images`: N x R x R x 3 uint8 (as in the prepared cache); `attributes`: N x A float 0/1; `identity`:
        the frozen face network (:class:`facegen.gan.loss.FaceNetwork`) of the editor's identity and feature terms
        (``gan.lambda_identity``, ``gan.lambda_feature``)."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"images must be N x R x R x 3 uint8, got {tuple(images.shape)} {images.dtype}")
        if attributes.shape != (len(images), len(config.attributes)):
            raise ValueError(
                f"attributes must be {len(images)} x {len(config.attributes)} "
                f"(gan.attributes), got {tuple(attributes.shape)}"
            )
        self.config, self.out, self.device = config, Path(out), torch.device(device)
        self.images, self.attributes = images, attributes.float()
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        if config.batch_size % self.world_size:
            raise ValueError(f"gan.batch_size {config.batch_size} must be divisible by the {self.world_size} processes")
        cuda = self.device.type == "cuda"
        self.amp = config.amp and cuda
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        resolution, n_attr = images.shape[1], attributes.shape[1]
        if config.lambda_ms > 0 and resolution % config.ms_downsample:
            raise ValueError(f"gan.ms_downsample {config.ms_downsample} must divide the {resolution} px image size")
        torch.manual_seed(config.seed)  # the same initial weights in every process
        self.nets = {
            name: net.to(self.device, memory_format=self.memory_format)
            for name, net in build_networks(config, n_attr, resolution).items()
        }
        self.trained = {name: self._parallel(net) for name, net in self.nets.items() if not name.endswith("_ema")}
        lr = dict.fromkeys(DISCRIMINATORS, config.lr_d)
        self.optimizers = {
            f"opt_{name.lower()}": torch.optim.Adam(net.parameters(), lr=lr.get(name, config.lr_g), betas=config.betas)
            for name, net in self.nets.items()
            if name in self.trained
        }
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        # gan.balance_attributes: positives weigh negatives/positives, so D, G and E learn a rare attribute
        # (Eyeglasses: 7% of CelebA) as much as a common one instead of learning to say "no glasses".
        self.positive_weight = balancing_weight(self.attributes).to(self.device) if config.balance_attributes else None
        if identity is not None:
            identity = identity.to(self.device).eval().requires_grad_(False)
        self.objective = objective(config, self.trained, self.positive_weight, self._autocast, identity)
        # Each process draws its own batches and noise; process 0 draws what a single process would.
        self.data_rng = torch.Generator().manual_seed(config.seed + 1000 * self.rank)
        self.noise_rng = torch.Generator(device=self.device).manual_seed(config.seed + 1 + 1000 * self.rank)
        self.step = 0
        # Fixed inputs for the grids and edit strips: columns share z across attribute settings.
        fixed = torch.Generator().manual_seed(config.seed + 2)
        self.grid_z = torch.randn(GRID_COLUMNS, config.z_dim, generator=fixed)
        self.strip_index = torch.randperm(len(images), generator=fixed)[:GRID_COLUMNS]

    def _parallel(self, net: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return net
        # The cVAE's classifier leaves the discriminator's adversarial head unused.
        return DistributedDataParallel(net, find_unused_parameters=self.config.model == "cvae")

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, enabled=self.amp)

    def sample_batch(self) -> Batch:
        index = torch.randint(len(self.images), (self.config.batch_size // self.world_size,), generator=self.data_rng)
        return Batch(self._to_model(self.images[index]), self.attributes[index].to(self.device))

    def _to_model(self, images: Tensor) -> Tensor:
        """N x R x R x 3 uint8 -> N x 3 x R x R in [-1, 1] on the device, in the networks' memory format."""
        images = images.to(self.device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        return images.contiguous(memory_format=self.memory_format)

    def _update(self, loss: Tensor, *optimizers: str) -> None:
        for name in optimizers:
            self.optimizers[name].zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        for name in optimizers:
            self.scaler.step(self.optimizers[name])

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One discriminator update and one generator (+ editor) update of :attr:`objective`'s losses; returns
        the losses and accuracies."""
        with _flushing_denormals():
            phase = self.objective.discriminator_loss(batch.images, batch.attributes, self.noise_rng)
            self._update(phase.d_loss, *(f"opt_{name.lower()}" for name in self.objective.discriminators))
            g_loss, metrics = self.objective.generator_loss(phase)
            self._update(g_loss, *(f"opt_{name.lower()}" for name in self.objective.trains))
            self.scaler.update()
            # Ramp the decay up (as TensorFlow's ExponentialMovingAverage with num_updates): a fixed 0.999 would
            # keep most of the random initial weights for the first thousands of steps.
            decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
            for name in (n for n in self.nets if n.endswith("_ema")):
                ema_update(self.nets[name], self.nets[name.removesuffix("_ema")], decay)
        self.step += 1
        return metrics

    def run(self) -> None:
        """Train from the current step to `config.steps`, writing grids, metrics and checkpoints (process 0)."""
        c = self.config
        writer = self.rank == 0
        if writer:
            self.out.mkdir(parents=True, exist_ok=True)
        with tqdm(
            total=c.steps, initial=self.step, desc=f"train_gan ({c.model})", unit="step", disable=not writer
        ) as progress:
            while self.step < c.steps:
                losses = self.train_step(self.sample_batch())
                progress.update(1)
                progress.set_postfix({k: f"{v:.3f}" for k, v in losses.items() if k.endswith("loss")})
                if not writer:
                    continue
                if self.step % c.sample_every == 0 or self.step == c.steps:
                    self._log_metrics(losses)
                    self.save_grid(self.out / f"grid_{self.step:06d}.png")
                    self.save_edit_strip(self.out / f"edits_{self.step:06d}.png")
                if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                    self.save_checkpoint()

    def generator(self) -> nn.Module:
        """The EMA generator: ``generator(z, attributes)`` -> images in [-1, 1]."""
        return sampling_networks(self.nets)[0]

    def editor(self) -> nn.Module | None:
        """The EMA editor ``editor(images, target_attributes)``, or None (cgan without ``gan.editor``)."""
        return sampling_networks(self.nets)[1]

    @torch.no_grad()
    def save_grid(self, path: Path) -> None:
        """Rows: no attribute, then each conditioned attribute alone; columns share z (EMA generator)."""
        n_attr = len(self.config.attributes)
        settings = torch.cat([torch.zeros(1, n_attr), torch.eye(n_attr)])
        z = self.grid_z.repeat(len(settings), 1).to(self.device)
        attributes = settings.repeat_interleave(len(self.grid_z), dim=0).to(self.device)
        with _evaluating(self.generator()) as generator, atomic_file(path) as f:
            save_image(generator(z, attributes).float().add(1).div(2), f, nrow=len(self.grid_z), format="png")

    @torch.no_grad()
    def save_edit_strip(self, path: Path) -> None:
        """One row per fixed training image: the source, then the edit with each attribute flipped (EMA editor)."""
        editor = self.editor()
        if editor is None:
            return
        n_attr = len(self.config.attributes)
        source = self.attributes[self.strip_index].to(self.device)  # S x A
        targets = (source[:, None, :] - torch.eye(n_attr, device=self.device)).abs().reshape(-1, n_attr)
        images = self._to_model(self.images[self.strip_index])
        with _evaluating(editor) as editor:
            edits = (
                editor(images.repeat_interleave(n_attr, dim=0), targets)
                .float()
                .reshape(len(images), n_attr, *images.shape[1:])
            )
        rows = torch.cat([images[:, None], edits], dim=1).flatten(0, 1)
        with atomic_file(path) as f:
            save_image(rows.add(1).div(2), f, nrow=n_attr + 1, format="png")

    def _log_metrics(self, losses: dict[str, float]) -> None:
        path = self.out / METRICS
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", *losses])
            if new:
                writer.writeheader()
            writer.writerow({"step": self.step, **{k: round(v, 5) for k, v in losses.items()}})

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "resolution": self.images.shape[1],
            **{name: net.state_dict() for name, net in self.nets.items()},
            **{name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "data_rng": self.data_rng.get_state(),
            "noise_rng": self.noise_rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": self.config.model_dump(mode="json"),
        }

    def save_checkpoint(self) -> Path:
        path = self.out / GAN_CHECKPOINT_NAME
        with atomic_file(path) as f:
            torch.save(self.state_dict(), f)
        return path

    def load_checkpoint(self, path: Path, state: dict | None = None) -> None:
        """Continue from a checkpoint (weights only: nothing arbitrary is unpickled; ``state``: its contents if
        already read). Metrics rows written after it (by a run killed between checkpoints) are dropped, as
        they will be written again."""
        state = read_checkpoint(path) if state is None else state
        saved = state["config"]
        for key in ("model", "attributes", "editor"):
            if saved.get(key) != self.config.model_dump(mode="json")[key]:
                raise ValueError(
                    f"{path} was trained with {key} {saved.get(key)}, "
                    f"not gan.{key} {self.config.model_dump(mode='json')[key]}"
                )
        for name, module in self.nets.items():
            load_weights(module, state.get(name), path, name)
        for name, module in self.optimizers.items():
            module.load_state_dict(state[name])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.step = state["step"]
        if self.world_size == 1:
            self.data_rng.set_state(state["data_rng"])
            self.noise_rng.set_state(state["noise_rng"])
            torch.set_rng_state(state["torch_rng"])
        else:  # the checkpoint holds process 0's streams: every process starts fresh ones of its own instead
            self.data_rng.manual_seed(self.config.seed + 1000 * self.rank + 7 * self.step)
            self.noise_rng.manual_seed(self.config.seed + 1 + 1000 * self.rank + 7 * self.step)
        self._truncate_metrics()
        log.info("resumed from %s at step %d", path, self.step)

    def _truncate_metrics(self) -> None:
        path = self.out / METRICS
        if self.rank != 0 or not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and int(rows[-1]["step"]) > self.step:
            with atomic_file(path, "w") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(r for r in rows if int(r["step"]) <= self.step)


@contextlib.contextmanager
def _flushing_denormals() -> Iterator[None]:
    """Subnormal floats flushed to zero for the block, then IEEE handling again (PyTorch's default; it has no
    getter). Adam's tiny second moments and the small GAN weights make subnormals, which x86 CPUs handle ~100x
    slower: flushing made a demo step ~1.5x faster (docs/BENCHMARKS.md). Scoped to the training step, so code
    that runs later in the same process (the judge's training, say) computes as it would in a fresh one."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@contextlib.contextmanager
def _evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode for the block (no batch-norm or spectral-norm state changes), then as it was."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes.items():
            m.train(training)


# Settings that may change between a checkpoint and the run that continues it (a longer run, other outputs).
RESUMABLE_CHANGES = frozenset({"steps", "sample_every", "checkpoint_every", "out", "profile", "start_from"})


@dataclass
class TrainReport:
    model: str
    steps: int  # the step the run ended at
    resumed_from: int  # the step it started at (0: a fresh run)
    seconds: float
    steps_per_second: float
    images_per_second: float
    final: dict[str, float]  # the last step's losses and accuracies


def train_gan(
    config: GanConfig,
    prepared: Path,
    device: torch.device | str = "cpu",
    people: Collection[str] | None = None,
    identity: nn.Module | None = None,
) -> TrainReport:
    """Train on the `train` split of a prepared cache (or on every photo of ``people``; ``identity``: the frozen
    network of the editor's identity and feature terms), continuing ``config.out/checkpoint.pt`` when it was made
    with the same settings (other than run length and output cadence); otherwise its outputs are replaced, and the
    run starts from ``gan.start_from``'s checkpoint when named (from scratch when not). One run at a time writes
    ``config.out`` (process 0 holds its lock), which must overlap neither ``prepared`` nor ``gan.start_from``."""
    check_separate(config.out, [prepared, config.start_from], "gan.out")
    check_replaceable(config.out, LAYOUT)  # a fresh start deletes the checkpoint, log and grids found there
    writer = not dist.is_initialized() or dist.get_rank() == 0
    with output_lock(config.out) if writer else contextlib.nullcontext():
        return _train(config, prepared, device, people, identity)


def _holds_a_training_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a checkpoint.pt that GanTrainer wrote (its entries no other tool's have)."""
    path = folder / GAN_CHECKPOINT_NAME
    if path.is_symlink() or not path.is_file():
        return False
    try:
        state = read_checkpoint(path)
    except (CheckpointError, OSError):
        return False
    ours = {"scaler", "data_rng", "noise_rng", "torch_rng"} <= set(state)
    return ours and isinstance(state["config"], dict) and "model" in state["config"]


def _train(
    config: GanConfig,
    prepared: Path,
    device: torch.device | str,
    people: Collection[str] | None,
    identity: nn.Module | None,
) -> TrainReport:
    split = "train" if people is None else "all"
    tensors = training_tensors(prepared, config.attributes, split, people)
    trainer = GanTrainer(config, *tensors, config.out, device, identity)
    if trainer.rank == 0:
        remove_leftovers(config.out)  # half-written checkpoints or grids of a killed run
        Path(config.out).mkdir(parents=True, exist_ok=True)
        LAYOUT.stamp(config.out)  # the folder is facegen's GAN training folder from its first file on
    checkpoint = Path(config.out) / GAN_CHECKPOINT_NAME
    state = read_checkpoint(checkpoint) if checkpoint.is_file() else None
    if state is not None and resumable(state["config"], config):
        trainer.load_checkpoint(checkpoint, state)
    else:
        origin = None if config.start_from is None else Path(config.start_from) / GAN_CHECKPOINT_NAME
        origin_state = None if origin is None else started_from(origin, config)  # checked before anything goes
        if trainer.rank == 0 and Path(config.out).is_dir():
            log.info("%s: settings changed, training from %s", checkpoint, origin or "scratch")
            for old in [
                checkpoint,
                Path(config.out) / METRICS,
                *Path(config.out).glob("grid_*.png"),
                *Path(config.out).glob("edits_*.png"),
            ]:
                old.unlink(missing_ok=True)
        if origin is not None:
            if trainer.rank == 0 and (origin.parent / METRICS).is_file():  # one log from step 1
                with atomic_file(Path(config.out) / METRICS, "w") as f:
                    f.write((origin.parent / METRICS).read_text())
            trainer.load_checkpoint(origin, origin_state)
    start, started = trainer.step, time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - started
    final = {}
    if (Path(config.out) / METRICS).is_file():
        with open(Path(config.out) / METRICS, newline="") as f:
            final = {k: float(v) for k, v in list(csv.DictReader(f))[-1].items() if k != "step"}
    rate = (trainer.step - start) / seconds if seconds > 0 else 0.0
    return TrainReport(
        config.model, trainer.step, start, round(seconds, 1), round(rate, 3), round(rate * config.batch_size, 1), final
    )


def started_from(path: Path, config: GanConfig) -> dict:
    """The checkpoint ``gan.start_from`` names, read and checked: made with ``config``'s settings (apart from run
    length, cadence and folder) and not past ``config.steps``."""
    if not path.is_file():
        raise FileNotFoundError(f"gan.start_from: {path} does not exist; train that run first")
    state = read_checkpoint(path)
    changed = changed_settings(state["config"], config)
    if changed:
        raise ValueError(f"gan.start_from: {path} was trained with other settings ({', '.join(changed)})")
    if state["step"] > config.steps:
        raise ValueError(f"gan.start_from: {path} is at step {state['step']}, past gan.steps {config.steps}")
    return state


def resumable(saved: dict, config: GanConfig) -> bool:
    """Whether a checkpoint made with settings ``saved`` may be continued under ``config``."""
    return not changed_settings(saved, config)


def changed_settings(saved: dict, config: GanConfig) -> list[str]:
    """The settings in which ``config`` differs from a checkpoint's ``saved`` ones, other than those a resumed run
    may change. A setting newer than the checkpoint counts as at its default there (the run it continues behaved
    so)."""
    current, defaults = config.model_dump(mode="json"), GanConfig().model_dump(mode="json")
    return sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k, defaults[k]) != current[k])
