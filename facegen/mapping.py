"""Mapping per-photo work over chunks: in this process by default, or through a scale-out engine.

Library code that does the same work for every photo or face (``prepare_faces``, the dlib teacher, a facenet
embedder, the synthetic writer's rendering) cuts its work into chunks and maps a picklable function over them
with a :class:`Mapper`. The default, :func:`local_map`, is the plain in-process ``map``; ``pipelines/scale_out.py``
gives one that runs every chunk as a Prefect task on Dask workers. Results come back in the order of the chunks
and are assembled exactly as the local path assembles them, so the outputs are the same bytes either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Mapper(Protocol):
    """Maps a picklable function over a list of chunks, yielding its results in the chunks' order."""

    def __call__(self, fn: Callable[[Any], Any], chunks: Sequence[Any]) -> Iterable[Any]: ...


def local_map(fn: Callable[[T], R], chunks: Sequence[T]) -> Iterator[R]:
    """The plain in-process map (what runs when no mapper is given)."""
    return map(fn, chunks)


def with_torch_threads(fn: Callable[[T], R], threads: int) -> Callable[[T], R]:
    """`fn`, run with torch set to `threads` intra-op threads: a worker computes with the thread count the
    local run uses, so that float results (summation order) are the same to the last bit. Picklable when `fn` is."""
    return partial(_run_with_torch_threads, fn, threads)


def _run_with_torch_threads(fn: Callable[[T], R], threads: int, chunk: T) -> R:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return fn(chunk)


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """`items` cut into consecutive slices of `size` (the last may be shorter)."""
    size = max(1, int(size))
    return [items[start : start + size] for start in range(0, len(items), size)]
