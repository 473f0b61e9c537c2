"""Precision, recall, density and coverage of generated features against real ones (the ``prdc`` package).

Precision/recall (Kynkäänniemi et al. 2019): the share of generated samples inside the real k-NN manifold,
and of real samples inside the generated one. Density/coverage (Naeem et al. 2020, whose authors maintain
``prdc``) are the outlier-robust versions. All four are about 1 for two samples of the same distribution.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from prdc import compute_prdc


def precision_recall_density_coverage(
    real_features: np.ndarray, fake_features: np.ndarray, nearest_k: int = 5
) -> dict[str, float]:
    """N x D and M x D features -> {"precision", "recall", "density", "coverage"}."""
    if min(len(real_features), len(fake_features)) <= nearest_k:
        raise ValueError(
            f"precision/recall with nearest_k={nearest_k} needs more than {nearest_k} samples per set, "
            f"got {len(real_features)} real and {len(fake_features)} generated"
        )
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        scores = compute_prdc(np.asarray(real_features, np.float32), np.asarray(fake_features, np.float32), nearest_k)
    return {name: round(float(value), 5) for name, value in scores.items()}
