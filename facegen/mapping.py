"""Mapping per-photo work over chunks: in this process by default, or through a scale-out engine.

Library code that does the same work for every photo or face (``prepare_faces``, the dlib teacher, a facenet
embedder, the synthetic writer's rendering) cuts its work into chunks and maps a picklable function over them
with a :class:`Mapper`. The default, :func:`local_map`, is the plain in-process ``map``; ``pipelines/scale_out.py``
gives one that runs every chunk as a Prefect task on Dask workers. Results come back in the order of the chunks
and are assembled exactly as the local path assembles them, so the outputs are the same bytes either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol, TypeVar

from facegen.cpu_kernels import AVX2_KERNELS

T = TypeVar("T")
R = TypeVar("R")


class Mapper(Protocol):
    """Maps a picklable function over a list of chunks, yielding its results in the chunks' order."""

    def __call__(self, fn: Callable[[Any], Any], chunks: Sequence[Any]) -> Iterable[Any]: ...


def local_map(fn: Callable[[T], R], chunks: Sequence[T]) -> Iterator[R]:
    """The plain in-process map (what runs when no mapper is given)."""
    return map(fn, chunks)


def with_torch_threads(fn: Callable[[T], R], threads: int) -> Callable[[T], R]:
    """`fn`, run with torch computing as this process does: `threads` intra-op threads and this process's CPU
    kernels (:func:`torch_kernels`). A worker then gets the same floats to the last bit (summation order, AVX2 or
    AVX-512 arithmetic). Picklable when `fn` is."""
    return partial(_run_like_here, fn, threads, torch_kernels())


def _run_like_here(fn: Callable[[T], R], threads: int, kernels: dict[str, str | None], chunk: T) -> R:
    match_torch(threads, kernels)
    return fn(chunk)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch computes with `threads` intra-op threads inside the block (a mapped function's :func:`match_torch`
    included), with this process's count again after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_kernels() -> dict[str, str | None]:
    """The CPU kernel settings torch computes with in this process, as the variables of facegen.cpu_kernels: ATen's
    capability in use (AVX2, AVX512, ...), and oneDNN's cap when it was set before torch started (a variable set
    later, e.g. by a benchmark called inside a test session, changed nothing here, so it is not handed on)."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    set_in_time = os.environ.get("ATEN_CPU_CAPABILITY", capability).upper() == capability.upper()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA") if set_in_time else None
    return {"ATEN_CPU_CAPABILITY": capability.lower(), "ONEDNN_MAX_CPU_ISA": onednn, "from": _PROCESS}


def match_torch(threads: int, kernels: dict[str, str | None]) -> None:
    """Make torch in this process (a mapper's worker) compute as the process that handed out the work: its threads
    and, before this process's first tensor operation, its CPU kernels; refuse a worker whose torch already chose
    other kernels (its floats would differ)."""
    import torch

    global _KERNELS_SET
    if not _KERNELS_SET and kernels["from"] != _PROCESS:  # torch reads them at its first operation: set them before
        for name in AVX2_KERNELS:
            value = kernels[name]
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _KERNELS_SET = True
    capability = torch.backends.cpu.get_cpu_capability().lower()
    if capability != kernels["ATEN_CPU_CAPABILITY"]:
        raise RuntimeError(
            f"this worker's torch computes with its {capability} CPU kernels, the run that sent the work with "
            f"{kernels['ATEN_CPU_CAPABILITY']}: the outputs would differ; start the worker with "
            f"ATEN_CPU_CAPABILITY={kernels['ATEN_CPU_CAPABILITY']} (facegen/cpu_kernels.py)"
        )
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


_KERNELS_SET = False  # this process has set torch's kernel variables from a run's (match_torch)
_PROCESS = uuid.uuid4().hex  # tells the process that handed out work from its workers


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """`items` cut into consecutive slices of `size` (the last may be shorter)."""
    size = max(1, int(size))
    return [items[start : start + size] for start in range(0, len(items), size)]
