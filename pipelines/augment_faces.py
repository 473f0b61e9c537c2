"""Stage `augment_faces`: the GAN faces the augmentation study adds, each judged by the teacher (issue 19).

Makes, with the study's generator (`generate.checkpoint`, trained by `train_gan` on the background people):
- edits of every enrolment photo of every roster draw towards `augmentation.primary_attribute`, at each of
  `augmentation.edit_strengths` (ranked per photo: teacher-verified, flipped, strongest), and each photo's
  reconstruction (the editor with its attributes unchanged: the artefact control);
- `augmentation.background_edits` background photos without `augmentation.primary_attribute`, given it;
- `augmentation.synthetic_faces` generator samples, half with that attribute.

Writes `augmentation.out` (data/augment/: images.npy, faces.parquet, teacher.npy, meta.json), the metrics
`metrics/augment_faces.json` (verified and flipped shares per strength, the reconstructions' verified share) and a
grid of sources, their best edits and their reconstructions, `plots/augment_edits.png`.
Run by `dvc repro augment_faces`, or standalone: `python -m pipelines.augment_faces [--params FILE]`.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from prefect import flow, task

from facegen.config import Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel, save_grid
from facegen.io import write_json
from facegen.paths import AUGMENT_FACES_GRID, AUGMENT_FACES_METRICS
from pipelines import run_from_command_line
from recognition.embeddings import EmbeddingCache
from recognition.sets import attendance_sets
from recognition.teacher import DlibTeacher, cache_folder, read_teacher_embeddings
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
    parts = [
        enrolment_edits(
            model,
            teacher,
            enrol_images,
            table.iloc[enrol_rows],
            teacher_all[enrol_rows],
            [aug.primary_attribute],
            aug.edit_strengths,
            threshold,
        ),
        reconstructions(model, teacher, enrol_images, table.iloc[enrol_rows], teacher_all[enrol_rows], threshold),
    ]
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
    made = concatenate(parts)
    meta = {"threshold": threshold, "far": rec.far, "checkpoint_sha256": model.checkpoint_sha256}
    write_made_faces(aug.out, made, meta)
    save_grid(_grid(made, everyone, table), AUGMENT_FACES_GRID, nrow=3)
    return _summary(made, threshold, rec.far, time.perf_counter() - start)


def _grid(made: MadeFaces, everyone: np.ndarray, table: pd.DataFrame) -> np.ndarray:
    """Rows of: a source enrolment photo, its best edit, its reconstruction."""
    kinds = made.table["kind"].isin(["enrolment_edit", RECONSTRUCTION_KIND])
    edits = made.table[kinds & (made.table["rank"] == 0)]
    sources = edits["source_image"].drop_duplicates().iloc[:GRID_SOURCES]
    row_of = dict(zip(table["image_id"].astype(str), range(len(table))))
    tiles = []
    for source in sources:
        tiles.append(everyone[row_of[source]])
        tiles.extend(made.images[i] for i in edits.index[edits["source_image"] == source])
    return np.stack(tiles)


def _summary(made: MadeFaces, threshold: float, far: float, seconds: float) -> dict:
    table = made.table
    edits = table[table["kind"] == "enrolment_edit"]
    by_strength = edits.groupby(["attribute", "strength"])[["verified", "flipped", "similarity"]].mean().round(4)
    summary = {
        "teacher_threshold": round(threshold, 4),
        "threshold_far": far,
        "enrolment_photos": int(edits["source_image"].nunique()),
        "enrolment_edits": {
            a: {f"{s:g}": row.to_dict() for (_, s), row in group.iterrows()}
            for a, group in by_strength.groupby(level=0)
        },
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
