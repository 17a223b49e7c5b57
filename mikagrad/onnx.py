"""``export``: a model's forward pass as an ONNX file, for onnxruntime, TensorRT and the
engines that run ONNX (the ``onnx`` package is an optional extra: ``mikagrad[onnx]``).

The forward pass runs once on the example inputs with the graph recorded; each recorded
node becomes one or a few ONNX nodes, parameters and buffers become initializers named by
their ``state_dict`` keys, and the output is checked with ``onnx.checker``. Two checking
traces, on other input values and other sizes along ``dynamic_axes`` (n + 1 and 2n + 3),
catch what one trace cannot see. A tensor computed from the input's values outside the
graph (a comparison's mask, an argmax fed to indexing), or a size folded into a constant,
would otherwise be frozen into the file; each handler compares what it reads with the
checking traces, and the graphs built against the two must be the same, so these are
errors that name the op. An op with no ONNX mapping is an error naming it too.

>>> import io, mikagrad as mg
>>> model = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.ReLU())
>>> proto = export(model, mg.randn(2, 3), io.BytesIO(),
...                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
>>> [n.op_type for n in proto.graph.node]
['Transpose', 'MatMul', 'Add', 'Relu', 'Identity']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .engine import Value

__all__ = ["ExportError", "export"]


class ExportError(ValueError):
    """The model's forward pass cannot be written as ONNX: an op with no mapping, or a
    computation that a recorded graph cannot carry (see the message)."""


_ELEM = {"float32": 1, "uint8": 2, "int8": 3, "int16": 5, "int32": 6, "int64": 7, "bool": 9,
         "float16": 10, "float64": 11}
_INT64_MAX = 2**63 - 1


# Settings a handler itself compares with the checking trace (as sizes, or as inputs).
_SHAPED = {"merged", "steps", "index", "cond", "source"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("mikagrad.onnx.export needs the onnx package: "
                          "pip install 'mikagrad[onnx]'") from None
    return onnx


# ---- tracing -----------------------------------------------------------------------------


class _Trace:
    """One recorded forward pass: the nodes in topological order and the graph's inputs."""

    def __init__(self, model: Any, inputs: tuple[Value, ...]) -> None:
        from .engine import enable_grad

        self.inputs = tuple(
            Value(np.array(x.numpy()), requires_grad=True) if x._is_float else x
            for x in inputs)
        with enable_grad():
            out = model(*self.inputs)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        self.outputs = [o for o in outs if o is not None]
        for o in self.outputs:
            if not isinstance(o, Value):
                raise ExportError(f"export: the model returned {type(o).__name__}; ONNX "
                                  "outputs must be Values")
        self.order = _topological([o._node for o in self.outputs])


def _topological(roots: list[Any]) -> list[Any]:
    seen: set[int] = set()
    order: list[Any] = []
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node.id in seen:
            continue
        seen.add(node.id)
        stack.append((node, True))
        stack.extend((p, False) for p in reversed(node.parents) if p.id not in seen)
    return order


def _same(a: Any, b: Any) -> bool:
    """Settings equal in value (NaN equal to NaN), arrays in shape too."""
    if isinstance(a, list) and a and isinstance(a[0], np.ndarray):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _ptr(a: np.ndarray) -> tuple[Any, ...]:
    """What makes an array the same memory seen the same way (a transpose is not)."""
    return (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)


# ---- the graph builder -------------------------------------------------------------------


class _Graph:
    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx, self.opset = onnx, opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.n = 0
        self.consts: dict[Any, str] = {}

    def fresh(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def add(self, op: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> Any:
        outs = [self.fresh(op) for _ in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), outs,
                                                     name=self.fresh(op + "_node"), **attrs))
        return outs[0] if n_out == 1 else outs

    def init(self, name: str, array: np.ndarray) -> str:
        # np.array, not ascontiguousarray: that one turns a 0-d constant into shape (1,).
        self.inits.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def const(self, array: Any, dtype: Any = None) -> str:
        a = np.asarray(array, dtype=dtype)
        key = (a.dtype.str, a.shape, a.tobytes())
        if key not in self.consts:
            self.consts[key] = self.init(self.fresh("const"), a)
        return self.consts[key]

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.array(list(values), dtype=np.int64))

    def reshape(self, x: str, target: Sequence[int | None]) -> str:
        """A Reshape to ``target``, where None copies the input's size at that place (ONNX's
        0) and -1 is inferred; a literal 0 (an empty dim) needs ``allowzero``."""
        empty = 0 in target
        if empty and self.opset < 14:
            raise ExportError("export: a reshape to an empty dim needs opset 14 or later")
        if empty and (None in target or -1 in target):
            raise ExportError("export: a reshape to an empty dim beside dims whose sizes "
                              "follow the input's")
        dims = [0 if t is None else t for t in target]
        return self.add("Reshape", [x, self.ints(dims)], **({"allowzero": 1} if empty else {}))

    def cast(self, name: str, dtype: np.dtype) -> str:
        return self.add("Cast", [name], to=_ELEM[np.dtype(dtype).name])

    def reduce(self, op: str, x: str, axes: Sequence[int], keepdims: bool) -> str:
        """``op`` over ``axes``; no axes is no reduction, as in the core (ONNX's default
        would reduce them all)."""
        if not axes:
            return self.add("Identity", [x])
        # ReduceSum takes its axes as an input from opset 13, the others from opset 18.
        if op == "ReduceSum" or self.opset >= 18:
            return self.add(op, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.add(op, [x], keepdims=int(keepdims), axes=list(axes))


def _reshape_target(out: Sequence[int], out2: Sequence[int], src: Sequence[int],
                    src2: Sequence[int]) -> list[int | None] | None:
    """A Reshape target from ``src`` to ``out`` (``src2`` to ``out2`` in the checking trace):
    a size that differs between the traces is copied from the input (None) where the input
    has it at the same place in both, else inferred (-1), which only one dim can be (None
    then: not expressible)."""
    target: list[int | None] = []
    for i, (a, b) in enumerate(zip(out, out2)):
        copy = a != b and i < len(src) and i < len(src2) and src[i] == a and src2[i] == b
        target.append(None if copy else -1 if a != b else a)
    return None if target.count(-1) > 1 else target


class _Ctx:
    """What a handler sees of one recorded node, in the first trace and a checking one."""

    def __init__(self, g: _Graph, node: Any, other: Any, ins: list[str],
                 names: Callable[[Any], str | None],
                 views: Callable[[Any], tuple[str, Any, Any] | None]) -> None:
        self.g, self.node, self.other, self.ins = g, node, other, ins
        self.attrs = node.attrs
        self.other_attrs = other.attrs
        self.shape = tuple(node.shape)
        self.dtype = np.dtype(node.dtype)
        self.in_shapes = [tuple(p.shape) for p in node.parents]
        self.in_dtypes = [np.dtype(p.dtype) for p in node.parents]
        self.names = names
        self.views = views

    def fail(self, why: str) -> ExportError:
        return ExportError(f"export: op '{self.node.op}' (output shape {self.shape}): {why}")

    def dynamic(self, a: Sequence[int], b: Sequence[int]) -> list[bool]:
        if len(a) != len(b):
            raise self.fail("its shape's rank depends on the input")
        return [x != y for x, y in zip(a, b)]

    def reshape_to_out(self, x: str) -> str:
        """``x`` reshaped to this node's shape. A size that follows the input's is copied
        from the input where the input has it at the same place in both traces, else
        inferred (-1), which only one dim can be."""
        self.dynamic(self.shape, self.other.shape)  # the same rank
        target = _reshape_target(self.shape, tuple(self.other.shape), self.in_shapes[0],
                                 tuple(self.other.parents[0].shape))
        if target is None:
            raise self.fail("a reshape that merges or splits dims whose sizes follow the "
                            "input's")
        return self.g.reshape(x, target)

    def saved(self, key: str) -> str:
        """A tensor the op saved (an index, a mask): the graph input it is, or a constant,
        which must then be the same in the other trace."""
        arr = self.attrs[key]
        name = self.names(arr)
        if name is not None:
            return name
        other = self.other_attrs[key]
        view = self.views(arr)
        if view is not None:  # an input reshaped (a view of its memory, in its order)
            target = _reshape_target(arr.shape, other.shape, view[1], view[2])
            if target is None:
                raise self.fail(f"its {key} reshapes an input with more than one dim that "
                                "follows the input's size")
            return self.g.reshape(view[0], target)
        if arr.shape != other.shape or not np.array_equal(arr, other):
            hint = (" (x.max(dim), x.min(dim), sort and topk pick their values with an "
                    "index they compute: use amax/amin for values alone)"
                    if self.node.op == "gather" else "")
            raise self.fail(f"its {key} is computed from the input's values outside the "
                            "recorded graph (by a comparison, argmax, sort, topk or integer "
                            f"arithmetic), so ONNX would freeze it{hint}; compute it before "
                            "the model and pass it in as an input, used as it is or reshaped")
        return self.g.const(arr)


# ---- op handlers: recorded op -> ONNX nodes ------------------------------------------------


_Handler = Callable[[_Ctx], str]
_HANDLERS: dict[str, _Handler] = {}


def _handles(*names: str) -> Callable[[_Handler], _Handler]:
    def deco(f: _Handler) -> _Handler:
        for n in names:
            _HANDLERS[n] = f
        return f
    return deco


def _same_dtype(c: _Ctx, dtype: np.dtype | None = None) -> list[str]:
    """The inputs cast to ``dtype`` (by default the output's) where they differ."""
    want = c.dtype if dtype is None else dtype
    return [x if d == want else c.g.cast(x, want) for x, d in zip(c.ins, c.in_dtypes)]


_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "maximum": "Max",
           "minimum": "Min"}
_COMPARE = {"lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual",
            "eq": "Equal"}


@_handles("add", "sub", "mul", "div", "maximum", "minimum", "pow", "lt", "le", "gt", "ge",
          "eq", "ne", "bitwise_and", "bitwise_or", "bitwise_xor")
def _binary(c: _Ctx) -> str:
    op, g = c.node.op, c.g
    if len(c.ins) == 1:  # a Python scalar folded into the op
        (p,) = c.attrs["params"]
        x = _same_dtype(c)[0]
        k = g.const(np.array(p, dtype=c.dtype))
        return g.add({"add": "Add", "mul": "Mul", "pow": "Pow"}[op], [x, k])
    if op in _BINARY:
        return g.add(_BINARY[op], _same_dtype(c))
    if op == "pow":
        return g.add("Pow", _same_dtype(c))
    common = np.result_type(*c.in_dtypes)
    a, b = _same_dtype(c, common)
    if op in _COMPARE:
        return g.add(_COMPARE[op], [a, b])
    if op == "ne":
        return g.add("Not", [g.add("Equal", [a, b])])
    if common != np.bool_:
        raise c.fail("bitwise ops on integers have no mapping before opset 18")
    return g.add({"bitwise_and": "And", "bitwise_or": "Or", "bitwise_xor": "Xor"}[op], [a, b])


_UNARY = {"neg": "Neg", "abs": "Abs", "sign": "Sign", "exp": "Exp", "log": "Log",
          "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos", "tanh": "Tanh", "sigmoid": "Sigmoid",
          "relu": "Relu", "reciprocal": "Reciprocal", "softplus": "Softplus",
          "isnan": "IsNaN", "isinf": "IsInf"}


@_handles(*_UNARY, "log1p", "gelu", "leaky_relu", "clamp", "isfinite", "bitwise_not")
def _unary(c: _Ctx) -> str:
    op, g = c.node.op, c.g
    params = c.attrs.get("params", [])
    x = c.ins[0]
    if op not in ("isnan", "isinf", "isfinite") and c.in_dtypes[0] != c.dtype:
        x = g.cast(x, c.dtype)  # an int input to a float op
    k = lambda v: g.const(np.array(v, dtype=c.dtype))  # noqa: E731
    def log1p(v: str) -> str:
        # log(u)·v/(u − 1) with u = 1 + v keeps log1p's accuracy for tiny v (v where u = 1).
        u = g.add("Add", [v, k(1.0)])
        d = g.add("Sub", [u, k(1.0)])
        ratio = g.add("Mul", [g.add("Log", [u]), g.add("Div", [v, d])])
        return g.add("Where", [g.add("Equal", [d, k(0.0)]), v, ratio])

    if op == "softplus" and c.dtype == np.float64:
        # max(x, 0) + log1p(e^−|x|): onnxruntime has no float64 Softplus kernel.
        tail = log1p(g.add("Exp", [g.add("Neg", [g.add("Abs", [x])])]))
        return g.add("Add", [g.add("Max", [x, k(0.0)]), tail])
    if op in _UNARY:
        return g.add(_UNARY[op], [x])
    if op == "log1p":
        return log1p(x)
    if op == "gelu":
        if g.opset >= 20:
            return g.add("Gelu", [x])
        erf = g.add("Erf", [g.add("Mul", [x, k(1 / np.sqrt(2.0))])])
        return g.add("Mul", [g.add("Mul", [x, k(0.5)]), g.add("Add", [erf, k(1.0)])])
    if op == "leaky_relu":
        return g.add("LeakyRelu", [x], alpha=float(params[0]))
    if op == "clamp":
        lo, hi = params
        bound = lambda v: g.const(np.array(v, dtype=c.dtype)) if np.isfinite(v) else ""  # noqa: E731
        ins = [x, bound(lo), bound(hi)]
        while ins[-1] == "":
            ins.pop()
        return g.add("Clip", ins)
    if op == "isfinite":
        return g.add("Not", [g.add("Or", [g.add("IsNaN", [x]), g.add("IsInf", [x])])])
    if c.dtype != np.bool_:
        raise c.fail("bitwise_not on integers has no mapping before opset 18")
    return g.add("Not", [x])


@_handles("where")
def _where(c: _Ctx) -> str:
    cond = c.saved("cond")
    if c.attrs["cond"].dtype != np.bool_:
        cond = c.g.cast(cond, np.dtype(np.bool_))
    return c.g.add("Where", [cond, *_same_dtype(c)])


@_handles("matmul")
def _matmul(c: _Ctx) -> str:
    return c.g.add("MatMul", _same_dtype(c))


def _keep(c: _Ctx) -> bool:
    return len(c.shape) == len(c.in_shapes[0]) and len(c.shape) > 0


@_handles("sum", "max", "min", "logsumexp")
def _reduce(c: _Ctx) -> str:
    op = {"sum": "ReduceSum", "max": "ReduceMax", "min": "ReduceMin",
          "logsumexp": "ReduceLogSumExp"}[c.node.op]
    x = _same_dtype(c)[0] if c.node.op == "sum" else c.ins[0]
    return c.g.reduce(op, x, c.attrs["dims"], _keep(c))


@_handles("mean", "var", "std")
def _moment(c: _Ctx) -> str:
    g, x = c.g, c.ins[0]
    dims = c.attrs["dims"]  # the core lists every dim of a whole-tensor reduction
    keep = _keep(c)
    if c.node.op == "mean":
        return g.reduce("ReduceMean", x, dims, keep)
    n = int(np.prod([c.in_shapes[0][d] for d in dims]))
    if c.dynamic(c.in_shapes[0], c.other.parents[0].shape) and any(
            c.dynamic(c.in_shapes[0], c.other.parents[0].shape)[d] for d in dims):
        raise c.fail("a variance over a dim that follows the input's size")
    centred = g.add("Sub", [x, g.reduce("ReduceMean", x, dims, True)])
    sq = g.add("Mul", [centred, centred])
    total = g.reduce("ReduceSum", sq, dims, keep)
    var = g.add("Div", [total, g.const(np.array(max(n - c.attrs["correction"], 0.0),
                                                dtype=c.dtype))])
    return g.add("Sqrt", [var]) if c.node.op == "std" else var


@_handles("softmax", "log_softmax")
def _softmax(c: _Ctx) -> str:
    op = "Softmax" if c.node.op == "softmax" else "LogSoftmax"
    return c.g.add(op, [c.ins[0]], axis=int(c.attrs["dim"]))


@_handles("cumsum")
def _cumsum(c: _Ctx) -> str:
    return c.g.add("CumSum", [c.ins[0], c.g.const(np.array(c.attrs["dim"], dtype=np.int64))])


@_handles("reshape")
def _reshape(c: _Ctx) -> str:
    return c.reshape_to_out(c.ins[0])


@_handles("permute")
def _permute(c: _Ctx) -> str:
    return c.g.add("Transpose", [c.ins[0]], perm=list(c.attrs["perm"]))


@_handles("expand")
def _expand(c: _Ctx) -> str:
    dyn = c.dynamic(c.shape, c.other.shape)
    src = c.in_shapes[0]
    lead = len(c.shape) - len(src)
    target = []
    for i, (s, d) in enumerate(zip(c.shape, dyn)):
        if d and (i < lead or src[i - lead] != s):
            raise c.fail("an expand to a size that follows the input's")
        target.append(1 if d else s)
    return c.g.add("Expand", [c.ins[0], c.g.ints(target)])


@_handles("clone", "contiguous")
def _identity(c: _Ctx) -> str:
    return c.g.add("Identity", [c.ins[0]])


@_handles("to")
def _cast(c: _Ctx) -> str:
    return c.g.cast(c.ins[0], c.dtype)


@_handles("cat")
def _cat(c: _Ctx) -> str:
    return c.g.add("Concat", _same_dtype(c), axis=int(c.attrs["dim"]))


def _steps(attrs: dict[str, Any]) -> list[tuple[int, list[int]]]:
    flat = list(attrs["steps"])
    return [(flat[i], flat[i + 1:i + 5]) for i in range(0, len(flat), 5)]


@_handles("getitem")
def _getitem(c: _Ctx) -> str:
    """Basic indexing, step by step as the core applied it, read in both traces: a slice or
    an index may follow a dynamic size only as a whole dim or counted from the end."""
    g, x = c.g, c.ins[0]
    shape, other = list(c.in_shapes[0]), list(c.other.parents[0].shape)
    mine, theirs = _steps(c.attrs), _steps(c.other_attrs)
    if [k for k, _ in mine] != [k for k, _ in theirs]:
        raise c.fail("indexing that differs for other input sizes")
    for (kind, args), (_, args2) in zip(mine, theirs):
        if kind == 0:  # slice
            dim, start, length, step = args
            _, start2, length2, step2 = args2
            whole = (start, length, step) == (0, shape[dim], 1) and \
                (start2, length2, step2) == (0, other[dim], 1)
            if not whole:
                if (start, length, step) != (start2, length2, step2):
                    raise c.fail(f"a slice of dim {dim} whose bounds follow the input's size "
                                 "(only a whole dim, or fixed bounds, export)")
                last = start + (length - 1) * step
                end = start if length == 0 else last + (1 if step > 0 else -1)
                if end < 0:  # a negative step down to index 0 inclusive
                    end = -_INT64_MAX
                x = g.add("Slice", [x, g.ints([start]), g.ints([end]), g.ints([dim]),
                                    g.ints([step])])
            shape[dim], other[dim] = length, length2
        elif kind == 1:  # select
            dim, index = args[:2]
            index2 = args2[1]
            if index != index2:
                # x[:, -1] on a dynamic dim: the same distance from the end in both traces.
                if shape[dim] - index != other[dim] - index2:
                    raise c.fail(f"an index into dim {dim} that follows the input's size")
                index -= shape[dim]
            x = g.add("Gather", [x, g.const(np.array(index, dtype=np.int64))], axis=dim)
            del shape[dim], other[dim]
        else:  # unsqueeze
            dim = args[0]
            x = g.add("Unsqueeze", [x, g.ints([dim])])
            shape.insert(dim, 1)
            other.insert(dim, 1)
    return x if mine else g.add("Identity", [x])


@_handles("index")
def _index(c: _Ctx) -> str:
    g, x = c.g, c.ins[0]
    dim = int(c.attrs["dim"])
    src = c.attrs.get("source")
    given = None if src is None else c.names(src)
    if given is not None:
        return g.add("Gather", [x, given], axis=dim)
    idx = c.saved("index")
    merged = c.attrs["merged"]
    if list(merged) != list(c.in_shapes[0]):
        if c.dynamic(merged, c.other_attrs["merged"]).count(True):
            raise c.fail("advanced indexing over several dims, one of them following the "
                         "input's size")
        x = g.reshape(x, merged)
    out = g.add("Gather", [x, idx], axis=dim)
    gathered = list(merged)
    gathered[dim] = int(c.attrs["index"].shape[0])
    return out if gathered == list(c.shape) else c.reshape_to_out(out)


@_handles("gather")
def _gather(c: _Ctx) -> str:
    return c.g.add("GatherElements", [c.ins[0], c.saved("index")], axis=int(c.attrs["dim"]))


def _conv_pads(c: _Ctx) -> list[int]:
    return list(c.attrs["pad_lo"]) + list(c.attrs["pad_hi"])


@_handles("conv1d", "conv2d")
def _conv(c: _Ctx) -> str:
    return c.g.add("Conv", _same_dtype(c), strides=list(c.attrs["stride"]), pads=_conv_pads(c),
                   dilations=list(c.attrs["dilation"]), group=int(c.attrs["groups"]))


@_handles("conv_transpose1d", "conv_transpose2d")
def _conv_transpose(c: _Ctx) -> str:
    a = c.attrs
    k = c.in_shapes[1][2:]
    inp = c.in_shapes[0][2:]
    def extra(out: Sequence[int], inp: Sequence[int]) -> list[int]:
        return [o - ((i - 1) * s - lo - hi + d * (kk - 1) + 1) for o, i, s, lo, hi, d, kk in
                zip(out, inp, a["stride"], a["pad_lo"], a["pad_hi"], a["dilation"], k)]

    pad_out = extra(c.shape[2:], inp)
    if pad_out != extra(c.other.shape[2:], c.other.parents[0].shape[2:]):
        raise c.fail("a transposed convolution whose output_padding (output_size) follows "
                     "the input's size")
    return c.g.add("ConvTranspose", _same_dtype(c), strides=list(a["stride"]),
                   pads=_conv_pads(c), dilations=list(a["dilation"]), group=int(a["groups"]),
                   output_padding=pad_out)


def _pool_end_pads(c: _Ctx, shape: Sequence[int], out: Sequence[int]) -> list[int]:
    """End padding that gives the core's output sizes with ONNX's floor rule, so torch's
    ceil_mode (a last window may start in the padding only if it starts inside the input)
    needs no ceil_mode from the runtime."""
    a = c.attrs
    n = len(a["kernel"])
    pads = []
    for i in range(n):
        length, o = shape[2 + i], out[2 + i]
        k, s, p, d = a["kernel"][i], a["stride"][i], a["padding"][i], a["dilation"][i]
        span = d * (k - 1) + 1
        end = max(0, (o - 1) * s + span - length - p)
        if (length + p + end - span) // s + 1 != o:
            raise c.fail("a pooling window the ONNX rule cannot place")
        pads.append(end)
    return pads


@_handles("max_pool1d", "max_pool2d")
def _max_pool(c: _Ctx) -> str:
    a = c.attrs
    pad = list(a["padding"])
    end = pad
    if a["ceil_mode"]:
        end = _pool_end_pads(c, c.in_shapes[0], c.shape)
        if end != _pool_end_pads(c, c.other.parents[0].shape, c.other.shape):
            raise c.fail("ceil_mode pooling of a dim whose size follows the input's")
    return c.g.add("MaxPool", [c.ins[0]], kernel_shape=list(a["kernel"]),
                   strides=list(a["stride"]), pads=pad + end, dilations=list(a["dilation"]))


@_handles("adaptive_max_pool1d", "adaptive_max_pool2d")
def _adaptive_max_pool(c: _Ctx) -> str:
    n = len(c.shape) - 2
    ins, outs = c.in_shapes[0][-n:], c.shape[-n:]
    if any(c.dynamic(c.in_shapes[0], c.other.parents[0].shape)[-n:]):
        raise c.fail("adaptive pooling of a dim whose size follows the input's")
    if any(i % o for i, o in zip(ins, outs)):
        raise c.fail("adaptive max pooling maps to ONNX only when each input size is a "
                     "multiple of the output size")
    k = [i // o for i, o in zip(ins, outs)]
    return c.g.add("MaxPool", [c.ins[0]], kernel_shape=k, strides=k)


@_handles("avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "pad",
          "interpolate")
def _resample(c: _Ctx) -> str:
    """A linear map along each trailing dim (pooling, padding, resizing), as the core runs
    it: per output position, a weighted sum of a few taps of the input (the core's own tap
    tables), each tap a Gather. No dense matrix product, so an inf in the input stays
    where the core puts it, and the sums run in the core's order. Constant padding's fill goes
    in with a Where."""
    g = c.g
    if c.attrs["transpose"]:
        raise c.fail("a backward op")
    taps, weights = c.attrs["taps"], c.attrs["weights"]  # per dim: (out, k), -1 for none
    nd = len(c.shape)
    first = nd - len(taps)
    x = _same_dtype(c)[0]
    for i, (idx, w) in enumerate(zip(taps, weights)):
        axis = first + i
        along = [-1 if d == axis else 1 for d in range(nd)]
        total = None
        for j in range(idx.shape[1]):
            valid = idx[:, j] >= 0
            term = g.add("Gather", [x, g.const(np.where(valid, idx[:, j], 0))], axis=axis)
            if not np.all(w[:, j] == 1.0):
                term = g.add("Mul", [term, g.const(w[:, j].reshape(along), dtype=c.dtype)])
            if not valid.all():
                term = g.add("Where", [g.const(valid.reshape(along)), term,
                                       g.const(np.zeros((), dtype=c.dtype))])
            total = term if total is None else g.add("Add", [total, term])
        if total is None:
            raise c.fail("a map with no taps at all")
        x = total
    holes = np.zeros(c.shape[first:], dtype=bool)
    for i, idx in enumerate(taps):
        empty = ~np.any(idx >= 0, axis=1)
        holes |= empty.reshape([-1 if j == i else 1 for j in range(len(taps))])
    if holes.any():
        fill = g.const(np.array(c.attrs["fill"], dtype=c.dtype))
        x = g.add("Where", [g.const(holes), fill, x])
    return x


@_handles("batch_norm")
def _batch_norm(c: _Ctx) -> str:
    """Running statistics: ONNX's BatchNormalization. Batch statistics (instance norm, or
    ``track_running_stats=False``): the biased mean and variance over all dims but 1."""
    g = c.g
    x = c.ins[0]
    ch = c.in_shapes[0][1]
    rest = iter(c.ins[1:])  # the core's parents: x, then weight and bias where given
    w = next(rest) if c.attrs["has_weight"] else None
    b = next(rest) if c.attrs["has_bias"] else None
    eps = float(c.attrs["eps"])
    if "mean" in c.attrs:
        mean = g.const(np.asarray(c.attrs["mean"], dtype=c.dtype))
        var = g.const(np.asarray(c.attrs["var"], dtype=c.dtype))
        ones, zeros = np.ones(ch, dtype=c.dtype), np.zeros(ch, dtype=c.dtype)
        return g.add("BatchNormalization", [x, w or g.const(ones), b or g.const(zeros), mean,
                                            var], epsilon=eps)
    axes = [0, *range(2, len(c.shape))]
    centred = g.add("Sub", [x, g.reduce("ReduceMean", x, axes, True)])
    var = g.reduce("ReduceMean", g.add("Mul", [centred, centred]), axes, True)
    std = g.add("Sqrt", [g.add("Add", [var, g.const(np.array(eps, dtype=c.dtype))])])
    out = g.add("Div", [centred, std])
    shape = [ch] + [1] * (len(c.shape) - 2)
    if w is not None:
        out = g.add("Mul", [out, g.reshape(w, shape)])
    if b is not None:
        out = g.add("Add", [out, g.reshape(b, shape)])
    return out


# ---- export ------------------------------------------------------------------------------


def _as_inputs(example_inputs: Any) -> tuple[Value, ...]:
    xs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    out = []
    for i, x in enumerate(xs):
        if not isinstance(x, Value):
            raise TypeError(f"export: example input {i} is a {type(x).__name__}, not a Value")
        out.append(x)
    return tuple(out)


# How the checking traces change each dynamic size n: by one, and to 2n + 3, so that a size
# rounded down by strides (n // 2 is the same for n = 8 and 9) still differs in one of them.
_GROWTH = (lambda n: n + 1, lambda n: 2 * n + 3)


def _other_inputs(xs: tuple[Value, ...], dynamic: dict[int, set[int]],
                  trace: int) -> tuple[Value, ...]:
    """Inputs for checking trace ``trace``: other values, and other sizes on dynamic dims."""
    rng = np.random.default_rng(12345 + trace)
    grow = _GROWTH[trace]
    out = []
    for i, x in enumerate(xs):
        a = x.numpy()
        shape = tuple(grow(s) if d in dynamic.get(i, ()) else s for d, s in enumerate(a.shape))
        if a.dtype.kind == "f":
            finite = a[np.isfinite(a)]
            scale = float(np.std(finite)) + 1 if finite.size else 1.0
            b = (rng.standard_normal(shape) * scale + rng.standard_normal()).astype(a.dtype)
        elif a.dtype == np.bool_:
            b = rng.random(shape) < 0.5
        else:
            # Indices stay in their range but take at least two values, so that a mask or
            # an index computed from them differs from the first trace's.
            lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
            lo, hi = min(lo, 0), max(hi, lo + 1)
            b = rng.integers(lo, hi + 1, size=shape).astype(a.dtype)
            b.flat[:2] = [lo, hi][:b.size]  # both ends, so `ids != 0` masks something
        out.append(Value(b, requires_grad=False))
    return tuple(out)


def export(model: Any, example_inputs: Any, path: Any, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None,
           dynamic_axes: dict[str, Any] | None = None, opset: int = 17) -> Any:
    """Writes ``model``'s forward pass on ``example_inputs`` (a Value or a tuple of them) to
    ``path`` (a str, a ``pathlib.Path`` or a binary file) as an ONNX model, and returns the
    ``onnx.ModelProto``.

    As ``torch.onnx.export``: ``input_names`` and ``output_names`` name the graph's inputs
    and outputs (by default ``input``/``output``, numbered when there are several);
    ``dynamic_axes`` maps a name to the dims (a list, or a dict of dim to symbolic name) that
    may change size, such as ``{"input": {0: "batch"}, "output": {0: "batch"}}``. The model
    runs in ``eval()`` mode for the trace (and is put back as it was). ``opset`` is 13 to 20.

    >>> import io, mikagrad as mg
    >>> proto = export(mg.nn.Linear(2, 1), mg.randn(5, 2), io.BytesIO(), input_names=["x"])
    >>> [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]
    (['x'], ['output'])
    """
    onnx = _onnx()
    if not 13 <= opset <= 20:
        raise ValueError(f"export: opset must be between 13 and 20, got {opset}")
    xs = _as_inputs(example_inputs)
    in_names = list(input_names) if input_names else (
        ["input"] if len(xs) == 1 else [f"input_{i}" for i in range(len(xs))])
    if len(in_names) != len(xs):
        raise ValueError(f"export: {len(in_names)} input_names for {len(xs)} inputs")
    given: dict[str, dict[int, str]] = {}
    for key, dims in (dynamic_axes or {}).items():
        given[key] = (dict(dims) if isinstance(dims, dict)
                      else {int(d): f"{key}_dim{d}" for d in dims})
    axes: dict[str, dict[int, str]] = {}

    def named_axes(name: str, ndim: int) -> None:
        """``name``'s dynamic dims, negative ones counted from the end."""
        axes[name] = {}
        for d, label in given.get(name, {}).items():
            if not -ndim <= d < ndim:
                raise ValueError(f"export: dynamic_axes gives dim {d} of {name!r}, which "
                                 f"has {ndim} dims")
            axes[name][d % ndim] = label

    for name, x in zip(in_names, xs):
        named_axes(name, x.ndim)
    dyn_in = {i: set(axes[n]) for i, n in enumerate(in_names)}

    modes = [(m, m.training) for m in model.modules()] if hasattr(model, "modules") else []
    if hasattr(model, "eval"):
        model.eval()
    try:
        first = _Trace(model, xs)
        checks = []
        for trace in range(len(_GROWTH)):
            other_inputs = _other_inputs(xs, dyn_in, trace)
            try:
                checks.append(_Trace(model, other_inputs))
            except Exception as e:
                shapes = [tuple(x.shape) for x in other_inputs]
                raise ExportError(
                    f"export: the forward pass fails on other inputs of shapes {shapes} "
                    f"(other values, and other sizes on the dynamic axes), which the export "
                    f"traces to tell sizes and constants apart: {type(e).__name__}: {e}"
                ) from e
    finally:
        for m, mode in modes:  # each module back in its own mode
            m.training = mode
    for second in checks:
        if [n.op for n in first.order] != [n.op for n in second.order] or \
                len(first.outputs) != len(second.outputs):
            raise ExportError("export: the forward pass records different ops for other "
                              "input values or sizes (control flow on the input); ONNX needs "
                              "one graph")
    out_names = list(output_names) if output_names else (
        ["output"] if len(first.outputs) == 1 else
        [f"output_{i}" for i in range(len(first.outputs))])
    if len(out_names) != len(first.outputs):
        raise ValueError(f"export: {len(out_names)} output_names for "
                         f"{len(first.outputs)} outputs")
    for name, v in zip(out_names, first.outputs):
        named_axes(name, v.ndim)
    unknown = set(given) - set(in_names) - set(out_names)
    if unknown:
        raise ValueError(f"export: dynamic_axes names {sorted(unknown)}, which are neither "
                         "inputs nor outputs")

    state = {}
    if hasattr(model, "_named_leaves"):
        state = {v._node.id: k for k, v in model._named_leaves()}

    def build(second: _Trace) -> Any:
        """The graph, its sizes and constants told apart against the checking trace."""
        g = _Graph(onnx, opset)
        names: dict[int, str] = {}
        by_ptr: dict[Any, str] = {}
        by_base: dict[Any, tuple[str, Any, Any]] = {}
        for i, (name, x, traced) in enumerate(zip(in_names, xs, first.inputs)):
            names[traced._node.id] = name
            if not x._is_float:
                a = x.numpy()
                by_ptr[_ptr(a)] = name
                if a.flags.c_contiguous:
                    key = (a.__array_interface__["data"][0], a.size, a.dtype.str)
                    by_base[key] = (name, a.shape, tuple(second.inputs[i].shape))

        def lookup(arr: np.ndarray) -> str | None:
            return by_ptr.get(_ptr(arr))

        used_int_inputs: set[str] = set()

        def tracked(arr: np.ndarray) -> str | None:
            name = lookup(arr)
            if name is not None:
                used_int_inputs.add(name)
            return name

        def views(arr: np.ndarray) -> tuple[str, Any, Any] | None:
            """The integer input whose memory ``arr`` reads in the same order, with its
            shapes in both traces."""
            if not arr.flags.c_contiguous:
                return None
            found = by_base.get((arr.__array_interface__["data"][0], arr.size, arr.dtype.str))
            if found is not None:
                used_int_inputs.add(found[0])
            return found

        for node, other in zip(first.order, second.order):
            if node.id in names:
                continue
            if not node.parents:  # a parameter, a buffer or a constant made in forward
                arr = node.data()
                if node.id in state:
                    names[node.id] = g.init(state[node.id], np.array(arr))
                else:
                    o = other.data()
                    if arr.shape != o.shape or not np.array_equal(arr, o, equal_nan=True):
                        raise ExportError(
                            f"export: a tensor of shape {arr.shape} made inside forward depends "
                            "on the input's values or size outside the recorded graph (an "
                            "integer computation, or a tensor built from its shape); ONNX would "
                            "freeze it")
                    names[node.id] = g.const(np.array(arr))
                continue
            # An in-place op's result written into its Value's memory is that result.
            handler = _identity if "written" in node.attrs else _HANDLERS.get(node.op)
            if handler is None:
                raise ExportError(f"export: op '{node.op}' has no ONNX mapping (output shape "
                                  f"{tuple(node.shape)})")
            ins = [names[p.id] for p in node.parents]
            used_int_inputs.update(n for n in ins if n in in_names)
            ctx = _Ctx(g, node, other, ins, tracked, views)
            for key, v in ctx.attrs.items():
                if key not in _SHAPED and not _same(v, ctx.other_attrs[key]):
                    shown = v if not isinstance(v, (np.ndarray, list)) or len(v) < 8 else "..."
                    raise ctx.fail(f"its setting {key!r} ({shown}) differs for other input values "
                                   "or sizes: it depends on the input (a mean over a dim named in "
                                   "dynamic_axes, or statistics computed outside the graph), "
                                   "which ONNX would freeze")
            names[node.id] = handler(ctx)

        unused = [n for n, x in zip(in_names, xs) if not x._is_float and n not in used_int_inputs]
        if unused:
            raise ExportError(f"export: integer input {unused[0]!r} reaches no recorded op "
                              "directly (what is computed from it inside forward is not "
                              "recorded); use it as it is, as an index (x[idx], Embedding, "
                              "gather) or an operand")

        def value_info(name: str, v: Value, v2: Value) -> Any:
            dims: list[Any] = list(v.shape)
            for d, label in axes.get(name, {}).items():
                dims[d] = label
            for d, (a, b) in enumerate(zip(v.shape, v2.shape)):
                if a != b and not isinstance(dims[d], str):
                    raise ExportError(f"export: dim {d} of {name!r} follows the input's size; "
                                      f"name it in dynamic_axes")
            return onnx.helper.make_tensor_value_info(name, _ELEM[np.dtype(v.dtype).name], dims)

        outputs = []
        for name, v, v2 in zip(out_names, first.outputs, second.outputs):
            g.nodes.append(onnx.helper.make_node("Identity", [names[v._node.id]], [name],
                                                 name=g.fresh("output")))
            outputs.append(value_info(name, v, v2))
        inputs = [value_info(n, x, x2) for n, x, x2 in zip(in_names, first.inputs, second.inputs)]
        return onnx.helper.make_graph(g.nodes, type(model).__name__, inputs, outputs, g.inits)

    graph, *more = [build(second) for second in checks]
    for other in more:
        if other != graph:
            diff = next((f"{a.op_type} ({a.name})" for a, b in zip(graph.node, other.node)
                         if a != b), "its initializers or shapes")
            raise ExportError(f"export: the graph depends on the input's sizes in a way the "
                              f"traces disagree on, first at {diff}: a size, index or "
                              "constant computed from a dynamic size (n // 2, say) would be "
                              "frozen")

    proto = onnx.helper.make_model(graph, producer_name="mikagrad",
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    onnx.checker.check_model(proto, full_check=True)
    if hasattr(path, "write"):
        path.write(proto.SerializeToString())
    else:
        import os

        with open(os.fspath(path), "wb") as f:
            f.write(proto.SerializeToString())
    return proto
