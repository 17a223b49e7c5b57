"""Timing: medians of repeated samples with time.perf_counter, the garbage collector on.

A sample runs the statement ``number`` times in a loop compiled once (as ``timeit`` does, so
the loop costs ~10 ns a turn) and records the time per call. ``number`` is chosen so that a
sample lasts about ``sample_s``; samples are taken until ``budget_s`` has passed and at least
``min_samples`` exist. Unlike ``timeit``, the garbage collector stays on: a training loop
pays for it too. ``measure_many`` interleaves the frameworks of one case sample by sample.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Stats:
    """Seconds per call: the median, min and max over ``samples`` samples of ``number`` calls."""

    median: float
    min: float
    max: float
    samples: int
    number: int

    @classmethod
    def of(cls, times: list[float], number: int = 1) -> Stats:
        return cls(statistics.median(times), min(times), max(times), len(times), number)


@dataclass
class Budget:
    """How long to measure: per (case, framework)."""

    budget_s: float = 0.4
    min_samples: int = 5
    max_samples: int = 200
    sample_s: float = 0.004
    warmup: int = 2


def _compile(stmt: str, names: dict[str, Any]) -> Callable[[Any, Any], float]:
    """A function running ``stmt`` once per item of its iterator, with ``names`` as locals."""
    args = "".join(f", {n}" for n in names)
    src = (f"def inner(_it, _timer{args}):\n"
           f"    _t0 = _timer()\n"
           f"    for _i in _it:\n"
           f"        {stmt}\n"
           f"    return _timer() - _t0\n")
    ns: dict[str, Any] = {}
    exec(compile(src, "<bench>", "exec"), ns)
    inner = ns["inner"]
    values = tuple(names.values())
    return lambda it, timer: inner(it, timer, *values)


def measure(stmt: str | Callable[[], Any], names: dict[str, Any] | None = None,
            budget: Budget | None = None) -> Stats:
    """Times ``stmt`` (a statement over ``names``, or a zero-argument callable)."""
    b = budget or Budget()
    if callable(stmt):
        names, stmt = {"_fn": stmt}, "_fn()"
    run = _compile(stmt, names or {})
    for _ in range(b.warmup):
        run(itertools.repeat(None, 1), time.perf_counter)
    one = run(itertools.repeat(None, 1), time.perf_counter)
    number = max(1, int(b.sample_s / max(one, 1e-9)))
    times: list[float] = []
    gc.collect()
    start = time.perf_counter()
    while len(times) < b.max_samples and (
            len(times) < b.min_samples or time.perf_counter() - start < b.budget_s):
        times.append(run(itertools.repeat(None, number), time.perf_counter) / number)
    return Stats.of(times, number)


SETTLE_S = 0.2  # OpenBLAS's idle worker threads spin for ~0.1 s after a call


def measure_many(items: dict[str, Any], budget: Budget | None = None,
                 interleave: bool = False) -> dict[str, Any]:
    """Times several statements (one case in several frameworks).

    ``items`` maps names to a callable or a (statement, names) pair; a statement that
    raises gives its error text instead. By default each is timed in turn, after a pause
    of ``SETTLE_S`` so that the previous one's worker threads (OpenBLAS spins, OpenMP and
    rayon pools) have gone idle: frameworks interleaved sample by sample fight over the
    two cores with their thread pools and slow each other by up to 10×. With
    ``interleave`` (for single-threaded work such as tiny ops) they take one sample each
    per round, so that a burst of load from other processes falls on all alike.
    """
    b = budget or Budget()
    if not interleave:
        out = {}
        for name, item in items.items():
            time.sleep(SETTLE_S)
            out.update(measure_many({name: item}, b, interleave=True))
        return out
    runs, numbers, out = {}, {}, {}
    for name, item in items.items():
        stmt, names = ("_fn()", {"_fn": item}) if callable(item) else item
        run = _compile(stmt, names)
        try:
            for _ in range(b.warmup):
                run(itertools.repeat(None, 1), time.perf_counter)
            one = run(itertools.repeat(None, 1), time.perf_counter)
        except Exception as e:  # a failure is a result to report, not a crash
            out[name] = f"failed: {type(e).__name__}: {e}"[:120]
            continue
        runs[name] = run
        numbers[name] = max(1, int(b.sample_s / max(one, 1e-9)))
    times: dict[str, list[float]] = {name: [] for name in runs}
    gc.collect()
    start, rounds = time.perf_counter(), 0
    while rounds < b.max_samples and (
            rounds < b.min_samples or time.perf_counter() - start < b.budget_s * len(runs)):
        for name, run in runs.items():
            n = numbers[name]
            times[name].append(run(itertools.repeat(None, n), time.perf_counter) / n)
        rounds += 1
    for name in items:
        if name in runs:
            out[name] = Stats.of(times[name], numbers[name])
    return out


def measure_once(fn: Callable[[], Any], repeat: int) -> Stats:
    """``repeat`` single calls (for slow cases: micrograd, long chains), no warm-up."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Stats.of(times)
