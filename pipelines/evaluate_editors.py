"""Stage `evaluate_editors` (studies/celeba64): two generators' editors judged side by side by networks neither
trained against, on photos of people neither saw (issues 20, 29).

- People in three groups (``editing.judge_fraction``; facegen.metrics.editing.study_people): the generators'
  people, the judges' people and the held-out people whose photos are edited; nobody with a folder in
  ``editing.exclude_folder`` (faces64's people) is in any.
- The attribute judge: a classifier trained here on the judges' people (evaluate.classifier); its balanced
  accuracy, sensitivity and false-positive rate on the held-out people's real faces are reported.
- Two identity judges: the dlib teacher (recognition/models/teacher.py) and Fisherfaces fitted on the judges' people
  (recognition/models/fisherfaces.py: nothing of it comes from dlib or from the distilled facenet, the identity term).
  "Verified": the cosine that ``evaluate.identity_far`` of real different-person pairs pass; against the source
  photo and against the person's *other* held-out photos (at least half of them).
- Per editor: each of ``evaluate.edits`` held-out photos as it is (``noop``), reconstructed (attributes
  unchanged) and edited to flip each attribute at each ``editing.strengths``; targets read at the pre-chosen
  ``editing.strength``. Similarity curves over thresholds; memorisation (generated faces' nearest training faces
  in the teacher's space against held-out real faces'); FID/KID in the teacher's space beside two halves of the
  real faces; the real-vs-synthetic detector on samples and on edits alone (real and fake through one encoding).
- The editors compared by the paired difference of "flipped and verified by the teacher against the person's
  other photos" per photo, with intervals over people.
- Each editor in ``editing.confined`` is judged a second time as ``<editor>_confined``: the same checkpoint with
  ``sampling.confine_edits`` (each edit kept inside the changed attribute's band, facegen/gan/regions.py), its
  edits measured as above and against the unconfined editor; its samples are its editor's, not measured twice.

Writes metrics/gan.json, metrics/gan.md, data/edit_outcomes.parquet, plots/edits.png, plots/identity_curves.png,
plots/nearest_training_faces.png and the judge (``evaluate.classifier_out``). Run by `dvc repro evaluate_editors`,
or `python -m pipelines.evaluate_editors`.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from prefect import flow, task
from torchvision.utils import save_image

from facegen.config import CONFINED, EvaluateConfig, GanConfig, Params, SamplingConfig, load_params
from facegen.data.prepared import PreparedFaces
from facegen.gan.inference import FaceModel, save_grid, to_tensor
from facegen.io import atomic_file, write_json
from facegen.metrics.attribute_classifier import train_attribute_classifier
from facegen.metrics.control import attribute_control
from facegen.metrics.detector import detect_edits, encoded, real_vs_synthetic
from facegen.metrics.editing import (
    EditJudges,
    EditOutcomes,
    Gallery,
    IdentityJudge,
    judge_edits,
    similarity_curves,
    study_people,
    summarise_edits,
)
from facegen.metrics.feature_distance import fid_kid_of_features, real_vs_real_reference
from facegen.metrics.identity import cosine
from facegen.metrics.memorisation import data_copying_test, memorisation_test, nearest_neighbours, neighbour_grid
from facegen.report.rating import write_rating_set
from facegen.paths import (
    EDIT_OUTCOMES,
    EDITORS_TABLE,
    EDITS_GRID,
    GAN_CHECKPOINT_NAME,
    GAN_METRICS,
    IDENTITY_CURVES,
    MEMORISATION_GRID,
    RATING_SET,
)
from pipelines import run_from_command_line
from recognition.augmentation.verified_edits import teacher_threshold
from recognition.models.embeddings import EmbeddingCache
from recognition.models.fisherfaces import Fisherfaces
from recognition.statistics import paired_difference
from recognition.models.teacher import DlibTeacher, cache_folder

TARGET_ATTRIBUTES = ("Eyeglasses", "Smiling")  # the targets: >= 0.90 flipped and >= 0.80 verified
TARGET_FLIPPED, TARGET_VERIFIED = 0.90, 0.80
GRID_SOURCES = 8
RATING_FACES = 50  # real and as many edited faces in the rating set people are shown
BASELINE = "baseline"  # the middle editor as it was (gan_baseline)
STUDIED = "identity"  # the editor under study (gan): its memorisation grid is drawn
# The generator sections' names here (facegen.config.GAN_SECTIONS), the baseline first; each of the studied
# editor's variants is a realism lever of issue 29: the eye and mouth discriminator, longer training, the
# discriminator on the face network's maps.
EDITOR_NAMES = {
    "gan_baseline": BASELINE,
    "gan": STUDIED,
    "gan_region": "region",
    "gan_long": "long",
    "gan_feature": "feature",
}
# Paired: a change against what it changes (a variant's contrast where params has it)
CONTRASTS = ((STUDIED, BASELINE), *((name, STUDIED) for name in list(EDITOR_NAMES.values())[2:]))


def editors(params: Params) -> dict[str, GanConfig]:
    """The compared generators by name (:data:`EDITOR_NAMES`): the baseline first, then the studied editor and
    those of its variants that params has."""
    if params.gan_baseline is None:
        raise ValueError("evaluate_editors compares two generators: params needs gan_baseline beside gan")
    sections = params.gan_sections()
    missing = [section for section in params.editing.confined if section not in sections]
    if missing:
        raise ValueError(f"editing.confined names {missing}, which params has no section for")
    return {name: sections[section] for section, name in EDITOR_NAMES.items() if section in sections}


def confined_editors(params: Params) -> list[str]:
    """The editors (by name) judged a second time with their edits confined (``editing.confined``)."""
    return [EDITOR_NAMES[section] for section in params.editing.confined]


@task
def evaluate(params: Params) -> tuple[dict, pd.DataFrame]:
    start, e, editing = time.perf_counter(), params.evaluate, params.editing
    configs = editors(params)
    attributes = list(params.gan.attributes)
    faces = PreparedFaces(params.prepare.out, attributes=attributes)
    images = np.asarray(faces.images)
    rows = faces.annotations[attributes].to_numpy(np.float32)
    identities = faces.annotations["identity"].astype(str).to_numpy()
    image_ids = faces.annotations["image_id"].astype(str).to_numpy()
    groups = study_people(identities, e.classifier, editing)
    judged = np.concatenate([groups.judge, groups.held_out])
    judge, _ = train_attribute_classifier(
        images[judged],
        rows[judged],
        attributes,
        e.classifier,
        identities[judged],
        held_out=np.arange(len(groups.judge), len(judged)),
    )
    judge.save(e.classifier_out)
    fisher = Fisherfaces(editing.fisherfaces_components, e.seed).fit(images[groups.judge], identities[groups.judge])

    teacher = EmbeddingCache(
        cache_folder(params.recognition.teacher.embeddings), DlibTeacher(params.recognition.teacher.workers), 500
    )
    rng = np.random.default_rng(e.seed)
    real = np.sort(rng.choice(len(images), min(e.samples, len(images)), replace=False))
    real_teacher = teacher.embed(images[real])
    real_fisher = fisher.embed(images[real])
    thresholds = {
        "teacher": teacher_threshold(real_teacher, identities[real], e.identity_far),
        "fisherfaces": teacher_threshold(real_fisher, identities[real], e.identity_far),
    }
    judges = EditJudges(
        judge,
        {
            "teacher": IdentityJudge(teacher.embed, thresholds["teacher"]),
            "fisherfaces": IdentityJudge(fisher.embed, thresholds["fisherfaces"]),
        },
    )
    candidates = groups.held_out[~np.isin(image_ids[groups.held_out], sorted(tuning_photos(editing.exclude_photos)))]
    sources = np.sort(rng.choice(candidates, min(e.edits, len(candidates)), replace=False))
    shown = groups.held_out[np.isin(identities[groups.held_out], identities[sources])]
    gallery = Gallery(images[shown], identities[shown], image_ids[shown])
    control_rows = rows[rng.choice(len(rows), e.control_samples)]
    real_encoded = encoded(images[real], e.detector_encoding, e.jpeg_quality)
    same_person = {
        "teacher": same_person_similarities(real_teacher, identities[real]),
        "fisherfaces": same_person_similarities(real_fisher, identities[real]),
    }
    metrics: dict = {
        "people": {name: int(len(np.unique(identities[rows_]))) for name, rows_ in vars(groups).items()},
        "judge": judge_report(judge.report, groups.held_out, identities),
        "identity_judges": {
            name: {
                "threshold": round(threshold, 5),
                "far": e.identity_far,
                "real_same_person_verified": _share(same_person[name] >= threshold),
                "real_same_person_pairs": int(len(same_person[name])),
            }
            for name, threshold in thresholds.items()
        },
        "teacher_space_real_vs_real": real_vs_real_reference(real_teacher, e.kid_subset_size, e.kid_subsets, e.seed),
        "edited_photos": int(len(sources)),
        "edited_people": int(len(np.unique(identities[sources]))),
        "gallery_photos": int(len(shown)),
        "tuning_photos_left_out": int(len(groups.held_out) - len(candidates)),
        "strengths": list(editing.strengths),
        "strength": editing.strength,
        "candidates": editing.candidates,
        "editors": {},
    }
    tables, examples = [], {}
    in_training, in_unseen = np.isin(real, groups.generator), np.isin(real, groups.held_out)
    training, unseen = real[in_training], real[in_unseen]
    judged = partial(
        judge_edits,
        judges=judges,
        sources=images[sources],
        source_rows=rows[sources],
        source_ids=image_ids[sources],
        identities=identities[sources],
        strengths=editing.strengths,
        gallery=gallery,
        keep=editing.strength,
    )
    confined = confined_editors(params)
    for name, config in configs.items():
        checkpoint = config.out / GAN_CHECKPOINT_NAME
        plain = FaceModel.load(checkpoint, sampling=SamplingConfig())
        chosen = plain.with_sampling(SamplingConfig(candidates=editing.candidates))
        outcomes = judged(plain)
        tables.append(outcomes.table.assign(editor=name))
        if name == STUDIED:
            edited = np.concatenate([outcomes.at_strength[a] for a in TARGET_ATTRIBUTES if a in outcomes.at_strength])
            shown_real = rng.choice(unseen, min(RATING_FACES, len(unseen)), replace=False)
            shown_edits = rng.choice(len(edited), min(RATING_FACES, len(edited)), replace=False)
            write_rating_set(images[shown_real], edited[shown_edits], RATING_SET, seed=e.seed)
        examples[name] = outcomes.examples
        sampled_plain = attribute_control(judge, attributes, control_rows, _sampler(plain, e.seed + 1), flip=False)
        sampled_chosen = attribute_control(judge, attributes, control_rows, _sampler(chosen, e.seed + 1), flip=False)
        fake = plain.sample(torch.from_numpy(rows[real]), seed=e.seed)
        fake_teacher = teacher.embed(fake)
        metrics["editors"][name] = {
            "checkpoint_sha256": plain.checkpoint_sha256,
            "editor_mask": config.editor_mask,
            "lambda_identity": config.lambda_identity,
            "lambda_region": config.lambda_region,
            "edits": summarise_edits(outcomes.table),
            "sampled_plain": sampled_plain.accuracy,
            "sampled_discriminator_chosen": sampled_chosen.accuracy,
            "teacher_space": fid_kid_of_features(real_teacher, fake_teacher, e.kid_subset_size, e.kid_subsets, e.seed),
            "detector": real_vs_synthetic(real_encoded, encoded(fake, e.detector_encoding, e.jpeg_quality), e.detector)
            | {"encoding": e.detector_encoding, "jpeg_quality": e.jpeg_quality},
            "detector_on_edits": detect_target_edits(images[unseen], outcomes, e),
            "memorisation": memorisation(
                fake,
                fake_teacher,
                images[training],
                real_teacher[in_training],
                real_teacher[in_unseen],
                MEMORISATION_GRID if name == STUDIED else None,
                e.seed,
            ),
            "confined_from": None,
        }
        if name in confined:  # the same editor, its edits kept inside the changed attribute's band
            kept = judged(plain.confined())
            tables.append(kept.table.assign(editor=name + CONFINED))
            examples[name + CONFINED] = kept.examples
            metrics["editors"][name + CONFINED] = metrics["editors"][name] | {
                "edits": summarise_edits(kept.table),
                "detector_on_edits": detect_target_edits(images[unseen], kept, e),
                "confined_from": name,
            }
    table = pd.concat(tables, ignore_index=True)
    metrics["attributes"] = per_attribute(metrics)
    metrics["similarity_curves"] = {
        name: similarity_curves(table[table["editor"] == name], editing.strength, same_person)
        for name in metrics["editors"]
    }
    for editor, reference in (*CONTRASTS, *((name + CONFINED, name) for name in confined)):
        if editor in metrics["editors"]:
            metrics[f"{editor}_minus_{reference}"] = paired_editors(table, editor, reference, e.seed)
    metrics["targets"] = targets_met(metrics)
    metrics["seconds"] = round(time.perf_counter() - start, 1)
    _write_grid(images[sources[:GRID_SOURCES]], examples, editing.strengths)
    _curves_plot(metrics["similarity_curves"][STUDIED], thresholds)
    return metrics, table


def detect_target_edits(real: np.ndarray, outcomes: EditOutcomes, e: EvaluateConfig) -> dict:
    """:func:`detect_edits` for each target attribute's edits at the chosen strength."""
    return {
        attribute: detect_edits(real, edits, e)
        for attribute, edits in outcomes.at_strength.items()
        if attribute in TARGET_ATTRIBUTES
    }


def tuning_photos(path: Path | None) -> set[str]:
    """Image ids of the photos the editor's settings were chosen on (``editing.exclude_photos``): never edited."""
    if path is None:
        return set()
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the photos to leave out (editing.exclude_photos): {err}") from None
    if "image_id" not in table:
        raise ValueError(f"{path}: no 'image_id' column (editing.exclude_photos)")
    return set(table["image_id"])


def memorisation(
    fake: np.ndarray,
    fake_teacher: np.ndarray,
    training_images: np.ndarray,
    training_teacher: np.ndarray,
    unseen_teacher: np.ndarray,
    grid: Path | None,
    seed: int,
) -> dict:
    """Are generated faces closer to the generator's training faces than real faces it never saw are (the
    teacher's space, nearest neighbour)? Beside it, the data-copying control (``data_copying``): each generated
    face's nearest training face against its nearest unseen real face, among as many of each. With ``grid``,
    generated faces beside their 3 nearest training faces."""
    generated, nearest = nearest_neighbours(fake_teacher, training_teacher, k=min(3, len(training_teacher)))
    held_out, _ = nearest_neighbours(unseen_teacher, training_teacher)
    usable = int(np.isfinite(generated[:, 0]).sum()), int(np.isfinite(held_out[:, 0]).sum())
    if grid is not None:
        if usable[0]:
            neighbour_grid(fake, training_images, nearest, grid)
        else:  # the teacher found no generated face: the grid shows the faces it could not read
            save_grid(fake[:GRID_SOURCES], grid, nrow=GRID_SOURCES)
    if min(usable) < 2:
        return {"generated": usable[0], "held_out": usable[1], "p_closer": None, "auc": None, "data_copying": None}
    return memorisation_test(generated[:, 0], held_out[:, 0]) | {
        "training_faces": int(len(training_teacher)),
        "data_copying": data_copying_test(fake_teacher, training_teacher, unseen_teacher, seed=seed),
    }


def judge_report(report: dict, held_out: np.ndarray, people: np.ndarray) -> dict:
    return {
        "heldout_balanced_accuracy": report["heldout_balanced_accuracy"],
        "heldout_sensitivity": report["heldout_sensitivity"],
        "heldout_false_positive_rate": report["heldout_false_positive_rate"],
        "heldout_images": report["heldout_images"],
        "heldout_people": int(len(np.unique(people[held_out]))),
    }


def same_person_similarities(descriptors: np.ndarray, people: np.ndarray) -> np.ndarray:
    """Cosines of every pair of real photos of one person among ``descriptors`` (faces not found left out)."""
    first, second = np.triu_indices(len(people), k=1)
    same = people[first] == people[second]
    similarity = cosine(descriptors[first[same]], descriptors[second[same]])
    return similarity[np.isfinite(similarity)]


def per_attribute(metrics: dict) -> dict:
    """attribute -> the judge's held-out rates beside each editor's edits (at the chosen strength), its
    references (the photo itself, its reconstruction) and sampled control."""
    judge, strength = metrics["judge"], f"{metrics['strength']:g}"
    return {
        name: {
            "judge_balanced_accuracy": judge["heldout_balanced_accuracy"][name],
            "judge_sensitivity": judge["heldout_sensitivity"][name],
            "judge_false_positive_rate": judge["heldout_false_positive_rate"][name],
        }
        | {
            editor: {
                "edit": result["edits"]["edit"][name][strength],
                "reconstruction": result["edits"]["reconstruction"][name]["0"],
                "noop": result["edits"]["noop"][name]["0"],
                "sampled_plain": result["sampled_plain"][name],
                "sampled_discriminator_chosen": result["sampled_discriminator_chosen"][name],
            }
            for editor, result in metrics["editors"].items()
        }
        for name in judge["heldout_balanced_accuracy"]
    }


def paired_editors(table: pd.DataFrame, editor: str, reference: str, seed: int) -> dict:
    """attribute -> strength -> ``editor`` minus ``reference`` in "flipped, and verified by the teacher against
    the person's other photos", same photos, with the 95% interval over the photos' people."""
    table = table[table["kind"] == "edit"]
    table = table.assign(success=table["flipped"] & (table["other_teacher"] == 1)).rename(
        columns={"identity": "person"}
    )
    wide = table.pivot_table(
        index=["attribute", "strength", "source", "person"], columns="editor", values="success", aggfunc="first"
    ).reset_index()
    out: dict = {}
    for (name, strength), rows in wide.groupby(["attribute", "strength"], sort=False):
        difference, low, high = paired_difference(
            rows[editor].to_numpy(float), rows[reference].to_numpy(float), rows["person"].to_numpy(), seed=seed
        )
        out.setdefault(name, {})[f"{strength:g}"] = {
            "difference": round(difference, 4),
            "low": round(low, 4),
            "high": round(high, 4),
        }
    return out


def targets_met(metrics: dict) -> dict:
    """Per editor and target attribute, at the chosen strength: >= 0.90 of edits flipped by the judge and >= 0.80
    verified by both identity judges against the person's other photos; each number beside its target."""
    strength = f"{metrics['strength']:g}"
    out: dict = {}
    for editor, result in metrics["editors"].items():
        for name in TARGET_ATTRIBUTES:
            if name not in result["edits"]["edit"]:
                continue
            r = result["edits"]["edit"][name][strength]
            verified = {j: r[f"other_{j}"] for j in metrics["identity_judges"]}
            met = r["flipped"] >= TARGET_FLIPPED and all(
                v is not None and v >= TARGET_VERIFIED for v in verified.values()
            )
            out.setdefault(editor, {})[name] = {
                "flipped": r["flipped"],
                "verified_by_other_photos": verified,
                "met": met,
            }
    return out


def markdown(metrics: dict) -> str:
    """metrics/gan.md: per attribute at the chosen strength, each editor's edits beside the references."""
    strength = metrics["strength"]
    judges = list(metrics["identity_judges"])
    lines = [
        f"# Editors judged by judges they never met ({GAN_METRICS})",
        "",
        f"{metrics['edited_photos']} held-out photos of {metrics['edited_people']} people, edited at strength "
        f"{strength:g} (chosen before the run); {metrics['gallery_photos']} photos of those people as their other "
        "photos. People: " + ", ".join(f"{k} {v}" for k, v in metrics["people"].items()) + ".",
        "",
        "Identity judges: "
        + "; ".join(
            f"{j} (verified at cosine >= {r['threshold']:.3f}, FAR {r['far']:g}; real same-person pairs pass "
            f"{r['real_same_person_verified']})"
            for j, r in metrics["identity_judges"].items()
        ),
        "",
        "Each row: flipped by the attribute judge | verified against the source photo ("
        + " / ".join(judges)
        + ") | verified by the person's other photos ("
        + " / ".join(judges)
        + ").",
        "",
        "| attribute | judge bal. acc. / sens. / FPR | face | flipped | vs source | vs other photos |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in metrics["attributes"].items():
        judge = (
            f"{result['judge_balanced_accuracy']:.2f} / {_num(result['judge_sensitivity'])} / "
            f"{_num(result['judge_false_positive_rate'])}"
        )
        first = next(iter(metrics["editors"]))
        rows = [("the photo itself", result[first]["noop"])]
        for editor in metrics["editors"]:
            rows += [
                (f"{editor}: reconstruction", result[editor]["reconstruction"]),
                (f"{editor}: edit", result[editor]["edit"]),
            ]
        for label, r in rows:
            lines.append(
                f"| {name} | {judge} | {label} | {r['flipped']:.2f} | "
                + " / ".join(f"{r[f'verified_{j}']:.2f}" for j in judges)
                + " | "
                + " / ".join(_num(r[f"other_{j}"]) for j in judges)
                + " |"
            )
    generators = [n for n, r in metrics["editors"].items() if r["confined_from"] is None]  # confined: same samples
    lines += [
        "",
        f"Sampled faces: share where the judge sees the requested value, plain and chosen by the discriminator "
        f"among {metrics['candidates']} candidates.",
        "",
        "| attribute | " + " | ".join(f"{n} plain | {n} chosen" for n in generators) + " |",
        "|---|" + "---|---|" * len(generators),
    ]
    for name, result in metrics["attributes"].items():
        cells = [
            f"{result[n]['sampled_plain']:.2f} | {result[n]['sampled_discriminator_chosen']:.2f}" for n in generators
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    reference = metrics["teacher_space_real_vs_real"]
    lines += [
        "",
        "| editor | FID / KID, teacher's space (real vs real: "
        f"{_distance(reference)}) | detector on samples | detector on edits | memorisation: p (closer than "
        "unseen real faces), AUC | data copying: p (closer to training than to unseen faces), share |",
        "|---|---|---|---|---|---|",
    ]
    for n, r in metrics["editors"].items():
        on_edits = "; ".join(
            f"{a} " + ", ".join(f"{k} {v['accuracy']:.2f}" for k, v in d.items())
            for a, d in r["detector_on_edits"].items()
        )
        if r["confined_from"] is not None:  # its samples are its editor's
            lines.append(f"| {n} | as {r['confined_from']} | as {r['confined_from']} | {on_edits} | | |")
            continue
        m = r["memorisation"]
        memorised = "too few faces found" if m["p_closer"] is None else f"{m['p_closer']:.3g}, {m['auc']:.3f}"
        c = m["data_copying"]
        copying = "—" if c is None else f"{c['p_training_closer']:.3g}, {c['share_closer_to_training']:.3f}"
        lines.append(
            f"| {n} | {_distance(r['teacher_space'])} | {r['detector']['accuracy']:.3f} ({r['detector']['encoding']}) "
            f"| {on_edits} | {memorised} | {copying} |"
        )
    lines += [
        "",
        f"Targets at strength {strength:g} (>= {TARGET_FLIPPED:.2f} flipped, >= {TARGET_VERIFIED:.2f} verified by "
        "both judges against other photos):",
    ]
    for editor, met in metrics["targets"].items():
        lines += [
            f"- {editor} {a}: flipped {r['flipped']:.2f}, verified by other photos "
            + " / ".join(f"{j} {_num(v)}" for j, v in r["verified_by_other_photos"].items())
            + (": met" if r["met"] else ": not met")
            for a, r in met.items()
        ]
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _share(flags: np.ndarray) -> float | None:
    return round(float(np.mean(flags)), 4) if len(flags) else None


def _distance(space: dict) -> str:
    return "no faces found" if space["fid"] is None else f"{space['fid']:.3f} / {space['kid_mean']:.4f}"


def _curves_plot(curves: dict, thresholds: dict[str, float]) -> None:
    """plots/identity_curves.png: per identity judge, the share verified against the source over thresholds."""
    figure = Figure(figsize=(4.2 * len(curves), 3.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(curves)))
    for ax, (judge, curve) in zip(axes, curves.items()):
        for kind, label in (
            ("edit", "edits"),
            ("reconstruction", "reconstructions"),
            ("noop", "the photo itself"),
            ("real_same_person", "real same-person pairs"),
        ):
            if curve[kind]:
                ax.plot(curve["thresholds"], curve[kind], label=label)
        ax.axvline(thresholds[judge], color="grey", lw=1, ls="--")
        ax.set_title(judge, fontsize=9)
        ax.set_xlabel("cosine threshold")
        ax.set_ylabel("share verified against the source")
    axes[0].legend(fontsize=7)
    with atomic_file(IDENTITY_CURVES) as f:
        figure.savefig(f, format="png", dpi=110)


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
