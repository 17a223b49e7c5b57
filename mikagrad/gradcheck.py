"""``gradcheck``: autograd against central finite differences, in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .engine import Value, no_grad

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Autograd and finite differences disagree; the message names the worst element."""


def gradcheck(fn: Callable[..., Value], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Checks ``fn``'s gradients at ``inputs``; returns True or raises GradcheckError.

    The output is reduced with random weights, so every row of the Jacobian counts.

    >>> gradcheck(lambda x: (x * x).sum(), Value([1.0, 2.0]))
    True
    """
    xs = [Value(np.array(np.asarray(x), dtype=np.float64), requires_grad=True) for x in inputs]
    out = fn(*xs)
    w = np.random.default_rng(seed).standard_normal(out.shape)
    (out * w).sum().backward()

    def f() -> float:
        with no_grad():
            return float(np.sum(np.asarray(fn(*xs)) * w))

    worst: tuple[float, tuple[int, tuple[int, ...], float, float] | None] = (0.0, None)
    for i, x in enumerate(xs):
        auto = np.zeros(x.shape) if x.grad is None else np.array(x.grad)
        data = np.asarray(x.data)
        for idx in np.ndindex(*x.shape):
            orig = data[idx]
            data[idx] = orig + eps
            hi = f()
            data[idx] = orig - eps
            lo = f()
            data[idx] = orig
            num = (hi - lo) / (2 * eps)
            err = abs(auto[idx] - num) - (atol + rtol * abs(num))
            if not err <= 0 and (worst[1] is None or err > worst[0]):
                worst = (err, (i, idx, auto[idx], num))
    if worst[1] is not None:
        i, idx, a, n = worst[1]
        raise GradcheckError(
            f"gradcheck: input {i} element {idx}: autograd gives {a!r}, "
            f"finite differences give {n!r}"
        )
    return True
