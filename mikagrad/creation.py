"""Creation functions, as in PyTorch. The random ones draw from a ``Generator`` (torch's
MT19937 and its distributions, so a seed gives torch's numbers), by default the process-wide
one that ``manual_seed`` seeds."""

from __future__ import annotations

import operator
import os
from typing import Any

import numpy as np

from . import _core
from .engine import Value, _dtype, _shape_args, _wrap, check_device, get_default_dtype, tensor

__all__ = [
    "zeros", "ones", "full", "eye", "arange", "linspace", "rand", "randn", "randperm",
    "randint", "normal", "multinomial", "bernoulli", "zeros_like", "ones_like", "full_like",
    "rand_like", "randn_like", "randint_like", "empty", "empty_like", "manual_seed",
    "initial_seed", "seed", "Generator", "default_generator",
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


# A new torch Generator starts from this seed (torch.Generator().initial_seed()).
_TORCH_DEFAULT_SEED = 67280421310721


class Generator:
    """torch's CPU random generator: the MT19937 engine and its seed. Pass one as
    ``generator=`` to the random functions for a stream of its own; ``manual_seed`` gives the
    numbers torch gives for that seed.

    >>> g = Generator().manual_seed(2147483647)
    >>> [round(v, 4) for v in rand(3, generator=g).tolist()]
    [0.7081, 0.3542, 0.1054]
    """

    __slots__ = ("_g",)

    def __init__(self, device: Any = "cpu") -> None:
        check_device(device)
        self._g = _core.Generator(_TORCH_DEFAULT_SEED)

    @property
    def device(self) -> str:
        return "cpu"

    def manual_seed(self, seed: int) -> Generator:
        self._g.manual_seed(_seed_bits(seed))
        return self

    def initial_seed(self) -> int:
        return self._g.initial_seed()

    def seed(self) -> int:
        """Seeds from the OS's entropy and returns the seed, as torch's."""
        s = int.from_bytes(os.urandom(8), "little") & (2**63 - 1)
        self._g.manual_seed(s)
        return s

    def get_state(self) -> Value:
        """The whole state as an int64 Value, for ``set_state`` (not torch's byte layout)."""
        return Value(np.array(self._g.get_state(), dtype=np.uint64).view(np.int64),
                     requires_grad=False)

    def set_state(self, state: Any) -> Generator:
        self._g.set_state(np.asarray(state, dtype=np.int64).view(np.uint64).tolist())
        return self


def _seed_bits(seed: Any) -> int:
    """torch's rule: ``int(seed)``, in [-2**63, 2**64); negative ones wrap."""
    s = int(seed)
    if not -(2**63) <= s < 2**64:
        raise ValueError(f"manual_seed: seed {s} is out of range [-2**63, 2**64)")
    return s & (2**64 - 1)


default_generator = Generator.__new__(Generator)
default_generator._g = _core.Generator.default()


def _stream(dtype: Any, explicit: bool) -> str:
    """The dtype whose torch stream a draw into ``dtype`` follows. MikaGrad's float64
    default stands in for torch's float32 one: a draw into it follows torch's float32
    stream (exact in float64), so seeded code gives torch's numbers. A dtype given
    explicitly to a creation function draws its own stream; an existing Value's dtype
    (``normal_``, probabilities) cannot tell, and counts as the default."""
    d = np.dtype(dtype)
    return "float32" if not explicit and d == get_default_dtype() == np.float64 else d.name


def _draw(dtype: Any) -> tuple[str, str]:
    """(the dtype whose stream to draw, the dtype to return)."""
    out = _dt(dtype)
    return _stream(out, explicit=dtype is not None), out


def _drawn(node: Any, out: str, requires_grad: bool) -> Value:
    v = _wrap(node)
    if v.dtype.name != out:
        v = v.to(out)
    if requires_grad:
        v.requires_grad_(True)
    return v


def _check(device: Any) -> None:
    if device is not None:
        check_device(device)


def _gen(generator: Generator | None) -> Any:
    if generator is None:
        return None
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a mikagrad.Generator, got {type(generator).__name__}")
    return generator._g


def manual_seed(seed: int) -> Generator:
    """Seeds the process-wide generator (rand, randn, randint, randperm, multinomial, nn.init,
    Dropout, the data helpers' shuffling) and returns it, as torch's.

    >>> _ = manual_seed(0); a = rand(3).tolist()
    >>> _ = manual_seed(0); rand(3).tolist() == a
    True
    """
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    """The seed the process-wide generator was last seeded with (torch's default to start).

    >>> _ = manual_seed(7); initial_seed()
    7
    """
    return default_generator.initial_seed()


def seed() -> int:
    """Seeds the process-wide generator from the OS's entropy and returns the seed.

    >>> s = seed(); initial_seed() == s
    True
    """
    return default_generator.seed()


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Value:
    """A Value of zeros; the shape is given as ints or as one tuple or list.

    >>> zeros(2, 3).shape, zeros((4,)).shape
    ((2, 3), (4,))
    """
    _check(device)
    return _wrap(_core.full(_sizes(shape), 0.0, _dt(dtype), requires_grad))


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Value:
    """A Value of ones; the shape is given as ints or as one tuple or list.

    >>> ones(2, 3).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    _check(device)
    return _wrap(_core.full(_sizes(shape), 1.0, _dt(dtype), requires_grad))


def full(shape: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False,
         device: Any = None) -> Value:
    """A Value of ``shape`` (an int or a tuple) filled with ``fill_value``; without a dtype,
    an int fill gives int64 and a bool fill bool, as in torch.

    >>> full((2, 2), 7.0).tolist(), full(2, 3).dtype
    ([[7.0, 7.0], [7.0, 7.0]], dtype('int64'))
    """
    _check(device)
    if isinstance(fill_value, (np.generic, Value)):
        fill_value = fill_value.item()
    if not isinstance(fill_value, (bool, int, float)):
        raise TypeError(f"full: fill_value must be a number, got {type(fill_value).__name__}")
    if dtype is None:
        dtype = _number_dtype(fill_value)
    return _wrap(_core.full(_sizes((shape,)), fill_value, _dt(dtype), requires_grad))


def empty(*shape: Any, dtype: Any = None, requires_grad: bool = False,
          device: Any = None) -> Value:
    """torch's ``empty``: a new Value of ``shape``; MikaGrad's memory starts zeroed.

    >>> empty(2, 3).shape
    (2, 3)
    """
    return zeros(*shape, dtype=dtype, requires_grad=requires_grad, device=device)


def empty_like(v: Value, dtype: Any = None, requires_grad: bool = False,
               device: Any = None) -> Value:
    """``empty`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> empty_like(zeros(2, dtype="float32")).dtype
    dtype('float32')
    """
    return zeros_like(v, dtype=dtype, requires_grad=requires_grad, device=device)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False,
        device: Any = None) -> Value:
    """An ``n`` by ``m`` (default ``n``) Value with ones on the diagonal, zeros elsewhere.

    >>> eye(2, 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    _check(device)
    return _wrap(_core.eye(_size("eye", n), _size("eye", n if m is None else m), _dt(dtype),
                          requires_grad))


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False, device: Any = None) -> Value:
    """Values from ``start`` up to but excluding ``end``, ``step`` apart; ``arange(n)`` is 0..n-1.
    Integer arguments give int64, as in torch.

    >>> arange(4).tolist(), arange(1, 2, 0.25).tolist()
    ([0, 1, 2, 3], [1.0, 1.25, 1.5, 1.75])
    """
    _check(device)
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
             requires_grad: bool = False, device: Any = None) -> Value:
    """``steps`` evenly spaced Values from ``start`` to ``end``, both ends included.

    >>> linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    _check(device)
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    return _wrap(_core.linspace(float(start), float(end), _size("linspace", steps), _dt(dtype),
                               requires_grad))


def rand(*shape: Any, generator: Generator | None = None, dtype: Any = None,
         requires_grad: bool = False, device: Any = None) -> Value:
    """Uniform on [0, 1), as torch's (the same numbers for the same seed).

    >>> _ = manual_seed(0); x = rand(1000)
    >>> x.shape, x.min().item() >= 0, x.max().item() < 1
    ((1000,), True, True)
    """
    _check(device)
    draw, out = _draw(dtype)
    return _drawn(_core.rand(_sizes(shape), 0.0, 1.0, draw, False, _gen(generator)), out,
                  requires_grad)


def randn(*shape: Any, generator: Generator | None = None, dtype: Any = None,
          requires_grad: bool = False, device: Any = None) -> Value:
    """Standard normal (mean 0, std 1), as torch's (the same numbers for the same seed).

    >>> _ = manual_seed(0); x = randn(10000)
    >>> round(x.mean().item(), 1), round(x.std().item(), 1)
    (0.0, 1.0)
    """
    _check(device)
    draw, out = _draw(dtype)
    return _drawn(_core.randn(_sizes(shape), 0.0, 1.0, draw, False, _gen(generator)), out,
                  requires_grad)


def randint(low: int, high: Any = None, size: Any = None, *, generator: Generator | None = None,
            dtype: Any = None, requires_grad: bool = False, device: Any = None) -> Value:
    """Integers uniform on [low, high) (int64 unless ``dtype``), as torch's; ``randint(high,
    size)`` starts at 0.

    >>> g = Generator().manual_seed(3); randint(0, 1000, (5,), generator=g).tolist()
    [986, 48, 737, 667, 360]
    """
    _check(device)
    if size is None:
        if high is None:
            raise TypeError("randint: missing the size argument")
        low, high, size = 0, low, high
    if requires_grad:
        raise TypeError("randint: only float tensors can require gradients")
    shape = _sizes((size,) if isinstance(size, (int, np.integer)) else tuple(size))
    name = "int64" if dtype is None else _dtype(dtype).name
    return _wrap(_core.randint(operator.index(low), operator.index(high), shape, name,
                               _gen(generator)))


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None,
             device: Any = None) -> Value:
    """A random order of ``range(n)`` as an int64 Value, as torch's.

    >>> _ = manual_seed(0); sorted(randperm(5).tolist())
    [0, 1, 2, 3, 4]
    """
    _check(device)
    out = _wrap(_core.randperm(_size("randperm", n), _gen(generator)))
    return out if dtype is None else out.to(dtype)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *,
           generator: Generator | None = None, dtype: Any = None,
           requires_grad: bool = False, device: Any = None) -> Value:
    """Normal samples, as torch's: numbers ``mean``, ``std`` and a ``size``, or Values (each
    element drawn from its own mean and std: a standard normal, times std, plus mean).

    >>> g = Generator().manual_seed(0); normal(2.0, 0.5, (3,), generator=g).shape
    (3,)
    """
    _check(device)
    if isinstance(mean, Value) or isinstance(std, Value):
        like = mean if isinstance(mean, Value) else std
        shape = np.broadcast_shapes(tuple(getattr(mean, "shape", ())),
                                    tuple(getattr(std, "shape", ())))
        z = randn(shape, generator=generator,
                  dtype=None if like.dtype == get_default_dtype() else like.dtype)
        return z * std + mean
    if size is None:
        raise TypeError("normal: give a size with number arguments")
    if std < 0:
        raise ValueError(f"normal: std must be >= 0, got {std}")
    dims = _sizes((size,) if isinstance(size, (int, np.integer)) else tuple(size))
    draw, out = _draw(dtype)
    return _drawn(_core.randn(dims, float(mean), float(std), draw, False, _gen(generator)), out,
                  requires_grad)


def multinomial(input: Value, num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> Value:
    """Indices drawn from the rows of ``input`` (weights, not necessarily normalised), as
    torch's: for one sample or without replacement its exponential race, else a search of
    the cumulative sums.

    >>> p = tensor([0.0, 1.0, 0.0]); multinomial(p, 2, replacement=True).tolist()
    [1, 1]
    """
    return _wrap(_core.multinomial(_as_drawn(_val(input))._node, operator.index(num_samples),
                                   bool(replacement), _gen(generator)))


def bernoulli(input: Value, p: float | None = None, *,
              generator: Generator | None = None) -> Value:
    """1 with probability ``input`` (or ``p``), else 0, in input's dtype, as torch's.

    >>> bernoulli(tensor([0.0, 1.0])).tolist()
    [0.0, 1.0]
    """
    x = _val(input)
    probs = x if p is None else full_like(x, p)
    out = _wrap(_core.bernoulli(_as_drawn(probs)._node, _gen(generator)))
    return out.to(probs.dtype)


def _val(x: Any) -> Value:
    return x if isinstance(x, Value) else tensor(x)


def _as_drawn(p: Value) -> Value:
    """Probabilities in the dtype whose stream they draw against (see ``_stream``)."""
    return p.to(_stream(p.dtype, explicit=False))


def _like(v: Value, dtype: Any) -> tuple[list[int], Any]:
    return list(v.shape), (v.dtype if dtype is None else dtype)


def zeros_like(v: Value, dtype: Any = None, requires_grad: bool = False,
               device: Any = None) -> Value:
    """Zeros with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> zeros_like(ones(2, dtype="float32"))
    Value([0., 0.], dtype=float32)
    """
    _check(device)
    s, d = _like(v, dtype)
    return zeros(s, dtype=d, requires_grad=requires_grad)


def ones_like(v: Value, dtype: Any = None, requires_grad: bool = False,
              device: Any = None) -> Value:
    """Ones with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> ones_like(zeros(2, 3)).shape
    (2, 3)
    """
    _check(device)
    s, d = _like(v, dtype)
    return ones(s, dtype=d, requires_grad=requires_grad)


def full_like(v: Value, fill_value: float, dtype: Any = None,
              requires_grad: bool = False, device: Any = None) -> Value:
    """``fill_value`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> full_like(zeros(3), 0.5).tolist()
    [0.5, 0.5, 0.5]
    """
    _check(device)
    s, d = _like(v, dtype)
    return full(s, fill_value, dtype=d, requires_grad=requires_grad)


def rand_like(v: Value, dtype: Any = None, requires_grad: bool = False, device: Any = None, *,
              generator: Generator | None = None) -> Value:
    """``rand`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> _ = manual_seed(0); x = rand_like(zeros(2, 3, dtype="float32"))
    >>> print(x.shape, x.dtype)
    (2, 3) float32
    """
    _check(device)
    s, d = _like(v, dtype)
    return rand(s, dtype=d, requires_grad=requires_grad, generator=generator)


def randn_like(v: Value, dtype: Any = None, requires_grad: bool = False, device: Any = None, *,
               generator: Generator | None = None) -> Value:
    """``randn`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> _ = manual_seed(0); x = randn_like(zeros(2, 3))
    >>> print(x.shape, x.dtype)
    (2, 3) float64
    """
    _check(device)
    s, d = _like(v, dtype)
    return randn(s, dtype=d, requires_grad=requires_grad, generator=generator)


def randint_like(v: Value, low: int, high: int | None = None, *, dtype: Any = None,
                 device: Any = None,
                 generator: Generator | None = None) -> Value:
    """``randint`` with ``v``'s shape and, unless ``dtype`` is given, its dtype.

    >>> randint_like(zeros(2, 3, dtype="int32"), 10).dtype
    dtype('int32')
    """
    _check(device)
    if high is None:
        low, high = 0, low
    return randint(low, high, v.shape, dtype=v.dtype if dtype is None else dtype,
                   generator=generator)
