"""The `facegen` command line: thin wrappers over the library and the Prefect flows."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from facegen.config import ParamsError, SamplingConfig, load_params
from facegen.cpu_kernels import pin_avx2_kernels
from facegen.paths import GAN_CHECKPOINT
from facegen.processes import exit_on_sigterm
from pipelines import USER_ERRORS, debugging, one_line

app = typer.Typer(help="facegen: GAN-made faces and how much they help face recognition.", no_args_is_help=True)
data_app = typer.Typer(help="Acquire, inspect and prepare face data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
attend_app = typer.Typer(
    help="Take attendance on your own photos: enrol a roster, calibrate, check faces in, write the log.",
    no_args_is_help=True,
)
app.add_typer(attend_app, name="attend")
rate_app = typer.Typer(
    help="Ask a person to tell real faces from edited ones: make the rating page, serve it, score the answers.",
    no_args_is_help=True,
)
app.add_typer(rate_app, name="rate")

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
    _DEBUG["traceback"] = debug or debugging()  # --debug or FACEGEN_DEBUG=1, as for the stages
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
    from recognition.models.backbone import identity_network

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
    confine: Annotated[
        bool,
        typer.Option(
            "--confine/--no-confine",
            help="change only the bands of the changed attributes (Eyeglasses: eyes, Smiling: mouth); "
            "for landmark-aligned faces",
        ),
    ] = SamplingConfig().confine_edits,
) -> None:
    """Re-render photos with the --set attributes changed and the rest as the model sees them."""
    from facegen.data.annotations import set_attribute
    from facegen.gan.inference import FaceModel, load_photos, resolve_device, save_grid

    _check_not_an_input(out, photos)
    model = FaceModel.load(
        checkpoint, resolve_device(device), SamplingConfig(edit_strength=strength, confine_edits=confine)
    )
    images = load_photos(photos, model.resolution)
    seen = model.predict_attributes(images, batch_size)
    targets = seen.clone()
    for name, value in _attribute_values(set_, "--set").items():
        if name not in model.attributes:
            raise ValueError(f"unknown attribute {name!r}; this model edits {list(model.attributes)}")
        set_attribute(targets, model.attributes, name, value)
    save_grid(model.edit(images, targets, batch_size, source_attributes=seen), out)
    typer.echo(f"{len(photos)} photo(s) edited ({', '.join(set_)}) into {out}")


def _check_not_an_input(out: Path, photos: list[Path]) -> None:
    """Refuse an output that is one of the input photos (the same file, by any name or link), even when that
    photo is a facegen PNG: it is the user's input."""
    from facegen.io import UnsafeOutputError

    for photo in photos:
        try:
            same = os.path.samefile(out, photo)
        except OSError:  # one of them does not exist (yet): compare where they resolve to
            same = out.resolve() == photo.resolve()
        if same:
            raise UnsafeOutputError(f"-o {out} is the input photo {photo}; write the edit to another file")


DbOption = Annotated[Path, typer.Option("--db", help="the attendance database (an SQLite file)")]
TightOption = Annotated[
    bool, typer.Option("--tight", help="the photos are face crops that the face fills (as faces64), not photos")
]
WaitOption = Annotated[
    float | None,
    typer.Option("--wait", min=0, help="seconds to wait while another process writes the database (default 30)"),
]


def _attendance(params: Path, pairs: list[str], db: Path, tight: bool, wait: float | None):
    """The attendance steps on `db` with the recognizer and face size of the parameters."""
    from recognition.attendance import Attendance, FaceFinder, load_recognizer
    from recognition.attendance.database import BUSY_TIMEOUT_S

    p = load_params(params, _overrides(pairs))
    finder = FaceFinder(p.data.image_size, tight=tight, max_pixels=p.data.max_image_pixels)
    timeout = BUSY_TIMEOUT_S if wait is None else wait
    return Attendance(db, load_recognizer(p.recognition), finder, timeout), p


def _echo_skipped(skipped) -> None:
    """One line per photo (or face) that was skipped, and why."""
    for s in skipped:
        typer.echo(f"skipped {s.photo}: {s.reason}", err=True)


@attend_app.command("enrol")
def attend_enrol(
    roster: Annotated[Path, typer.Argument(help="the roster: ROSTER_DIR/<person>/<photo>.jpg")],
    db: DbOption = Path("attendance.db"),
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = [],  # noqa: B006
    tight: TightOption = False,
    wait: WaitOption = None,
) -> None:
    """Enrol everyone in ROSTER_DIR from the largest face of each photo (people enrolled before: anew)."""
    from recognition.attendance import skip_counts

    attendance, _ = _attendance(params, set_, db, tight, wait)
    report = attendance.enrol(roster)
    _echo_skipped(report.skipped)
    summary = (
        f"{len(report.people)} people enrolled from {report.enrolled} of {report.photos} photos "
        f"({skip_counts(report.skipped)}) into {db}"
    )
    if report.several_faces:
        summary += f"; {report.several_faces} photos had several faces (the largest was enrolled)"
    if report.threshold is not None:
        summary += f"; threshold set anew on the stored calibration faces: {report.threshold:.4f}"
    typer.echo(summary)


@attend_app.command("calibrate")
def attend_calibrate(
    folder: Annotated[Path, typer.Argument(help="photos of people NOT on the roster (any layout)")],
    db: DbOption = Path("attendance.db"),
    far: Annotated[
        float | None, typer.Option("--far", min=0, max=1, help="largest share of them named (default recognition.far)")
    ] = None,
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = [],  # noqa: B006
    tight: TightOption = False,
    wait: WaitOption = None,
) -> None:
    """Set the threshold so that at most FAR of the faces of people not on the roster would be named."""
    from recognition.attendance import skip_counts

    attendance, p = _attendance(params, set_, db, tight, wait)
    report = attendance.calibrate(folder, p.recognition.far if far is None else far)
    _echo_skipped(report.skipped)
    typer.echo(
        f"threshold {report.threshold:.4f}: {report.accepted} of {report.faces} faces of people not on the roster "
        f"would be named (far {report.far:g}; {skip_counts(report.skipped)})"
    )
    if report.faces * report.far < 1:
        typer.echo(
            f"note: {report.faces} faces are too few to measure a false accept rate of {report.far:g}: the threshold "
            f"is the highest of their scores; calibrate on at least {round(1 / report.far)} faces",
            err=True,
        )


@attend_app.command("checkin")
def attend_checkin(
    photos: Annotated[Path, typer.Argument(help="a photo, or a folder of photos")],
    db: DbOption = Path("attendance.db"),
    session: Annotated[str | None, typer.Option("--session", help="session name (default: today's date)")] = None,
    params: ParamsOption = Path("params.yaml"),
    set_: SetOption = [],  # noqa: B006
    tight: TightOption = False,
    wait: WaitOption = None,
) -> None:
    """Name every face in the photos (nearest enrolled person, or unknown) and record the check-ins."""
    from datetime import date

    from recognition.attendance import UNKNOWN, skip_counts

    attendance, _ = _attendance(params, set_, db, tight, wait)
    report = attendance.checkin(photos, session or date.today().isoformat())
    _echo_skipped(report.skipped)
    for face in report.faces:
        typer.echo(f"{face.photo}\tface {face.face}\t{face.person or UNKNOWN}\t{face.score:.4f}")
    typer.echo(
        f"{len(report.faces)} faces checked in to session {report.session!r} from {report.photos} photos "
        f"({skip_counts(report.skipped)})"
    )


@attend_app.command("log")
def attend_log(
    db: DbOption = Path("attendance.db"),
    session: Annotated[str | None, typer.Option("--session", help="only this session")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="CSV file to write (default: print it)")] = None,
) -> None:
    """Write the attendance CSV of each session: who was present, who was absent, and the unknown faces."""
    from recognition.attendance import AttendanceDatabase, attendance_rows, format_log, write_log

    with AttendanceDatabase(db, readonly=True) as database:
        rows = attendance_rows(database, session)
    if out is None:
        typer.echo(format_log(rows), nl=False)
        return
    write_log(rows, out)
    typer.echo(f"{len(rows)} rows written to {out}", err=True)


RatingSetArgument = Annotated[Path, typer.Argument(help="a rating set written by `facegen rate make`")]
RatingsOption = Annotated[
    Path, typer.Option("--ratings", help="the rater's answers (CSV; kept outside the rating set, which make replaces)")
]


@rate_app.command("make")
def rate_make(
    real: Annotated[Path, typer.Option("--real", help="folder of real faces (PNG/JPG, all one size)")],
    edited: Annotated[Path, typer.Option("--edited", help="folder of edited faces, the size of the real ones")],
    out: Annotated[Path, typer.Option("-o", "--out", help="the rating set's folder to write")],
    count: Annotated[int | None, typer.Option("--count", min=1, help="at most this many of each (default all)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="which faces are drawn, and their order")] = 0,
) -> None:
    """Write a rating set: the faces shuffled under neutral names, their key and the rating page."""
    from facegen.report.rating import make_rating_set, read_key

    make_rating_set(real, edited, out, count, seed)
    truths = list(read_key(out).values())
    typer.echo(
        f"{len(truths)} faces ({truths.count('real')} real, {truths.count('edited')} edited) written to {out}; "
        f"serve them with `facegen rate serve {out}`"
    )


@rate_app.command("serve")
def rate_serve(
    folder: RatingSetArgument,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="port on 127.0.0.1 (0: any free one)")] = 0,
    ratings: RatingsOption = Path("ratings.csv"),
) -> None:
    """Serve the rating page on this machine until Ctrl-C, appending each answer to the ratings CSV."""
    from facegen.report.rating import serve_rating

    with serve_rating(folder, ratings, port=port) as server:
        typer.echo(f"rating page: {server.url()} (answers go to {ratings}; Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            typer.echo(f"stopped; score the answers with `facegen rate score {folder} --ratings {ratings}`")


@rate_app.command("score")
def rate_score(folder: RatingSetArgument, ratings: RatingsOption = Path("ratings.csv")) -> None:
    """How often the rater told real from edited (the last answer of each face counts)."""
    from facegen.report.rating import score_ratings

    s = score_ratings(folder, ratings)
    typer.echo(
        f"{s['answered']} of {s['faces']} faces answered; accuracy {s['accuracy']:.3f} "
        f"(95% Wilson interval {s['accuracy_low']:.3f} to {s['accuracy_high']:.3f}; 0.5: chance on a balanced set)"
    )
    typer.echo(
        f"real called real {_share(s['real_called_real'])}, edited called edited {_share(s['edited_called_edited'])}"
    )


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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
        typer.echo(
            f"error: {one_line(err)}"
            + (
                "" if isinstance(err, USER_ERRORS) else f" ({type(err).__name__}; rerun with --debug for the traceback)"
            ),
            err=True,
        )
        raise SystemExit(2) from None
