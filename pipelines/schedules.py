"""Scheduled deployments, served from code: a weekly full study and a nightly synthetic dataset.

`python -m pipelines.schedules` registers the deployments with the Prefect API in `PREFECT_API_URL`
(start one with `prefect server start`) and runs their flow runs, scheduled or triggered, in this
folder until stopped. Trigger one by hand with `prefect deployment run 'study/weekly-study'`.
"""

from __future__ import annotations

import argparse

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from pipelines import stage_settings
from pipelines.study import study_flow

WEEKLY = "0 3 * * 0"  # Sundays 03:00
NIGHTLY = "0 2 * * *"  # every day 02:00


def deployments(timezone: str = "UTC") -> list[RunnerDeployment]:
    """The study every week; the generate stage (with its upstream stages, when changed) every night."""
    from prefect.client.schemas.schedules import CronSchedule

    return [
        study_flow.to_deployment(
            "weekly-study",
            schedule=CronSchedule(cron=WEEKLY, timezone=timezone),
            tags=["facegen"],
            description="The whole study: dvc repro of every stage, in order.",
        ),
        study_flow.to_deployment(
            "nightly-generate",
            schedule=CronSchedule(cron=NIGHTLY, timezone=timezone),
            tags=["facegen"],
            parameters={"stages": ["generate"]},
            description="Regenerate the synthetic datasets (and whatever they depend on, when changed).",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timezone", default="UTC", help="time zone of the cron schedules (default: UTC)")
    with stage_settings():
        serve(*deployments(parser.parse_args().timezone))


if __name__ == "__main__":
    main()
