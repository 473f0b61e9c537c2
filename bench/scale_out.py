"""prepare on Dask (issue 30): photos/s of MTCNN detection + alignment in one process and on a Dask LocalCluster of 1
and 2 workers, and whether the three give the same bytes.

    python -m bench.scale_out [--photos 300] [--out bench/results/scale_out.json]

The photos are the first `photos` CelebA photos (178 x 218) of ../shared/celeba's zip, one folder per photo, aligned
with MTCNN's landmarks at 64 px (``prepare.align: landmarks``) by `prepare_faces`. Every run has one torch thread per
process: the local run is `prepare_faces(workers=0)` in this process; the Dask runs are the prepare stage's path
(pipelines.scale_out.run_scaled_out: a subflow on prefect-dask's DaskTaskRunner, one Prefect task per chunk of 32
photos) with ``compute.dask_workers`` 1 and 2. photos/s counts from the start of `prepare_faces` to its end (the
cluster is already up; its start is reported apart). Writes JSON (machine, date, command, numbers) to --out.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from PIL import Image
from prefect import flow, task

from facegen.config import ComputeConfig
from facegen.cpu_kernels import pin_avx2_kernels
from facegen.data.folder import FaceFolder
from facegen.data.prepare import LandmarkAlign, prepare_faces
from pipelines import stage_settings
from pipelines.scale_out import run_scaled_out
from tests.support.shared import SHARED


def make_photos(celeba_zip: Path, folder: Path, photos: int) -> None:
    with zipfile.ZipFile(celeba_zip) as zf:
        for name in sorted(n for n in zf.namelist() if n.endswith(".jpg"))[:photos]:
            (folder / Path(name).stem).mkdir(parents=True)
            Image.open(io.BytesIO(zf.read(name))).save(folder / Path(name).stem / "photo.jpg", quality=95)


@task
def timed_prepare(people: Path, out: Path, mapper=None) -> dict:
    start = time.perf_counter()
    report = prepare_faces(FaceFolder(people), out, LandmarkAlign(64), workers=0, mapper=mapper)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "written": report.images_written, "photos": report.images_in}


@flow(validate_parameters=False)
def bench_flow(people: Path, out: Path, compute: ComputeConfig) -> dict:
    return run_scaled_out(compute, timed_prepare, people, out)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("bench/results/scale_out.json"))
    parser.add_argument("--note", default="", help="recorded as is, e.g. what else ran on the machine")
    args = parser.parse_args()
    pin_avx2_kernels()
    torch.set_num_threads(1)  # one thread per process everywhere: the local run and each worker alike
    runs = {}
    with tempfile.TemporaryDirectory() as tmp, stage_settings():
        people = Path(tmp) / "people"
        make_photos(SHARED / "celeba" / "img_align_celeba.zip", people, args.photos)
        LandmarkAlign(64)(FaceFolder(people).load_image(0))  # warm-up: MTCNN's weights, torch's first calls
        configs = {
            "local": ComputeConfig(),
            "dask_1_worker": ComputeConfig(dask_workers=1),
            "dask_2_workers": ComputeConfig(dask_workers=2),
        }
        for name, config in configs.items():
            load = os.getloadavg()[0]
            start = time.perf_counter()
            run = bench_flow(people, Path(tmp) / name, config)
            wall = time.perf_counter() - start
            runs[name] = {
                **run,
                "photos_per_second": round(run["photos"] / run["seconds"], 2),
                "wall_seconds_with_cluster_start": round(wall, 1),
                "load_average_before": round(load, 2),
            }
            print(name, runs[name], flush=True)
        reference = files(Path(tmp) / "local")
        same = {name: files(Path(tmp) / name) == reference for name in configs if name != "local"}
    local = runs["local"]["photos_per_second"]
    result = {
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.scale_out " + " ".join(sys.argv[1:]),
        "note": args.note,
        "photos": args.photos,
        "source": "first CelebA photos of ../shared/celeba/img_align_celeba.zip, 178 x 218, MTCNN landmarks, 64 px",
        "runs": runs,
        "speed_up_vs_local": {n: round(r["photos_per_second"] / local, 2) for n, r in runs.items() if n != "local"},
        "same_bytes_as_local": same,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
