"""The face-embedding backbone: facenet-pytorch's InceptionResnetV1, pretrained elsewhere or in this project.

``load_backbone("vggface2" | "casia-webface")`` uses facenet-pytorch's own checkpoints (downloaded once into
the torch cache); ``load_backbone("none")`` is an untrained network (the start of ``pretrain_backbone``);
a path loads a project checkpoint such as ``models/backbone.pt`` (``save_backbone``), never unpickling code:
a plain InceptionResnetV1, or a ``DistilledFacenet`` (InceptionResnetV1 with a head into a teacher's space,
recognition/models/distill.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1
from facenet_pytorch.models.inception_resnet_v1 import get_torch_home
from torch import nn
from torch.nn import functional as F

from facegen.weights import CheckpointError, load_checkpoint
from facegen.metrics.identity import IdentityNetwork

log = logging.getLogger(__name__)

FACENET_WEIGHTS = {"vggface2": "20180402-114759-vggface2.pt", "casia-webface": "20180408-102900-casia-webface.pt"}
TEACHER = "dlib"  # recognition.pretrained: dlib's pretrained recognizer (recognition/models/teacher.py), not a facenet
MIN_INPUT_SIZE = 80  # InceptionResnetV1's last reduction block needs at least 80 x 80 inputs


class BackboneUnavailable(RuntimeError):
    """Pretrained weights cannot be loaded; the message says how to get them or what to use instead."""


class DistilledFacenet(nn.Module):
    """InceptionResnetV1 -> linear head into the teacher's space -> minus the training centre -> L2-normalised."""

    def __init__(self, head_size: int = 128) -> None:
        super().__init__()
        self.backbone = InceptionResnetV1(classify=False)
        self.head = nn.Linear(512, head_size)
        self.register_buffer("centre", torch.zeros(head_size))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Uncentred head outputs (what the losses see)."""
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.features(x) - self.centre, dim=1)


def load_backbone(pretrained: str) -> nn.Module:
    """An InceptionResnetV1 embedding network in eval mode (512-d, L2-normalised output)."""
    if pretrained in FACENET_WEIGHTS:
        return _facenet_pretrained(pretrained)
    if pretrained == "none":
        return InceptionResnetV1(classify=False).eval()
    path = Path(pretrained)
    if not path.is_file():
        raise BackboneUnavailable(
            f"recognition.pretrained={pretrained!r}: not vggface2, casia-webface or none, and no such backbone file "
            "(the distilled facenet: `cd studies/faces64 && dvc repro distill_backbone`; "
            "models/backbone.pt: `dvc repro pretrain_backbone`; or recognition.pretrained=dlib, the teacher)"
        )
    try:
        state = load_checkpoint(path, "facegen backbone checkpoint", ("backbone",))
    except CheckpointError as err:
        raise BackboneUnavailable(str(err)) from None
    if state.get("meta", {}).get("pretrained") == TEACHER:
        raise BackboneUnavailable(
            f"{path}: holds no network but names the dlib teacher (recognition.pretrained: dlib); "
            "read it with recognition.models.embeddings.load_embedder"
        )
    weights = state["backbone"]
    model = DistilledFacenet(weights["head.weight"].shape[0]) if "head.weight" in weights else InceptionResnetV1()
    model.load_state_dict(weights)
    return model.eval()


def trained_input_size(path: Path | str, meta: Mapping[str, object], asked: int) -> int:
    """The input size a backbone file was trained at (its ``meta["input_size"]``), else ``asked``. A network
    run at another size than it learnt sees every face at another scale (studies/ownphotos once read a 112 px
    student at 80 px and lost a third of its top-1), so the file wins, and a different ``asked`` is logged."""
    trained = meta.get("input_size")
    if trained is None:
        return asked
    if int(trained) != asked:
        log.info("%s was trained at %s px: embedding at %s px, not the %s px asked", path, trained, trained, asked)
    return int(trained)


def save_backbone(model: nn.Module | None, path: Path, meta: Mapping[str, object]) -> None:
    """Write the embedding weights (no classifier head) and plain metadata, atomically; no model: a file that
    only names its recognizer (the dlib teacher, ``meta["pretrained"] == "dlib"``)."""
    from facegen.io import atomic_file, check_file_output
    from facegen.weights import is_checkpoint

    check_file_output(path, lambda p: is_checkpoint(p, ("backbone", "meta")), "a backbone checkpoint")
    state = model.state_dict() if model is not None else {}
    weights = {k: v.detach().cpu() for k, v in state.items() if not k.startswith("logits.")}
    with atomic_file(path) as f:
        torch.save({"backbone": weights, "meta": dict(meta)}, f)


def _facenet_pretrained(name: str) -> nn.Module:
    cached = Path(get_torch_home()) / "checkpoints" / FACENET_WEIGHTS[name]  # where facenet-pytorch looks
    try:
        return InceptionResnetV1(pretrained=name).eval()
    except Exception as err:  # urllib/ssl/socket/HTTP errors all mean: the download did not happen
        if cached.exists() and cached.stat().st_size < 1_000_000:
            cached.unlink()  # a failed download can leave a stub that would be taken for the weights next time
        raise BackboneUnavailable(
            f"recognition.pretrained={name}: facenet-pytorch could not download its {name} weights "
            f"({type(err).__name__}: {err}). Either put {FACENET_WEIGHTS[name]} (from "
            f"https://github.com/timesler/facenet-pytorch/releases/tag/v2.2.9) into {cached.parent} "
            f"(it follows $TORCH_HOME), or set recognition.pretrained: none "
            f"to pretrain the backbone in this project (stage pretrain_backbone)"
        ) from None


def standardize(images: np.ndarray | torch.Tensor, input_size: int) -> torch.Tensor:
    """N x R x R x 3 uint8 -> N x 3 x S x S float, resized (antialiased bilinear) and standardised as
    facenet-pytorch's ``fixed_image_standardization`` does: (x - 127.5) / 128."""
    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.ascontiguousarray(images))
    x = x.permute(0, 3, 1, 2).float()
    if x.shape[-1] != input_size or x.shape[-2] != input_size:
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    return (x - 127.5) / 128.0


@torch.no_grad()
def embed_images(
    model: nn.Module, images: np.ndarray, input_size: int, batch_size: int = 64, progress: bool = False
) -> np.ndarray:
    """N x D float32 L2-normalised embeddings of N x R x R x 3 uint8 images (model in eval mode)."""
    if input_size < MIN_INPUT_SIZE:
        raise ValueError(f"recognition.input_size={input_size}: InceptionResnetV1 needs at least {MIN_INPUT_SIZE}")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be N x R x R x 3 uint8, got {images.shape} {images.dtype}")
    was_training, classify = model.training, getattr(model, "classify", False)
    model.eval()
    if classify:
        model.classify = False
    out = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=f"embed {len(images)} images", unit="batch")
    device = next(model.parameters()).device  # the batches go where the model is (a GPU after training there)
    try:
        for start in starts:
            batch = standardize(images[start : start + batch_size], input_size).to(device)
            out.append(F.normalize(model(batch), dim=1).float().cpu())
    finally:
        model.train(was_training)
        if classify:
            model.classify = True
    return torch.cat(out).numpy() if out else np.zeros((0, 512), np.float32)


FEATURE_BLOCKS = ("repeat_1", "repeat_2")  # InceptionResnetV1's maps a feature discriminator reads (256, 896 ch)


class GeneratorSpaceEmbedding(nn.Module):
    """A frozen embedding network on a generator's images (B x 3 x R x R in [-1, 1]): resized to ``input_size``
    and standardised as :func:`standardize` does, differentiably (the editor's identity term, gan.lambda_identity).
    :meth:`features` also returns its InceptionResnetV1's maps after :data:`FEATURE_BLOCKS` (gan.lambda_feature)."""

    def __init__(self, model: nn.Module, input_size: int) -> None:
        super().__init__()
        if input_size < MIN_INPUT_SIZE:
            raise ValueError(f"input_size={input_size}: InceptionResnetV1 needs at least {MIN_INPUT_SIZE}")
        self.model, self.input_size = model.eval().requires_grad_(False), input_size
        if getattr(model, "classify", False):
            model.classify = False

    def train(self, mode: bool = True) -> GeneratorSpaceEmbedding:
        """Always in eval mode: its batch norms keep their statistics."""
        return super().train(False)

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding (B x D, L2-normalised) and the maps after :data:`FEATURE_BLOCKS` of ``images``."""
        x = images.float() * (127.5 / 128.0)  # (pixels - 127.5) / 128 for pixels = (images + 1) * 127.5
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        trunk = self.model.backbone if isinstance(self.model, DistilledFacenet) else self.model
        maps: list[torch.Tensor] = []
        hooks = [  # one forward pass gives the embedding and the maps
            getattr(trunk, name).register_forward_hook(lambda _module, _input, output: maps.append(output))
            for name in FEATURE_BLOCKS
        ]
        try:
            embedding = F.normalize(self.model(x), dim=1)
        finally:
            for hook in hooks:
                hook.remove()
        return embedding, maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)[0]


def generator_space_embedding(path: Path, input_size: int) -> GeneratorSpaceEmbedding:
    """The backbone file at ``path`` (e.g. studies/faces64's distilled facenet) as the editor's identity network,
    at the input size the file was trained at (``input_size`` for a file that records none)."""
    meta = load_checkpoint(path, "facegen backbone checkpoint", ("backbone",)).get("meta", {})
    return GeneratorSpaceEmbedding(load_backbone(str(path)), trained_input_size(path, meta, input_size))


def identity_network(path: Path, input_size: int) -> IdentityNetwork | None:
    """The backbone file at ``path`` as the identity judge of `evaluate_gan` (embeddings at ``input_size`` px;
    a file recording ``recognition.pretrained: dlib`` makes the dlib teacher the judge), or None when no backbone
    has been trained there."""
    if not path.is_file():
        return None

    def load() -> Callable[[np.ndarray], np.ndarray]:
        from recognition.models.embeddings import load_embedder  # (it builds on this module)

        return load_embedder(path, input_size).embed  # a facenet, or the dlib teacher (`pretrained: dlib`)

    return IdentityNetwork(f"backbone {path}", load)
