"""Edits judged by networks the editor was not trained against, one row per edit.

For every conditioned attribute, each source photo is edited to flip it, at every strength. The attribute judge
(an :class:`AttributeClassifier` trained on real faces) says whether the edit shows the requested value; the
identity judge (any ``embed``, e.g. the dlib teacher handed in by the pipeline) says whether the edit is still the
source person: cosine of source and edit at or above ``threshold``. An edit the identity judge finds no face in
counts as not verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from facegen.gan.inference import FaceModel
from facegen.metrics.attribute_classifier import AttributeClassifier
from facegen.metrics.control import check_judged, requests
from facegen.metrics.identity import Embed, cosine

OUTCOME_COLUMNS = ("attribute", "strength", "source", "identity", "flipped", "similarity", "verified")


@dataclass(frozen=True)
class EditJudges:
    classifier: AttributeClassifier  # the attribute judge
    embed: Embed  # the identity judge: N x R x R x 3 uint8 -> N x D (a NaN row: no face found)
    threshold: float  # "same person": cosine that ``far`` of real different-person pairs pass


@dataclass(frozen=True)
class EditOutcomes:
    table: pd.DataFrame  # OUTCOME_COLUMNS, one row per (attribute, strength, source photo)
    examples: dict[tuple[str, float], np.ndarray]  # (attribute, strength) -> the first edits, for grids


def judge_edits(
    model: FaceModel,
    judges: EditJudges,
    sources: np.ndarray,
    source_rows: np.ndarray,
    identities: np.ndarray,
    strengths: Sequence[float],
    examples: int = 8,
) -> EditOutcomes:
    """Every source photo (N x R x R x 3 uint8, its 0/1 attributes ``source_rows`` in ``model.attributes`` order,
    its person in ``identities``) edited to flip each attribute at each strength, judged by ``judges``."""
    attributes = list(model.attributes)
    check_judged(judges.classifier, attributes)
    source_embeddings = judges.embed(sources)
    frames, kept = [], {}
    for a, name in enumerate(attributes):
        targets = requests(source_rows, attributes, a, flip=True)
        for strength in strengths:
            edits = model.edit(
                sources, torch.from_numpy(targets), source_attributes=torch.from_numpy(source_rows), strength=strength
            )
            seen = judges.classifier.predict_proba(edits)[:, judges.classifier.attributes.index(name)] > 0.5
            similarity = cosine(source_embeddings, judges.embed(edits))
            frames.append(
                pd.DataFrame(
                    {
                        "attribute": name,
                        "strength": float(strength),
                        "source": np.arange(len(sources)),
                        "identity": identities,
                        "flipped": seen == (targets[:, a] > 0.5),
                        "similarity": similarity,
                        "verified": np.nan_to_num(similarity, nan=-1.0) >= judges.threshold,
                    }
                )
            )
            kept[name, float(strength)] = edits[:examples]
    return EditOutcomes(pd.concat(frames, ignore_index=True), kept)


def summarise_edits(table: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """attribute -> strength -> flipped, verified, flipped_and_verified (shares), similarity_mean, no_face, edits."""
    out: dict = {}
    for (name, strength), rows in table.groupby(["attribute", "strength"], sort=False):
        out.setdefault(name, {})[f"{strength:g}"] = {
            "flipped": round(float(rows["flipped"].mean()), 4),
            "verified": round(float(rows["verified"].mean()), 4),
            "flipped_and_verified": round(float((rows["flipped"] & rows["verified"]).mean()), 4),
            "similarity_mean": round(float(rows["similarity"].mean()), 4),
            "no_face": round(float(rows["similarity"].isna().mean()), 4),
            "edits": int(len(rows)),
        }
    return out
