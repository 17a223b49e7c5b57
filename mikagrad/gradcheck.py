"""``gradcheck``: autograd against central finite differences, in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .engine import Value, no_grad

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


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

    autos = [np.zeros(x.shape) if x.grad is None else np.array(x.grad) for x in xs]
    _compare("gradcheck", "", xs, autos, f, eps, atol, rtol)
    return True


def _compare(name: str, what: str, xs: list[Value], autos: list[np.ndarray],
             f: Callable[[], float], eps: float, atol: float, rtol: float) -> None:
    """Central differences of ``f`` in each element of ``xs`` against ``autos``; raises
    GradcheckError naming the worst element."""
    worst: tuple[float, tuple[int, tuple[int, ...], float, float] | None] = (0.0, None)
    for i, (x, auto) in enumerate(zip(xs, autos, strict=True)):
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
            f"{name}: input {i} element {idx}: autograd gives {a!r}{what}, "
            f"finite differences give {n!r}"
        )


def gradgradcheck(fn: Callable[..., Value], *inputs: Any, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Checks the gradients of ``fn``'s gradients at ``inputs``, in float64: the first
    gradients (``autograd.grad`` with ``create_graph=True``), reduced with random weights,
    are differentiated by autograd and by central finite differences. Returns True or raises
    GradcheckError naming the worst element.

    >>> gradgradcheck(lambda x: (x * x * x).sum(), Value([1.0, 2.0]))
    True
    """
    from .autograd import grad

    xs = [Value(np.array(np.asarray(x), dtype=np.float64), requires_grad=True) for x in inputs]
    rng = np.random.default_rng(seed)
    w_out = rng.standard_normal(fn(*xs).shape)
    w_in = [rng.standard_normal(x.shape) for x in xs]

    def first(xs: list[Value]) -> Value:
        out = (fn(*xs) * w_out).sum()
        gs = grad(out, xs, create_graph=True, materialize_grads=True)
        return sum(((g * w).sum() for g, w in zip(gs, w_in, strict=True)), Value(0.0) * 0.0)

    s = first(xs)
    autos = ([np.array(g.numpy()) for g in grad(s, xs, materialize_grads=True)]
             if s.requires_grad else [np.zeros(x.shape) for x in xs])
    _compare("gradgradcheck", " for the second derivative", xs, autos,
             lambda: first(xs).item(), eps, atol, rtol)
    return True
