"""Stage `augment_faces`: the GAN faces the augmentation study adds, each judged by the teacher (issue 19).

Makes, with the study's generator (`generate.checkpoint`, trained by `train_gan` on the background people):
- edits of every enrolment photo of every roster draw towards `augmentation.primary_attribute`, at each of
  `augmentation.edit_strengths` (ranked per photo: teacher-verified, flipped, strongest), and each photo's
  reconstruction (the editor with its attributes unchanged: the artefact control);
- `augmentation.background_edits` background photos without `augmentation.primary_attribute`, given it;
- `augmentation.synthetic_faces` generator samples, half with that attribute;
- with `augmentation.second_editor` (e.g. studies/celeba64's identity editor), its edits of every enrolment photo
  too, ranked alike (column `editor`: its name; `own` for the study's generator);
- for each editor of `augmentation.confined`, its edits once more kept inside the attribute's band, the photo
  elsewhere (`sampling.confine_edits`; column `editor`: its name + `_confined`).

Writes `augmentation.out` (data/augment/: images.npy, faces.parquet, teacher.npy, meta.json), the metrics
`metrics/augment_faces.json` (verified and flipped shares per strength, the reconstructions' verified share) and a
grid of sources, their best edits, their reconstructions and the other editors' best edits, `plots/augment_edits.png`.
Run by `dvc repro augment_faces`, or standalone: `python -m pipelines.augment_faces [--params FILE]`.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from prefect import flow, task

from facegen.config import CONFINED, OWN_EDITOR, AugmentationConfig, Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel, save_grid
from facegen.io import write_json
from facegen.paths import AUGMENT_FACES_GRID, AUGMENT_FACES_METRICS
from pipelines import run_from_command_line
from recognition.models.embeddings import EmbeddingCache
from recognition.sets import attendance_sets
from recognition.models.teacher import DlibTeacher, cache_folder, read_teacher_embeddings
from recognition.augmentation.verified_edits import (
    RECONSTRUCTION_KIND,
    MadeFaces,
    background_edits,
    concatenate,
    enrolment_edits,
    generator_samples,
    reconstructions,
    teacher_threshold,
    write_made_faces,
)

GRID_SOURCES = 8


@task
def make_faces(params: Params) -> dict:
    aug, rec = params.augmentation, params.recognition
    start = time.perf_counter()
    model = FaceModel.load(params.generate.checkpoint)
    second = second_editor(aug, model.resolution) if aug.second_editor else None  # refused before any work
    teacher_all = read_teacher_embeddings(rec.teacher.embeddings, len(PreparedFaces(params.prepare.out).annotations))
    teacher = EmbeddingCache(cache_folder(aug.out), DlibTeacher(rec.teacher.workers))
    draws = [
        attendance_sets(params.prepare.out, params.attendance, rec.calibration_people, draw=k)
        for k in range(aug.roster_draws)
    ]
    calibration = draws[0]["calibration"]
    threshold = teacher_threshold(
        teacher_all[calibration.rows], calibration.annotations["identity"].to_numpy(), rec.far
    )
    enrol_rows = np.unique(np.concatenate([d["enrol"].rows for d in draws]))
    faces = PreparedFaces(params.prepare.out)
    everyone, table = faces.images, faces.annotations.reset_index(drop=True)
    enrol_images = np.ascontiguousarray(everyone[enrol_rows])
    editors = {OWN_EDITOR: model} | ({aug.second_editor.name: second} if second is not None else {})
    editors |= {name + CONFINED: editors[name].confined() for name in aug.confined}
    sources, descriptors = table.iloc[enrol_rows], teacher_all[enrol_rows]
    parts = [
        enrolment_edits(
            editor,
            teacher,
            enrol_images,
            sources,
            descriptors,
            [aug.primary_attribute],
            aug.edit_strengths,
            threshold,
            editor=name,
        )
        for name, editor in editors.items()
    ]
    parts.append(reconstructions(model, teacher, enrol_images, sources, descriptors, threshold))
    background = draws[0]["pretrain"]
    rng = np.random.default_rng(params.attendance.seed)
    without = np.flatnonzero(background.annotations[aug.primary_attribute].to_numpy() == 0)
    chosen = np.sort(rng.choice(without, min(aug.background_edits, len(without)), replace=False))
    if len(chosen):
        parts.append(
            background_edits(
                model,
                teacher,
                background.images[chosen],
                background.annotations.iloc[chosen],
                teacher_all[background.rows[chosen]],
                aug.primary_attribute,
                params.sampling.edit_strength,
                threshold,
            )
        )
    if aug.synthetic_faces:
        rows = rng.choice(len(background.images), aug.synthetic_faces, replace=False)
        real = background.annotations.iloc[rows][list(model.attributes)].to_numpy()
        parts.append(generator_samples(model, teacher, real, aug.primary_attribute, params.attendance.seed))
    meta = {"threshold": threshold, "far": rec.far, "checkpoint_sha256": model.checkpoint_sha256}
    if second is not None:
        meta["second_editor"] = {"name": aug.second_editor.name, "checkpoint_sha256": second.checkpoint_sha256}
    meta["confined"] = list(aug.confined)
    made = concatenate(parts)
    write_made_faces(aug.out, made, meta)
    grid, per_source = _grid(made, everyone, table)
    save_grid(grid, AUGMENT_FACES_GRID, nrow=per_source)
    return _summary(made, threshold, rec.far, time.perf_counter() - start)


def second_editor(settings: AugmentationConfig, resolution: int) -> FaceModel:
    """`augmentation.second_editor`'s generator, refused unless it edits faces of this size and has the primary
    attribute."""
    editor = settings.second_editor
    try:
        model = FaceModel.load(editor.checkpoint)
    except FileNotFoundError:  # FaceModel.load's own message names `dvc repro train_gan` of this study
        raise FileNotFoundError(
            f"augmentation.second_editor.checkpoint {editor.checkpoint} does not exist: train it first (for "
            "../celeba64/models/gan/checkpoint.pt: `dvc repro ../celeba64/dvc.yaml:train_gan`) or set "
            "augmentation.second_editor: null"
        ) from None
    if model.resolution != resolution or settings.primary_attribute not in model.attributes:
        raise ValueError(
            f"augmentation.second_editor {editor.checkpoint}: edits {model.resolution} px faces with attributes "
            f"{list(model.attributes)}; this study needs {resolution} px and {settings.primary_attribute}"
        )
    return model


def _grid(made: MadeFaces, everyone: np.ndarray, table: pd.DataFrame) -> tuple[np.ndarray, int]:
    """Rows of: a source enrolment photo, its best edit, its reconstruction, then each other editor's best edit;
    the tiles and the row length."""
    made_table = made.table
    best_edits = made_table[(made_table["rank"] == 0) & (made_table["kind"] == "enrolment_edit")]
    others = [name for name in best_edits["editor"].unique() if name != OWN_EDITOR]
    columns = [
        best_edits[best_edits["editor"] == OWN_EDITOR],
        made_table[(made_table["editor"] == OWN_EDITOR) & (made_table["kind"] == RECONSTRUCTION_KIND)],
        *(best_edits[best_edits["editor"] == name] for name in others),
    ]
    sources = columns[0]["source_image"].drop_duplicates().iloc[:GRID_SOURCES]
    row_of = dict(zip(table["image_id"].astype(str), range(len(table))))
    tiles = []
    for source in sources:
        tiles.append(everyone[row_of[source]])
        tiles.extend(made.images[c.index[c["source_image"] == source][0]] for c in columns)
    return np.stack(tiles), 1 + len(columns)


def _by_strength(edits: pd.DataFrame) -> dict:
    """attribute -> strength -> mean verified, flipped and similarity of these edits."""
    means = edits.groupby(["attribute", "strength"])[["verified", "flipped", "similarity"]].mean().round(4)
    return {a: {f"{s:g}": row.to_dict() for (_, s), row in group.iterrows()} for a, group in means.groupby(level=0)}


def _summary(made: MadeFaces, threshold: float, far: float, seconds: float) -> dict:
    table = made.table
    edits = table[table["kind"] == "enrolment_edit"]
    own = edits[edits["editor"] == OWN_EDITOR]
    summary = {
        "teacher_threshold": round(threshold, 4),
        "threshold_far": far,
        "enrolment_photos": int(own["source_image"].nunique()),
        "enrolment_edits": _by_strength(own),
    }
    summary["other_editors"] = {
        name: {"enrolment_edits": _by_strength(theirs)}
        for name, theirs in edits[edits["editor"] != OWN_EDITOR].groupby("editor", sort=False)
    }
    rebuilt = table[table["kind"] == RECONSTRUCTION_KIND]
    summary["reconstructions"] = {
        "made": len(rebuilt),
        "verified": round(float(rebuilt["verified"].mean()), 4) if len(rebuilt) else None,
        "similarity": round(float(rebuilt["similarity"].mean()), 4) if len(rebuilt) else None,
    }
    for kind in ("background_edit", "sample"):
        rows = table[table["kind"] == kind]
        summary[kind] = {
            "made": len(rows),
            "verified": int(rows["verified"].sum()),
            "attribute_present": round(float(rows["flipped"].mean()), 4) if len(rows) else None,
        }
    summary["seconds"] = round(seconds, 1)
    return json.loads(json.dumps(summary))


@flow(name="augment_faces", log_prints=True)
def augment_faces_flow(params_file: str = "params.yaml") -> dict:
    summary = make_faces(load_params(params_file))
    write_json(AUGMENT_FACES_METRICS, summary)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    run_from_command_line(augment_faces_flow, __doc__)
