"""What a synthetic data set holds, decided before any face is drawn: one row per image.

A plan is a DataFrame with one 0/1 column per conditioned attribute (the requested values), ``mode``,
``seed``, ``sample_index``, ``source_image``, ``identity``, ``edited_attribute`` (the manifest's columns
but ``file`` and the hashes), plus ``cell`` (the balanced cell the row counts towards:
``Eyeglasses=1,Smiling=0``, or ``flip Eyeglasses`` for edits) and
``source_row`` (the prepared-cache row of an edit's source photo, -1 otherwise).

Sampled faces are drawn chunk by chunk: the rows of one chunk share a seed, and row ``sample_index`` of
``FaceModel.sample(attributes of the chunk, seed)`` is the face, so any image can be redrawn from the
manifest alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from facegen.config import SyntheticDatasetConfig
from facegen.data.annotations import excluded_by, set_attribute

PLAN_COLUMNS = ("mode", "seed", "sample_index", "source_image", "identity", "edited_attribute")


def chosen_attributes(spec: SyntheticDatasetConfig, conditioned: Sequence[str]) -> list[str]:
    """The attributes a data set balances or flips, checked against the generator's conditioned ones."""
    names = list(conditioned) if spec.attributes == "all" else list(spec.attributes)
    unknown = [a for a in names if a not in conditioned]
    if unknown:
        raise ValueError(
            f"generate.datasets[{spec.name}].attributes: {unknown} are not conditioned on by this "
            f"generator (gan.attributes = {list(conditioned)})"
        )
    return names


def sampling_plan(
    spec: SyntheticDatasetConfig, conditioned: Sequence[str], real: pd.DataFrame, chunk_size: int
) -> pd.DataFrame:
    """Rows for the ``per_attribute`` or ``combinations`` modes; attributes not requested are drawn from
    ``real``'s marginals."""
    chosen = chosen_attributes(spec, conditioned)
    assert spec.n is not None  # the config validator requires it for sampling modes
    if spec.mode == "per_attribute":
        cells = [{name: value} for name in chosen for value in (1, 0)]
    else:
        cells = [dict(zip(chosen, values, strict=True)) for values in itertools.product((1, 0), repeat=len(chosen))]
    rng = np.random.default_rng(spec.seed)
    marginals = real_marginals(real, conditioned)
    blocks = []
    for cell in cells:
        drawn = (rng.random((spec.n, len(conditioned))) < marginals.to_numpy()).astype(np.int64)
        block = pd.DataFrame(drawn, columns=list(conditioned))
        for name, value in cell.items():  # a requested hair colour turns the drawn other ones off
            block.loc[:, excluded_by(name, [a for a in conditioned if a not in cell]) if value else []] = 0
            block[name] = value
        block["cell"] = cell_label(cell)
        blocks.append(block)
    plan = pd.concat(blocks, ignore_index=True)
    position = np.arange(len(plan))
    chunk_seeds = [
        int(np.random.SeedSequence([spec.seed, k]).generate_state(1)[0]) for k in range(-(-len(plan) // chunk_size))
    ]
    plan["mode"] = spec.mode
    plan["seed"] = np.asarray(chunk_seeds, dtype=np.int64)[position // chunk_size]
    plan["sample_index"] = position % chunk_size
    plan["source_image"] = plan["identity"] = plan["edited_attribute"] = ""
    plan["source_row"] = -1
    return plan[[*conditioned, *PLAN_COLUMNS, "cell", "source_row"]]


def edit_plan(spec: SyntheticDatasetConfig, conditioned: Sequence[str], sources: pd.DataFrame) -> pd.DataFrame:
    """Rows for the ``edit`` mode: each source photo once per chosen attribute, that attribute flipped.

    ``sources`` are prepared-cache annotation rows (their index is the cache row); with ``spec.n`` only the
    first n, in cache order, are used.
    """
    chosen = chosen_attributes(spec, conditioned)
    missing = [a for a in conditioned if a not in sources.columns]
    if missing:
        raise ValueError(f"the prepared annotations lack the conditioned attributes {missing}")
    if sources.empty:
        raise ValueError(f"generate.datasets[{spec.name}]: no source photos with role {spec.sources!r}")
    sources = sources.sort_index().head(spec.n) if spec.n else sources.sort_index()
    blocks = []
    for name in chosen:
        rows = sources[list(conditioned)].to_numpy(np.int64, copy=True)
        set_attribute(rows, conditioned, name, 1 - rows[:, list(conditioned).index(name)])  # blond: not black-haired
        block = pd.DataFrame(rows, columns=list(conditioned))
        block["source_image"] = sources["image_id"].to_numpy()
        block["identity"] = sources["identity"].astype(str).to_numpy()
        block["edited_attribute"] = name
        block["source_row"] = sources.index.to_numpy()
        block["cell"] = f"flip {name}"
        blocks.append(block)
    plan = pd.concat(blocks, ignore_index=True)
    plan["mode"] = "edit"
    plan["seed"] = spec.seed
    plan["sample_index"] = np.arange(len(plan))
    return plan[[*conditioned, *PLAN_COLUMNS, "cell", "source_row"]]


def real_marginals(real: pd.DataFrame, attributes: Sequence[str]) -> pd.Series:
    """Share of real faces with each attribute."""
    missing = [a for a in attributes if a not in real.columns]
    if missing:
        raise ValueError(f"the prepared annotations lack the conditioned attributes {missing}")
    return real[list(attributes)].astype(float).mean()


def cell_label(values: dict[str, int]) -> str:
    """``{"Eyeglasses": 1, "Smiling": 0}`` -> ``"Eyeglasses=1,Smiling=0"``."""
    return ",".join(f"{k}={int(v)}" for k, v in values.items())
