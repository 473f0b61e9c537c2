import numpy as np
import pytest

from bench.speckle import high_frequency_energy


def test_high_frequency_energy_sees_pixel_noise_and_not_smooth_faces() -> None:
    flat = np.full((2, 8, 8, 3), 128, np.uint8)
    assert high_frequency_energy(flat) == pytest.approx(0, abs=1e-6)
    ramp = np.broadcast_to(np.linspace(0, 255, 8).astype(np.uint8)[None, None, :, None], (2, 8, 8, 3)).copy()
    checker = (np.add.outer(np.arange(8), np.arange(8)) % 2 * 100 + 78).astype(np.uint8)
    speckled = np.broadcast_to(checker[None, :, :, None], (2, 8, 8, 3)).copy()
    # a checkerboard pixel differs from its 3 x 3 mean by 8/9 of the half-contrast inside the image
    assert high_frequency_energy(speckled) > 0.8 * (50 / 255)
    assert high_frequency_energy(ramp) < 0.1 * high_frequency_energy(speckled)
