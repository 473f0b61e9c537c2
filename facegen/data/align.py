"""Face alignment as face recognition does it: five landmarks mapped onto a fixed template by a similarity transform.

The template is the ArcFace / InsightFace five-point template of 112 x 112 crops (eye centres, nose tip, mouth
corners, in image order: left eye first), scaled to the crop size. The transform is the least-squares
similarity (rotation, uniform scale, shift; no reflection) of Umeyama (1991): twelve lines of numpy, written
here because the project has neither scikit-image nor OpenCV, and PIL's affine warp then resamples the photo.
A face whose template square reaches past the photo's edge is warped from the photo padded by its edge pixels,
so the crop has no black bars.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def template(size: int) -> np.ndarray:
    """The five template points (x, y) for a size x size crop, in pixel-centre coordinates."""
    return (ARCFACE_TEMPLATE_112 + 0.5) * (size / 112.0) - 0.5


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix of the similarity transform that maps `source` points (N x 2) closest onto `target`
    in least squares (Umeyama's closed form, reflections excluded)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(0), target.mean(0)
    s, t = source - mean_s, target - mean_t
    covariance = t.T @ s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / s.var(0).sum()
    shift = mean_t - scale * rotation @ mean_s
    return np.hstack([scale * rotation, shift[:, None]])


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: Image.Image, landmarks: np.ndarray, size: int) -> Image.Image:
    """The size x size RGB crop that puts the five `landmarks` (x, y in `image`) on the template."""
    landmarks = np.asarray(landmarks, np.float64).reshape(5, 2)
    to_photo = similarity_transform(template(size), landmarks)  # crop pixel -> photo pixel
    scale = float(np.hypot(*to_photo[:, 0]))  # photo pixels per crop pixel
    image = image.convert("RGB")
    if scale >= 2:  # shrink first (box filter), so the warp's bicubic kernel does not alias
        factor = int(scale)
        image = image.reduce(factor)
        to_photo = to_photo / factor
        to_photo[:, 2] += (1 - factor) / (2 * factor)  # pixel centres of the reduced photo
    corners = apply_transform(to_photo, [[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5] * 2])
    pad = int(np.ceil(max(0.0, -corners.min(), *(corners.max(0) - image.size)))) + 2
    if pad > 2:  # the crop reaches past the photo: warp from the photo padded with its edge pixels
        image = Image.fromarray(np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
        to_photo = to_photo.copy()
        to_photo[:, 2] += pad
    # PIL's affine warp works in continuous coordinates (pixel i spans [i, i + 1)); the matrix maps pixel indices
    centred = to_photo.copy()
    centred[:, 2] += 0.5 - 0.5 * (to_photo[:, 0] + to_photo[:, 1])
    return image.transform(
        (size, size), Image.Transform.AFFINE, data=tuple(centred.ravel()), resample=Image.Resampling.BICUBIC
    )
