"""dlem.workers.ordered_map: the same results as a serial map, errors raised where due, and
a stop at any moment that ends every worker (no hang, no orphan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlem.workers import WorkerDied, ordered_map


def square_slowly(x: int) -> int:
    time.sleep(0.001 * (x % 3))        # uneven work: results finish out of order
    return x * x


def children(parent: int | None = None) -> set[int]:
    """The running processes whose parent is `parent` (default: this one); Linux /proc,
    zombies excluded."""
    parent = os.getpid() if parent is None else parent
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (FileNotFoundError, ProcessLookupError):   # ended meanwhile
            continue
        if int(ppid) == parent and state != "Z":
            found.add(int(stat.parent.name))
    return found


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_results_arrive_in_input_order_as_a_serial_map(workers):
    items = list(range(23))
    with ordered_map(square_slowly, items, workers) as results:
        assert list(results) == list(map(square_slowly, items))


def test_no_items_start_no_worker():
    with ordered_map(square_slowly, [], 4) as results:
        assert list(results) == []


def fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError(f"bad item {x}")
    return x


def test_an_exception_in_a_worker_is_raised_where_its_result_was_due():
    got = []
    with pytest.raises(ValueError, match="bad item 5"):
        with ordered_map(fail_on_five, list(range(20)), 2) as results:
            got.extend(results)
    assert got == [0, 1, 2, 3, 4]


def die_on_three(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)     # as the kernel's OOM killer would
    return x


def test_a_killed_worker_is_an_error_naming_it_not_a_hang():
    with pytest.raises(WorkerDied,
                       match=r"exit code -9: killed, out of memory\?\) before it delivered item 3"):
        with ordered_map(die_on_three, list(range(10)), 2) as results:
            for _ in results:
                pass


def report_pid(x: int) -> int:
    time.sleep(0.01)
    return os.getpid()


@pytest.mark.parametrize("taken", [0, 1, 7])
def test_leaving_the_block_early_ends_every_worker(taken):
    """Workers computing, or blocked on a full pipe, end when the block is left."""
    before = children()
    with ordered_map(report_pid, list(range(100_000)), 2) as results:
        pids = {next(results) for _ in range(taken)}
        time.sleep(0.2)
        workers = children() - before
        assert len(workers) == 2 and pids <= workers
    assert children() == before


STRESS = """
import random, time, sys
from dlem.workers import ordered_map
def busy(x):
    t = time.perf_counter()
    while time.perf_counter() - t < 0.002:
        pass
    return b"x" * 4000
random.seed(1)
for _ in range(60):
    with ordered_map(busy, [b"y" * 2000] * 20000, 2) as results:
        for _ in range(random.randint(0, 40)):
            next(results)
        time.sleep(random.uniform(0, 0.05))
print("done")
"""


def test_sixty_stops_at_random_moments_all_end():
    res = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "done" and res.stderr == ""
