"""Benchmark: the `prepare` stage on the 19,383 real images of ../shared/celeba at 64x64.

Runs in a scratch copy of this repository: `dvc repro` with data.source=local (the Prefect flow, as a
user runs it), then `dvc repro` again with nothing changed. Prints one JSON object; record it in
docs/BENCHMARKS.md. Usage: `python -m bench.prepare_celeba [--size 64] [--workers 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

from tests.support.shared import SHARED
from tests.support.scratch import run_in, scratch_copy

SHARED_CELEBA = SHARED / "celeba"


def _timed(work: Path, *cmd: str) -> float:
    start = time.perf_counter()
    run_in(work, *cmd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = scratch_copy(
        {
            "data.source": "local",
            "data.image_size": args.size,
            "data.local.root": str(SHARED_CELEBA),
            "prepare.workers": args.workers,
        }
    )
    try:
        first = _timed(work, "dvc", "repro", "prepare")
        metrics = json.loads((work / "metrics" / "prepare.json").read_text())
        second = _timed(work, "dvc", "repro", "prepare")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "prepare ../shared/celeba",
                "image_size": args.size,
                "workers": args.workers,
                "images": metrics["images_written"],
                "prepare_seconds": metrics["seconds"],
                "prepare_images_per_second": metrics["images_per_second"],
                "first_dvc_repro_seconds": round(first, 1),
                "unchanged_dvc_repro_seconds": round(second, 1),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                "date": time.strftime("%Y-%m-%d"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
