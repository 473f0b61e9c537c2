"""Stage `train_gan`: train the attribute-conditional generator and editor (or the cVAE baseline) on the
prepared faces, continuing `models/gan/checkpoint.pt` when a run was interrupted.

Run by `dvc repro train_gan`, or standalone:
`python -m pipelines.train_gan [--params params.yaml] [--device cuda] [--gan gan_baseline]`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from torch import nn

from facegen.config import GAN_SECTIONS, GanConfig, Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import resolve_device
from facegen.gan.training_loop import TrainReport, train_gan
from facegen.io import write_json
from facegen.metrics.convnet import holdout_split
from facegen.metrics.editing import study_people
from facegen.paths import train_gan_files
from facegen.weights import load_checkpoint
from pipelines import run_from_command_line
from recognition.models.backbone import generator_space_embedding
from recognition.models.embeddings import check_alignment
from recognition.sets import attendance_sets


def gan_section(params: Params, section: str) -> GanConfig:
    """The generator settings of ``section`` (gan, or one of the study's others: facegen.config.GAN_SECTIONS)."""
    config = params.gan_sections().get(section)
    if config is None:
        raise ValueError(f"no generator settings `{section}` in params; sections: {', '.join(params.gan_sections())}")
    return config


def training_people(params: Params, config: GanConfig) -> set[str] | None:
    """Whose photos the generator trains on (``gan.train_people``); None: the cache's `train` split."""
    if config.train_people == "background":
        sets = attendance_sets(
            params.prepare.out, params.attendance, params.recognition.calibration_people, names=("pretrain",)
        )
        return set(sets["pretrain"].annotations["identity"].astype(str))
    if config.train_people == "judge_train":  # the attribute judge's identity split (facegen.metrics.evaluate)
        identities = PreparedFaces(params.prepare.out, attributes=list(config.attributes)).annotations["identity"]
        judge = params.evaluate.classifier
        train, _ = holdout_split(len(identities), judge.holdout_fraction, judge.seed, identities.to_numpy())
        return set(identities.to_numpy()[train].astype(str))
    if config.train_people == "generator":  # the generators' own people (facegen.metrics.editing.study_people)
        identities = PreparedFaces(params.prepare.out, attributes=list(config.attributes)).annotations["identity"]
        groups = study_people(identities.to_numpy(), params.evaluate.classifier, params.editing)
        return set(identities.to_numpy()[groups.generator].astype(str))
    return None


@task
def train(params_file: str, device: str, section: str) -> TrainReport:
    """Train, after writing the resolved settings (profile presets applied: every value the run uses)."""
    params = load_params(params_file)
    g = gan_section(params, section)
    write_json(train_gan_files(section)[1], g.model_dump(mode="json"))
    identity = identity_term(g, params.prepare.out)
    return train_gan(g, params.prepare.out, resolve_device(device), training_people(params, g), identity)


def identity_term(g: GanConfig, prepared: Path) -> nn.Module | None:
    """The editor's frozen identity network (gan.identity_network), refused when it learnt faces aligned another
    way than the prepared faces the editor trains on; None without an identity or feature term."""
    if not g.uses_identity_network:
        return None
    meta = load_checkpoint(g.identity_network, "identity network", ("backbone",)).get("meta", {})
    check_alignment(g.identity_network, meta, prepared)
    return generator_space_embedding(g.identity_network, g.identity_input_size)


@flow(name="train_gan", log_prints=True)
def train_gan_flow(params_file: str = "params.yaml", device: str = "auto", gan: str = "gan") -> TrainReport:
    """Train the `gan` section of params.yaml (or another, e.g. gan_baseline); write metrics/train_gan.json (and
    the settings used, train_gan_config.json; train_gan_baseline*.json for gan_baseline) and a report artifact."""
    report = train(params_file, device, gan)
    write_json(train_gan_files(gan)[0], asdict(report))
    out = gan_section(load_params(params_file), gan).out
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
        train_gan_flow,
        __doc__,
        device={"default": "auto", "help": "auto (CUDA if available) | cpu | cuda | cuda:N"},
        gan={"default": "gan", "choices": list(GAN_SECTIONS), "help": "the params section to train (default: gan)"},
    )
