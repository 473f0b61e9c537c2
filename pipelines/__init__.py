"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`."""

import os

# These machines are often offline: don't let Prefect's local server try to send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary local server migrates a new database on first start: on a busy 2-core machine that can
# take longer than Prefect's default 20 s wait.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def run_from_command_line(stage_flow, description: str | None) -> object:
    """`python -m pipelines.<stage> [--params FILE]`: run the stage's flow on that parameters file."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    return stage_flow(parser.parse_args().params)
