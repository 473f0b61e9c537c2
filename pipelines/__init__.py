"""Prefect flows, one per DVC stage; each runs standalone with `python -m pipelines.<stage>`."""
