"""GPU check of the distillation (issues 18, 27): facenet distilled from the dlib teacher on landmark-aligned faces at
each student input size (80, 112, 160 px), and on the older box crops of the same faces, in one prepared run of at
most 8 minutes that prints timings and top-1 on the faces64 split and on the ownphotos split (people no model here
has seen, photos prepared as a user's). Each student is scored on faces cropped as it was trained.

A device machine sees neither ../shared nor dlib, and takes at most 64 MiB of files, so the faces travel as one
bundle made here from the two studies (`dvc repro teacher_embeddings` in studies/faces64 and studies/ownphotos
first): every face of both attendance splits and as many faces64 background people as fit, each twice as a JPEG
(quality 90): aligned (from the prepared cache) and as a box crop (faces64: the photo itself, a tight crop;
ownphotos: MTCNN's box), with the teacher's descriptor of the aligned face as the target of both.

    python -m bench.gpu_distill bundle            # here: .gpu/faces64.npz, and .whl/ (bench/gpu_check.sh prepare)
    bash bench/gpu_check.sh                       # there (device run, carry .gpu and .whl)

`run` decodes the bundle, distils with `recognition.models.distill.Distiller` (CUDA, bf16 autocast) once per input
size and scores each student and the teacher with `recognition.split_scores`. It also runs on CPU with tiny settings
(tests/test_bench_gpu_distill.py).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from facegen.config import load_params
from facegen.data.folder import FaceFolder
from facegen.data.prepared import PreparedFaces
from facegen.data.sources import cropper_for
from recognition.models.distill import Distiller, DistillSettings
from recognition.models.embeddings import TorchEmbedder
from recognition.models.pretrain import identity_labels
from recognition.sets import FaceSet, attendance_sets
from recognition.split_scores import SPLIT_SETS, score_split
from recognition.models.teacher import read_teacher_embeddings

STUDIES = {"faces64": Path("studies/faces64"), "ownphotos": Path("studies/ownphotos")}
TRAINING = "faces64"  # the study whose background people the students learn from
BUNDLE = Path(".gpu/faces64.npz")
GAP_ATTRIBUTES = ("Eyeglasses", "Smiling")
JPEG_QUALITY = 90
CROPS = ("landmarks", "box")


def _study_sets(study: Path) -> tuple[dict[str, FaceSet], np.ndarray, Callable[[pd.Series], np.ndarray | None]]:
    """The study's sets and teacher descriptors, and how to box-crop one of its faces from the original photo."""
    params = load_params(study / "params.yaml")
    prepared = study / params.prepare.out
    names = ("pretrain", *SPLIT_SETS)
    sets = attendance_sets(prepared, params.attendance, params.recognition.calibration_people, names=names)
    teacher = read_teacher_embeddings(
        study / params.recognition.teacher.embeddings, len(PreparedFaces(prepared).annotations)
    )
    photos = FaceFolder(study / params.data.folder.root)
    box = cropper_for(params.data, params.prepare.model_copy(update={"align": "box"}))
    rows = {image_id: i for i, image_id in enumerate(photos.annotations["image_id"])}

    def box_crop(row: pd.Series) -> np.ndarray | None:
        face = box(photos.load_image(rows[row["image_id"]]))
        return None if face is None else np.asarray(face, np.uint8)

    return sets, teacher, box_crop


def make_bundle(studies: dict[str, Path], out: Path, max_mib: float) -> dict:
    """Both splits' faces and as many training-study background people as fit in `max_mib` (whole people, seeded
    order), aligned and box-cropped, skipping faces the teacher could not embed."""
    blobs: dict[str, list[bytes]] = {crop: [] for crop in CROPS}
    teacher_rows, roles, identities, attributes = [], [], [], []
    skipped: dict[str, int] = {}

    def add(study: str, role: str, faces: FaceSet, rows: np.ndarray, descriptors: np.ndarray, box) -> int:
        size = 0
        for i, descriptor in zip(rows, descriptors):
            row = faces.annotations.iloc[i]
            boxed = None if np.isnan(descriptor).any() else box(row)
            if boxed is None:  # the teacher could not embed it, or MTCNN's box found no face where landmarks did
                skipped[study] = skipped.get(study, 0) + 1
                continue
            for crop, image in (("landmarks", faces.images[i]), ("box", boxed)):
                blobs[crop].append(_jpeg(image))
                size += len(blobs[crop][-1])
            teacher_rows.append(descriptor)
            roles.append(f"{study}:{role}")
            identities.append(f"{study}:{row['identity']}")
            attributes.append([int(row[a]) for a in GAP_ATTRIBUTES])
        return size

    used, background = 0, {}
    for study, folder in studies.items():
        sets, teacher, box = _study_sets(folder)
        for name in SPLIT_SETS:
            faces = sets[name]
            used += add(study, name, faces, np.arange(len(faces.images)), teacher[faces.rows], box)
        background[study] = (sets["pretrain"], teacher, box)
    pretrain, teacher, box = background[TRAINING]
    people = np.random.default_rng(0).permutation(pretrain.annotations["identity"].unique())
    by_person = pretrain.annotations.groupby("identity").indices
    budget, kept_people = max_mib * 2**20, 0
    for person in people:
        if used > budget:
            break
        rows = by_person[person]
        used += add(TRAINING, "pretrain", pretrain, rows, teacher[pretrain.rows[rows]], box)
        kept_people += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        **{f"{crop}_jpeg": np.frombuffer(b"".join(blobs[crop]), np.uint8) for crop in CROPS},
        **{f"{crop}_offsets": np.cumsum([0, *map(len, blobs[crop])]) for crop in CROPS},
        teacher=np.asarray(teacher_rows, np.float16),
        role=np.array(roles),
        identity=np.array(identities),
        **{a: np.array([r[i] for r in attributes], np.int8) for i, a in enumerate(GAP_ATTRIBUTES)},
    )
    return {
        "bundle": str(out),
        "mib": round(out.stat().st_size / 2**20, 1),
        "faces": pd.Series(roles).value_counts().to_dict() | {f"{s}:skipped": n for s, n in skipped.items()},
        "background_people": kept_people,
        "background_people_in_study": int(len(people)),
    }


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def load_bundle(path: Path, crop: str) -> tuple[dict[str, dict[str, FaceSet]], np.ndarray]:
    """Per study, its sets (pretrain where it has one, calibration, enrol, checkin, visitor) as `crop` faces; the
    teacher descriptors."""
    data = np.load(path, allow_pickle=False)
    blob, offsets = data[f"{crop}_jpeg"].tobytes(), data[f"{crop}_offsets"]
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(blob[a:b])).convert("RGB")) for a, b in zip(offsets[:-1], offsets[1:])]
    )
    table = pd.DataFrame({"identity": data["identity"], **{a: data[a].astype(int) for a in GAP_ATTRIBUTES}})
    studies: dict[str, dict[str, FaceSet]] = {}
    for role in np.unique(data["role"]):
        study, name = str(role).split(":")
        rows = np.flatnonzero(data["role"] == role)
        studies.setdefault(study, {})[name] = FaceSet(images[rows], table.iloc[rows].reset_index(drop=True), rows)
    return studies, data["teacher"].astype(np.float32)


def run(bundle: Path, settings: DistillSettings, students: list[str], work: Path, loader_workers: int) -> dict:
    """One student per `crop@size` (e.g. landmarks@160, box@80), each scored on every study's split, cropped as
    it was trained, beside the teacher."""
    start = time.perf_counter()
    bundles = {crop: load_bundle(bundle, crop) for crop in CROPS}
    loaded = time.perf_counter() - start
    studies, teacher = bundles["landmarks"]
    train = studies[TRAINING]["pretrain"]
    labels = identity_labels(train.annotations["identity"].to_numpy())
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    result = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
        "background_faces": len(train.images),
        "background_people": int(train.annotations["identity"].nunique()),
        "load_bundle_seconds": round(loaded, 1),
        "teacher": {
            study: _score(sets, {n: teacher[sets[n].rows] for n in SPLIT_SETS}) for study, sets in studies.items()
        },
        "students": {},
    }
    for name in students:
        crop, size = name.split("@")
        studies, _ = bundles[crop]
        train = studies[TRAINING]["pretrain"]
        sized = DistillSettings(**{**settings.__dict__, "input_size": int(size)})
        distiller = Distiller(sized, train.images, teacher[train.rows], labels, work / name, loader_workers)
        history = distiller.run()
        embed = TorchEmbedder(distiller.model, "student", int(size), batch_size=256).embed
        train_seconds = sum(h["seconds"] for h in history)
        result["students"][name] = {
            "settings": sized.__dict__,
            "train_seconds": round(train_seconds, 1),
            "train_images_per_second": round(len(train.images) * len(history) / train_seconds, 1),
            "final_teacher_cosine": history[-1]["teacher_cosine"],
            **{study: _score(sets, {n: embed(sets[n].images) for n in SPLIT_SETS}) for study, sets in studies.items()},
        }
        print(json.dumps({name: result["students"][name]}, indent=2), flush=True)
    result["total_seconds"] = round(time.perf_counter() - start, 1)
    return result


def _score(sets: dict[str, FaceSet], embeddings: dict[str, np.ndarray]) -> dict:
    score = score_split(embeddings, sets, GAP_ATTRIBUTES, 0.01)
    return {k: round(v, 4) for k, v in score.metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("bundle", help="here: pack both splits, background faces and teacher descriptors")
    make.add_argument("--faces64", type=Path, default=STUDIES["faces64"])
    make.add_argument("--ownphotos", type=Path, default=STUDIES["ownphotos"])
    make.add_argument("--out", type=Path, default=BUNDLE)
    make.add_argument("--max-mib", type=float, default=50.0, help="bundle size cap (a device call carries 64 MiB)")
    go = verbs.add_parser("run", help="there: distil at each input size and score, print JSON")
    go.add_argument("--bundle", type=Path, default=BUNDLE)
    go.add_argument("--out", type=Path, default=Path(".gpu"), help="folder for gpu_check.json and the checkpoints")
    go.add_argument(
        "--students",
        nargs="+",
        default=["landmarks@80", "landmarks@112", "landmarks@160", "box@80"],
        help="crop@input_size of each student (crop: landmarks or box)",
    )
    go.add_argument("--epochs", type=int, default=12)
    go.add_argument("--margin-epochs", type=int, default=1)
    go.add_argument("--batch-size", type=int, default=256)
    go.add_argument("--lr", type=float, default=2e-3)
    go.add_argument("--loader-workers", type=int, default=8)
    go.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args()
    if args.verb == "bundle":
        print(json.dumps(make_bundle({"faces64": args.faces64, "ownphotos": args.ownphotos}, args.out, args.max_mib)))
        return
    settings = DistillSettings(
        epochs=args.epochs,
        margin_epochs=args.margin_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device=args.device,
    )
    result = run(args.bundle, settings, args.students, args.out / "distill_work", args.loader_workers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
