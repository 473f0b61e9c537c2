"""Stage `evaluate_gan`: judge the generator with networks trained here (no Inception download needed).

Run by `dvc repro evaluate_gan`, or standalone: `python -m pipelines.evaluate_gan [--params params.yaml]`.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from facegen.config import Params, load_params
from facegen.metrics.evaluate import evaluate_generator
from facegen.paths import BACKBONE, GAN_METRICS
from pipelines import run_from_command_line
from recognition.models.backbone import identity_network


@task
def evaluate(params: Params) -> dict:
    """The generator's metrics; edits are judged by the recognition backbone, when `pretrain_backbone` made one."""
    return evaluate_generator(params, identity_network(BACKBONE, params.recognition.input_size))


@flow(name="evaluate_gan", log_prints=True)
def evaluate_gan_flow(params_file: str = "params.yaml") -> dict:
    """Train the attribute classifier, score samples and edits; write metrics/gan.json and plots/evaluate/."""
    metrics = evaluate(load_params(params_file))
    create_markdown_artifact(key="evaluate-gan", markdown=markdown(metrics), description="Generator evaluation")
    return metrics


def markdown(metrics: dict) -> str:
    """The headline numbers as a table, with what each means."""
    control_edited = metrics.get("control_edited", {}).get("mean", "not measured (no editor)")
    identity, generator = metrics["identity"], metrics.get("generator", {})
    rows = [
        (
            "sampling: candidates per sampled face / edit strength / samples refined by the editor (refine strength)",
            f"{generator.get('candidates', 1)} / {generator.get('edit_strength', 1.0)} / "
            f"{generator.get('refine', False)}"
            f" ({generator.get('refine_strength', 1.0)})",
            "params group `sampling`",
        ),
        (
            "attribute classifier, held-out accuracy (mean)",
            metrics["classifier"]["heldout_accuracy_mean"],
            "STGAN's classifier: 94.5% over 13 CelebA attributes",
        ),
        ("attribute control, sampled faces (mean)", metrics["control_sampled"]["mean"], "STGAN: about 90%"),
        ("attribute control, edited faces (mean)", control_edited, "STGAN: about 90%"),
        (
            "FID / KID (classifier features)",
            f"{metrics['fid']:.3f} / {metrics['kid_mean']:.4f}",
            "0 = same distribution",
        ),
        (
            "precision / recall / density / coverage",
            " / ".join(f"{metrics[k]:.3f}" for k in ("precision", "recall", "density", "coverage")),
            "about 1 = same",
        ),
        (
            "latent diversity (samples sharing attributes, vs real faces sharing them)",
            metrics.get("latent_diversity", {}).get("ratio", "not measured"),
            "about 1 = as varied; near 0 = ignores z",
        ),
        (
            "identity kept by edits (verified share)",
            identity.get("verified_share", "not measured"),
            identity.get("embedding", ""),
        ),
        (
            f"real-vs-synthetic detector accuracy (p-value), both {metrics['detector'].get('encoding', 'as stored')}",
            f"{metrics['detector']['accuracy']:.3f} (p={metrics['detector']['p_value']:.2g})",
            "0.5 = indistinguishable",
        ),
    ]
    table = "\n".join(f"| {what} | {value} | {note} |" for what, value, note in rows)
    return (
        f"# Generator evaluation ({GAN_METRICS})\n\n| metric | value | reference |\n|---|---|---|\n{table}\n\n"
        + per_attribute(metrics)
    )


def per_attribute(metrics: dict) -> str:
    """Each attribute's control beside the judge's own balanced accuracy on real held-out faces; samples as
    configured (e.g. chosen by the discriminator) and plain samples apart."""
    judge = metrics["classifier"]["heldout_balanced_accuracy"]
    plain = metrics.get("control_sampled_plain", metrics["control_sampled"])
    edited = metrics.get("control_edited", {})
    lines = [
        "| attribute | judge balanced accuracy (real held-out) | sampled as configured | plain samples | edited |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {value} | {metrics['control_sampled'][name]} | {plain[name]} | {edited.get(name, '')} |"
        for name, value in judge.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    run_from_command_line(evaluate_gan_flow, __doc__)
