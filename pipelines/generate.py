"""Stage `generate`: balanced synthetic face data sets from the trained generator.

Run by `dvc repro generate`, or standalone: `python -m pipelines.generate [--params params.yaml]`.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import load_params
from facegen.io import write_json
from facegen.mapping import Mapper
from facegen.metrics.attribute_classifier import AttributeClassifier
from facegen.paths import GENERATE_METRICS
from facegen.synthetic.run import DatasetReport, generate_datasets
from pipelines import run_from_command_line
from pipelines.scale_out import run_scaled_out


@task
def generate(params_file: str, mapper: Mapper | None = None) -> list[DatasetReport]:
    params = load_params(params_file)
    return generate_datasets(
        params.generate,
        params.attendance,
        params.prepare.out,
        params.sampling,
        load_predictor=AttributeClassifier.load,
        mapper=mapper,
    )


@flow(name="generate", log_prints=True)
def generate_flow(params_file: str = "params.yaml") -> list[DatasetReport]:
    """Write every data set of `generate.datasets` and metrics/generate.json (counts and balance per data set)."""
    reports = run_scaled_out(load_params(params_file).compute, generate, params_file)  # compute: faces drawn on Dask
    write_json(GENERATE_METRICS, {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in reports})
    create_markdown_artifact(
        key="generate-report", markdown=markdown(reports), description="Synthetic data sets written"
    )
    return reports


def markdown(reports: list[DatasetReport]) -> str:
    """A table of the data sets: images, rejections, balance."""
    rows = "\n".join(
        f"| {r.name} | {r.mode} | {r.images} | {r.rejected} | {r.max_cell_deviation:.2%} | "
        f"{'yes' if r.balanced else 'NO'} | `{r.path}` |"
        for r in reports
    )
    return (
        "# Synthetic data sets\n\n| data set | mode | images | rejected by filter | worst cell off target "
        f"| every cell within 1% | folder |\n|---|---|---|---|---|---|---|\n{rows}\n"
    )


if __name__ == "__main__":
    run_from_command_line(generate_flow, __doc__)
