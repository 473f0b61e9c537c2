"""A stand-in for the `generate` stage's enrolment edits, in the exact on-disk format the recognition reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def make_edits_dataset(
    root: Path, enrol: pd.DataFrame, images: np.ndarray, attributes: tuple[str, ...] = ("Eyeglasses", "Smiling")
) -> Path:
    """A synthetic dataset in the exact on-disk format of contract 4, mode `edit`: for each source photo and
    attribute two 'edits' (here: the photo darkened or flipped, standing in for the editor's output)."""
    (root / "images").mkdir(parents=True)
    rows = []
    for (image_id, identity), image in zip(enrol[["image_id", "identity"]].itertuples(index=False), images):
        for attribute in attributes:
            for variant in (image // 2, image[:, ::-1]):
                file = f"images/{len(rows):06d}.png"
                Image.fromarray(np.ascontiguousarray(variant)).save(root / file)
                rows.append(
                    {
                        "file": file,
                        **{a: int(a == attribute) for a in attributes},
                        "mode": "edit",
                        "seed": 0,
                        "sample_index": len(rows),
                        "source_image": image_id,
                        "identity": identity,
                        "edited_attribute": attribute,
                        "generator_sha256": "0" * 64,
                        "params_sha256": "0" * 64,
                    }
                )
    manifest = pd.DataFrame(rows)
    manifest.to_parquet(root / "manifest.parquet", index=False)
    manifest.to_csv(root / "manifest.csv", index=False)
    return root
