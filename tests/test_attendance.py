"""The attendance roles: disjoint people, enrolment without the gap attributes where possible, seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facegen.config import AttendanceConfig
from facegen.data.attendance import assign_roles


def _table(people: int = 30, photos: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = people * photos
    return pd.DataFrame(
        {
            "image_id": [f"{i:06d}.jpg" for i in range(n)],
            "identity": np.repeat([str(p) for p in range(people)], photos),
            "split": "train",
            "Eyeglasses": (rng.random(n) < 0.4).astype(int),
            "Smiling": (rng.random(n) < 0.5).astype(int),
        }
    )


def test_roles_partition_people_and_photos() -> None:
    table = _table()
    config = AttendanceConfig(roster_size=10, enrol_per_person=3, min_checkins=2, visitors=5)
    roles = assign_roles(table, config)
    people = {role: set(table.loc[roles == role, "identity"]) for role in ("enrol", "checkin", "visitor", "background")}
    assert people["enrol"] == people["checkin"] and len(people["enrol"]) == 10
    assert len(people["visitor"]) == 5 and len(people["background"]) == 15
    assert not (people["enrol"] & people["visitor"]) and not (people["enrol"] & people["background"])
    assert not (people["visitor"] & people["background"])
    assert (table.loc[roles == "enrol"].groupby("identity").size() == 3).all()


def test_enrolment_avoids_gap_attributes_where_possible() -> None:
    table = _table()
    config = AttendanceConfig(roster_size=10, enrol_per_person=3, min_checkins=2, visitors=0)
    roles = assign_roles(table, config)
    for person, photos in table[roles.isin(["enrol", "checkin"])].groupby("identity"):
        clean = (photos[["Eyeglasses", "Smiling"]].sum(axis=1) == 0).sum()
        enrolled = photos[roles[photos.index] == "enrol"]
        # As many enrolment photos are clean as the person has clean photos (up to 3).
        assert (enrolled[["Eyeglasses", "Smiling"]].sum(axis=1) == 0).sum() == min(3, clean), person


def test_roles_are_seeded() -> None:
    table = _table()
    a = assign_roles(table, AttendanceConfig(roster_size=10, visitors=5, seed=1))
    assert a.equals(assign_roles(table, AttendanceConfig(roster_size=10, visitors=5, seed=1)))
    assert not a.equals(assign_roles(table, AttendanceConfig(roster_size=10, visitors=5, seed=2)))


def test_too_small_a_data_set_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="attendance.roster_size=50"):
        assign_roles(_table(people=30), AttendanceConfig(roster_size=50))
    with pytest.raises(ValueError, match="gap_attributes"):
        assign_roles(_table(), AttendanceConfig(gap_attributes=("Bald",)))
