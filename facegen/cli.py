"""The `facegen` command line: thin wrappers over the library and the Prefect flows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from facegen.config import load_params

app = typer.Typer(help="facegen: GAN-made faces and how much they help face recognition.", no_args_is_help=True)
data_app = typer.Typer(help="Acquire, inspect and prepare face data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ParamsOption = Annotated[Path, typer.Option("--params", help="parameters file")]
SetOption = Annotated[list[str], typer.Option("--set", help="override a parameter, e.g. --set data.source=local")]


def _overrides(pairs: list[str]) -> dict[str, object]:
    import yaml

    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        result[key] = yaml.safe_load(value)
    return result


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@data_app.command("acquire")
def data_acquire(params: ParamsOption = Path("params.yaml"), set_: SetOption = []) -> None:  # noqa: B006
    """Generate, download or check the source named by data.source."""
    from facegen.data.sources import acquire

    data = load_params(params, _overrides(set_)).data
    typer.echo(f"{data.source}: {acquire(data)}")


@data_app.command("prepare")
def data_prepare(params: ParamsOption = Path("params.yaml"), set_: SetOption = []) -> None:  # noqa: B006
    """Acquire the source and write the prepared cache (the `prepare` stage, without Prefect)."""
    from facegen.data.sources import acquire, prepare_source

    p = load_params(params, _overrides(set_))
    report = prepare_source(p.data, p.prepare, acquire(p.data))
    typer.echo(f"{report.images_written} of {report.images_in} faces written to {p.prepare.out} "
               f"({report.corrupt} corrupt, {report.no_face} without a face) in {report.seconds} s")


@data_app.command("info")
def data_info(
    path: Annotated[Path, typer.Argument(help="a CelebA-layout folder, a folder-per-person folder, or a prepared cache")],
    attribute: Annotated[list[str], typer.Option("--attr", help="attributes to summarise")] = [],  # noqa: B006
) -> None:
    """Counts of images, identities and splits, and the share of each attribute."""
    faces = _open_any(path, attribute or None)
    frame = faces.annotations
    typer.echo(f"{path}: {len(frame)} images of {frame['identity'].nunique()} identities")
    typer.echo("splits: " + ", ".join(f"{k}={v}" for k, v in frame["split"].value_counts().items()))
    if faces.missing_images:
        typer.echo(f"annotation rows without an image: {faces.missing_images}")
    for name in faces.attribute_names:
        typer.echo(f"  {name:<22} {frame[name].mean():6.1%}")


@app.command("generate")
def generate(
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = [],  # noqa: B006
    only: Annotated[list[str], typer.Option("--only", help="make only this data set (repeatable)")] = [],  # noqa: B006
) -> None:
    """Write the synthetic data sets of generate.datasets (the `generate` stage, without Prefect)."""
    from facegen.synthetic.run import generate_datasets

    p = load_params(params, _overrides(set_))
    for r in generate_datasets(p.generate, p.attendance, only):
        typer.echo(f"{r.name}: {r.images} images ({r.mode}; {r.rejected} rejected by the filter; worst cell "
                   f"{r.max_cell_deviation:.2%} off target) in {r.path}")
@app.command("evaluate")
def evaluate(params: ParamsOption = Path("params.yaml"), set_: SetOption = []) -> None:  # noqa: B006
    """Judge the trained generator (the `evaluate_gan` stage, without Prefect): metrics/gan.json, plots/evaluate/."""
    from facegen.metrics.evaluate import METRICS_FILE, evaluate_generator

    metrics = evaluate_generator(load_params(params, _overrides(set_)))
    edited = metrics.get("control_edited", {}).get("mean", "n/a (no editor)")
    typer.echo(f"classifier held-out accuracy {metrics['classifier']['heldout_accuracy_mean']:.3f}; "
               f"attribute control sampled {metrics['control_sampled']['mean']:.3f}, edited {edited}; "
               f"FID {metrics['fid']:.3f}, KID {metrics['kid_mean']:.4f}; "
               f"detector accuracy {metrics['detector']['accuracy']:.3f} (p={metrics['detector']['p_value']:.2g}) "
               f"-> {METRICS_FILE}")


def _open_any(path: Path, attributes: list[str] | None):
    from facegen.data.annotations import ATTR_FILE
    from facegen.data.celeba import CelebA
    from facegen.data.folder import FaceFolder
    from facegen.data.prepared import META_FILE, PreparedFaces

    if (path / META_FILE).is_file():
        return PreparedFaces(path, attributes=attributes)
    if (path / ATTR_FILE).is_file():
        return CelebA(path, attributes=attributes)
    return FaceFolder(path, attributes=attributes)


def run() -> None:
    """Entry point: user errors (bad params, files, downloads) print one clear line, not a traceback."""
    from facegen.data.images import CorruptImageError
    from facegen.data.prepare import PrepareError

    try:
        app()
    except (ValueError, FileNotFoundError, CorruptImageError, PrepareError, RuntimeError) as err:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(2) from None
