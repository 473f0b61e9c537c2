"""Stage `teacher_embeddings`: the teacher's (dlib's) 128-d descriptor of every prepared face, computed once.

Writes `recognition.teacher.embeddings` (default data/teacher/): `embeddings.npy` (N x 128 float32, row i is
prepared face i; NaN where the teacher found no landmarks), `skipped.csv` (those faces and why) and
`meta.json`. Chunks are cached under `<embeddings>_cache/` (persisted by dvc), so a killed run resumes.
Run by `dvc repro teacher_embeddings`, or standalone: `python -m pipelines.teacher_embeddings [--params FILE]`.
"""

from __future__ import annotations

import time

import numpy as np
from prefect import flow, task

from facegen.config import Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.io import write_json
from facegen.mapping import Mapper
from facegen.paths import TEACHER_METRICS
from pipelines import run_from_command_line
from pipelines.scale_out import run_scaled_out
from recognition.models.embeddings import EmbeddingCache
from recognition.models.teacher import SKIPPED_FILE, DlibTeacher, cache_folder, write_teacher_embeddings


@task
def embed_prepared(params: Params, mapper: Mapper | None = None) -> dict:
    config = params.recognition.teacher
    faces = PreparedFaces(params.prepare.out)
    images = faces.images
    teacher = DlibTeacher(workers=config.workers, mapper=mapper)
    cache = EmbeddingCache(cache_folder(config.embeddings), teacher, chunk_size=2048)
    start = time.perf_counter()
    embeddings = cache.embed(images)
    seconds = time.perf_counter() - start
    skipped = np.flatnonzero(np.isnan(embeddings).any(axis=1))
    reasons = teacher.skip_reasons(images[skipped]) if len(skipped) else []
    table = faces.annotations.iloc[skipped][["image_id", "identity"]].assign(reason=reasons)
    meta = {
        "faces": len(images),
        "embedded": len(images) - len(skipped),
        "skipped": len(skipped),
        "fingerprint": teacher.fingerprint,
        "prepared": str(params.prepare.out),
    }
    write_teacher_embeddings(config.embeddings, embeddings, table, meta)
    return {**meta, "seconds": round(seconds, 1), "cached_chunks": cache.hits, "computed_chunks": cache.misses}


@flow(name="teacher_embeddings", log_prints=True)
def teacher_embeddings_flow(params_file: str = "params.yaml") -> dict:
    params = load_params(params_file)
    report = run_scaled_out(params.compute, embed_prepared, params)  # the output folder is written under its lock
    write_json(TEACHER_METRICS, report)
    print(
        f"teacher: {report['embedded']} of {report['faces']} faces embedded, {report['skipped']} skipped "
        f"(listed in {SKIPPED_FILE})"
    )
    return report


if __name__ == "__main__":
    run_from_command_line(teacher_embeddings_flow, __doc__)
