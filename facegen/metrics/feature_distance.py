"""FID and KID (torchmetrics) between two image sets, in the feature space of a network trained here.

The Inception network of the usual FID cannot be downloaded offline; torchmetrics takes any nn.Module as
``feature`` instead. Values are therefore comparable between runs that share the feature network (same
attribute classifier), not with published Inception FIDs.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
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
    subset = min(kid_subset_size, len(real), len(fake))
    fid = FrechetInceptionDistance(feature=extractor)
    with warnings.catch_warnings():  # "KID will save all extracted features": a few thousand vectors here
        warnings.filterwarnings("ignore", message=".*save all extracted features", category=UserWarning)
        kid = KernelInceptionDistance(feature=extractor, subsets=kid_subsets, subset_size=subset)
    for images, is_real in ((real, True), (fake, False)):
        for i in range(0, len(images), batch_size):
            batch = torch.as_tensor(np.ascontiguousarray(images[i : i + batch_size])).permute(0, 3, 1, 2)
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
