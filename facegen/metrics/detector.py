"""Can a machine tell? A small CNN trained to tell real faces from generated ones, scored on held-out images.

Held-out accuracy 0.5 means indistinguishable; the binomial test's p-value says how surprising the
observed accuracy would be if the detector were guessing (one-sided: better than chance).

Real photos reach the cache decoded from JPEG and resized; generator output is raw pixels. A detector can learn
that difference instead of the faces: :func:`encoded` passes both sets through the same encoding first.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image
from scipy.stats import binomtest

from facegen.config import EvaluateConfig, NetTraining
from facegen.gan.regions import FACE_REGIONS, region_bounds
from facegen.metrics.convnet import ConvNet, fit, holdout_split, predict_logits


def real_vs_synthetic(real: np.ndarray, fake: np.ndarray, config: NetTraining) -> dict[str, float]:
    """Train on part of ``real`` + ``fake`` (N x R x R x 3 uint8, equal counts used), test on the rest."""
    n = min(len(real), len(fake))
    if real.shape[1:] != fake.shape[1:] or n < 4:
        raise ValueError(
            f"the detector needs at least 4 real and 4 generated images of one size, got {real.shape} and {fake.shape}"
        )
    images = np.concatenate([real[:n], fake[:n]])
    labels = np.concatenate([np.zeros(n), np.ones(n)]).astype(np.float32)[:, None]
    train, held_out = holdout_split(len(images), config.holdout_fraction, config.seed)
    net = ConvNet(images.shape[1], 1, config.width)
    history = fit(net, images, labels, train, held_out, config, desc="real-vs-synthetic detector")
    correct = int(((predict_logits(net, images[held_out])[:, 0] > 0) == (labels[held_out, 0] > 0.5)).sum())
    return {
        "accuracy": round(correct / len(held_out), 5),
        "heldout_images": int(len(held_out)),
        "p_value": float(binomtest(correct, len(held_out), 0.5, alternative="greater").pvalue),
        "train_loss": history[-1]["train_loss"],
    }


REGIONS = tuple(FACE_REGIONS)  # the eye and mouth bands (facegen/gan/regions.py), as the region discriminator's


def region_crops(images: np.ndarray, region: str, size: int = 32) -> np.ndarray:
    """The ``region`` band of each face (N x R x R x 3 uint8), resized to ``size`` x ``size`` (the detector wants
    squares; the band's aspect is not kept)."""
    top, bottom, left, right = region_bounds(region, images.shape[1])
    band = images[:, top:bottom, left:right]
    return np.stack([np.asarray(Image.fromarray(b).resize((size, size), Image.BILINEAR)) for b in band])


def encoded(images: np.ndarray, encoding: Literal["png", "jpeg"], quality: int = 90) -> np.ndarray:
    """``images`` (N x R x R x 3 uint8) encoded as PNG (lossless: unchanged) or JPEG at ``quality`` and decoded."""
    if encoding == "png":
        return np.asarray(images)
    if encoding != "jpeg":
        raise ValueError(f"unknown encoding {encoding!r}; valid: png, jpeg")
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def detect_edits(
    real: np.ndarray, edits: np.ndarray, config: EvaluateConfig, regions: tuple[str, ...] = REGIONS
) -> dict[str, dict[str, float]]:
    """The detector on edits alone against real unseen faces, both through the same encoding first
    (``config.detector_encoding``): on whole faces (``face``) and on each band in ``regions``."""
    real, edits = (encoded(x, config.detector_encoding, config.jpeg_quality) for x in (real, edits))
    return {"face": real_vs_synthetic(real, edits, config.detector)} | {
        region: real_vs_synthetic(region_crops(real, region), region_crops(edits, region), config.detector)
        for region in regions
    }
