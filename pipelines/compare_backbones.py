"""Stage `compare_backbones`: every recognizer on the same attendance split, nearest class mean by cosine.

Rows: the teacher (dlib's pretrained recognizer: trained elsewhere on web photos that may include CelebA
celebrities, so an upper reference), facenet distilled from it (`recognition.distill.out`), facenet trained
here with softmax (`models/backbone.pt`, `recognition.pretrained: none`) and Fisherfaces fitted on the same
background people (the classical floor). Top-1 comes with a 95% interval over roster people, and each row's
paired difference to the distilled facenet on the same check-ins, resampled over the same people.
Writes metrics/backbones.json, metrics/backbones.md and plots/backbones.png.
Run by `dvc repro compare_backbones`, or standalone: `python -m pipelines.compare_backbones [--params FILE]`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from prefect import flow, task

from facegen.config import Params, load_params
from facegen.data.prepared import PreparedFaces
from facegen.io import atomic_file, write_json
from facegen.mapping import Mapper
from facegen.paths import BACKBONES_PLOT, BACKBONES_SUMMARY, BACKBONES_TABLE
from pipelines import run_from_command_line
from pipelines.scale_out import run_scaled_out
from recognition.models.distill import no_margin_path
from recognition.models.embeddings import load_embedder
from recognition.models.fisherfaces import Fisherfaces
from recognition.sets import attendance_sets
from recognition.split_scores import SPLIT_SETS, SplitScore, score_split
from recognition.statistics import paired_difference, people_bootstrap
from recognition.models.teacher import read_teacher_embeddings

REFERENCE = "facenet_distilled"  # paired differences are taken against this row
LABELS = {
    "dlib_teacher": "dlib teacher (pretrained elsewhere; upper reference)",
    "facenet_distilled": "facenet distilled from the teacher",
    "facenet_distilled_no_margin": "the same before its margin epochs",
    "facenet_trained_here": "facenet trained here (softmax)",
    "fisherfaces": "Fisherfaces (PCA + LDA; floor)",
}
BOOTSTRAP_SAMPLES = 2000


@task
def score_recognizers(params: Params, mapper: Mapper | None = None) -> dict:
    rec = params.recognition
    names = ("pretrain", *SPLIT_SETS)
    sets = attendance_sets(params.prepare.out, params.attendance, rec.calibration_people, names=names)
    teacher = read_teacher_embeddings(rec.teacher.embeddings, len(PreparedFaces(params.prepare.out).annotations))
    fisher = Fisherfaces(seed=rec.seed).fit(
        sets["pretrain"].images, sets["pretrain"].annotations["identity"].to_numpy()
    )
    prepared = params.prepare.out  # each facenet must have been trained on faces aligned as these are
    load = partial(load_embedder, prepared=prepared, mapper=mapper)  # mapper: the faces embedded on Dask workers
    embedders = {"facenet_distilled": load(rec.distill.out, rec.distill.input_size).embed}
    if rec.distill.margin_epochs:  # the margin's ablation: the student before its margin epochs
        embedders["facenet_distilled_no_margin"] = load(no_margin_path(rec.distill.out), rec.distill.input_size).embed
    embedders |= {
        "facenet_trained_here": load(rec.trained_here, rec.input_size).embed,
        "fisherfaces": fisher.embed,
    }
    scores: dict[str, SplitScore] = {
        "dlib_teacher": score_split(
            {n: teacher[sets[n].rows] for n in SPLIT_SETS}, sets, params.attendance.gap_attributes, rec.far
        )
    }
    for name, embed in embedders.items():
        scores[name] = score_split(
            {n: embed(sets[n].images) for n in SPLIT_SETS}, sets, params.attendance.gap_attributes, rec.far
        )
    return summarise(scores, sets, rec.seed)


def summarise(scores: dict[str, SplitScore], sets: dict, seed: int) -> dict:
    """One entry per recognizer: its metrics, top-1's people interval and the paired difference to REFERENCE."""
    reference = scores[REFERENCE]
    out = {}
    for name, score in scores.items():
        _, low, high = people_bootstrap(score.correct.astype(float), score.people, BOOTSTRAP_SAMPLES, seed)
        difference = paired_difference(score.correct, reference.correct, score.people, BOOTSTRAP_SAMPLES, seed)
        out[name] = {
            **{k: round(v, 4) for k, v in score.metrics.items()},
            "top1_interval": [round(low, 4), round(high, 4)],
            f"top1_minus_{REFERENCE}": [round(v, 4) for v in difference],
            "skipped": score.skipped,
        }
    checkins = sets["checkin"].annotations
    out["split"] = {
        "roster": int(sets["enrol"].annotations["identity"].nunique()),
        "enrol_photos": len(sets["enrol"].images),
        "checkins": len(checkins),
        "checkins_with_Eyeglasses": int(checkins["Eyeglasses"].sum()),
        "visitor_photos": len(sets["visitor"].images),
        "calibration_photos": len(sets["calibration"].images),
        "background_people": int(sets["pretrain"].annotations["identity"].nunique()),
        "background_photos": len(sets["pretrain"].images),
        "interval": f"95% percentile bootstrap over roster people, {BOOTSTRAP_SAMPLES} resamples",
    }
    return out


def markdown_table(summary: dict, far: float) -> str:
    rows = [
        "| recognizer | top-1 [95% CI over people] | paired difference to the distilled facenet | "
        "check-ins with Eyeglasses | without | calibrated TAR @ FAR " + f"{far:g}" + " | visitor FAR |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in LABELS.items():
        if name not in summary:
            continue
        m = summary[name]
        d = m[f"top1_minus_{REFERENCE}"]
        low, high = m["top1_interval"]
        rows.append(
            f"| {label} | {m['top1']:.3f} [{low:.3f}, {high:.3f}] | "
            + ("—" if name == REFERENCE else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
            + f" | {m['top1_with_Eyeglasses']:.3f} | {m['top1_without_Eyeglasses']:.3f} | "
            f"{m['tar_at_far']:.3f} | {m['visitor_far']:.3f} |"
        )
    split = summary["split"]
    return (
        "\n".join(rows) + f"\n\nRoster {split['roster']} people x {split['enrol_photos'] // split['roster']} "
        f"enrolment photos, {split['checkins']} check-ins ({split['checkins_with_Eyeglasses']} with eyeglasses), "
        f"{split['visitor_photos']} visitor photos, {split['calibration_photos']} calibration photos; background "
        f"{split['background_people']} people ({split['background_photos']} photos). Intervals: {split['interval']}.\n"
    )


def bar_plot(summary: dict, path: Path) -> None:
    """Top-1 per recognizer with its people interval, overall and on eyeglass-wearing check-ins."""
    names = [n for n in LABELS if n in summary][::-1]
    figure = Figure(figsize=(8, 3.2), layout="constrained")
    axes = figure.add_subplot()
    y = np.arange(len(names))
    top1 = np.array([summary[n]["top1"] for n in names])
    intervals = np.array([summary[n]["top1_interval"] for n in names])
    axes.barh(y + 0.2, top1, height=0.4, xerr=[top1 - intervals[:, 0], intervals[:, 1] - top1], label="all check-ins")
    axes.barh(y - 0.2, [summary[n]["top1_with_Eyeglasses"] for n in names], height=0.4, label="wearing eyeglasses")
    axes.set_yticks(y, [LABELS[n] for n in names])
    axes.set_xlim(0, 1)
    axes.set_xlabel("top-1 (nearest class mean, cosine)")
    axes.legend(loc="lower right")
    with atomic_file(path) as f:
        figure.savefig(f, format="png", dpi=120)


@flow(name="compare_backbones", log_prints=True)
def compare_backbones_flow(params_file: str = "params.yaml") -> dict:
    params = load_params(params_file)
    summary = run_scaled_out(params.compute, score_recognizers, params)
    write_json(BACKBONES_SUMMARY, summary)
    table = markdown_table(summary, params.recognition.far)
    with atomic_file(BACKBONES_TABLE, "w") as f:
        f.write(table)
    bar_plot(summary, BACKBONES_PLOT)
    print(table)
    return summary


if __name__ == "__main__":
    run_from_command_line(compare_backbones_flow, __doc__)
