"""GPU profile of the celeba64 generator (issue 20): the `celeba64` profile with the masked editor and the identity
term (and, with ``--lambda-feature``, the feature discriminator on the frozen facenet: issue 29's lever) trained for a
fixed number of steps on one GPU, in one prepared run of at most 8 minutes that prints steps per second, attribute
control, identity kept by the edits and how often the study's real-vs-synthetic detector tells them from photos.

A device machine sees neither ../shared nor dlib and takes at most 64 MiB of files, so the data travel as one bundle
made here from the celeba64 study (`dvc repro prepare` in studies/celeba64, and the faces64 study's distilled facenet):

    python -m bench.gpu_celeba64 bundle       # here: .gpu_celeba64/celeba64.npz (JPEG bytes of as many prepared
                                              # faces as fit, their attributes and people) and the identity
                                              # network in fp16
    bash bench/gpu_check.sh celeba64          # there (device run, carry .gpu_celeba64 and .whl)

`run` trains with :class:`facegen.gan.training_loop.GanTrainer` (CUDA, autocast), then judges edits of held-out
people's photos with :func:`facegen.metrics.editing.judge_edits`: the attribute judge is trained there on the
bundle's other people; identity is the distilled facenet's (no dlib there), at its 1%-FAR threshold on real
different-person pairs; the detector (the study's ``evaluate.detector``, through its JPEG encoding) compares each
attribute's edits at the largest strength with the held-out people's photos, and again with the edits confined to
the changed attribute's band (``sampling.confine_edits``). It also runs on CPU with tiny settings
(tests/test_bench_gpu_celeba64.py).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegen.config import EvaluateConfig, GanConfig, NetTraining, SamplingConfig, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel
from facegen.gan.training_loop import GanTrainer
from facegen.metrics.attribute_classifier import train_attribute_classifier
from facegen.metrics.convnet import holdout_split
from facegen.metrics.detector import detect_edits
from facegen.metrics.editing import EditJudges, EditOutcomes, Gallery, IdentityJudge, judge_edits, summarise_edits
from facegen.metrics.identity import far_threshold
from facegen.paths import GAN_CHECKPOINT_NAME
from facegen.weights import load_checkpoint
from recognition.models.backbone import DistilledFacenet, GeneratorSpaceEmbedding, embed_images

STUDY = Path("studies/celeba64")
BUNDLE = Path(".gpu_celeba64/celeba64.npz")  # its own folder: with the distill bundle it would pass 64 MiB
IDENTITY_FILE = "celeba64_identity_fp16.pt"  # beside the bundle
JPEG_QUALITY = 95


def make_bundle(study: Path, out: Path, max_mib: float) -> dict:
    """Pack the study's prepared faces (whole people, seeded order, as many as fit beside the identity network)."""
    params = load_params(study / "params.yaml")
    attributes = list(params.gan.attributes)
    faces = PreparedFaces(study / params.prepare.out, attributes=attributes)
    weights = load_checkpoint(study / params.gan.identity_network, "facegen backbone checkpoint", ("backbone",))
    out.parent.mkdir(parents=True, exist_ok=True)
    identity_path = out.parent / IDENTITY_FILE
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in weights["backbone"].items()}, identity_path)
    budget = max_mib * 2**20 - identity_path.stat().st_size
    people = faces.annotations["identity"].to_numpy().astype(str)
    by_person = {p: np.flatnonzero(people == p) for p in np.random.default_rng(0).permutation(np.unique(people))}
    chosen, blobs, used = [], [], 0
    for rows in by_person.values():
        encoded = [_jpeg(faces.images[i]) for i in rows]
        if used + sum(map(len, encoded)) > budget:
            break
        used += sum(map(len, encoded))
        chosen += list(rows)
        blobs += encoded
    np.savez(
        out,
        jpeg=np.frombuffer(b"".join(blobs), np.uint8),
        offsets=np.cumsum([0, *map(len, blobs)]),
        identity=people[chosen],
        attributes=faces.annotations[attributes].to_numpy(np.int8)[chosen],
        names=np.array(attributes),
    )
    mib = (out.stat().st_size + identity_path.stat().st_size) / 2**20
    return {"bundle": str(out), "mib": round(mib, 1), "faces": len(chosen), "people": len(set(people[chosen]))}


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def load_bundle(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], DistilledFacenet]:
    """(images, attributes 0/1, people, attribute names, the identity network) of a bundle."""
    data = np.load(path, allow_pickle=False)
    blob, offsets = data["jpeg"].tobytes(), data["offsets"]
    images = np.stack(
        [np.asarray(Image.open(io.BytesIO(blob[a:b])).convert("RGB")) for a, b in zip(offsets[:-1], offsets[1:])]
    )
    weights = torch.load(path.parent / IDENTITY_FILE, weights_only=True)
    network = DistilledFacenet(weights["head.weight"].shape[0])
    network.load_state_dict({k: v.float() for k, v in weights.items()})
    return images, data["attributes"].astype(np.float32), data["identity"], list(data["names"]), network.eval()


def run(
    bundle: Path,
    config: GanConfig,
    judge: NetTraining,
    edits: int,
    strengths: list[float],
    device: str,
    evaluate: EvaluateConfig,
) -> dict:
    """Train ``config`` on the bundle's training people, then judge edits of ``edits`` held-out photos per attribute
    and strength (attribute judge trained with ``judge``; the detector and its encoding from ``evaluate``)."""
    start = time.perf_counter()
    images, rows, people, names, network = load_bundle(bundle)
    if config.attributes != tuple(names):
        config = config.model_copy(update={"attributes": tuple(names)})
    train, held_out = holdout_split(len(images), judge.holdout_fraction, judge.seed, people)
    loaded = time.perf_counter() - start
    identity = GeneratorSpaceEmbedding(network, config.identity_input_size)
    trainer = GanTrainer(
        config, torch.from_numpy(images[train]), torch.from_numpy(rows[train]), config.out, device, identity
    )
    if trainer.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.cuda.synchronize()
    started = time.perf_counter()
    trainer.run()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    classifier, _ = train_attribute_classifier(images, rows, names, judge, people)
    model = FaceModel.load(config.out / GAN_CHECKPOINT_NAME, device=trainer.device)
    network = network.cpu()  # judging: a few thousand faces

    def embed(x: np.ndarray) -> np.ndarray:
        return embed_images(network, x, config.identity_input_size, batch_size=256)

    threshold = far_threshold(embed(images[held_out]), people[held_out], 0.01)
    sources = np.sort(np.random.default_rng(0).choice(held_out, min(edits, len(held_out)), replace=False))
    ids = np.arange(len(images)).astype(str)  # the bundle's faces by row
    judged = partial(
        judge_edits,
        judges=EditJudges(classifier, {"facenet": IdentityJudge(embed, threshold)}),
        sources=images[sources],
        source_rows=rows[sources],
        source_ids=ids[sources],
        identities=people[sources],
        strengths=strengths,
        gallery=Gallery(images[held_out], people[held_out], ids[held_out]),
        keep=max(strengths),
    )
    outcomes, confined = judged(model), judged(model.with_sampling(SamplingConfig(confine_edits=True)))

    def detector_on_edits(judged_edits: EditOutcomes) -> dict[str, float]:
        return {"strength": max(strengths)} | {
            name: detect_edits(images[held_out], faces, evaluate, regions=())["face"]["accuracy"]
            for name, faces in judged_edits.at_strength.items()
        }

    return {
        "device": torch.cuda.get_device_name() if trainer.device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "gan": {k: v for k, v in config.model_dump(mode="json").items() if k not in ("out", "identity_network")},
        "train_faces": int(len(train)),
        "heldout_people": int(len(np.unique(people[held_out]))),
        "seconds": {
            "load_bundle": round(loaded, 1),
            "train": round(train_seconds, 1),
            "judge_and_edits": round(time.perf_counter() - started, 1),
            "total": round(time.perf_counter() - start, 1),
        },
        "steps_per_second": round(config.steps / train_seconds, 2),
        "images_per_second": round(config.steps * config.batch_size / train_seconds, 1),
        "judge_balanced_accuracy": classifier.report["heldout_balanced_accuracy"],
        "identity_threshold": round(threshold, 4),
        "identity_judge": "the distilled facenet (dlib is not on the GPU machine)",
        "edits": summarise_edits(outcomes.table)["edit"],  # the references (noop, reconstruction) are the study's
        "detector_on_edits": detector_on_edits(outcomes),
        # the same edits kept inside the changed attribute's band (sampling.confine_edits)
        "confined": {
            "edits": summarise_edits(confined.table)["edit"],
            "detector_on_edits": detector_on_edits(confined),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser("bundle", help="here: pack the prepared faces and the identity network for a GPU machine")
    make.add_argument("--study", type=Path, default=STUDY)
    make.add_argument("--out", type=Path, default=BUNDLE)
    make.add_argument("--max-mib", type=float, default=60.0, help="bundle size cap (a device call carries 64 MiB)")
    go = verbs.add_parser("run", help="there: train, judge, print JSON")
    go.add_argument("--bundle", type=Path, default=BUNDLE)
    go.add_argument("--out", type=Path, default=BUNDLE.parent, help="folder for gpu_celeba64.json and the checkpoint")
    go.add_argument("--profile", default="celeba64", help="gan.profile (tests: demo)")
    go.add_argument("--steps", type=int, default=3000)
    go.add_argument("--batch-size", type=int, default=64)
    go.add_argument("--lambda-identity", type=float, default=4.0)
    go.add_argument("--lambda-feature", type=float, default=0.0, help="the feature discriminator's weight (0: none)")
    go.add_argument("--judge-epochs", type=int, default=8)
    go.add_argument("--edits", type=int, default=300, help="held-out photos edited per attribute and strength")
    go.add_argument("--strengths", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    go.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.verb == "bundle":
        print(json.dumps(make_bundle(args.study, args.out, args.max_mib), indent=2))
        return
    config = GanConfig(
        profile=args.profile,
        steps=args.steps,
        batch_size=args.batch_size,
        sample_every=args.steps,
        checkpoint_every=args.steps,
        editor_mask=True,
        lambda_identity=args.lambda_identity,
        lambda_feature=args.lambda_feature,
        identity_network=args.bundle.parent / IDENTITY_FILE,
        out=args.out / "celeba64_gan",
    )
    judge = NetTraining(width=32, epochs=args.judge_epochs, holdout_fraction=0.2)
    evaluate = load_params(STUDY / "params.yaml").evaluate  # the study's detector and encoding
    result = run(args.bundle, config, judge, args.edits, args.strengths, args.device, evaluate)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_celeba64.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
