"""Compare generators on the same data: one `dvc exp run` per variant (cGAN with each loss, the cVAE),
then a table of their `evaluate_gan` metrics (stdout, or between the markers of docs/RESULTS.md).

    python -m bench.compare_generators                               # the four default variants
    python -m bench.compare_generators --set gan.steps=200           # shorter runs, every variant
    python -m bench.compare_generators --variant hinge=gan.loss=hinge --variant bce=gan.loss=bce
    python -m bench.compare_generators --results docs/RESULTS.md     # write the table into the doc

Afterwards `dvc exp show` lists the experiments with all parameters and metrics, and
`dvc plots diff <exp> <exp>` overlays their control-accuracy bars and classifier curves.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from facegen.paths import GAN_METRICS

# The cVAE variant needs the GAN stage's model switch (`gan.model`, issue 3); the others only the loss.
DEFAULT_VARIANTS = {
    "cgan-hinge": {"gan.loss": "hinge"},
    "cgan-wgan-gp": {"gan.loss": "wgan-gp"},
    "cgan-bce": {"gan.loss": "bce"},
    "cvae": {"gan.model": "cvae"},
}
PARAMS_FILE = Path("params.yaml")
START, END = "<!-- generator-comparison:start -->", "<!-- generator-comparison:end -->"
COLUMNS = {  # column title -> how to read it from metrics/gan.json
    "control sampled": lambda m: m["control_sampled"]["mean"],
    "control edited": lambda m: m.get("control_edited", {}).get("mean", "n/a"),
    "FID": lambda m: m["fid"],
    "KID": lambda m: m["kid_mean"],
    "precision": lambda m: m["precision"],
    "recall": lambda m: m["recall"],
    "density": lambda m: m["density"],
    "coverage": lambda m: m["coverage"],
    "latent diversity": lambda m: m.get("latent_diversity", {}).get("ratio", "n/a"),
    "identity verified": lambda m: m["identity"].get("verified_share", "n/a"),
    "detector accuracy": lambda m: m["detector"]["accuracy"],
}


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """ "name=key=value,key=value" -> (name, {key: value})."""
    name, sep, assignments = text.partition("=")
    pairs = [a.split("=", 1) for a in assignments.split(",") if a]
    if not sep or not name or any(len(p) != 2 for p in pairs):
        raise argparse.ArgumentTypeError(f"expected NAME=KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return name, dict(pairs)


def run_variant(name: str, overrides: dict[str, str], common: list[str]) -> dict:
    """`dvc exp run -n NAME -S ... evaluate_gan` in the workspace (only the stages the generator's metrics need;
    an earlier experiment of the same name is replaced); returns the metrics it left in metrics/gan.json."""
    subprocess.run(["dvc", "exp", "remove", name], capture_output=True)  # absent the first time: fine
    cmd = ["dvc", "exp", "run", "-n", name]
    for key, value in overrides.items():
        cmd += ["-S", f"{key}={value}"]
    for assignment in common:
        cmd += ["-S", assignment]
    cmd.append("evaluate_gan")
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return json.loads(GAN_METRICS.read_text())


def table(results: dict[str, dict]) -> str:
    header = "| variant | " + " | ".join(COLUMNS) + " |\n" + "|---" * (len(COLUMNS) + 1) + "|\n"
    rows = [
        f"| {name} | " + " | ".join(_fmt(read(m)) for read in COLUMNS.values()) + " |" for name, m in results.items()
    ]
    return header + "\n".join(rows) + "\n"


def write_between_markers(path: Path, text: str) -> None:
    doc = path.read_text()
    if START not in doc or END not in doc:
        raise ValueError(f"{path}: no {START} ... {END} markers to write the table between")
    path.write_text(
        re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: f"{START}\n{text}{END}", doc, flags=re.S)
    )


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        help="NAME=KEY=VALUE[,KEY=VALUE...] (repeatable; default: cgan with each loss, and cvae)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="common",
        help="KEY=VALUE applied to every variant, e.g. gan.steps=200",
    )
    parser.add_argument("--results", type=Path, help="markdown file whose comparison markers get the table")
    args = parser.parse_args(argv)
    variants = dict(args.variant) or DEFAULT_VARIANTS
    baseline = PARAMS_FILE.read_text()
    results = {}
    try:
        for name, overrides in variants.items():
            PARAMS_FILE.write_text(baseline)  # each variant differs from the baseline only by its own overrides
            results[name] = run_variant(name, overrides, args.common)
    finally:
        PARAMS_FILE.write_text(baseline)
    text = table(results)
    print(text)
    if args.results:
        write_between_markers(args.results, text)
        print(f"table written to {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
