"""Stage `compare`: every condition side by side, with 95% bootstrap intervals over the test photos.

Writes `metrics/recognition.json`, the table `metrics/recognition.md` and the bar plot `plots/recognition.png`.
Run by `dvc repro compare`, or standalone: `python -m pipelines.compare [--params FILE]`.
"""

from __future__ import annotations

import hashlib
import inspect
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import load_params
from facegen.io import atomic_file, write_json
from facegen.paths import OUTCOMES, RECOGNITION_PLOT, RECOGNITION_SUMMARY, RECOGNITION_TABLE
import recognition.compare
import recognition.metrics
from recognition.compare import bar_plot, compare_conditions, markdown_table
from recognition.outcomes import read_outcomes
from pipelines import run_from_command_line


def outcomes_key(_context: Any, parameters: dict[str, Any]) -> str:
    """Cache key of `bootstrap`: the outcome tables' bytes, the settings, and the metrics' source code."""
    digest = hashlib.sha256()
    for condition, path in parameters["files"].items():
        digest.update(condition.encode() + Path(path).read_bytes())
    digest.update(repr((parameters["far"], parameters["samples"], parameters["seed"])).encode())
    for module in (recognition.compare, recognition.metrics):
        digest.update(inspect.getsource(module).encode())
    return digest.hexdigest()


@task(cache_key_fn=outcomes_key, cache_expiration=timedelta(days=90), persist_result=True)
def bootstrap(files: dict[str, str], far: float, samples: int, seed: int) -> dict:
    """Metrics with bootstrap intervals per condition. Cached on the outcome files' contents (safe: a pure
    function of them): rerunning `compare` after a change elsewhere skips the resampling."""
    return compare_conditions({c: read_outcomes(Path(f)) for c, f in files.items()}, far, samples, seed)


@task
def compare(params_file: str) -> str:
    rec = load_params(params_file).recognition
    files = {c: str(OUTCOMES / f"{c}.parquet") for c in rec.conditions}
    table = bootstrap(files, rec.far, rec.bootstrap_samples, rec.seed)
    write_json(RECOGNITION_SUMMARY, table)
    markdown = markdown_table(table, rec.far, len(rec.seeds))
    with atomic_file(RECOGNITION_TABLE, "w") as f:
        f.write(f"# Attendance recognition by condition\n\n{markdown}")
    bar_plot(table, RECOGNITION_PLOT, rec.far)
    return markdown


@flow(name="compare", log_prints=True)
def compare_flow(params_file: str = "params.yaml") -> str:
    markdown = compare(params_file)
    create_markdown_artifact(key="recognition-compare", markdown=markdown, description="Attendance by condition")
    return markdown


if __name__ == "__main__":
    print(run_from_command_line(compare_flow, __doc__))
