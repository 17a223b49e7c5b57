"""A seeded random-API fuzzer for mikagrad, run in a subprocess by tests/test_fuzz.py.

    python tests/fuzz_driver.py --seed 0 --calls 20000 [--trace FILE]

Each call picks a random API entry point (construction, creation, elementwise math,
reductions, shape ops, indexing, matmul, losses, autograd, nn, optim, save/load) and random
arguments: random shapes (0-d, size 0, size 1), both dtypes, random dims and indices, and on
purpose many invalid ones (out-of-range dims, wrong shapes, strings, None, NaN, huge sizes).
A pool of live Values feeds later calls, so graphs grow, get backpropagated, and get dropped.

Every call runs inside ``except BaseException`` and is classified:

* ``ok``: it returned; each Value it returned must agree with its own ``.data`` (shape, dtype);
* a documented error class (TypeError, ValueError incl. ShapeError and SerializationError,
  IndexError, KeyError, MemoryError, GradError, ZeroDivisionError);
* OverflowError for a Python int too large for a float or for a C long (``x + 10**400``,
  ``x.sum(dim=1 << 70)``) is counted apart as "numpy parity": numpy raises the same for the
  same inputs (``np.ones(3) + 10**400``, ``np.sum(a, axis=1 << 70)``);
* anything else is a violation: pyo3's PanicException (a BaseException), RuntimeError that is
  not a GradError, AttributeError, SystemError, other OverflowErrors, ...

The driver prints one JSON line: calls made, outcome counts per class, and the first
violations with a description of the call. With ``--trace`` it appends each call's
description to a file before making it, so that a call that kills the process (a signal)
can be named. The run is deterministic for a seed.

Huge requests (``act_huge``) must raise MemoryError or stay lazy views. A result with more than
``MAX_KEEP`` elements, or any dim longer than that, is checked but not kept in the pool: a
later reduction over a lazy view of 2**40 elements would be a legitimate, hours-long loop.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import time
import warnings

import numpy as np

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import nn, optim
from mikagrad.engine import Value

DOCUMENTED = (TypeError, ValueError, IndexError, KeyError, MemoryError, mg.GradError,
              ZeroDivisionError, mg.GradcheckError)
MAX_KEEP = 4096  # elements; bigger results are checked but not kept in the pool
POOL = 24
ORIGIN: dict[int, int] = {}  # id of a pooled Value -> the call that made it (for repros)


class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        mg.manual_seed(seed)
        self.pool: list[Value] = []
        self.modules: list[nn.Module] = []
        self.counts: dict[str, int] = {}
        self.violations: list[dict] = []
        self.reshaped: set[int] = set()  # Values whose .data was swapped for another shape
        self.call = 0

    # ---- random arguments ----------------------------------------------------------------

    def side(self) -> int:
        r = self.r.random()
        if r < 0.02:
            return self.r.choice([-1, -3, 1 << 40, 1 << 62, 2**64 + 1])
        return self.r.choice([0, 1, 1, 2, 2, 3, 3, 4, 5])

    def shape(self, hostile: bool = True) -> tuple:
        nd = self.r.choice([0, 1, 1, 2, 2, 3, 4])
        if hostile:
            return tuple(self.side() for _ in range(nd))
        return tuple(self.r.choice([0, 1, 2, 3, 4]) for _ in range(nd))

    def dtype(self):
        r = self.r.random()
        if r < 0.45:
            return np.float32
        if r < 0.9:
            return np.float64
        return self.r.choice([None, np.int64, np.float16, np.bool_, np.complex64, "float32",
                              "float64", "f8", "nope", object])

    def number(self):
        r = self.r.random()
        if r < 0.6:
            return self.r.uniform(-3, 3)
        return self.r.choice([0, 1, -1, 2, 0.0, -0.0, 0.5, 1e-30, -1e-30, 1000.0, -1000.0,
                              1e308, math.inf, -math.inf, math.nan, True, 10**30, -(10**400),
                              np.float32(2.5), np.float64(-1.5), np.int64(3)])

    def elements(self, shape) -> np.ndarray:
        a = np.array(self.np.standard_normal(shape) * self.r.choice([1, 1, 3, 1000, 1e-30]))
        if a.size and self.r.random() < 0.15:
            flat = a.reshape(-1)
            for _ in range(self.r.randint(1, 3)):
                flat[self.r.randrange(flat.size)] = self.r.choice(
                    [np.nan, np.inf, -np.inf, 0.0, -0.0])
        return a

    def array(self, shape=None) -> np.ndarray:
        shape = self.shape(hostile=False) if shape is None else shape
        a = self.elements(shape)
        r = self.r.random()
        if r < 0.4:
            return a.astype(np.float32)
        if r < 0.8:
            return a
        kind = self.r.choice(["int", "bool", "f16", "complex", "str", "object", "datetime",
                              "noncontig", "fortran", "readonly"])
        if kind == "int":
            return (a * 3).astype(np.int64) if np.all(np.isfinite(a)) else np.zeros(shape, int)
        if kind == "bool":
            return a > 0
        if kind == "f16":
            return a.astype(np.float16)
        if kind == "complex":
            return a.astype(np.complex128)
        if kind == "str":
            return a.astype(str)
        if kind == "object":
            return a.astype(object)
        if kind == "datetime":
            return np.zeros(shape, dtype="datetime64[s]")
        if kind == "noncontig":
            big = self.elements(tuple(2 * s for s in shape))
            return big[tuple(slice(None, None, 2) for _ in shape)]
        if kind == "fortran":
            return np.asfortranarray(a)
        a.setflags(write=False)
        return a

    def data(self):
        """Anything a user might pass to Value(...)."""
        r = self.r.random()
        if r < 0.55:
            return self.array()
        if r < 0.7:
            return self.number()
        if r < 0.85:
            return self.array().tolist()
        return self.r.choice([
            [[1.0, 2.0], [3.0]], [1.0, [2.0]], "abc", b"ab", None, 1 + 2j, object(), {"a": 1},
            [1.0, None], [1.0, "a"], (), [], [[]], [[], []], {1.0}, np.float32(1.5),
            np.array(3.0), [Value(1.0), Value(2.0)], [np.ones(2), np.ones(3)], range(4),
            np.ma.masked_array([1.0, 2.0], mask=[0, 1]), np.matrix([[1.0, 2.0]]),
        ])

    def value(self) -> Value:
        if self.pool and self.r.random() < 0.85:
            return self.r.choice(self.pool)
        a = self.array(self.shape(hostile=False))
        if a.dtype.kind != "f" or a.dtype.itemsize < 4:
            a = a.astype(np.float64) if a.dtype.kind in "biuf" else self.elements(a.shape)
        return Value(np.array(a), requires_grad=self.r.random() < 0.8)

    def operand(self, like: Value):
        r = self.r.random()
        if r < 0.45:
            return self.value()
        if r < 0.6:
            # same shape, or a broadcastable one
            return Value(self.elements(self.broadcastable(like.shape)).astype(
                self.r.choice([np.float32, np.float64])))
        if r < 0.75:
            return self.number()
        if r < 0.9:
            return self.array(self.broadcastable(like.shape))
        return self.r.choice(["a", None, [1.0, 2.0], [[1.0]], object(), 1j, (1, 2)])

    def broadcastable(self, shape) -> tuple:
        out = [s if self.r.random() < 0.7 else self.r.choice([1, s, 0, 2]) for s in shape]
        if self.r.random() < 0.3:
            out = out[self.r.randint(0, len(out)):]
        if self.r.random() < 0.2:
            out = [self.r.choice([1, 2])] + out
        return tuple(out)

    def dim(self, nd: int):
        r = self.r.random()
        if r < 0.75 and nd:
            return self.r.randint(-nd, nd - 1)
        if r < 0.85:
            return self.r.choice([nd, -nd - 1, 7, -9, 0, -1])
        return self.r.choice([None, 1.5, "a", [0], (0, 0), np.int64(0), 1 << 70])

    def dims(self, nd: int):
        r = self.r.random()
        if r < 0.3:
            return None
        if r < 0.7:
            return self.dim(nd)
        k = self.r.randint(0, max(1, nd))
        return tuple(self.dim(nd) if self.r.random() < 0.2 else
                     self.r.randint(-nd, nd - 1) if nd else 0 for _ in range(k))

    def index_item(self, n: int):
        r = self.r.random()
        if r < 0.3:
            return self.r.randint(-n - 1, n) if self.r.random() < 0.95 else 1 << 40
        if r < 0.6:
            def bound():
                return self.r.choice([None, self.r.randint(-n - 2, n + 2)])
            step = self.r.choice([None, None, 1, 2, -1, -2, 3, 0])
            return slice(bound(), bound(), step)
        if r < 0.7:
            return None
        if r < 0.75:
            return Ellipsis
        if r < 0.87:
            k = self.r.randint(0, 4)
            return [self.r.randint(-n - 1, n) for _ in range(k)]
        if r < 0.95:
            return self.np.random(self.r.choice([n, n, n + 1, max(0, n - 1)])) > 0.5
        return self.r.choice([1.5, "a", np.array([0.5]), np.int64(0), True, [True, False],
                              np.zeros((1, 1), np.int64), []])

    def key(self, shape):
        k = self.r.randint(1, len(shape) + 2)
        items = [self.index_item(shape[i] if i < len(shape) else 1) for i in range(k)]
        if len(items) == 1 and self.r.random() < 0.5:
            return items[0]
        return tuple(items)

    def reshape_target(self, shape):
        n = int(np.prod(shape, dtype=np.int64)) if all(s >= 0 for s in shape) else 0
        r = self.r.random()
        if r < 0.4 and n > 0:
            out, rest = [], n
            for p in (2, 3, 5, 7):
                while rest % p == 0 and self.r.random() < 0.7:
                    out.append(p)
                    rest //= p
            out.append(rest)
            self.r.shuffle(out)
            if self.r.random() < 0.4:
                out[self.r.randrange(len(out))] = -1
            return tuple(out)
        if r < 0.5:
            return (-1,)
        return self.shape()

    # ---- actions: each returns (description, thunk) ----------------------------------------

    def act_construct(self):
        d, dt, rg = self.data(), self.dtype(), self.r.random() < 0.5
        f = self.r.choice(["Value", "tensor", "Value_dtype"])
        if f == "Value":
            return f"Value({_short(d)}, requires_grad={rg})", lambda: Value(d, requires_grad=rg)
        if f == "tensor":
            return f"tensor({_short(d)}, dtype={dt})", lambda: mg.tensor(d, dtype=dt)
        return f"Value({_short(d)}, dtype={dt})", lambda: Value(d, dtype=dt)

    def act_create(self):
        shape, dt = self.shape(), self.dtype()
        rg = self.r.random() < 0.3
        name = self.r.choice(["zeros", "ones", "full", "rand", "randn", "eye", "arange",
                              "linspace", "zeros_like", "ones_like", "full_like", "rand_like",
                              "randn_like", "randperm"])
        if name in ("zeros", "ones", "rand", "randn"):
            form = self.r.random() < 0.5
            f = getattr(mg, name)
            if form:
                return f"{name}(*{shape}, dtype={dt})", lambda: f(*shape, dtype=dt,
                                                                 requires_grad=rg)
            return f"{name}({shape}, dtype={dt})", lambda: f(shape, dtype=dt, requires_grad=rg)
        if name == "full":
            v = self.number()
            return f"full({shape}, {v!r})", lambda: mg.full(shape, v, dtype=dt)
        if name == "eye":
            n, m = self.side(), self.r.choice([None, self.side()])
            return f"eye({n}, {m})", lambda: mg.eye(n, m, dtype=dt)
        if name == "arange":
            # small ranges here; act_huge asks for huge ones
            a, b = self.r.uniform(-5, 5), self.r.uniform(-5, 5)
            step = self.r.choice([1, 0.5, -1, 0, 0.3, math.nan, math.inf, -0.25])
            return f"arange({a}, {b}, {step})", lambda: mg.arange(a, b, step, dtype=dt)
        if name == "linspace":
            a, b = self.number(), self.number()
            n = self.r.choice([0, 1, 2, 5, -1, 3.5])
            return f"linspace({a!r}, {b!r}, {n!r})", lambda: mg.linspace(a, b, n, dtype=dt)
        if name == "randperm":
            n = self.r.choice([0, 1, 5, 20])
            return f"randperm({n})", lambda: mg.randperm(n)
        x = self.value()
        f = getattr(mg, name)
        if name == "full_like":
            v = self.number()
            return f"full_like({x.shape}, {v!r})", lambda: f(x, v, dtype=dt)
        return f"{name}({x.shape}, dtype={dt})", lambda: f(x, dtype=dt)

    def act_unary(self):
        x = self.value()
        name = self.r.choice(["exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid",
                              "relu", "gelu", "softplus", "isnan", "square", "__neg__",
                              "__pos__", "__abs__", "leaky_relu", "clamp", "clip", "pow",
                              "to", "float", "double", "detach"])
        if name == "leaky_relu":
            s = self.number()
            return f"{_v(x)}.leaky_relu({s!r})", lambda: x.leaky_relu(s)
        if name in ("clamp", "clip"):
            lo = self.r.choice([None, self.number()])
            hi = self.r.choice([None, self.number()])
            return f"{_v(x)}.{name}({lo!r}, {hi!r})", lambda: getattr(x, name)(lo, hi)
        if name == "pow":
            p = self.number()
            return f"{_v(x)} ** {p!r}", lambda: x**p
        if name == "to":
            dt = self.dtype()
            return f"{_v(x)}.to({dt})", lambda: x.to(dt)
        return f"{_v(x)}.{name}()", lambda: getattr(x, name)()

    def act_binary(self):
        x = self.value()
        o = self.operand(x)
        name = self.r.choice(["+", "-", "*", "/", "**", "@", "<", "<=", ">", ">=", "==",
                              "!=", "maximum", "minimum", "where", "dot", "cat", "stack"])
        reflected = self.r.random() < 0.3
        ops = {
            "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
            "/": lambda a, b: a / b, "**": lambda a, b: a**b, "@": lambda a, b: a @ b,
            "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
            "maximum": mg.maximum, "minimum": mg.minimum, "dot": mg.dot,
            "where": lambda a, b: mg.where(self_cond, a, b),
            "cat": lambda a, b: mg.cat([a, b], dim=cat_dim),
            "stack": lambda a, b: mg.stack([a, b], dim=cat_dim),
        }
        self_cond = self.r.choice([x > 0, np.ones(x.shape, bool), True,
                                   self.np.random(self.broadcastable(x.shape)) > 0.5])
        cat_dim = self.dim(x.ndim)
        f = ops[name]
        a, b = (o, x) if reflected else (x, o)
        return f"{_short(a)} {name} {_short(b)}", lambda: f(a, b)

    def act_reduce(self):
        x = self.value()
        name = self.r.choice(["sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax",
                              "argmin", "softmax", "log_softmax", "any", "all"])
        keep = self.r.choice([False, True, None, 1])
        if name in ("softmax", "log_softmax"):
            d = self.dim(x.ndim)
            return f"{_v(x)}.{name}({d!r})", lambda: getattr(x, name)(d)
        if name in ("any", "all"):
            return f"{_v(x)}.{name}()", lambda: getattr(x, name)()
        if name in ("argmax", "argmin"):
            d = self.r.choice([None, self.dim(x.ndim)])
            return f"{_v(x)}.{name}({d!r}, {keep})", lambda: getattr(x, name)(d, keepdim=keep)
        d = self.dims(x.ndim)
        spelling = self.r.random() < 0.5
        if name in ("var", "std"):
            c = self.r.choice([None, 0, 1, 2, 5, -1, 0.5])
            u = self.r.choice([None, True, False])
            return (f"{_v(x)}.{name}({d!r}, {keep}, correction={c}, unbiased={u})",
                    lambda: getattr(x, name)(d, keep, correction=c, unbiased=u))
        if spelling:
            return f"{_v(x)}.{name}(axis={d!r}, keepdims={keep})", (
                lambda: getattr(x, name)(axis=d, keepdims=keep))
        return f"{_v(x)}.{name}({d!r}, {keep})", lambda: getattr(x, name)(d, keep)

    def act_shape(self):
        x = self.value()
        nd = x.ndim
        name = self.r.choice(["reshape", "view", "reshape_tuple", "flatten", "squeeze",
                              "unsqueeze", "transpose", "permute", "T", "mT", "expand",
                              "broadcast_to", "split", "chunk", "len", "iter"])
        if name in ("reshape", "view"):
            t = self.reshape_target(x.shape)
            return f"{_v(x)}.{name}(*{t})", lambda: getattr(x, name)(*t)
        if name == "reshape_tuple":
            t = self.reshape_target(x.shape)
            return f"{_v(x)}.reshape({t})", lambda: x.reshape(t)
        if name == "flatten":
            a, b = self.dim(nd), self.dim(nd)
            return f"{_v(x)}.flatten({a!r}, {b!r})", lambda: x.flatten(a, b)
        if name == "squeeze":
            d = self.dims(nd)
            return f"{_v(x)}.squeeze({d!r})", lambda: x.squeeze(d)
        if name == "unsqueeze":
            d = self.dim(nd + 1)
            return f"{_v(x)}.unsqueeze({d!r})", lambda: x.unsqueeze(d)
        if name == "transpose":
            a, b = self.dim(nd), self.dim(nd)
            return f"{_v(x)}.transpose({a!r}, {b!r})", lambda: x.transpose(a, b)
        if name == "permute":
            p = list(range(nd))
            self.r.shuffle(p)
            if self.r.random() < 0.3:
                p = [self.dim(nd) for _ in range(self.r.randint(0, nd + 1))]
            return f"{_v(x)}.permute(*{p})", lambda: x.permute(*p)
        if name in ("T", "mT"):
            return f"{_v(x)}.{name}", lambda: getattr(x, name)
        if name in ("expand", "broadcast_to"):
            t = list(self.broadcastable(x.shape))
            t = [self.r.choice([1, 2, 3]) for _ in range(self.r.randint(0, 2))] + list(x.shape)
            if self.r.random() < 0.3:
                t = list(self.shape())
            if self.r.random() < 0.3 and t:
                t[self.r.randrange(len(t))] = -1
            if name == "expand":
                return f"{_v(x)}.expand(*{t})", lambda: x.expand(*t)
            return f"{_v(x)}.broadcast_to({t})", lambda: x.broadcast_to(t)
        if name == "split":
            s = self.r.choice([1, 2, 3, 0, -1, [1, 1], [2, 0, 1], [5]])
            d = self.dim(nd)
            return f"{_v(x)}.split({s!r}, {d!r})", lambda: x.split(s, d)
        if name == "chunk":
            c, d = self.r.choice([1, 2, 3, 0, -2]), self.dim(nd)
            return f"{_v(x)}.chunk({c}, {d!r})", lambda: x.chunk(c, d)
        if name == "len":
            return f"len({_v(x)})", lambda: len(x)
        return f"list({_v(x)})", lambda: list(x)[:4]

    def act_index(self):
        x = self.value()
        r = self.r.random()
        if r < 0.75:
            k = self.key(x.shape)
            return f"{_v(x)}[{_short(k)}]", lambda: x[k]
        if r < 0.85:
            m = x > 0 if self.r.random() < 0.7 else self.value() > 0
            return f"{_v(x)}[mask]", lambda: x[m]
        d = self.dim(x.ndim)
        shape = list(x.shape)
        if shape and isinstance(d, int) and -len(shape) <= d < len(shape):
            shape[d] = self.r.randint(0, 3)
        if self.r.random() < 0.2:
            shape = list(self.shape(hostile=False))
        n = x.shape[d] if isinstance(d, int) and x.ndim and -x.ndim <= d < x.ndim else 1
        low = -1 if self.r.random() < 0.1 else 0
        idx = self.np.integers(low, max(low + 1, n + (self.r.random() < 0.1)), size=shape)
        if self.r.random() < 0.1:
            idx = idx.astype(np.float64) + self.r.choice([0.0, 0.5])
        return f"{_v(x)}.gather({d!r}, idx{tuple(shape)})", lambda: x.gather(d, idx)

    def act_matmul(self):
        x = self.value()
        r = self.r.random()
        if r < 0.5 and x.ndim:
            k = x.shape[-1]
            shape = self.broadcastable(x.shape[:-2]) + (k, self.r.randint(0, 4))
            if self.r.random() < 0.3:
                shape = (k,)
            o = Value(self.elements(shape).astype(self.r.choice([np.float32, np.float64])))
        else:
            o = self.operand(x)
        reflected = self.r.random() < 0.3
        a, b = (o, x) if reflected else (x, o)
        form = self.r.choice(["@", "matmul", "dot"])
        f = {"@": lambda: a @ b, "matmul": lambda: mg.matmul(a, b), "dot": lambda: mg.dot(a, b)}
        return f"{_short(a)} {form} {_short(b)}", f[form]

    def act_loss(self):
        x = self.value()
        name = self.r.choice(["mse_loss", "l1_loss", "cross_entropy", "nll_loss",
                              "binary_cross_entropy", "binary_cross_entropy_with_logits",
                              "hinge_loss"])
        red = self.r.choice(["mean", "sum", "none", "bad"])
        if name in ("cross_entropy", "nll_loss"):
            n = x.shape[0] if x.ndim else 1
            c = x.shape[-1] if x.ndim else 1
            t = self.r.choice([
                self.np.integers(0, max(1, c), size=n),
                self.np.integers(-2, c + 2, size=n),
                self.np.random(x.shape),
                self.np.integers(0, max(1, c), size=n + 1).astype(np.float64),
                ["a"] * n, None, self.value(),
            ])
        elif self.r.random() < 0.7:
            t = self.np.random(x.shape).astype(self.r.choice([np.float32, np.float64]))
        else:
            t = self.operand(x)
        inp = x.sigmoid() if name == "binary_cross_entropy" and self.r.random() < 0.7 else x
        f = getattr(F, name)
        return f"F.{name}({_v(x)}, {_short(t)}, {red!r})", lambda: f(inp, t, reduction=red)

    def act_autograd(self):
        x = self.value()
        name = self.r.choice(["backward", "backward", "backward_sum", "backward_gradient",
                              "zero_grad", "requires_grad_", "grad_get", "grad_set",
                              "data_get", "data_set", "no_grad_op", "detach_backward",
                              "graph", "item", "tolist", "repr", "bool", "float", "hash",
                              "array", "gradcheck"])
        if name == "backward":
            return f"{_v(x)}.backward()", lambda: x.backward()
        if name == "backward_sum":
            return f"{_v(x)}.sum().backward()", lambda: x.sum().backward()
        if name == "backward_gradient":
            g = self.r.choice([self.np.standard_normal(x.shape),
                               self.np.standard_normal(self.broadcastable(x.shape)),
                               Value(self.np.standard_normal(x.shape)), "a", 1.0,
                               np.full(x.shape, np.nan)])
            return f"{_v(x)}.backward(gradient={_short(g)})", lambda: x.backward(gradient=g)
        if name == "zero_grad":
            return f"{_v(x)}.zero_grad()", x.zero_grad
        if name == "requires_grad_":
            on = self.r.choice([True, False])
            return f"{_v(x)}.requires_grad_({on})", lambda: x.requires_grad_(on)
        if name == "grad_get":
            return f"{_v(x)}.grad", lambda: x.grad
        if name == "grad_set":
            g = self.r.choice([None, self.np.standard_normal(x.shape),
                               self.np.standard_normal(self.broadcastable(x.shape)), "a"])
            return f"{_v(x)}.grad = {_short(g)}", lambda: setattr(x, "grad", g)
        if name == "data_get":
            return f"{_v(x)}.data", lambda: x.data
        if name == "data_set":
            d = self.r.choice([self.np.standard_normal(x.shape),
                               self.np.standard_normal(self.broadcastable(x.shape)),
                               x.data * 2, "a", None])

            def set_data():
                old = x.shape
                x.data = d
                if x.shape != old:  # allowed, as in PyTorch; the old .grad is now stale
                    self.reshaped.add(id(x))
            return f"{_v(x)}.data = {_short(d)}", set_data
        if name == "no_grad_op":
            def op():
                with mg.no_grad():
                    return (x * 2).exp()
            return f"no_grad: ({_v(x)} * 2).exp()", op
        if name == "detach_backward":
            return f"{_v(x)}.detach().sum().backward()", lambda: x.detach().sum().backward()
        if name == "graph":
            return f"{_v(x)}.parents/_prev/op", lambda: (x.parents, x._prev, x.op, x.grad_fn,
                                                        x.is_leaf)
        if name == "gradcheck":
            if x.size > 16:
                return "gradcheck(skipped)", lambda: None
            y = Value(np.array(x.data, dtype=np.float64))
            return f"gradcheck(tanh, {_v(y)})", lambda: mg.gradcheck(lambda v: v.tanh(), y)
        f = {"item": x.item, "tolist": x.tolist, "repr": lambda: repr(x),
             "bool": lambda: bool(x), "float": lambda: float(x), "hash": lambda: hash(x),
             "array": lambda: np.asarray(x)}[name]
        return f"{name}({_v(x)})", f

    def act_nn(self):
        r = self.r.random()
        if r < 0.3 or not self.modules:
            i, o = self.r.choice([1, 2, 3, 0, -1]), self.r.choice([1, 2, 4, 0])
            kind = self.r.choice(["Linear", "MLP", "Sequential", "LayerNorm", "Embedding"])

            def make():
                if kind == "Linear":
                    m = nn.Linear(i, o)
                elif kind == "MLP":
                    m = nn.MLP(i, [o, 2])
                elif kind == "Sequential":
                    m = nn.Sequential(nn.Linear(i, o), nn.Tanh(), nn.Linear(o, 1))
                elif kind == "LayerNorm":
                    m = nn.LayerNorm(i)
                else:
                    m = nn.Embedding(max(i, 0) + 2, o)
                self.modules.append(m)
                del self.modules[:-4]
                return m
            return f"nn.{kind}({i}, {o})", make
        m = self.r.choice(self.modules)
        x = self.value()
        what = self.r.choice(["forward", "forward", "step_sgd", "step_adam", "state_dict",
                              "load_state_dict", "zero_grad"])
        if what == "forward":
            if isinstance(m, nn.Embedding):
                idx = self.np.integers(-1, 4, size=self.shape(hostile=False))
                return f"{type(m).__name__}(idx)", lambda: m(idx)
            return f"{type(m).__name__}({_v(x)})", lambda: m(x)
        if what in ("step_sgd", "step_adam"):
            lr = self.r.choice([0.1, 0.0, -1.0, math.nan])
            cls = optim.SGD if what == "step_sgd" else optim.Adam

            def step():
                opt = cls(m.parameters(), lr=lr)
                opt.step()
                opt.zero_grad()
            return f"{cls.__name__}(lr={lr}).step()", step
        if what == "state_dict":
            return "state_dict()", m.state_dict
        if what == "zero_grad":
            return "module.zero_grad()", m.zero_grad
        other = self.r.choice(self.modules)
        strict = self.r.random() < 0.5
        return "load_state_dict(other)", lambda: m.load_state_dict(other.state_dict(),
                                                                   strict=strict)

    def act_serialize(self):
        x = self.value()
        state = {"w": x, "n": self.r.randint(0, 9), "nested": [x.data, {"k": 1.5}]}
        buf = io.BytesIO()
        try:
            mg.save(state, buf)
        except BaseException as e:  # noqa: BLE001 - save of a pool Value must work
            return "save(pool state)", _raiser(e)
        data = bytearray(buf.getvalue())
        kind = self.r.choice(["intact", "truncate", "flip", "insert", "zero_tail"])
        if kind == "truncate":
            data = data[: self.r.randint(0, len(data))]
        elif kind == "flip":
            for _ in range(self.r.randint(1, 8)):
                data[self.r.randrange(len(data))] ^= 1 << self.r.randrange(8)
        elif kind == "insert":
            i = self.r.randrange(len(data))
            data[i:i] = bytes(self.r.randrange(256) for _ in range(self.r.randint(1, 16)))
        elif kind == "zero_tail":
            i = self.r.randrange(len(data))
            data[i:] = bytes(len(data) - i)
        blob = bytes(data)
        return f"load({kind} archive)", lambda: mg.load(io.BytesIO(blob))

    def act_huge(self):
        """Huge requests that must raise MemoryError (or be lazy views) and never abort."""
        x = self.value()
        r = self.r.random()
        big = self.r.choice([1 << 40, 1 << 45, 1 << 62])
        if r < 0.3:
            name = self.r.choice(["zeros", "ones", "rand", "randn"])
            return f"{name}({big})", lambda: getattr(mg, name)(big)
        if r < 0.4:
            return f"eye({big >> 20})", lambda: mg.eye(big >> 20)
        if r < 0.5:
            return f"arange(0, {float(big)})", lambda: mg.arange(0, float(big))
        if r < 0.55:
            return f"linspace(0, 1, {big})", lambda: mg.linspace(0, 1, big)
        if r < 0.7:  # an empty tensor with a huge dim: reductions to a huge or empty result
            name = self.r.choice(["sum", "mean", "max", "softmax", "logsumexp", "exp", "T"])
            d = self.r.choice([0, 1])
            e = mg.zeros(big, 0) if self.r.random() < 0.5 else mg.zeros(0, big)
            if name == "T":
                return f"zeros{e.shape}.T.exp()", lambda: e.T.exp()
            if name == "exp":
                return f"zeros{e.shape}.exp()", lambda: e.exp()
            return f"zeros{e.shape}.{name}({d})", lambda: getattr(e, name)(d)
        # a lazy view: fine to make; any copy of it must raise MemoryError
        t = (big,) + x.shape if x.size else (big, 0)
        op = self.r.choice(["shape", "exp", "add", "reshape", "to", "matmul", "cat", "gt"])
        f = {"shape": lambda v: v.shape, "exp": lambda v: v.exp(), "add": lambda v: v + 1.0,
             "reshape": lambda v: v.reshape(-1), "to": lambda v: v.to(np.float32),
             "matmul": lambda v: v @ v.mT if v.ndim >= 2 else v @ v,
             "cat": lambda v: mg.cat([v, v]), "gt": lambda v: v > 0}[op]
        return f"{_v(x)}.expand{t} {op}", lambda: f(x.expand(*t))

    ACTIONS = [
        ("act_construct", 8), ("act_create", 6), ("act_unary", 14), ("act_binary", 16),
        ("act_reduce", 12), ("act_shape", 12), ("act_index", 10), ("act_matmul", 6),
        ("act_loss", 5), ("act_autograd", 10), ("act_nn", 3), ("act_serialize", 1),
        ("act_huge", 2),
    ]

    # ---- the loop ------------------------------------------------------------------------

    def keep(self, out) -> None:
        vals = out if isinstance(out, (list, tuple)) else [out]
        for v in vals:
            if not isinstance(v, Value):
                continue
            d = v.data
            if tuple(d.shape) != tuple(v.shape) or d.dtype != v.dtype:
                raise AssertionError(f"Value shape/dtype {v.shape}/{v.dtype} but .data is "
                                     f"{d.shape}/{d.dtype}")
            if v.dtype not in (np.bool_, np.int32, np.int64, np.float32, np.float64):
                raise AssertionError(f"Value of dtype {v.dtype}")
            if v.size <= MAX_KEEP and all(n <= MAX_KEEP for n in v.shape):
                if len(self.pool) >= POOL:
                    ORIGIN.pop(id(self.pool.pop(self.r.randrange(len(self.pool)))), None)
                ORIGIN[id(v)] = self.call
                self.pool.append(v)

    def run(self, calls: int, trace) -> None:
        names = [n for n, w in self.ACTIONS for _ in range(w)]
        for i in range(calls):
            self.call = i
            if i % 250 == 0:  # cut the graphs now and then, so that backward stays cheap
                ORIGIN.clear()
                self.pool = [p.detach().requires_grad_(self.r.random() < 0.8)
                             if p.size and p.is_floating_point() else p.detach()
                             for p in self.pool]
            act = self.r.choice(names)
            desc, thunk = getattr(self, act)()
            if trace is not None:
                os.write(trace, f"{i} {act}: {desc}\n".encode(errors="replace"))
            try:
                out = thunk()
                self.keep(out)
                outcome = "ok"
            except DOCUMENTED as e:
                outcome = type(e).__name__
            except OverflowError as e:
                if "to float" in str(e) or "C long" in str(e):
                    outcome = "OverflowError (numpy parity)"
                else:
                    outcome = self.violation(i, act, desc, e)
            except BaseException as e:  # noqa: BLE001 - classifying is the point
                outcome = self.violation(i, act, desc, e)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if i % 50 == 0:
                self.check_pool(i)

    def violation(self, i: int, act: str, desc: str, e: BaseException) -> str:
        outcome = "VIOLATION " + type(e).__module__ + "." + type(e).__name__
        if sum(v["class"] == outcome and v["action"] == act for v in self.violations) < 5:
            self.violations.append({"call": i, "action": act, "desc": desc[:300],
                                    "class": outcome,
                                    "error": f"{type(e).__name__}: {str(e)[:300]}"})
        return outcome

    def check_pool(self, i: int) -> None:
        """Every gradient in the pool has its Value's shape and dtype."""
        for p in self.pool:
            if id(p) in self.reshaped:
                continue
            try:
                g = p.grad
                bad = g is not None and (g.shape != p.shape or g.dtype != p.dtype)
                why = f"grad {g.shape}/{g.dtype} for a Value {p.shape}/{p.dtype}" if bad else ""
            except BaseException as e:  # noqa: BLE001
                bad, why = True, f"reading .grad raised {type(e).__name__}: {e}"
            if bad:
                outcome = "VIOLATION invariant"
                self.counts[outcome] = self.counts.get(outcome, 0) + 1
                if sum(v["class"] == outcome for v in self.violations) < 5:
                    self.violations.append({"call": i, "action": "check_pool", "desc": why,
                                            "class": outcome, "error": why})


def _raiser(e):
    def f():
        raise e
    return f


def _v(x) -> str:
    """V(shape)f|d, and #n: the call that made it (a pool Value), for tracing a repro."""
    if not isinstance(x, Value):
        return _short(x)
    origin = ORIGIN.get(id(x))
    return (f"V{tuple(x.shape)}{'f' if x.dtype == np.float32 else 'd'}"
            + (f"#{origin}" if origin is not None else ""))


def _short(x) -> str:
    if isinstance(x, Value):
        return _v(x)
    if isinstance(x, np.ndarray):
        return f"np{x.shape}{x.dtype}"
    if isinstance(x, tuple):
        return "(" + ", ".join(_short(i) for i in x) + ("," if len(x) == 1 else "") + ")"
    s = repr(x)
    return s if len(s) < 60 else s[:57] + "..."


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--trace", default=None)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    trace = os.open(args.trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if args.trace else None
    fz = Fuzzer(args.seed)
    t0 = time.perf_counter()
    fz.run(args.calls, trace)
    summary = {"seed": args.seed, "calls": args.calls, "seconds": time.perf_counter() - t0,
               "counts": fz.counts, "violations": fz.violations}
    print(json.dumps(summary, sort_keys=True))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
