"""Stage `distill_backbone`: facenet's InceptionResnetV1 distilled from the teacher, `recognition.distill.out`.

Trains on the background people of the attendance split (never the roster, the visitors or the calibration
people) and on any `recognition.distill.extra_prepared` caches, whose held-out people are left out too, as are
the people listed in `recognition.distill.exclude_people` (the people other studies evaluate on). Identities
are matched by name across caches (faces64 and the CelebA subset both name people by their CelebA identity).
Every cache must be aligned alike (`prepare.align`); the student records that alignment, and stages that embed
other faces with it refuse faces of another alignment.
Targets are the teacher's descriptors (stage teacher_embeddings; extra caches are embedded here, through the
chunk cache of this stage's work folder). Faces the teacher skipped are left out and counted.
Run by `dvc repro distill_backbone`, or standalone: `python -m pipelines.distill_backbone [--params FILE]`.
"""

from __future__ import annotations

import time
from dataclasses import fields

import numpy as np
from prefect import flow, get_run_logger, task

from facegen.config import Params, load_params
from facegen.data.photo_folder import read_people
from facegen.data.prepared import PreparedFaces
from facegen.io import write_json
from facegen.locks import output_lock
from facegen.paths import DISTILL_CURVE, DISTILL_METRICS, DISTILL_TRAINING
from pipelines import run_from_command_line
from recognition.models.distill import Distiller, DistillSettings
from recognition.models.embeddings import EmbeddingCache
from recognition.models.pretrain import identity_labels
from recognition.sets import SET_NAMES, attendance_sets
from recognition.models.teacher import DlibTeacher, read_teacher_embeddings


def training_faces(params: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(images, teacher descriptors, identities, counts) of every face the student may learn from."""
    rec = params.recognition
    sets = attendance_sets(params.prepare.out, params.attendance, rec.calibration_people, names=SET_NAMES)
    train, study = sets["pretrain"], PreparedFaces(params.prepare.out)
    teacher = read_teacher_embeddings(rec.teacher.embeddings, len(study.annotations))
    held_out = set().union(*(sets[n].annotations["identity"].astype(str) for n in SET_NAMES if n != "pretrain"))
    excluded = set().union(*(read_people(path) for path in rec.distill.exclude_people))
    people = train.annotations["identity"].astype(str).to_numpy()
    keep = ~np.isin(people, list(excluded))
    images, descriptors, identities = [train.images[keep]], [teacher[train.rows][keep]], [people[keep]]
    # a photo in both caches (faces64's crops are CelebA photos) is learnt once: by file name
    seen = set(study.annotations["image_id"].map(lambda i: i.rsplit("/", 1)[-1]))
    align = study.align
    counts = {"align": align, "background_faces": int(keep.sum()), "background_faces_excluded": int((~keep).sum())}
    if rec.distill.extra_prepared:
        # its own chunk cache, inside this stage's persisted work folder: the teacher stage's cache is its output
        cache = EmbeddingCache(DISTILL_TRAINING / "teacher_cache", DlibTeacher(rec.teacher.workers), chunk_size=2048)
    for extra in rec.distill.extra_prepared:
        faces = PreparedFaces(extra)
        if faces.align != align:
            raise ValueError(
                f"recognition.distill.extra_prepared: {extra} holds {faces.align}-aligned faces, "
                f"{params.prepare.out} {align}-aligned: prepare both with the same prepare.align"
            )
        people = faces.annotations["identity"].astype(str).to_numpy()
        duplicate = faces.annotations["image_id"].map(lambda i: i.rsplit("/", 1)[-1]).isin(seen).to_numpy()
        keep = ~np.isin(people, list(held_out | excluded)) & ~duplicate
        extra_images = faces.images  # the property copies the whole array: read it once
        if extra_images.shape[1:] != train.images.shape[1:]:
            raise ValueError(
                f"recognition.distill.extra_prepared: {extra} holds {extra_images.shape[1:]} faces, "
                f"the study {train.images.shape[1:]}: prepare it at the same data.image_size"
            )
        extra_images = np.ascontiguousarray(extra_images[keep])
        images.append(extra_images)
        descriptors.append(cache.embed(extra_images))
        identities.append(people[keep])
        counts[f"extra_faces:{extra}"] = int(keep.sum())
        counts[f"extra_faces_held_out:{extra}"] = int((~keep & ~duplicate).sum())
        counts[f"extra_faces_already_in_study:{extra}"] = int(duplicate.sum())
    images, descriptors, identities = np.concatenate(images), np.concatenate(descriptors), np.concatenate(identities)
    usable = ~np.isnan(descriptors).any(axis=1)
    counts["teacher_skipped"] = int((~usable).sum())
    return images[usable], descriptors[usable], identities[usable], counts


@task
def distill(params: Params) -> dict:
    config = params.recognition.distill
    images, descriptors, identities, counts = training_faces(params)
    labels = identity_labels(identities)
    settings = DistillSettings(**{f.name: getattr(config, f.name) for f in fields(DistillSettings)})
    distiller = Distiller(settings, images, descriptors, labels, DISTILL_TRAINING, config.loader_workers)
    if distiller.resume():
        get_run_logger().info("resuming distillation after epoch %d", distiller.epoch)
    start = time.perf_counter()
    history = distiller.run()
    distiller.write_metrics(DISTILL_CURVE)
    meta = {
        "pretrained": "distilled",
        "teacher": "dlib",
        "align": counts["align"],
        "identities": int(labels.max()) + 1,
        "images": len(labels),
    }
    distiller.save(config.out, meta)
    return {
        **meta,
        **counts,
        "device": str(distiller.device),
        "epochs": len(history),
        "final_teacher_cosine": history[-1]["teacher_cosine"],
        "seconds_per_epoch": round(sum(h["seconds"] for h in history) / len(history), 1),
        "seconds_this_run": round(time.perf_counter() - start, 1),
    }


@flow(name="distill_backbone", log_prints=True)
def distill_backbone_flow(params_file: str = "params.yaml") -> dict:
    params = load_params(params_file)
    with output_lock(params.recognition.distill.out):  # one run at a time writes the student and its checkpoint
        report = distill(params)
    write_json(DISTILL_METRICS, report)
    return report


if __name__ == "__main__":
    run_from_command_line(distill_backbone_flow, __doc__)
