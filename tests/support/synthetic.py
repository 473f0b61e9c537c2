"""Small real inputs for the synthetic-data tests: a prepared demo cache and a tiny generator checkpoint."""

from __future__ import annotations

from pathlib import Path

from facegen.config import AttendanceConfig, DataConfig, DemoSource, GanConfig, PrepareConfig
from facegen.data.sources import acquire, prepare_source
from facegen.gan.training_loop import GanTrainer, training_tensors
from facegen.paths import GAN_CHECKPOINT_NAME

ATTRIBUTES = ("Male", "Eyeglasses", "Smiling")
ATTENDANCE = AttendanceConfig(roster_size=4, enrol_per_person=2, min_checkins=2, visitors=2)


def prepare_demo(
    root: Path, out: Path | None = None, identities: int = 12, per_identity: int = 5, image_size: int = 32
) -> Path:
    """A prepared cache (in ``out``, default root/prepared) of drawn demo faces, 32x32 by default (seconds)."""
    demo = DemoSource(root=root / "raw", identities=identities, images_per_identity=per_identity)
    data = DataConfig(image_size=image_size, demo=demo)
    prepare = PrepareConfig(out=out or root / "prepared", workers=0, align="box")  # drawn faces: no landmarks
    prepare_source(data, prepare, acquire(data))
    return prepare.out


def tiny_gan(**changes) -> GanConfig:
    """A 2-step generator and editor, 8 channels wide (seconds to train); ``changes`` override any field."""
    tiny = dict(
        attributes=ATTRIBUTES,
        base_channels=8,
        z_dim=8,
        editor_channels=8,
        editor_res_blocks=1,
        batch_size=4,
        steps=2,
        sample_every=2,
        checkpoint_every=2,
    )
    return GanConfig(**(tiny | changes))


def tiny_checkpoint(prepared: Path, out: Path) -> Path:
    """A tiny generator and editor trained on the prepared faces (what `train_gan` writes, only tiny)."""
    GanTrainer(tiny_gan(), *training_tensors(prepared, ATTRIBUTES, "all"), out).run()
    return out / GAN_CHECKPOINT_NAME


def files(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative name -> bytes), to compare outputs byte for byte."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
