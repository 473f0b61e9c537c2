"""Stage `train_gan`: train the attribute-conditional generator and editor (or the cVAE baseline) on the
prepared faces, continuing `models/gan/checkpoint.pt` when a run was interrupted.

Run by `dvc repro train_gan`, or standalone: `python -m pipelines.train_gan [--params params.yaml] [--device cuda]`.
"""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import load_params
from facegen.gan.inference import resolve_device
from facegen.gan.training_loop import TrainReport, train_gan
from facegen.io import write_json
from facegen.paths import TRAIN_GAN_CONFIG, TRAIN_GAN_METRICS
from pipelines import run_from_command_line
from recognition.sets import attendance_sets


@task
def train(params_file: str, device: str) -> TrainReport:
    """Train, after writing the resolved settings (profile presets applied: every value the run uses)."""
    params = load_params(params_file)
    write_json(TRAIN_GAN_CONFIG, params.gan.model_dump(mode="json"))
    people = None
    if params.gan.train_people == "background":
        sets = attendance_sets(
            params.prepare.out, params.attendance, params.recognition.calibration_people, names=("pretrain",)
        )
        people = set(sets["pretrain"].annotations["identity"].astype(str))
    return train_gan(params.gan, params.prepare.out, resolve_device(device), people)


@flow(name="train_gan", log_prints=True)
def train_gan_flow(params_file: str = "params.yaml", device: str = "auto") -> TrainReport:
    """Train `gan` from params.yaml; write metrics/train_gan.json (and the settings used, train_gan_config.json)
    and a report artifact with the last grid."""
    report = train(params_file, device)
    write_json(TRAIN_GAN_METRICS, asdict(report))
    out = load_params(params_file).gan.out
    rows = "\n".join(f"| {k} | {v} |" for k, v in asdict(report).items() if k != "final")
    final = "\n".join(f"| {k} | {v} |" for k, v in report.final.items())
    create_markdown_artifact(
        key="train-gan-report",
        markdown=f"# GAN training in `{out}`\n\n| what | value |\n|---|---|\n{rows}\n{final}\n\n"
        f"Grids: `{out}/grid_{report.steps:06d}.png`, edits: `{out}/edits_{report.steps:06d}.png`\n",
        description="Attribute-conditional GAN training",
    )
    return report


if __name__ == "__main__":
    run_from_command_line(
        train_gan_flow, __doc__, device={"default": "auto", "help": "auto (CUDA if available) | cpu | cuda | cuda:N"}
    )
