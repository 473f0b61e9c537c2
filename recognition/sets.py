"""The image sets of the attendance experiment, cut from the prepared faces by ``assign_roles``.

Background people are split once more: ``calibration_people`` of them are held out of backbone pretraining
and only ever used as stand-in impostors to set the open-set threshold, so the threshold is tuned neither on
the test visitors nor on people the backbone was trained to tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facegen.config import AttendanceConfig
from facegen.data.attendance import assign_roles
from facegen.data.prepared import PreparedFaces

SET_NAMES = ("pretrain", "calibration", "enrol", "checkin", "visitor")


@dataclass(frozen=True)
class FaceSet:
    images: np.ndarray  # N x R x R x 3 uint8
    annotations: pd.DataFrame  # image_id, identity, split, attributes (index 0..N-1)
    rows: np.ndarray  # each image's row in the prepared cache (to look up per-face data such as teacher descriptors)


def attendance_sets(
    prepared: Path,
    attendance: AttendanceConfig,
    calibration_people: int,
    names: tuple[str, ...] = SET_NAMES,
    pretrain_people: int = 0,
    draw: int = 0,
) -> dict[str, FaceSet]:
    """The named sets (``pretrain``, ``calibration``, ``enrol``, ``checkin``, ``visitor``) of the prepared faces;
    ``pretrain_people`` > 0 keeps only that many (seeded choice) of the pretraining people.

    ``draw`` > 0 re-splits the people of draw 0's roster and visitors into a new roster, visitors and enrolment
    photos (``assign_roles`` with seed ``attendance.seed + draw``). Background and calibration people stay as
    they are, so a backbone trained on draw 0's background has seen nobody of any draw."""
    faces = PreparedFaces(prepared)
    table = faces.annotations
    roles = np.array(assign_roles(table, attendance), dtype=object)
    if draw:
        pool = (roles == "enrol") | (roles == "checkin") | (roles == "visitor")
        redrawn = assign_roles(table[pool], attendance.model_copy(update={"seed": attendance.seed + draw}))
        roles[pool] = redrawn.to_numpy()
    background = np.sort(table.loc[roles == "background", "identity"].unique())
    if len(background) <= calibration_people:
        raise ValueError(
            f"recognition.calibration_people={calibration_people}, but only {len(background)} background "
            f"people are left after the roster and visitors (attendance.*): some must remain to pretrain on"
        )
    held_out, pretrain = split_background(background, attendance.seed, calibration_people, pretrain_people)
    roles[(roles == "background") & table["identity"].isin(held_out).to_numpy()] = "calibration"
    roles[(roles == "background") & table["identity"].isin(pretrain).to_numpy()] = "pretrain"
    all_images = faces.images
    sets = {}
    for name in names:
        rows = np.flatnonzero(roles == name)
        sets[name] = FaceSet(
            np.ascontiguousarray(all_images[rows]),
            table.iloc[rows].drop(columns="_row").reset_index(drop=True),
            table["_row"].to_numpy()[rows],
        )
    return sets


def split_background(
    people: np.ndarray, seed: int, calibration_people: int, pretrain_people: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration people, pretraining people) drawn from the background people, seeded."""
    shuffled = np.random.default_rng(seed).permutation(np.sort(people))
    rest = shuffled[calibration_people:]
    return shuffled[:calibration_people], rest[:pretrain_people] if pretrain_people else rest
