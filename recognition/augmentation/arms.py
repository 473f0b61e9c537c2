"""The arms of the augmentation study (issue 28): what each adds to a roster person's enrolment images.

- ``baseline``: nothing;
- ``classic``: one torchvision copy (flip, crop, colour jitter) per enrolment photo, redrawn per training seed;
- ``oracle``: one *real* photo of the same person wearing the primary attribute, taken from their check-ins
  (people with at least two such photos). Turn ``r`` enrols each such person's ``r``-th photo (by image id, modulo
  their count) and leaves it out of that turn's test photos: leave-one-out over ``oracle_rotations`` turns;
- ``reconstruction``: the editor's output with every attribute unchanged, one per enrolment photo (the artefact
  control: what the editor does to a face besides the attribute);
- ``gan_<attribute>_<b>``: up to ``b`` teacher-verified edits towards the attribute per enrolment photo (the best
  ranked; an unverified edit never enters), for each budget ``b`` of ``augmentation.budgets``; the first budget
  (1) is the primary arm;
- ``gan_<editor>_<attribute>_1``: the same at budget 1 from ``augmentation.second_editor`` (another study's
  editor, e.g. celeba64's, trained on other people);
- ``gan_<editor>_confined_<attribute>_1``: the same at budget 1 from an editor of ``augmentation.confined``
  (``own`` or the second editor) with its edits kept inside the attribute's band, the photo elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from facegen.config import CONFINED, OWN_EDITOR, AugmentationConfig, ClassicAugmentation
from recognition.augment import classic_copies
from recognition.augmentation.verified_edits import RECONSTRUCTION_KIND, MadeFaces
from recognition.models.embeddings import EmbeddingCache
from recognition.sets import FaceSet

BASELINE, CLASSIC, ORACLE, RECONSTRUCTION = "baseline", "classic", "oracle", "reconstruction"
OTHER_EDITOR_BUDGET = 1  # the second editor and confined edits are compared at the primary arm's budget


def gan_arm(attribute: str, budget: int, editor: str = OWN_EDITOR) -> str:
    return f"gan_{attribute}_{budget}" if editor == OWN_EDITOR else f"gan_{editor}_{attribute}_{budget}"


def other_editors(settings: AugmentationConfig) -> list[str]:
    """The GAN sources beside the study's own editor: the second editor, then each confined editor."""
    second = [settings.second_editor.name] if settings.second_editor is not None else []
    return second + [name + CONFINED for name in settings.confined]


def other_editor_arms(settings: AugmentationConfig) -> list[str]:
    """The arms of :func:`other_editors` (their verified edits at budget 1)."""
    return [gan_arm(settings.primary_attribute, OTHER_EDITOR_BUDGET, name) for name in other_editors(settings)]


def gan_arms(settings: AugmentationConfig) -> dict[str, tuple[str, int]]:
    """Each GAN arm's name -> (editor, budget): the study's editor at every budget, the other sources at 1."""
    arms = {gan_arm(settings.primary_attribute, b): (OWN_EDITOR, b) for b in settings.budgets}
    for name, arm in zip(other_editors(settings), other_editor_arms(settings)):
        arms[arm] = (name, OTHER_EDITOR_BUDGET)
    return arms


def arm_names(settings: AugmentationConfig) -> tuple[str, ...]:
    return (BASELINE, CLASSIC, ORACLE, RECONSTRUCTION, *gan_arms(settings))


def primary_arm(settings: AugmentationConfig) -> str:
    return gan_arm(settings.primary_attribute, settings.budgets[0])


def turns(arm: str, settings: AugmentationConfig) -> range:
    """The oracle's leave-one-out turns; one run for every other arm."""
    return range(settings.oracle_rotations) if arm == ORACLE else range(1)


def oracle_people(checkins: pd.DataFrame, attribute: str) -> np.ndarray:
    """Per check-in row: does its person have at least two check-ins with ``attribute`` (an oracle photo to
    enrol and one left to test)?"""
    counts = checkins.loc[checkins[attribute] == 1, "identity"].astype(str).value_counts()
    return checkins["identity"].astype(str).map(counts).fillna(0).to_numpy() >= 2


def oracle_photos(checkins: pd.DataFrame, attribute: str, turn: int) -> np.ndarray:
    """Row positions in ``checkins`` (index 0..N-1) of each eligible person's oracle photo in this turn."""
    wearing = checkins[(checkins[attribute] == 1) & oracle_people(checkins, attribute)]
    rows = [
        group.sort_values("image_id").index[turn % len(group)]
        for _, group in wearing.groupby(wearing["identity"].astype(str), sort=True)
    ]
    return np.array(sorted(rows), dtype=np.int64)


@dataclass(frozen=True)
class Draw:
    """One roster draw's sets and their trunk features."""

    index: int
    sets: dict[str, FaceSet]
    trunk: dict[str, np.ndarray]  # calibration, enrol, checkin, visitor
    enrol_flipped: np.ndarray


@dataclass(frozen=True)
class Added:
    """An arm's extra enrolment images for one draw, seed and turn: trunk features (both orientations), their
    owners, and the check-in rows they were taken from (no test photos in this run)."""

    trunk: np.ndarray
    trunk_flipped: np.ndarray
    identities: np.ndarray
    held_out: np.ndarray


class Arms:
    """Makes each arm's added images from the enrolment photos, the check-ins (oracle) and the made GAN faces."""

    def __init__(
        self,
        settings: AugmentationConfig,
        classic: ClassicAugmentation,
        trunk: EmbeddingCache,
        trunk_flipped: EmbeddingCache,
        made: MadeFaces,
    ) -> None:
        self.settings, self.classic, self.trunk, self.trunk_flipped = settings, classic, trunk, trunk_flipped
        self.gan = gan_arms(settings)
        table = made.table
        edits = (table["kind"] == "enrolment_edit") & (table["attribute"] == settings.primary_attribute)
        self.rows = np.flatnonzero((edits | (table["kind"] == RECONSTRUCTION_KIND)).to_numpy())
        self.table = table.iloc[self.rows].reset_index(drop=True)
        self.made_trunk = trunk.embed(made.images[self.rows])
        self.made_trunk_flipped = trunk_flipped.embed(made.images[self.rows])

    def added(self, arm: str, draw: Draw, seed: int, turn: int = 0) -> Added | None:
        """The arm's extra images for this draw, training seed and oracle turn; None for the baseline."""
        enrol = draw.sets["enrol"]
        owners = enrol.annotations["identity"].astype(str).to_numpy()
        none = np.zeros(0, np.int64)
        if arm == BASELINE:
            return None
        if arm == CLASSIC:
            images = classic_copies(enrol.images, 1, self.classic, seed)
            return Added(self.trunk.embed(images), self.trunk_flipped.embed(images), owners, none)
        if arm == ORACLE:
            checkins = draw.sets["checkin"]
            rows = oracle_photos(checkins.annotations, self.settings.primary_attribute, turn)
            images = np.ascontiguousarray(checkins.images[rows])
            identities = checkins.annotations["identity"].astype(str).to_numpy()[rows]
            return Added(draw.trunk["checkin"][rows], self.trunk_flipped.embed(images), identities, rows)
        rows = self._made_rows(arm, enrol)
        identities = self.table["identity"].astype(str).to_numpy()[rows]
        return Added(self.made_trunk[rows], self.made_trunk_flipped[rows], identities, none)

    def _made_rows(self, arm: str, enrol: FaceSet) -> np.ndarray:
        sources = set(enrol.annotations["image_id"].astype(str))
        mine = self.table["source_image"].astype(str).isin(sources).to_numpy()
        kind = self.table["kind"].to_numpy()
        if arm == RECONSTRUCTION:
            rows = np.flatnonzero(mine & (kind == RECONSTRUCTION_KIND))
            if len(rows) != len(sources):
                raise ValueError(
                    f"{len(rows)} reconstructions for {len(sources)} enrolment photos: augment_faces was run for "
                    "other roster draws; run `dvc repro augment_faces`"
                )
            return rows
        if arm not in self.gan:
            raise ValueError(f"unknown arm {arm!r}; this study's arms: {', '.join(arm_names(self.settings))}")
        editor, budget = self.gan[arm]
        candidates = mine & (kind == "enrolment_edit") & (self.table["editor"].to_numpy() == editor)
        missing = sources - set(self.table["source_image"].astype(str)[candidates])
        if missing:
            raise ValueError(
                f"{len(missing)} enrolment photos have no edit candidates by editor {editor!r} (e.g. "
                f"{sorted(missing)[0]}): augment_faces was run for other roster draws or editors; run "
                "`dvc repro augment_faces`"
            )
        chosen = candidates & self.table["verified"].to_numpy(bool) & (self.table["rank"].to_numpy() < budget)
        return np.flatnonzero(chosen)
