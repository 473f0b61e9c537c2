"""Benchmark: embedding throughput of the backbone and backbone pretraining time per epoch on faces64.

Pretraining is timed on a slice (``--batches`` batches) of the faces64 background people's photos and
extrapolated to a full epoch over all of them (the people the default `attendance` and `recognition`
params leave for pretraining). Run: ``python -m bench.recognition [--input-size 80]``.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from tests.support.shared import SHARED
from facegen.config import load_params
from facegen.data.attendance import assign_roles
from recognition.models.backbone import embed_images, load_backbone
from recognition.models.pretrain import BackbonePretrainer, PretrainSettings, identity_labels
from recognition.sets import split_background

FACES64 = SHARED / "faces64"


def background_photos(root: Path, params_file: str) -> pd.DataFrame:
    """identity, path of the photos of faces64's pretraining people (roles do not depend on attributes)."""
    params = load_params(params_file)
    table = pd.DataFrame([{"identity": p.parent.name, "path": p} for p in sorted(root.glob("*/*.jpg"))])
    attendance = params.attendance.model_copy(update={"gap_attributes": ()})
    roles = assign_roles(table, attendance)
    rec = params.recognition
    _, keep = split_background(
        table.loc[roles == "background", "identity"].unique(),
        attendance.seed,
        rec.calibration_people,
        rec.pretrain_people,
    )
    return table[table["identity"].isin(keep)].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--input-size", type=int, default=None, help="default: recognition.input_size")
    parser.add_argument("--embed-images", type=int, default=512)
    parser.add_argument("--batches", type=int, default=6, help="pretraining batches timed")
    args = parser.parse_args()
    rec = load_params(args.params).recognition
    size = args.input_size or rec.input_size
    photos = background_photos(FACES64, args.params)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(photos), max(args.embed_images, args.batches * rec.batch_size), replace=False)
    images = np.stack([np.asarray(Image.open(photos["path"][i]).convert("RGB")) for i in rows])

    model = load_backbone("none")
    embed_images(model, images[: rec.embed_batch_size], size, rec.embed_batch_size)  # warm-up
    start = time.perf_counter()
    embed_images(model, images[: args.embed_images], size, rec.embed_batch_size)
    embed_rate = args.embed_images / (time.perf_counter() - start)

    n = args.batches * rec.batch_size
    labels = identity_labels(photos["identity"].to_numpy()[rows[:n]])
    settings = PretrainSettings(size, 1, rec.batch_size, rec.lr, 0)
    with tempfile.TemporaryDirectory() as work:
        trainer = BackbonePretrainer(settings, images[:n], labels, Path(work))
        seconds = trainer.run()[0]["seconds"]
    train_rate = n / seconds
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(
        f"| embedding throughput at {size}x{size} (batch {rec.embed_batch_size}, {args.embed_images} faces64 "
        f"images) | {embed_rate:.1f} img/s |"
    )
    print(f"| pretraining at {size}x{size}, batch {rec.batch_size}: {n} images timed | {train_rate:.1f} img/s |")
    print(
        f"| pretraining epoch over the {len(photos)} photos of {photos['identity'].nunique()} faces64 background "
        f"people (extrapolated) | {len(photos) / train_rate:.0f} s/epoch |"
    )


if __name__ == "__main__":
    main()
