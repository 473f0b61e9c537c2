"""Seconds per training step of the celeba64 study's identity editor and of its realism variants, side by side.

    python -m bench.editor_terms [--steps 8] [--out bench/results/editor_terms.json]

Builds a trainer for each of the study's sections `gan`, `gan_region` and `gan_feature` (studies/celeba64/params.yaml,
resolved as train_gan resolves them) on 64 px faces64 crops with random attributes, the identity network an untrained
distilled facenet at 112 px (the input size of the study's; the cost does not depend on the weights or the faces).
Steps alternate between the cases after one warm-up step each, so the machine's drift falls on all alike. What a
term costs decides how many steps of it the study can afford (issue 29: at most 3 h of CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.scale_out import cpu_model
from facegen.config import load_params
from facegen.cpu_kernels import pin_avx2_kernels
from facegen.gan.training_loop import GanTrainer
from facegen.io import write_json
from recognition.models.backbone import DistilledFacenet, GeneratorSpaceEmbedding

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("gan", "gan_region", "gan_feature")
IDENTITY_INPUT = 112  # the distilled facenet of studies/faces64 records this size


def faces(shared: Path, count: int) -> torch.Tensor:
    """``count`` 64 px faces64 crops as N x 64 x 64 x 3 uint8."""
    photos = sorted(shared.rglob("*.jpg"))[:count]
    if len(photos) < count:
        raise SystemExit(f"{shared}: {len(photos)} faces64 crops, {count} needed (see ../shared/README.md)")
    return torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in photos]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per case (after one warm-up step)")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "faces64")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "editor_terms.json")
    args = parser.parse_args()
    pin_avx2_kernels()  # the kernels the stages train with

    params = load_params(ROOT / "studies" / "celeba64" / "params.yaml")
    sections = params.gan_sections()
    images = faces(args.shared, 256)
    torch.manual_seed(0)
    identity = GeneratorSpaceEmbedding(DistilledFacenet(), IDENTITY_INPUT)
    with tempfile.TemporaryDirectory() as scratch:
        trainers = {}
        for name in SECTIONS:
            config = sections[name]
            attributes = torch.randint(0, 2, (len(images), len(config.attributes))).float()
            trainers[name] = GanTrainer(config, images, attributes, Path(scratch) / name, identity=identity)
        seconds: dict[str, list[float]] = {name: [] for name in SECTIONS}
        for step in range(args.steps + 1):
            for name, trainer in trainers.items():
                start = time.perf_counter()
                trainer.train_step(trainer.sample_batch())
                if step:  # the first is the warm-up
                    seconds[name].append(time.perf_counter() - start)
    result = {
        "machine": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": {name: sections[name].batch_size for name in SECTIONS},
        "steps": args.steps,
        "seconds_per_step": {name: round(statistics.median(s), 3) for name, s in seconds.items()},
        "relative_to_gan": {
            name: round(statistics.median(s) / statistics.median(seconds["gan"]), 2) for name, s in seconds.items()
        },
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
