"""Stage `evaluate_editors` (studies/celeba64): two generators' editors judged side by side by networks neither
trained against, on photos of people neither saw.

- The attribute judge: a classifier trained here on real faces of the judge's training people (evaluate.classifier);
  its own balanced accuracy on the held-out people is printed beside every control number.
- The identity judge: the dlib teacher (recognition/teacher.py). An edit is verified as the source person when the
  cosine of their descriptors passes the threshold that ``evaluate.identity_far`` of real different-person pairs pass.
- Per editor (``gan_baseline``: the middle editor as it was; ``gan``: with identity term and attention mask): each of
  ``evaluate.edits`` held-out photos edited to flip each attribute at each ``editing.strengths``; plain samples and
  samples the discriminator chose among ``editing.candidates``, reported apart; FID/KID in the teacher's space from
  ``evaluate.samples`` faces; the real-vs-synthetic detector on faces that went through the same encoding.
- The editors compared by the paired difference of "flipped and verified" per photo, with intervals over people.

Writes metrics/gan.json, metrics/gan.md, data/edit_outcomes.parquet, plots/edits.png and the judge
(``evaluate.classifier_out``). Run by `dvc repro evaluate_editors`, or `python -m pipelines.evaluate_editors`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from prefect import flow, task
from torchvision.utils import save_image

from facegen.config import GanConfig, Params, SamplingConfig, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel, to_tensor
from facegen.io import atomic_file, write_json
from facegen.metrics.attribute_classifier import train_attribute_classifier
from facegen.metrics.control import attribute_control
from facegen.metrics.convnet import holdout_split
from facegen.metrics.detector import encoded, real_vs_synthetic
from facegen.metrics.editing import EditJudges, judge_edits, summarise_edits
from facegen.metrics.feature_distance import fid_kid_of_features
from facegen.metrics.identity import cosine
from facegen.paths import EDIT_OUTCOMES, EDITORS_TABLE, EDITS_GRID, GAN_CHECKPOINT_NAME, GAN_METRICS
from pipelines import run_from_command_line
from recognition.embeddings import EmbeddingCache
from recognition.statistics import paired_difference
from recognition.teacher import DlibTeacher, cache_folder
from recognition.verified_edits import teacher_threshold

TARGET_ATTRIBUTES = ("Eyeglasses", "Smiling")  # the targets: >= 0.90 flipped and >= 0.80 verified
TARGET_FLIPPED, TARGET_VERIFIED = 0.90, 0.80
GRID_SOURCES = 8


def editors(params: Params) -> dict[str, GanConfig]:
    """The compared generators by name: the baseline first."""
    if params.gan_baseline is None:
        raise ValueError("evaluate_editors compares two generators: params needs gan_baseline beside gan")
    return {"baseline": params.gan_baseline, "identity": params.gan}


@task
def evaluate(params: Params) -> tuple[dict, pd.DataFrame]:
    start, e, editing = time.perf_counter(), params.evaluate, params.editing
    configs = editors(params)
    attributes = list(params.gan.attributes)
    faces = PreparedFaces(params.prepare.out, attributes=attributes)
    images = np.asarray(faces.images)
    rows = faces.annotations[attributes].to_numpy(np.float32)
    identities = faces.annotations["identity"].astype(str).to_numpy()
    judge, _ = train_attribute_classifier(
        images, rows, attributes, e.classifier, faces.annotations["identity"].to_numpy()
    )
    judge.save(e.classifier_out)
    _, held_out = holdout_split(
        len(images), e.classifier.holdout_fraction, e.classifier.seed, faces.annotations["identity"].to_numpy()
    )

    teacher = EmbeddingCache(
        cache_folder(params.recognition.teacher.embeddings), DlibTeacher(params.recognition.teacher.workers), 500
    )
    rng = np.random.default_rng(e.seed)
    real = np.sort(rng.choice(len(images), min(e.samples, len(images)), replace=False))
    real_teacher = teacher.embed(images[real])
    threshold = teacher_threshold(real_teacher, identities[real], e.identity_far)
    judges = EditJudges(judge, teacher.embed, threshold)
    sources = np.sort(rng.choice(held_out, min(e.edits, len(held_out)), replace=False))
    control_rows = rows[rng.choice(len(rows), e.control_samples)]
    real_encoded = encoded(images[real], e.detector_encoding, e.jpeg_quality)

    metrics: dict = {
        "judge": judge_report(judge.report, held_out, faces.annotations["identity"].to_numpy()),
        "teacher": {
            "threshold": round(threshold, 5),
            "far": e.identity_far,
            **same_person_rate(real_teacher, identities[real], threshold),
        },
        "edited_photos": int(len(sources)),
        "edited_people": int(len(np.unique(identities[sources]))),
        "strengths": list(editing.strengths),
        "candidates": editing.candidates,
        "editors": {},
    }
    tables, examples = [], {}
    for name, config in configs.items():
        checkpoint = config.out / GAN_CHECKPOINT_NAME
        plain = FaceModel.load(checkpoint, sampling=SamplingConfig())
        chosen = plain.with_sampling(SamplingConfig(candidates=editing.candidates))
        outcomes = judge_edits(plain, judges, images[sources], rows[sources], identities[sources], editing.strengths)
        tables.append(outcomes.table.assign(editor=name))
        examples[name] = outcomes.examples
        sampled_plain = attribute_control(judge, attributes, control_rows, _sampler(plain, e.seed + 1), flip=False)
        sampled_chosen = attribute_control(judge, attributes, control_rows, _sampler(chosen, e.seed + 1), flip=False)
        fake = plain.sample(torch.from_numpy(rows[real]), seed=e.seed)
        metrics["editors"][name] = {
            "checkpoint_sha256": plain.checkpoint_sha256,
            "editor_mask": config.editor_mask,
            "lambda_identity": config.lambda_identity,
            "edits": summarise_edits(outcomes.table),
            "sampled_plain": sampled_plain.accuracy,
            "sampled_discriminator_chosen": sampled_chosen.accuracy,
            "teacher_space": fid_kid_of_features(
                real_teacher, teacher.embed(fake), e.kid_subset_size, e.kid_subsets, e.seed
            ),
            "detector": real_vs_synthetic(real_encoded, encoded(fake, e.detector_encoding, e.jpeg_quality), e.detector)
            | {"encoding": e.detector_encoding, "jpeg_quality": e.jpeg_quality},
        }
    table = pd.concat(tables, ignore_index=True)
    metrics["attributes"] = per_attribute(metrics)
    metrics["identity_minus_baseline"] = paired_editors(table, e.seed)
    metrics["targets"] = targets_met(metrics)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    _write_grid(images[sources[:GRID_SOURCES]], examples, editing.strengths)
    return metrics, table


def judge_report(report: dict, held_out: np.ndarray, people: np.ndarray) -> dict:
    return {
        "heldout_balanced_accuracy": report["heldout_balanced_accuracy"],
        "heldout_images": report["heldout_images"],
        "heldout_people": int(len(np.unique(people[held_out]))),
    }


def same_person_rate(descriptors: np.ndarray, people: np.ndarray, threshold: float) -> dict:
    """How often the teacher verifies two real photos of one person (among ``descriptors``) at ``threshold``."""
    first, second = np.triu_indices(len(people), k=1)
    same = people[first] == people[second]
    similarity = cosine(descriptors[first[same]], descriptors[second[same]])
    similarity = similarity[np.isfinite(similarity)]
    return {
        "real_same_person_verified": round(float((similarity >= threshold).mean()), 4) if len(similarity) else None,
        "real_same_person_pairs": int(len(similarity)),
    }


def per_attribute(metrics: dict) -> dict:
    """attribute -> the judge's balanced accuracy beside each editor's edits and sampled control."""
    judge = metrics["judge"]["heldout_balanced_accuracy"]
    return {
        name: {"judge_balanced_accuracy": judge[name]}
        | {
            editor: {
                "edits": result["edits"][name],
                "sampled_plain": result["sampled_plain"][name],
                "sampled_discriminator_chosen": result["sampled_discriminator_chosen"][name],
            }
            for editor, result in metrics["editors"].items()
        }
        for name in judge
    }


def paired_editors(table: pd.DataFrame, seed: int) -> dict:
    """attribute -> strength -> identity editor minus baseline in "flipped and verified", same photos, with the
    95% interval over the photos' people."""
    table = table.assign(success=table["flipped"] & table["verified"]).rename(columns={"identity": "person"})
    wide = table.pivot_table(
        index=["attribute", "strength", "source", "person"], columns="editor", values="success", aggfunc="first"
    ).reset_index()
    out: dict = {}
    for (name, strength), rows in wide.groupby(["attribute", "strength"], sort=False):
        difference, low, high = paired_difference(
            rows["identity"].to_numpy(float), rows["baseline"].to_numpy(float), rows["person"].to_numpy(), seed=seed
        )
        out.setdefault(name, {})[f"{strength:g}"] = {
            "difference": round(difference, 4),
            "low": round(low, 4),
            "high": round(high, 4),
        }
    return out


def targets_met(metrics: dict) -> dict:
    """Per editor and target attribute: the strengths at which >= 0.90 of edits flip and >= 0.80 are verified."""
    return {
        editor: {
            name: [
                strength
                for strength, r in result["edits"][name].items()
                if r["flipped"] >= TARGET_FLIPPED and r["verified"] >= TARGET_VERIFIED
            ]
            for name in TARGET_ATTRIBUTES
            if name in result["edits"]
        }
        for editor, result in metrics["editors"].items()
    }


def markdown(metrics: dict) -> str:
    """metrics/gan.md: per attribute, each editor's flipped / verified share at each strength beside the judge."""
    strengths = [f"{s:g}" for s in metrics["strengths"]]
    names = list(metrics["editors"])
    head = "| attribute | judge balanced acc. | " + " | ".join(f"{n} s={s}" for n in names for s in strengths) + " |"
    lines = [
        f"# Editors judged by the attribute judge and the dlib teacher ({GAN_METRICS})",
        "",
        f"Each cell: share of {metrics['edited_photos']} held-out photos ({metrics['edited_people']} people) whose "
        f"edit the judge sees flipped / the teacher verifies as the same person (cosine >= "
        f"{metrics['teacher']['threshold']:.3f}, FAR {metrics['teacher']['far']:g} on real pairs).",
        "",
        head,
        "|---|---|" + "---|" * (len(names) * len(strengths)),
    ]
    for name, result in metrics["attributes"].items():
        cells = [
            f"{result[n]['edits'][s]['flipped']:.2f} / {result[n]['edits'][s]['verified']:.2f}"
            for n in names
            for s in strengths
        ]
        lines.append(f"| {name} | {result['judge_balanced_accuracy']:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Sampled faces: share where the judge sees the requested value, plain and chosen by the discriminator "
        f"among {metrics['candidates']} candidates.",
        "",
        "| attribute | judge balanced acc. | " + " | ".join(f"{n} plain | {n} chosen" for n in names) + " |",
        "|---|---|" + "---|---|" * len(names),
    ]
    for name, result in metrics["attributes"].items():
        cells = [f"{result[n]['sampled_plain']:.2f} | {result[n]['sampled_discriminator_chosen']:.2f}" for n in names]
        lines.append(f"| {name} | {result['judge_balanced_accuracy']:.2f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| editor | FID / KID in the teacher's space (generated vs real faces) | detector accuracy (both encoded) |",
        "|---|---|---|",
    ]
    for n, r in metrics["editors"].items():
        space = r["teacher_space"]
        distance = "no faces found" if space["fid"] is None else f"{space['fid']:.3f} / {space['kid_mean']:.4f}"
        lines.append(
            f"| {n} | {distance} ({space['generated']} vs {space['real']}) | {r['detector']['accuracy']:.3f} "
            f"({r['detector']['encoding']}) |"
        )
    lines += [
        "",
        f"Targets met (strengths with >= {TARGET_FLIPPED:.2f} flipped and >= {TARGET_VERIFIED:.2f} verified):",
    ]
    lines += [f"- {n}: {met}" for n, met in metrics["targets"].items()]
    return "\n".join(lines) + "\n"


def _sampler(model: FaceModel, seed: int):
    return lambda t: model.sample(torch.from_numpy(t), seed=seed)


def _write_grid(sources: np.ndarray, examples: dict, strengths: tuple[float, ...]) -> None:
    """plots/edits.png: one row per held-out photo: the photo, then for Eyeglasses and Smiling each editor's edits
    at each strength (baseline first)."""
    columns = [sources[: len(sources)]]
    for name in TARGET_ATTRIBUTES:
        for editor in examples:
            columns += [examples[editor][name, float(s)][: len(sources)] for s in strengths]
    grid = np.stack(columns, axis=1).reshape(-1, *sources.shape[1:])
    with atomic_file(EDITS_GRID) as f:
        save_image(to_tensor(grid).add(1).div(2), f, nrow=len(columns), format="png")


@flow(name="evaluate_editors", log_prints=True)
def evaluate_editors_flow(params_file: str = "params.yaml") -> dict:
    """Judge both editors; write metrics/gan.json and .md, the per-edit outcomes and the edit grid."""
    metrics, table = evaluate(load_params(params_file))
    with atomic_file(EDIT_OUTCOMES) as f:
        table.to_parquet(f, index=False)
    write_json(GAN_METRICS, metrics)
    with atomic_file(EDITORS_TABLE, "w") as f:
        f.write(markdown(metrics))
    print(markdown(metrics))
    return metrics


if __name__ == "__main__":
    run_from_command_line(evaluate_editors_flow, __doc__)
