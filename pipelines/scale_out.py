"""Scale-out on Dask: the per-photo work of prepare, the embeddings and generate as Prefect tasks on Dask workers.

Settings (params.yaml, group ``compute``): ``dask_address`` (a running scheduler, e.g. ``tcp://host:8786``) or
``dask_workers`` (a temporary ``LocalCluster`` of that many worker processes, one thread each); neither: the work
runs here as always. A stage hands its work to :func:`run_scaled_out`, which runs it inside a subflow whose task
runner is prefect-dask's ``DaskTaskRunner``; the library code (facegen/, recognition/) receives a
:class:`DaskMapper` and sends each chunk of photos or faces through it as one ``run_chunk`` task, and assembles the
results in order exactly as its local path does: the outputs are the same bytes as a single-process run.

Workers need the project installed (the same versions) and the data paths visible at the same paths.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext

from facegen.config import ComputeConfig, ParamsError
from facegen.mapping import Mapper

T = TypeVar("T")
CONNECT_SECONDS = 10  # how long to wait for a scheduler at compute.dask_address to answer
IN_FLIGHT_PER_THREAD = 2  # chunks submitted ahead per worker thread: workers stay busy, memory stays bounded


class ComputeUnavailable(ParamsError):
    """compute.dask_address names no reachable Dask scheduler; the message says which and what to do."""


@task(cache_policy=NO_CACHE, persist_result=False)
def run_chunk(fn: Callable[[Any], Any], chunk: Any) -> Any:
    """One chunk of per-photo work, on a Dask worker."""
    return fn(chunk)


class DaskMapper:
    """A :class:`facegen.mapping.Mapper` that runs each chunk as a ``run_chunk`` task on the current flow's
    ``DaskTaskRunner``, with at most ``in_flight`` chunks submitted ahead (default: twice the cluster's worker
    threads), and yields the results in the chunks' order."""

    def __init__(self, in_flight: int | None = None) -> None:
        self.in_flight = in_flight

    def __call__(self, fn: Callable[[Any], Any], chunks: Sequence[Any]) -> Iterator[Any]:
        window = self.in_flight or self._default_window()
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(run_chunk.submit(fn, chunk))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the caller stopped early (an error, strict mode): drop the chunks not yet done
            for future in pending:
                wrapped = getattr(future, "wrapped_future", None)
                if wrapped is not None:
                    wrapped.cancel()

    @staticmethod
    def _default_window() -> int:
        context = FlowRunContext.get()
        runner = getattr(context, "task_runner", None)
        client = getattr(runner, "client", None)
        if client is None:
            raise RuntimeError("DaskMapper runs inside a flow whose task runner is a DaskTaskRunner (run_scaled_out)")
        threads = sum(client.nthreads().values())
        return max(2, IN_FLIGHT_PER_THREAD * threads)


def task_runner_for(config: ComputeConfig):
    """prefect-dask's ``DaskTaskRunner`` for these settings, or None (the work runs here)."""
    if not config.enabled:
        return None
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        check_reachable(config.dask_address)
        return DaskTaskRunner(address=config.dask_address, client_kwargs={"timeout": CONNECT_SECONDS})
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": config.dask_workers, "threads_per_worker": 1, "processes": True},
    )


def mapper_for(config: ComputeConfig) -> Mapper | None:
    """The mapper library code sends its chunks through under these settings: a :class:`DaskMapper`, or None."""
    return DaskMapper() if config.enabled else None


def run_scaled_out(config: ComputeConfig, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, mapper=..., **kwargs)``: with ``mapper=None`` here when `config` names no cluster; else inside
    a subflow that runs on the cluster's ``DaskTaskRunner``, with a :class:`DaskMapper`."""
    runner = task_runner_for(config)
    if runner is None:
        return work(*args, mapper=None, **kwargs)
    name = getattr(work, "name", None) or getattr(work, "__name__", "work")
    where = config.dask_address or f"a local cluster of {config.dask_workers} workers"
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would drown the stage's own
    subflow = _on_dask.with_options(name=f"{name} on dask", task_runner=runner, flow_run_name=f"{name} on {where}")
    with _shared_local_server(local=not config.dask_address):
        return subflow(work, args, kwargs, config)


@contextlib.contextmanager
def _shared_local_server(local: bool) -> Iterator[None]:
    """With no PREFECT_API_URL, Prefect runs a temporary server per process, so every local worker would start its
    own (seconds each, and its task runs invisible here): a LocalCluster's workers are handed this process's
    server instead (a remote worker cannot reach it at 127.0.0.1; give a cluster a PREFECT_API_URL, see README)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

    if not local or PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # this process's temporary server (one per process: started already, or now)
    server.start()
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield


@flow(validate_parameters=False, log_prints=True)
def _on_dask(work: Callable[..., T], args: tuple, kwargs: dict, config: ComputeConfig) -> T:
    return work(*args, mapper=mapper_for(config), **kwargs)


def check_reachable(address: str, timeout: float = CONNECT_SECONDS) -> None:
    """Refuse, in one line naming compute.dask_address, a tcp address where nothing listens."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls"):
        return  # other protocols (ucx, inproc, ws): the Dask client says what is wrong
    try:
        host, port = parts.hostname, parts.port or 8786
    except ValueError as err:
        raise ComputeUnavailable(f"compute.dask_address={address}: not a host:port address ({err})") from None
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise ComputeUnavailable(
            f"compute.dask_address={address}: no Dask scheduler answers there ({type(err).__name__}: {err}); "
            "start one with `dask scheduler` (and workers with `dask worker ADDRESS`), "
            "or set compute.dask_address: null"
        ) from None
