"""Typed configuration: params.yaml is read and validated once, here, into these objects.

Each top-level group of params.yaml is one stage's settings (as in iterative/example-get-started).
Unknown keys and wrong values are errors that name the parameter, e.g. ``data.image_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoSource(_Section):
    """Procedurally drawn faces in the official CelebA layout (the offline default)."""

    root: Path = Path("data/raw/demo")
    identities: int = Field(200, gt=0)
    images_per_identity: int = Field(15, gt=0)
    seed: int = 0


class CelebASource(_Section):
    """The official CelebA files, from Google Drive (gdown) or a mirror base URL."""

    root: Path = Path("data/raw/celeba")
    mirror_url: str | None = None
    checksums: Literal["auto", "official", "none"] = "auto"
    include_optional: bool = True


class LocalSource(_Section):
    """An existing folder in the official CelebA layout (zip or extracted images)."""

    root: Path = Path("../shared/celeba")


class FolderSource(_Section):
    """Folder-per-person photos (people/<name>/*.jpg), as attendance systems collect them."""

    root: Path = Path("../shared/faces64")
    attributes_csv: Path | None = None
    celeba_root: Path | None = None  # join CelebA attributes and splits on file name (faces64 is CelebA)
    detect_faces: bool = False  # run MTCNN on in-the-wild photos instead of resizing tight crops


class DataConfig(_Section):
    source: Literal["demo", "celeba", "local", "folder"] = "demo"
    image_size: Literal[32, 64, 128] = 64
    strict: bool = False  # turn counted skips (missing/corrupt images, no face found) into errors
    demo: DemoSource = DemoSource()
    celeba: CelebASource = CelebASource()
    local: LocalSource = LocalSource()
    folder: FolderSource = FolderSource()


class PrepareConfig(_Section):
    out: Path = Path("data/prepared")
    crop: int = Field(140, gt=0)  # centred square crop (px) of the 178x218 aligned images before resizing
    workers: int = Field(2, ge=0)
    batch_size: int = Field(256, gt=0)


GanProfile = Literal["demo", "middle", "celeba64"]

# Presets of `gan.profile`: every value here can be overridden by setting it explicitly in params.yaml.
GAN_PROFILES: dict[str, dict[str, object]] = {
    # The offline demo faces (64 x 64) on a 2-core CPU: ~570 s of CPU (measured); not yet enough steps for
    # visibly controllable attributes (docs/BENCHMARKS.md).
    "demo": {"base_channels": 16, "editor_channels": 8, "editor_res_blocks": 1, "batch_size": 16, "steps": 300,
             "sample_every": 50, "checkpoint_every": 50},
    # ../shared/celeba at 64 x 64 on a 2-core CPU: about an hour (an estimate from the batch-64 step times in
    # docs/BENCHMARKS.md scaled to these widths; not yet run).
    "middle": {"base_channels": 32, "editor_channels": 16, "editor_res_blocks": 2, "batch_size": 64, "steps": 1000,
               "sample_every": 100, "checkpoint_every": 100},
    # Full CelebA at 64 x 64 on a GPU.
    "celeba64": {"base_channels": 64, "editor_channels": 64, "editor_res_blocks": 6, "batch_size": 64, "steps": 50000,
                 "sample_every": 1000, "checkpoint_every": 1000},
}


class GanConfig(_Section):
    """The conditional generator (or cVAE baseline) and its training run (stage `train_gan`).

    ``profile`` fills in the sizes and run length of :data:`GAN_PROFILES`; values set explicitly win. The
    field defaults below are the demo profile's.
    """

    profile: GanProfile = "demo"
    model: Literal["cgan", "cvae"] = "cgan"  # cvae: the conditional VAE baseline
    attributes: tuple[str, ...] = ("Male", "Young", "Smiling", "Eyeglasses", "Black_Hair", "Blond_Hair")
    loss: Literal["hinge", "wgan-gp", "bce"] = "hinge"
    z_dim: int = Field(64, gt=0)
    base_channels: int = Field(16, gt=0)
    spectral_norm: bool = True
    editor: bool = True  # cgan: also train the StarGAN-style attribute editor E(image, target attributes)
    editor_channels: int = Field(8, gt=0)
    editor_res_blocks: int = Field(1, ge=0)  # residual blocks at the editor's bottleneck (StarGAN: 6)
    batch_size: int = Field(16, gt=0)
    steps: int = Field(300, gt=0)
    lr_g: float = Field(2e-4, gt=0)  # generator, editor and cVAE
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.0, 0.99)
    ema_decay: float = Field(0.999, ge=0, le=1)
    lambda_cls: float = Field(1.0, ge=0)  # attribute classification loss weight (AC-GAN, editor, cVAE)
    lambda_gp: float = Field(10.0, ge=0)  # gradient penalty weight (wgan-gp only)
    lambda_rec: float = Field(10.0, ge=0)  # editor cycle reconstruction; cVAE reconstruction
    lambda_id: float = Field(1.0, ge=0)  # editor identity: E(x, own attributes) = x
    lambda_kl: float = Field(0.01, ge=0)  # cVAE KL term (against a per-pixel L1 reconstruction)
    amp: bool = True  # mixed precision (CUDA only; ignored on CPU)
    sample_every: int = Field(50, gt=0)  # image grid, edit strip and metrics row every N steps
    checkpoint_every: int = Field(50, gt=0)
    seed: int = 0
    out: Path = Path("models/gan")

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("profile", "demo") in GAN_PROFILES:
            return GAN_PROFILES[data.get("profile", "demo")] | data
        return data


class AttendanceConfig(_Section):
    """Who is enrolled, who checks in, who is a visitor (see facegen.data.attendance)."""

    roster_size: int = Field(40, gt=0)  # people on the attendance roster
    enrol_per_person: int = Field(3, gt=0)  # enrolment photos per roster person; the rest are check-ins
    min_checkins: int = Field(2, gt=0)  # a roster person needs enrol_per_person + min_checkins photos
    visitors: int = Field(20, ge=0)  # people off the roster whose photos must be rejected
    gap_attributes: tuple[str, ...] = ("Eyeglasses", "Smiling")  # enrol without these where possible
    seed: int = 0


class Params(_Section):
    data: DataConfig = DataConfig()
    prepare: PrepareConfig = PrepareConfig()
    gan: GanConfig = GanConfig()
    attendance: AttendanceConfig = AttendanceConfig()


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or has an invalid value; the message names the parameter."""


def load_params(path: Path | str = "params.yaml", overrides: dict | None = None) -> Params:
    """Read and validate params.yaml (plus optional nested overrides) into typed config objects."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file; run from the project root or pass --params") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" + (f" (got {e['input']!r})" if "input" in e else "")
            for e in err.errors()
        )
        raise ParamsError(f"{path}: {problems}") from None


def _set_dotted(tree: dict, dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value
