"""The stages and the CLI run on PyTorch's AVX2 CPU kernels on x86-64 (the recorded study's), unless the user
says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facegen.cpu_kernels import AVX2_KERNELS, X86_64

pytestmark = pytest.mark.skipif(not X86_64, reason="x86-64 kernels only")

STAGES = (
    "prepare",
    "train_gan",
    "evaluate_gan",
    "generate",
    "pretrain_backbone",
    "train_recognizer",
    "compare",
    "report",
)
# A stage process: every stage module imported (no tensor op may run on import), then its command line.
STAGE = "; ".join(
    [
        *(f"import pipelines.{s}" for s in STAGES),
        "import sys",
        "sys.argv = ['stage']",
        "from pipelines import run_from_command_line",
        "run_from_command_line(lambda params_file: 0, None)",
    ]
)
ENTRY_POINTS = {"stages": STAGE, "cli": "from pipelines import cli; cli._main(verbose=False)"}
REPORT = "import torch, os; print(torch.backends.cpu.get_cpu_capability(), os.environ['ONEDNN_MAX_CPU_ISA'])"


def _kernels(entry_point: str, **env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in AVX2_KERNELS}
    return subprocess.run(
        [sys.executable, "-c", f"{ENTRY_POINTS[entry_point]}; {REPORT}"],
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_avx2_kernels_are_used(entry_point: str) -> None:
    # On an AVX-512 machine PyTorch would pick AVX512 by itself.
    assert _kernels(entry_point) == ["AVX2", "AVX2"]


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_the_users_choice_of_kernels_wins(entry_point: str) -> None:
    assert _kernels(entry_point, ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="ALL") == ["DEFAULT", "ALL"]


def test_importing_the_stages_sets_nothing() -> None:
    """The kernels (and Prefect's settings) are chosen when a stage runs, not when its module is imported."""
    imports = "; ".join(f"import pipelines.{s}" for s in STAGES)
    check = (
        "import os; print(sorted(k for k in os.environ if k in ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA') "
        "or k.startswith('PREFECT_')))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in AVX2_KERNELS and not k.startswith("PREFECT_")}
    out = subprocess.run(
        [sys.executable, "-c", f"{imports}; {check}"], env=clean, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["[]"]
