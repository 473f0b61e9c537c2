"""Side by side: every condition's seed-averaged metrics with 95% bootstrap intervals, as JSON, a markdown
table and a bar plot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from facegen.io import atomic_file
from recognition.metrics import SeedOutcome, bootstrap_ci, outcome_metrics

PLOTTED = ("top1", "macro_f1", "tar_at_far")


def compare_conditions(
    outcomes: Mapping[str, Sequence[SeedOutcome]], far: float, samples: int, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """condition -> metric -> {mean, ci_low, ci_high, seed_std}."""
    table = {}
    for condition, runs in outcomes.items():
        per_seed = [outcome_metrics(o, far) for o in runs]
        ci = bootstrap_ci(runs, far, samples, seed)
        table[condition] = {
            k: {
                "mean": float(np.mean([m[k] for m in per_seed])),
                "ci_low": ci[k][0],
                "ci_high": ci[k][1],
                "seed_std": float(np.std([m[k] for m in per_seed])),
            }
            for k in per_seed[0]
        }
    return table


def markdown_table(table: Mapping[str, Mapping[str, Mapping[str, float]]], far: float, seeds: int) -> str:
    metrics = list(next(iter(table.values())))
    header = "| metric | " + " | ".join(table) + " |\n|---|" + "---|" * len(table) + "\n"
    rows = "".join(
        f"| {_label(m, far)} | "
        + " | ".join(f"{c[m]['mean']:.3f} [{c[m]['ci_low']:.3f}, {c[m]['ci_high']:.3f}]" for c in table.values())
        + " |\n"
        for m in metrics
    )
    return f"Mean over {seeds} seeds, [95% bootstrap interval over the test photos].\n\n{header}{rows}"


def bar_plot(table: Mapping[str, Mapping[str, Mapping[str, float]]], path: Path, far: float) -> None:
    conditions = list(table)
    fig = Figure(figsize=(7, 3.6))  # no pyplot: no GUI backend, no global figure state
    ax = fig.subplots()
    width = 0.8 / len(conditions)
    for i, condition in enumerate(conditions):
        means = [table[condition][m]["mean"] for m in PLOTTED]
        low = [table[condition][m]["mean"] - table[condition][m]["ci_low"] for m in PLOTTED]
        high = [table[condition][m]["ci_high"] - table[condition][m]["mean"] for m in PLOTTED]
        ax.bar(np.arange(len(PLOTTED)) + i * width, means, width, yerr=[low, high], capsize=3, label=condition)
    ax.set_xticks(np.arange(len(PLOTTED)) + width * (len(conditions) - 1) / 2, [_label(m, far) for m in PLOTTED])
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (95% bootstrap CI)")
    ax.legend(ncols=len(conditions), loc="upper center", bbox_to_anchor=(0.5, 1.15), frameon=False)
    fig.tight_layout()
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=120)


def _label(metric: str, far: float) -> str:
    labels = {
        "top1": "top-1 accuracy",
        "macro_f1": "macro-F1",
        "tar_at_far": f"TAR @ FAR={far:g} (calibrated)",
        "visitor_far": "visitor FAR at that threshold",
        "tar_at_far_test": f"TAR @ FAR={far:g} (ROC on visitors)",
    }
    if metric in labels:
        return labels[metric]
    return metric.replace("top1_with_", "top-1, check-ins with ").replace("top1_without_", "top-1, check-ins without ")
