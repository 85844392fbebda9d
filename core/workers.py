"""Process pools that stop when their caller stops.

``ProcessPoolExecutor``'s own exit waits for every job already submitted: ``septool synth -j 2``
went on rendering its whole queue of songs for minutes after SIGTERM or an error. ``worker_pool``
instead cancels what has not started, asks each worker to stop (SIGTERM: the running job unwinds,
so its temporary files are removed, and the worker exits) and waits for them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

STOP_SECONDS = 30.0  # a worker that has not unwound by then is killed


class _Stopped(SystemExit):
    """Raised in a worker by SIGTERM, so that its job's ``finally`` blocks run (a SystemExit, so
    that a worker stopped while idle leaves quietly)."""


def _raise_stopped(signum, frame) -> None:
    raise _Stopped(143)


def _initialize_worker() -> None:
    signal.signal(signal.SIGTERM, _raise_stopped)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except _Stopped:
        os._exit(143)  # the job has unwound; leave before the pool hands this worker another one


class WorkerPool:
    """The part of an executor septool uses: ``submit`` and ``map``."""

    def __init__(self, executor: ProcessPoolExecutor):
        self.executor = executor

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self.executor.submit(_call, fn, *args)

    def map(self, fn: Callable[..., Any], items: list) -> list:
        return [future.result() for future in [self.submit(fn, item) for item in items]]


@contextlib.contextmanager
def worker_pool(workers: int, mp_context: Any = None) -> Iterator[WorkerPool]:
    """``workers`` processes; if the block raises (an error, Ctrl-C, SIGTERM), the workers stop
    before the exception leaves it."""
    before = {p.pid for p in multiprocessing.active_children()}
    executor = ProcessPoolExecutor(workers, mp_context=mp_context, initializer=_initialize_worker)
    try:
        yield WorkerPool(executor)
    except BaseException:
        ours = [p for p in multiprocessing.active_children() if p.pid not in before]
        executor.shutdown(wait=False, cancel_futures=True)
        for process in ours:
            process.terminate()
        for process in ours:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        raise
    executor.shutdown(wait=True)
