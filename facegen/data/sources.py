"""`data.source` in params.yaml -> acquired files on disk, a face dataset over them, and its cropper."""

from __future__ import annotations

from pathlib import Path

from facegen.config import DataConfig, PrepareConfig
from facegen.data.base import FaceDataset
from facegen.data.celeba import CelebA
from facegen.data.folder import FaceFolder
from facegen.data.prepare import CenterCropResize, Cropper, LandmarkAlign, MTCNNCrop, PrepareReport, prepare_faces
from facegen.io import check_separate
from facegen.mapping import Mapper


def acquire(data: DataConfig) -> Path:
    """Make the configured source's files available locally (generate, download or check) and return the root."""
    if data.source == "demo":
        from facegen.data.demo import DemoSpec, make_demo_celeba

        spec = DemoSpec(
            identities=data.demo.identities, images_per_identity=data.demo.images_per_identity, seed=data.demo.seed
        )
        return make_demo_celeba(data.demo.root, spec)
    if data.source == "celeba":
        from facegen.data.download import DownloadConfig, download_celeba

        config = DownloadConfig(
            mirror_url=data.celeba.mirror_url,
            checksums=data.celeba.checksums,
            include_optional=data.celeba.include_optional,
            min_rate_bytes_per_s=data.celeba.min_rate_bytes_per_s,
            rate_window_s=data.celeba.rate_window_s,
        )
        download_celeba(data.celeba.root, config)
        return data.celeba.root
    root = data.local.root if data.source == "local" else data.folder.root
    if not Path(root).is_dir():
        raise FileNotFoundError(f"data.{data.source}.root: {root} is not a folder")
    return root


def open_faces(data: DataConfig, root: Path) -> FaceDataset:
    """The dataset for an acquired source (all splits, all attributes)."""
    if data.source == "folder":
        return FaceFolder(
            root,
            attributes_csv=data.folder.attributes_csv,
            celeba_root=data.folder.celeba_root,
            strict=data.strict,
            max_image_pixels=data.max_image_pixels,
        )
    return CelebA(root, strict=data.strict, max_image_pixels=data.max_image_pixels)


def cropper_for(data: DataConfig, prepare: PrepareConfig) -> Cropper:
    """``prepare.align: landmarks``: every face onto the template by its landmarks (folder photos without
    ``detect_faces`` are tight crops). ``box``: aligned CelebA layouts get a centred crop; folder photos are tight
    crops or, if asked, go through MTCNN's box."""
    if prepare.align == "landmarks":
        tight = data.source == "folder" and not data.folder.detect_faces
        return LandmarkAlign(data.image_size, tight=tight, max_detect_side=prepare.max_detect_side)
    if data.source != "folder":
        return CenterCropResize(data.image_size, prepare.crop)
    if data.folder.detect_faces:
        return MTCNNCrop(data.image_size)
    return CenterCropResize(data.image_size)


def prepare_source(data: DataConfig, prepare: PrepareConfig, root: Path, mapper: Mapper | None = None) -> PrepareReport:
    """Crop and cache every face of an acquired source into `prepare.out` (never into or around its inputs);
    `mapper` (facegen.mapping) crops chunks of photos elsewhere, e.g. on Dask workers."""
    inputs = [root] + ([data.folder.attributes_csv, data.folder.celeba_root] if data.source == "folder" else [])
    check_separate(prepare.out, inputs, "prepare.out")
    faces = open_faces(data, root)
    source = {
        "source": data.source,
        "root": str(root),
        "annotation_rows_without_image": faces.missing_images,
        "images_without_annotation": faces.unannotated_images,
    }
    return prepare_faces(
        faces,
        prepare.out,
        cropper_for(data, prepare),
        strict=data.strict,
        workers=prepare.workers,
        batch_size=prepare.batch_size,
        source=source,
        mapper=mapper,
    )
