"""The Value API: a thin Python shell around one Rust graph node (``_core.Node``).

Every method coerces its arguments, calls the core and wraps the result; the kernels,
the graph and the backward pass all live in Rust (see ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _core
from . import explain as _explain
from ._core import GradError, ShapeError

__all__ = [
    "Value",
    "Tensor",
    "from_dlpack",
    "tensor",
    "bool_",
    "int32",
    "int64",
    "float32",
    "float64",
    "set_default_dtype",
    "get_default_dtype",
    "no_grad",
    "enable_grad",
    "inference_mode",
    "is_grad_enabled",
    "set_num_threads",
    "get_num_threads",
    "ShapeError",
    "GradError",
]

bool_ = np.dtype(np.bool_)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
_DTYPES = (bool_, int32, int64, float32, float64)
_new = object.__new__


def _dtype(d: Any) -> np.dtype:
    """Normalizes a dtype argument (numpy dtype, type or name) to one of MikaGrad's five."""
    if isinstance(d, Value):
        return d.dtype
    if d is bool:
        return bool_
    try:
        dt = np.dtype(d)
    except TypeError:
        raise TypeError(
            f"dtype must be bool, int32, int64, float32 or float64, got {d!r}"
        ) from None
    if dt not in _DTYPES:
        raise TypeError(f"dtype must be bool, int32, int64, float32 or float64, got {dt}")
    return dt


def set_default_dtype(dtype: Any) -> None:
    """Sets the dtype of Values made from Python floats, of int inputs to float ops, and of
    new ``nn`` parameters (float64 to start, as numpy). Process-wide, as in PyTorch.

    >>> set_default_dtype(float32); Value([1.0]).dtype
    dtype('float32')
    >>> set_default_dtype(float64)
    """
    _core.set_default_dtype(_dtype(dtype).name)


def get_default_dtype() -> np.dtype:
    """The dtype that Python floats become.

    >>> get_default_dtype()
    dtype('float64')
    """
    return np.dtype(_core.get_default_dtype())


def _is_device(x: Any) -> bool:
    return (isinstance(x, str) and x.split(":")[0] in ("cpu", "cuda", "mps", "xla", "meta")) or (
        type(x).__name__ == "device")


def check_device(device: Any) -> None:
    """Accepts the CPU (``'cpu'``, ``'cpu:0'``, a torch.device of type cpu); any other device
    is a clear error: MikaGrad runs on the CPU only."""
    name = str(device)
    if name not in ("cpu", "cpu:0"):
        raise ValueError(f"device {name!r} is not available: MikaGrad runs on the CPU only "
                         "(use 'cpu'; mikagrad.cuda.is_available() is False)")


def _as_array(x: Any, dtype: Any = None, floats: bool = True) -> np.ndarray:
    """Any accepted input as an array of one of MikaGrad's dtypes.

    ``floats``: every input becomes a float array (``Value(x)``, which requires grad);
    otherwise Python ints give int64, bools bool and floats the default dtype, and numpy
    arrays keep their dtype (``torch.tensor``'s rules).
    """
    if isinstance(x, Value):
        arr = np.array(x.numpy())  # a new Value never aliases an old one
    elif isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"Value: cannot make a Value from {type(x).__name__}")
    elif isinstance(x, (np.ndarray, np.generic)):
        arr = np.asarray(x)
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max and (
                dtype is None or _dtype(dtype).kind in "biu"):
            raise ValueError(f"Value: uint64 value {arr.max()} does not fit in int64")
    else:
        try:
            arr = np.asarray(x)
        except ValueError as e:
            raise ValueError(f"Value: ragged or inhomogeneous nested list ({e})") from None
        if arr.dtype.kind == "f":
            arr = arr.astype(get_default_dtype(), copy=False)
        # numpy holds Python ints past int64 as uint64 or objects; torch refuses them.
        big = arr.dtype == np.uint64 or (arr.dtype == object and arr.size and all(
            isinstance(v, int) for v in arr.flat))
        if big and (dtype is None or _dtype(dtype).kind in "biu"):
            raise ValueError("Value: an integer in the data does not fit in int64 "
                             f"(the largest is {np.iinfo(np.int64).max})")
    kind = arr.dtype.kind
    if kind == "c":
        raise TypeError(f"Value: complex numbers are not supported (dtype {arr.dtype})")
    if kind not in "biuf":
        raise TypeError(f"Value: cannot make a Value from an array of dtype {arr.dtype}")
    if dtype is not None:
        return arr.astype(_dtype(dtype), copy=False)
    if floats and kind in "biu":
        return arr.astype(get_default_dtype())
    if kind == "f" and arr.dtype not in (float32, float64):
        return arr.astype(get_default_dtype())
    if kind in "iu" and arr.dtype not in (int32, int64):
        return arr.astype(int64)
    return arr


def _wrap(n: _core.Node, *src: Any) -> Value:
    """A Value around node ``n``; ``src`` are the operands, so ``_prev`` gives them back."""
    v = _new(Value)
    v._node = n
    # Only a recorded result needs its operands (for _prev); under no_grad keep none alive.
    v._parents = src if n.requires_grad else ()
    return v


def _arg(x: Any) -> Any:
    """An operand for the core: a Node, or a Python number (it takes part in promotion as
    torch's "wrapped number": an int32 tensor plus 2 stays int32)."""
    if type(x) is Value:
        return x._node
    if isinstance(x, (int, float)):
        return x
    if isinstance(x, Value):
        return x._node
    return _core.Node.from_numpy(_as_array(x, floats=False))


def _dims(dim: Any, axis: Any) -> list[int] | None:
    d = dim if dim is not None else axis
    if d is None:
        return None
    if isinstance(d, (int, np.integer)):
        return [operator.index(d)]
    return [operator.index(i) for i in d]


def _keep(keepdim: bool | None, keepdims: bool | None) -> bool:
    return bool(keepdims if keepdims is not None else keepdim)


def _shape_args(shape: tuple) -> list[int]:
    """Sizes or dims given as varargs or one sequence; floats are refused, not truncated."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return [operator.index(s) for s in shape]


class Value:
    """An n-dimensional tensor that records the ops applied to it, as in micrograd.

    ``Value(x)`` takes a number, a nested list, a numpy array or a Value, and requires
    grad by default (micrograd's meaning; ``mikagrad.tensor`` defaults to False as torch).
    A C-contiguous, aligned, writeable float32/float64 numpy array is shared, not copied
    (as ``torch.from_numpy``); any other input is copied once into the engine's memory.

    >>> a = Value([1.0, 2.0]); b = (a * a).sum(); b.backward(); a.grad
    Value([2., 4.])
    """

    __slots__ = ("_node", "_parents", "_base", "__weakref__")
    _node: _core.Node
    _parents: tuple[Any, ...]
    # For a view made by basic indexing: (the Value indexed, the key), plus the node last
    # handed back to it; an in-place write into the view is handed back as `base[key] = view`
    # (torch's CopySlices), so the base's graph follows its data.
    _base: tuple[Any, ...] | None
    __array_priority__ = 1000

    def __init__(self, data: Any, _children: tuple = (), _op: str = "", label: str = "", *,
                 dtype: Any = None, requires_grad: bool = True) -> None:
        if type(data) in (float, int) and dtype is None:
            self._node = _core.Node.scalar(float(data), get_default_dtype().name, requires_grad)
        else:
            # Requiring grad needs floats (micrograd's meaning); without it, arrays keep
            # their dtype, and Python numbers and lists still give floats.
            keep = not requires_grad and isinstance(data, (np.ndarray, np.generic, Value))
            arr = _as_array(data, dtype, floats=not keep)
            self._node = _core.Node.from_numpy(arr, requires_grad)
        if label:
            self._node.set_label(str(label))

    # ---- data, grad and metadata ---------------------------------------------------

    @property
    def data(self) -> Value:
        """The same memory as a Value with no graph, as torch's ``.data``:
        ``p.data -= lr * p.grad`` updates ``p`` in place, and ``np.asarray(p.data)`` is a
        view. Its writes are not counted by the version counter (torch's rule for ``.data``).
        """
        return _wrap(self._node.data_node())

    @data.setter
    def data(self, x: Any) -> None:
        if isinstance(x, Value):
            self._node.set_data_node(x._node)
        else:
            self._node.set_data(np.asarray(x, dtype=self.dtype))

    @property
    def grad(self) -> Value | None:
        """The accumulated gradient, a Value over its memory (``np.asarray(p.grad)`` is a
        view), or None before any has flowed."""
        g = self._node.grad_node()
        return None if g is None else _wrap(g)

    @grad.setter
    def grad(self, g: Any) -> None:
        if g is None or isinstance(g, Value):
            self._node.set_grad_node(None if g is None else g._node)
        else:
            self._node.set_grad(np.asarray(g, dtype=self.dtype))

    @property
    def _version(self) -> int:
        """torch's ``_version``: how many in-place writes this memory has had."""
        return self._node.version

    @property
    def shape(self) -> tuple[int, ...]:
        return self._node.shape

    @property
    def ndim(self) -> int:
        return len(self._node.shape)

    @property
    def dtype(self) -> np.dtype:
        return _BY_NAME[self._node.dtype]

    @property
    def _is_float(self) -> bool:
        return self._node.dtype in ("float32", "float64")

    def is_floating_point(self) -> bool:
        return self._is_float

    @property
    def size(self) -> _Size:
        """numpy's element count (``x.size``), which is also torch's method: ``x.size()`` is
        the shape and ``x.size(d)`` one dim's length.

        >>> x = Value([[1.0, 2.0, 3.0]]); x.size, x.size(), x.size(-1)
        (3, (1, 3), 3)
        """
        return _Size(int(np.prod(self._node.shape, dtype=np.int64)), self._node.shape)

    def numel(self) -> int:
        return self.size

    def dim(self) -> int:
        return self.ndim

    @property
    def requires_grad(self) -> bool:
        return self._node.requires_grad

    @requires_grad.setter
    def requires_grad(self, on: bool) -> None:
        self._node.set_requires_grad(bool(on))

    def requires_grad_(self, requires_grad: bool = True) -> Value:
        self._node.set_requires_grad(bool(requires_grad))
        return self

    @property
    def is_leaf(self) -> bool:
        return self._node.is_leaf

    @property
    def op(self) -> str:
        """The name of the op that made this Value ('' for a leaf)."""
        return self._node.op

    @property
    def _op(self) -> str:
        """micrograd's ``_op``: the op as micrograd writes it (``'+'``, ``'*'``, ``'**'``,
        ``'ReLU'``); other ops by name.

        >>> a, b = Value(2.0), Value(3.0); (a * b + a)._op, (a * b)._op, a._op
        ('+', '*', '')
        """
        return _MICROGRAD_OPS.get(self._node.op, self._node.op)

    def _backward(self) -> None:
        """micrograd's ``_backward()``: applies this Value's local chain rule once, adding
        its ``grad`` times the local derivatives into its inputs' ``grad``, for backprop by
        hand, node by node. A leaf, or a Value whose ``grad`` is not set, does nothing.

        >>> a, b = Value(2.0), Value(-3.0); c = a * b; c.grad = 1.0; c._backward()
        >>> float(a.grad), float(b.grad)
        (-3.0, 2.0)
        """
        self._node.backward_step()

    @property
    def label(self) -> str:
        """micrograd's label ('' until set), shown by ``draw_dot``.

        >>> a = Value(2.0, label="a"); b = a * 2; b.label = "b"; a.label, b.label
        ('a', 'b')
        """
        return self._node.label or ""

    @label.setter
    def label(self, text: str) -> None:
        self._node.set_label(str(text) if text else None)

    @property
    def parents(self) -> tuple[Value, ...]:
        """The inputs of the op that made this Value, in order (read-only).

        Operands the user passed come back as the same objects, so micrograd-style graph
        walks (``v in visited``) work; inner nodes get a wrapper made once and kept.
        """
        nodes = self._node.parents
        src = getattr(self, "_parents", ())
        known = {s._node.id: s for s in src if isinstance(s, Value)}
        out = tuple(known[p.id] if p.id in known else _wrap(p) for p in nodes)
        self._parents = out
        return out

    _prev = parents

    @property
    def grad_fn(self) -> str | None:
        return self._node.op or None

    def item(self) -> Any:
        """The one element as a Python float, int or bool, by dtype."""
        return self._node.item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def numpy(self) -> np.ndarray:
        """The data as a numpy array, without a copy."""
        return self._node.data()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self._node.data()
        if dtype is not None and np.dtype(dtype) != a.dtype:
            if copy is False:
                raise ValueError(
                    f"a {a.dtype} Value cannot become a {np.dtype(dtype)} array without a copy"
                )
            return a.astype(dtype)
        return a.copy() if copy else a

    def __array_function__(self, func: Any, types: Any, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> Any:
        """numpy functions get arrays when they only read data or when no Value given
        requires grad (as torch, whose tensors reach numpy once detached: ``np.std(p.grad)``
        works); the rest refuse, rather than return an array and silently drop the graph."""
        if func in _DATA_ONLY or not any(_needs_graph(a) for a in (*args, *kwargs.values())):
            return func(*map(_arrays, args), **{k: _arrays(v) for k, v in kwargs.items()})
        raise TypeError(
            f"numpy.{func.__name__} does not take a Value: it would return an array and drop "
            "the graph. Use the Value method or the mikagrad function, or np.asarray(v) for "
            "the data"
        )

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """``array + value`` and the other operator ufuncs give a Value (with its graph); any
        other ufunc (``np.isfinite(p.grad)``) runs on the data when no Value given requires
        grad, and is refused when one does, rather than dropping its graph."""
        pair = _UFUNC_METHODS.get(ufunc.__name__)
        if pair and method == "__call__" and not kwargs and len(inputs) == 2:
            a, b = inputs
            if isinstance(a, Value):
                return getattr(a, pair[0])(b)
            return getattr(b, pair[1])(a)
        if any(_needs_graph(x) for x in (*inputs, *kwargs.get("out", ()))):
            raise TypeError(
                f"numpy.{ufunc.__name__} does not take a Value that requires grad: it would "
                "return an array and drop the graph. Use the Value method, or .detach()"
            )

        if "out" in kwargs:
            kwargs["out"] = _arrays(kwargs["out"])
        return getattr(ufunc, method)(*map(_arrays, inputs), **kwargs)

    # ---- interop: DLPack (zero-copy through a numpy view) and pickling -------------------

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        """Exports the data without a copy (CPU only), for ``np.from_dlpack``/``torch``."""
        return self._node.data().__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)  # kDLCPU, device 0

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Also serves copy.deepcopy.
        if not self.is_leaf:
            raise GradError(
                f"cannot pickle or deep-copy a Value made by an op ('{self.op}'): only leaf "
                "Values can be, as in PyTorch. Use v.detach() to keep the data without the graph"
            )
        g = self.grad
        return (_rebuild, (np.array(self.numpy()), self.requires_grad,
                           None if g is None else np.array(g)))

    def __format__(self, spec: str) -> str:
        """A one-element Value formats as its number (``f"{loss:.4f}"``), as torch's."""
        if self.size == 1 and self.ndim <= 1 and spec:
            return format(self.item(), spec)
        return format(str(self), spec)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d Value")
        return self.shape[0]

    def __iter__(self) -> Iterator[Value]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(
                f"the truth value of a Value of shape {self.shape} is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer Value indexes Python sequences (``names[t]``, ``range(t)``),
        as in torch."""
        if self.size != 1 or self._node.dtype not in ("int32", "int64", "bool"):
            raise TypeError(
                f"only one-element integer Values can be used as an index, not a {self.dtype} "
                f"Value of shape {self.shape}"
            )
        return int(self.item())

    def __hash__(self) -> int:
        return hash(self._node.id)

    def __repr__(self) -> str:
        g = self._node.grad()
        if self.size == 1 and self.ndim <= 1 and self._is_float:
            grad = "None" if g is None else f"{float(g.reshape(-1)[0]):.4f}"
            return f"Value(data={self.item():.4f}, grad={grad})"
        body = np.array2string(self.numpy(), separator=", ", prefix="Value(")
        extra = "" if self.dtype in (float64, int64, bool_) else f", dtype={self.dtype}"
        extra += f", op={self.op!r}" if self.op else ""
        extra += ", requires_grad=True" if self.requires_grad and self.is_leaf else ""
        return f"Value({body}{extra})"

    # ---- arithmetic ----------------------------------------------------------------

    def _bin(self, other: Any, op: str, reflected: bool = False) -> Value:
        return _wrap(self._node.binary(_arg(other), op, reflected), self, other)

    def __add__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "add", False), self, o)

    def __radd__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "add", True), self, o)

    def __sub__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "sub", False), self, o)

    def __rsub__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "sub", True), self, o)

    def __mul__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "mul", False), self, o)

    def __rmul__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "mul", True), self, o)

    def __truediv__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "div", False), self, o)

    def __rtruediv__(self, o: Any) -> Value:
        return _wrap(self._node.binary(_arg(o), "div", True), self, o)

    def __floordiv__(self, o: Any) -> Value:
        return self._bin(o, "floor_divide")

    def __rfloordiv__(self, o: Any) -> Value:
        return self._bin(o, "floor_divide", True)

    def __mod__(self, o: Any) -> Value:
        return self._bin(o, "remainder")

    def __rmod__(self, o: Any) -> Value:
        return self._bin(o, "remainder", True)

    def __pow__(self, o: Any) -> Value:
        if isinstance(o, (int, float)) and self._is_float:
            return _wrap(self._node.unary("pow", float(o)), self)
        return self._bin(o, "pow")

    def __rpow__(self, o: Any) -> Value:
        return self._bin(o, "pow", True)

    def __matmul__(self, o: Any) -> Value:
        return _wrap(self._node.matmul(_arg(o), False), self, o)

    def __rmatmul__(self, o: Any) -> Value:
        return _wrap(self._node.matmul(_arg(o), True), self, o)

    def __neg__(self) -> Value:
        return _wrap(self._node.unary("neg"), self)

    def neg(self) -> Value:
        return -self

    def __pos__(self) -> Value:
        return self

    def __abs__(self) -> Value:
        return self.abs()

    # Comparisons are elementwise and give bool Values (no grad), which index as masks.
    def __lt__(self, o: Any) -> Value:
        return self._bin(o, "lt")

    def __le__(self, o: Any) -> Value:
        return self._bin(o, "le")

    def __gt__(self, o: Any) -> Value:
        return self._bin(o, "gt")

    def __ge__(self, o: Any) -> Value:
        return self._bin(o, "ge")

    def __eq__(self, o: Any) -> Value:  # type: ignore[override]
        return self._bin(o, "eq")

    def __ne__(self, o: Any) -> Value:  # type: ignore[override]
        return self._bin(o, "ne")

    # Logical on bool Values, bitwise on integer ones.
    def __and__(self, o: Any) -> Value:
        return self._bin(o, "bitwise_and")

    def __rand__(self, o: Any) -> Value:
        return self._bin(o, "bitwise_and", True)

    def __or__(self, o: Any) -> Value:
        return self._bin(o, "bitwise_or")

    def __ror__(self, o: Any) -> Value:
        return self._bin(o, "bitwise_or", True)

    def __xor__(self, o: Any) -> Value:
        return self._bin(o, "bitwise_xor")

    def __rxor__(self, o: Any) -> Value:
        return self._bin(o, "bitwise_xor", True)

    def __invert__(self) -> Value:
        return _wrap(self._node.unary("bitwise_not"), self)

    # ---- torch's method forms of the operators ----------------------------------------

    def add(self, other: Any, *, alpha: float = 1) -> Value:
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other: Any, *, alpha: float = 1) -> Value:
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other: Any) -> Value:
        return self * other

    def div(self, other: Any, *, rounding_mode: str | None = None) -> Value:
        """``/``; ``rounding_mode='floor'`` is ``//`` and ``'trunc'`` rounds toward zero."""
        if rounding_mode is None:
            return self / other
        if rounding_mode == "floor":
            return self // other
        if rounding_mode == "trunc":
            q = self / other
            t = q.sign() * (q.abs() // 1)
            floor = self // other  # its dtype is torch's for a rounded quotient (int for ints)
            return t if floor._is_float else t.to(floor.dtype)
        raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', "
                         f"got {rounding_mode!r}")

    true_divide = __truediv__

    def pow(self, exponent: Any) -> Value:
        return self ** exponent

    def floor_divide(self, other: Any) -> Value:
        return self // other

    def remainder(self, other: Any) -> Value:
        return self % other

    def eq(self, other: Any) -> Value:
        return self == other

    def ne(self, other: Any) -> Value:
        return self != other

    def lt(self, other: Any) -> Value:
        return self < other

    def le(self, other: Any) -> Value:
        return self <= other

    def gt(self, other: Any) -> Value:
        return self > other

    def ge(self, other: Any) -> Value:
        return self >= other

    def logical_and(self, other: Any) -> Value:
        return self.bool() & (other.bool() if isinstance(other, Value) else bool(other))

    def logical_or(self, other: Any) -> Value:
        return self.bool() | (other.bool() if isinstance(other, Value) else bool(other))

    def maximum(self, other: Any) -> Value:
        from .ops import maximum

        return maximum(self, other)

    def minimum(self, other: Any) -> Value:
        from .ops import minimum

        return minimum(self, other)

    def where(self, condition: Any, other: Any) -> Value:
        """torch's ``x.where(cond, y)``: ``x`` where ``cond``, else ``y``."""
        from .ops import where

        return where(condition, self, other)

    def rsqrt(self) -> Value:
        return self.sqrt().reciprocal()

    def mm(self, other: Any) -> Value:
        if self.ndim != 2 or getattr(other, "ndim", 2) != 2:
            raise ShapeError(f"mm: needs two 2-D Values, got {self.shape} and "
                             f"{getattr(other, 'shape', None)}")
        return self @ other

    def bmm(self, other: Any) -> Value:
        if self.ndim != 3 or getattr(other, "ndim", 3) != 3:
            raise ShapeError(f"bmm: needs two 3-D Values, got {self.shape} and "
                             f"{getattr(other, 'shape', None)}")
        return self @ other

    def outer(self, other: Any) -> Value:
        o = other if isinstance(other, Value) else tensor(other)
        return self.reshape(-1, 1) * o.reshape(1, -1)

    def t(self) -> Value:
        """The transpose of a Value of at most 2 dims, as torch's ``t()``."""
        if self.ndim > 2:
            raise ShapeError(f"t: expects at most 2 dims, got shape {self.shape}")
        return self.T if self.ndim == 2 else self

    def tril(self, diagonal: int = 0) -> Value:
        from .ops import tril

        return tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Value:
        from .ops import triu

        return triu(self, diagonal)

    def narrow(self, dim: int, start: int, length: int) -> Value:
        d = operator.index(dim) % max(self.ndim, 1)
        idx = [slice(None)] * self.ndim
        start = operator.index(start) % self.shape[d] if start < 0 else start
        idx[d] = slice(start, start + operator.index(length))
        return self[tuple(idx)]

    def unflatten(self, dim: int, sizes: Any) -> Value:
        d = operator.index(dim) % self.ndim
        return self.reshape(*self.shape[:d], *_shape_args((sizes,)), *self.shape[d + 1:])

    def is_contiguous(self) -> bool:
        return bool(self.numpy().flags.c_contiguous)

    def contiguous(self) -> Value:
        """This Value if its memory is row-major already, else a row-major copy in the graph."""
        return self if self.is_contiguous() else self.clone()

    def new_empty(self, *size: Any, dtype: Any = None) -> Value:
        return self.new_zeros(*size, dtype=dtype)

    # ---- in place (torch's `add_`, `x[i] = v`, `+=`) ---------------------------------------

    def _inplace(self, name: str, f: Callable[[Value], Value], other: Any = None,
                 reads_self: bool = True) -> Value:
        """Writes ``f(self)`` into self's memory and keeps this Value (its identity, and any
        view or numpy array of its memory, see the new data). A recorded write puts the op
        into self's graph; ``reads_self``: the op's backward reads self's old value, so it
        works on a copy. The core refuses what torch refuses (a leaf that requires grad,
        outside ``no_grad``)."""
        other_grad = isinstance(other, Value) and other.requires_grad
        n = self._node.inplace(name, other_grad, reads_self, lambda src: f(_wrap(src))._node)
        if n.id != self._node.id:
            self._node, self._parents = n, ()
            self._hand_back()
        return self

    def _hand_back(self) -> None:
        """After a recorded write into this view: the same write into the Value it views."""
        b = getattr(self, "_base", None)
        if b is not None:
            b[0][b[1]] = self
            self._base = (b[0], b[1], self._node.id)

    def __setitem__(self, key: Any, value: Any) -> None:
        """``x[key] = value`` in place, with numpy's and torch's indexing; ``value`` is cast
        to x's dtype and broadcast to the indexed part. A value that requires grad puts the
        write into x's graph, so ``x[i] += v`` and ``logits[i] = model(x)`` backpropagate."""
        if isinstance(value, Value):
            b = getattr(value, "_base", None)
            if b is not None and len(b) == 3 and b[0] is self and b[1] is key \
                    and b[2] == value._node.id:
                return  # `x[key] += v`: the view's write was handed back already
            v = value._node
        else:
            v = _arg(value)
        n = self._node.setitem(key, v)
        if n.id != self._node.id:
            self._node, self._parents = n, ()
            self._hand_back()

    def add_(self, other: Any, alpha: float = 1) -> Value:
        o = other if alpha == 1 else other * alpha
        return self._inplace("add_", lambda v: v + o, other, False)

    def sub_(self, other: Any, alpha: float = 1) -> Value:
        o = other if alpha == 1 else other * alpha
        return self._inplace("sub_", lambda v: v - o, other, False)

    def mul_(self, other: Any) -> Value:
        grad = isinstance(other, Value) and other.requires_grad
        return self._inplace("mul_", lambda v: v * other, other, grad)

    def div_(self, other: Any) -> Value:
        # div's backward reads the divisor and the output, not the dividend.
        return self._inplace("div_", lambda v: v / other, other, False)

    def pow_(self, exponent: Any) -> Value:
        return self._inplace("pow_", lambda v: v ** exponent, exponent)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
    __ipow__ = pow_

    def __ifloordiv__(self, o: Any) -> Value:
        return self._inplace("floor_divide_", lambda v: v // o, o, False)

    def __imod__(self, o: Any) -> Value:
        return self._inplace("remainder_", lambda v: v % o, o, False)

    def __iand__(self, o: Any) -> Value:
        return self._inplace("bitwise_and_", lambda v: v & o, o, False)

    def __ior__(self, o: Any) -> Value:
        return self._inplace("bitwise_or_", lambda v: v | o, o, False)

    def __ixor__(self, o: Any) -> Value:
        return self._inplace("bitwise_xor_", lambda v: v ^ o, o, False)

    def zero_(self) -> Value:
        return self.fill_(0)

    def fill_(self, value: Any) -> Value:
        """Every element set to ``value`` (a number or a 0-d Value, whose gradient is the
        sum of g); self's own gradient through the write is 0, as torch's."""
        return self._inplace("fill_", lambda v: _select_all(value, v), value, False)

    def copy_(self, src: Any) -> Value:
        """``src`` (broadcast, cast to self's dtype) written into self; the gradient goes to
        ``src``, none to self's old value."""
        return self._inplace("copy_", lambda v: _select_all(src, v), src, False)

    def masked_fill_(self, mask: Any, value: Any) -> Value:
        return self._inplace("masked_fill_", lambda v: v.masked_fill(mask, value), value,
                             False)

    def _fill(self, name: str, make: Callable[[str], _core.Node]) -> Value:
        from .creation import _stream

        draw = _stream(self.dtype, explicit=False)
        return self._inplace(name, lambda v: _select_all(_wrap(make(draw)), v), None, False)

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator: Any = None) -> Value:
        """Uniform on [a, b), in place, as torch's (the same numbers for the same seed)."""
        from .creation import _gen

        return self._fill("uniform_", lambda d: _core.rand(
            list(self.shape), float(a), float(b), d, False, _gen(generator)))

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Value:
        from .creation import _gen

        return self._fill("normal_", lambda d: _core.randn(
            list(self.shape), float(mean), float(std), d, False, _gen(generator)))

    def exponential_(self, lambd: float = 1.0, *, generator: Any = None) -> Value:
        from .creation import _gen

        return self._fill("exponential_", lambda d: _core.exponential(
            list(self.shape), float(lambd), d, _gen(generator)))

    def bernoulli_(self, p: Any = 0.5, *, generator: Any = None) -> Value:
        from .creation import bernoulli, full

        probs = p if isinstance(p, Value) else full(self.shape, float(p), dtype=self.dtype)
        return self._fill("bernoulli_", lambda d: bernoulli(
            probs.expand(self.shape), generator=generator)._node)

    def bernoulli(self, p: float | None = None, *, generator: Any = None) -> Value:
        from .creation import bernoulli

        return bernoulli(self, p, generator=generator)

    def multinomial(self, num_samples: int, replacement: bool = False, *,
                    generator: Any = None) -> Value:
        from .creation import multinomial

        return multinomial(self, num_samples, replacement, generator=generator)

    def clamp_(self, min: Any = None, max: Any = None) -> Value:
        return self._inplace("clamp_", lambda v: v.clamp(min, max))

    clip_ = clamp_

    def logical_not(self) -> Value:
        return self.bool().__invert__()

    # ---- unary math ----------------------------------------------------------------

    def _un(self, op: str, *params: float) -> Value:
        return _wrap(self._node.unary(op, *params), self)

    def exp(self) -> Value:
        return self._un("exp")

    def log(self) -> Value:
        return self._un("log")

    def log1p(self) -> Value:
        return self._un("log1p")

    def erfinv(self) -> Value:
        """The inverse error function on (-1, 1); ±1 give ±inf."""
        return self._un("erfinv")

    def sqrt(self) -> Value:
        return self._un("sqrt")

    def abs(self) -> Value:
        return self._un("abs")

    def sign(self) -> Value:
        return self._un("sign")

    def sin(self) -> Value:
        return self._un("sin")

    def cos(self) -> Value:
        return self._un("cos")

    def tanh(self) -> Value:
        return self._un("tanh")

    def sigmoid(self) -> Value:
        return self._un("sigmoid")

    def relu(self) -> Value:
        return self._un("relu")

    def gelu(self) -> Value:
        """GELU with the exact erf form (PyTorch's default)."""
        return self._un("gelu")

    def softplus(self) -> Value:
        return self._un("softplus")

    def reciprocal(self) -> Value:
        return self._un("reciprocal")

    def isnan(self) -> Value:
        return self._un("isnan")

    def isinf(self) -> Value:
        return self._un("isinf")

    def isfinite(self) -> Value:
        return self._un("isfinite")

    def leaky_relu(self, negative_slope: float = 0.01) -> Value:
        return self._un("leaky_relu", float(negative_slope))

    def clamp(self, min: float | None = None, max: float | None = None) -> Value:
        lo = -np.inf if min is None else float(min)
        hi = np.inf if max is None else float(max)
        if not self._is_float and any(isinstance(b, float) for b in (min, max)):
            # float bounds on an int tensor compute in the default float, as torch
            return self.to(get_default_dtype())._un("clamp", lo, hi)
        return self._un("clamp", lo, hi)

    clip = clamp

    def square(self) -> Value:
        return self ** 2

    # ---- reductions ----------------------------------------------------------------

    def sum(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
            keepdims: bool | None = None) -> Value:
        """Sum over ``dim``/``axis`` (int, tuple or None for all)."""
        return _wrap(self._node.sum(_dims(dim, axis), _keep(keepdim, keepdims)), self)

    def mean(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
             keepdims: bool | None = None) -> Value:
        return _wrap(self._node.mean(_dims(dim, axis), _keep(keepdim, keepdims)), self)

    def max(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
            keepdims: bool | None = None) -> Any:
        """The largest value, or over an int ``dim`` torch's ``(values, indices)`` pair
        (indices int64, the first of ties; the gradient goes to them). A tuple of dims
        gives the values, as ``amax``.

        >>> v, i = Value([[1.0, 5.0], [7.0, 2.0]]).max(1); v.tolist(), i.tolist()
        ([5.0, 7.0], [1, 0])
        """
        return self._extreme(True, dim, keepdim, axis, keepdims)

    def min(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
            keepdims: bool | None = None) -> Any:
        """The smallest value, or over an int ``dim`` ``(values, indices)``; see ``max``."""
        return self._extreme(False, dim, keepdim, axis, keepdims)

    def _extreme(self, largest: bool, dim: Any, keepdim: bool, axis: Any,
                 keepdims: bool | None) -> Any:
        d = dim if dim is not None else axis
        keep = _keep(keepdim, keepdims)
        if isinstance(d, (int, np.integer)):
            v, i = self._node.extreme_at(largest, operator.index(d), keep)
            return ValuesIndices(_wrap(v, self), _wrap(i))
        if d is None and not keep:
            return _wrap(self._node.extreme_all(largest), self)
        f = self._node.max if largest else self._node.min
        return _wrap(f(_dims(dim, axis), keep), self)

    def amax(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
             keepdims: bool | None = None) -> Value:
        """The largest values over ``dim`` (int, tuple or None); ties share the gradient."""
        return _wrap(self._node.max(_dims(dim, axis), _keep(keepdim, keepdims)), self)

    def amin(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
             keepdims: bool | None = None) -> Value:
        return _wrap(self._node.min(_dims(dim, axis), _keep(keepdim, keepdims)), self)

    def sort(self, dim: int = -1, descending: bool = False) -> ValuesIndices:
        """Sorted along ``dim`` (stable; NaN last) with the int64 order, as ``torch.sort``."""
        v, i = self._node.sort(operator.index(dim), bool(descending))
        return ValuesIndices(_wrap(v, self), _wrap(i))

    def argsort(self, dim: int = -1, descending: bool = False) -> Value:
        return self.sort(dim, descending).indices

    def topk(self, k: int, dim: int = -1, largest: bool = True,
             sorted: bool = True) -> ValuesIndices:
        """The ``k`` largest (or smallest) along ``dim``, in order, with int64 indices."""
        k = operator.index(k)
        if k < 0:
            raise ValueError(f"topk: k must be non-negative, got {k}")
        v, i = self._node.topk(k, operator.index(dim), bool(largest))
        return ValuesIndices(_wrap(v, self), _wrap(i))

    def var(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
            keepdims: bool | None = None, correction: float | None = None,
            unbiased: bool | None = None, ddof: float | None = None) -> Value:
        """Variance; ``correction`` defaults to 1 (unbiased), as in PyTorch."""
        c = _correction(correction, unbiased, ddof)
        return _wrap(self._node.var(_dims(dim, axis), c, _keep(keepdim, keepdims)), self)

    def std(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
            keepdims: bool | None = None, correction: float | None = None,
            unbiased: bool | None = None, ddof: float | None = None) -> Value:
        c = _correction(correction, unbiased, ddof)
        return _wrap(self._node.std(_dims(dim, axis), c, _keep(keepdim, keepdims)), self)

    def logsumexp(self, dim: Any = None, keepdim: bool = False, *, axis: Any = None,
                  keepdims: bool | None = None) -> Value:
        return _wrap(self._node.logsumexp(_dims(dim, axis), _keep(keepdim, keepdims)), self)

    def argmax(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None,
               keepdims: bool | None = None) -> Value:
        """Indices (int64, no grad) of the largest elements."""
        d = dim if dim is not None else axis
        return _wrap(self._node.arg_extreme(True, d, _keep(keepdim, keepdims)), self)

    def argmin(self, dim: int | None = None, keepdim: bool = False, *, axis: int | None = None,
               keepdims: bool | None = None) -> Value:
        d = dim if dim is not None else axis
        return _wrap(self._node.arg_extreme(False, d, _keep(keepdim, keepdims)), self)

    def any(self, dim: Any = None, keepdim: bool = False) -> Value:
        """Whether any element is nonzero (over ``dim``), as a bool Value."""
        return _wrap(self._node.to_dtype("bool").max(_dims(dim, None), bool(keepdim)))

    def all(self, dim: Any = None, keepdim: bool = False) -> Value:
        """Whether every element is nonzero (over ``dim``), as a bool Value."""
        return _wrap(self._node.to_dtype("bool").min(_dims(dim, None), bool(keepdim)))

    def softmax(self, dim: int = -1) -> Value:
        return _wrap(self._node.softmax(operator.index(dim)), self)

    def log_softmax(self, dim: int = -1) -> Value:
        return _wrap(self._node.log_softmax(operator.index(dim)), self)

    # ---- shape ---------------------------------------------------------------------

    def reshape(self, *shape: Any) -> Value:
        return _wrap(self._node.reshape(_shape_args(shape)), self)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Value:
        # Nothing to merge: torch returns the tensor itself (no new node).
        if self.ndim and (start_dim % self.ndim) == (end_dim % self.ndim) and (
                -self.ndim <= start_dim < self.ndim and -self.ndim <= end_dim < self.ndim):
            return self
        return _wrap(self._node.flatten(start_dim, end_dim), self)

    def squeeze(self, dim: Any = None) -> Value:
        return _wrap(self._node.squeeze(_dims(dim, None)), self)

    def unsqueeze(self, dim: int) -> Value:
        return _wrap(self._node.unsqueeze(operator.index(dim)), self)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Value:
        return _wrap(self._node.transpose(operator.index(dim0), operator.index(dim1)), self)

    def permute(self, *dims: Any) -> Value:
        return _wrap(self._node.permute(_shape_args(dims)), self)

    @property
    def T(self) -> Value:
        """All dims reversed, as numpy's ``.T``."""
        return _wrap(self._node.permute(list(range(self.ndim - 1, -1, -1))), self)

    @property
    def mT(self) -> Value:
        return self.transpose(-2, -1)

    def expand(self, *shape: Any) -> Value:
        return _wrap(self._node.expand(_shape_args(shape)), self)

    def broadcast_to(self, shape: Sequence[int]) -> Value:
        return _wrap(self._node.expand([int(s) for s in shape]), self)

    def split(self, split_size_or_sections: int | Sequence[int], dim: int = 0) -> list[Value]:
        n = self.shape[dim] if self.ndim else 0
        if isinstance(split_size_or_sections, (int, np.integer)):
            k = int(split_size_or_sections)
            if k < 0 or (k == 0 and n != 0):
                raise ValueError(
                    f"split: split size must be positive (0 only for a size-0 dim), got {k} "
                    f"for dim {dim} of size {n}"
                )
            # A size-0 dim gives one empty piece, as torch.
            sizes = [min(k, n - i) for i in range(0, n, k)] if n else [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
        return [_wrap(p, self) for p in self._node.split_sizes(sizes, operator.index(dim))]

    def chunk(self, chunks: int, dim: int = 0) -> list[Value]:
        if chunks <= 0:
            raise ValueError(f"chunk: number of chunks must be positive, got {chunks}")
        n = self.shape[dim]
        if n == 0:  # torch gives `chunks` empty pieces
            return self.split([0] * chunks, dim)
        return self.split(-(-n // chunks), dim)

    def __getitem__(self, key: Any) -> Value:
        v = _wrap(self._node.getitem(key), self)
        if _is_basic(key):
            v._base = (self, key)
        return v

    def gather(self, dim: int, index: Any) -> Value:
        """``torch.gather``: ``out[i][j] = self[i][index[i][j]]`` for ``dim=1``; ``index`` is an
        int32/int64 Value, array or list shaped as self outside ``dim``."""
        return _wrap(self._node.gather(operator.index(dim), index), self)

    def index_select(self, dim: int, index: Any) -> Value:
        """``torch.index_select``: the slices at ``index`` (0-d or 1-D, int32/int64) along
        ``dim``; repeats are allowed and their gradients add up."""
        return _wrap(self._node.index_select(operator.index(dim), index), self)

    def to(self, *args: Any, dtype: Any = None, device: Any = None, **kwargs: Any) -> Value:
        """This Value in ``dtype`` (torch's casts: floats truncate into ints, nonzero is True);
        only a float result keeps the graph. Already in ``dtype``: a Value on the same node
        (the same data and gradient), as torch returns the tensor itself. A device (``'cpu'``,
        the only one) may be given too, as torch's ``.to(device, dtype)``; a Value gives its
        dtype.

        >>> Value([1.5]).to("cpu", "int64").tolist(), Value([1.0]).to(device="cpu").dtype
        ([1], dtype('float64'))
        """
        unknown = set(kwargs) - {"non_blocking", "copy", "memory_format"}
        if unknown:
            raise TypeError(f"to: unexpected keyword arguments {sorted(unknown)}")
        for a in args:
            if _is_device(a):
                device = a
            elif dtype is None:
                dtype = a
            else:
                raise TypeError(f"to: more than one dtype given ({dtype!r}, {a!r})")
        if device is not None:
            check_device(device)
        if dtype is None:
            return self
        return _wrap(self._node.to_dtype(_dtype(dtype).name), self)

    def type(self, dtype: Any) -> Value:
        return self.to(dtype)

    def astype(self, dtype: Any) -> Value:
        return self.to(dtype)


    # ---- products ------------------------------------------------------------------

    def matmul(self, other: Any) -> Value:
        return self @ other

    def dot(self, other: Any) -> Value:
        o = other if isinstance(other, Value) else Value(other, requires_grad=False)
        return _wrap(self._node.dot(o._node), self)

    # ---- autograd ------------------------------------------------------------------

    def backward(self, gradient: Any = None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs: Any = None, *,
                 explain: bool = False) -> None:
        """Adds d(self)/d(x) into ``x.grad`` for every x behind self.

        A one-element output seeds 1. A larger output seeds ones, i.e. the gradient of
        ``self.sum()`` (as the original MikaGrad); ``gradient=`` gives an explicit seed.
        With ``create_graph=True`` the backward pass is recorded: each leaf's ``.grad`` then
        has a graph and can be differentiated again (``x.grad = None`` frees it, as the
        gradient refers back to x). ``inputs`` limits which Values' ``.grad`` is touched.
        Graphs are kept until their last Value goes, so ``retain_graph`` changes nothing
        and ``backward()`` may run twice (adding the gradients twice).
        ``explain=True`` prints what each step did (see ``mikagrad.explain``).

        >>> x = Value([2.0]); (x ** 3).sum().backward(create_graph=True)
        >>> g = x.grad; x.grad = None; g.sum().backward(); x.grad.tolist()
        [12.0]
        """
        del retain_graph
        if gradient is not None and not isinstance(gradient, Value):
            gradient = np.asarray(gradient, dtype=self.dtype)
        seed = gradient._node if isinstance(gradient, Value) else gradient
        nodes = None
        if inputs is not None:
            items = [inputs] if isinstance(inputs, Value) else list(inputs)
            if not items or not all(isinstance(v, Value) for v in items):
                raise TypeError("backward: inputs must be a Value or a non-empty sequence of "
                                "Values")
            nodes = [v._node for v in items]
        ctx = _explain.active()
        if not (explain or ctx):
            self._node.backward(seed, False, bool(create_graph), nodes)
            return
        steps = self._node.backward(seed, True, bool(create_graph), nodes)
        (ctx or _explain.explain())._report(steps, recorded=bool(create_graph))

    def zero_grad(self) -> None:
        """Zeros the gradient of every Value in the graph behind this one."""
        self._node.zero_grad()

    def detach(self) -> Value:
        """The same data (shared memory), cut from the graph."""
        return _wrap(self._node.detach())

    # ---- PyTorch's tensor methods that learner code uses -----------------------------

    def log10(self) -> Value:
        """The base-10 logarithm, elementwise.

        >>> Value([1.0, 100.0]).log10().tolist()
        [0.0, 2.0]
        """
        return self.log() * (1.0 / math.log(10.0))

    def log2(self) -> Value:
        """The base-2 logarithm, elementwise.

        >>> Value([1.0, 8.0]).log2().tolist()
        [0.0, 3.0]
        """
        return self.log() * (1.0 / math.log(2.0))

    def nelement(self) -> int:
        """The number of elements, torch's other name for ``numel()``.

        >>> Value([[1.0, 2.0]]).nelement()
        2
        """
        return self.size

    def element_size(self) -> int:
        """Bytes per element.

        >>> Value([1.0]).element_size(), tensor([1], dtype="int32").element_size()
        (8, 4)
        """
        return self.dtype.itemsize

    @property
    def device(self) -> str:
        """Always ``'cpu'``: MikaGrad runs on the CPU."""
        return "cpu"

    def cpu(self) -> Value:
        """This Value (it is already on the CPU), as torch's ``.cpu()``.

        >>> x = Value([1.0]); x.cpu() is x
        True
        """
        return self

    def clone(self) -> Value:
        """A copy with its own memory that stays in the graph (the gradient flows back).

        >>> x = Value([1.0, 2.0]); y = x.clone(); y.sum().backward(); x.grad.tolist()
        [1.0, 1.0]
        """
        return _wrap(self._node.clone_data(), self)

    def retain_grad(self) -> None:
        """Kept for torch's code: MikaGrad keeps every recorded Value's ``.grad`` already.

        >>> x = Value([1.0]); y = x * 2; y.retain_grad(); y.sum().backward(); y.grad.tolist()
        [1.0]
        """

    def view_as(self, other: Value) -> Value:
        """``reshape(other.shape)``.

        >>> Value([1.0, 2.0]).view_as(Value([[0.0], [0.0]])).shape
        (2, 1)
        """
        return self.reshape(other.shape)

    reshape_as = view_as

    def expand_as(self, other: Value) -> Value:
        """``expand(other.shape)``.

        >>> Value([1.0]).expand_as(Value([0.0, 0.0, 0.0])).tolist()
        [1.0, 1.0, 1.0]
        """
        return self.expand(*other.shape)

    def type_as(self, other: Value) -> Value:
        """This Value in ``other``'s dtype.

        >>> tensor([1, 2]).type_as(Value([0.5])).dtype
        dtype('float64')
        """
        return self.to(other.dtype)

    def new_full(self, size: Sequence[int], fill_value: Any, *, dtype: Any = None,
                 requires_grad: bool = False) -> Value:
        """A new Value of ``size`` filled with ``fill_value``, in this Value's dtype.

        >>> Value([1.0]).new_full((2,), 3.0).tolist()
        [3.0, 3.0]
        """
        from .creation import full

        return full(tuple(size), fill_value, dtype=dtype or self.dtype,
                    requires_grad=requires_grad)

    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
        """Zeros of ``size`` in this Value's dtype.

        >>> tensor([1, 2]).new_zeros(2, 2).tolist()
        [[0, 0], [0, 0]]
        """
        return self.new_full(_shape_args(size), 0, dtype=dtype, requires_grad=requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> Value:
        """Ones of ``size`` in this Value's dtype.

        >>> Value([1.0]).new_ones(3).tolist()
        [1.0, 1.0, 1.0]
        """
        return self.new_full(_shape_args(size), 1, dtype=dtype, requires_grad=requires_grad)

    def new_tensor(self, data: Any, *, dtype: Any = None, requires_grad: bool = False) -> Value:
        """``tensor(data)`` in this Value's dtype (unless ``dtype`` is given).

        >>> Value([1.0], dtype="float32").new_tensor([1, 2]).dtype
        dtype('float32')
        """
        return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def unbind(self, dim: int = 0) -> tuple[Value, ...]:
        """The slices along ``dim``, with that dim removed, as torch.

        >>> [v.tolist() for v in Value([[1.0, 2.0], [3.0, 4.0]]).unbind(1)]
        [[1.0, 3.0], [2.0, 4.0]]
        """
        d = operator.index(dim)
        n = self.shape[d]
        key: list[Any] = [slice(None)] * self.ndim
        out = []
        for i in range(n):
            key[d] = i
            out.append(self[tuple(key)])
        return tuple(out)

    def masked_fill(self, mask: Any, value: Any) -> Value:
        """``value`` where ``mask`` is True, else this Value; the gradient flows where kept.

        >>> Value([1.0, 2.0, 3.0]).masked_fill(tensor([False, True, False]), 0.0).tolist()
        [1.0, 0.0, 3.0]
        """
        from .ops import where

        m = mask if isinstance(mask, Value) else tensor(mask)
        if m.dtype != bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {m.dtype}")
        v = value if isinstance(value, Value) else tensor(value, dtype=self.dtype)
        return where(m, v.to(self.dtype), self)

    def cumsum(self, dim: int, *, dtype: Any = None) -> Value:
        """Running sums along ``dim``, as torch's (ints and bools give int64).

        >>> Value([[1.0, 2.0, 3.0]]).cumsum(1).tolist()
        [[1.0, 3.0, 6.0]]
        """
        src = self if dtype is None else self.to(dtype)
        return _wrap(src._node.cumsum(operator.index(dim)), src)

    def flip(self, *dims: Any) -> Value:
        """The elements in reverse order along ``dims``.

        >>> Value([[1.0, 2.0], [3.0, 4.0]]).flip(1).tolist()
        [[2.0, 1.0], [4.0, 3.0]]
        """
        ds = {d % self.ndim for d in _shape_args(dims)} if self.ndim else set()
        return self[tuple(slice(None, None, -1) if d in ds else slice(None)
                          for d in range(self.ndim))]

    def repeat(self, *sizes: Any) -> Value:
        """Tiles this Value ``sizes[i]`` times along dim i, as ``torch.Tensor.repeat``.

        >>> Value([1.0, 2.0]).repeat(2).tolist(), Value([1.0]).repeat(2, 2).shape
        ([1.0, 2.0, 1.0, 2.0], (2, 2))
        """
        reps = _shape_args(sizes)
        if len(reps) < self.ndim:
            raise ValueError(f"repeat: {len(reps)} sizes for a Value of {self.ndim} dims "
                             f"(shape {self.shape}); give at least one per dim")
        shape = (1,) * (len(reps) - self.ndim) + self.shape
        x = self.reshape(shape)
        # Insert a dim before each, expand it to the count, then merge each pair.
        inter = [s for pair in zip([1] * len(shape), shape) for s in pair]
        big = [s for pair in zip(reps, shape) for s in pair]
        return x.reshape(inter).expand(*big).reshape([r * s for r, s in zip(reps, shape)])

    def roll(self, shifts: Any, dims: Any = None) -> Value:
        """Shifts the elements ``shifts`` places along ``dims`` (the flattened Value when
        None), wrapping around, as ``torch.roll``.

        >>> Value([1.0, 2.0, 3.0]).roll(1).tolist()
        [3.0, 1.0, 2.0]
        """
        from .ops import cat

        if dims is None:
            return self.reshape(-1).roll(shifts, 0).reshape(self.shape)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        if len(shifts) != len(dims):
            raise ValueError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
        out = self
        for k, d in zip(shifts, dims):
            n = out.shape[d]
            if n == 0:
                continue
            k %= n
            if k:
                key = [slice(None)] * out.ndim
                key[d] = slice(n - k, None)
                tail = out[tuple(key)]
                key[d] = slice(None, n - k)
                out = cat([tail, out[tuple(key)]], dim=d)
        return out

    # Last in the class: below these, `float`, `int` and `bool` would name the methods.
    def float(self) -> Value:
        return self.to(float32)

    def double(self) -> Value:
        return self.to(float64)

    def long(self) -> Value:
        return self.to(int64)

    def int(self) -> Value:
        return self.to(int32)

    def bool(self) -> Value:
        return self.to(bool_)


# micrograd's symbols for the ops it has (its `_op` strings).
_MICROGRAD_OPS = {"add": "+", "mul": "*", "pow": "**", "relu": "ReLU", "sub": "-", "div": "/",
                  "matmul": "@"}


class _Size(int):
    """An int (numpy's ``size``) that, called, gives torch's ``size()``: the shape, or the
    length of one dim."""

    _shape: tuple[int, ...]

    def __new__(cls, n: int, shape: Sequence[int]) -> _Size:
        self = super().__new__(cls, n)
        self._shape = tuple(shape)
        return self

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self._shape
        d = operator.index(dim)
        if not -len(self._shape) <= d < max(len(self._shape), 1):
            raise IndexError(f"size: dim {d} is out of range for {len(self._shape)} dims")
        return self._shape[d]


def _is_basic(key: Any) -> bool:
    """A key that makes a view (ints, slices, None, Ellipsis), not a copy."""
    items = key if type(key) is tuple else (key,)
    return all(k is None or k is Ellipsis or type(k) in (int, slice) for k in items)


def _arrays(x: Any) -> Any:
    """Values (also inside lists and tuples) as their numpy arrays, for numpy functions."""
    if isinstance(x, Value):
        return x.numpy()
    if isinstance(x, (list, tuple)):
        return type(x)(map(_arrays, x))
    return x


def _needs_graph(x: Any) -> bool:
    if isinstance(x, Value):
        return x.requires_grad
    if isinstance(x, (list, tuple)):
        return any(_needs_graph(v) for v in x)
    return False


def _select_all(value: Any, like: Value) -> Value:
    """``value`` broadcast over ``like``'s shape, to overwrite ``like`` (``fill_``, ``copy_``,
    the random fills). When the write is recorded it is chosen by ``where``, so that
    ``like``'s gradient is exactly 0 and ``value``'s is g summed back; otherwise it is a
    broadcast view, written without a copy."""
    v = (value if isinstance(value, Value) else tensor(value)).to(like.dtype)
    if not (is_grad_enabled() and (like.requires_grad or v.requires_grad)):
        return v.expand(like.shape)
    from .ops import where

    return where(tensor(True), v, like)


def _unary_inplace(name: str, reads_self: bool) -> Callable[[Value], Value]:
    def method(self: Value) -> Value:
        return self._inplace(name + "_", lambda v: getattr(v, name)(), None, reads_self)

    method.__name__ = method.__qualname__ = name + "_"
    method.__doc__ = f"``{name}`` in place."
    return method


# exp, tanh, sigmoid, sqrt and relu differentiate through their output, neg through
# nothing: none of them needs the old value kept.
for _name, _reads in [("neg", False), ("exp", False), ("tanh", False), ("sigmoid", False),
                      ("sqrt", False), ("relu", False), ("log", True), ("abs", True),
                      ("square", True), ("sin", True), ("cos", True), ("log1p", True),
                      ("reciprocal", False), ("sign", False)]:
    setattr(Value, _name + "_", _unary_inplace(_name, _reads))


class ValuesIndices(NamedTuple):
    """What ``max(dim)``, ``min(dim)``, ``sort`` and ``topk`` return, as torch's
    ``return_types``: unpack it (``v, i = x.max(1)``) or use ``.values`` and ``.indices``."""

    values: Value
    indices: Value


# numpy functions that only read the data: given a Value, they get its array.
# numpy's operator ufuncs, as (method, reflected method): `array + value` is a Value op.
_UFUNC_METHODS = {
    "add": ("__add__", "__radd__"), "subtract": ("__sub__", "__rsub__"),
    "multiply": ("__mul__", "__rmul__"), "divide": ("__truediv__", "__rtruediv__"),
    "true_divide": ("__truediv__", "__rtruediv__"),
    "floor_divide": ("__floordiv__", "__rfloordiv__"),
    "remainder": ("__mod__", "__rmod__"), "power": ("__pow__", "__rpow__"),
    "matmul": ("__matmul__", "__rmatmul__"),
    "less": ("__lt__", "__gt__"), "less_equal": ("__le__", "__ge__"),
    "greater": ("__gt__", "__lt__"), "greater_equal": ("__ge__", "__le__"),
    "equal": ("__eq__", "__eq__"), "not_equal": ("__ne__", "__ne__"),
    "bitwise_and": ("__and__", "__rand__"), "bitwise_or": ("__or__", "__ror__"),
    "bitwise_xor": ("__xor__", "__rxor__"),
}

_DATA_ONLY = frozenset({
    np.shape, np.ndim, np.size, np.result_type, np.shares_memory, np.may_share_memory,
    np.allclose, np.isclose, np.array_equal, np.array_equiv, np.array2string, np.array_repr,
    np.array_str, np.copy, np.save, np.savez, np.savez_compressed, np.count_nonzero,
})


def _rebuild(data: np.ndarray, requires_grad: bool, grad: np.ndarray | None) -> Value:
    v = Value(data, requires_grad=requires_grad)
    if grad is not None:
        v.grad = grad
    return v


def from_dlpack(x: Any) -> Value:
    """A Value from any DLPack producer (numpy, PyTorch, JAX), sharing its memory when the
    producer's array is contiguous float32/float64 (else one copy).

    >>> from_dlpack(np.ones(2)).shape
    (2,)
    """
    return Value(np.from_dlpack(x), requires_grad=False)


def _correction(correction: float | None, unbiased: bool | None, ddof: float | None) -> float:
    if correction is not None:
        return float(correction)
    if ddof is not None:
        return float(ddof)
    if unbiased is not None:
        return 1.0 if unbiased else 0.0
    return 1.0


Tensor = Value
_BY_NAME = {d.name: d for d in _DTYPES}


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False,
           device: Any = None) -> Value:
    """Like ``torch.tensor``: a new leaf Value with its own copy of the data, not requiring
    grad unless asked. Python ints give int64, bools bool, floats the default dtype; numpy
    arrays keep their dtype. (``Value(array)`` instead shares a suitable array's memory.)

    >>> tensor([1.0, 2.0]).requires_grad, tensor([1, 2]).dtype
    (False, dtype('int64'))
    """
    if device is not None:
        check_device(device)
    arr = _as_array(data, dtype, floats=False)
    return _wrap(_core.Node.from_numpy(arr, bool(requires_grad), False))  # share=False: a copy


def set_num_threads(n: int) -> None:
    """Sets how many threads one large kernel (matmul) may use, as ``torch.set_num_threads``.

    With 1, kernels run on the calling thread, so several Python threads (which release the
    GIL in large kernels) each use their own core.

    >>> set_num_threads(1); get_num_threads()
    1
    >>> set_num_threads(0)  # back to every core
    """
    if operator.index(n) < 0:
        raise ValueError(f"set_num_threads: n must be >= 0, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The threads one large kernel may use.

    >>> get_num_threads() >= 1
    True
    """
    return _core.get_num_threads()


def is_grad_enabled() -> bool:
    """Whether ops record a graph in this thread (False inside ``no_grad``).

    >>> with no_grad(): is_grad_enabled()
    False
    """
    return _core.is_grad_enabled()


class _GradMode(contextlib.ContextDecorator):
    _on = True

    def __init__(self) -> None:
        self._saved: list[bool] = []  # a stack, so one instance can nest (recursion)

    def __enter__(self) -> None:
        self._saved.append(_core.set_grad_enabled(self._on))

    def __exit__(self, *exc: object) -> None:
        _core.set_grad_enabled(self._saved.pop())


class no_grad(_GradMode):
    """Records no graph inside the block (or the decorated function). Per thread.

    >>> x = Value([1.0])
    >>> with no_grad(): (x * 2).requires_grad
    False
    """

    _on = False


class inference_mode(_GradMode):
    """torch's ``inference_mode``: here the same as ``no_grad`` (records no graph). Also a
    decorator; ``inference_mode(False)`` records as usual.

    >>> x = Value([1.0])
    >>> with inference_mode(): (x * 2).requires_grad
    False
    """

    _on = False

    def __init__(self, mode: bool = True) -> None:
        super().__init__()
        self._on = not mode


class enable_grad(_GradMode):
    """Turns recording back on inside a ``no_grad`` block.

    >>> x = Value([1.0])
    >>> with no_grad():
    ...     with enable_grad(): (x * 2).requires_grad
    True
    """

    _on = True
