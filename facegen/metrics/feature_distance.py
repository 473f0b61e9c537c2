"""FID and KID (torchmetrics) between two image sets, in the feature space of a network trained here, or
between two sets of ready features (:func:`fid_kid_of_features`: e.g. the dlib teacher's embeddings).

The Inception network of the usual FID cannot be downloaded offline; torchmetrics takes any nn.Module as
``feature`` instead. Values are therefore comparable between runs that share the feature network (same
attribute classifier, or the same face recognizer), not with published Inception FIDs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance


@torch.no_grad()
def fid_kid(
    extractor: nn.Module,
    real: np.ndarray,
    fake: np.ndarray,
    kid_subset_size: int = 500,
    kid_subsets: int = 20,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """FID, KID (mean and standard deviation over ``kid_subsets`` random subsets) of ``fake`` against ``real``
    (N x R x R x 3 uint8).

    ``extractor`` maps B x 3 x R x R uint8 tensors to B x D features (e.g. ``AttributeClassifier.feature_extractor()``).
    """
    if min(len(real), len(fake)) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(real)} real and {len(fake)} generated")
    batches = (
        (torch.as_tensor(np.ascontiguousarray(images[i : i + batch_size])).permute(0, 3, 1, 2), is_real)
        for images, is_real in ((real, True), (fake, False))
        for i in range(0, len(images), batch_size)
    )
    return _fid_kid(extractor, batches, min(kid_subset_size, len(real), len(fake)), kid_subsets, seed)


class _GivenFeatures(nn.Module):
    """The torchmetrics feature network for ready features: passes them through."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # torchmetrics reads it instead of probing with a 299 px image

    def forward(self, features: Tensor) -> Tensor:
        return features


def _fid_kid(
    extractor: nn.Module, batches: Iterable[tuple[Tensor, bool]], subset: int, subsets: int, seed: int
) -> dict[str, float]:
    fid = FrechetInceptionDistance(feature=extractor)
    with warnings.catch_warnings():  # "KID will save all extracted features": a few thousand vectors here
        warnings.filterwarnings("ignore", message=".*save all extracted features", category=UserWarning)
        kid = KernelInceptionDistance(feature=extractor, subsets=subsets, subset_size=subset)
    for batch, is_real in batches:
        fid.update(batch, real=is_real)
        kid.update(batch, real=is_real)
    with torch.random.fork_rng():  # KID draws its subsets with torch's global generator
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {
        "fid": round(float(fid.compute()), 5),
        "kid_mean": round(float(kid_mean), 6),
        "kid_std": round(float(kid_std), 6),
    }


@torch.no_grad()
def fid_kid_of_features(
    real: np.ndarray, fake: np.ndarray, kid_subset_size: int = 1000, kid_subsets: int = 20, seed: int = 0
) -> dict[str, float | int | None]:
    """FID and KID of two sets of feature vectors (N x D, e.g. a face recognizer's embeddings), by the same
    torchmetrics metrics; rows holding NaN (no face found) are left out and counted. With fewer than 2 usable
    rows on a side (a generator the recognizer finds no faces in) there is no distance: FID and KID are None."""
    real_rows, fake_rows = (np.isfinite(x).all(axis=1) for x in (real, fake))
    r = torch.as_tensor(np.asarray(real)[real_rows], dtype=torch.float64)
    f = torch.as_tensor(np.asarray(fake)[fake_rows], dtype=torch.float64)
    counts = {
        "real": int(len(r)),
        "generated": int(len(f)),
        "real_without_face": int((~real_rows).sum()),
        "generated_without_face": int((~fake_rows).sum()),
    }
    if min(len(r), len(f)) < 2:
        return {"fid": None, "kid_mean": None, "kid_std": None, **counts}
    subset = min(kid_subset_size, len(r), len(f))
    distances = _fid_kid(_GivenFeatures(r.shape[1]), [(r, True), (f, False)], subset, kid_subsets, seed)
    return distances | counts | {"kid_subset_size": subset}


def real_vs_real_reference(real: np.ndarray, subset_size: int, subsets: int, seed: int) -> dict:
    """FID and KID between two random halves of the ``real`` features: the floor a generator's distances are
    read against (each half holds N/2 rows, so the small-sample bias of FID makes it, if anything, high)."""
    real = np.asarray(real)
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    return fid_kid_of_features(real[order[:half]], real[order[half : 2 * half]], subset_size, subsets, seed)
