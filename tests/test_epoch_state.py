"""An epoch trainer's checkpoint: what is saved comes back, another run's file is ignored, a foreign file is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facegen.weights import CheckpointError
from recognition.models.epoch_state import resume_epoch_state, save_epoch_state


def _trainer(seed: int) -> tuple[dict, torch.Generator]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()  # Adam now has moments to save
    return {"model": model, "optimizer": optimizer}, torch.Generator().manual_seed(seed)


def test_a_saved_state_comes_back_whole(tmp_path: Path) -> None:
    parts, generator = _trainer(0)
    torch.rand(5, generator=generator)
    save_epoch_state(tmp_path / "c.pt", parts, generator, 2, [{"loss": 1.5}, {"loss": 1.0}], "abc")
    expected_rng, expected_draw = torch.get_rng_state(), torch.rand(3, generator=generator.clone_state())

    fresh, fresh_generator = _trainer(1)
    done = resume_epoch_state(tmp_path / "c.pt", "test checkpoint", fresh, fresh_generator, "abc", last_epoch=3)

    assert done == (2, [{"loss": 1.5}, {"loss": 1.0}])
    assert torch.equal(fresh["model"].weight, parts["model"].weight)
    assert (
        fresh["optimizer"]
        .state_dict()["state"][0]["exp_avg"]
        .equal(parts["optimizer"].state_dict()["state"][0]["exp_avg"])
    )
    assert torch.equal(torch.get_rng_state(), expected_rng)
    assert torch.equal(torch.rand(3, generator=fresh_generator), expected_draw)


@pytest.mark.parametrize(("fingerprint", "last_epoch"), [("other", 3), ("abc", 1)])
def test_another_runs_checkpoint_changes_nothing(tmp_path: Path, fingerprint: str, last_epoch: int) -> None:
    parts, generator = _trainer(0)
    save_epoch_state(tmp_path / "c.pt", parts, generator, 2, [], "abc")
    fresh, fresh_generator = _trainer(1)
    before = fresh["model"].weight.clone()

    assert (
        resume_epoch_state(tmp_path / "c.pt", "test checkpoint", fresh, fresh_generator, fingerprint, last_epoch)
        is None
    )
    assert torch.equal(fresh["model"].weight, before)
    assert resume_epoch_state(tmp_path / "missing.pt", "test checkpoint", fresh, fresh_generator, "abc", 3) is None


def test_a_foreign_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
    parts, generator = _trainer(0)
    with pytest.raises(CheckpointError, match=r"c\.pt: not a test checkpoint"):
        resume_epoch_state(tmp_path / "c.pt", "test checkpoint", parts, generator, "abc", 3)
