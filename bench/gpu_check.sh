#!/usr/bin/env bash
# The prepared GPU checks, each at most 8 minutes on an H200:
#   distill (issue 18, the default): facenet distilled from the dlib teacher at 160 px, timings and accuracy on the
#     faces64 split;
#   celeba64 (issue 20): the celeba64 generator with the masked, identity-term editor trained for a fixed number
#     of steps, printing steps per second, attribute control, identity kept by its edits and the detector on them;
#     `--lambda-feature 1` adds the feature discriminator on the frozen facenet (issue 29), to compare the two.
# Two steps each:
#
#   bash bench/gpu_check.sh [celeba64] prepare   # here, after `dvc repro` in the study: the data bundle (.gpu/ or
#                                                # .gpu_celeba64/, ~50-60 MiB) and the wheels the GPU image lacks
#                                                # (.whl/, Python 3.12)
#   bash bench/gpu_check.sh [celeba64]           # there: the device tool's `run`, carrying that bundle and .whl
#
# Extra arguments go to `python -m bench.gpu_distill run` (e.g. --epochs 8) or `python -m bench.gpu_celeba64 run`
# (e.g. --steps 2000). Results: $OUT/gpu_check.json or $OUT/gpu_celeba64.json.
set -euo pipefail
cd "$(dirname "$0")/.."
check=bench.gpu_distill
if [ "${1:-}" = celeba64 ]; then
    check=bench.gpu_celeba64
    shift
fi

if [ "${1:-}" = prepare ]; then
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
    grep -qx '/.gpu_celeba64/' .git/info/exclude 2>/dev/null || echo /.gpu_celeba64/ >> .git/info/exclude
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    .venv/bin/python -m "$check" bundle
    rm -rf .whl
    platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl facenet-pytorch==2.5.3 pytorch-metric-learning==2.9.0 \
        pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
    du -sh .gpu* .whl
    exit 0
fi

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -m "$check" run --out "${OUT:-.gpu}" "$@"
