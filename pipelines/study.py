"""The whole study as one Prefect flow: each DVC stage in order, as a task that runs `dvc repro <stage>`.

DVC stays the source of truth for what is up to date (`dvc status --json`: an unchanged stage is skipped in a
second), while Prefect gives the study a schedule, retries, logs and a summary artifact. Each stage's own flow still
runs inside its `dvc repro` (and reports to the same Prefect API when `PREFECT_API_URL` is set).

Standalone: `python -m pipelines.study [--stage generate ...]`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import load_params
from pipelines import stage_settings

# In dependency order; `dvc dag` shows the same graph.
STAGES = (
    "prepare",
    "train_gan",
    "pretrain_backbone",
    "evaluate_gan",
    "generate",
    "train_recognizer",
    "compare",
    "report",
)


class StageFailed(RuntimeError):
    """`dvc repro <stage>` exited non-zero; the message holds the end of its output."""


@task(retries=1, retry_delay_seconds=30, task_run_name="dvc repro {stage}")
def reproduce(stage: str, force: bool = False) -> str:
    """Run `dvc repro <stage>` (its upstream stages too, when changed), streaming its output to the log, unless
    DVC finds it and its upstream stages up to date (and ``force`` is off)."""
    log = get_run_logger()
    changed = stale_stages(stage)
    if not changed and not force:
        log.info("dvc status: %s and its upstream stages are up to date", stage)
        return "skipped (up to date)"
    log.info("dvc status: changed %s", ", ".join(changed) or "nothing (forced)")
    command = ["dvc", "repro", stage] + (["--force", "--single-item"] if force else [])
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_venv_first_env()
    )
    lines = []
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line.rstrip())
        log.info(line.rstrip())
    if process.wait():
        raise StageFailed(f"`{' '.join(command)}` failed (exit {process.returncode}):\n" + "\n".join(lines[-30:]))
    return "ran"


def stale_stages(stage: str) -> list[str]:
    """The stages among ``stage`` and its upstream ones that DVC finds out of date (`dvc status --json
    --with-deps`: changed deps, params or outs), in its order; [] when all are up to date."""
    status = subprocess.run(
        ["dvc", "status", "--json", "--with-deps", stage], capture_output=True, text=True, env=_venv_first_env()
    )
    if status.returncode:
        raise StageFailed(f"`dvc status {stage}` failed (exit {status.returncode}):\n{status.stderr[-3000:]}")
    return list(json.loads(status.stdout or "{}"))


def _venv_first_env() -> dict[str, str]:
    """This interpreter's bin folder first on PATH, so `dvc` and the stages' `python` are this venv's."""
    import os

    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@flow(name="study", log_prints=True)
def study_flow(stages: list[str] | None = None, force: bool = False) -> dict[str, str]:
    """Reproduce the study's stages (all by default) in order; returns what each stage did."""
    chosen = list(stages or STAGES)
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; the study's stages are {list(STAGES)}")
    outcome = {stage: reproduce(stage, force) for stage in chosen}
    rows = "\n".join(f"| `{stage}` | {what} |" for stage, what in outcome.items())
    page = load_params().report.out
    report = f"\n\nReport: [{page}]({page.resolve().as_uri()})" if page.is_file() else ""
    create_markdown_artifact(
        key="study",
        markdown=f"# Study\n\n| stage | outcome |\n|---|---|\n{rows}{report}\n",
        description="What each stage of the study did",
    )
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", action="append", choices=STAGES, help="run only these stages (repeatable)")
    parser.add_argument("--force", action="store_true", help="rerun the chosen stages even if up to date")
    args = parser.parse_args()
    with stage_settings():
        study_flow(args.stage, args.force)


if __name__ == "__main__":
    main()
