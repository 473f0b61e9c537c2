"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`."""

import os
import platform

# These machines are often offline: don't let Prefect's local server try to send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary local server migrates a new database on first start: on a busy 2-core machine that can
# take longer than Prefect's default 20 s wait.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# The recorded study (dvc.lock, metrics/) was made with PyTorch's AVX2 CPU kernels. AVX-512 kernels round
# differently, and over a training run that changes every number, so on x86-64 the stages use AVX2 kernels
# (read lazily by PyTorch and oneDNN, so this holds as long as no tensor op ran before). Set either variable
# yourself (e.g. ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=ALL) for the faster kernels and other numbers.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


def run_from_command_line(stage_flow, description: str | None, **options: dict) -> object:
    """`python -m pipelines.<stage> [--params FILE] [--OPTION VALUE ...]`: run the stage's flow on that parameters
    file; each keyword adds ``--<keyword>`` (its argparse settings), passed to the flow by that name."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    for name, settings in options.items():
        parser.add_argument(f"--{name}", **settings)
    args = vars(parser.parse_args())
    return stage_flow(params_file=args.pop("params"), **args)
