"""The GAN training loop: seeded runs repeat exactly, a resumed run equals an uninterrupted one, outputs are complete."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.config import GanConfig
from facegen.gan.training_loop import CHECKPOINT, METRICS, GanTrainer

ATTRIBUTES = ("Eyeglasses", "Smiling")


@pytest.fixture(scope="module")
def faces() -> tuple[torch.Tensor, torch.Tensor]:
    """48 real 32x32 faces64 crops with random-but-fixed attribute labels (the loop's mechanics, not quality)."""
    root = Path(__file__).resolve().parents[2] / "shared" / "faces64"
    photos = sorted(root.rglob("*.jpg"))[:48]
    images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((32, 32))) for p in photos])
    attributes = torch.randint(0, 2, (48, len(ATTRIBUTES)), generator=torch.Generator().manual_seed(0)).float()
    return torch.from_numpy(images), attributes


def _config(**changes) -> GanConfig:
    base = dict(attributes=ATTRIBUTES, z_dim=8, base_channels=4, batch_size=8, steps=6, sample_every=3,
                checkpoint_every=3, seed=7)
    return GanConfig(**(base | changes))


def _weights(trainer: GanTrainer) -> list[torch.Tensor]:
    return [t.detach().clone() for m in (trainer.G, trainer.D, trainer.G_ema) for t in m.state_dict().values()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("loss", ["hinge", "wgan-gp", "bce"])
def test_seeded_runs_repeat_exactly_and_write_their_outputs(faces, tmp_path: Path, loss: str) -> None:
    runs = []
    for name in ("a", "b"):
        trainer = GanTrainer(_config(loss=loss), *faces, tmp_path / name)
        trainer.run()
        runs.append(_weights(trainer))
    assert _same(*runs)
    other = GanTrainer(_config(loss=loss, seed=8), *faces, tmp_path / "c")
    other.run()
    assert not _same(runs[0], _weights(other))
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT, "grid_000003.png", "grid_000006.png", METRICS]
    rows = list(csv.DictReader(open(out / METRICS)))
    assert [int(r["step"]) for r in rows] == [3, 6] and all(np.isfinite(float(r["d_loss"])) for r in rows)
    grid = Image.open(out / "grid_000006.png")
    assert grid.size == (2 + 8 * 34, 2 + 3 * 34)  # 8 columns of z x (none + one row per attribute), 2 px padding


def test_resumed_run_equals_an_uninterrupted_one(faces, tmp_path: Path) -> None:
    straight = GanTrainer(_config(), *faces, tmp_path / "straight")
    straight.run()

    first = GanTrainer(_config(steps=3), *faces, tmp_path / "resumed")
    first.run()  # stops at step 3 with a checkpoint, as a killed run would have left it
    second = GanTrainer(_config(), *faces, tmp_path / "resumed")
    second.load_checkpoint(tmp_path / "resumed" / CHECKPOINT)
    assert second.step == 3
    second.run()
    assert second.step == 6 and _same(_weights(straight), _weights(second))


def test_checkpoint_loads_with_weights_only_and_checks_attributes(faces, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(steps=3), *faces, tmp_path / "run")
    trainer.run()
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert state["step"] == 3 and state["config"]["attributes"] == list(ATTRIBUTES)
    swapped = GanTrainer(_config(attributes=ATTRIBUTES[::-1]), *faces, tmp_path / "other")
    with pytest.raises(ValueError, match=r"trained on attributes \['Eyeglasses', 'Smiling'\], not gan.attributes"):
        swapped.load_checkpoint(tmp_path / "run" / CHECKPOINT)


def test_bad_inputs_are_named(faces, tmp_path: Path) -> None:
    images, attributes = faces
    with pytest.raises(ValueError, match="images must be N x R x R x 3 uint8"):
        GanTrainer(_config(), images.float(), attributes, tmp_path)
    with pytest.raises(ValueError, match=r"attributes must be 48 x 2 \(gan.attributes\), got \(48, 3\)"):
        GanTrainer(_config(), images, torch.zeros(48, 3), tmp_path)


def test_ema_follows_the_generator_from_the_start(faces, tmp_path: Path) -> None:
    trainer = GanTrainer(_config(steps=3), *faces, tmp_path / "run")
    initial = [p.detach().clone() for p in trainer.G_ema.parameters()]
    trainer.run()
    moved = [(e - i).norm() / (g - i).norm().clamp_min(1e-12)
             for e, g, i in zip(trainer.G_ema.parameters(), trainer.G.parameters(), initial)]
    assert min(moved) > 0.5  # with a fixed 0.999 decay the EMA would have moved ~0.3% of the way
