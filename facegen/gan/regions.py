"""Where edits show their artefacts: bands around the eyes (and any glasses) and the mouth of a landmark-aligned face.

Each band is (top, bottom, left, right) as fractions of the crop, around the ArcFace template's points
(facegen/data/align.py): its eye centres sit at row 0.46, its mouth corners at row 0.82, columns 0.34-0.66 and
0.37-0.63. The region discriminator (``gan.lambda_region``) and the detector's region crops
(facegen/metrics/detector.py) judge the same bands, and a confined edit (``sampling.confine_edits``) changes only
the bands of the attributes it changes (:func:`edit_masks`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

FACE_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "eyes": (0.30, 0.62, 0.14, 0.86),  # brows to below the lower lids, temple to temple: the frames of glasses
    "mouth": (0.70, 0.96, 0.22, 0.78),  # below the nose to the chin's top, past both corners: a smile's teeth
}
# The band an attribute lives in; an attribute not here (Male, Young, hair colour) spans the whole face.
ATTRIBUTE_REGIONS: dict[str, str] = {"Eyeglasses": "eyes", "Smiling": "mouth"}
FEATHER = 0.04  # a confined edit's band edge: Gaussian sigma as a fraction of the crop (2.6 px at 64)


def region_bounds(region: str, size: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel bounds of ``region`` in a size x size face."""
    if region not in FACE_REGIONS:
        raise ValueError(f"unknown region {region!r}; valid: {', '.join(FACE_REGIONS)}")
    top, bottom, left, right = (round(f * size) for f in FACE_REGIONS[region])
    return top, bottom, left, right


def face_bands(images: Tensor) -> dict[str, Tensor]:
    """Each region's band of ``images`` (B x C x R x R) at its own size, not resized: B x C x h x w per region."""
    size = images.shape[-1]
    bands = {}
    for region in FACE_REGIONS:
        top, bottom, left, right = region_bounds(region, size)
        bands[region] = images[..., top:bottom, left:right]
    return bands


def edit_masks(changed: Tensor, attributes: Sequence[str], size: int) -> Tensor:
    """Where a confined edit may change each face: B x 1 x size x size in [0, 1], from ``changed`` (B x A bool, the
    attributes each edit changes, in ``attributes`` order). A face's mask is the union of its changed attributes'
    bands (:data:`ATTRIBUTE_REGIONS`), its edges feathered (:data:`FEATHER`); the whole face where a changed
    attribute has no band; nothing where nothing changes."""
    if changed.ndim != 2 or changed.shape[1] != len(attributes):
        raise ValueError(
            f"changed is {tuple(changed.shape)}; expected B x {len(attributes)} (one column per attribute)"
        )
    bands = torch.zeros(len(attributes), 1, size, size)
    for a, name in enumerate(attributes):
        if name not in ATTRIBUTE_REGIONS:
            bands[a] = 1.0
            continue
        top, bottom, left, right = region_bounds(ATTRIBUTE_REGIONS[name], size)
        sigma = FEATHER * size
        grow = round(2 * sigma)  # feathered outwards: the band itself changes fully (0.98 at its edge)
        bands[a, :, max(top - grow, 0) : bottom + grow, max(left - grow, 0) : right + grow] = 1.0
        bands[a] = TF.gaussian_blur(bands[a], [2 * round(3 * sigma) + 1] * 2, [sigma, sigma])
    chosen = changed.to(torch.bool)[:, :, None, None, None]  # B x A x 1 x 1 x 1
    return torch.where(chosen, bands.clamp(0, 1).to(changed.device), 0.0).amax(dim=1)
