"""Stage `report`: the study on one page, `reports/index.html` (self-contained: images embedded).

Run by `dvc repro report`, or standalone: `python -m pipelines.report [--params params.yaml] [--study faces64]`.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_link_artifact

from facegen.config import load_params
from facegen.report.study import write_study_report
from pipelines import run_from_command_line


@flow(name="report", log_prints=True)
def report_flow(params_file: str = "params.yaml", study: str = "demo") -> str:
    """Write `report.out` from the outputs of the other stages (of the demo study, or of studies/faces64);
    returns its path."""
    params = load_params(params_file)
    page = write_study_report(params, params.report.out, study)
    create_link_artifact(
        key="study-report", link=page.resolve().as_uri(), link_text=str(page), description="The study on one page"
    )
    print(f"report written to {page}")
    return str(page)


if __name__ == "__main__":
    run_from_command_line(
        report_flow, __doc__, study={"default": "demo", "choices": ["demo", "faces64"], "help": "which study's page"}
    )
