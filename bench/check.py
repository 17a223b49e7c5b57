"""Checks that every framework computes the same thing: two SGD steps from the same weights
must give the same parameters as PyTorch's, three steps of the digits CNN the same losses,
and the 100-op chain the same gradient (float32 tolerances; micrograd in float64).
``python -m bench --check`` runs only this; the main run does it first, on small data.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from . import workloads as W

TOLERANCE = 1e-4  # float32 steps agree to ~1e-7; a wrong gradient is off by far more


def max_rel_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest |a - b| over all parameters, relative to the largest |b|."""
    scale = max(float(np.max(np.abs(x))) for x in b)
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - y))) for x, y in zip(a, b)) / scale


def _grad(g: Any) -> np.ndarray:
    if isinstance(g, list):  # micrograd's Values
        return np.array([v.grad for v in g], np.float64)
    return np.asarray(g, np.float64).ravel()


def run(frameworks: dict[str, ModuleType]) -> list[tuple[str, str, float]]:
    """(case, framework, max relative difference from the reference) for each pair."""
    xm, ym = W.moons(20)
    xd, yd, _ = W.digits(4)
    cases = [("moons", W.MOONS_SIZES, xm, ym, "hinge"), ("digits", W.DIGITS_SIZES, xd, yd, "ce")]
    ref_name = "PyTorch" if "PyTorch" in frameworks else "numpy"
    out = []
    for case, sizes, x, y, loss in cases:
        weights = W.init_mlp(sizes, seed=3)
        finals = {}
        for name, fw in frameworks.items():
            step, state = fw.mlp_step(weights, x, y, loss)
            step()
            step()
            finals[name] = [np.asarray(a, np.float64) for a in state()]
        start = [a for wb in weights for a in wb]
        out.append((case, f"{ref_name} (change from the start)",
                    max_rel_diff(finals[ref_name], start)))
        for name, params in finals.items():
            if name != ref_name:
                out.append((case, name, max_rel_diff(params, finals[ref_name])))
    steps = {name: fw.cnn(xd, yd, W.init_cnn(seed=3)) for name, fw in frameworks.items()
             if hasattr(fw, "cnn")}
    if ref_name in steps:
        losses = {name: np.array([float(step().item()) for _ in range(3)])
                  for name, step in steps.items()}
        for name, ls in losses.items():
            if name != ref_name:
                out.append(("digits CNN (losses of 3 SGD steps)", name,
                            max_rel_diff([ls], [losses[ref_name]])))
    grads = {name: _grad(fw.chain(100, (4, 4))()) for name, fw in frameworks.items()
             if hasattr(fw, "chain")}
    for name, g in grads.items():
        if name != ref_name:
            out.append(("100-op chain (x.grad)", name, max_rel_diff([g], [grads[ref_name]])))
    return out
