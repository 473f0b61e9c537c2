"""A finished data set's ``datacard.md`` and ``grid.png``: counts before and after, balance, how it was made."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import PIL
from PIL import Image
import torch
import yaml
from torchvision.utils import make_grid

from facegen.config import SyntheticDatasetConfig
from facegen.io import atomic_file

DATACARD_FILE = "datacard.md"
GRID_FILE = "grid.png"
BALANCE_TOLERANCE = 0.01  # each requested cell within 1% of its target
GRID_COLUMNS = 8
GRID_ROWS = 16


def attribute_counts(frame: pd.DataFrame, attributes: tuple[str, ...]) -> pd.DataFrame:
    """Per attribute: how many rows have it 0 and 1, and the share with it."""
    values = frame[list(attributes)].astype(int)
    ones = values.sum()
    return pd.DataFrame({"without": len(frame) - ones, "with": ones, "share": (ones / max(len(frame), 1)).round(4)})


def cell_balance(rows: pd.DataFrame) -> pd.DataFrame:
    """Per requested cell: planned faces (the target), faces kept, and the relative deviation."""
    table = rows.groupby("cell", sort=False).agg(target=("kept", "size"), kept=("kept", "sum"))
    table["kept"] = table["kept"].astype(int)
    table["deviation"] = ((table["kept"] - table["target"]).abs() / table["target"]).round(4)
    table["balanced"] = table["deviation"] <= BALANCE_TOLERANCE
    return table


@dataclass(frozen=True)
class DataCard:
    """Writes the data card of one data set; ``before`` are the real rows its counts are compared with."""

    spec: SyntheticDatasetConfig
    conditioned: tuple[str, ...]
    before: pd.DataFrame
    before_label: str
    stamp: dict
    settings: dict  # the generate-wide settings that shaped the files (chunk size, PNG level, paths)

    def __call__(self, folder: Path, manifest: pd.DataFrame, rows: pd.DataFrame) -> None:
        write_grid(folder, rows[rows["kept"]])
        with atomic_file(folder / DATACARD_FILE, "w") as f:
            f.write(self.markdown(manifest, rows))

    def markdown(self, manifest: pd.DataFrame, rows: pd.DataFrame) -> str:
        before = attribute_counts(self.before, self.conditioned)
        after = attribute_counts(manifest, self.conditioned)
        counts = pd.concat({f"before: {self.before_label}": before, "after: this data set": after}, axis=1)
        counts.columns = [f"{side}, {what}" for side, what in counts.columns]
        balance = cell_balance(rows)
        spec = yaml.safe_dump(self.spec.model_dump(mode="json"), sort_keys=False).strip()
        settings = yaml.safe_dump(self.settings, sort_keys=False).strip()
        rejected = int((~rows["kept"]).sum())
        verdict = (
            "every requested cell is within 1% of its target"
            if balance["balanced"].all()
            else f"{int((~balance['balanced']).sum())} cell(s) are more than 1% off their target"
        )
        filter_line = (
            f"Quality filter: on (classifier `{self.spec.filter.classifier}`, threshold "
            f"{self.spec.filter.threshold}): {rejected} of {len(rows)} faces dropped."
            if self.spec.filter.enabled
            else "Quality filter: off."
        )
        return f"""# Synthetic faces: `{self.spec.name}`

{len(manifest)} images, {self.spec.mode} mode, {len(self.conditioned)} conditioned attributes. {filter_line}

![sample grid: one row per requested cell](grid.png)

## Balance of the requested cells

{verdict}.

{balance.to_markdown()}

## Counts per attribute value, before and after

{counts.to_markdown()}

## How it was made

- Generator checkpoint sha256: `{self.stamp["generator_sha256"]}`
- Prepared data sha256 (`annotations.parquet` and `images.npy`): `{self.stamp["prepared_sha256"]}`
- Params sha256 (the data set's entry and the settings below): `{self.stamp["params_sha256"]}`
- Software: Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__},
  Pillow {PIL.__version__}
- Command: `dvc repro generate` (or `facegen generate --only {self.spec.name}`); the same params and checkpoint
  give byte-identical files.
- {_recipe(self.spec.mode)}

Data set entry of `generate.datasets` in params.yaml:

```yaml
{spec}
```

Settings of `generate` (and `attendance`, for edits) used:

```yaml
{settings}
```

Manifest (`manifest.parquet`, `manifest.csv`): one row per image: `file`, the requested 0/1 value of every
conditioned attribute, `mode`, `seed`, `sample_index`, `source_image`, `identity`, `edited_attribute`,
`generator_sha256`, `params_sha256`.
"""


def _recipe(mode: str) -> str:
    if mode == "edit":
        return (
            "Each image is `FaceModel.load(checkpoint, sampling=S).edit(source, target, "
            "source_attributes=a)[0]`, with S the `sampling` settings below: the source photo "
            "(`source_image`, prepared cache, annotated attributes a) re-rendered with the requested attribute "
            "values, `edited_attribute` flipped; `identity` is the source person's."
        )
    return (
        "Each image is `FaceModel.load(checkpoint, sampling=S).sample(A, seed)[sample_index]`, with S the "
        "`sampling` settings below and A the requested attributes of all manifest rows with that `seed` in "
        "`sample_index` order "
        "(rows the quality filter dropped included: see the plan). Attributes not balanced here "
        "were drawn independently from the real data's marginals."
    )


def write_grid(folder: Path, kept: pd.DataFrame) -> None:
    """Up to GRID_COLUMNS faces per requested cell, one cell per row (at most GRID_ROWS rows)."""
    picked = kept.groupby("cell", sort=False).head(GRID_COLUMNS)
    cells = list(dict.fromkeys(picked["cell"]))[:GRID_ROWS]
    tiles = []
    for cell in cells:
        files = picked.loc[picked["cell"] == cell, "file"].tolist()
        images = [np.asarray(Image.open(folder / f).convert("RGB")) for f in files]
        images += [np.zeros_like(images[0])] * (GRID_COLUMNS - len(images))
        tiles.extend(images)
    if not tiles:
        return
    grid = make_grid(torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2), nrow=GRID_COLUMNS, padding=2)
    with atomic_file(folder / GRID_FILE) as f:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(f, format="PNG")
