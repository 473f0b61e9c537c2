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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_CELEBA = REPO.parent / "shared" / "celeba"


def _run(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def scratch_copy(size: int, workers: int) -> Path:
    """A copy of the tracked files of this repo (a git + DVC repo of its own) set to the local source."""
    work = Path(tempfile.mkdtemp(prefix="facegen-bench-"))
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    for name in files:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, work / name)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"].update(source="local", image_size=size)
    params["data"]["local"]["root"] = str(SHARED_CELEBA)
    params["prepare"]["workers"] = workers
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = scratch_copy(args.size, args.workers)
    try:
        first = _run(["dvc", "repro", "prepare"], work)
        metrics = json.loads((work / "metrics" / "prepare.json").read_text())
        second = _run(["dvc", "repro", "prepare"], work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
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
    }, indent=2))


if __name__ == "__main__":
    main()
