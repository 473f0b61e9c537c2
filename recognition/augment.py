"""Extra enrolment images per condition: classic image transforms, and GAN editor variants (contract 4).

``classic``: ``classic_copies`` torchvision-v2 copies (flip, resized crop, colour jitter) of every enrolment
photo. ``gan``: up to ``gan_copies`` editor variants of every enrolment photo from the synthetic dataset
``enrolment_edits``, taken round-robin over the edited attributes so each attribute is equally represented.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import v2

from facegen.config import ClassicAugmentation
from facegen.synthetic.reader import load_manifest
from facegen.synthetic.writer import MANIFEST_PARQUET

MANIFEST_COLUMNS = ("file", "identity", "source_image", "edited_attribute")


def classic_copies(images: np.ndarray, copies: int, settings: ClassicAugmentation, seed: int) -> np.ndarray:
    """`copies` randomly transformed versions of each N x R x R x 3 uint8 image, copy-major (N * copies rows)."""
    size = images.shape[1]
    transform = v2.Compose(
        [
            v2.RandomHorizontalFlip(settings.flip),
            v2.RandomResizedCrop(size, scale=settings.crop_scale, ratio=(0.9, 1.1), antialias=True),
            v2.ColorJitter(settings.brightness, settings.contrast, settings.saturation, settings.hue),
        ]
    )
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    # torchvision's random transforms draw from torch's global generator and take no other: seed it for this
    # block only, and give the caller's random state back afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = [torch.stack([transform(image) for image in batch]) for _ in range(copies)]
    return torch.cat(out).permute(0, 2, 3, 1).numpy() if out else images[:0]


class EditsUnavailable(FileNotFoundError):
    """The synthetic enrolment edits are missing or do not match the enrolment photos."""


def gan_edits(dataset: Path, enrol: pd.DataFrame, copies: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Editor variants of the enrolment photos (rows of `enrol`: image_id, identity), at most `copies` per photo,
    balanced over `edited_attribute`. Returns the images and their manifest rows (with `identity`)."""
    manifest_path = Path(dataset) / MANIFEST_PARQUET
    try:
        manifest = load_manifest(dataset)
    except FileNotFoundError as err:
        raise EditsUnavailable(
            f"{err}; the gan/both conditions need these enrolment edits, or drop them from recognition.conditions"
        ) from None
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise EditsUnavailable(f"{manifest_path}: columns {missing} are missing (see contract 4)")
    manifest = manifest[manifest["source_image"].isin(set(enrol["image_id"]))].copy()
    if manifest.empty:
        raise EditsUnavailable(
            f"{manifest_path}: no edit has an enrolment photo as its source_image; the dataset was "
            f"made for another roster (re-run `dvc repro generate` after changing attendance.*)"
        )
    owner = dict(zip(enrol["image_id"], enrol["identity"].astype(str)))
    wrong = manifest[manifest["identity"].astype(str) != manifest["source_image"].map(owner)]
    if len(wrong):
        raise EditsUnavailable(
            f"{manifest_path}: row {wrong.index[0]} says identity {wrong['identity'].iloc[0]!r} "
            f"for source {wrong['source_image'].iloc[0]!r}, whose owner is "
            f"{owner[wrong['source_image'].iloc[0]]!r}"
        )
    chosen = _balanced(manifest, copies, seed)
    images = np.stack([_read_rgb(Path(dataset) / f) for f in chosen["file"]])
    return images, chosen.reset_index(drop=True)


def _balanced(manifest: pd.DataFrame, copies: int, seed: int) -> pd.DataFrame:
    """Per source photo, take edits in a round-robin over edited attributes (random order within each)."""
    rng = np.random.default_rng(seed)
    manifest = manifest.assign(_draw=rng.random(len(manifest)))
    manifest = manifest.sort_values(["source_image", "edited_attribute", "_draw"])
    manifest["_turn"] = manifest.groupby(["source_image", "edited_attribute"]).cumcount()
    manifest["_attr"] = manifest.groupby("source_image")["edited_attribute"].transform(
        lambda s: s.map({a: i for i, a in enumerate(rng.permutation(sorted(s.unique())))})
    )
    ordered = manifest.sort_values(["source_image", "_turn", "_attr"])
    return ordered.groupby("source_image").head(copies).drop(columns=["_draw", "_turn", "_attr"])


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as err:
        raise EditsUnavailable(f"{path}: cannot read synthetic image ({err})") from None
