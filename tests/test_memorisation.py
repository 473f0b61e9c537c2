"""Memorisation metrics on synthetic descriptors: nearest neighbours match brute force, copies of training rows
read as memorised and independent draws do not, generic faces fool the plain test but not the data-copying
control, the neighbour grid has one row per face, and the real-vs-real
FID is a floor well below a shifted set's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegen.metrics.feature_distance import fid_kid_of_features, real_vs_real_reference
from facegen.metrics.memorisation import data_copying_test, memorisation_test, nearest_neighbours, neighbour_grid


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_nearest_neighbours_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    queries, references = rng.normal(size=(50, 16)), rng.normal(size=(70, 16))
    similarities, indices = nearest_neighbours(queries, references, k=3, batch_size=7)
    brute = _unit(queries) @ _unit(references).T
    expected = np.argsort(-brute, axis=1)[:, :3]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(similarities, np.take_along_axis(brute, expected, axis=1))
    assert (np.diff(similarities, axis=1) <= 0).all()


def test_nan_rows_have_no_neighbour_and_are_no_neighbour() -> None:
    rng = np.random.default_rng(1)
    queries, references = rng.normal(size=(6, 8)), rng.normal(size=(5, 8))
    queries[[1, 4]] = np.nan
    references[0] = references[2] = np.nan
    references[3] = queries[0] * 2  # the same direction: cosine 1
    similarities, indices = nearest_neighbours(queries, references, k=3)
    assert np.isnan(similarities[[1, 4]]).all() and (indices[[1, 4]] == -1).all()
    assert np.isfinite(similarities[[0, 2, 3, 5]]).all()
    assert set(indices[[0, 2, 3, 5]].ravel()) <= {1, 3, 4}
    assert indices[0, 0] == 3 and similarities[0, 0] == pytest.approx(1)
    with pytest.raises(ValueError, match="3 usable reference rows"):
        nearest_neighbours(queries, references, k=4)


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    """Descriptors of 400 training faces and 300 held-out real faces (independent draws of one distribution)."""
    rng = np.random.default_rng(2)
    return {"training": rng.normal(size=(400, 32)), "held_out": rng.normal(size=(300, 32)), "rng": rng}


def _nearest_training(x: np.ndarray, training: np.ndarray) -> np.ndarray:
    return nearest_neighbours(x, training)[0][:, 0]


def test_copies_of_training_faces_read_as_memorised(faces: dict) -> None:
    training, rng = faces["training"], faces["rng"]
    generated = training[:300] + rng.normal(scale=0.01, size=(300, 32))
    generated[:5] = np.nan  # no face found
    result = memorisation_test(_nearest_training(generated, training), _nearest_training(faces["held_out"], training))
    assert result["generated"] == 295 and result["held_out"] == 300 and result["dropped"] == 5
    assert result["p_closer"] < 1e-6 and result["auc"] > 0.95 and result["copies"] > 0.5
    assert result["generated_median"] > result["held_out_median"]
    assert set(result["generated_quantiles"]) == {"0.05", "0.5", "0.95"}


def test_independent_faces_do_not_read_as_memorised(faces: dict) -> None:
    training = faces["training"]
    generated = np.random.default_rng(3).normal(size=(300, 32))
    result = memorisation_test(_nearest_training(generated, training), _nearest_training(faces["held_out"], training))
    assert result["p_closer"] > 0.05
    assert abs(result["auc"] - 0.5) < 0.1
    assert result["copies"] < 0.05


def test_data_copying_control_finds_copies(faces: dict) -> None:
    generated = faces["training"][:200] + np.random.default_rng(6).normal(scale=0.01, size=(200, 32))
    result = data_copying_test(generated, faces["training"], faces["held_out"], permutations=200)
    assert result["generated"] == 200 and result["reference_faces"] == 300
    assert result["p_training_closer"] < 0.01  # 3 in 4 originals are among the 300 training faces drawn:
    assert result["share_closer_to_training"] > 0.7


def test_generic_faces_fool_the_plain_test_but_not_the_data_copying_control() -> None:
    """Faces near the population's centre (less varied than real ones, as blurry GAN samples are) sit close to
    every real face: the plain test calls them memorised; the control sees them as close to unseen faces."""
    rng = np.random.default_rng(7)
    centre = rng.normal(size=32) * 2
    training, held_out = centre + rng.normal(size=(300, 32)), centre + rng.normal(size=(300, 32))
    generic = centre + 0.3 * rng.normal(size=(300, 32))
    plain = memorisation_test(_nearest_training(generic, training), _nearest_training(held_out, training))
    assert plain["p_closer"] < 1e-6
    control = data_copying_test(generic, training, held_out, permutations=200)
    assert control["p_training_closer"] > 0.05


def test_data_copying_needs_faces_on_every_side() -> None:
    rng = np.random.default_rng(8)
    unseen = rng.normal(size=(3, 4))
    unseen[1:] = np.nan
    with pytest.raises(
        ValueError,
        match="at least 2 generated and 2 reference faces per side, got 5 generated, 4 training and 1 unseen",
    ):
        data_copying_test(rng.normal(size=(5, 4)), rng.normal(size=(4, 4)), unseen)


def test_too_few_similarities_raise() -> None:
    with pytest.raises(ValueError, match="at least 2 usable similarities per side, got 1 generated and 3"):
        memorisation_test(np.array([0.9, np.nan]), np.array([0.1, 0.2, 0.3]))


def test_neighbour_grid_shows_each_face_beside_its_neighbours(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    generated = rng.integers(0, 256, size=(10, 16, 16, 3), dtype=np.uint8)
    training = rng.integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    descriptors = rng.normal(size=(10, 8))
    descriptors[0] = np.nan
    _, indices = nearest_neighbours(descriptors, rng.normal(size=(20, 8)), k=2)
    path = tmp_path / "neighbours.png"
    neighbour_grid(generated, training, indices, path, rows=4)
    with Image.open(path) as png:
        grid = np.asarray(png.convert("RGB"))
    assert grid.shape == (4 * 18 + 2, 3 * 18 + 2, 3)  # 4 rows x (1 + k) tiles of 16 px, 2 px padding
    np.testing.assert_array_equal(grid[2:18, 2:18], generated[1])  # row 0 skipped: no face found
    np.testing.assert_array_equal(grid[2:18, 20:36], training[indices[1, 0]])


def test_real_vs_real_fid_is_a_floor_below_a_shifted_set() -> None:
    rng = np.random.default_rng(5)
    real = rng.normal(size=(1000, 8))
    reference = real_vs_real_reference(real, subset_size=200, subsets=5, seed=0)
    shifted = fid_kid_of_features(real, rng.normal(loc=0.5, size=(1000, 8)), kid_subset_size=200, kid_subsets=5)
    assert reference["real"] == reference["generated"] == 500
    assert 0 <= reference["fid"] < 0.1 * shifted["fid"]
    assert reference["kid_mean"] < 0.1 * shifted["kid_mean"]
