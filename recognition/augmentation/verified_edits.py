"""GAN faces for augmentation, each checked by the teacher (dlib's recognizer, frozen and trained elsewhere).

- :func:`enrolment_edits`: every enrolment photo edited towards each attribute at several strengths; the
  candidates of a (photo, attribute) are ranked: verified by the teacher as the source person first, then
  flipped by the generator's own attribute head, then the strongest. An arm takes the top verified ones.
- :func:`reconstructions`: every enrolment photo through the editor with its attributes unchanged (the
  artefact control).
- :func:`background_edits`: background photos given an attribute, kept for training only where verified.
- :func:`generator_samples`: brand-new faces, half with the attribute (no identity: distillation targets only).

Verified means: cosine between the teacher's descriptors of source and edit at or above the threshold that
admits ``far`` of real different-person pairs (:func:`teacher_threshold`). :func:`write_made_faces` and
:func:`read_made_faces` store them as one folder (stage augment_faces's output).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facegen.config import OWN_EDITOR
from facegen.gan.inference import FaceModel
from facegen.io import Layout, atomic_dir
from facegen.metrics.identity import cosine
from recognition.classifier import threshold_at_far
from recognition.models.embeddings import Embedder

TABLE_COLUMNS = (
    "kind",
    "editor",
    "source_image",
    "identity",
    "attribute",
    "strength",
    "rank",
    "flipped",
    "similarity",
    "verified",
)
RECONSTRUCTION_KIND = "enrolment_reconstruction"
AUGMENT_META = "meta.json"
AUGMENT_LAYOUT = Layout(
    "augmentation faces", AUGMENT_META, ("images.npy", "faces.parquet", "teacher.npy", AUGMENT_META)
)


@dataclass(frozen=True)
class MadeFaces:
    images: np.ndarray  # N x R x R x 3 uint8
    table: pd.DataFrame  # TABLE_COLUMNS, one row per image
    teacher: np.ndarray  # N x 128 teacher descriptors (NaN: the teacher found no face)


def concatenate(parts: Sequence[MadeFaces]) -> MadeFaces:
    return MadeFaces(
        np.concatenate([p.images for p in parts]),
        pd.concat([p.table for p in parts], ignore_index=True),
        np.concatenate([p.teacher for p in parts]),
    )


def teacher_threshold(descriptors: np.ndarray, people: np.ndarray, far: float) -> float:
    """The cosine at which ``far`` of the different-person pairs among these real faces are accepted."""
    usable = ~np.isnan(descriptors).any(axis=1)
    unit, people = _unit(descriptors[usable]), np.asarray(people)[usable]
    upper = np.triu_indices(len(unit), k=1)
    different = people[upper[0]] != people[upper[1]]
    scores = (unit @ unit.T)[upper][different]
    return threshold_at_far(scores, far)


def enrolment_edits(
    model: FaceModel,
    teacher: Embedder,
    images: np.ndarray,
    sources: pd.DataFrame,
    source_descriptors: np.ndarray,
    attributes: Sequence[str],
    strengths: Sequence[float],
    threshold: float,
    editor: str = OWN_EDITOR,
) -> MadeFaces:
    """Candidates for every photo (``sources``: image_id, identity) x attribute x strength, ranked per
    (photo, attribute) in column ``rank`` (0 best); column ``editor`` names the model that made them."""
    parts = []
    seen = model.predict_attributes(images)
    for attribute in attributes:
        column = model.attributes.index(attribute)
        targets = seen.clone()
        targets[:, column] = 1 - seen[:, column]
        for strength in strengths:
            edits = model.edit(images, targets, source_attributes=seen, strength=strength)
            flipped = (model.attribute_probabilities(edits)[:, column] > 0.5).float() == targets[:, column]
            parts.append(
                (edits, _rows("enrolment_edit", sources, attribute, strength, flipped.numpy()), source_descriptors)
            )
    made = _judged(parts, teacher, threshold)
    table = made.table.assign(editor=editor, _order=np.arange(len(made.table)))
    ranked = table.sort_values(
        ["source_image", "attribute", "verified", "flipped", "strength"], ascending=[True, True, False, False, False]
    )
    ranked["rank"] = ranked.groupby(["source_image", "attribute"]).cumcount()
    return MadeFaces(made.images, ranked.sort_values("_order").drop(columns="_order"), made.teacher)


def reconstructions(
    model: FaceModel,
    teacher: Embedder,
    images: np.ndarray,
    sources: pd.DataFrame,
    source_descriptors: np.ndarray,
    threshold: float,
) -> MadeFaces:
    """Each photo through the editor with the attributes it is seen to have (nothing asked to change), judged
    by the teacher as the edits are; attribute ``none``, rank 0."""
    seen = model.predict_attributes(images)
    made = model.edit(images, seen, source_attributes=seen, strength=1.0)
    unchanged = np.zeros(len(images), bool)
    judged = _judged(
        [(made, _rows(RECONSTRUCTION_KIND, sources, "none", 0.0, unchanged), source_descriptors)], teacher, threshold
    )
    return MadeFaces(judged.images, judged.table.assign(rank=0), judged.teacher)


def background_edits(
    model: FaceModel,
    teacher: Embedder,
    images: np.ndarray,
    sources: pd.DataFrame,
    source_descriptors: np.ndarray,
    attribute: str,
    strength: float,
    threshold: float,
) -> MadeFaces:
    """Each photo given ``attribute`` (the other attributes as the generator sees them), judged by the teacher."""
    seen = model.predict_attributes(images)
    column = model.attributes.index(attribute)
    targets = seen.clone()
    targets[:, column] = 1
    edits = model.edit(images, targets, source_attributes=seen, strength=strength)
    flipped = (model.attribute_probabilities(edits)[:, column] > 0.5).numpy()
    return _judged(
        [(edits, _rows("background_edit", sources, attribute, strength, flipped), source_descriptors)],
        teacher,
        threshold,
    )


def generator_samples(
    model: FaceModel, teacher: Embedder, real_attributes: np.ndarray, attribute: str, seed: int
) -> MadeFaces:
    """One new face per row of ``real_attributes`` (N x A, the generator's attribute order), with ``attribute``
    set for the first half and cleared for the rest; identity columns empty."""
    requested = torch.tensor(real_attributes, dtype=torch.float32)
    column = model.attributes.index(attribute)
    requested[:, column] = (torch.arange(len(requested)) < len(requested) // 2).float()
    faces = model.sample(requested, seed)
    sources = pd.DataFrame({"image_id": [""] * len(faces), "identity": [""] * len(faces)})
    present = (model.attribute_probabilities(faces)[:, column] > 0.5).float() == requested[:, column]
    table = _rows("sample", sources, attribute, 0.0, present.numpy())
    descriptors = teacher.embed(faces)
    return MadeFaces(faces, table.assign(similarity=np.nan, verified=~np.isnan(descriptors).any(axis=1)), descriptors)


def _rows(kind: str, sources: pd.DataFrame, attribute: str, strength: float, flipped: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "kind": kind,
            "editor": OWN_EDITOR,
            "source_image": sources["image_id"].astype(str).to_numpy(),
            "identity": sources["identity"].astype(str).to_numpy(),
            "attribute": attribute,
            "strength": float(strength),
            "rank": -1,
            "flipped": np.asarray(flipped, bool),
        }
    )


def _judged(parts: list[tuple[np.ndarray, pd.DataFrame, np.ndarray]], teacher: Embedder, threshold: float) -> MadeFaces:
    """The parts' images with the teacher's descriptors, their similarity to the source and the verdict."""
    images = np.concatenate([p[0] for p in parts])
    descriptors = teacher.embed(images)
    similarity = cosine(descriptors, np.concatenate([p[2] for p in parts]))
    table = pd.concat([p[1] for p in parts], ignore_index=True)
    table["similarity"] = similarity
    table["verified"] = np.nan_to_num(similarity, nan=-1.0) >= threshold
    return MadeFaces(images, table[list(TABLE_COLUMNS)], descriptors)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_made_faces(folder: Path, made: MadeFaces, meta: dict) -> None:
    """images.npy, faces.parquet, teacher.npy and meta.json, as one folder written atomically."""
    with atomic_dir(folder, AUGMENT_LAYOUT) as tmp:
        np.save(tmp / "images.npy", made.images)
        made.table.to_parquet(tmp / "faces.parquet", index=False)
        np.save(tmp / "teacher.npy", made.teacher)
        (tmp / AUGMENT_META).write_text(json.dumps(meta, indent=2) + "\n")


def read_made_faces(folder: Path) -> MadeFaces:
    folder = Path(folder)
    if not (folder / AUGMENT_META).is_file():
        raise FileNotFoundError(f"{folder}: no augmentation faces here; run `dvc repro augment_faces` first")
    made = MadeFaces(
        np.load(folder / "images.npy"), pd.read_parquet(folder / "faces.parquet"), np.load(folder / "teacher.npy")
    )
    missing = [c for c in TABLE_COLUMNS if c not in made.table.columns]
    if missing or not len(made.images) == len(made.table) == len(made.teacher):
        raise ValueError(f"{folder}: columns {missing} missing or images/table/teacher lengths differ")
    return made
