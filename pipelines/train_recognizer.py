"""Stage `train_recognizer@<condition>`: enrol the roster with that condition's images (baseline, classic,
gan, both), set the open-set threshold, name the check-ins and reject the visitors, for every seed.

Writes `metrics/recognition/<condition>.json` and the per-photo outcomes `data/recognition/<condition>.parquet`.
Run by `dvc repro train_recognizer`, or standalone:
`python -m pipelines.train_recognizer --condition classic [--params FILE]`.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import CONDITIONS, load_params
from facegen.io import write_json
from facegen.locks import output_lock
from facegen.paths import BACKBONE, EMBEDDINGS, OUTCOMES, RECOGNITION_METRICS
from pipelines import run_from_command_line
from recognition.experiment import run_condition
from recognition.outcomes import write_outcomes


@task
def evaluate(params_file: str, condition: str) -> dict:
    params = load_params(params_file)
    outcomes, summary = run_condition(params, condition, BACKBONE, params.prepare.out, EMBEDDINGS)
    write_outcomes(OUTCOMES / f"{condition}.parquet", outcomes, params.recognition.seeds)
    write_json(RECOGNITION_METRICS / f"{condition}.json", summary)
    return summary


@flow(name="train_recognizer", log_prints=True)
def train_recognizer_flow(condition: str, params_file: str = "params.yaml") -> dict:
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    with output_lock(OUTCOMES / f"{condition}.parquet"):  # one run per condition at a time
        summary = evaluate(params_file, condition)
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in summary["mean"].items())
    create_markdown_artifact(
        key=f"recognizer-{condition}",
        markdown=f"# Attendance, condition `{condition}`\n\n| metric (mean over seeds) | value |\n|---|---|\n{rows}\n",
        description=f"Attendance recognizer, {condition}",
    )
    return summary


if __name__ == "__main__":
    run_from_command_line(train_recognizer_flow, __doc__, condition={"required": True, "choices": CONDITIONS})
