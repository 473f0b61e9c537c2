"""Typed configuration: params.yaml is read and validated once, here, into these objects.

Each top-level group of params.yaml is one stage's settings (as in iterative/example-get-started).
Unknown keys and wrong values are errors that name the parameter, e.g. ``data.image_size``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from facegen import paths
from facegen.io import read_text_file, short_repr


MAX_IMAGE_PIXELS = 100_000_000  # default of data.max_image_pixels: larger photos are refused before decoding


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: object, info: ValidationInfo) -> object:
        """``identities: true`` is a mistake, not 1 (pydantic's lax mode would take it as 1)."""
        if isinstance(value, bool) and cls.model_fields[info.field_name].annotation in (int, float):
            raise ValueError("expected a number, got a boolean")
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _expand_home(cls, value: object) -> object:
        """``~`` in a path setting is the home folder, as in a shell (``gan.out=~/gan``), not a folder named ``~``."""
        if isinstance(value, Path):
            return value.expanduser()
        if isinstance(value, tuple) and any(isinstance(v, Path) for v in value):
            return tuple(v.expanduser() if isinstance(v, Path) else v for v in value)
        return value


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
    # a transfer averaging fewer bytes/s than this over the last rate_window_s seconds is stopped, its partial file
    # kept for the next run (0: never): per-read timeouts never fire for a mirror trickling a byte every few seconds
    min_rate_bytes_per_s: float = Field(10_000.0, ge=0)
    rate_window_s: float = Field(120.0, gt=0)


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
    # photos with more pixels are refused unread and counted as skips (decompression bombs)
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, gt=0)
    demo: DemoSource = DemoSource()
    celeba: CelebASource = CelebASource()
    local: LocalSource = LocalSource()
    folder: FolderSource = FolderSource()


class PrepareConfig(_Section):
    out: Path = paths.PREPARED
    # landmarks: five points (MTCNN's, or the source's landmark file) onto the ArcFace template, as face recognition
    # aligns faces; box: the older crops (centred square, tight crop resized, MTCNN's box), kept reproducible
    align: Literal["landmarks", "box"] = "landmarks"
    max_detect_side: int = Field(1024, ge=160)  # photos are shrunk to this before MTCNN (the crop uses the full photo)
    crop: int = Field(140, gt=0)  # box: centred square crop (px) of the 178x218 aligned images before resizing
    workers: int = Field(2, ge=0)
    batch_size: int = Field(256, gt=0)


GanProfile = Literal["demo", "middle", "celeba64"]

# Presets of `gan.profile`: every value here can be overridden by setting it explicitly in params.yaml.
# Optimiser settings for runs of a few thousand steps: a fast-learning discriminator (lr_d 1e-3, spectral norm) and
# a strong attribute term, as D's attribute head must learn the attributes within a few hundred steps for G and
# E to learn them from it; a light cycle term, or the editor stays the identity (docs/BENCHMARKS.md, train_gan).
# Attribute control, found on the demo (docs/BENCHMARKS.md, fifth and sixth rounds). lambda_flip:
# StarGAN's attribute loss averages over all attributes, of which an edit changes one; without the extra term the
# demo editor learned no smile at all, and at 3 one seed's editor in two still missed smiles. Stronger attribute
# terms (lambda_cls, lambda_cls_real) raise control only with mode seeking on (lambda_ms, the default), else G
# makes one face per request. conditional_norm: every resolution of G is told the attributes (demo Smiling
# samples 0.93-0.97).
SHORT_RUN = {
    "lr_g": 4e-4,
    "lr_d": 1e-3,
    "betas": (0.5, 0.999),
    "lambda_rec": 1.0,
    "lambda_cls": 6.0,
    "lambda_cls_real": 9.0,
    "lambda_flip": 4.5,
    "conditional_norm": True,
}

GAN_PROFILES: dict[str, dict[str, object]] = {
    # The offline demo faces at 32 x 32 (data.image_size: 32) on a 2-core CPU, under 5 min.
    # lambda_id 0: the identity pass was a third of the editor's work, which is two thirds of a step
    # (docs/BENCHMARKS.md, sixth round).
    "demo": {
        **SHORT_RUN,
        "lambda_id": 0.0,
        "base_channels": 16,
        "editor_channels": 8,
        "editor_res_blocks": 1,
        "batch_size": 32,
        "steps": 2200,
        "sample_every": 200,
        "checkpoint_every": 200,
    },
    # ../shared/celeba at 64 x 64 on a 2-core CPU, about an hour (docs/RESULTS.md). It keeps the identity pass and
    # weighs it and the cycle term up: on real photos who it is matters more than on the demo's (edits verified
    # as the same person 0.17 -> 0.24 against lambda_rec 1 / lambda_id 1 at 2,000 steps).
    "middle": {
        **SHORT_RUN,
        "lambda_rec": 4.0,
        "lambda_id": 2.0,
        "base_channels": 32,
        "editor_channels": 16,
        "editor_res_blocks": 2,
        "batch_size": 64,
        "steps": 1500,
        "sample_every": 100,
        "checkpoint_every": 100,
    },
    # Full CelebA at 64 x 64 on a GPU: the short-run optimiser and the middle profile's cycle and identity-pass
    # weights, which gave attribute control and kept the face on the CPU runs, and the masked editor (issue 20).
    # Its identity term needs gan.identity_network (bench/gpu_celeba64.py passes the distilled facenet).
    "celeba64": {
        **SHORT_RUN,
        "lambda_rec": 4.0,
        "lambda_id": 2.0,
        "editor_mask": True,
        "base_channels": 64,
        "editor_channels": 64,
        "editor_res_blocks": 6,
        "batch_size": 64,
        "steps": 50000,
        "sample_every": 1000,
        "checkpoint_every": 1000,
    },
}


class GanConfig(_Section):
    """The conditional generator (or cVAE baseline) and its training run (stage `train_gan`).

    ``profile`` fills in the sizes, run length and (demo) optimiser settings of :data:`GAN_PROFILES`; values
    set explicitly win. The field defaults below are what a profile leaves unset.
    """

    profile: GanProfile = "demo"
    model: Literal["cgan", "cvae"] = "cgan"  # cvae: the conditional VAE baseline
    attributes: tuple[str, ...] = ("Male", "Young", "Smiling", "Eyeglasses", "Black_Hair", "Blond_Hair")
    loss: Literal["hinge", "wgan-gp", "bce"] = "hinge"
    z_dim: int = Field(64, gt=0)
    base_channels: int = Field(16, gt=0)
    conditional_norm: bool = False  # generator: batch norms take scale and shift from the attributes (conditional BN)
    spectral_norm: bool = True
    editor: bool = True  # cgan: also train the StarGAN-style attribute editor E(image, target attributes)
    editor_channels: int = Field(8, gt=0)
    editor_res_blocks: int = Field(1, ge=0)  # residual blocks at the editor's bottleneck (StarGAN: 6)
    # The editor also predicts an attention mask that blends its change into the source (GANimation): the rest of
    # the face stays; lambda_mask weighs the mask's mean (L1), which keeps it small where nothing must change.
    editor_mask: bool = False
    lambda_mask: float = Field(0.1, ge=0)
    # Identity term: 1 - cosine between a face-recognition network's embeddings of each edit and its source, that
    # network frozen (e.g. the distilled facenet of studies/faces64). 0: no term, no network loaded.
    lambda_identity: float = Field(0.0, ge=0)
    identity_network: Path | None = None  # a backbone.pt (recognition/models/backbone.py); lambda_identity > 0
    identity_input_size: int = Field(80, gt=0)  # its input px (InceptionResnetV1 needs >= 80)
    # Realism where edits fail (issue 29): a patch discriminator on the eye and mouth bands (facegen/gan/regions.py),
    # real photos against edits, trained beside D; lambda_region weighs its term in the editor's loss. 0: none.
    lambda_region: float = Field(0.0, ge=0)
    # Realism in a face network's eyes (issue 29; Projected GAN, Sauer et al. 2021): a discriminator on the frozen
    # identity network's feature maps (gan.identity_network: InceptionResnetV1 after repeat_1 and repeat_2, of
    # feature_channels channels), real photos against edits; lambda_feature weighs its term in the editor's loss.
    lambda_feature: float = Field(0.0, ge=0)
    feature_channels: tuple[PositiveInt, ...] = Field((256, 896), min_length=1)
    batch_size: int = Field(16, gt=0)
    steps: int = Field(300, gt=0)
    lr_g: float = Field(2e-4, gt=0)  # generator, editor and cVAE
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.0, 0.99)
    ema_decay: float = Field(0.999, ge=0, le=1)
    lambda_cls: float = Field(1.0, ge=0)  # attribute loss of the generated faces (AC-GAN generator, editor, cVAE)
    lambda_cls_real: float = Field(1.0, ge=0)  # cgan D: attribute loss on real faces, what it teaches G and E
    lambda_ms: float = Field(1.0, ge=0)  # cgan generator: mode seeking (MSGAN), against one face per attribute request
    # mode seeking compares the two images average-pooled by this factor (1: MSGAN's per-pixel L1). Per pixel, colour
    # speckle is the cheapest difference to make, and the demo generator made it (docs/BENCHMARKS.md, fifth round).
    ms_downsample: int = Field(4, ge=1)
    lambda_flip: float = Field(0.0, ge=0)  # editor: extra attribute loss on the one attribute each edit flips
    balance_attributes: bool = True  # attribute losses weigh positives by negatives/positives in the training data
    lambda_gp: float = Field(10.0, ge=0)  # gradient penalty weight (wgan-gp only)
    lambda_rec: float = Field(10.0, ge=0)  # editor cycle reconstruction; cVAE reconstruction
    lambda_id: float = Field(1.0, ge=0)  # editor identity: E(x, own attributes) = x (0: that pass is skipped)
    lambda_kl: float = Field(0.01, ge=0)  # cVAE KL term (against a per-pixel L1 reconstruction)
    amp: bool = True  # mixed precision (CUDA only; ignored on CPU)
    sample_every: int = Field(50, gt=0)  # image grid, edit strip and metrics row every N steps
    checkpoint_every: int = Field(50, gt=0)
    # split: the prepared cache's `train` split. background: every photo of the attendance background people
    # minus the calibration people (the distilled backbone's training people), so a generator that edits
    # enrolment photos never saw the roster, the visitors or the people the threshold is set on. judge_train:
    # the people the attribute judge trains on (evaluate.classifier's identity split), so edits are measured on
    # people neither the generator nor the judge saw. generator: the generators' people of the editing split
    # (facegen.metrics.editing.editing_people): the judges then train on people the generator never met
    # (studies/celeba64).
    train_people: Literal["split", "background", "judge_train", "generator"] = "split"
    seed: int = 0
    out: Path = paths.GAN_OUT
    # another training folder (e.g. models/gan) whose checkpoint a fresh run continues: the same settings apart from
    # steps, cadence and out, so a longer run does not retrain the steps that one already took (resuming is exact)
    start_from: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("profile", "demo") in GAN_PROFILES:
            return GAN_PROFILES[data.get("profile", "demo")] | data
        return data

    @model_validator(mode="after")
    def _identity_network_named(self) -> GanConfig:
        for term in ("lambda_identity", "lambda_feature"):
            if getattr(self, term) > 0 and self.identity_network is None:
                raise ValueError(f"gan.{term} > 0 needs gan.identity_network (a backbone.pt, frozen, that it reads)")
        return self

    @model_validator(mode="after")
    def _edit_discriminators_judge_edits(self) -> GanConfig:
        for term in ("lambda_region", "lambda_feature"):
            if getattr(self, term) > 0 and (self.model != "cgan" or not self.editor or self.loss == "wgan-gp"):
                raise ValueError(
                    f"gan.{term} > 0 judges the editor's edits: it needs model cgan with editor: true, and a hinge "
                    f"or bce loss (got model {self.model}, editor {self.editor}, loss {self.loss})"
                )
        return self

    @property
    def uses_identity_network(self) -> bool:
        """A term reads the frozen identity network (gan.identity_network): it must be loaded."""
        return self.lambda_identity > 0 or self.lambda_feature > 0


class SamplingConfig(_Section):
    """How a trained generator is used (facegen.gan.inference.FaceModel): by `evaluate_gan`, `generate` and the CLI.

    Both settings act at inference only: changing them needs no retraining. 1 and 1.0 are the plain model.
    """

    # sample: draw this many faces per request and keep the one in which the model's own discriminator sees the
    # requested attributes most surely (discriminator-guided rejection). Each candidate costs a generator and a
    # discriminator pass (4: generate 3.9x slower, docs/BENCHMARKS.md), so the default is plain sampling; the demo
    # study's params.yaml asks for 4.
    candidates: int = Field(1, ge=1)
    # edit: condition the editor on source + edit_strength x (target - source), AttGAN's attribute intensity:
    # > 1 pushes only the changed attributes further; unchanged ones stay as they are. It costs identity (CelebA
    # middle editor at 2: 0.24 of edits verified as the same person instead of 0.31), so the default is the
    # plain editor; the demo study's params.yaml asks for 2.
    edit_strength: float = Field(1.0, gt=0)
    # sample: then pass each sampled face through the editor, asking for the requested attributes (an edit of the
    # new face whose source is how surely the discriminator sees each attribute: p + refine_strength x (request - p),
    # so an attribute D is unsure of is pushed too). Costs an editor pass per face.
    refine: bool = False
    # refine: the refining edit's strength, as edit_strength is for edits of photos (1: just the request). Stronger
    # refining fades the demo's blond hair on men (docs/BENCHMARKS.md, sixth round), so the default is 1.
    refine_strength: float = Field(1.0, gt=0)
    # edit: keep each edited photo as it was outside the bands of the attributes the edit changes (Eyeglasses: the
    # eyes, Smiling: the mouth; facegen/gan/regions.py), so the editor's artefacts elsewhere never reach it; an
    # attribute without a band (Male, Young, hair) still changes the whole face, an unchanged one nothing. For
    # landmark-aligned faces only (the bands sit on the ArcFace template), so off by default.
    confine_edits: bool = False


class AttendanceConfig(_Section):
    """Who is enrolled, who checks in, who is a visitor (see facegen.data.attendance)."""

    roster_size: int = Field(40, gt=0)  # people on the attendance roster
    enrol_per_person: int = Field(3, gt=0)  # enrolment photos per roster person; the rest are check-ins
    min_checkins: int = Field(2, gt=0)  # a roster person needs enrol_per_person + min_checkins photos
    visitors: int = Field(20, ge=0)  # people off the roster whose photos must be rejected
    gap_attributes: tuple[str, ...] = ("Eyeglasses", "Smiling")  # enrol without these where possible
    seed: int = 0


class QualityFilterConfig(_Section):
    """Drop generated faces whose attribute classifier (stage `evaluate_gan`) disagrees with the request."""

    enabled: bool = False
    classifier: Path = paths.ATTRIBUTE_CLASSIFIER
    threshold: float = Field(0.5, gt=0, lt=1)  # probability above which the classifier says "has it"


class SyntheticDatasetConfig(_Section):
    """One named synthetic data set (written to ``generate.out/<name>/``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    # per_attribute: n with and n without each attribute, the other conditioned attributes drawn from the
    # real marginals; combinations: n per combination of the attributes; edit: every source photo once
    # per attribute, with that attribute flipped.
    mode: Literal["per_attribute", "combinations", "edit"]
    attributes: Literal["all"] | tuple[str, ...] = "all"  # "all": every attribute the generator conditions on
    n: int | None = Field(None, gt=0)  # per requested cell; edit mode: at most n source photos (null: all)
    seed: int = 0
    sources: Literal["enrol", "checkin", "visitor", "background", "all"] = "enrol"  # edit mode: attendance role
    filter: QualityFilterConfig = QualityFilterConfig()

    @model_validator(mode="after")
    def _needs_n(self) -> SyntheticDatasetConfig:
        if self.mode != "edit" and self.n is None:
            raise ValueError(f"dataset {self.name!r}: mode {self.mode} needs n (faces per requested cell)")
        if self.attributes != "all" and not self.attributes:
            raise ValueError(f"dataset {self.name!r}: attributes is empty (list names, or 'all')")
        return self


class GenerateConfig(_Section):
    """Balanced synthetic data sets from the trained generator (stage `generate`)."""

    checkpoint: Path = paths.GAN_CHECKPOINT
    out: Path = paths.SYNTHETIC
    chunk_size: int = Field(256, gt=0)  # faces generated, written and recorded together (the resume unit)
    png_compression: int = Field(1, ge=0, le=9)  # zlib level: 1 is ~3x faster to write than 6, ~20% bigger
    device: str = "cpu"
    datasets: tuple[SyntheticDatasetConfig, ...] = (
        SyntheticDatasetConfig(
            name="enrolment_edits", mode="edit", attributes=("Eyeglasses", "Smiling"), sources="enrol"
        ),
        SyntheticDatasetConfig(
            name="balanced_attributes", mode="per_attribute", attributes=("Eyeglasses", "Smiling"), n=300
        ),
    )

    @model_validator(mode="after")
    def _unique_names(self) -> GenerateConfig:
        names = [d.name for d in self.datasets]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dataset names repeat: {repeated}")
        return self


class NetTraining(_Section):
    """A small CNN trained by facegen.metrics.convnet.fit (the attribute classifier, the real-vs-synthetic detector)."""

    width: int = Field(16, gt=0)  # channels of the first conv block; doubled at each halving of the size
    epochs: int = Field(8, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(2e-3, gt=0)
    holdout_fraction: float = Field(0.2, gt=0, lt=1)  # of identities (classifier) or images (detector)
    seed: int = 0


class EvaluateConfig(_Section):
    """How the generator is judged (stage `evaluate_gan`), on features of networks trained here."""

    classifier: NetTraining = NetTraining(width=32, epochs=30)  # the judge: balanced accuracy >= 0.9 on demo
    detector: NetTraining = NetTraining(width=8, epochs=3, holdout_fraction=0.3)
    samples: int = Field(1000, gt=1)  # generated faces for FID/KID/precision/recall/detector, as many real ones
    control_samples: int = Field(100, gt=1)  # per attribute: faces sampled (half with it, half without)
    edits: int = Field(100, gt=1)  # per attribute: held-out real faces edited to flip it
    kid_subsets: int = Field(
        20, gt=0
    )  # KID averages over this many random subsets (torchmetrics' default 100 costs ~10 s more)
    kid_subset_size: int = Field(500, gt=1)
    nearest_k: int = Field(5, gt=0)  # neighbours for precision/recall/density/coverage
    identity_far: float = Field(0.01, gt=0, lt=1)  # the "same person" threshold's false-accept rate on real pairs
    # Real faces reach the cache decoded from JPEG, generated ones are raw pixels: both pass through this encoding
    # before the real-vs-synthetic detector, so it cannot tell them apart by the encoding alone.
    detector_encoding: Literal["png", "jpeg"] = "jpeg"
    jpeg_quality: int = Field(90, ge=1, le=100)
    seed: int = 0
    classifier_out: Path = paths.ATTRIBUTE_CLASSIFIER


class EditingConfig(_Section):
    """How editors are compared (stage evaluate_editors of studies/celeba64, facegen/metrics/editing.py): each
    held-out photo edited at every strength, judged by an attribute judge and two identity judges (the dlib teacher
    and Fisherfaces) trained on people the generators never met, beside the photo itself and its reconstruction."""

    strengths: tuple[float, ...] = (1.0, 2.0, 3.0)  # edit strengths (AttGAN intensity, sampling.edit_strength)
    strength: float = 3.0  # the pre-chosen strength the targets are read at (fixed before the run)
    candidates: int = Field(4, ge=1)  # discriminator-chosen samples: best of this many, reported beside plain ones
    judge_fraction: float = Field(0.0, ge=0, lt=1)  # of the people not held out: the judges' own (0: judge_train)
    exclude_folder: Path | None = None  # nobody with a folder here (faces64's people) is trained on, judged or edited
    exclude_photos: Path | None = None  # CSV (image_id column) of photos never edited: those settings were tuned on
    fisherfaces_components: int = Field(200, gt=0)  # the second identity judge (recognition/models/fisherfaces.py)
    # generator sections whose editors are judged a second time with sampling.confine_edits (edits kept inside the
    # changed attribute's band: a realism lever that needs no training)
    confined: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _strength_measured_and_sections_known(self) -> EditingConfig:
        if self.strength not in self.strengths:
            raise ValueError(f"editing.strength={self.strength} is not among editing.strengths={list(self.strengths)}")
        unknown = [name for name in self.confined if name not in GAN_SECTIONS]
        if unknown:
            raise ValueError(f"editing.confined: {unknown} are not generator sections; valid: {list(GAN_SECTIONS)}")
        return self


class ClassicAugmentation(_Section):
    """torchvision v2 transforms for the `classic` condition: flips, crops, colour jitter."""

    flip: float = Field(0.5, ge=0, le=1)  # probability of a horizontal flip
    crop_scale: tuple[float, float] = (0.8, 1.0)  # RandomResizedCrop area range
    brightness: float = Field(0.3, ge=0)
    contrast: float = Field(0.3, ge=0)
    saturation: float = Field(0.3, ge=0)
    hue: float = Field(0.05, ge=0, le=0.5)


class TeacherConfig(_Section):
    """dlib's pretrained face recognizer (recognition/models/teacher.py): the reference row of every recognizer table,
    the target the facenet model is distilled from, and the judge of identity."""

    workers: int = Field(2, ge=1)  # processes embedding faces (about 10-15 faces/s each on a CPU core)
    embeddings: Path = paths.TEACHER_EMBEDDINGS  # stage teacher_embeddings: every prepared face's 128-d descriptor


class DistillConfig(_Section):
    """Distil facenet's InceptionResnetV1 from the teacher (recognition/models/distill.py, stage distill_backbone):
    match the teacher's centred embeddings through a linear head, then add a margin loss on identities."""

    input_size: int = Field(80, ge=80)  # student input px (InceptionResnetV1 needs >= 80; 160 on a GPU)
    epochs: int = Field(6, gt=0)  # in all, the margin epochs included
    margin_epochs: int = Field(1, ge=0)  # the last epochs add the margin loss on identities
    margin_loss: Literal["cosface", "arcface"] = "cosface"  # pytorch-metric-learning's CosFaceLoss / ArcFaceLoss
    margin_weight: float = Field(0.1, ge=0)
    batch_size: int = Field(64, gt=1)
    lr: float = Field(1e-3, gt=0)  # one-cycle peak (AdamW)
    weight_decay: float = Field(1e-4, ge=0)
    extra_prepared: tuple[Path, ...] = ()  # more prepared caches to distil on (e.g. the aligned CelebA subset);
    #                                        their roster, visitor and calibration people are left out
    exclude_people: tuple[Path, ...] = ()  # CSVs of people (an `identity` column) no face of is learnt from:
    #                                        the people other studies evaluate on (studies/ownphotos/people.csv)
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random resized crop: share of the face kept (1, 1: none)
    max_shift: float = Field(0.06, ge=0, lt=0.5)  # random shift, as a share of the crop side
    colour_jitter: float = Field(0.3, ge=0, le=1)  # brightness, contrast and saturation, each +- this share
    loader_workers: int = Field(0, ge=0)  # DataLoader worker processes (0: in the training process)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA with mixed precision when there is a GPU
    seed: int = 0
    out: Path = paths.DISTILLED


# The recognition conditions: the enrolment images each adds (dvc.yaml's train_recognizer runs one stage per condition).
Condition = Literal["baseline", "classic", "gan", "both"]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)


class RecognitionConfig(_Section):
    """The facenet attendance recognizer and the augmentation experiment (stages pretrain_backbone,
    train_recognizer, compare)."""

    # a backbone file (default: the facenet distilled from the teacher on aligned faces, studies/faces64) | dlib (the
    # teacher itself, offline) | none (pretrain here) | vggface2 | casia-webface (online)
    pretrained: str = str(paths.ATTENDANCE_RECOGNIZER)
    input_size: int = Field(80, ge=80)  # backbone input (px); InceptionResnetV1 needs >= 80
    embed_batch_size: int = Field(64, gt=0)
    # backbone pretraining on background identities (pretrained: none)
    epochs: int = Field(2, gt=0)
    batch_size: int = Field(32, gt=1)
    lr: float = Field(1e-3, gt=0)
    calibration_people: int = Field(20, ge=1)  # background people held out of pretraining to set the threshold
    pretrain_people: int = Field(0, ge=0)  # pretrain on at most this many background people (0: all of them)
    # the attendance classifier, per condition and seed
    conditions: tuple[Condition, ...] = CONDITIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    classic_copies: int = Field(4, ge=1)  # augmented copies per enrolment photo
    classic: ClassicAugmentation = ClassicAugmentation()
    gan_copies: int = Field(4, ge=1)  # editor variants per enrolment photo, round-robin over edited attributes
    gan_dataset: Path = Path("data/synthetic/enrolment_edits")
    far: float = Field(0.01, gt=0, lt=1)  # open-set false accept rate the threshold is set for
    bootstrap_samples: int = Field(500, ge=10)
    seed: int = 0
    trained_here: Path = paths.BACKBONE  # the softmax facenet compare_backbones scores (stage pretrain_backbone)
    teacher: TeacherConfig = TeacherConfig()
    distill: DistillConfig = DistillConfig()


OWN_EDITOR = "own"  # the name of a study's own editor among the augmentation's GAN sources
CONFINED = "_confined"  # "<editor>_confined": that editor with its edits kept inside the attribute's band


class SecondEditor(_Section):
    """Another study's editor as a second source of GAN edits (issue 28): e.g. studies/celeba64's identity editor,
    trained on people faces64 never shows; it must edit faces of the study's size and alignment."""

    name: str = Field(pattern=r"^[a-z][a-z0-9]*$")  # its arm is gan_<name>_<primary_attribute>_1
    checkpoint: Path  # its generator checkpoint (the stage augment_faces lists it as a dependency)


class AugmentationConfig(_Section):
    """Can eyeglasses at enrolment help the distilled facenet, and how close do GAN edits come (issues 19, 28;
    stages augment_faces and augmentation of studies/faces64)? Arms: baseline, classic copies, the oracle (a real
    eyeglass photo of the same person), the editor's reconstruction (attributes unchanged) and verified GAN edits
    at each budget; compared by paired differences to the baseline over people (recognition/augmentation/)."""

    roster_draws: int = Field(3, ge=1)  # draw 0 is attendance.seed's split; draw k re-splits its roster and
    #                                     visitor people with seed attendance.seed + k (the backbone saw none)
    training_seeds: tuple[int, ...] = (0, 1)  # of everything trained per arm (and of classic copies)
    primary_attribute: str = "Eyeglasses"  # primary endpoint: top-1 on check-ins wearing it
    budgets: tuple[PositiveInt, ...] = Field(
        (1, 2, 4), min_length=1
    )  # verified GAN edits per enrolment photo; the first: primary arm
    oracle_rotations: int = Field(2, ge=1)  # leave-one-out turns: each turn enrols another real eyeglass photo
    edit_strengths: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5)  # candidate edits per photo, ranked
    background_edits: int = Field(2000, ge=0)  # background photos given the primary attribute (embedding arm)
    synthetic_faces: int = Field(1000, ge=0)  # generator samples, half with the primary attribute (embedding arm)
    finetune_step_grid: tuple[PositiveInt, ...] = Field(
        (25, 50, 100, 200, 400), min_length=1
    )  # roster fine-tune lengths to validate
    finetune_lr: float = Field(3e-4, gt=0)
    embedding_epochs: int = Field(2, gt=0)  # last blocks retrained on the background people (+ GAN faces)
    embedding_lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(64, gt=1)
    bootstrap_samples: int = Field(2000, ge=100)
    permutation_samples: int = Field(10000, ge=100)
    planning_baseline_rate: float = Field(0.6, gt=0, lt=1)  # prospective power: the baseline top-1 planned for
    power_effects: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)  # true gains simulated for the power curve
    power_simulations: int = Field(500, ge=10)
    lenses: Path | None = None  # CSV image_id,identity,lenses (clear | sun | none), labelled by looking
    second_editor: SecondEditor | None = None  # adds arm gan_<name>_<primary_attribute>_1 beside the study's own
    # editors (own: the study's; or the second editor's name) whose edits are also kept inside the attribute's
    # band (sampling.confine_edits: the photo elsewhere); each adds arm gan_<editor>_confined_<primary_attribute>_1
    confined: tuple[str, ...] = ()
    out: Path = paths.AUGMENT_FACES

    @model_validator(mode="after")
    def _primary_budget_is_one_and_confined_editors_known(self) -> AugmentationConfig:
        if self.budgets[0] != 1:
            raise ValueError(
                f"augmentation.budgets={list(self.budgets)}: the first (the primary arm's) must be 1: the primary arm "
                "adds one verified edit per enrolment photo, as the reconstruction arm adds one reconstruction"
            )
        editors = [OWN_EDITOR] + ([self.second_editor.name] if self.second_editor else [])
        if editors.count(OWN_EDITOR) > 1:
            raise ValueError(f"augmentation.second_editor.name: {OWN_EDITOR!r} names the study's own editor")
        unknown = [name for name in self.confined if name not in editors]
        if unknown or len(set(self.confined)) != len(self.confined):
            raise ValueError(
                f"augmentation.confined={list(self.confined)}: each editor once, of {', '.join(editors)} "
                "(own: the study's editor; the second editor by its name)"
            )
        return self


class PhotoFolderConfig(_Section):
    """A folder of photos as a user has them, of CelebA people no model here has seen (studies/ownphotos, stage
    photo_folder, facegen/data/photo_folder.py)."""

    celeba_root: Path = Path("../shared/celeba")  # the CelebA copy the photos come from (their original JPEGs)
    exclude_folder: Path | None = Path("../shared/faces64")  # nobody with a folder here is chosen
    people: int = Field(200, ge=2)
    min_photos: int = Field(5, ge=2)  # enough for enrolment plus check-ins
    seed: int = 0
    out: Path = paths.PHOTO_FOLDER
    people_csv: Path = paths.PHOTO_FOLDER_PEOPLE  # training stages leave these people out (distill.exclude_people)


class ReportConfig(_Section):
    """The one-page HTML report (stage `report`)."""

    out: Path = paths.REPORT


DASK_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::\d{1,5})?/?")


class ComputeConfig(_Section):
    """Where the per-photo work of prepare, the embeddings and generate runs (pipelines/scale_out.py): here, as
    always (both unset), on a Dask cluster at ``dask_address`` (a running ``dask scheduler``), or on a temporary
    Dask ``LocalCluster`` of ``dask_workers`` worker processes (one thread each). The outputs are the same bytes."""

    dask_address: str | None = None  # e.g. tcp://10.0.0.5:8786
    dask_workers: int = Field(0, ge=0)

    @field_validator("dask_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not DASK_ADDRESS.fullmatch(value.strip()):
            raise ValueError(
                "not a Dask scheduler address such as tcp://host:8786 (null: no cluster; compute.dask_workers: "
                "a local one)"
            )
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _one_cluster(self) -> ComputeConfig:
        if self.dask_address and self.dask_workers:
            raise ValueError(
                f"compute.dask_address={self.dask_address} and compute.dask_workers={self.dask_workers} are both "
                "set: give the address of a running cluster or a local cluster's size, not both"
            )
        return self

    @property
    def enabled(self) -> bool:
        """Per-photo work goes to Dask."""
        return bool(self.dask_address or self.dask_workers)


# params.yaml's generator sections: gan, then the generators the celeba64 study compares with it (each optional)
GAN_SECTIONS = ("gan", "gan_baseline", "gan_region", "gan_long", "gan_feature")


class Params(_Section):
    data: DataConfig = DataConfig()
    prepare: PrepareConfig = PrepareConfig()
    gan: GanConfig = GanConfig()
    gan_baseline: GanConfig | None = None  # a second generator the first is compared with (studies/celeba64)
    gan_region: GanConfig | None = None  # gan with the eye and mouth discriminator, compared with it (celeba64)
    gan_long: GanConfig | None = None  # gan trained longer, compared with it (celeba64)
    gan_feature: GanConfig | None = None  # gan with the discriminator on the face network's maps (celeba64)
    sampling: SamplingConfig = SamplingConfig()
    attendance: AttendanceConfig = AttendanceConfig()
    generate: GenerateConfig = GenerateConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    editing: EditingConfig = EditingConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    augmentation: AugmentationConfig = AugmentationConfig()
    photo_folder: PhotoFolderConfig = PhotoFolderConfig()
    report: ReportConfig = ReportConfig()
    compute: ComputeConfig = ComputeConfig()

    def outputs(self) -> dict[str, Path]:
        """Every setting that names a file or folder a stage writes (replaces or deletes), by dotted name."""
        found = {
            "data.demo.root": self.data.demo.root,
            "data.celeba.root": self.data.celeba.root,
            "prepare.out": self.prepare.out,
            "gan.out": self.gan.out,
            "generate.out": self.generate.out,
            "evaluate.classifier_out": self.evaluate.classifier_out,
            "recognition.teacher.embeddings": self.recognition.teacher.embeddings,
            "recognition.distill.out": self.recognition.distill.out,
            "augmentation.out": self.augmentation.out,
            "photo_folder.out": self.photo_folder.out,
            "photo_folder.people_csv": self.photo_folder.people_csv,
            "report.out": self.report.out,
        }
        for name, config in self.gan_sections().items():
            found[f"{name}.out"] = config.out
        return found

    def gan_sections(self) -> dict[str, GanConfig]:
        """The generator sections params has (:data:`GAN_SECTIONS`), by name, gan first."""
        return {name: getattr(self, name) for name in GAN_SECTIONS if getattr(self, name) is not None}

    def inputs(self) -> dict[str, Path]:
        """Every setting that names a file or folder a stage only reads, by dotted name (``recognition.pretrained``
        when it is a file path, not a name such as ``dlib``)."""
        found: dict[str, Path | None] = {
            "data.local.root": self.data.local.root,
            "data.folder.root": self.data.folder.root,
            "data.folder.attributes_csv": self.data.folder.attributes_csv,
            "data.folder.celeba_root": self.data.folder.celeba_root,
            "gan.identity_network": self.gan.identity_network,
            "generate.checkpoint": self.generate.checkpoint,
            "recognition.gan_dataset": self.recognition.gan_dataset,
            "recognition.trained_here": self.recognition.trained_here,
            "photo_folder.celeba_root": self.photo_folder.celeba_root,
            "photo_folder.exclude_folder": self.photo_folder.exclude_folder,
            "editing.exclude_folder": self.editing.exclude_folder,
            "editing.exclude_photos": self.editing.exclude_photos,
            "augmentation.lenses": self.augmentation.lenses,
        }
        if "/" in self.recognition.pretrained or self.recognition.pretrained.endswith(".pt"):
            found["recognition.pretrained"] = Path(self.recognition.pretrained).expanduser()
        for k, path in enumerate(self.recognition.distill.extra_prepared):
            found[f"recognition.distill.extra_prepared[{k}]"] = path
        for k, path in enumerate(self.recognition.distill.exclude_people):
            found[f"recognition.distill.exclude_people[{k}]"] = path
        for dataset in self.generate.datasets:
            if dataset.filter.enabled:
                found[f"generate.datasets[{dataset.name}].filter.classifier"] = dataset.filter.classifier
        return {name: path for name, path in found.items() if path is not None}

    @model_validator(mode="after")
    def _outputs_apart(self) -> Params:
        """No output is, holds or lies in another output, and none is, holds or lies in an input, except where
        the input is what that output's stage makes (``generate.checkpoint`` in ``gan.out``): a stage that
        replaces its output folder would otherwise delete another stage's output or the user's files."""
        outputs = {name: _absolute(path) for name, path in self.outputs().items()}
        names = list(outputs)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if _overlap(outputs[a], outputs[b]):
                    raise ValueError(
                        f"{a}={self.outputs()[a]} and {b}={self.outputs()[b]} overlap: one stage's output would "
                        "replace or delete the other's; give each its own path"
                    )
        for name, given in self.inputs().items():
            source = _absolute(given)
            for out_name, out in outputs.items():
                made_there = (re.sub(r"\[[^]]*\]", "[]", name), out_name) in _MADE_BY
                if _overlap(source, out) and not (made_there and (out == source or out in source.parents)):
                    raise ValueError(
                        f"{out_name}={self.outputs()[out_name]} overlaps the input {name}={given}: a stage would "
                        "overwrite or delete what another reads; choose an output path apart from every input"
                    )
        return self


# (input, output) pairs where the input is, or lies in, what the output's stage writes: reading it is the point.
_MADE_BY = frozenset(
    {
        ("generate.checkpoint", "gan.out"),
        ("recognition.gan_dataset", "generate.out"),
        ("data.folder.root", "photo_folder.out"),
        ("recognition.distill.exclude_people[]", "photo_folder.people_csv"),
        ("recognition.pretrained", "recognition.distill.out"),
        ("gan.identity_network", "recognition.distill.out"),
        ("recognition.distill.extra_prepared[]", "prepare.out"),
        ("data.local.root", "data.celeba.root"),
        ("generate.datasets[].filter.classifier", "evaluate.classifier_out"),
    }
)


def _absolute(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or has an invalid value; the message names the parameter."""


def load_params(path: Path | str = "params.yaml", overrides: dict | None = None) -> Params:
    """Read and validate params.yaml (plus optional nested overrides) into typed config objects."""
    path = Path(path)
    try:
        raw = yaml.safe_load(read_text_file(path, MAX_PARAMS_BYTES)) or {}
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file; run from the project root or pass --params") from None
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {short_repr(str(err))}") from None
    except RecursionError:
        raise ParamsError(f"{path}: nested too deeply to be a parameters file") from None
    except (OSError, ValueError) as err:  # a folder, a fifo, a file too large
        raise ParamsError(f"{path}: cannot be read as a parameters file ({err})") from None
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{path}: expected a mapping of parameter groups (data:, prepare:, ...), got a YAML {type(raw).__name__}"
        )
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        errors = err.errors()
        problems = "; ".join(_problem(e) for e in errors[:MAX_PROBLEMS])
        more = f"; and {len(errors) - MAX_PROBLEMS} more" if len(errors) > MAX_PROBLEMS else ""
        raise ParamsError(f"{path}: {problems}{more}") from None


MAX_PROBLEMS = 8  # an error lists at most this many invalid values
MAX_PARAMS_BYTES = 10_000_000  # a parameters file is a few KB: a larger one is refused unread


def _problem(error: dict) -> str:
    """One invalid value as ``name: why (got value)``, the value's repr capped (a small YAML file of aliases can
    stand for gigabytes of repr)."""
    if not error["loc"]:  # a check across settings (a model validator): its message names them
        return error["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in error["loc"])
    got = f" (got {short_repr(error['input'])})" if "input" in error else ""
    return f"{where}: {error['msg']}{got}"


def _set_dotted(tree: dict, dotted: str, value: object) -> None:
    """Set ``a.b.c`` in nested groups; a path through a plain value (``data.source.x``) is an error naming it."""
    *parents, leaf = dotted.split(".")
    if not all([*parents, leaf]):
        raise ParamsError(f"--set {dotted}: empty name in the parameter path")
    for depth, key in enumerate(parents):
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise ParamsError(
                f"--set {dotted}: {'.'.join(parents[: depth + 1])} is a value ({short_repr(tree)}), "
                "not a group of parameters"
            )
    tree[leaf] = value
