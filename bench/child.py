"""Work that runs in a fresh interpreter and prints one JSON line on stdout.

    python -m bench.child memory FRAMEWORK       peak RSS of 50 large-MLP steps
    python -m bench.child matmul SIZES QUICK     numpy matmul GFLOP/s and its BLAS

The parent (``bench.run``) starts these; ``matmul`` is started with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE removed from the environment, so numpy picks its own kernel.
"""

from __future__ import annotations

import json
import resource
import sys
from dataclasses import asdict


def _rss_mib() -> float:
    """Peak RSS of this process so far, in MiB.

    Linux's ``ru_maxrss`` survives ``execve``: a child started by a large parent reports the
    parent's peak. ``VmHWM`` in /proc/self/status is the same high-water mark, kept per
    address space, so it starts afresh in the child; ``ru_maxrss`` is the fallback.
    """
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def memory(name: str, steps: int = 50) -> dict:
    import importlib

    fw = importlib.import_module(f"bench.fw_{name}")
    from bench import workloads as W

    x, y = W.large()
    weights = W.init_mlp(W.LARGE_SIZES)
    base = _rss_mib()
    step, _ = fw.mlp_step(weights, x, y, "ce")
    del weights
    for _ in range(steps):
        step()
    return {"baseline_mib": base, "peak_mib": _rss_mib(), "steps": steps}


def matmul_budget(quick: bool):
    """The same for numpy here and for the other frameworks in the parent."""
    from bench.timing import Budget

    return Budget(budget_s=0.3 if quick else 0.8, min_samples=3, warmup=1)


def matmul(sizes: list[int], quick: bool) -> dict:
    import numpy as np

    from bench import fw_numpy
    from bench.timing import measure
    from bench.workloads import MATMUL_FORMS

    try:
        from threadpoolctl import threadpool_info
        blas = [{k: d.get(k) for k in ("prefix", "internal_api", "version", "architecture",
                                       "num_threads")}
                for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        blas = [{"internal_api": "unknown (threadpoolctl not installed)"}]
    budget = matmul_budget(quick)
    out = {}
    for dtype in ("float32", "float64"):
        for n in sizes:
            for form in MATMUL_FORMS:
                st = measure(fw_numpy.matmul(n, dtype, form), budget=budget)
                out[f"{dtype}/{n}/{form}"] = asdict(st)
    return {"numpy": np.__version__, "blas": blas, "results": out}


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "memory":
        result = memory(sys.argv[2])
    elif what == "matmul":
        result = matmul([int(s) for s in sys.argv[2].split(",")], sys.argv[3] == "1")
    else:
        raise SystemExit(f"unknown child job {what!r}")
    print(json.dumps(result))
