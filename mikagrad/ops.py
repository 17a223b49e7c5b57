"""Module-level ops over several Values (``mikagrad.cat``, ``mikagrad.where``, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _core
from .engine import Value, _wrap, tensor

__all__ = ["cat", "stack", "split", "chunk", "where", "maximum", "minimum", "matmul", "dot",
           "argmax", "argmin", "sort", "argsort", "topk"]


def _val(x: Any, like: Value | None = None) -> Value:
    if isinstance(x, Value):
        return x
    return Value(x, dtype=None if like is None else like.dtype, requires_grad=False)


def _vals(op: str, parts: Sequence[Any]) -> list[Value]:
    if isinstance(parts, Value) or not isinstance(parts, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of Values")
    return [_val(p) for p in parts]


def cat(values: Sequence[Any], dim: int = 0) -> Value:
    """Joins Values along an existing dim; the gradient is split back.

    >>> cat([Value([1.0, 2.0]), Value([3.0])]).tolist()
    [1.0, 2.0, 3.0]
    """
    vs = _vals("cat", values)
    return _wrap(_core.Node.cat([v._node for v in vs], int(dim)), *vs)


concatenate = cat


def stack(values: Sequence[Any], dim: int = 0) -> Value:
    """Joins same-shaped Values along a new dim ``dim``.

    >>> a, b = Value([1.0, 2.0]), Value([3.0, 4.0])
    >>> stack([a, b]).tolist(), stack([a, b], dim=1).tolist()
    ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 3.0], [2.0, 4.0]])
    """
    vs = _vals("stack", values)
    return _wrap(_core.Node.stack([v._node for v in vs], int(dim)), *vs)


def split(v: Value, split_size_or_sections: Any, dim: int = 0) -> list[Value]:
    """Cuts ``v`` along ``dim`` into pieces of one size (the last may be shorter) or of the
    sizes listed, as PyTorch; the same as ``v.split``.

    >>> [p.tolist() for p in split(Value([0.0, 1.0, 2.0, 3.0, 4.0]), 2)]
    [[0.0, 1.0], [2.0, 3.0], [4.0]]
    """
    return v.split(split_size_or_sections, dim)


def chunk(v: Value, chunks: int, dim: int = 0) -> list[Value]:
    """Cuts ``v`` along ``dim`` into at most ``chunks`` pieces, as PyTorch; ``v.chunk``.

    Each piece has ``ceil(n / chunks)`` elements along ``dim``; the last may have fewer.

    >>> [p.tolist() for p in chunk(Value([0.0, 1.0, 2.0, 3.0]), 2)]
    [[0.0, 1.0], [2.0, 3.0]]
    """
    return v.chunk(chunks, dim)


def where(cond: Any, a: Any, b: Any) -> Value:
    """``a`` where ``cond`` is nonzero, else ``b``; gradients follow the branch taken.

    >>> x = Value([-1.0, 2.0, -3.0])
    >>> where(x > 0, x, 0.0).tolist()
    [0.0, 2.0, 0.0]
    """
    # Numbers become 0-d tensors of their own dtype, so promotion follows torch's rules
    # (an int64 branch with 0.5 gives the default float, with 7 stays int64).
    av, bv = (x if isinstance(x, Value) else tensor(x) for x in (a, b))
    c = cond if isinstance(cond, Value) else tensor(cond)
    for x, other in ((a, bv), (b, av)):
        # A Python int branch takes the other's integer dtype: it must fit there (torch).
        if isinstance(x, int) and not isinstance(x, bool) and other.dtype == np.int32 and not (
                -2**31 <= x < 2**31):
            raise ValueError(f"where: {x} does not fit in int32, the other branch's dtype")
    return _wrap(_core.Node.where_(c._node, av._node, bv._node), av, bv)


def _binary(a: Any, b: Any, op: str) -> Value:
    """``a op b`` with the operands promoted as ``a + b`` would be (an array or number
    keeps its own dtype in torch's promotion)."""
    if isinstance(a, Value):
        return a._bin(b, op)
    if isinstance(b, Value):
        return b._bin(a, op, reflected=True)
    return tensor(a)._bin(b, op)


def maximum(a: Any, b: Any) -> Value:
    """The elementwise larger of ``a`` and ``b``, broadcast; a number or list works as well.

    >>> maximum(Value([-1.0, 2.0]), 0.0).tolist()
    [0.0, 2.0]
    """
    return _binary(a, b, "maximum")


def minimum(a: Any, b: Any) -> Value:
    """The elementwise smaller of ``a`` and ``b``, broadcast; a number or list works as well.

    >>> minimum(Value([-1.0, 2.0]), 0.0).tolist()
    [-1.0, 0.0]
    """
    return _binary(a, b, "minimum")


def matmul(a: Any, b: Any) -> Value:
    """``a @ b``, for when ``a`` may be a list or an array rather than a Value.

    >>> matmul([[1.0, 2.0]], Value([[1.0, 0.0], [0.0, 1.0]])).tolist()
    [[1.0, 2.0]]
    """
    return _val(a) @ b


def dot(a: Any, b: Any) -> Value:
    """The inner product of two 1-d Values (or lists), a 0-d Value.

    >>> dot([1.0, 2.0], Value([3.0, 4.0])).item()
    11.0
    """
    return _val(a).dot(b)


def argmax(v: Value, dim: int | None = None, keepdim: bool = False) -> Value:
    """``v.argmax``: int64 indices of the largest elements.

    >>> argmax(Value([1.0, 3.0, 2.0])).item()
    1
    """
    return v.argmax(dim, keepdim)


def argmin(v: Value, dim: int | None = None, keepdim: bool = False) -> Value:
    """``v.argmin``: int64 indices of the smallest elements.

    >>> argmin(Value([[1.0, 0.0], [2.0, 3.0]]), dim=1).tolist()
    [1, 0]
    """
    return v.argmin(dim, keepdim)


def sort(v: Value, dim: int = -1, descending: bool = False) -> Any:
    """``v.sort``: ``(values, indices)``, stable, NaN last.

    >>> sort(Value([3.0, 1.0, 2.0])).indices.tolist()
    [1, 2, 0]
    """
    return v.sort(dim, descending)


def argsort(v: Value, dim: int = -1, descending: bool = False) -> Value:
    """``v.argsort``: the int64 order that sorts ``v`` along ``dim``.

    >>> argsort(Value([3.0, 1.0, 2.0]), descending=True).tolist()
    [0, 2, 1]
    """
    return v.argsort(dim, descending)


def topk(v: Value, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """``v.topk``: the ``k`` largest (or smallest) along ``dim`` with their indices.

    >>> values, indices = topk(Value([1.0, 4.0, 2.0, 3.0]), 2)
    >>> values.tolist(), indices.tolist()
    ([4.0, 3.0], [1, 3])
    """
    return v.topk(k, dim, largest, sorted)
