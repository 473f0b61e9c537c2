"""Demo faces: deterministic files in the official layout, attributes that show in the 64 px crops the
pipeline trains on, CelebA-like marginals and consistency."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facegen.data.annotations import (
    ATTR_FILE,
    CELEBA_ATTRIBUTES,
    IDENTITY_FILE,
    IMAGES_DIR,
    IMAGES_ZIP,
    PARTITION_FILE,
    read_attributes,
    read_identities,
    read_partition,
)
from facegen.data.celeba import CelebA
from facegen.data.demo import (
    RENDERED_ATTRIBUTES,
    DemoSpec,
    View,
    make_demo_celeba,
    render_face,
    sample_people,
    sample_photo_attributes,
    sample_traits,
    sample_view,
)
from facegen.data.prepare import CenterCropResize
from facegen.io import UnsafeOutputError

FILES = (IMAGES_ZIP, ATTR_FILE, IDENTITY_FILE, PARTITION_FILE)
SPEC = DemoSpec(identities=30, images_per_identity=6, seed=3)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    return make_demo_celeba(tmp_path_factory.mktemp("demo") / "celeba", SPEC)


@pytest.fixture(scope="module")
def annotations(small_demo: Path) -> pd.DataFrame:
    attributes = read_attributes(small_demo / ATTR_FILE).join(read_identities(small_demo / IDENTITY_FILE))
    return attributes.join(read_partition(small_demo / PARTITION_FILE))


def test_same_spec_same_bytes_other_seed_other_bytes(small_demo: Path, tmp_path: Path) -> None:
    again = make_demo_celeba(tmp_path / "again", SPEC)
    for name in FILES:
        assert (again / name).read_bytes() == (small_demo / name).read_bytes(), name
    other = make_demo_celeba(tmp_path / "other", DemoSpec(identities=30, images_per_identity=6, seed=4))
    assert (other / IMAGES_ZIP).read_bytes() != (small_demo / IMAGES_ZIP).read_bytes()


def test_official_layout_reads_back(small_demo: Path, annotations: pd.DataFrame) -> None:
    assert tuple(annotations.columns[:40]) == CELEBA_ATTRIBUTES and len(annotations) == 180
    assert list(annotations.index) == [f"{n:06d}.jpg" for n in range(1, 181)]
    assert sorted(annotations.identity.astype(int).unique()) == list(range(1, 31))
    assert annotations.identity.value_counts().eq(6).all()
    with zipfile.ZipFile(small_demo / IMAGES_ZIP) as archive:
        assert archive.namelist() == [f"{IMAGES_DIR}/{image_id}" for image_id in annotations.index]
    unrendered = [c for c in CELEBA_ATTRIBUTES if c not in RENDERED_ATTRIBUTES]
    assert annotations[unrendered].eq(0).all().all()  # written as -1
    faces = CelebA(small_demo)
    assert len(faces) == 180 and faces.missing_images == 0 and faces[0][0].size == (178, 218)


def test_splits_are_by_person_about_80_10_10_and_numbered_like_celeba(annotations: pd.DataFrame) -> None:
    assert annotations.groupby("identity").split.nunique().eq(1).all()  # nobody in two splits
    people = annotations.groupby("split").identity.nunique()
    assert people.to_dict() == {"train": 24, "valid": 3, "test": 3}
    codes = annotations.split.map({"train": 0, "valid": 1, "test": 2})
    assert codes.is_monotonic_increasing  # train files first, then valid, then test, as in CelebA


def test_rerun_on_a_complete_demo_does_nothing(small_demo: Path) -> None:
    before = {name: (small_demo / name).stat().st_mtime_ns for name in FILES}
    make_demo_celeba(small_demo, SPEC)
    assert {name: (small_demo / name).stat().st_mtime_ns for name in FILES} == before
    assert json.loads((small_demo / "demo.json").read_text())["spec"] == {
        "identities": 30,
        "images_per_identity": 6,
        "seed": 3,
    }


def test_another_spec_replaces_the_demo(tmp_path: Path) -> None:
    root = make_demo_celeba(tmp_path / "demo", DemoSpec(identities=2, images_per_identity=2))
    make_demo_celeba(root, DemoSpec(identities=3, images_per_identity=2))
    assert len(read_identities(root / IDENTITY_FILE)) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no temporary folder left behind


def test_refuses_to_replace_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "mine.jpg").write_bytes(b"precious")
    with pytest.raises(UnsafeOutputError, match="photos is not a folder of demo CelebA files .*holds mine.jpg"):
        make_demo_celeba(tmp_path / "photos", DemoSpec(identities=2, images_per_identity=2))
    assert (tmp_path / "photos" / "mine.jpg").read_bytes() == b"precious"


@pytest.mark.parametrize(
    "field, value", [("identities", 0), ("images_per_identity", -2), ("identities", True), ("seed", 1.5), ("seed", -1)]
)
def test_invalid_spec_names_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"DemoSpec.{field} must be"):
        DemoSpec(**{field: value})


# Each attribute is flipped on a plain face: a young man with brown hair, no beard, nothing worn. `context` is
# set in both images (a mustache is tested on a bearded face); `change` only in the second.
PLAIN = {name: False for name in RENDERED_ATTRIBUTES} | {
    "Male": True,
    "Young": True,
    "No_Beard": True,
    "Brown_Hair": True,
}
FLIPS: dict[str, tuple[dict[str, bool], dict[str, bool]]] = {name: ({}, {name: True}) for name in RENDERED_ATTRIBUTES}
FLIPS |= {name: ({}, {name: False}) for name in ("Male", "Young", "No_Beard", "Brown_Hair")}
FLIPS |= {name: ({"Brown_Hair": False}, {name: True}) for name in ("Bald", "Black_Hair", "Blond_Hair", "Gray_Hair")}
FLIPS |= {name: ({"No_Beard": False}, {name: True}) for name in ("Goatee", "Mustache", "Sideburns")}
# Where each attribute shows in the 64x64 crop (rows, columns), with room for the pose to move it.
TOP, EYES, MOUTH = np.s_[0:28, 6:58], np.s_[22:42, 8:56], np.s_[40:60, 16:48]
JAW, CHEEKS, EARS, FACE = np.s_[36:64, 6:58], np.s_[26:52, 4:60], np.s_[36:54, 0:64], np.s_[0:64, 0:64]
REGIONS = {
    "Bald": TOP,
    "Bangs": TOP,
    "Black_Hair": TOP,
    "Blond_Hair": TOP,
    "Brown_Hair": TOP,
    "Gray_Hair": TOP,
    "Wearing_Hat": TOP,
    "Eyeglasses": EYES,
    "Narrow_Eyes": EYES,
    "Bushy_Eyebrows": EYES,
    "Heavy_Makeup": EYES,
    "Smiling": MOUTH,
    "Mouth_Slightly_Open": MOUTH,
    "Wearing_Lipstick": MOUTH,
    "Mustache": MOUTH,
    "No_Beard": JAW,
    "Goatee": JAW,
    "5_o_Clock_Shadow": JAW,
    "Sideburns": CHEEKS,
    "Rosy_Cheeks": CHEEKS,
    "Wearing_Earrings": EARS,
    "Male": FACE,
    "Young": FACE,
    "Pale_Skin": FACE,
    "Blurry": FACE,
}
CROP = CenterCropResize(64, 140)  # what the pipeline trains on


def test_every_rendered_attribute_has_a_flip_and_a_region() -> None:
    assert set(FLIPS) == set(REGIONS) == set(RENDERED_ATTRIBUTES)
    assert len(RENDERED_ATTRIBUTES) >= 15 and set(RENDERED_ATTRIBUTES) <= set(CELEBA_ATTRIBUTES)


@pytest.mark.parametrize("attribute", RENDERED_ATTRIBUTES)
def test_each_rendered_attribute_shows_in_the_64px_crop(attribute: str) -> None:
    """For several people and views (dark skin, dim light and tilt included), flipping the attribute visibly
    changes at least 15 pixels of its region of the 64x64 crop, and rendering again changes nothing."""
    context, change = FLIPS[attribute]
    for k in range(8):
        traits, view = sample_traits(np.random.default_rng([7, k])), sample_view(np.random.default_rng([8, k]))
        before = render_face(traits, PLAIN | context, view)
        assert np.array_equal(np.asarray(before), np.asarray(render_face(traits, PLAIN | context, view)))
        after = render_face(traits, PLAIN | context | change, view)
        diff = np.abs(np.asarray(CROP(after), dtype=int) - np.asarray(CROP(before), dtype=int))
        changed = (diff.max(axis=2) > 16)[REGIONS[attribute]].sum()
        assert changed >= 15, f"{attribute} changes only {changed} pixels of its region for person {k}"


def test_photo_size_and_unposed_face_position() -> None:
    traits = sample_traits(np.random.default_rng(0))
    plain = render_face(traits, PLAIN, View(0, 0, 0, 1.0, 0, 1.0, (0, 255, 0), (0, 255, 0), (0, 255, 0)))
    assert plain.size == (178, 218) and plain.mode == "RGB"
    face = np.abs(np.asarray(plain, dtype=int) - (0, 255, 0)).max(axis=2) > 30  # not the background
    rows, cols = np.nonzero(face[:170])  # above the shoulders
    assert abs((cols.min() + cols.max()) / 2 - 89) < 4  # centred across
    assert 40 < rows.min() < 60 and cols.max() - cols.min() > 80  # the head is ~100 px wide, CelebA-like


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    """One photo attribute row per (person, photo) of a 300 x 10 demo, without drawing anything."""
    spec = DemoSpec(identities=300, images_per_identity=10, seed=1)
    rows = [
        sample_photo_attributes(person, np.random.default_rng([1, identity, k]))
        for identity, person in sample_people(spec).items()
        for k in range(spec.images_per_identity)
    ]
    return pd.DataFrame(rows)


# CelebA's marginals (list_attr_celeba.txt, all 202,599 images), rounded.
CELEBA_SHARES = {
    "Male": 0.417,
    "Young": 0.774,
    "Smiling": 0.482,
    "Mouth_Slightly_Open": 0.483,
    "Eyeglasses": 0.065,
    "Black_Hair": 0.239,
    "Blond_Hair": 0.148,
    "Brown_Hair": 0.205,
    "Gray_Hair": 0.042,
    "Bald": 0.022,
    "Bangs": 0.152,
    "Mustache": 0.042,
    "No_Beard": 0.835,
    "Wearing_Hat": 0.048,
    "Pale_Skin": 0.043,
    "Wearing_Lipstick": 0.472,
    "Heavy_Makeup": 0.387,
    "Goatee": 0.063,
    "5_o_Clock_Shadow": 0.111,
}


@pytest.mark.parametrize("attribute", CELEBA_SHARES)
def test_marginals_are_celeba_like(population: pd.DataFrame, attribute: str) -> None:
    assert population[attribute].mean() == pytest.approx(CELEBA_SHARES[attribute], abs=0.03)


def test_attributes_are_consistent_like_celeba(population: pd.DataFrame) -> None:
    hair = population[["Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"]].sum(axis=1)
    assert hair.max() == 1 and not (population.Bald & ((hair > 0) | population.Bangs | population.Wearing_Hat)).any()
    women = population[~population.Male]
    assert women.No_Beard.all() and not women[["Mustache", "Goatee", "Sideburns", "5_o_Clock_Shadow"]].any().any()
    assert not (population.No_Beard & (population.Mustache | population.Goatee)).any()
    assert not (population.Heavy_Makeup & ~population.Wearing_Lipstick).any()


def test_people_keep_their_looks_and_vary_photo_to_photo(population: pd.DataFrame) -> None:
    person = population.index // 10
    fixed = population.groupby(person)[["Male", "Young", "Bald", "Black_Hair", "Bangs", "No_Beard"]].nunique()
    assert fixed.eq(1).all().all()
    glasses = population.groupby(person).Eyeglasses.mean()
    assert ((glasses > 0) & (glasses < 1)).sum() >= 10  # people seen both with and without glasses
    assert population.groupby(person).Smiling.nunique().gt(1).mean() > 0.8
