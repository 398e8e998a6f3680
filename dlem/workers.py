"""An ordered parallel map on forked worker processes that a signal can stop at any moment.

Worker k of W applies the function to items k, k + W, k + 2W, ... and sends each result
down a pipe of its own; the parent reads the pipes in turn, so the results arrive in input
order and a worker runs at most one result (plus the pipe's buffer) ahead of the reader:
memory stays bounded however slow the reader is. Nothing is shared between the workers, so
stopping them is a SIGTERM to each and a join. (``multiprocessing.Pool.terminate`` puts a
sentinel on the shared result queue under its write lock; a stopped ``dlem simulate`` once
hung there, the lock held by a worker that could not finish sending its result.)
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1    # prctl option: signal this process when its parent dies


class WorkerDied(RuntimeError):
    """A worker process ended before it delivered its results (killed, out of memory)."""


@contextmanager
def ordered_map(func: Callable, items: Sequence, workers: int) -> Iterator[Iterator]:
    """Context: an iterator over ``func(item)`` for ``items`` in order, computed by up to
    ``workers`` forked processes that start at entry (``func`` and the items are inherited,
    not pickled). An exception in ``func`` is raised in the parent where its result was due;
    a worker that dies raises ``WorkerDied``. Leaving the block, by the end, an exception or
    a signal, terminates the workers that still run and waits for them."""
    ctx = mp.get_context("fork")
    count = min(workers, len(items))
    procs, pipes = [], []
    try:
        for k in range(count):
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_serve, args=(func, items[k::count], writer, os.getpid()),
                               daemon=True, name=f"worker-{k}")
            procs.append(proc)
            pipes.append(reader)
            proc.start()
            writer.close()
        yield _results(procs, pipes, len(items))
    finally:
        with _signals_ignored(signal.SIGTERM, signal.SIGINT):  # a second signal must not
            for proc in procs:                               # break off the shutdown
                if proc.pid is not None and proc.exitcode is None:
                    proc.terminate()
            for proc in procs:
                if proc.pid is not None:
                    proc.join()
            for pipe in pipes:
                pipe.close()


def _results(procs: list, pipes: list, total: int) -> Iterator:
    for j in range(total):
        k = j % len(pipes)
        try:
            ok, value = pipes[k].recv()
        except EOFError:
            procs[k].join()
            raise WorkerDied(f"worker process {procs[k].pid} ended (exit code "
                             f"{procs[k].exitcode}: killed, out of memory?) before it "
                             f"delivered item {j}") from None
        if not ok:
            raise value
        yield value


def _serve(func: Callable, items: Sequence, pipe, parent: int) -> None:
    """Worker body: compute and send each result; stop after the first exception."""
    _quiet_worker(parent)
    for item in items:
        try:
            out = (True, func(item))
        except Exception as err:  # noqa: BLE001 - raised again in the parent
            out = (False, err)
        try:
            pipe.send(out)
        except (BrokenPipeError, ConnectionResetError):  # the parent stopped reading
            os._exit(0)
        if not out[0]:
            break
    pipe.close()


def _quiet_worker(parent: int) -> None:
    """Die by SIGTERM without a traceback (the parent terminates the workers when it stops),
    leave Ctrl-C to the parent, and get SIGTERM when the parent dies (Linux), so that no
    orphan keeps computing; exit at once if the parent is already gone."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


@contextmanager
def _signals_ignored(*signums: int):
    """Ignore `signums` inside the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.signal(signum, signal.SIG_IGN) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
