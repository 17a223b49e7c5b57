"""Module-level ops over several Values (``mikagrad.cat``, ``mikagrad.where``, ...)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _core
from .engine import Value, _wrap, tensor

__all__ = ["cat", "stack", "split", "chunk", "where", "maximum", "minimum", "matmul", "dot",
           "argmax", "argmin", "sort", "argsort", "topk",
           "tanh", "exp", "log", "log10", "log2", "sqrt", "abs", "sigmoid", "relu", "square",
           "clamp", "clip", "sum", "mean", "var", "std", "max", "min", "amax", "amin",
           "logsumexp", "softmax", "log_softmax", "all", "any", "numel", "isclose", "allclose",
           "equal", "tril", "triu", "histogram", "Histogram", "cumsum"]


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


# ---- function forms of the tensor methods, at torch's names --------------------------------


def _v(x: Any) -> Value:
    return x if isinstance(x, Value) else tensor(x)


def _unary_form(name: str, example: str, result: str) -> Callable[[Any], Value]:
    """``mikagrad.<name>(x)``: ``x.<name>()``, for a Value, a list or an array."""

    def form(x: Any) -> Value:
        return getattr(_v(x), name)()

    form.__name__ = form.__qualname__ = name
    form.__doc__ = f"``x.{name}()``.\n\n>>> {name}({example}).tolist()\n{result}\n"
    return form


tanh = _unary_form("tanh", "[0.0]", "[0.0]")
exp = _unary_form("exp", "[0.0]", "[1.0]")
log = _unary_form("log", "[1.0]", "[0.0]")
log10 = _unary_form("log10", "[1000.0]", "[3.0]")
log2 = _unary_form("log2", "[4.0]", "[2.0]")
sqrt = _unary_form("sqrt", "[4.0]", "[2.0]")
abs = _unary_form("abs", "[-2.0]", "[2.0]")
sigmoid = _unary_form("sigmoid", "[0.0]", "[0.5]")
relu = _unary_form("relu", "[-1.0, 2.0]", "[0.0, 2.0]")
square = _unary_form("square", "[3.0]", "[9.0]")


def clamp(x: Any, min: Any = None, max: Any = None) -> Value:
    """``x.clamp(min, max)``.

    >>> clamp([-2.0, 0.5, 2.0], -1, 1).tolist()
    [-1.0, 0.5, 1.0]
    """
    return _v(x).clamp(min, max)


clip = clamp


def sum(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """``x.sum(dim, keepdim)``.

    >>> sum([[1.0, 2.0], [3.0, 4.0]], 1).tolist()
    [3.0, 7.0]
    """
    return _v(x).sum(dim, keepdim)


def mean(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """``x.mean(dim, keepdim)``.

    >>> mean([1.0, 2.0]).item()
    1.5
    """
    return _v(x).mean(dim, keepdim)


def var(x: Any, dim: Any = None, keepdim: bool = False, *, correction: Any = None,
        unbiased: Any = None) -> Value:
    """``x.var(...)``, unbiased by default as torch.

    >>> var([1.0, 3.0]).item()
    2.0
    """
    return _v(x).var(dim, keepdim, correction=correction, unbiased=unbiased)


def std(x: Any, dim: Any = None, keepdim: bool = False, *, correction: Any = None,
        unbiased: Any = None) -> Value:
    """``x.std(...)``, unbiased by default as torch.

    >>> std([1.0, 3.0]).item()
    1.4142
    """
    return _v(x).std(dim, keepdim, correction=correction, unbiased=unbiased)


def max(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """``x.max()``, or ``(values, indices)`` over an int ``dim``; with a Value as ``dim``
    (torch's ``max(a, b)``), the elementwise ``maximum``.

    >>> max([1.0, 3.0]).item(), max([[1.0, 3.0]], 1).indices.tolist()
    (3.0, [1])
    """
    if isinstance(dim, Value):
        return maximum(x, dim)
    return _v(x).max(dim, keepdim)


def min(x: Any, dim: Any = None, keepdim: bool = False) -> Any:
    """``x.min()``, or ``(values, indices)`` over an int ``dim``; with a Value as ``dim``,
    the elementwise ``minimum``.

    >>> min([1.0, 3.0]).item()
    1.0
    """
    if isinstance(dim, Value):
        return minimum(x, dim)
    return _v(x).min(dim, keepdim)


def amax(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """``x.amax(dim, keepdim)``.

    >>> amax([[1.0, 3.0]], 0).tolist()
    [1.0, 3.0]
    """
    return _v(x).amax(dim, keepdim)


def amin(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """``x.amin(dim, keepdim)``.

    >>> amin([[1.0, 3.0]], 1).tolist()
    [1.0]
    """
    return _v(x).amin(dim, keepdim)


def logsumexp(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """``x.logsumexp(dim, keepdim)``.

    >>> logsumexp([0.0, 0.0], 0).item()
    0.6931
    """
    return _v(x).logsumexp(dim, keepdim)


def softmax(x: Any, dim: int) -> Value:
    """``x.softmax(dim)``.

    >>> softmax([0.0, 0.0], 0).tolist()
    [0.5, 0.5]
    """
    return _v(x).softmax(dim)


def log_softmax(x: Any, dim: int) -> Value:
    """``x.log_softmax(dim)``.

    >>> log_softmax([0.0, 0.0], 0).tolist()
    [-0.693, -0.693]
    """
    return _v(x).log_softmax(dim)


def all(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """Whether every element is nonzero, as a bool Value.

    >>> all([1, 2]).item(), all([[1, 0]], 1).tolist()
    (True, [False])
    """
    return _v(x).all(dim, keepdim)


def any(x: Any, dim: Any = None, keepdim: bool = False) -> Value:
    """Whether any element is nonzero, as a bool Value.

    >>> any([0, 2]).item()
    True
    """
    return _v(x).any(dim, keepdim)


def numel(x: Any) -> int:
    """The number of elements.

    >>> numel([[1, 2, 3]])
    3
    """
    return _v(x).numel()


def isclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Value:
    """``|a - b| <= atol + rtol·|b|`` elementwise, as a bool Value (torch's rule; equal
    infinities are close, NaN only with ``equal_nan``).

    >>> isclose([1.0, 1.0], [1.0 + 1e-9, 1.1]).tolist()
    [True, False]
    """
    av, bv = _v(a), _v(b)
    near = ((av - bv).abs() <= atol + rtol * bv.abs()) & av.isfinite() & bv.isfinite()
    close = (av == bv) | near
    if equal_nan:
        close = close | (av.isnan() & bv.isnan())
    return close


def allclose(a: Any, b: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether ``isclose`` holds everywhere, as a Python bool.

    >>> allclose([1.0, 2.0], [1.0, 2.0 + 1e-9])
    True
    """
    return bool(isclose(a, b, rtol, atol, equal_nan).all().item())


def equal(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` have the same shape and the same elements.

    >>> equal([1, 2], [1, 2]), equal([1, 2], [1, 3]), equal([1], [1, 1])
    (True, False, False)
    """
    av, bv = _v(a), _v(b)
    return av.shape == bv.shape and bool((av == bv).all().item())


def _band(x: Any, diagonal: int, lower: bool) -> Value:
    v = _v(x)
    if v.ndim < 2:
        raise ValueError(f"{'tril' if lower else 'triu'}: needs at least 2 dims, got shape "
                         f"{v.shape}")
    n, m = v.shape[-2:]
    # The band as a constant bool mask (numpy builds it), then one `where`.
    keep = np.tri(n, m, diagonal, dtype=bool) if lower else ~np.tri(n, m, diagonal - 1, dtype=bool)
    return where(tensor(keep), v, tensor(0, dtype=v.dtype))


def cumsum(x: Any, dim: int, *, dtype: Any = None) -> Value:
    """``torch.cumsum``: running sums along ``dim``.

    >>> cumsum([1, 2, 3], 0).tolist()
    [1, 3, 6]
    """
    return _v(x).cumsum(dim, dtype=dtype)


def tril(x: Any, diagonal: int = 0) -> Value:
    """The lower triangle (on and below ``diagonal``) of the last two dims; zeros above. The
    gradient flows to the kept part.

    >>> tril([[1.0, 2.0], [3.0, 4.0]]).tolist()
    [[1.0, 0.0], [3.0, 4.0]]
    """
    return _band(x, diagonal, True)


def triu(x: Any, diagonal: int = 0) -> Value:
    """The upper triangle (on and above ``diagonal``) of the last two dims; zeros below.

    >>> triu([[1.0, 2.0], [3.0, 4.0]]).tolist()
    [[1.0, 2.0], [0.0, 4.0]]
    """
    return _band(x, diagonal, False)


class Histogram(NamedTuple):
    """What ``histogram`` returns: the counts and the bin edges, as torch's.

    >>> histogram(tensor([0.5, 1.5]), bins=2, range=(0.0, 2.0)).hist.tolist()
    [1.0, 1.0]
    """

    hist: Value
    bin_edges: Value


def histogram(x: Any, bins: Any = 100, *, range: Any = None, weight: Any = None,
              density: bool = False) -> Histogram:
    """Counts of ``x``'s elements in ``bins`` equal bins (or at the given edges), as
    ``torch.histogram``: float Values, no gradient.

    >>> h = histogram(tensor([1.0, 2.0, 1.0, 4.0]), bins=4, range=(0.0, 4.0))
    >>> h.hist.tolist(), h.bin_edges.tolist()
    ([0.0, 2.0, 1.0, 1.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    """
    v = _v(x)
    if not v._is_float:
        raise TypeError(f"histogram: needs a float tensor, got {v.dtype}")
    edges = bins.numpy() if isinstance(bins, Value) else bins
    w = None if weight is None else _v(weight).numpy()
    hist, e = np.histogram(v.numpy(), bins=edges, range=range, weights=w, density=density)
    return Histogram(tensor(hist.astype(v.dtype)), tensor(e.astype(v.dtype)))
