"""Where edits show their artefacts: bands around the eyes (and any glasses) and the mouth of a landmark-aligned face.

Each band is (top, bottom, left, right) as fractions of the crop, around the ArcFace template's points
(facegen/data/align.py): its eye centres sit at row 0.46, its mouth corners at row 0.82, columns 0.34-0.66 and
0.37-0.63. The region discriminator (``gan.lambda_region``) and the detector's region crops
(facegen/metrics/detector.py) judge the same bands.
"""

from __future__ import annotations

from torch import Tensor

FACE_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "eyes": (0.30, 0.62, 0.14, 0.86),  # brows to below the lower lids, temple to temple: the frames of glasses
    "mouth": (0.70, 0.96, 0.22, 0.78),  # below the nose to the chin's top, past both corners: a smile's teeth
}


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
