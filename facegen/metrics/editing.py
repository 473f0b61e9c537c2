"""Edits judged by networks the editor was not trained against, one row per judged face (issue 29).

For every conditioned attribute each source photo is edited to flip it, at every strength (kind ``edit``). Two
references are judged the same way: the source photo itself (``noop``: what any measure gives a face nothing was
done to) and the editor's output with every attribute unchanged (``reconstruction``: what the editor does to a face
besides the attribute). The attribute judge (an :class:`AttributeClassifier` trained on real faces of people the
generators never met) says whether the face shows the requested value. Each identity judge (any ``embed``, e.g.
the dlib teacher and Fisherfaces) gives the cosine to the source photo and says whether the face is verified as
the person: against the source photo, and against the person's *other* photos (verified by at least half of
them). A face a judge finds no face in counts as not verified.

:func:`editing_people` splits the people three ways, so generators, judges and edited photos never share a person.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from facegen.config import EditingConfig, NetTraining
from facegen.gan.inference import FaceModel
from facegen.metrics.attribute_classifier import AttributeClassifier
from facegen.metrics.control import check_judged, requests
from facegen.metrics.convnet import holdout_split
from facegen.metrics.identity import Embed, cosine

KINDS = ("noop", "reconstruction", "edit")
BASE_COLUMNS = ("kind", "attribute", "strength", "source", "identity", "flipped")
THRESHOLD_GRID = np.round(np.linspace(0.0, 1.0, 41), 3)  # the similarity curves' thresholds


@dataclass(frozen=True)
class EditingPeople:
    """Row indices of the generators' people, the judges' people and the held-out (edited) people."""

    generator: np.ndarray
    judge: np.ndarray
    held_out: np.ndarray


def editing_people(
    identities: np.ndarray, holdout_fraction: float, judge_fraction: float, seed: int, excluded: frozenset[str]
) -> EditingPeople:
    """Three disjoint groups of people: ``holdout_fraction`` of them held out (edited and scored), then
    ``judge_fraction`` of the rest for the judges, the others for the generators (``judge_fraction`` 0: the judges
    share the generators' people, as before issue 29). People in ``excluded`` are in none."""
    identities = np.asarray(identities).astype(str)
    rows = np.flatnonzero(~np.isin(identities, sorted(excluded)))
    rest, held_out = holdout_split(len(rows), holdout_fraction, seed, identities[rows])
    if judge_fraction == 0:
        return EditingPeople(rows[rest], rows[rest], rows[held_out])
    generator, judge = holdout_split(len(rest), judge_fraction, seed + 1, identities[rows][rest])
    return EditingPeople(rows[rest][generator], rows[rest][judge], rows[held_out])


def study_people(identities: np.ndarray, judge: NetTraining, editing: EditingConfig) -> EditingPeople:
    """The groups of a study's settings: the judge's hold-out (``evaluate.classifier``), ``editing.judge_fraction``,
    and nobody with a folder in ``editing.exclude_folder``."""
    excluded: frozenset[str] = frozenset()
    if editing.exclude_folder is not None:
        try:
            excluded = frozenset(e.name for e in os.scandir(editing.exclude_folder) if e.is_dir())
        except OSError as err:
            raise ValueError(f"editing.exclude_folder {editing.exclude_folder}: {err.strerror}") from None
    return editing_people(identities, judge.holdout_fraction, editing.judge_fraction, judge.seed, excluded)


@dataclass(frozen=True)
class IdentityJudge:
    embed: Embed  # N x R x R x 3 uint8 -> N x D (a NaN row: no face found)
    threshold: float  # "same person": cosine that ``far`` of real different-person pairs pass


@dataclass(frozen=True)
class EditJudges:
    classifier: AttributeClassifier  # the attribute judge
    identity: dict[str, IdentityJudge]  # the identity judges by name


@dataclass(frozen=True)
class Gallery:
    """Real photos of the edited people: each judged face is also compared with its person's other photos."""

    images: np.ndarray
    identities: np.ndarray
    image_ids: np.ndarray


@dataclass(frozen=True)
class EditOutcomes:
    table: pd.DataFrame  # BASE_COLUMNS + per judge similarity_, verified_, other_; one row per judged face
    examples: dict[tuple[str, float], np.ndarray]  # (attribute, strength) -> the first edits, for grids
    at_strength: dict[str, np.ndarray]  # attribute -> every edit at the kept strength (for the detector)


def judge_edits(
    model: FaceModel,
    judges: EditJudges,
    sources: np.ndarray,
    source_rows: np.ndarray,
    source_ids: np.ndarray,
    identities: np.ndarray,
    strengths: Sequence[float],
    gallery: Gallery,
    examples: int = 8,
    keep: float | None = None,
) -> EditOutcomes:
    """Every source photo (N x R x R x 3 uint8, its 0/1 attributes ``source_rows`` in ``model.attributes`` order,
    its image id and person) as it is, reconstructed, and edited to flip each attribute at each strength; every
    edit at strength ``keep`` is returned too."""
    attributes = list(model.attributes)
    check_judged(judges.classifier, attributes)
    seen = torch.from_numpy(source_rows)
    identity = _IdentityScores(judges.identity, sources, source_ids, identities, gallery)
    references = {"noop": sources, "reconstruction": model.edit(sources, seen, source_attributes=seen, strength=1.0)}
    reference_scores = {kind: identity.score(faces) for kind, faces in references.items()}
    frames, kept, at_strength = [], {}, {}
    for a, name in enumerate(attributes):
        targets = requests(source_rows, attributes, a, flip=True)
        column = judges.classifier.attributes.index(name)
        wanted = targets[:, a] > 0.5
        for kind, faces in references.items():
            shown = judges.classifier.predict_proba(faces)[:, column] > 0.5
            frames.append(_rows(kind, name, 0.0, identities, shown == wanted, reference_scores[kind]))
        for strength in strengths:
            edits = model.edit(sources, torch.from_numpy(targets), source_attributes=seen, strength=strength)
            shown = judges.classifier.predict_proba(edits)[:, column] > 0.5
            frames.append(_rows("edit", name, float(strength), identities, shown == wanted, identity.score(edits)))
            kept[name, float(strength)] = edits[:examples]
            if keep is not None and float(strength) == float(keep):
                at_strength[name] = edits
    return EditOutcomes(pd.concat(frames, ignore_index=True), kept, at_strength)


class _IdentityScores:
    """Each identity judge's view of judged faces: cosine to the source, verified by it, verified by the person's
    other gallery photos (at least half of them; NaN where the person has no other photo)."""

    def __init__(
        self,
        judges: dict[str, IdentityJudge],
        sources: np.ndarray,
        source_ids: np.ndarray,
        identities: np.ndarray,
        gallery: Gallery,
    ) -> None:
        self.judges = judges
        self.sources = {name: judge.embed(sources) for name, judge in judges.items()}
        self.gallery = {name: _unit(judge.embed(gallery.images)) for name, judge in judges.items()}
        same = np.asarray(identities).astype(str)[:, None] == gallery.identities.astype(str)[None, :]
        self.others = same & (np.asarray(source_ids).astype(str)[:, None] != gallery.image_ids.astype(str)[None, :])
        self.counts = self.others.sum(1)  # each source's other gallery photos

    def score(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, judge in self.judges.items():
            embedded = judge.embed(faces)
            similarity = cosine(self.sources[name], embedded)
            accepted = np.nan_to_num(_unit(embedded) @ self.gallery[name].T, nan=-1.0) >= judge.threshold
            share = (accepted & self.others).sum(1) / np.maximum(self.counts, 1)
            out[f"similarity_{name}"] = similarity
            out[f"verified_{name}"] = np.nan_to_num(similarity, nan=-1.0) >= judge.threshold
            out[f"other_{name}"] = np.where(self.counts > 0, share >= 0.5, np.nan)
        return out


def _rows(
    kind: str, attribute: str, strength: float, identities: np.ndarray, flipped: np.ndarray, scores: dict
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": kind,
            "attribute": attribute,
            "strength": strength,
            "source": np.arange(len(identities)),
            "identity": identities,
            "flipped": flipped,
            **scores,
        }
    )


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def judge_names(table: pd.DataFrame) -> list[str]:
    return [c.removeprefix("similarity_") for c in table.columns if c.startswith("similarity_")]


def summarise_edits(table: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """kind -> attribute -> strength -> flipped, per judge verified_ (by the source), other_ (by the person's
    other photos), similarity_mean_, no_face_; judges_agree (on other photos) and rows."""
    names = judge_names(table)
    out: dict = {}
    for (kind, attribute, strength), rows in table.groupby(["kind", "attribute", "strength"], sort=False):
        entry = {"flipped": round(float(rows["flipped"].mean()), 4), "rows": int(len(rows))}
        for n in names:
            entry |= {
                f"verified_{n}": round(float(rows[f"verified_{n}"].mean()), 4),
                f"other_{n}": _mean(rows[f"other_{n}"]),
                f"flipped_and_other_{n}": _mean(rows["flipped"] & (rows[f"other_{n}"] == 1)),
                f"similarity_mean_{n}": _mean(rows[f"similarity_{n}"]),
                f"no_face_{n}": round(float(rows[f"similarity_{n}"].isna().mean()), 4),
            }
        if len(names) == 2:
            both = rows[[f"other_{n}" for n in names]].dropna()
            entry["judges_agree"] = _mean(both.iloc[:, 0] == both.iloc[:, 1]) if len(both) else None
        out.setdefault(kind, {}).setdefault(attribute, {})[f"{strength:g}"] = entry
    return out


def similarity_curves(table: pd.DataFrame, strength: float, real_pairs: dict[str, np.ndarray]) -> dict:
    """judge -> {thresholds, then per kind (edits at ``strength``) and for real same-person pairs: the share of
    faces whose cosine to the source is at or above each threshold}."""
    out = {}
    for n in judge_names(table):
        curves: dict = {"thresholds": THRESHOLD_GRID.tolist()}
        for kind in KINDS:
            rows = table[(table["kind"] == kind) & ((table["strength"] == strength) | (kind != "edit"))]
            curves[kind] = _share_above(rows[f"similarity_{n}"].to_numpy(float))
        curves["real_same_person"] = _share_above(real_pairs[n])
        out[n] = curves
    return out


def _share_above(similarity: np.ndarray) -> list[float]:
    similarity = np.nan_to_num(np.asarray(similarity, float), nan=-1.0)
    if not len(similarity):
        return []
    return [round(float((similarity >= t).mean()), 4) for t in THRESHOLD_GRID]


def _mean(values: pd.Series) -> float | None:
    values = pd.Series(values, dtype=float).dropna()
    return round(float(values.mean()), 4) if len(values) else None
