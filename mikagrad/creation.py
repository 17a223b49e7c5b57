"""Creation functions, as in PyTorch; random ones draw from the seed of ``manual_seed``."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import _core
from .engine import Value, _dtype, _shape_args, _wrap, get_default_dtype

__all__ = [
    "zeros", "ones", "full", "eye", "arange", "linspace", "rand", "randn", "randperm",
    "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "manual_seed",
]


def _dt(dtype: Any) -> str:
    return (get_default_dtype() if dtype is None else _dtype(dtype)).name


def _number_dtype(x: Any) -> str | None:
    """The dtype torch gives a Python number: bool, int64, or None (the default float)."""
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, (int, np.integer)):
        return "int64"
    return None


def _size(op: str, n: Any) -> int:
    """One size: an integer in 0..2**63 (floats are refused, not truncated)."""
    k = operator.index(n)
    if k < 0:
        raise ValueError(f"{op}: negative size {k}")
    if k >= 2**63:
        raise ValueError(f"{op}: size {k} is too large")
    return k


def _sizes(shape: tuple, op: str = "shape") -> list[int]:
    return [_size(op, s) for s in _shape_args(shape)]


def manual_seed(seed: int) -> None:
    """Seeds rand, randn, randperm, Dropout and the data helpers' shuffling.

    >>> manual_seed(0); a = rand(3).tolist()
    >>> manual_seed(0); rand(3).tolist() == a
    True
    """
    _core.manual_seed(int(seed) & (2**64 - 1))


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """A Value of zeros; the shape is given as ints or as one tuple or list.

    >>> zeros(2, 3).shape, zeros((4,)).shape
    ((2, 3), (4,))
    """
    return _wrap(_core.full(_sizes(shape), 0.0, _dt(dtype), requires_grad))


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """A Value of ones; the shape is given as ints or as one tuple or list.

    >>> ones(2, 3).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    return _wrap(_core.full(_sizes(shape), 1.0, _dt(dtype), requires_grad))


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False) -> Value:
    """A Value of ``shape`` (an int or a tuple) filled with ``fill_value``; without a dtype,
    an int fill gives int64 and a bool fill bool, as in torch.

    >>> full((2, 2), 7.0).tolist(), full(2, 3).dtype
    ([[7.0, 7.0], [7.0, 7.0]], dtype('int64'))
    """
    if isinstance(fill_value, (np.generic, Value)):
        fill_value = fill_value.item()
    if not isinstance(fill_value, (bool, int, float)):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    if dtype is None:
        dtype = _number_dtype(fill_value)
    return _wrap(_core.full(_sizes((shape,)), fill_value, _dt(dtype), requires_grad))


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Value:
    """An ``n`` by ``m`` (default ``n``) Value with ones on the diagonal, zeros elsewhere.

    >>> eye(2, 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    return _wrap(_core.eye(_size("eye", n), _size("eye", n if m is None else m), _dt(dtype),
                          requires_grad))


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Value:
    """Values from ``start`` up to but excluding ``end``, ``step`` apart; ``arange(n)`` is 0..n-1.
    Integer arguments give int64, as in torch.

    >>> arange(4).tolist(), arange(1, 2, 0.25).tolist()
    ([0, 1, 2, 3], [1.0, 1.25, 1.5, 1.75])
    """
    if end is None:
        start, end = 0, start
    ints = all(_number_dtype(x) == "int64" for x in (start, end, step))
    if dtype is None and ints:
        dtype = "int64"
    name = _dt(dtype)
    if ints and name in ("int32", "int64"):
        # Exact in int64 (the float form rounds past 2**53).
        node = _core.arange_int(int(start), int(end), int(step), name)
        if requires_grad:
            node.set_requires_grad(True)  # refused for ints, as in every creation function
        return _wrap(node)
    return _wrap(_core.arange(float(start), float(end), float(step), name, requires_grad))


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Value:
    """``steps`` evenly spaced Values from ``start`` to ``end``, both ends included.

    >>> linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    return _wrap(_core.linspace(float(start), float(end), _size("linspace", steps), _dt(dtype),
                               requires_grad))


def rand(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """Uniform on [0, 1), drawn from the seed of ``manual_seed``.

    >>> manual_seed(0); x = rand(1000)
    >>> x.shape, x.min().item() >= 0, x.max().item() < 1
    ((1000,), True, True)
    """
    return _wrap(_core.rand(_sizes(shape), 0.0, 1.0, _dt(dtype), requires_grad))


def randn(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
    """Standard normal (mean 0, std 1), drawn from the seed of ``manual_seed``.

    >>> manual_seed(0); x = randn(10000)
    >>> round(x.mean().item(), 1), round(x.std().item(), 1)
    (0.0, 1.0)
    """
    return _wrap(_core.randn(_sizes(shape), 0.0, 1.0, _dt(dtype), requires_grad))


def randperm(n: int) -> list[int]:
    """A random order of ``range(n)``, as a list of ints (not a Value, unlike PyTorch).

    >>> manual_seed(0); sorted(randperm(5))
    [0, 1, 2, 3, 4]
    """
    return _core.randperm(_size("randperm", n))


def _like(v: Value, dtype: Any) -> tuple[list[int], Any]:
    return list(v.shape), (v.dtype if dtype is None else dtype)


def zeros_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    """Zeros with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> zeros_like(ones(2, dtype="float32"))
    Value([0., 0.], dtype=float32)
    """
    s, d = _like(v, dtype)
    return zeros(s, dtype=d, requires_grad=requires_grad)


def ones_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    """Ones with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> ones_like(zeros(2, 3)).shape
    (2, 3)
    """
    s, d = _like(v, dtype)
    return ones(s, dtype=d, requires_grad=requires_grad)


def full_like(v: Value, fill_value: float, dtype: Any = None,
              requires_grad: bool = False) -> Value:
    """``fill_value`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> full_like(zeros(3), 0.5).tolist()
    [0.5, 0.5, 0.5]
    """
    s, d = _like(v, dtype)
    return full(s, fill_value, dtype=d, requires_grad=requires_grad)


def rand_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    """``rand`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> manual_seed(0); x = rand_like(zeros(2, 3, dtype="float32"))
    >>> print(x.shape, x.dtype)
    (2, 3) float32
    """
    s, d = _like(v, dtype)
    return rand(s, dtype=d, requires_grad=requires_grad)


def randn_like(v: Value, dtype: Any = None, requires_grad: bool = False) -> Value:
    """``randn`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> manual_seed(0); x = randn_like(zeros(2, 3))
    >>> print(x.shape, x.dtype)
    (2, 3) float64
    """
    s, d = _like(v, dtype)
    return randn(s, dtype=d, requires_grad=requires_grad)
