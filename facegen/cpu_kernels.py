"""Reproducible CPU arithmetic: PyTorch's AVX2 kernels on x86-64, the ones the recorded study was made with."""

from __future__ import annotations

import os
import platform

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
# The variables PyTorch (ATen) and oneDNN read to cap their CPU kernels, and the AVX2 value of each.
AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def pin_avx2_kernels() -> None:
    """On x86-64, make PyTorch and oneDNN use their AVX2 CPU kernels, unless a variable of `AVX2_KERNELS` is
    already set (the user's choice wins).

    AVX-512 kernels round differently, and over a training run that changes every number: with AVX2 a fresh
    clone reproduces the recorded dvc.lock and metrics/ on any x86-64 CPU. Both libraries read the variables
    lazily, so this holds as long as no tensor op ran before the call."""
    if X86_64:
        for name, value in AVX2_KERNELS.items():
            os.environ.setdefault(name, value)
