"""Stage `augmentation`: can images added at enrolment help the distilled facenet, and how close do GAN edits come
to a real photo (issues 19, 28)?

Runs every arm (baseline, classic, the oracle's real eyeglass photo, the editor's reconstruction, verified GAN
eyeglass edits at each budget, and at budget 1 from `augmentation.second_editor` and the editors of
`augmentation.confined` with their edits kept inside the eye band) with five recognizers
(prototypes with real and added images weighed 1:1, pooled, or max over templates; the roster fine-tune for a
validated, fixed number of steps; the embedding retrained with GAN faces) over `augmentation.roster_draws`
roster draws, `augmentation.training_seeds` and the oracle's leave-one-out turns (recognition/augmentation/),
then takes each arm's paired difference to its baseline over people: BCa intervals, sign-flip permutation tests,
Holm for all but the pre-specified primary contrast, each editor's share of the oracle's gain and a prospective
power curve (recognition/augmentation/effects.py).

Writes data/augmentation_outcomes.parquet (every photo's outcome), metrics/augmentation.json,
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
from recognition.augmentation.arms import Arms, arm_names
from recognition.augmentation.effects import endpoints, summarise
from recognition.augmentation.experiment import FAMILIES, Background, Experiment, read_lenses
from recognition.augmentation.verified_edits import read_made_faces
from recognition.models.backbone import load_backbone
from recognition.models.embeddings import EmbeddingCache
from recognition.models.last_block import LastBlock, TrunkFeatures
from recognition.sets import SET_NAMES, attendance_sets
from recognition.models.teacher import read_teacher_embeddings

FAMILY_LABELS = {
    "prototypes": "prototypes, real : added = 1 : 1 (primary)",
    "prototypes_pooled": "prototypes, every image weighs one",
    "prototypes_max": "max over templates",
    "finetuned": "roster fine-tune (fixed steps)",
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
    made = read_made_faces(aug.out)
    experiment = Experiment(
        aug,
        Arms(aug, rec.classic, trunk, flipped, made),
        LastBlock(model),
        made,
        rec.far,
        params.attendance.gap_attributes,
        read_lenses(aug.lenses) if aug.lenses else None,
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
    draws = [experiment.draw(k, s) for k, s in enumerate(sets)]
    steps, curve = experiment.finetune_steps(draws[0])
    outcomes = experiment.outcomes(
        draws,
        Background(
            trunk.embed(np.ascontiguousarray(background.images[usable])),
            descriptors[usable],
            background.annotations["identity"].astype(str).to_numpy()[usable],
            background.annotations["image_id"].astype(str).to_numpy()[usable],
        ),
        steps,
    )
    design = {
        "roster_draws": aug.roster_draws,
        "training_seeds": list(aug.training_seeds),
        "arms": list(arm_names(aug)),
        "oracle_turns": aug.oracle_rotations,
        "primary_endpoint": f"top1_with_{aug.primary_attribute}",
        "roster_people_per_draw": int(sets[0]["enrol"].annotations["identity"].nunique()),
        "checkins_per_draw": [len(s["checkin"].images) for s in sets],
        f"checkins_with_{aug.primary_attribute}_per_draw": [
            int(s["checkin"].annotations[aug.primary_attribute].sum()) for s in sets
        ],
        "finetune_steps": steps,
        "finetune_validation_top1": curve,
        "background_faces": int(usable.sum()),
        "trunk_cache": {"hits": trunk.hits + flipped.hits, "misses": trunk.misses + flipped.misses},
        "seconds": round(time.perf_counter() - start, 1),
    }
    return outcomes, design


def markdown_table(summary: dict, primary: str) -> str:
    first = f"top1_with_{primary}"
    names = [first, "top1", "tar_at_far", "visitor_far"]
    lines = [
        "| recognizer | arm | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for family in FAMILIES:
        for arm, values in summary["arms"].get(family, {}).items():
            cells = [_cell(values[n], with_tests=n == first) for n in names]
            lines.append(f"| {FAMILY_LABELS[family]} | {arm} | " + " | ".join(cells) + " |")
    chosen = summary["primary"]
    lines += [
        "",
        f"Primary contrast (pre-specified): {chosen['family']} / {chosen['arm']} on {chosen['endpoint']}: "
        + _cell(chosen, with_tests=True),
    ]
    shares = [(chosen["arm"], summary["oracle_share"]), *summary["other_editors"].items()]
    for arm, by_family in shares:
        for family, share in by_family.items():
            if share.get("share") is not None:
                lines.append(
                    f"Share of the oracle's gain ({family}, {arm}): {share['share']:+.2f} [{share['ci'][0]:+.2f}, "
                    f"{share['ci'][1]:+.2f}] on {share['photos']} photos of {share['people']} people"
                )
            else:
                lines.append(f"Share of the oracle's gain ({family}, {arm}): {share['reading']}")
    power = summary["power"]
    lines.append(
        f"Prospective power ({power['photos']} photos of {power['people']} people, planned baseline "
        f"{power.get('planning_baseline_rate')}): "
        + ", ".join(f"+{e}: {p:.2f}" for e, p in power["curve"].items())
        + f"; 80% power from a gain of {power['mde_80']}"
    )
    return (
        "\n".join(lines) + "\n\nEach cell: baseline → arm: the paired difference [95% interval over people: BCa; "
        "tar_at_far and visitor_far also resample the calibration people] on N photos of P people; the primary "
        "endpoint adds the sign-flip permutation p and the Holm-adjusted p. Photo values are averaged over "
        "training seeds, oracle turns and roster draws. visitor_far: lower is better.\n"
    )


def _cell(v: dict, with_tests: bool = False) -> str:
    if not v.get("photos"):
        return "— (no such photo)"
    cell = (
        f"{v['baseline']:.3f} → {v['with_arm']:.3f}: **{v['delta']:+.3f}** [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] "
        f"({v['photos']} photos, {v['people']} people)"
    )
    if with_tests:
        cell += f" p={v['p_permutation']:.3g}, Holm {v.get('p_holm', float('nan')):.3g}"
    return cell


def forest_plot(summary: dict, primary: str, path) -> None:
    """Paired difference to baseline with its interval, one row per recognizer and arm, per endpoint."""
    rows = [(f, a) for f in FAMILIES for a in summary["arms"].get(f, {})]
    names = [n for n in endpoints(primary) if not n.endswith(("_clear", "_sun"))]
    figure = Figure(figsize=(3.0 * len(names), 0.4 * len(rows) + 1.4), layout="constrained")
    axes = figure.subplots(1, len(names), sharey=True)
    y = np.arange(len(rows))[::-1]
    for ax, name in zip(axes, names):
        values = [summary["arms"][f][a][name] for f, a in rows]
        delta = np.array([v["delta"] for v in values], dtype=float)
        low = np.array([v["ci"][0] for v in values], dtype=float)
        high = np.array([v["ci"][1] for v in values], dtype=float)
        ax.errorbar(delta, y, xerr=[delta - low, high - delta], fmt="o", capsize=3)
        ax.axvline(0, color="grey", lw=1)
        ax.set_title(name + (" (primary)" if name == f"top1_with_{primary}" else ""), fontsize=9)
        ax.set_xlabel("arm - baseline")
    axes[0].set_yticks(y, [f"{f}: {a}" for f, a in rows], fontsize=8)
    with atomic_file(path) as f:
        figure.savefig(f, format="png", dpi=120)


@flow(name="augmentation", log_prints=True)
def augmentation_flow(params_file: str = "params.yaml") -> dict:
    params = load_params(params_file)
    aug = params.augmentation
    outcomes, design = run_experiment(params)
    with atomic_file(AUGMENTATION_OUTCOMES) as f:
        outcomes.to_parquet(f, index=False)
    summary = {"design": design} | summarise(outcomes, aug, params.recognition.far, params.recognition.seed)
    write_json(AUGMENTATION_SUMMARY, summary)
    table = markdown_table(summary, aug.primary_attribute)
    with atomic_file(AUGMENTATION_TABLE, "w") as f:
        f.write(table)
    forest_plot(summary, aug.primary_attribute, AUGMENTATION_PLOT)
    print(table)
    return summary


if __name__ == "__main__":
    run_from_command_line(augmentation_flow, __doc__)
