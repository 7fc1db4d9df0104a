"""Where a build's work units run: in this process, in a pool of worker processes on this
machine, or as tasks on a Dask cluster.

A :class:`WorkUnit` is one pure piece of a build over a range of stored passages (tokenise
and count for BM25, encode for dense and phrase). It receives paths and plain, picklable
settings, never open files or closures, and writes its result to ``target`` atomically (a
``.partial`` renamed into place), so a target that exists is finished work: a resumed build
skips it whichever executor made it, and a worker that dies mid-unit leaves nothing half
written (the unit runs again elsewhere). :data:`EXECUTORS` is the registry the CLI's
``--executor`` chooses from.

The Dask executor needs ``pip install "odqa[dask]"``; its workers must see the build folder
at the same path (one machine, or a shared file system).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from odqa.errors import OdqaError

RETRIES = 3
"""Times a Dask task is re-run after its worker died (or it failed) before the build fails."""


@dataclass(frozen=True)
class RunRecord:
    """What one :meth:`Executor.run` did: units reused from disk, units run, wall seconds,
    and each unit's own seconds where it ran (in finishing order on a cluster)."""

    label: str
    reused: int
    ran: int
    seconds: float
    unit_seconds: tuple[float, ...] = ()


@dataclass(frozen=True)
class WorkUnit:
    """``function(*args)`` writes ``target``; ``size`` passages of progress once done.

    ``function`` is a module-level function; in this process it is also given
    ``advance=callback`` when ``reports`` is set, for finer progress than one step per unit.
    """

    function: Callable[..., Any]
    args: tuple[Any, ...]
    target: Path
    size: int
    reports: bool = False

    @property
    def done(self) -> bool:
        return self.target.exists()


class Executor(Protocol):
    """Runs a list of work units to completion (see the module docstring)."""

    name: str
    streams: bool
    """Whether families may do their work while the corpus is read (one process only)."""
    history: list[RunRecord]
    """One record per :meth:`run`, oldest first."""

    def run(self, units: Sequence[WorkUnit], progress: Any = None, label: str = "") -> None:
        """Run every unit whose target is missing; raise OdqaError if one cannot finish."""

    def close(self) -> None:
        """Release what :meth:`run` started (a local cluster)."""


def _task(progress: Any, label: str, units: Sequence[WorkUnit]) -> Any:
    if progress is None:
        return None
    return progress.add_task(label, total=sum(u.size for u in units), unit="passages")


def _pending(units: Sequence[WorkUnit], progress: Any, task: Any) -> list[WorkUnit]:
    """The units still to run; finished ones (targets on disk) advance the progress bar."""
    pending = []
    for unit in units:
        if not unit.done:
            pending.append(unit)
        elif task is not None:
            progress.update(task, advance=unit.size)
    return pending


def _gather(
    futures: dict[Any, WorkUnit],
    completed: Any,
    progress: Any,
    task: Any,
    failure: Callable[[Exception, str], OdqaError],
) -> list[float]:
    """Wait for ``futures`` (future -> unit) in the order ``completed(futures)`` yields them,
    advancing the progress bar; each unit's seconds (:func:`timed_call`). A unit's error other
    than an OdqaError becomes ``failure(error, target name)``."""
    seconds: list[float] = []
    for future in completed(futures):
        unit = futures[future]
        try:
            seconds.append(future.result())
        except OdqaError:
            raise
        except Exception as exc:
            raise failure(exc, unit.target.name) from None
        if task is not None:
            progress.update(task, advance=unit.size)
    return seconds


class InProcess:
    """Units run one after another in this process (the default). ``streams=False`` makes
    BM25 run as counting units too (as on a cluster), which times each unit."""

    name = "process"

    def __init__(self, streams: bool = True) -> None:
        self.streams = streams
        self.history: list[RunRecord] = []

    def run(self, units: Sequence[WorkUnit], progress: Any = None, label: str = "") -> None:
        task = _task(progress, label, units)
        started = time.perf_counter()
        seconds = []
        for unit in _pending(units, progress, task):
            began = time.perf_counter()
            if unit.reports and task is not None:
                unit.function(*unit.args, advance=lambda n: progress.update(task, advance=n))
            else:
                unit.function(*unit.args)
                if task is not None:
                    progress.update(task, advance=unit.size)
            seconds.append(time.perf_counter() - began)
        self.history.append(RunRecord(label, len(units) - len(seconds), len(seconds),
                                      time.perf_counter() - started, tuple(seconds)))

    def close(self) -> None:
        return None


def timed_call(function: Callable[..., Any], *args: Any) -> float:
    """Run ``function(*args)``; the seconds it took (where it ran)."""
    began = time.perf_counter()
    function(*args)
    return time.perf_counter() - began


@dataclass
class DaskExecutor:
    """Units run as tasks on a ``dask.distributed`` cluster.

    ``scheduler`` is a scheduler address (``tcp://host:8786``) or ``local:N`` for a
    ``LocalCluster`` of N single-threaded worker processes on this machine.
    """

    scheduler: str
    name: str = "dask"
    streams: bool = False
    history: list[RunRecord] = field(default_factory=list)
    _client: Any = field(default=None, repr=False)
    _cluster: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        count = self.scheduler[6:] if self.scheduler.startswith("local:") else None
        if self.scheduler == "" or (count is not None and (not count.isdigit() or count == "0")):
            raise OdqaError(
                f"--scheduler '{self.scheduler}' is neither local:N (N worker processes here) "
                "nor a scheduler address such as tcp://host:8786"
            )

    def client(self) -> Any:
        """The Dask client, started (with its local cluster) on first use."""
        if self._client is not None:
            return self._client
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise OdqaError(
                '--executor dask needs Dask: pip install "odqa[dask]" (dask[distributed])'
            ) from None
        if self.scheduler.startswith("local:"):
            self._cluster = LocalCluster(
                n_workers=int(self.scheduler[6:]), threads_per_worker=1, processes=True,
                dashboard_address=":0", silence_logs=logging.WARNING,
            )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.scheduler, timeout=30)
            except OSError as exc:
                raise OdqaError(
                    f"cannot reach the Dask scheduler at {self.scheduler} ({exc}): start it "
                    "(`dask scheduler`) or pass --scheduler local:N"
                ) from None
        return self._client

    def run(self, units: Sequence[WorkUnit], progress: Any = None, label: str = "") -> None:
        from distributed import as_completed

        task = _task(progress, label, units)
        started = time.perf_counter()
        pending = _pending(units, progress, task)
        if not pending:
            self.history.append(RunRecord(label, len(units), 0, 0.0))
            return
        client = self.client()
        futures = {
            client.submit(timed_call, unit.function, *unit.args, pure=False, retries=RETRIES): unit
            for unit in pending
        }
        try:
            seconds = _gather(futures, as_completed, progress, task, _cluster_failure)
        finally:
            for future in futures:
                future.cancel()
        self.history.append(RunRecord(label, len(units) - len(pending), len(pending),
                                      time.perf_counter() - started, tuple(seconds)))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None


def _cluster_failure(exc: Exception, name: str) -> OdqaError:
    return OdqaError(f"work unit for {name} failed on the cluster after {RETRIES} retries: "
                     f"{type(exc).__name__}: {exc}")


def _worker_failure(exc: Exception, name: str) -> OdqaError:
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(exc, BrokenProcessPool):
        return OdqaError(f"a worker process died while building {name} (out of memory?): run "
                         "again with --resume to keep the finished units")
    return OdqaError(f"work unit for {name} failed in a worker process: "
                     f"{type(exc).__name__}: {exc}")


def single_threaded() -> None:
    """One thread for torch and the tokenizers (read when they load, after this) and for ONNX
    Runtime sessions: each core runs its own worker."""
    from odqa.runtime import onnx

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "RAYON_NUM_THREADS"):
        os.environ[name] = "1"
    onnx.DEFAULT_THREADS = 1


def _pool_worker() -> None:
    """Pool worker start-up: single-threaded; Ctrl-C is the driver's to handle."""
    import signal

    single_threaded()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@dataclass
class ProcessPool:
    """Units run in ``workers`` single-threaded processes on this machine (no extra
    dependency); the pool starts on first use and is reused by the build's later steps."""

    workers: int
    name: str = "pool"
    streams: bool = False
    history: list[RunRecord] = field(default_factory=list)
    _pool: Any = field(default=None, repr=False)

    @classmethod
    def from_scheduler(cls, scheduler: str | None) -> ProcessPool:
        """``None`` (one worker per core) or ``local:N``."""
        if scheduler is None:
            from odqa.retrieval.bm25_engine import all_cores

            return cls(all_cores())
        count = scheduler.removeprefix("local:")
        if not scheduler.startswith("local:") or not count.isdigit() or int(count) < 1:
            raise OdqaError(f"--scheduler '{scheduler}' for --executor pool must be local:N "
                            "(N worker processes on this machine)")
        return cls(int(count))

    def run(self, units: Sequence[WorkUnit], progress: Any = None, label: str = "") -> None:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        task = _task(progress, label, units)
        started = time.perf_counter()
        pending = _pending(units, progress, task)
        if self._pool is None and pending:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=get_context("spawn"), initializer=_pool_worker
            )
        futures = {self._pool.submit(timed_call, u.function, *u.args): u for u in pending}
        try:
            seconds = _gather(futures, as_completed, progress, task, _worker_failure)
        except BaseException:
            self.close(stop_workers=True)  # interrupted or failed: do not wait for the others
            raise
        self.history.append(RunRecord(label, len(units) - len(pending), len(pending),
                                      time.perf_counter() - started, tuple(seconds)))

    def close(self, stop_workers: bool = False) -> None:
        """Shut the pool down; ``stop_workers`` also ends units still running."""
        if self._pool is None:
            return
        processes = list(getattr(self._pool, "_processes", {}).values())  # no public handle
        self._pool.shutdown(wait=not stop_workers, cancel_futures=True)
        if stop_workers:
            for process in processes:
                process.terminate()
        self._pool = None


EXECUTORS: dict[str, Callable[[str | None], Executor]] = {
    "process": lambda scheduler: InProcess(),
    "pool": ProcessPool.from_scheduler,
    "dask": lambda scheduler: DaskExecutor(scheduler or "local:2"),
}
"""Executors by ``--executor`` name; each is made from the ``--scheduler`` value."""


def make_executor(name: str, scheduler: str | None = None) -> Executor:
    """The executor ``name`` (see :data:`EXECUTORS`) for ``scheduler``."""
    try:
        factory = EXECUTORS[name]
    except KeyError:
        choices = ", ".join(EXECUTORS)
        raise OdqaError(f"unknown --executor '{name}': choose from {choices}") from None
    if scheduler is not None and name == "process":
        raise OdqaError("--scheduler needs --executor pool or dask (the process executor has "
                        "none)")
    return factory(scheduler)


def passage_ranges(total: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of at most ``size`` passages covering ``0..total``."""
    return [(start, min(start + size, total)) for start in range(0, total, size)]
