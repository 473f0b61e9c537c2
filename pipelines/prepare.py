"""Stage `prepare`: acquire the configured face source and cache cropped, resized faces.

Run by `dvc repro prepare`, or standalone: `python -m pipelines.prepare [--params params.yaml] [--metrics FILE]`
(a study that prepares a second source names a second parameters file and metrics file, as studies/faces64 does).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State
from prefect.tasks import exponential_backoff

from facegen.config import DataConfig, PrepareConfig, load_params
from facegen.data.prepare import PrepareReport
from facegen.data.extract import NotEnoughSpaceError
from facegen.data.sources import acquire, prepare_source
from facegen.io import write_json
from facegen.mapping import Mapper
from facegen.paths import PREPARE_METRICS
from pipelines import run_from_command_line
from pipelines.scale_out import run_scaled_out


def _may_pass(task: object, task_run: object, state: State) -> bool:
    """Retry what may pass on its own (the network, a server's hiccup); not a refusal or bad input (a ValueError,
    a missing or existing file, no disk space), which would only repeat."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, (ValueError, FileNotFoundError, FileExistsError, NotEnoughSpaceError))


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=_may_pass,
)
def acquire_source(data: DataConfig) -> Path:
    """Generate, download or check the source files (retried with backoff: downloads can fail transiently)."""
    root = acquire(data)
    get_run_logger().info("source %r ready at %s", data.source, root)
    return root


@task
def preprocess(data: DataConfig, prepare: PrepareConfig, root: Path, mapper: Mapper | None = None) -> PrepareReport:
    return prepare_source(data, prepare, root, mapper)


@flow(name="prepare", log_prints=True)
def prepare_flow(params_file: str = "params.yaml", metrics: Path = PREPARE_METRICS) -> PrepareReport:
    """Acquire the face source named by `data.source` and write `prepare.out` plus `metrics`."""
    params = load_params(params_file)
    root = acquire_source(params.data)
    report = run_scaled_out(params.compute, preprocess, params.data, params.prepare, root)  # compute: on Dask
    write_json(Path(metrics), asdict(report))
    create_markdown_artifact(
        key="prepare-report",
        markdown=_markdown(report, params.prepare.out),
        description="Faces prepared for training",
    )
    return report


def _markdown(report: PrepareReport, out: Path) -> str:
    fields = {k: v for k, v in asdict(report).items() if k != "source"} | report.source
    rows = "\n".join(f"| {k} | {v} |" for k, v in fields.items())
    return f"# Prepared faces in `{out}`\n\n| what | value |\n|---|---|\n{rows}\n"


if __name__ == "__main__":
    run_from_command_line(
        prepare_flow, __doc__, metrics={"type": Path, "default": PREPARE_METRICS, "help": "the report's JSON file"}
    )
