"""GPU profile of the distillation (issue 18): facenet distilled from the dlib teacher at 160 px on one GPU, in
one prepared run of at most 8 minutes that prints its timings and accuracy on the faces64 split.

A device machine sees neither ../shared nor dlib, and takes at most 64 MiB of files, so the data travel as one
bundle made here from the faces64 study (`dvc repro` in studies/faces64 first):

    python -m bench.gpu_distill bundle            # here: .gpu/faces64.npz (original JPEG bytes of every
                                                  # split photo and as many background photos as fit, their
                                                  # roles, attributes and teacher descriptors) and .whl/
    bash bench/gpu_check.sh                       # there (device run, carry .gpu and .whl)

`run` decodes the bundle, distils with `recognition.distill.Distiller` (CUDA, bf16 autocast) and scores the
student and the teacher on the split with `recognition.split_scores`. It also runs on CPU with tiny settings
(tests/test_bench_gpu_distill.py).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from facegen.config import load_params
from facegen.data.prepared import PreparedFaces
from recognition.distill import Distiller, DistillSettings
from recognition.embeddings import TorchEmbedder
from recognition.pretrain import identity_labels
from recognition.sets import FaceSet, attendance_sets
from recognition.split_scores import SPLIT_SETS, score_split
from recognition.teacher import read_teacher_embeddings

STUDY = Path("studies/faces64")
BUNDLE = Path(".gpu/faces64.npz")
GAP_ATTRIBUTES = ("Eyeglasses", "Smiling")


def make_bundle(study: Path, faces_root: Path, out: Path, max_mib: float) -> dict:
    """Write the split's photos and as many background photos as fit in `max_mib` (whole people, seeded order)."""
    params = load_params(study / "params.yaml")
    prepared = study / params.prepare.out
    names = ("pretrain", *SPLIT_SETS)
    sets = attendance_sets(prepared, params.attendance, params.recognition.calibration_people, names=names)
    teacher = read_teacher_embeddings(
        study / params.recognition.teacher.embeddings, len(PreparedFaces(prepared).annotations)
    )
    rows, budget = [], max_mib * 2**20
    for name in SPLIT_SETS:
        rows += [(name, r, sets[name].annotations.iloc[i]) for i, r in enumerate(sets[name].rows)]
    pretrain = sets["pretrain"]
    people = np.random.default_rng(0).permutation(pretrain.annotations["identity"].unique())
    by_person = pretrain.annotations.groupby("identity").indices
    blobs = [_jpeg(faces_root, row) for _, _, row in rows]
    used = sum(map(len, blobs))
    for person in people:
        photos = [(i, _jpeg(faces_root, pretrain.annotations.iloc[i])) for i in by_person[person]]
        size = sum(len(b) for _, b in photos)
        if used + size > budget:
            break
        used += size
        rows += [("pretrain", pretrain.rows[i], pretrain.annotations.iloc[i]) for i, _ in photos]
        blobs += [b for _, b in photos]
    offsets = np.cumsum([0, *map(len, blobs)])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        jpeg=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=offsets,
        teacher=teacher[[r for _, r, _ in rows]].astype(np.float16),
        role=np.array([n for n, _, _ in rows]),
        identity=np.array([str(a["identity"]) for _, _, a in rows]),
        **{a: np.array([int(r[a]) for _, _, r in rows], np.int8) for a in GAP_ATTRIBUTES},
    )
    roles = pd.Series([n for n, _, _ in rows]).value_counts().to_dict()
    return {
        "bundle": str(out),
        "mib": round(out.stat().st_size / 2**20, 1),
        "photos": roles,
        "background_people": int(len({str(a["identity"]) for n, _, a in rows if n == "pretrain"})),
        "background_people_in_study": int(len(people)),
    }


def _jpeg(root: Path, row: pd.Series) -> bytes:
    """The photo's original bytes: ``image_id`` is ``person/photo.jpg`` in folder sources (or a bare file name)."""
    image_id = str(row["image_id"])
    return (root / (image_id if "/" in image_id else f"{row['identity']}/{image_id}")).read_bytes()


def load_bundle(path: Path) -> tuple[dict[str, FaceSet], np.ndarray]:
    """The bundle's sets (pretrain, calibration, enrol, checkin, visitor) and its teacher descriptors."""
    data = np.load(path, allow_pickle=False)
    blob, offsets = data["jpeg"].tobytes(), data["offsets"]
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(blob[a:b])).convert("RGB")) for a, b in zip(offsets[:-1], offsets[1:])]
    )
    table = pd.DataFrame({"identity": data["identity"], **{a: data[a].astype(int) for a in GAP_ATTRIBUTES}})
    sets = {}
    for name in ("pretrain", *SPLIT_SETS):
        rows = np.flatnonzero(data["role"] == name)
        sets[name] = FaceSet(images[rows], table.iloc[rows].reset_index(drop=True), rows)
    return sets, data["teacher"].astype(np.float32)


def run(bundle: Path, settings: DistillSettings, work: Path, loader_workers: int) -> dict:
    start = time.perf_counter()
    sets, teacher = load_bundle(bundle)
    loaded = time.perf_counter() - start
    train = sets["pretrain"]
    distiller = Distiller(
        settings,
        train.images,
        teacher[train.rows],
        identity_labels(train.annotations["identity"].to_numpy()),
        work,
        loader_workers,
    )
    if distiller.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    history = distiller.run()
    embed = TorchEmbedder(distiller.model, "student", settings.input_size, batch_size=256).embed
    student = score_split({n: embed(sets[n].images) for n in SPLIT_SETS}, sets, GAP_ATTRIBUTES, 0.01)
    reference = score_split({n: teacher[sets[n].rows] for n in SPLIT_SETS}, sets, GAP_ATTRIBUTES, 0.01)
    train_seconds = sum(h["seconds"] for h in history)
    return {
        "device": torch.cuda.get_device_name() if distiller.device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "settings": settings.__dict__,
        "background_photos": len(train.images),
        "background_people": int(train.annotations["identity"].nunique()),
        "seconds": {
            "load_bundle": round(loaded, 1),
            "train": round(train_seconds, 1),
            "total": round(time.perf_counter() - start, 1),
        },
        "train_images_per_second": round(len(train.images) * len(history) / train_seconds, 1),
        "epochs": history,
        "student": {k: round(v, 4) for k, v in student.metrics.items()},
        "teacher": {k: round(v, 4) for k, v in reference.metrics.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("bundle", help="here: pack the faces64 split and teacher descriptors for a GPU machine")
    make.add_argument("--study", type=Path, default=STUDY)
    make.add_argument("--faces64", type=Path, help="folder-per-person photos (default: the study's data.folder.root)")
    make.add_argument("--out", type=Path, default=BUNDLE)
    make.add_argument("--max-mib", type=float, default=50.0, help="bundle size cap (a device call carries 64 MiB)")
    go = verbs.add_parser("run", help="there: distil and score, print JSON")
    go.add_argument("--bundle", type=Path, default=BUNDLE)
    go.add_argument("--out", type=Path, default=Path(".gpu"), help="folder for gpu_check.json and the checkpoint")
    go.add_argument("--input-size", type=int, default=160)
    go.add_argument("--epochs", type=int, default=16)
    go.add_argument("--margin-epochs", type=int, default=2)
    go.add_argument("--batch-size", type=int, default=256)
    go.add_argument("--lr", type=float, default=2e-3)
    go.add_argument("--loader-workers", type=int, default=8)
    go.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    if args.verb == "bundle":
        faces = args.faces64 or args.study / load_params(args.study / "params.yaml").data.folder.root
        print(json.dumps(make_bundle(args.study, faces, args.out, args.max_mib), indent=2))
        return
    settings = DistillSettings(
        input_size=args.input_size,
        epochs=args.epochs,
        margin_epochs=args.margin_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
    )
    result = run(args.bundle, settings, args.out / "distill_work", args.loader_workers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
