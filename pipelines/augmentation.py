"""Stage `augmentation`: does augmentation with GAN faces help the distilled facenet (issue 19)?

Runs every condition (baseline, classic, GAN edits of the primary attribute, mixed GAN edits; the same
`augmentation.budget` of added images each) with three recognizers (prototypes on the frozen model, the
roster fine-tune of its last block, the embedding retrained with GAN faces) over `augmentation.roster_draws`
roster draws and `augmentation.training_seeds` (recognition/augmentation.py), then takes each condition's
paired difference to its baseline with 95% intervals over people (recognition/effects.py).

Writes data/augmentation_outcomes.parquet (every test photo's outcome), metrics/augmentation.json,
metrics/augmentation.md and the forest plot plots/augmentation.png. Trunk features are cached, content-addressed,
in data/augmentation_cache/ (persisted: a killed run resumes).
Run by `dvc repro augmentation`, or standalone: `python -m pipelines.augmentation [--params FILE]`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from prefect import flow, task

from facegen.config import Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.io import atomic_file, sha256sum, write_json
from facegen.paths import (
    AUGMENT_WORK,
    AUGMENTATION_OUTCOMES,
    AUGMENTATION_PLOT,
    AUGMENTATION_SUMMARY,
    AUGMENTATION_TABLE,
)
from pipelines import run_from_command_line
from recognition.augmentation import FAMILIES, Experiment, read_made_faces
from recognition.backbone import load_backbone
from recognition.effects import endpoints, paired_effects
from recognition.embeddings import EmbeddingCache
from recognition.last_block import LastBlock, TrunkFeatures
from recognition.sets import SET_NAMES, attendance_sets
from recognition.teacher import read_teacher_embeddings

FAMILY_LABELS = {
    "prototypes": "prototypes, frozen model",
    "finetuned": "roster fine-tune (last block + CosFace head)",
    "embedding": "embedding retrained with GAN faces",
}


@task
def run_experiment(params: Params) -> tuple[pd.DataFrame, dict]:
    aug, rec = params.augmentation, params.recognition
    start = time.perf_counter()
    model = load_backbone(str(rec.distill.out))
    fingerprint = sha256sum(rec.distill.out)
    trunk = EmbeddingCache(AUGMENT_WORK, TrunkFeatures(model, fingerprint, rec.distill.input_size))
    flipped = EmbeddingCache(AUGMENT_WORK, TrunkFeatures(model, fingerprint, rec.distill.input_size, flip=True))
    experiment = Experiment(
        aug,
        rec.classic,
        LastBlock(model),
        trunk,
        flipped,
        read_made_faces(aug.out),
        rec.far,
        params.attendance.gap_attributes,
        rec.distill.margin_weight,
    )
    sets = [
        attendance_sets(
            params.prepare.out,
            params.attendance,
            rec.calibration_people,
            names=SET_NAMES if k == 0 else SET_NAMES[1:],
            draw=k,
        )
        for k in range(aug.roster_draws)
    ]
    background = sets[0]["pretrain"]
    teacher = read_teacher_embeddings(rec.teacher.embeddings, len(PreparedFaces(params.prepare.out).annotations))
    descriptors = teacher[background.rows]
    usable = ~np.isnan(descriptors).any(axis=1)
    background_trunk = trunk.embed(np.ascontiguousarray(background.images[usable]))
    outcomes = experiment.outcomes(
        [experiment.draw(k, s) for k, s in enumerate(sets)],
        (background_trunk, descriptors[usable], background.annotations["identity"].astype(str).to_numpy()[usable]),
    )
    design = {
        "roster_draws": aug.roster_draws,
        "training_seeds": list(aug.training_seeds),
        "budget_per_enrolment_photo": aug.budget,
        "primary_endpoint": f"top1_with_{aug.primary_attribute}",
        "roster_people_per_draw": int(sets[0]["enrol"].annotations["identity"].nunique()),
        "checkins_per_draw": [len(s["checkin"].images) for s in sets],
        f"checkins_with_{aug.primary_attribute}_per_draw": [
            int(s["checkin"].annotations[aug.primary_attribute].sum()) for s in sets
        ],
        "background_faces": int(usable.sum()),
        "trunk_cache": {"hits": trunk.hits + flipped.hits, "misses": trunk.misses + flipped.misses},
        "seconds": round(time.perf_counter() - start, 1),
    }
    return outcomes, design


def markdown_table(effects: dict, primary: str) -> str:
    names = list(endpoints(primary))
    lines = [
        "| recognizer | condition | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for family in FAMILIES:
        for condition, values in effects.get(family, {}).items():
            cells = [_cell(values[n]) for n in names]
            lines.append(f"| {FAMILY_LABELS[family]} | {condition} | " + " | ".join(cells) + " |")
    return (
        "\n".join(lines) + "\n\nEach cell: baseline → condition, the paired difference [95% bootstrap interval over "
        "people, pooled over roster draws; photo values averaged over training seeds] (MDE: the smallest "
        "difference this design detects with 80% power at 5%). visitor_far: lower is better.\n"
    )


def _cell(v: dict) -> str:
    if v["photos"] == 0:
        return "— (no such photo)"
    return (
        f"{v['baseline']:.3f} → {v['condition']:.3f}: **{v['difference']:+.3f}** "
        f"[{v['low']:+.3f}, {v['high']:+.3f}] (MDE {v['mde']:.3f})"
    )


def forest_plot(effects: dict, primary: str, path) -> None:
    """Paired difference to baseline with its interval, one row per recognizer and condition, per endpoint."""
    rows = [(f, c) for f in FAMILIES for c in effects.get(f, {})]
    names = list(endpoints(primary))
    figure = Figure(figsize=(3.2 * len(names), 0.45 * len(rows) + 1.4), layout="constrained")
    axes = figure.subplots(1, len(names), sharey=True)
    y = np.arange(len(rows))[::-1]
    for ax, name in zip(axes, names):
        values = [effects[f][c][name] for f, c in rows]
        difference = np.array([v["difference"] for v in values])
        low, high = np.array([v["low"] for v in values]), np.array([v["high"] for v in values])
        ax.errorbar(difference, y, xerr=[difference - low, high - difference], fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=1)
        ax.set_title(name + (" (primary)" if name.startswith("top1_with_") else ""), fontsize=9)
        ax.set_xlabel("condition - baseline")
    axes[0].set_yticks(y, [f"{f}: {c}" for f, c in rows], fontsize=8)
    with atomic_file(path) as f:
        figure.savefig(f, format="png", dpi=120)


@flow(name="augmentation", log_prints=True)
def augmentation_flow(params_file: str = "params.yaml") -> dict:
    params = load_params(params_file)
    aug = params.augmentation
    outcomes, design = run_experiment(params)
    with atomic_file(AUGMENTATION_OUTCOMES) as f:
        outcomes.to_parquet(f, index=False)
    effects = paired_effects(outcomes, aug.primary_attribute, aug.bootstrap_samples, params.recognition.seed)
    summary = {"design": design, "effects": effects}
    write_json(AUGMENTATION_SUMMARY, summary)
    table = markdown_table(effects, aug.primary_attribute)
    with atomic_file(AUGMENTATION_TABLE, "w") as f:
        f.write(table)
    forest_plot(effects, aug.primary_attribute, AUGMENTATION_PLOT)
    print(table)
    return summary


if __name__ == "__main__":
    run_from_command_line(augmentation_flow, __doc__)
