"""Read the synthetic face data sets that :mod:`facegen.synthetic.writer` writes (``data/synthetic/<name>/``).

``SyntheticFaces`` is a torch Dataset like the other face datasets (``(image, attributes, label)``),
optionally filtered on attribute values; ``load_manifest`` gives the manifest as a DataFrame;
``read_manifest`` and ``fetch_dataset`` read a data set from any git revision of a DVC repository (a
path or a git URL), through ``dvc.api`` and its remote.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from facegen.data.base import FaceDataset
from facegen.synthetic.writer import MANIFEST_PARQUET

__all__ = ["SyntheticFaces", "load_manifest", "conditioned_attributes", "read_manifest", "fetch_dataset"]


def load_manifest(path: Path | str) -> pd.DataFrame:
    """One row per image: file, the requested attributes, mode, seed, sample_index, source/identity, hashes."""
    manifest = Path(path) / MANIFEST_PARQUET
    if not manifest.is_file():
        raise FileNotFoundError(
            f"{path}: not a finished synthetic data set (no {MANIFEST_PARQUET}); run `dvc repro generate` or `dvc pull`"
        )
    try:
        frame = pd.read_parquet(manifest)
    except (OSError, ValueError) as err:  # pyarrow's errors for a file that is no parquet table are ValueErrors
        raise ValueError(f"{manifest}: not a manifest table ({' '.join(str(err).split())})") from None
    return _checked(frame, manifest)


# what every manifest the writer writes has, and what reading one needs: ``file`` and ``mode`` around the
# conditioned attributes, ``identity`` for the labels
REQUIRED_COLUMNS = ("file", "mode", "identity")


def _checked(manifest: pd.DataFrame, where: object) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"{where}: no {missing[0]!r} column; a synthetic data set's manifest has {REQUIRED_COLUMNS}")
    return manifest


def conditioned_attributes(manifest: pd.DataFrame) -> list[str]:
    """The attribute columns of a manifest (they sit between ``file`` and ``mode``)."""
    columns = list(manifest.columns)
    return columns[columns.index("file") + 1 : columns.index("mode")]


def select_rows(manifest: pd.DataFrame, values: Mapping[str, int]) -> pd.DataFrame:
    """Rows whose requested attributes equal every value in ``values``; unknown names are an error."""
    available = conditioned_attributes(manifest)
    unknown = [name for name in values if name not in available]
    if unknown:
        raise ValueError(f"unknown attribute(s) {unknown}; this data set has {available}")
    keep = pd.Series(True, index=manifest.index)
    for name, value in values.items():
        keep &= manifest[name] == int(value)
    return manifest[keep]


class SyntheticFaces(FaceDataset):
    """A synthetic data set as a torch Dataset: ``(image, attributes tensor, label)``.

    ``attributes={"Eyeglasses": 1}`` keeps only faces made with those values; the tensor holds every
    conditioned attribute (or ``columns``, in that order). The label indexes ``identity_names``: the
    source person for edits, and one made-up person per image for sampled faces.
    """

    def __init__(
        self,
        path: Path | str,
        attributes: Mapping[str, int] | None = None,
        *,
        columns: Sequence[str] | None = None,
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.root = Path(path)
        manifest = load_manifest(self.root)
        _check_inside(self.root, manifest["file"])
        self.manifest = select_rows(manifest, attributes or {}).reset_index(drop=True)
        names = conditioned_attributes(self.manifest)
        identity = self.manifest["identity"].where(
            self.manifest["identity"] != "", "synthetic:" + self.manifest["file"]
        )
        annotations = pd.DataFrame({"image_id": self.manifest["file"], "identity": identity, "split": "train"})
        annotations[names] = self.manifest[names]
        super().__init__(annotations, attributes=list(columns) if columns else names, transform=transform)

    def load_image(self, i: int) -> Image.Image:
        return Image.open(self.root / self.annotations["image_id"].iloc[i]).convert("RGB")


def _check_inside(root: Path, files: pd.Series) -> None:
    """Every manifest ``file`` must be a relative path inside the data set folder (no ``..``, no absolute path,
    no link out of it): a manifest from elsewhere must not make the reader open other files."""
    base = root.resolve()
    for row, file in files.items():
        if (
            not isinstance(file, str)
            or not file
            or Path(file).is_absolute()
            or not (base / file).resolve().is_relative_to(base)
        ):
            raise ValueError(
                f"{root / MANIFEST_PARQUET}: row {row}: file {file!r} is not inside {root}; refusing to read it"
            )


def read_manifest(path: str, repo: str | None = None, rev: str | None = None) -> pd.DataFrame:
    """A data set's manifest (``path`` like ``data/synthetic/enrolment_edits``) as of git revision ``rev``
    of ``repo`` (a local path or git URL; default: this project), read through DVC and its remote."""
    import dvc.api

    data = dvc.api.read(f"{path.rstrip('/')}/{MANIFEST_PARQUET}", repo=repo, rev=rev, mode="rb")
    return _checked(pd.read_parquet(io.BytesIO(data)), f"{path.rstrip('/')}/{MANIFEST_PARQUET}")


def fetch_dataset(path: str, to: Path | str, repo: str | None = None, rev: str | None = None) -> Path:
    """Download a whole data set folder at revision ``rev`` of ``repo`` to ``to``; open it with SyntheticFaces."""
    from dvc.api import DVCFileSystem

    to = Path(to)
    fs = DVCFileSystem(repo, rev=rev)
    fs.get(path.rstrip("/") + "/", str(to) + "/", recursive=True)
    return to
