"""Benchmark stage `generate`: faces per second including PNG encoding and writing, and the demo stage's time.

`python -m bench.generate [--images 4000] [--device cpu|cuda] [--candidates K] [--refine] [--stage]`: prepares
the default demo faces (64x64) in a scratch folder, makes a default-sized generator checkpoint (the `gan`
defaults; 2 training steps: weights do not change the speed) with an editor, then times
1. a `per_attribute` data set of --images faces, end to end (plan, sample, PNG, manifest, data card),
   and its parts: the generator alone and PNG encoding alone;
2. with --stage, `dvc repro -s generate` in a scratch copy of the repo with the default params
   (Prefect flow start included), then the flow once more with nothing left to do (its start-up cost).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
import yaml
from PIL import Image

from tests.support.scratch import run_in, scratch_copy
from facegen.config import DataConfig, GanConfig, Params, PrepareConfig, SamplingConfig, SyntheticDatasetConfig
from facegen.data.sources import acquire, prepare_source
from facegen.gan.inference import FaceModel
from facegen.gan.training_loop import GanTrainer, training_tensors
from facegen.paths import GAN_CHECKPOINT_NAME
from facegen.synthetic.run import SyntheticFactory


def make_inputs(root: Path, gan: GanConfig) -> tuple[Path, Path]:
    data = DataConfig(demo=DataConfig().demo.model_copy(update={"root": root / "raw"}))
    prepare = PrepareConfig(out=root / "prepared", workers=0, align="box")  # drawn demo faces: no landmarks
    prepared = prepare.out
    prepare_source(data, prepare, acquire(data))
    out = root / "gan"
    GanTrainer(gan.model_copy(update={"steps": 2}), *training_tensors(prepared, gan.attributes, "all"), out).run()
    return prepared, out / GAN_CHECKPOINT_NAME


def throughput(
    prepared: Path, checkpoint: Path, images: int, device: str, out: Path, sampling: SamplingConfig
) -> dict[str, float]:
    params = Params()
    model = FaceModel.load(checkpoint, device, sampling)
    spec = SyntheticDatasetConfig(
        name="bench", mode="per_attribute", attributes=("Eyeglasses", "Smiling"), n=images // 4
    )
    config = params.generate.model_copy(
        update={"checkpoint": checkpoint, "out": out, "device": device, "datasets": (spec,)}
    )
    factory = SyntheticFactory(config, params.attendance, prepared, model=model)
    start = time.perf_counter()
    report = factory.make(spec)
    total = time.perf_counter() - start

    attrs = model.attribute_matrix({"Smiling": 1}, config.chunk_size)
    model.sample(attrs, seed=0)
    start = time.perf_counter()
    batches = [model.sample(attrs, seed=s) for s in range(8)]
    generator_rate = 8 * config.chunk_size / (time.perf_counter() - start)
    start = time.perf_counter()
    for image in batches[0]:
        Image.fromarray(image).save(io.BytesIO(), format="PNG", compress_level=config.png_compression)
    png_rate = len(batches[0]) / (time.perf_counter() - start)
    return {
        "images": report.images,
        "seconds": round(total, 2),
        "images_per_s": round(report.images / total, 1),
        "generator_only_images_per_s": round(generator_rate, 1),
        "png_only_images_per_s": round(png_rate, 1),
        "chunk_size": config.chunk_size,
        "png_compression": config.png_compression,
        "torch_threads": torch.get_num_threads(),
    }


def stage_time(prepared: Path, checkpoint: Path, gan: GanConfig) -> dict[str, float]:
    work = scratch_copy({})
    try:
        shutil.copytree(prepared, work / "data" / "prepared")
        (work / "models" / "gan").mkdir(parents=True)
        shutil.copy(checkpoint, work / "models" / "gan" / GAN_CHECKPOINT_NAME)
        params = yaml.safe_load((work / "params.yaml").read_text())
        params.setdefault("gan", {"attributes": list(gan.attributes)})
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        start = time.perf_counter()
        run_in(work, "dvc", "repro", "-s", "generate")
        seconds = time.perf_counter() - start
        metrics = json.loads((work / "metrics" / "generate.json").read_text())
        # The flow again, every data set already complete: what is left is start-up (imports, Prefect).
        start = time.perf_counter()
        run_in(work, "python", "-m", "pipelines.generate")
        return {
            "stage_seconds": round(seconds, 1),
            "flow_with_nothing_to_do_seconds": round(time.perf_counter() - start, 1),
            **metrics,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--candidates",
        type=int,
        default=SamplingConfig().candidates,
        help="sampling.candidates: faces drawn per request (default: the code's, plain sampling)",
    )
    parser.add_argument("--refine", action="store_true", help="sampling.refine: edit each sampled face")
    parser.add_argument("--stage", action="store_true", help="also time `dvc repro -s generate` on the demo")
    args = parser.parse_args()
    gan = GanConfig()
    root = Path(tempfile.mkdtemp(prefix="facegen-bench-generate-"))
    try:
        prepared, checkpoint = make_inputs(root, gan)
        result = {
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
            "device": args.device,
            "candidates": args.candidates,
            "refine": args.refine,
            **throughput(
                prepared,
                checkpoint,
                args.images,
                args.device,
                root / "out",
                SamplingConfig(candidates=args.candidates, refine=args.refine),
            ),
        }
        if args.stage:
            result |= stage_time(prepared, checkpoint, gan)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
