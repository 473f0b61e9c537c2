#!/usr/bin/env bash
# The prepared GPU check of issue 18: facenet distilled from the dlib teacher at 160 px on one GPU (at most
# 8 minutes on an H200), printing its timings and accuracy on the faces64 split. Two steps:
#
#   bash bench/gpu_check.sh prepare   # here, after `dvc repro` in studies/faces64: the data bundle (.gpu/,
#                                     # ~50 MiB) and the wheels the GPU image lacks (.whl/, Python 3.12)
#   bash bench/gpu_check.sh           # there: the device tool's `run`, carrying .gpu and .whl
#
# Extra arguments go to `python -m bench.gpu_distill run` (e.g. --epochs 8). Results: $OUT/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = prepare ]; then
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    .venv/bin/python -m bench.gpu_distill bundle
    rm -rf .whl
    platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl facenet-pytorch==2.5.3 pytorch-metric-learning==2.9.0 \
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    du -sh .gpu .whl
    exit 0
fi

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m bench.gpu_distill run --out "${OUT:-.gpu}" "$@"
