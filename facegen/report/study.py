"""What the study's report shows, read from the stages' outputs: one section per question a newcomer asks.

Every input is optional: a stage that has not run yet is named on the page instead of breaking it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import pandas as pd

from facegen.config import Params
from facegen.io import PNG_SOFTWARE, atomic_file, check_file_output, is_facegen_png, read_json
from facegen.paths import (
    AUGMENT_FACES_GRID,
    AUGMENTATION_PLOT,
    AUGMENTATION_TABLE,
    BACKBONES_PLOT,
    BACKBONES_TABLE,
    CONTROL_SAMPLES,
    GAN_METRICS,
    GAN_PLOTS,
    RECOGNITION_PLOT,
    RECOGNITION_TABLE,
)
from facegen.report.page import Figure, Markdown, Section, Table, is_report_page, write_page

LEAD = """**Do GAN-made synthetic faces help a face-recognition system, and for whom?** This page is one run of
the study: an attribute-conditional GAN learns to draw faces with chosen attributes and to edit real
faces; networks trained here judge it; balanced synthetic datasets are generated from it; and an
attendance recognizer (a roster of people, a few enrolment photos each) is trained with and without
the synthetic faces."""


def embedded_markdown(text: str) -> str:
    """A stage's markdown file inside a report section: its title dropped, headings two levels down, and
    its own relative images (shown by the report separately) left out."""
    lines = text.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    kept = [("##" + line) if line.startswith("#") else line for line in lines if not line.lstrip().startswith("![")]
    return "\n".join(kept)


def _latest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def _training_curves(metrics_csv: Path, png: Path) -> Path:
    frame = pd.read_csv(metrics_csv)
    losses = [c for c in frame.columns if c.endswith("_loss")]
    accuracies = [c for c in frame.columns if c.endswith("_accuracy")]
    fig = matplotlib.figure.Figure(figsize=(11, 3.6))  # no pyplot: no GUI backend, no global figure state
    left, right = fig.subplots(1, 2)
    frame.plot(x="step", y=losses, ax=left, title="losses")
    frame.plot(
        x="step", y=accuracies, ax=right, title="attribute accuracy (discriminator's classifier)", ylim=(0, 1.02)
    )
    fig.tight_layout()
    check_file_output(png, is_facegen_png, "a facegen PNG")
    with atomic_file(png) as f:
        fig.savefig(f, format="png", dpi=90, metadata={"Software": PNG_SOFTWARE})
    return png


def gan_section(params: Params, assets: Path) -> Section:
    out = params.gan.out
    section = Section(
        "1. The generator: new faces and edits",
        f"Model `{params.gan.model}`, loss `{params.gan.loss}`, conditioned on "
        f"{', '.join(f'`{a}`' for a in params.gan.attributes)}.",
    )
    if grid := _latest(out, "grid_*.png"):
        section.blocks.append(
            Figure(
                grid,
                "Sampled faces. Top row: no attribute; each further row turns one "
                "attribute on; each column keeps the same noise z.",
            )
        )
    else:
        section.missing.append(f"{out}/grid_*.png (stage train_gan)")
    if edits := _latest(out, "edits_*.png"):
        section.blocks.append(Figure(edits, "Edits of real faces: the source photo, then each attribute flipped."))
    elif params.gan.model == "cgan" and params.gan.editor:
        section.missing.append(f"{out}/edits_*.png (stage train_gan)")
    if (out / "metrics.csv").is_file():
        section.blocks.append(
            Figure(_training_curves(out / "metrics.csv", assets / "gan_training.png"), "Training curves.")
        )
    else:
        section.missing.append(f"{out}/metrics.csv (stage train_gan)")
    return section


def evaluation_section() -> Section:
    section = Section(
        "2. How good is it? (judged by networks trained here, no downloads)",
        "An attribute classifier trained on real faces checks that the requested attributes are "
        "there; FID/KID and precision/recall compare samples with real faces in that "
        "classifier's feature space; a detector tries to tell real from generated (50% = it "
        "cannot); identity preservation asks whether an edit is still the same person.",
    )
    if not GAN_METRICS.is_file():
        section.missing.append(f"{GAN_METRICS} (stage evaluate_gan)")
        return section
    m = read_json(GAN_METRICS)
    control = pd.DataFrame(
        {
            "attribute": [a for a in m["control_sampled"] if a != "mean"],
            "classifier held-out accuracy": [
                m["classifier"]["heldout_accuracy"].get(a) for a in m["control_sampled"] if a != "mean"
            ],
            "control, sampled faces": [m["control_sampled"][a] for a in m["control_sampled"] if a != "mean"],
            "control, edited faces": [m.get("control_edited", {}).get(a) for a in m["control_sampled"] if a != "mean"],
        }
    )
    section.blocks.append(Table(control.round(3), "How often the classifier finds the requested attribute"))
    identity, generator = m.get("identity", {}), m.get("generator", {})
    summary = pd.DataFrame(
        {
            "metric": [
                "sampling: candidates per sampled face",
                "sampling: edit strength",
                "sampling: samples refined by the editor",
                "sampling: refine strength",
                "FID (classifier features)",
                "KID",
                "precision",
                "recall",
                "density",
                "coverage",
                "latent diversity (1: as varied as real faces alike in attributes)",
                "real-vs-synthetic detector accuracy",
                "detector p-value",
                "edits: mean cosine similarity to source",
                "edits verified as same person",
            ],
            "value": [
                generator.get("candidates", 1),
                generator.get("edit_strength", 1.0),
                generator.get("refine", False),
                generator.get("refine_strength", 1.0),
                m.get("fid"),
                m.get("kid_mean"),
                m.get("precision"),
                m.get("recall"),
                m.get("density"),
                m.get("coverage"),
                m.get("latent_diversity", {}).get("ratio"),
                m["detector"]["accuracy"],
                f"{m['detector']['p_value']:.2g}",
                identity.get("cosine_mean"),
                identity.get("verified_share"),
            ],
        }
    )
    section.blocks.append(Table(summary, "Distribution and identity metrics"))
    if (GAN_PLOTS / CONTROL_SAMPLES).is_file():
        section.blocks.append(Figure(GAN_PLOTS / CONTROL_SAMPLES, "Samples the control accuracy was measured on."))
    return section


def datasets_section(params: Params) -> Section:
    section = Section(
        "3. Balanced synthetic datasets",
        "Each dataset below is DVC-tracked; pull it with `dvc get`/`dvc import` or load it with "
        "`facegen.datasets.SyntheticFaces`. Its data card proves the balance.",
    )
    for dataset in params.generate.datasets:
        folder = params.generate.out / dataset.name
        if not (folder / "datacard.md").is_file():
            section.missing.append(f"{folder}/datacard.md (stage generate)")
            continue
        section.blocks.append(Markdown(f"#### `{dataset.name}` ({dataset.mode})"))
        if (folder / "grid.png").is_file():
            section.blocks.append(Figure(folder / "grid.png", f"A sample of {dataset.name}."))
        section.blocks.append(Markdown(embedded_markdown((folder / "datacard.md").read_text())))
    return section


def recognition_section() -> Section:
    section = Section(
        "4. Does it help recognition? The attendance experiment",
        "A roster of people enrols a few photos each (chosen, where possible, without eyeglasses "
        "or a smile); check-ins must be named, visitors rejected. `baseline` uses the photos "
        "alone, `classic` adds flips/crops/colour jitter, `gan` adds the editor's variants of "
        "each enrolment photo, `both` adds both. Intervals are 95% bootstrap intervals.",
    )
    if RECOGNITION_TABLE.is_file():
        section.blocks.append(Markdown(embedded_markdown(RECOGNITION_TABLE.read_text())))
    else:
        section.missing.append(f"{RECOGNITION_TABLE} (stage compare)")
    if RECOGNITION_PLOT.is_file():
        section.blocks.append(Figure(RECOGNITION_PLOT, "Accuracy by condition, with 95% intervals."))
    return section


def recognizers_section() -> Section:
    section = Section(
        "1. Is the recognizer worth measuring with?",
        "Every recognizer on the same attendance split (nearest class mean by cosine; open-set threshold set on "
        "the calibration people), with 95% intervals over roster people (stage compare_backbones).",
    )
    section.blocks.extend(_table_and_figure(BACKBONES_TABLE, BACKBONES_PLOT, "Top-1 per recognizer.", section))
    return section


def augmentation_section() -> Section:
    section = Section(
        "2. Can eyeglasses at enrolment help it, and how close do GAN edits come?",
        "Each arm against its recognizer's baseline on the same check-ins: the paired difference with a 95% "
        "interval over people, each distinct photo once (stage augmentation). The oracle enrols a real eyeglass "
        "photo of the person, the reconstruction the editor's output with nothing changed; one contrast (one "
        "verified eyeglass edit per photo, prototypes) is pre-specified, the rest Holm-adjusted.",
    )
    section.blocks.extend(
        _table_and_figure(
            AUGMENTATION_TABLE, AUGMENTATION_PLOT, "Paired differences to baseline (forest plot).", section
        )
    )
    if AUGMENT_FACES_GRID.is_file():
        section.blocks.append(
            Figure(
                AUGMENT_FACES_GRID,
                "Enrolment photos, their best eyeglasses edit and their reconstruction (stage augment_faces).",
            )
        )
    return section


def _table_and_figure(table: Path, figure: Path, caption: str, section: Section) -> list:
    blocks = []
    if table.is_file():
        blocks.append(Markdown(embedded_markdown(table.read_text())))
    else:
        section.missing.append(f"{table}")
    if figure.is_file():
        blocks.append(Figure(figure, caption))
    return blocks


def write_study_report(params: Params, out: Path, study: str = "demo") -> Path:
    """Write the one-page report (`out`, self-contained HTML) from whatever the stages have produced: the demo
    study's four questions, or (``study="faces64"``) the recognizers and the augmentation experiment."""
    if study == "faces64":
        footer = "Reproduce with `cd studies/faces64 && dvc repro`."
        title = "facegen faces64 study: the recognizer, and GAN augmentation on it"
        return write_page(out, title, LEAD, [recognizers_section(), augmentation_section()], footer)
    check_file_output(out, is_report_page, "a facegen report page")  # before any asset is written beside it
    assets = out.parent / "assets"
    sections = [gan_section(params, assets), evaluation_section(), datasets_section(params), recognition_section()]
    footer = (
        f"Data source: {params.data.source} at {params.data.image_size}x{params.data.image_size}. "
        "Reproduce with `dvc repro`; compare runs with `dvc exp show` and `dvc metrics diff`."
    )
    return write_page(out, "facegen: does GAN augmentation help face recognition?", LEAD, sections, footer)
