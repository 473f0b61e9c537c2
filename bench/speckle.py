"""Pixel-sized noise in generated faces against real ones: the measure behind ``gan.ms_downsample``.

    python -m bench.speckle [--params params.yaml] [--checkpoint models/gan/checkpoint.pt] [-n 1000]

High-frequency energy (HF) is the mean absolute difference between a face and its 3 x 3 box blur, pixels in
[0, 1]. Printed for ``n`` real prepared faces, for as many faces sampled plainly, and for faces sampled with
params.yaml's ``sampling`` group; the attribute requests are drawn from the real faces' rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from facegen.config import SamplingConfig, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel, to_tensor
from facegen.paths import GAN_CHECKPOINT_NAME


def high_frequency_energy(images: np.ndarray) -> float:
    """N x R x R x 3 uint8 -> mean |image - 3 x 3 box blur| in [0, 1] units (edges padded by replication)."""
    x = to_tensor(images).add(1).div(2)
    return float((x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: gan.out/checkpoint.pt")
    parser.add_argument("-n", type=int, default=1000)
    args = parser.parse_args()
    params = load_params(args.params)
    checkpoint = args.checkpoint or params.gan.out / GAN_CHECKPOINT_NAME
    attributes = list(FaceModel.load(checkpoint).attributes)
    faces = PreparedFaces(params.prepare.out, attributes=attributes)
    images, table = np.asarray(faces.images), faces.annotations[attributes].to_numpy(np.float32)
    rng = np.random.default_rng(0)
    real = images[np.sort(rng.choice(len(images), min(args.n, len(images)), replace=False))]
    rows = torch.from_numpy(table[rng.choice(len(table), args.n)])
    result = {"real": high_frequency_energy(real)}
    for name, sampling in (("plain", SamplingConfig()), ("sampling", params.sampling)):
        result[name] = high_frequency_energy(FaceModel.load(checkpoint, sampling=sampling).sample(rows, seed=0))
    print(json.dumps({"checkpoint": str(checkpoint), "n": args.n, "hf": {k: round(v, 4) for k, v in result.items()}}))


if __name__ == "__main__":
    main()
