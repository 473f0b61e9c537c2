"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`."""

import os

# These machines are often offline: don't let Prefect's local server try to send usage telemetry.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
