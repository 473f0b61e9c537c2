"""The stages run on PyTorch's AVX2 CPU kernels on x86-64 (the recorded study's), unless the user says otherwise."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 kernels only")

PROBE = "import pipelines, torch, os; print(torch.backends.cpu.get_cpu_capability(), os.environ['ONEDNN_MAX_CPU_ISA'])"


def _probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    return subprocess.run([sys.executable, "-c", PROBE], env=clean | env, capture_output=True, text=True,
                          check=True).stdout.split()


def test_stages_use_avx2_kernels() -> None:
    # On an AVX-512 machine PyTorch would pick AVX512 by itself; importing the stages' package pins AVX2.
    assert _probe() == ["AVX2", "AVX2"]


def test_the_users_choice_of_kernels_wins() -> None:
    assert _probe(ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="ALL") == ["DEFAULT", "ALL"]
