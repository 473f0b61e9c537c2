"""Use a trained generator: sample brand-new faces with chosen attributes, or edit real faces.

Every later stage (evaluation, synthetic datasets, recognition) goes through :class:`FaceModel`; images in
and out are ``N x R x R x 3`` uint8 arrays, the layout of the prepared cache. Loading never unpickles
arbitrary objects (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from facegen.config import GanConfig
from facegen.gan.networks import ConditionalVAE, VaeEditor
from facegen.gan.training_loop import build_networks


def to_uint8(images: Tensor) -> np.ndarray:
    """B x 3 x R x R in [-1, 1] -> B x R x R x 3 uint8 (rounded, as torchvision's save_image does)."""
    return images.add(1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """B x R x R x 3 uint8 -> B x 3 x R x R float in [-1, 1]."""
    return torch.as_tensor(np.asarray(images)).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class FaceModel:
    """A trained generator (its EMA weights) and, when trained, the attribute editor.

    For a cVAE checkpoint (``gan.model: cvae``) the generator is the decoder, and an edit encodes the image
    under the attributes its classifier sees and decodes it under the targets.
    """

    def __init__(self, config: GanConfig, resolution: int, generator: nn.Module, editor: nn.Module | None,
                 checkpoint_sha256: str = "", device: torch.device | str = "cpu") -> None:
        self.config, self.resolution, self.checkpoint_sha256 = config, resolution, checkpoint_sha256
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.editor = editor.to(self.device).eval() if editor is not None else None

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.config.attributes

    @classmethod
    def load(cls, path: Path | str, device: torch.device | str = "cpu") -> FaceModel:
        """Load the EMA generator (and editor, if any) of a `train_gan` checkpoint."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no generator checkpoint; run `dvc repro train_gan` first")
        state = torch.load(path, map_location="cpu", weights_only=True)
        config, resolution = GanConfig.model_validate(state["config"]), int(state["resolution"])
        with torch.random.fork_rng():  # building initialises weights: leave the caller's RNG alone
            nets = build_networks(config, len(config.attributes), resolution)
        for name in ("G_ema", "D", "E_ema"):
            if name in nets:
                nets[name].load_state_dict(state[name])
        if isinstance(nets["G_ema"], ConditionalVAE):  # sample: decoder(z, attributes); edit: encode, decode
            generator, editor = nets["G_ema"].decoder, VaeEditor(nets["G_ema"], nets["D"])
        else:
            generator, editor = nets["G_ema"], nets.get("E_ema")
        return cls(config, resolution, generator, editor, file_sha256(path), device)

    def attribute_matrix(self, values: Mapping[str, float], n: int) -> Tensor:
        """An n x A 0/1 matrix: the named attributes set as given, the others 0."""
        unknown = set(values) - set(self.attributes)
        if unknown:
            raise ValueError(f"unknown attribute(s) {sorted(unknown)}; this generator knows {list(self.attributes)}")
        row = torch.tensor([float(values.get(name, 0)) for name in self.attributes])
        return row.repeat(n, 1)

    @torch.no_grad()
    def sample(self, attributes: Tensor, seed: int, batch_size: int = 256) -> np.ndarray:
        """One new face per row of ``attributes`` (N x A, 0/1): N x R x R x 3 uint8, the same for the same seed."""
        attributes = self._check(attributes)
        noise = torch.Generator().manual_seed(seed)
        z = torch.randn(len(attributes), self.config.z_dim, generator=noise)
        out = [to_uint8(self.generator(z[i:i + batch_size].to(self.device), attributes[i:i + batch_size].to(self.device)))
               for i in range(0, len(attributes), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 3), np.uint8)

    @torch.no_grad()
    def edit(self, images: np.ndarray, targets: Tensor, batch_size: int = 256) -> np.ndarray:
        """Each image (N x R x R x 3 uint8) re-rendered with its row of ``targets`` (N x A, 0/1)."""
        if self.editor is None:
            raise ValueError("this checkpoint has no attribute editor; train one with gan.editor: true")
        targets = self._check(targets)
        if images.shape[1:] != (self.resolution, self.resolution, 3) or len(images) != len(targets):
            raise ValueError(f"edit needs {len(targets)} x {self.resolution} x {self.resolution} x 3 images, "
                             f"got {images.shape}")
        out = [to_uint8(self.editor(to_tensor(images[i:i + batch_size], self.device), targets[i:i + batch_size].to(self.device)))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else images[:0].copy()

    def _check(self, attributes: Tensor) -> Tensor:
        attributes = torch.as_tensor(attributes, dtype=torch.float32)
        if attributes.ndim != 2 or attributes.shape[1] != len(self.attributes):
            raise ValueError(f"attributes must be N x {len(self.attributes)} ({', '.join(self.attributes)}), "
                             f"got {tuple(attributes.shape)}")
        return attributes
