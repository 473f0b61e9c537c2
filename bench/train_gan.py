"""Training speed of the conditional GAN per profile, beside the reference DCGAN of pytorch/examples.

    python -m bench.train_gan [--profiles demo middle] [--steps 3] [--batch-size 64] [--device auto]
                              [--prepared data/prepared]

For each profile's networks (at the prepared cache's resolution, 64 x 64 for the reference; batch 64): img/s of
the conditional G + D step, of the full step with the editor fed by the trainer's in-memory loader (`sample_batch`) and,
to show whether the loader ever starves the model, of the same step on batches drawn before the timer starts (in-memory
tensors); the two alternate step by step in one process, so the machine's drift falls on both alike. And of the
reference DCGAN (pytorch/examples/dcgan, ngf = ndf = the profile's base width, BCE loss, Adam). Peak memory: CUDA
max allocated, or the peak resident set of a fresh process per case on CPU. Each case runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from facegen.config import GanConfig
from facegen.gan.inference import resolve_device


# The reference; the conditional G + D step (comparable to it); that step plus the editor, fed by the in-memory
# loader and by batches drawn in advance (equal rates: the loader does not starve the model).
CASES = ("dcgan", "cgan", "cgan+editor")


def reference_dcgan(nz: int, width: int) -> tuple[nn.Module, nn.Module]:
    """netG / netD of pytorch/examples/dcgan/main.py (64 x 64, ngf = ndf = width), DCGAN init."""
    g = nn.Sequential(
        nn.ConvTranspose2d(nz, width * 8, 4, 1, 0, bias=False),
        nn.BatchNorm2d(width * 8),
        nn.ReLU(True),
        nn.ConvTranspose2d(width * 8, width * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width * 4),
        nn.ReLU(True),
        nn.ConvTranspose2d(width * 4, width * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width * 2),
        nn.ReLU(True),
        nn.ConvTranspose2d(width * 2, width, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(True),
        nn.ConvTranspose2d(width, 3, 4, 2, 1, bias=False),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(3, width, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width * 2),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 2, width * 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width * 4),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 4, width * 8, 4, 2, 1, bias=False),
        nn.BatchNorm2d(width * 8),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(width * 8, 1, 4, 1, 0, bias=False),
        nn.Flatten(),
    )
    return g, d


def _case(kind: str, profile: str, prepared: str, steps: int, batch_size: int, device: torch.device) -> dict:
    from facegen.gan.training_loop import GanTrainer, training_tensors

    config = GanConfig(profile=profile, batch_size=batch_size, editor=kind != "cgan", out="/tmp/bench_train_gan")
    images, attributes = training_tensors(prepared, config.attributes)
    if kind == "dcgan" and images.shape[1] != 64:
        return {
            "case": kind,
            "profile": profile,
            "skipped": f"the reference DCGAN (pytorch/examples) is 64 x 64 and "
            f"{prepared} holds {images.shape[1]} px faces: pass --prepared with a 64 px cache",
        }
    feeds: dict[str, Callable[[], object]]
    if kind == "dcgan":
        feeds = {"": _dcgan_step(config, images, batch_size, device)}
    else:
        trainer = GanTrainer(config, images, attributes, config.out, device)
        feeds = {"": lambda: trainer.train_step(trainer.sample_batch())}
        if kind == "cgan+editor":
            preloaded = iter([trainer.sample_batch() for _ in range(steps)])
            feeds["preloaded_"] = lambda: trainer.train_step(next(preloaded))
    feeds[""]()  # warm-up
    seconds = dict.fromkeys(feeds, 0.0)
    for _ in range(steps):
        for name, step in feeds.items():
            _sync(device)
            started = time.perf_counter()
            step()
            _sync(device)
            seconds[name] += time.perf_counter() - started
    result: dict[str, object] = {"case": kind, "profile": profile}
    for name, total in seconds.items():
        # Significant figures, not decimals: a tiny test step (~0.02 s) rounded to 3 decimals is off by
        # up to 2.5%, enough to throw the loader slowdown derived from two such numbers off by 0.05.
        result |= {
            f"{name}s_per_step": float(f"{total / steps:.4g}"),
            f"{name}img_per_s": float(f"{batch_size * steps / total:.4g}"),
        }
    if "preloaded_" in seconds:
        result["loader_slowdown"] = round(seconds[""] / seconds["preloaded_"] - 1, 4)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return result | {"cuda_peak_mib": peak}


def _dcgan_step(config: GanConfig, images: torch.Tensor, batch_size: int, device: torch.device):
    g, d = (m.to(device) for m in reference_dcgan(config.z_dim, config.base_channels))
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999)) for m in (g, d))
    loss = nn.BCEWithLogitsLoss()
    rng = torch.Generator().manual_seed(0)

    def step() -> None:
        index = torch.randint(len(images), (batch_size,), generator=rng)
        real = images[index].to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        fake = g(torch.randn(batch_size, config.z_dim, 1, 1, device=device))
        d_loss = loss(d(real), torch.ones(batch_size, 1, device=device)) + loss(
            d(fake.detach()), torch.zeros(batch_size, 1, device=device)
        )
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = loss(d(fake), torch.ones(batch_size, 1, device=device))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", nargs="+", default=["demo", "middle", "celeba64"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--prepared", default="data/prepared", help="prepared cache to train on (64 x 64 for the reference)"
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case in this process
    args = parser.parse_args()
    device = resolve_device(args.device)
    if args.case:
        kind, profile = args.case.split(":")
        print(json.dumps(_case(kind, profile, args.prepared, args.steps, args.batch_size, device)))
        return
    for profile in args.profiles:
        for kind in CASES:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.train_gan",
                    "--case",
                    f"{kind}:{profile}",
                    "--steps",
                    str(args.steps),
                    "--batch-size",
                    str(args.batch_size),
                    "--device",
                    str(device),
                    "--prepared",
                    args.prepared,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            output = process.stdout.read()
            _, status, usage = os.wait4(process.pid, 0)
            result = json.loads(output.strip().splitlines()[-1]) if status == 0 else {"case": kind, "failed": status}
            result["peak_rss_mib"] = round(usage.ru_maxrss / 1024)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
