"""Make every data set of the `generate` params group: plan, render, filter, write, describe."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facegen.config import AttendanceConfig, GenerateConfig, SamplingConfig, SyntheticDatasetConfig
from facegen.data.attendance import assign_roles
from facegen.data.prepared import ANNOTATIONS_FILE, IMAGES_FILE, PreparedFaces
from facegen.gan.inference import FaceModel
from facegen.io import check_separate, sha256sum
from facegen.mapping import Mapper, match_torch, torch_kernels
from facegen.synthetic.datacard import DataCard
from facegen.synthetic.plan import chosen_attributes, edit_plan, sampling_plan
from facegen.synthetic.quality import PredictorLoader, QualityFilter
from facegen.synthetic.writer import DatasetJob, Renderer, write_dataset


@dataclass(frozen=True)
class DatasetReport:
    name: str
    mode: str
    path: str
    images: int
    planned: int
    rejected: int
    max_cell_deviation: float
    balanced: bool
    seconds: float  # this run's time (0 when the data set was already complete)


class SyntheticFactory:
    """The generator and the real data that every data set of one `generate` run is made from."""

    def __init__(
        self,
        config: GenerateConfig,
        attendance: AttendanceConfig,
        prepared: Path,
        sampling: SamplingConfig = SamplingConfig(),
        model: FaceModel | None = None,
        load_predictor: PredictorLoader | None = None,
        mapper: Mapper | None = None,
    ) -> None:
        """``prepared``: the real faces (``prepare.out``); ``model`` (already loaded, with its own sampling settings)
        replaces loading ``config.checkpoint``; ``load_predictor`` reads the quality filter's classifier;
        ``mapper`` (facegen.mapping: e.g. Dask workers) renders the chunks of faces, each worker reading the
        generator from ``config.checkpoint`` once (a ``model`` handed in is sent along with every chunk)."""
        self.config, self.attendance, self.load_predictor, self.mapper = config, attendance, load_predictor, mapper
        self._checkpoint = None if model is not None else config.checkpoint
        self.prepared_path = prepared
        self.model = model or FaceModel.load(config.checkpoint, config.device, sampling)
        if self.model.device.type == "cpu":
            # channels_last convolutions sample ~1.4x faster on CPU (docs/BENCHMARKS.md), the same pixels
            # (tests/test_synthetic.py redraws faces with a plain FaceModel and compares).
            self.model.generator.to(memory_format=torch.channels_last)
        self.prepared = PreparedFaces(prepared)
        self.annotations = self.prepared.annotations.set_index("_row")
        self.prepared_sha256 = _combined_sha256([prepared / ANNOTATIONS_FILE, prepared / IMAGES_FILE])

    def make(self, spec: SyntheticDatasetConfig, quality: QualityFilter | None = None) -> DatasetReport:
        """Write (or resume, or find already written) one data set; ``quality`` overrides ``spec.filter``."""
        conditioned = tuple(self.model.attributes)
        if spec.mode == "edit":
            roles = assign_roles(self.annotations, self.attendance)
            sources = self.annotations if spec.sources == "all" else self.annotations[roles == spec.sources]
            plan = edit_plan(spec, conditioned, sources)
            before, before_label = sources.head(spec.n) if spec.n else sources, f"{spec.sources} photos"
            render = self._editor()
        else:
            plan = sampling_plan(spec, conditioned, self.annotations, self.config.chunk_size)
            before, before_label = self.annotations, "real prepared faces"
            render = self._sampler()
        if quality is None and spec.filter.enabled:
            if self.load_predictor is None:
                raise ValueError(
                    f"generate.datasets[{spec.name}].filter is enabled, but no classifier loader was "
                    f"handed in (SyntheticFactory(load_predictor=AttributeClassifier.load))"
                )
            quality = QualityFilter.load(spec.filter, chosen_attributes(spec, conditioned), self.load_predictor)
        settings = {
            "chunk_size": self.config.chunk_size,
            "png_compression": self.config.png_compression,
            "sampling": self.model.sampling.model_dump(),
        }
        if spec.mode == "edit":
            settings["attendance"] = self.attendance.model_dump(mode="json")
        stamp = {
            "params_sha256": _json_sha256({"dataset": spec.model_dump(mode="json"), **settings}),
            "generator_sha256": self.model.checkpoint_sha256,
            "prepared_sha256": self.prepared_sha256,
        }
        job = DatasetJob(
            spec.name, self.config.out, plan, conditioned, stamp, self.config.chunk_size, self.config.png_compression
        )
        card = DataCard(
            spec,
            conditioned,
            before,
            before_label,
            stamp,
            {**settings, "checkpoint": str(self.config.checkpoint), "prepared": str(self.prepared_path)},
        )
        start = time.perf_counter()
        meta = write_dataset(job, render, card, quality, self.mapper)
        return DatasetReport(
            spec.name,
            spec.mode,
            str(job.final),
            meta["images"],
            meta["planned"],
            meta["rejected"],
            meta["max_cell_deviation"],
            meta["balanced"],
            round(time.perf_counter() - start, 2),
        )

    def _sampler(self) -> Renderer:
        return _Sampler(_ModelSource(self.model, self._checkpoint))

    def _editor(self) -> Renderer:
        images = self.prepared._all_images
        if images.shape[1] != self.model.resolution:
            raise ValueError(
                f"{self.prepared_path}: {images.shape[1]}px faces, but the generator makes "
                f"{self.model.resolution}px ones; prepare and train_gan must use the same data.image_size"
            )

        return _Editor(
            _ModelSource(self.model, self._checkpoint),
            self.prepared_path / IMAGES_FILE,
            self.annotations[list(self.model.attributes)],
        )


_MODELS: dict[tuple, FaceModel] = {}  # this process's generators (a mapper's worker reads one once)


class _ModelSource:
    """A factory's generator as a renderer reaches it in any process: this process's model, or in another process
    the checkpoint read once (as the factory reads it), or, for a model handed in, the model sent along."""

    def __init__(self, model: FaceModel, checkpoint: Path | None) -> None:
        self.checkpoint, self.device, self.sampling = checkpoint, str(model.device), model.sampling
        self.threads, self.kernels = torch.get_num_threads(), torch_kernels()  # a worker computes as this process
        self.key = (model.checkpoint_sha256, str(checkpoint), self.device, _json_sha256(model.sampling.model_dump()))
        self.model: FaceModel | None = model

    def get(self) -> FaceModel:
        match_torch(self.threads, self.kernels)  # the same threads and CPU kernels: the same floats
        if self.model is not None:  # this process's model, or one sent along
            return self.model
        if self.key not in _MODELS:
            model = FaceModel.load(self.checkpoint, self.device, self.sampling)
            if model.device.type == "cpu":  # as SyntheticFactory: channels_last on CPU
                model.generator.to(memory_format=torch.channels_last)
            _MODELS.clear()
            _MODELS[self.key] = model
        return _MODELS[self.key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "model": None if self.checkpoint is not None else self.model}


class _Sampler:
    """Renders a chunk of sampled faces (one seed), in any process."""

    def __init__(self, source: _ModelSource) -> None:
        self.source = source

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        model = self.source.get()
        seeds = rows["seed"].unique()
        assert len(seeds) == 1, "a chunk of sampled faces shares one seed"
        return model.sample(_attributes(rows, model), seed=int(seeds[0]))


class _Editor:
    """Renders a chunk of edited faces, in any process: the real faces are read from the prepared images file."""

    def __init__(self, source: _ModelSource, images_file: Path, attributes: pd.DataFrame) -> None:
        self.source, self.images_file, self.attributes = source, images_file, attributes
        self._images: np.ndarray | None = None

    def __call__(self, rows: pd.DataFrame) -> np.ndarray:
        model = self.source.get()
        if self._images is None:
            self._images = np.load(self.images_file, mmap_mode="r")
        source_rows = rows["source_row"].to_numpy()
        return model.edit(
            np.asarray(self._images[source_rows]),
            _attributes(rows, model),
            source_attributes=_attributes(self.attributes.loc[source_rows], model),
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}


def generate_datasets(
    config: GenerateConfig,
    attendance: AttendanceConfig,
    prepared: Path,
    sampling: SamplingConfig = SamplingConfig(),
    only: Sequence[str] | None = None,
    load_predictor: PredictorLoader | None = None,
    mapper: Mapper | None = None,
) -> list[DatasetReport]:
    """Every data set of ``config.datasets`` (or those named in ``only``), from the real faces in ``prepared``;
    ``load_predictor`` reads the quality filter's classifier (needed when a data set enables the filter);
    ``mapper`` (facegen.mapping) renders the chunks of faces elsewhere, e.g. on Dask workers."""
    check_separate(config.out, [prepared, config.checkpoint], "generate.out")
    specs = [d for d in config.datasets if not only or d.name in only]
    unknown = sorted(set(only or ()) - {d.name for d in config.datasets})
    if unknown:
        raise ValueError(
            f"no data set named {unknown} in generate.datasets ({', '.join(d.name for d in config.datasets)})"
        )
    factory = SyntheticFactory(config, attendance, prepared, sampling, load_predictor=load_predictor, mapper=mapper)
    return [factory.make(spec) for spec in specs]


def _attributes(rows: pd.DataFrame, model: FaceModel) -> torch.Tensor:
    return torch.tensor(rows[list(model.attributes)].to_numpy(dtype=np.float32))


def _json_sha256(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _combined_sha256(paths: Sequence[Path]) -> str:
    return _json_sha256([sha256sum(p) for p in paths])
