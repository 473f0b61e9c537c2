"""Reproducible CPU arithmetic: PyTorch's AVX2 kernels on x86-64, the ones the recorded study was made with."""

from __future__ import annotations

import os
import platform


def pin_avx2_kernels() -> None:
    """On x86-64, make PyTorch and oneDNN use their AVX2 CPU kernels, unless `ATEN_CPU_CAPABILITY` or
    `ONEDNN_MAX_CPU_ISA` is already set (the user's choice wins).

    AVX-512 kernels round differently, and over a training run that changes every number: with AVX2 a fresh
    clone reproduces the recorded dvc.lock and metrics/ on any x86-64 CPU. Both libraries read the variables
    lazily, so this holds as long as no tensor op ran before the call."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
