"""Write one synthetic data set chunk by chunk, resumably, into its final folder only when complete.

Work happens in ``<out>/.<name>.partial/``, by one run at a time (it holds ``<out>/.<name>.lock``): each
chunk's PNGs are written, then its rows are recorded in ``chunks/<k>.parquet``. A killed run leaves only that
hidden folder; the next run with the same stamp (params, generator and data hashes) skips the recorded
chunks. When every chunk is recorded the manifest, data card and finally ``meta.json`` are written and the
folder is renamed to ``<out>/<name>/``. The same plan and generator give byte-identical files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from facegen.io import Layout, atomic_file, check_replaceable, read_json, write_json
from facegen.locks import output_lock
from facegen.mapping import Mapper
from facegen.synthetic.datacard import DATACARD_FILE, GRID_FILE, cell_balance
from facegen.synthetic.quality import QualityFilter

MANIFEST_PARQUET = "manifest.parquet"
MANIFEST_CSV = "manifest.csv"
META_FILE = "meta.json"
IMAGES_DIR = "images"
STAMP_FILE = "stamp.json"
CHUNKS_DIR = "chunks"
_CONTENTS = (IMAGES_DIR, f"{IMAGES_DIR}/*.png", MANIFEST_PARQUET, MANIFEST_CSV, DATACARD_FILE, GRID_FILE)
LAYOUT = Layout("synthetic data set", META_FILE, (*_CONTENTS, META_FILE))
PARTIAL_LAYOUT = Layout(
    "synthetic data set", STAMP_FILE, (*_CONTENTS, CHUNKS_DIR, f"{CHUNKS_DIR}/*.parquet", STAMP_FILE)
)  # being written

Renderer = Callable[[pd.DataFrame], np.ndarray]
"""Makes the faces of one chunk of plan rows: N x R x R x 3 uint8."""
Describer = Callable[[Path, pd.DataFrame, pd.DataFrame], None]
"""Writes the data card and grid into a folder, given the manifest and every planned row (with ``kept``)."""


@dataclass(frozen=True)
class DatasetJob:
    name: str
    out: Path  # the parent folder: the data set lands in out/name
    plan: pd.DataFrame
    conditioned: tuple[str, ...]
    stamp: dict  # params_sha256, generator_sha256, ...: what makes the data set what it is
    chunk_size: int
    png_compression: int

    @property
    def final(self) -> Path:
        return self.out / self.name

    @property
    def partial(self) -> Path:
        return self.out / f".{self.name}.partial"


def is_complete(job: DatasetJob) -> bool:
    """The final folder holds a data set made with exactly this stamp."""
    meta = job.final / META_FILE
    if LAYOUT.foreign(job.final) is not None or not meta.is_file():
        return False
    record = read_json(meta)
    return isinstance(record, dict) and record.get("stamp") == job.stamp


def write_dataset(
    job: DatasetJob,
    render: Renderer,
    describe: Describer,
    quality: QualityFilter | None = None,
    mapper: Mapper | None = None,
) -> dict:
    """Generate the job's faces (resuming a killed run); returns the finished data set's meta.json.

    With `mapper` (facegen.mapping: e.g. Dask workers; `render` must then be picklable) the chunks are rendered
    through it, in order; filtering and writing stay here, so the files are the same bytes.

    The run holds the data set's lock (a second run for it is refused) and replaces only a folder this
    project wrote (with its meta.json)."""
    with output_lock(job.final):
        if not is_complete(job):
            check_replaceable(job.final, LAYOUT)
            _write(job, render, describe, quality, mapper)
        return read_json(job.final / META_FILE)


def _write(
    job: DatasetJob, render: Renderer, describe: Describer, quality: QualityFilter | None, mapper: Mapper | None
) -> None:
    _open_partial(job)
    n_chunks = -(-len(job.plan) // job.chunk_size)
    done = {int(p.stem) for p in (job.partial / CHUNKS_DIR).glob("*.parquet")}
    with tqdm(
        total=len(job.plan), desc=job.name, unit="img", initial=sum(len(_chunk_rows(job, k)) for k in done)
    ) as bar:
        pending = [k for k in range(n_chunks) if k not in done]
        rendered = iter(mapper(render, [_chunk_rows(job, k) for k in pending])) if mapper is not None else None
        for k in pending:
            _write_chunk(job, k, render, quality, next(rendered) if rendered is not None else None)
            bar.update(len(_chunk_rows(job, k)))
    rows = pd.concat(
        [pd.read_parquet(job.partial / CHUNKS_DIR / f"{k:06d}.parquet") for k in range(n_chunks)], ignore_index=True
    )
    manifest = _manifest(job, rows[rows["kept"]])
    with atomic_file(job.partial / MANIFEST_PARQUET) as f:
        manifest.to_parquet(f, index=False)
    with atomic_file(job.partial / MANIFEST_CSV, "w") as f:
        manifest.to_csv(f, index=False, lineterminator="\n")
    describe(job.partial, manifest, rows)
    shutil.rmtree(job.partial / CHUNKS_DIR)
    (job.partial / STAMP_FILE).unlink()
    balance = cell_balance(rows)
    write_json(
        job.partial / META_FILE,
        {
            "name": job.name,
            "images": len(manifest),
            "planned": len(rows),
            "rejected": int((~rows["kept"]).sum()),
            "max_cell_deviation": float(balance["deviation"].max()),
            "balanced": bool(balance["balanced"].all()),
            "cells": balance.reset_index().to_dict(orient="records"),
            "stamp": job.stamp,
        },
    )
    if job.final.exists():
        shutil.rmtree(job.final)
    os.replace(job.partial, job.final)


def _open_partial(job: DatasetJob) -> None:
    """Keep a partial folder left by a killed run with the same stamp; start afresh otherwise."""
    stamp_file = job.partial / STAMP_FILE
    if job.partial.exists() and not (stamp_file.is_file() and read_json(stamp_file) == job.stamp):
        check_replaceable(job.partial, PARTIAL_LAYOUT)
        shutil.rmtree(job.partial)
    job.partial.mkdir(parents=True, exist_ok=True)
    if not stamp_file.is_file():  # first: a partial folder is known for one by its stamps
        PARTIAL_LAYOUT.stamp(job.partial)  # it becomes the data set, stamp and all
        write_json(stamp_file, job.stamp)
    (job.partial / IMAGES_DIR).mkdir(exist_ok=True)
    (job.partial / CHUNKS_DIR).mkdir(exist_ok=True)


def _chunk_rows(job: DatasetJob, k: int) -> pd.DataFrame:
    return job.plan.iloc[k * job.chunk_size : (k + 1) * job.chunk_size]


def _write_chunk(
    job: DatasetJob, k: int, render: Renderer, quality: QualityFilter | None, images: np.ndarray | None = None
) -> None:
    """Render (unless `images` came from a mapper), filter and write chunk `k`, then record its rows."""
    rows = _chunk_rows(job, k).copy()
    images = render(rows) if images is None else images
    rows["kept"] = quality.accept(images, rows) if quality is not None else True
    rows["file"] = [image_file(i) for i in rows.index]
    for image, file, kept in zip(images, rows["file"], rows["kept"], strict=True):
        if kept:
            encode_png(image, job.partial / file, job.png_compression)
    with atomic_file(job.partial / CHUNKS_DIR / f"{k:06d}.parquet") as f:
        rows.to_parquet(f)


def image_file(index: int) -> str:
    """The manifest's ``file`` of plan row ``index``."""
    return f"{IMAGES_DIR}/{index:06d}.png"


def encode_png(image: np.ndarray, path: Path, compression: int) -> None:
    Image.fromarray(image).save(path, format="PNG", compress_level=compression)


def _manifest(job: DatasetJob, rows: pd.DataFrame) -> pd.DataFrame:
    """Contract 4's columns, in order, one row per written image."""
    manifest = rows[
        ["file", *job.conditioned, "mode", "seed", "sample_index", "source_image", "identity", "edited_attribute"]
    ].reset_index(drop=True)
    manifest[list(job.conditioned)] = manifest[list(job.conditioned)].astype(np.int64)
    manifest["generator_sha256"] = job.stamp["generator_sha256"]
    manifest["params_sha256"] = job.stamp["params_sha256"]
    return manifest
