"""The resumable state of an epoch-based trainer (distillation, pretraining), saved atomically after each epoch.

One file holds each named part's ``state_dict`` (the model, its optimiser, and whatever else the trainer steps),
the data-order generator, torch's global RNG, the epochs done with their metrics, and the run's fingerprint (a
hash of its settings and data). A checkpoint made with another fingerprint is ignored, so a changed run starts
afresh instead of continuing someone else's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

from facegen.io import atomic_file
from facegen.weights import load_checkpoint


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


def save_epoch_state(
    path: Path,
    parts: Mapping[str, Stateful],
    generator: torch.Generator,
    epoch: int,
    history: list[dict[str, float]],
    fingerprint: str,
) -> None:
    """Write the trainer's state after ``epoch`` epochs to ``path`` (atomically: a killed save leaves the last one)."""
    state = {name: part.state_dict() for name, part in parts.items()} | {
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": epoch,
        "history": json.dumps(history),
        "fingerprint": fingerprint,
    }
    with atomic_file(path) as f:
        torch.save(state, f)


def resume_epoch_state(
    path: Path,
    what: str,
    parts: Mapping[str, Stateful],
    generator: torch.Generator,
    fingerprint: str,
    last_epoch: int,
) -> tuple[int, list[dict[str, float]]] | None:
    """Load ``path`` into ``parts``, ``generator`` and torch's global RNG if it is this run's checkpoint (the same
    ``fingerprint``, at most ``last_epoch`` epochs done); returns (epochs done, their metrics), or None with nothing
    changed. A file that is not a checkpoint of ours is a CheckpointError naming it (``what`` says its kind)."""
    if not path.is_file():
        return None
    state = load_checkpoint(path, what, ("fingerprint", "epoch", "history", "generator", "torch_rng", *parts))
    if state["fingerprint"] != fingerprint or int(state["epoch"]) > last_epoch:
        return None
    for name, part in parts.items():
        part.load_state_dict(state[name])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), json.loads(state["history"])


class EpochCheckpoints:
    """What a trainer needs to checkpoint each epoch and resume: it sets ``work`` (its folder), ``generator`` (its
    data order), ``fingerprint``, ``epoch``, ``history`` and ``settings.epochs``, names its parts in
    ``stateful_parts`` and the kind of file in ``checkpoint_kind``."""

    checkpoint_kind: str
    work: Path
    generator: torch.Generator
    fingerprint: str
    epoch: int
    history: list[dict[str, float]]
    settings: Any

    def stateful_parts(self) -> dict[str, Stateful]:
        raise NotImplementedError

    @property
    def checkpoint_path(self) -> Path:
        return self.work / "checkpoint.pt"

    def resume(self) -> bool:
        """Continue from the last checkpoint if it was made with the same settings and data."""
        done = resume_epoch_state(
            self.checkpoint_path,
            self.checkpoint_kind,
            self.stateful_parts(),
            self.generator,
            self.fingerprint,
            self.settings.epochs,
        )
        if done is None:
            return False
        self.epoch, self.history = done
        return True

    def save_checkpoint(self) -> None:
        save_epoch_state(
            self.checkpoint_path, self.stateful_parts(), self.generator, self.epoch, self.history, self.fingerprint
        )
