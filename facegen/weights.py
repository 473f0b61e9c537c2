"""Reading the project's torch files (GAN checkpoints, classifiers, backbones) without unpickling code.

``torch.load(weights_only=True)`` refuses files that hold Python objects, but its message then suggests
retrying with ``weights_only=False``, which would run whatever the file holds. Here any file that is not one
of ours is a :class:`CheckpointError` that names it and says why, with no such advice.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A file is not the project checkpoint it should be; the message names the file."""


def load_checkpoint(path: Path | str, what: str, keys: Sequence[str]) -> dict:
    """The contents (on the CPU, tensors and plain values only) of ``path``, which must be a mapping with
    ``keys``; ``what`` names the kind of file for the error message, e.g. "facegen backbone checkpoint"."""
    try:
        with warnings.catch_warnings():  # about the pickle protocol of a file that is no checkpoint of ours
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # broad on purpose: torch reports a foreign file with many exception types
        found = re.search(r"GLOBAL (\S+)", str(err))
        why = (
            f"it holds Python objects ({found.group(1)}), which are never unpickled"
            if found
            else f"not a torch file ({type(err).__name__})"
        )
        raise CheckpointError(f"{path}: not a {what}: {why}") from None
    missing = [k for k in keys if k not in state] if isinstance(state, dict) else list(keys)
    if missing:
        raise CheckpointError(f"{path}: not a {what}: no {missing[0]!r} entry")
    return state


def load_weights(module: torch.nn.Module, weights: object, path: Path | str, part: str) -> None:
    """``module.load_state_dict(weights)``, for the ``part`` (e.g. "G_ema") of checkpoint ``path``; weights that do
    not fit the network the file's own config builds (edited, or of another version) are a :class:`CheckpointError`
    naming the file in one line, not torch's list of every tensor."""
    try:
        module.load_state_dict(weights if isinstance(weights, dict) else {})
    except RuntimeError as err:
        details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = details[0] if details else " ".join(str(err).split())
        first = first if len(first) <= 200 else first[:200] + " ..."
        raise CheckpointError(f"{path}: its {part} weights do not match its config ({first})") from None


def is_checkpoint(path: Path | str, keys: Sequence[str]) -> bool:
    """Whether ``path`` is a torch file holding exactly the entries ``keys`` (one facegen wrote: another tool's
    ``{"backbone": ..., "head": ..., "epoch": ...}`` is not); False for anything else."""
    try:
        state = load_checkpoint(path, "checkpoint", keys)
    except (CheckpointError, OSError):
        return False
    return set(state) == set(keys)
