"""Demo faces: deterministic, official layout, attributes that really show in the pixels, CelebA-like imbalance."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from facegen.data.annotations import CELEBA_ATTRIBUTES, read_attributes, read_identities, read_partition
from facegen.data.celeba import CelebA
from facegen.data.demo import (RENDERED_ATTRIBUTES, DemoSpec, View, make_demo_celeba, render_face,
                               sample_photo_attributes, sample_traits)

FILES = ("img_align_celeba.zip", "list_attr_celeba.txt", "identity_CelebA.txt", "list_eval_partition.txt")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> Path:
    return make_demo_celeba(tmp_path_factory.mktemp("demo") / "celeba", DemoSpec(identities=30, images_per_identity=6, seed=3))


def test_same_seed_same_bytes_other_seed_other_bytes(small_demo: Path, tmp_path: Path) -> None:
    again = make_demo_celeba(tmp_path / "again", DemoSpec(identities=30, images_per_identity=6, seed=3))
    for name in FILES:
        assert (again / name).read_bytes() == (small_demo / name).read_bytes(), name
    other = make_demo_celeba(tmp_path / "other", DemoSpec(identities=30, images_per_identity=6, seed=4))
    assert (other / FILES[0]).read_bytes() != (small_demo / FILES[0]).read_bytes()


def test_official_layout_reads_back(small_demo: Path) -> None:
    attributes = read_attributes(small_demo / "list_attr_celeba.txt")
    identities = read_identities(small_demo / "identity_CelebA.txt")
    splits = read_partition(small_demo / "list_eval_partition.txt")
    assert tuple(attributes.columns) == CELEBA_ATTRIBUTES and len(attributes) == 180
    assert identities.nunique() == 30 and identities.value_counts().eq(6).all()
    per_person = splits.groupby(identities).nunique()
    assert per_person.eq(1).all()  # nobody in two splits
    assert set(splits) == {"train", "valid", "test"}
    unrendered = [c for c in CELEBA_ATTRIBUTES if c not in RENDERED_ATTRIBUTES]
    assert attributes[unrendered].eq(0).all().all()
    faces = CelebA(small_demo)
    assert len(faces) == 180 and faces.missing_images == 0 and faces[0][0].size == (178, 218)


def test_rerun_on_a_complete_demo_does_nothing(small_demo: Path) -> None:
    before = {name: (small_demo / name).stat().st_mtime_ns for name in FILES}
    make_demo_celeba(small_demo, DemoSpec(identities=30, images_per_identity=6, seed=3))
    assert {name: (small_demo / name).stat().st_mtime_ns for name in FILES} == before


@pytest.mark.parametrize("field, value", [("identities", 0), ("images_per_identity", -2), ("seed", 1.5)])
def test_invalid_spec_names_the_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=f"DemoSpec.{field} must be"):
        DemoSpec(**{field: value})


def _neutral_face():
    traits = sample_traits(np.random.default_rng(11))
    base = {name: False for name in RENDERED_ATTRIBUTES} | {"Male": True, "Young": True, "No_Beard": True,
                                                            "Brown_Hair": True}
    return traits, base, View(0, 0, 0, 1.0, 0, 1.0, (120, 160, 200))


# Each attribute flipped from the neutral face, with the hair colour it needs to stay consistent.
FLIPS = {name: {name: True} for name in RENDERED_ATTRIBUTES if name not in ("Male", "Young", "No_Beard", "Brown_Hair")}
FLIPS.update({"Male": {"Male": False}, "Young": {"Young": False}, "No_Beard": {"No_Beard": False},
              "Brown_Hair": {"Brown_Hair": False, "Black_Hair": True}})
FLIPS["Bald"] = {"Bald": True, "Brown_Hair": False}
for colour in ("Black_Hair", "Blond_Hair", "Gray_Hair"):
    FLIPS[colour] = {colour: True, "Brown_Hair": False}


@pytest.mark.parametrize("attribute", RENDERED_ATTRIBUTES)
def test_each_rendered_attribute_changes_the_pixels(attribute: str) -> None:
    traits, base, view = _neutral_face()
    neutral = np.asarray(render_face(traits, base, view), dtype=float)
    assert np.array_equal(neutral, np.asarray(render_face(traits, dict(base), view), dtype=float))
    flipped = np.asarray(render_face(traits, base | FLIPS[attribute], view), dtype=float)
    changed = (np.abs(flipped - neutral).max(axis=2) > 30).mean()
    assert changed > 0.0015, f"{attribute} changes only {changed:.2%} of the pixels"  # > ~60 pixels, clearly


def test_marginals_are_celeba_like() -> None:
    rows = []
    for identity in range(400):
        traits = sample_traits(np.random.default_rng([0, identity]))
        rows += [sample_photo_attributes(traits, np.random.default_rng([0, identity, k])) for k in range(10)]
    share = {name: np.mean([r[name] for r in rows]) for name in RENDERED_ATTRIBUTES}
    assert 0.04 < share["Eyeglasses"] < 0.10
    assert 0.35 < share["Male"] < 0.50 and 0.70 < share["Young"] < 0.86
    assert 0.40 < share["Smiling"] < 0.56 and share["Bald"] < 0.05 and share["Wearing_Hat"] < 0.09
    assert 0.76 < share["No_Beard"] < 0.90 and share["Pale_Skin"] < 0.08
    assert all(not (r["Bald"] and (r["Bangs"] or r["Black_Hair"])) for r in rows)
    assert all(r["Male"] or (r["No_Beard"] and not r["Mustache"]) for r in rows)


def test_spec_is_recorded(small_demo: Path) -> None:
    import json

    assert json.loads((small_demo / "demo.json").read_text()) == dataclasses.asdict(
        DemoSpec(identities=30, images_per_identity=6, seed=3))
