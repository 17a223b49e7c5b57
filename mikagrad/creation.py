"""Creation functions, as in PyTorch; random ones draw from the seed of ``manual_seed``."""

from __future__ import annotations

from typing import Any

from . import _core
from .engine import Value, _dtype, _shape_args, _wrap, get_default_dtype

__all__ = [
    "zeros", "ones", "full", "eye", "arange", "linspace", "rand", "randn", "randperm",
    "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "manual_seed",
]


def _dt(dtype: Any) -> str:
    return (get_default_dtype() if dtype is None else _dtype(dtype)).name


def _sizes(shape: tuple) -> list[int]:
    sizes = _shape_args(shape)
    if any(s < 0 for s in sizes):
        raise ValueError(f"negative dimension in shape {tuple(sizes)}")
    return sizes


def manual_seed(seed: int) -> None:
    """Seeds rand, randn, randperm, Dropout and the data helpers' shuffling."""
    _core.manual_seed(int(seed) & (2**64 - 1))


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """>>> zeros(2, 3).shape
    (2, 3)
    """
    return _wrap(_core.full(_sizes(shape), 0.0, _dt(dtype), requires_grad))


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    return _wrap(_core.full(_sizes(shape), 1.0, _dt(dtype), requires_grad))


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Value:
    return _wrap(_core.full(_sizes((shape,)), float(fill_value), _dt(dtype), requires_grad))


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Value:
    return _wrap(_core.eye(int(n), int(n if m is None else m), _dt(dtype), requires_grad))


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Value:
    if end is None:
        start, end = 0, start
    return _wrap(_core.arange(float(start), float(end), float(step), _dt(dtype), requires_grad))


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Value:
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    return _wrap(_core.linspace(float(start), float(end), int(steps), _dt(dtype), requires_grad))


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """Uniform on [0, 1)."""
    return _wrap(_core.rand(_sizes(shape), 0.0, 1.0, _dt(dtype), requires_grad))


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """Standard normal."""
    return _wrap(_core.randn(_sizes(shape), 0.0, 1.0, _dt(dtype), requires_grad))


def randperm(n: int) -> list[int]:
    return _core.randperm(int(n))


def _like(v: Value, dtype: Any) -> tuple[list[int], Any]:
    return list(v.shape), (v.dtype if dtype is None else dtype)


def zeros_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    s, d = _like(v, dtype)
    return zeros(s, dtype=d, requires_grad=requires_grad)


def ones_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    s, d = _like(v, dtype)
    return ones(s, dtype=d, requires_grad=requires_grad)


def full_like(v: Value, fill_value: float, dtype: Any = None,
              requires_grad: bool = False) -> Value:
    s, d = _like(v, dtype)
    return full(s, fill_value, dtype=d, requires_grad=requires_grad)


def rand_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    s, d = _like(v, dtype)
    return rand(s, dtype=d, requires_grad=requires_grad)


def randn_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    s, d = _like(v, dtype)
    return randn(s, dtype=d, requires_grad=requires_grad)
