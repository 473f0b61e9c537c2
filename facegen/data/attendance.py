"""Who plays which part in the attendance experiment, decided once from the prepared annotations.

Identities are split three ways: the *roster* (people the attendance system enrols), *visitors* (people
who turn up but are not on the roster and must be rejected) and *background* people (everyone else: the
recognition backbone may be pretrained on them, never on roster or visitors). Each roster person gives
``enrol_per_person`` enrolment photos; the rest of their photos are check-ins. For the attribute-gap
scenario enrolment photos are chosen, where a person has enough, among photos *without* the
``gap_attributes`` (no eyeglasses, not smiling, ...), so check-ins show what enrolment never saw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from facegen.config import AttendanceConfig

ROLES = ("background", "enrol", "checkin", "visitor")


def assign_roles(annotations: pd.DataFrame, config: AttendanceConfig) -> pd.Series:
    """One role per annotation row (same index): ``background``, ``enrol``, ``checkin`` or ``visitor``.

    Deterministic for a given table and ``config.seed``. Raises ValueError when too few identities have the
    ``enrol_per_person + min_checkins`` photos a roster place needs.
    """
    missing = [a for a in config.gap_attributes if a not in annotations.columns]
    if missing:
        raise ValueError(f"attendance.gap_attributes {missing} are not annotated in this data set")
    rng = np.random.default_rng(config.seed)
    counts = annotations["identity"].value_counts().sort_index()
    eligible = counts.index[counts >= config.enrol_per_person + config.min_checkins].to_numpy()
    if len(eligible) < config.roster_size:
        raise ValueError(
            f"attendance.roster_size={config.roster_size}, but only {len(eligible)} identities have "
            f"the {config.enrol_per_person + config.min_checkins} photos a roster place needs "
            f"(attendance.enrol_per_person + attendance.min_checkins)"
        )
    roster = rng.permutation(eligible)[: config.roster_size]
    others = rng.permutation(np.setdiff1d(counts.index.to_numpy(), roster))
    if len(others) < config.visitors:
        raise ValueError(f"attendance.visitors={config.visitors}, but only {len(others)} identities are off the roster")
    visitors = set(others[: config.visitors])

    roles = pd.Series("background", index=annotations.index, dtype=object)
    roles[annotations["identity"].isin(visitors)] = "visitor"
    gap = (
        annotations[list(config.gap_attributes)].sum(axis=1)
        if config.gap_attributes
        else pd.Series(0, index=annotations.index)
    )
    for person in roster:
        photos = annotations.index[annotations["identity"] == person]
        # Fewest gap attributes first, ties broken at random: enrolment lacks what check-ins may show.
        order = np.lexsort((rng.random(len(photos)), gap[photos].to_numpy()))
        roles[photos] = "checkin"
        roles[photos[order[: config.enrol_per_person]]] = "enrol"
    return roles
