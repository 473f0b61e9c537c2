"""Use a trained generator: sample brand-new faces with chosen attributes, or edit real faces.

Every later stage (evaluation, synthetic datasets, recognition) goes through :class:`FaceModel`; images in
and out are ``N x R x R x 3`` uint8 arrays, the layout of the prepared cache. Loading never unpickles
arbitrary objects (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.utils import save_image

from facegen.config import GanConfig, SamplingConfig
from facegen.gan.checkpoint import build_networks, read_checkpoint, sampling_networks
from facegen.gan.regions import edit_masks
from facegen.io import PNG_SOFTWARE, atomic_file, check_file_output, is_facegen_png, sha256sum
from facegen.weights import load_weights


def to_uint8(images: Tensor) -> np.ndarray:
    """B x 3 x R x R in [-1, 1] -> B x R x R x 3 uint8 (rounded, as torchvision's save_image does)."""
    return images.add(1).mul(127.5).add(0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> Tensor:
    """B x R x R x 3 uint8 -> B x 3 x R x R float in [-1, 1]."""
    return torch.as_tensor(np.asarray(images)).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def resolve_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; anything else as torch names it (cpu, cuda, cuda:1)."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


def load_photos(paths: Sequence[Path], resolution: int) -> np.ndarray:
    """Photos centre-cropped to a square and resized to ``resolution``: N x R x R x 3 uint8."""
    from facegen.data.images import load_photo

    return np.stack(
        [np.asarray(ImageOps.fit(load_photo(p), (resolution, resolution), Image.Resampling.LANCZOS)) for p in paths]
    )


def save_grid(images: np.ndarray, path: Path, nrow: int = 8) -> None:
    """N x R x R x 3 uint8 images as one PNG grid (a single image: just that image), written atomically and
    marked as facegen's (``Software``); an existing file is replaced only if it is such a grid (never the photo
    being edited, say)."""
    check_file_output(Path(path), is_facegen_png, "a facegen PNG")
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    encoded = io.BytesIO()
    save_image(tensor, encoded, nrow=nrow, padding=0 if len(images) == 1 else 2, format="png")
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", PNG_SOFTWARE)
    with Image.open(encoded) as grid, atomic_file(Path(path)) as f:
        grid.save(f, format="png", pnginfo=info)


class FaceModel:
    """A trained generator (its EMA weights) and, when trained, the attribute editor, used as ``sampling``
    says (candidates per sampled face, edit strength; params group `sampling`).

    For a cVAE checkpoint (``gan.model: cvae``) the generator is the decoder, and an edit encodes the image
    under the attributes its classifier sees and decodes it under the targets.
    """

    def __init__(
        self,
        config: GanConfig,
        resolution: int,
        generator: nn.Module,
        editor: nn.Module | None,
        checkpoint_sha256: str = "",
        device: torch.device | str = "cpu",
        classifier: nn.Module | None = None,
        sampling: SamplingConfig = SamplingConfig(),
    ) -> None:
        self.config, self.resolution, self.checkpoint_sha256 = config, resolution, checkpoint_sha256
        self.sampling = sampling
        if sampling.candidates > 1 and classifier is None:
            raise ValueError("sampling.candidates > 1 needs the discriminator's attribute classifier; use 1")
        if sampling.refine and editor is None:
            raise ValueError("sampling.refine needs the attribute editor, and this checkpoint has none; set it false")
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.editor = editor.to(self.device).eval() if editor is not None else None
        self.classifier = classifier.to(self.device).eval() if classifier is not None else None

    @property
    def attributes(self) -> tuple[str, ...]:
        return self.config.attributes

    @classmethod
    def load(
        cls, path: Path | str, device: torch.device | str = "cpu", sampling: SamplingConfig = SamplingConfig()
    ) -> FaceModel:
        """Load the EMA generator (and editor, if any) of a `train_gan` checkpoint, used as ``sampling`` says."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no generator checkpoint; run `dvc repro train_gan` first")
        state = read_checkpoint(path)
        config, resolution = GanConfig.model_validate(state["config"]), int(state["resolution"])
        with torch.random.fork_rng():  # building initialises weights: leave the caller's RNG alone
            nets = build_networks(config, len(config.attributes), resolution)
        for name in ("G_ema", "D", "E_ema"):
            if name in nets:
                load_weights(nets[name], state.get(name), path, name)
        generator, editor = sampling_networks(nets)
        return cls(config, resolution, generator, editor, sha256sum(path), device, nets["D"], sampling)

    def with_sampling(self, sampling: SamplingConfig) -> FaceModel:
        """The same networks (shared, not read again) used as ``sampling`` says."""
        return FaceModel(
            self.config,
            self.resolution,
            self.generator,
            self.editor,
            self.checkpoint_sha256,
            self.device,
            self.classifier,
            sampling,
        )

    def confined(self) -> FaceModel:
        """The same networks and sampling, with each edit kept inside the changed attribute's band
        (``sampling.confine_edits``)."""
        return self.with_sampling(self.sampling.model_copy(update={"confine_edits": True}))

    def attribute_matrix(self, values: Mapping[str, float], n: int) -> Tensor:
        """An n x A 0/1 matrix: the named attributes set as given, the others 0."""
        unknown = set(values) - set(self.attributes)
        if unknown:
            raise ValueError(f"unknown attribute(s) {sorted(unknown)}; this generator knows {list(self.attributes)}")
        row = torch.tensor([float(values.get(name, 0)) for name in self.attributes])
        return row.repeat(n, 1)

    @torch.no_grad()
    def sample(self, attributes: Tensor, seed: int, batch_size: int = 256) -> np.ndarray:
        """One new face per row of ``attributes`` (N x A, 0/1): N x R x R x 3 uint8, the same for the same seed.

        With ``sampling.refine`` each drawn face is then edited towards the request, its source being the
        discriminator's probabilities (:meth:`attribute_probabilities`): at ``sampling.refine_strength`` s an
        attribute D sees with probability p is asked for p + s x (request - p), so the ones D is unsure of are
        pushed too (at 1, just the request). With ``sampling.candidates`` k > 1, each row gets k such faces
        (latents k x N from the seed) and keeps the one in which the discriminator's attribute head finds the
        request most surely (see :meth:`agreement`).
        """
        attributes = self._check(attributes)
        noise = torch.Generator().manual_seed(seed)
        z = torch.randn(self.sampling.candidates, len(attributes), self.config.z_dim, generator=noise)
        out = [
            self._best_candidate(z[:, i : i + batch_size], attributes[i : i + batch_size], batch_size)
            for i in range(0, len(attributes), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.resolution, self.resolution, 3), np.uint8)

    def _best_candidate(self, z: Tensor, attributes: Tensor, batch_size: int) -> np.ndarray:
        """``z``: k x B x z_dim latents; each row's face (refined if asked) with the highest agreement."""
        best, best_score = None, None
        for candidate_z in z:
            faces = to_uint8(self.generator(candidate_z.to(self.device), attributes.to(self.device)))
            if self.sampling.refine:  # the source: how surely D sees each attribute, so unsure ones are pushed too
                strength = self.sampling.refine_strength
                source = self.attribute_probabilities(faces, batch_size) if strength != 1 else None
                faces = self._edit(faces, attributes, batch_size, source, strength)
            if len(z) == 1:
                return faces
            score = self.agreement(to_tensor(faces, self.device), attributes.to(self.device)).cpu()
            if best is None:
                best, best_score = faces, score
            else:
                better = (score > best_score).numpy()
                best[better], best_score = faces[better], torch.maximum(best_score, score)
        return best

    @torch.no_grad()
    def agreement(self, images: Tensor, attributes: Tensor) -> Tensor:
        """Per image (B x 3 x R x R in [-1, 1]): the log-likelihood the discriminator's attribute head gives
        the requested 0/1 ``attributes``, summed over attributes (0 is certain agreement)."""
        logits = self.classifier(images)[1].float()
        return -F.binary_cross_entropy_with_logits(logits, attributes.float(), reduction="none").sum(1)

    @torch.no_grad()
    def edit(
        self,
        images: np.ndarray,
        targets: Tensor,
        batch_size: int = 256,
        *,
        source_attributes: Tensor | None = None,
        strength: float | None = None,
    ) -> np.ndarray:
        """Each image (N x R x R x 3 uint8) re-rendered with its row of ``targets`` (N x A, 0/1).

        ``source_attributes`` are the images' own (N x A, 0/1 or probabilities; default: what the discriminator
        sees in them, 0/1). The editor is asked for ``source + strength * (targets - source)`` (``strength``
        defaults to ``sampling.edit_strength``): at strength 1 just the targets; above 1 the changed attributes
        are pushed further and the unchanged ones stay. With ``sampling.confine_edits`` each photo changes only
        inside the bands of the attributes its edit changes (:func:`~facegen.gan.regions.edit_masks`).
        """
        strength = self.sampling.edit_strength if strength is None else strength
        if not self.sampling.confine_edits:
            return self._edit(images, targets, batch_size, source_attributes, strength)
        source = self._source_rows(images, source_attributes, len(targets), batch_size)
        edited = self._edit(images, targets, batch_size, source, strength)
        return self._confine(images, edited, self._check(targets), source)

    def _confine(self, images: np.ndarray, edited: np.ndarray, targets: Tensor, source: Tensor) -> np.ndarray:
        """``edited`` kept only inside the bands of the attributes each edit changes (``sampling.confine_edits``):
        the source photo elsewhere, blended across the bands' feathered edges."""
        masks = edit_masks((targets.cpu() > 0.5) != (source.cpu() > 0.5), self.attributes, self.resolution)
        masks = masks.permute(0, 2, 3, 1).numpy()  # B x R x R x 1
        out = images.astype(np.float32) + masks * (edited.astype(np.float32) - images.astype(np.float32))
        return np.rint(out).clip(0, 255).astype(np.uint8)

    def _edit(
        self, images: np.ndarray, targets: Tensor, batch_size: int, source_attributes: Tensor | None, strength: float
    ) -> np.ndarray:
        """:meth:`edit` at the given strength (refining uses ``sampling.refine_strength``)."""
        if self.editor is None:
            raise ValueError("this checkpoint has no attribute editor; train one with gan.editor: true")
        targets = self._check(targets)
        self._check_images(images, len(targets))
        if strength != 1:
            source = self._source_rows(images, source_attributes, len(targets), batch_size)
            targets = source + strength * (targets - source)
        out = [
            to_uint8(
                self.editor(
                    to_tensor(images[i : i + batch_size], self.device), targets[i : i + batch_size].to(self.device)
                )
            )
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else images[:0].copy()

    def _source_rows(self, images: np.ndarray, given: Tensor | None, n: int, batch_size: int) -> Tensor:
        """The edited images' own attributes: ``given`` (checked), else what the discriminator sees in them."""
        source = self.predict_attributes(images, batch_size) if given is None else self._check(given)
        if len(source) != n:
            raise ValueError(f"{len(source)} source attribute rows for {n} targets")
        return source

    def predict_attributes(self, images: np.ndarray, batch_size: int = 256) -> Tensor:
        """The attributes the checkpoint's discriminator sees in ``images`` (N x R x R x 3 uint8): N x A 0/1.

        An edit keeps the attributes it is not asked to change: start its targets from these."""
        return (self.attribute_probabilities(images, batch_size) > 0.5).float()

    @torch.no_grad()
    def attribute_probabilities(self, images: np.ndarray, batch_size: int = 256) -> Tensor:
        """How surely the checkpoint's discriminator sees each attribute in ``images``: N x A in [0, 1]."""
        if self.classifier is None:
            raise ValueError("this model has no attribute classifier (load it from a train_gan checkpoint)")
        self._check_images(images)
        out = [
            torch.sigmoid(self.classifier(to_tensor(images[i : i + batch_size], self.device))[1].float()).cpu()
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, len(self.attributes))

    def _check_images(self, images: np.ndarray, n: int | None = None) -> None:
        if images.shape[1:] != (self.resolution, self.resolution, 3) or (n is not None and len(images) != n):
            raise ValueError(
                f"expected {len(images) if n is None else n} x {self.resolution} x "
                f"{self.resolution} x 3 uint8 images, got {images.shape}"
            )

    def _check(self, attributes: Tensor) -> Tensor:
        attributes = torch.as_tensor(attributes, dtype=torch.float32)
        if attributes.ndim != 2 or attributes.shape[1] != len(self.attributes):
            raise ValueError(
                f"attributes must be N x {len(self.attributes)} ({', '.join(self.attributes)}), "
                f"got {tuple(attributes.shape)}"
            )
        return attributes
