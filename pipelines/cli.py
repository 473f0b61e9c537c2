"""The `facegen` command line: thin wrappers over the library and the Prefect flows."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from facegen.config import ParamsError, SamplingConfig, load_params
from facegen.cpu_kernels import pin_avx2_kernels
from facegen.paths import GAN_CHECKPOINT
from facegen.processes import exit_on_sigterm

# Errors whose message says all a user needs: the file, parameter or output and what is wrong with it.
_USER_ERRORS = (ValueError, OSError, RuntimeError)

app = typer.Typer(help="facegen: GAN-made faces and how much they help face recognition.", no_args_is_help=True)
data_app = typer.Typer(help="Acquire, inspect and prepare face data.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ParamsOption = Annotated[Path, typer.Option("--params", help="parameters file")]
SetOption = Annotated[list[str], typer.Option("--set", help="override a parameter, e.g. --set data.source=local")]


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``--set KEY=VALUE`` pairs, each VALUE read as plain YAML (no tags that build objects)."""
    import yaml

    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ParamsError(f"--set {pair}: expected KEY=VALUE")
        try:
            result[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ParamsError(f"--set {pair}: not a plain YAML value ({' '.join(str(err).split())})") from None
    return result


_DEBUG = {"traceback": False}  # set by --debug: errors end in their traceback instead of one line


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="log more")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error")] = False,
) -> None:
    pin_avx2_kernels()  # `facegen train` trains what `dvc repro train_gan` trains, on any x86-64 CPU
    exit_on_sigterm()  # `kill` of a command removes its temporary folders and releases its locks
    _DEBUG["traceback"] = debug
    logging.basicConfig(
        level=logging.DEBUG if verbose or debug else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )


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
    typer.echo(
        f"{report.images_written} of {report.images_in} faces written to {p.prepare.out} "
        f"({report.corrupt} unreadable, {report.no_face} without a face; listed in skipped.csv) "
        f"in {report.seconds} s"
    )


@data_app.command("info")
def data_info(
    path: Annotated[
        Path, typer.Argument(help="a CelebA-layout folder, a folder-per-person folder, or a prepared cache")
    ],
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
    from facegen.metrics.attribute_classifier import AttributeClassifier
    from facegen.synthetic.run import generate_datasets

    p = load_params(params, _overrides(set_))
    for r in generate_datasets(p.generate, p.attendance, p.prepare.out, p.sampling, only, AttributeClassifier.load):
        typer.echo(
            f"{r.name}: {r.images} images ({r.mode}; {r.rejected} rejected by the filter; worst cell "
            f"{r.max_cell_deviation:.2%} off target) in {r.path}"
        )


@app.command("evaluate")
def evaluate(params: ParamsOption = Path("params.yaml"), set_: SetOption = []) -> None:  # noqa: B006
    """Judge the trained generator (the `evaluate_gan` stage, without Prefect): metrics/gan.json, plots/evaluate/."""
    from facegen.metrics.evaluate import evaluate_generator
    from facegen.paths import BACKBONE, GAN_METRICS
    from recognition.backbone import identity_network

    p = load_params(params, _overrides(set_))
    metrics = evaluate_generator(p, identity_network(BACKBONE, p.recognition.input_size))
    edited = metrics.get("control_edited", {}).get("mean", "n/a (no editor)")
    typer.echo(
        f"classifier held-out accuracy {metrics['classifier']['heldout_accuracy_mean']:.3f}; "
        f"attribute control sampled {metrics['control_sampled']['mean']:.3f}, edited {edited}; "
        f"FID {metrics['fid']:.3f}, KID {metrics['kid_mean']:.4f}; "
        f"detector accuracy {metrics['detector']['accuracy']:.3f} (p={metrics['detector']['p_value']:.2g}) "
        f"-> {GAN_METRICS}"
    )


CheckpointOption = Annotated[Path, typer.Option("--checkpoint", "-c", help="a train_gan checkpoint")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA if available) | cpu | cuda | cuda:N")]
AttrOption = Annotated[list[str], typer.Option("--attr", help="attribute value, e.g. --attr Eyeglasses=1")]
CandidatesOption = Annotated[
    int,
    typer.Option(
        "--candidates",
        min=1,
        help="faces drawn per request; the one the "
        "discriminator sees the attributes in most is kept (1: plain sampling)",
    ),
]
StrengthOption = Annotated[
    float,
    typer.Option(
        "--strength", help="edit strength: the changed attributes pushed this many times as far (1: the plain target)"
    ),
]
RefineOption = Annotated[
    bool,
    typer.Option(
        "--refine/--no-refine", help="edit each sampled face towards the requested attributes (costs an editor pass)"
    ),
]
RefineStrengthOption = Annotated[
    float,
    typer.Option(
        "--strength",
        help="refining edit strength: the attributes the "
        "discriminator is unsure of pushed this many times as far (1: "
        "the plain request)",
    ),
]


@app.command("train")
def train(params: ParamsOption = Path("params.yaml"), set_: SetOption = [], device: DeviceOption = "auto") -> None:  # noqa: B006
    """Train the conditional GAN (or cVAE) from params `gan` (the `train_gan` stage, without Prefect);
    continues gan.out/checkpoint.pt when it was made with the same settings. Under `torchrun` it trains
    data-parallel (DDP: NCCL on GPUs, gloo on CPUs)."""
    from facegen.gan.distributed import distributed
    from facegen.gan.inference import resolve_device
    from facegen.gan.training_loop import train_gan

    p = load_params(params, _overrides(set_))
    with distributed(resolve_device(device)) as (rank, local_device):
        report = train_gan(p.gan, p.prepare.out, local_device)
    if rank == 0:
        typer.echo(
            f"{report.model}: step {report.resumed_from} -> {report.steps} in {report.seconds} s "
            f"({report.steps_per_second} steps/s, {report.images_per_second} img/s); outputs in {p.gan.out}"
        )


@app.command("sample")
def sample(
    checkpoint: CheckpointOption = GAN_CHECKPOINT,
    attr: AttrOption = [],  # noqa: B006
    n: Annotated[int, typer.Option("-n", min=1, help="number of faces")] = 64,
    out: Annotated[Path, typer.Option("-o", "--out", help="grid PNG to write")] = Path("samples.png"),
    seed: Annotated[int, typer.Option("--seed")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
    device: DeviceOption = "auto",
    candidates: CandidatesOption = SamplingConfig().candidates,
    refine: RefineOption = SamplingConfig().refine,
    strength: RefineStrengthOption = SamplingConfig().refine_strength,
) -> None:
    """Draw N new faces with the given attributes (the others 0) into one grid PNG; same seed, same faces."""
    from facegen.gan.inference import FaceModel, resolve_device, save_grid

    sampling = SamplingConfig(candidates=candidates, refine=refine, refine_strength=strength)
    model = FaceModel.load(checkpoint, resolve_device(device), sampling)
    faces = model.sample(model.attribute_matrix(_attribute_values(attr, "--attr"), n), seed, batch_size)
    save_grid(faces, out)
    typer.echo(f"{n} faces ({', '.join(attr) or 'no attributes'}) written to {out}")


@app.command("edit")
def edit(
    photos: Annotated[list[Path], typer.Argument(help="face photos (centre-cropped and resized to the model)")],
    set_: Annotated[list[str], typer.Option("--set", help="target attribute, e.g. --set Eyeglasses=1")],
    checkpoint: CheckpointOption = GAN_CHECKPOINT,
    out: Annotated[Path, typer.Option("-o", "--out", help="PNG to write: the edited face(s), in order")] = Path(
        "edited.png"
    ),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 256,
    device: DeviceOption = "auto",
    strength: StrengthOption = SamplingConfig().edit_strength,
) -> None:
    """Re-render photos with the --set attributes changed and the rest as the model sees them."""
    from facegen.data.annotations import set_attribute
    from facegen.gan.inference import FaceModel, load_photos, resolve_device, save_grid

    model = FaceModel.load(checkpoint, resolve_device(device), SamplingConfig(edit_strength=strength))
    images = load_photos(photos, model.resolution)
    seen = model.predict_attributes(images, batch_size)
    targets = seen.clone()
    for name, value in _attribute_values(set_, "--set").items():
        if name not in model.attributes:
            raise ValueError(f"unknown attribute {name!r}; this model edits {list(model.attributes)}")
        set_attribute(targets, model.attributes, name, value)
    save_grid(model.edit(images, targets, batch_size, source_attributes=seen), out)
    typer.echo(f"{len(photos)} photo(s) edited ({', '.join(set_)}) into {out}")


def _attribute_values(pairs: list[str], option: str) -> dict[str, float]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or value not in ("0", "1"):
            raise ValueError(f"{option}: expected NAME=0 or NAME=1, got {pair!r}")
        values[name] = float(value)
    return values


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
    """Entry point: every error (bad params, files, downloads, a locked output) prints one line, not a
    traceback (``--debug`` shows it), and exits with code 2."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as err:  # broad on purpose: the one place that turns any error into a message
        if _DEBUG["traceback"]:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        typer.echo(
            f"error: {message}"
            + (
                ""
                if isinstance(err, _USER_ERRORS)
                else f" ({type(err).__name__}; rerun with --debug for the traceback)"
            ),
            err=True,
        )
        raise SystemExit(2) from None
