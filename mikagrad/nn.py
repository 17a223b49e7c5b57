"""Neural-network modules: the original MikaGrad's ``Module``, ``Layer`` and ``MLP``, and
PyTorch's vocabulary (``Linear``, ``Sequential``, activations, losses, ``init``, ``utils``).

Every forward pass is built from Value ops, so no gradient code lives here. A module's
parameters are the leaf Values that require grad found in its attributes, or in lists,
tuples and dicts held there, or in its sub-modules (searched the same way):

>>> model = MLP(2, [16, 16, 1])
>>> [name for name, _ in model.named_parameters()][:2]
['layers.0.w', 'layers.0.b']
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from . import functional as F
from .creation import Generator, rand
from .engine import ShapeError, Value, get_default_dtype, no_grad

# `import mikagrad.nn.functional as F` (torch's path) finds the same module as
# `mikagrad.functional`.
functional = F
sys.modules[__name__ + ".functional"] = F

__all__ = [  # noqa: RUF022  (grouped as the sections below)
    "Module", "Layer", "MLP",
    "Linear", "Sequential", "ModuleList", "ModuleDict", "Flatten", "Dropout", "LayerNorm",
    "Embedding", "MultiheadAttention", "ReLU", "SiLU", "Tanh", "Sigmoid", "GELU", "LeakyReLU",
    "Softmax", "LogSoftmax",
    "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d",
    "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "Upsample", "BatchNorm1d", "BatchNorm2d", "InstanceNorm1d", "InstanceNorm2d", "GroupNorm",
    "Dropout1d", "Dropout2d", "Unflatten",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
    "StateDictKeyError", "IncompatibleKeys", "init", "utils", "grad",
]


# ---- Module ------------------------------------------------------------------------------


class StateDictKeyError(KeyError):
    """``load_state_dict`` found a missing or unexpected key; the message names each one."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns: the module's keys the state dict lacked, and the
    state dict's keys the module lacked (both empty unless ``strict=False``).

    >>> Linear(2, 1).load_state_dict({"weight": np.zeros((1, 2))}, strict=False)
    IncompatibleKeys(missing_keys=['bias'], unexpected_keys=[])
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class: finds parameters (Values) and sub-modules held in attributes.

    Subclasses set attributes in ``__init__`` (calling ``super().__init__()`` is optional)
    and define ``forward``; ``module(x)`` calls ``forward(x)``.

    >>> m = Module(); m.w = Value([1.0, 2.0]); m.frozen = Value(0.0, requires_grad=False)
    >>> [name for name, _ in m.named_parameters()], m.num_parameters(), list(m.state_dict())
    (['w'], 2, ['w', 'frozen'])
    """

    training: bool = True

    def __init__(self) -> None:
        self.training = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def _members(self) -> Iterable[tuple[str, Any]]:
        """The (name, object) pairs searched for Values and sub-modules: the attributes."""
        return ((k, v) for k, v in vars(self).items()
                if k not in ("training", "_non_persistent", "_buffer_names"))

    # ---- discovery ---------------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The sub-modules held directly (a module in ``self.layers[0]`` is 'layers.0')."""
        seen: set[int] = set()
        for name, obj in _held(self._members(), ""):
            if isinstance(obj, Module) and id(obj) not in seen:
                seen.add(id(obj))
                yield name, obj

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every module below it, depth first; a shared module once."""
        seen: set[int] = set()

        def walk(module: Module, name: str) -> Iterator[tuple[str, Module]]:
            seen.add(id(module))
            yield name, module
            for child_name, child in module.named_children():
                if id(child) not in seen:
                    yield from walk(child, f"{name}.{child_name}" if name else child_name)

        return walk(self, prefix)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path ``target`` ('' is this one), as torch's; AttributeError
        names the path when there is none.

        >>> Sequential(Linear(2, 3), ReLU()).get_submodule("0").out_features
        3
        """
        if target == "":
            return self
        found = dict(self.named_modules()).get(target)
        if found is None:
            raise AttributeError(f"{type(self).__name__} has no submodule {target!r}")
        return found

    def _named_leaves(self) -> Iterator[tuple[str, Value]]:
        """Every leaf Value held here or below, depth first in attribute order, each once."""
        seen_modules: set[int] = set()
        seen_values: set[int] = set()

        def walk(module: Module, prefix: str) -> Iterator[tuple[str, Value]]:
            seen_modules.add(id(module))
            for name, obj in _held(module._members(), prefix):
                if isinstance(obj, Module):
                    if id(obj) not in seen_modules:
                        yield from walk(obj, name + ".")
                elif obj.is_leaf and obj._node.id not in seen_values:
                    seen_values.add(obj._node.id)
                    yield name, obj

        return walk(self, "")

    def named_parameters(self) -> Iterator[tuple[str, Value]]:
        """(name, Value) for each parameter: a leaf Value that requires grad."""
        return ((n, v) for n, v in self._named_leaves() if v.requires_grad)

    def parameters(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """The number of scalars in ``parameters()``."""
        return sum(p.size for p in self.parameters())

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Keeps ``tensor`` as a buffer: an attribute that is saved in ``state_dict`` (unless
        ``persistent=False``) and is never a parameter, as torch's.

        >>> m = Module(); m.register_buffer("running_mean", Value([0.0, 0.0]))
        >>> m.parameters(), list(m.state_dict()), [n for n, _ in m.named_buffers()]
        ([], ['running_mean'], ['running_mean'])
        """
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: bad buffer name {name!r}")
        if tensor is not None and not isinstance(tensor, Value):
            raise TypeError(f"register_buffer: {name!r} must be a Value or None, got "
                            f"{type(tensor).__name__}")
        if tensor is not None and tensor.requires_grad:
            tensor = tensor.detach()
        setattr(self, name, tensor)
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        skip = self.__dict__.setdefault("_non_persistent", set())
        if persistent:
            skip.discard(name)
        else:
            skip.add(name)

    def named_buffers(self) -> Iterator[tuple[str, Value]]:
        """(name, Value) for each leaf Value held that does not require grad.

        >>> m = Module(); m.w = Value([1.0]); m.register_buffer("n", Value([2.0]))
        >>> [n for n, _ in m.named_buffers()]
        ['n']
        """
        return ((n, v) for n, v in self._named_leaves() if not v.requires_grad)

    def buffers(self) -> list[Value]:
        return [b for _, b in self.named_buffers()]

    def apply(self, fn: Any) -> Module:
        """Calls ``fn(module)`` on every sub-module and then on this one, as torch (for
        custom weight init); returns this module.

        >>> seen = []
        >>> Sequential(Linear(1, 1), ReLU()).apply(lambda m: seen.append(type(m).__name__))
        Sequential(...)
        >>> seen
        ['Linear', 'ReLU', 'Sequential']
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Sets ``requires_grad`` on every parameter (and, with True, on every float leaf, as
        a frozen Value becomes a parameter again); returns this module.

        >>> m = Linear(2, 1).requires_grad_(False); len(m.parameters())
        0
        """
        for _, v in self._named_leaves():
            if v._is_float and not self._is_buffer(v):
                v.requires_grad_(requires_grad)
        return self

    def to(self, *args: Any, dtype: Any = None, device: Any = None, **kwargs: Any) -> Module:
        """Casts every float parameter and buffer to ``dtype`` in place (the Values stay the
        same objects, as torch's); a device must be the CPU. Returns this module.

        >>> m = Linear(2, 1).to("cpu", np.float32); m.weight.dtype, m.bias.dtype
        (dtype('float32'), dtype('float32'))
        """
        from .engine import _dtype, _is_device, check_device

        for a in args:
            if _is_device(a):
                device = a
            else:
                dtype = a
        if device is not None:
            check_device(device)
        if dtype is not None:
            d = _dtype(dtype)
            for _, v in self._named_leaves():
                if v._is_float and v.dtype != d:
                    v.data = v.data.to(d)
        return self

    def cpu(self) -> Module:
        return self

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    def _is_buffer(self, v: Value) -> bool:
        for m in self.modules():
            for name in m.__dict__.get("_buffer_names", ()):
                if getattr(m, name, None) is v:
                    return True
        return False

    # ---- training ----------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = False) -> None:
        """Zeros each parameter's gradient in place (micrograd's ``p.grad = 0``).

        Zeroing in place keeps ``p.grad`` an array after the next ``backward()`` even for a
        parameter that the loss does not reach; ``set_to_none=True`` drops it instead.
        """
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            else:
                p._node.zero_own_grad()

    def train(self, mode: bool = True) -> Module:
        """Sets ``training`` on this module and every module below it (Dropout reads it)."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ---- state -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every leaf Value held (parameters, buffers and frozen Values), by dotted
        name; buffers registered with ``persistent=False`` are left out."""
        return {name: v.numpy().copy() for name, v in self._named_leaves()
                if name not in self._transient()}

    def _transient(self) -> set[str]:
        """Dotted names of the non-persistent buffers here and below."""
        out = set()
        for prefix, m in self.named_modules():
            for name in m.__dict__.get("_non_persistent", ()):
                out.add(f"{prefix}.{name}" if prefix else name)
        return out

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copies arrays into the module's Values in place, all or nothing.

        A key the module lacks or misses (with ``strict``) raises ``StateDictKeyError``; an
        array of the wrong shape raises ``ShapeError``. Both name the key.
        """
        transient = self._transient()
        own = {k: v for k, v in self._named_leaves() if k not in transient}
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys " + ", ".join(map(repr, missing)))
            if unexpected:
                parts.append("unexpected keys " + ", ".join(map(repr, unexpected)))
            raise StateDictKeyError(
                f"load_state_dict for {type(self).__name__}: {'; '.join(parts)}")
        arrays = {}
        for key, v in own.items():
            if key in state_dict:
                arrays[key] = _state_array(key, state_dict[key], v)
        for key, arr in arrays.items():
            own[key].data[...] = arr
        return IncompatibleKeys(missing, unexpected)

    # ---- repr --------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [
            f"({name}): " + repr(child).replace("\n", "\n  ")
            for name, child in self.named_children()
        ]
        if len(lines) <= 1 and not children:
            return f"{type(self).__name__}({extra})"
        body = "".join(f"\n  {line}" for line in lines + children)
        return f"{type(self).__name__}({body}\n)"


def _held(items: Iterable[tuple[Any, Any]], prefix: str) -> Iterator[tuple[str, Any]]:
    """Values and Modules among ``items``, looking inside lists, tuples and dicts."""
    for key, obj in items:
        name = f"{prefix}{key}"
        if isinstance(obj, (Value, Module)):
            yield name, obj
        elif isinstance(obj, dict):
            yield from _held(obj.items(), name + ".")
        elif isinstance(obj, (list, tuple)):
            yield from _held(enumerate(obj), name + ".")


def _state_array(key: str, x: Any, like: Value) -> np.ndarray:
    """``x`` as an array ready to copy into ``like``, or an error naming ``key``."""
    if isinstance(x, Value):
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except ValueError as e:
        raise TypeError(f"load_state_dict: {key!r} is not an array ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"load_state_dict: {key!r} holds dtype {arr.dtype}, not numbers")
    if arr.shape != like.shape:
        raise ShapeError(
            f"load_state_dict: {key!r} has shape {arr.shape} in the state dict "
            f"but {like.shape} in the module")
    return arr.astype(like.dtype, copy=False)


def _parameter(array: np.ndarray) -> Value:
    """A new parameter of the default dtype."""
    return Value(array, dtype=get_default_dtype(), requires_grad=True)


def _empty(*shape: int) -> Value:
    return _parameter(np.zeros(shape))


# ---- init --------------------------------------------------------------------------------


def _fans(tensor: Value) -> tuple[int, int]:
    """PyTorch's fans of a weight shaped (out, in, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fans need a tensor with 2 or more dims, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:], dtype=np.int64))
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


class init:  # a namespace, spelled as PyTorch's module
    """In-place initialisers (``nn.init.uniform_(w, -1, 1)``) with torch's formulas and random
    streams: the default generator (``manual_seed``), or ``generator=``.

    Each writes into ``tensor`` under ``no_grad``, records no graph and returns ``tensor``.

    >>> import mikagrad as mg; _ = mg.manual_seed(0)
    >>> w = init.uniform_(mg.zeros(100, 3), -0.1, 0.1)
    >>> w.shape, w.min().item() >= -0.1, w.max().item() < 0.1
    ((100, 3), True, True)
    """

    @staticmethod
    def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
        if nonlinearity in ("linear", "sigmoid", "identity") or nonlinearity.startswith("conv"):
            return 1.0
        if nonlinearity == "tanh":
            return 5.0 / 3
        if nonlinearity == "relu":
            return math.sqrt(2.0)
        if nonlinearity == "leaky_relu":
            slope = 0.01 if param is None else float(param)
            return math.sqrt(2.0 / (1 + slope ** 2))
        if nonlinearity == "selu":
            return 3.0 / 4
        raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")

    @staticmethod
    def uniform_(tensor: Value, a: float = 0.0, b: float = 1.0,
                 generator: Generator | None = None) -> Value:
        with no_grad():
            return tensor.uniform_(a, b, generator=generator)

    @staticmethod
    def normal_(tensor: Value, mean: float = 0.0, std: float = 1.0,
                generator: Generator | None = None) -> Value:
        with no_grad():
            return tensor.normal_(mean, std, generator=generator)

    @staticmethod
    def trunc_normal_(tensor: Value, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                      b: float = 2.0, generator: Generator | None = None) -> Value:
        """N(mean, std²) cut to [a, b] by torch's rejection sampling, so a seed gives torch's
        values: when [a, b] holds more than 30% of the mass, normal draws with the ones
        outside redrawn; otherwise uniform draws on [a, b] kept with probability
        pdf / pdf(mode)."""
        from .ops import where

        def cdf(x: float) -> float:
            return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

        def log_pdf(x: Value, log_peak: float) -> Value:
            return ((x - mean) / std) ** 2 * -0.5 - log_peak

        with no_grad():
            if cdf((b - mean) / std) - cdf((a - mean) / std) > 0.3:
                result = tensor.normal_(mean, std, generator=generator)
                while True:
                    outside = (result < a) | (result > b)
                    if not outside.any():
                        break
                    fresh = tensor.new_zeros(tensor.shape).normal_(mean, std,
                                                                   generator=generator)
                    result = where(outside, fresh, result)
                return tensor.copy_(result) if result is not tensor else tensor
            mode = max(a, min(mean, b))
            log_peak = -0.5 * ((mode - mean) / std) ** 2
            tensor.uniform_(a, b, generator=generator)
            accept = tensor.new_zeros(tensor.shape)

            def rejected(cand: Value) -> Value:
                return accept.uniform_(generator=generator).log() > log_pdf(cand, log_peak)

            pending = rejected(tensor)
            result = tensor
            while pending.any():
                cand = tensor.new_zeros(tensor.shape).uniform_(a, b, generator=generator)
                result = where(pending, cand, result)
                pending = where(pending, rejected(cand), pending)
            return tensor.copy_(result) if result is not tensor else tensor

    @staticmethod
    def constant_(tensor: Value, val: float) -> Value:
        with no_grad():
            return tensor.fill_(val)

    @staticmethod
    def zeros_(tensor: Value) -> Value:
        return init.constant_(tensor, 0.0)

    @staticmethod
    def ones_(tensor: Value) -> Value:
        return init.constant_(tensor, 1.0)

    @staticmethod
    def _kaiming_std(tensor: Value, a: float, mode: str, nonlinearity: str, name: str) -> float:
        if mode not in ("fan_in", "fan_out"):
            raise ValueError(f"{name}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
        fan_in, fan_out = _fans(tensor)
        fan = fan_in if mode == "fan_in" else fan_out
        return init.calculate_gain(nonlinearity, a) / math.sqrt(fan) if fan else 0.0

    @staticmethod
    def kaiming_uniform_(tensor: Value, a: float = 0.0, mode: str = "fan_in",
                         nonlinearity: str = "leaky_relu",
                         generator: Generator | None = None) -> Value:
        """U(-bound, bound) with ``bound = sqrt(3) * gain / sqrt(fan)`` (He et al.), written
        as torch writes it, so a seed gives torch's weights."""
        std = init._kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
        if std == 0.0:
            return tensor
        bound = math.sqrt(3.0) * std
        return init.uniform_(tensor, -bound, bound, generator)

    @staticmethod
    def kaiming_normal_(tensor: Value, a: float = 0.0, mode: str = "fan_in",
                        nonlinearity: str = "leaky_relu",
                        generator: Generator | None = None) -> Value:
        """N(0, std²) with ``std = gain / sqrt(fan)`` (He et al.)."""
        std = init._kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
        if std == 0.0:
            return tensor
        return init.normal_(tensor, 0.0, std, generator)

    @staticmethod
    def xavier_uniform_(tensor: Value, gain: float = 1.0,
                        generator: Generator | None = None) -> Value:
        """U(-bound, bound) with ``bound = sqrt(3) * gain * sqrt(2 / (fan_in + fan_out))``."""
        fan_in, fan_out = _fans(tensor)
        if fan_in + fan_out == 0:
            return tensor
        bound = math.sqrt(3.0) * (gain * math.sqrt(2.0 / float(fan_in + fan_out)))
        return init.uniform_(tensor, -bound, bound, generator)

    @staticmethod
    def xavier_normal_(tensor: Value, gain: float = 1.0,
                       generator: Generator | None = None) -> Value:
        fan_in, fan_out = _fans(tensor)
        if fan_in + fan_out == 0:
            return tensor
        return init.normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)),
                            generator)


# ---- grad ----------------------------------------------------------------------------------


class grad:  # a namespace, spelled as PyTorch's module
    """torch.nn.grad: a convolution's gradients for its input and its weight, as ops of their
    own (each differentiable, as every MikaGrad op).

    >>> import mikagrad as mg
    >>> x, w = mg.ones(1, 1, 3, 3), mg.ones(1, 1, 2, 2)
    >>> gy = F.conv2d(x, w)
    >>> grad.conv2d_weight(x, w.shape, gy).tolist()
    [[[[16.0, 16.0], [16.0, 16.0]]]]
    """

    @staticmethod
    def _call(op: str, n: int, kind: str, a: Value, shape: Any, b: Value, stride: Any,
              padding: Any, dilation: Any, groups: int) -> Value:
        from .engine import _wrap

        a, b = F._node(op, a), F._node(op, b)
        s, d = F._ints(op, "stride", stride, n), F._ints(op, "dilation", dilation, n)
        p = list(F._ints(op, "padding", padding, n, least=0))
        g = F._ints(op, "groups", groups, 1)[0]
        if kind == "input":  # a = weight, b = grad_output
            node = b._node.conv_input(a._node, list(shape), list(s), p, p, list(d), g)
            return _wrap(node, b, a)
        node = a._node.conv_weight(b._node, list(shape), list(s), p, p, list(d), g)
        return _wrap(node, a, b)

    @staticmethod
    def conv1d_input(input_size: Any, weight: Value, grad_output: Value, stride: Any = 1,
                     padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
        """The gradient of ``conv1d`` for an input of ``input_size``."""
        return grad._call("conv1d_input", 1, "input", weight, input_size, grad_output, stride,
                          padding, dilation, groups)

    @staticmethod
    def conv1d_weight(input: Value, weight_size: Any, grad_output: Value, stride: Any = 1,
                      padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
        """The gradient of ``conv1d`` for a weight of ``weight_size``."""
        return grad._call("conv1d_weight", 1, "weight", input, weight_size, grad_output, stride,
                          padding, dilation, groups)

    @staticmethod
    def conv2d_input(input_size: Any, weight: Value, grad_output: Value, stride: Any = 1,
                     padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
        """The gradient of ``conv2d`` for an input of ``input_size``."""
        return grad._call("conv2d_input", 2, "input", weight, input_size, grad_output, stride,
                          padding, dilation, groups)

    @staticmethod
    def conv2d_weight(input: Value, weight_size: Any, grad_output: Value, stride: Any = 1,
                      padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
        """The gradient of ``conv2d`` for a weight of ``weight_size``."""
        return grad._call("conv2d_weight", 2, "weight", input, weight_size, grad_output, stride,
                          padding, dilation, groups)


# ---- utils -------------------------------------------------------------------------------


class utils:  # a namespace, spelled as PyTorch's module
    """Helpers used inside a training loop.

    >>> w = Value([3.0, 4.0]); (w * w).sum().backward()  # gradient (6, 8), norm 10
    >>> utils.clip_grad_norm_(w, max_norm=1.0), w.grad.tolist()
    (10.0, [0.6, 0.8])
    """

    @staticmethod
    def clip_grad_norm_(parameters: Value | Iterable[Value], max_norm: float,
                        norm_type: float = 2.0) -> float:
        """Scales all gradients in place so that their joint norm is at most ``max_norm``.

        Returns the norm before clipping, over every gradient as one vector (PyTorch's rule,
        scale ``max_norm / (norm + 1e-6)`` applied only when below 1).
        """
        params = [parameters] if isinstance(parameters, Value) else list(parameters)
        grads = [np.asarray(g) for g in (p.grad for p in params) if g is not None]
        if not grads:
            return 0.0
        norm_type = float(norm_type)
        if norm_type == math.inf:
            total = max(float(np.max(np.abs(g), initial=0.0)) for g in grads)
        else:
            total = float(sum(np.sum(np.abs(g.astype(np.float64)) ** norm_type) for g in grads))
            total **= 1.0 / norm_type
        scale = float(max_norm) / (total + 1e-6)
        if scale < 1.0:
            for g in grads:
                g *= scale
        return total


# ---- the original MikaGrad's layers ----------------------------------------------------------


class Layer(Module):
    """A dense layer ``x @ w + b`` with ``w`` of shape (num_in, num_out), ReLU'd when ``nonlin``.

    ``w`` is drawn from U(-1/sqrt(num_in), 1/sqrt(num_in)) and ``b`` starts at zero.

    >>> layer = Layer(3, 4)
    >>> layer.w.shape, layer(Value([[1.0, 2.0, 3.0]])).shape
    ((3, 4), (1, 4))
    """

    def __init__(self, num_in: int, num_out: int, nonlin: bool = True) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(num_in) if num_in > 0 else 0.0
        self.w = init.uniform_(_empty(num_in, num_out), -bound, bound)
        self.b = _empty(num_out)
        self.nonlin = nonlin

    def forward(self, x: Value) -> Value:
        out = x @ self.w + self.b
        return out.relu() if self.nonlin else out

    def extra_repr(self) -> str:
        return f"num_in={self.w.shape[0]}, num_out={self.w.shape[1]}, nonlin={self.nonlin}"


class MLP(Module):
    """ReLU hidden layers and a linear last layer: ``MLP(2, [16, 16, 1])``.

    >>> model = MLP(2, [16, 16, 1])
    >>> model(Value([[0.5, -1.0]])).shape, model.num_parameters()
    ((1, 1), 337)
    """

    def __init__(self, num_in: int, num_outs: list[int]) -> None:
        super().__init__()
        sizes = [num_in] + list(num_outs)
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin=i != len(num_outs) - 1)
            for i in range(len(num_outs))
        ]

    def forward(self, x: Value) -> Value:
        for layer in self.layers:
            x = layer(x)
        return x


# ---- PyTorch's vocabulary ----------------------------------------------------------------------


class Linear(Module):
    """``x @ weight.T + bias`` with ``weight`` of shape (out_features, in_features), as torch.

    Both are drawn from U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's default
    (``kaiming_uniform_`` with ``a=sqrt(5)``).

    >>> lin = Linear(3, 2)
    >>> lin.weight.shape, lin.bias.shape, lin(Value([[1.0, 2.0, 3.0]])).shape
    ((2, 3), (2,), (1, 2))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = init.kaiming_uniform_(_empty(out_features, in_features), a=math.sqrt(5))
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
            self.bias = init.uniform_(_empty(out_features), -bound, bound)

    def forward(self, x: Value) -> Value:
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Sequential(Module):
    """Calls its modules in order. ``Sequential(a, b)`` or ``Sequential({'name': a, ...})``.

    Indexable (an int gives a module, a slice a Sequential), iterable, with ``len``.

    >>> model = Sequential(Linear(2, 4), ReLU(), Linear(4, 1))
    >>> model(Value([[0.5, -1.0]])).shape, [name for name, _ in model.named_parameters()]
    ((1, 1), ['0.weight', '0.bias', '2.weight', '2.bias'])
    """

    def __init__(self, *modules: Module | dict[str, Module]) -> None:
        super().__init__()
        items: list[tuple[str, Any]]
        if len(modules) == 1 and isinstance(modules[0], dict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: {name} is a {type(m).__name__}, not a Module")
        self._modules = dict(items)

    def _members(self) -> Iterable[tuple[str, Any]]:
        yield from self._modules.items()
        yield from ((k, v) for k, v in super()._members() if k != "_modules")

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*mods[index])
        return mods[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        self._modules[str(len(self._modules))] = module
        return self

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules, registered by position ('0', '1', ...), as ``torch.nn.ModuleList``.

    >>> layers = ModuleList([Linear(2, 2) for _ in range(3)]); layers.append(Linear(2, 1))
    ModuleList(...)
    >>> len(layers), [n for n, _ in layers.named_parameters()][-1]
    (4, '3.bias')
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self._list: list[Module] = []
        self.extend(modules)

    def _members(self) -> Iterable[tuple[str, Any]]:
        yield from ((str(i), m) for i, m in enumerate(self._list))
        yield from ((k, v) for k, v in super()._members() if k != "_list")

    def append(self, module: Module) -> ModuleList:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: {type(module).__name__} is not a Module")
        self._list.append(module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: {type(module).__name__} is not a Module")
        self._list.insert(index, module)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(self._list[index])
        return self._list[index]

    def __setitem__(self, index: int, module: Module) -> None:
        self._list[index] = module

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._list))


class ModuleDict(Module):
    """Modules by name, as ``torch.nn.ModuleDict``; their parameters are named 'key.weight'.

    >>> heads = ModuleDict({"a": Linear(2, 1), "b": Linear(2, 3)})
    >>> list(heads), heads["b"].out_features, len(heads.parameters())
    (['a', 'b'], 3, 4)
    """

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        self._dict: dict[str, Module] = {}
        if modules is not None:
            self.update(modules)

    def _members(self) -> Iterable[tuple[str, Any]]:
        yield from self._dict.items()
        yield from ((k, v) for k, v in super()._members() if k != "_dict")

    def update(self, modules: Any) -> None:
        items = modules.items() if isinstance(modules, (dict, ModuleDict)) else modules
        for k, m in items:
            self[k] = m

    def __getitem__(self, key: str) -> Module:
        return self._dict[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {key!r} is a {type(module).__name__}, not a Module")
        self._dict[str(key)] = module

    def __delitem__(self, key: str) -> None:
        del self._dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def __len__(self) -> int:
        return len(self._dict)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._dict))

    def keys(self) -> Any:
        return self._dict.keys()

    def values(self) -> Any:
        return self._dict.values()

    def items(self) -> Any:
        return self._dict.items()


class ReLU(Module):
    """The module form of ``F.relu``: ``max(x, 0)`` elementwise.

    >>> ReLU()(Value([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    """

    def forward(self, x: Value) -> Value:
        return x.relu()


class SiLU(Module):
    """The module form of ``F.silu``: ``x * sigmoid(x)``.

    >>> SiLU()(Value([0.0, 2.0])).tolist()
    [0.0, 1.762]
    """

    def forward(self, x: Value) -> Value:
        return F.silu(x)


class Tanh(Module):
    """The module form of ``F.tanh``.

    >>> Tanh()(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.762, 0.0, 0.964]
    """

    def forward(self, x: Value) -> Value:
        return x.tanh()


class Sigmoid(Module):
    """The module form of ``F.sigmoid``: ``1 / (1 + exp(-x))`` elementwise.

    >>> Sigmoid()(Value([-1.0, 0.0, 2.0])).tolist()
    [0.269, 0.5, 0.881]
    """

    def forward(self, x: Value) -> Value:
        return x.sigmoid()


class GELU(Module):
    """GELU in its exact erf form (PyTorch's default).

    >>> GELU()(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.159, 0.0, 1.954]
    """

    def forward(self, x: Value) -> Value:
        return x.gelu()


class LeakyReLU(Module):
    """The module form of ``F.leaky_relu``: ``x`` where positive, else ``negative_slope * x``.

    >>> LeakyReLU(0.1)(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.1, 0.0, 2.0]
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Value) -> Value:
        return x.leaky_relu(self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """The module form of ``F.softmax``: ``exp(x)`` normalised to sum to 1 along ``dim``.

    >>> Softmax(dim=-1)(Value([-1.0, 0.0, 2.0])).tolist()
    [0.042, 0.114, 0.844]
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Value) -> Value:
        return x.softmax(self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """The module form of ``F.log_softmax``: ``log(softmax(x, dim))`` as one stable op.

    >>> LogSoftmax(dim=-1)(Value([-1.0, 0.0, 2.0])).tolist()
    [-3.170, -2.170, -0.170]
    """

    def forward(self, x: Value) -> Value:
        return x.log_softmax(self.dim)


class Flatten(Module):
    """Merges dims ``start_dim`` to ``end_dim``; by default all but the batch dim.

    >>> Flatten()(Value(np.ones((2, 3, 4)))).shape
    (2, 12)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Value) -> Value:
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class MultiheadAttention(Module):
    """torch's ``nn.MultiheadAttention``: ``num_heads`` heads of scaled dot-product attention
    over ``embed_dim`` split evenly, with torch's parameters (``in_proj_weight`` (3E, E),
    ``in_proj_bias``, ``out_proj``), initialisation order and ``forward`` signature. Inputs
    are (L, N, E), or (N, L, E) with ``batch_first``, or unbatched (L, E). ``forward`` returns
    the output and, with ``need_weights``, the attention weights (averaged over heads unless
    ``average_attn_weights=False``). Key and value sizes other than ``embed_dim``
    (``kdim``/``vdim``) are not supported.

    >>> mha = MultiheadAttention(8, 2, batch_first=True)
    >>> out, w = mha(*(Value(np.ones((3, 5, 8)), requires_grad=False),) * 3)
    >>> out.shape, w.shape
    ((3, 5, 8), (3, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None,
                 batch_first: bool = False) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by "
                             f"num_heads {num_heads}")
        if add_bias_kv or add_zero_attn or (kdim or embed_dim) != embed_dim \
                or (vdim or embed_dim) != embed_dim:
            raise NotImplementedError("MultiheadAttention: add_bias_kv, add_zero_attn and "
                                      "kdim/vdim other than embed_dim are not supported")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        self.in_proj_weight = _empty(3 * embed_dim, embed_dim)
        self.in_proj_bias = _empty(3 * embed_dim) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        # torch's order of draws: out_proj's Linear init above, then these.
        init.xavier_uniform_(self.in_proj_weight)
        for b in (self.in_proj_bias, self.out_proj.bias):
            if b is not None:
                init.constant_(b, 0.0)

    def forward(self, query: Value, key: Value, value: Value, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Value, Value | None]:
        from .engine import tensor
        from .ops import where

        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal is a hint; give the causal "
                             "attn_mask too, as torch requires")
        unbatched = query.ndim == 2
        if unbatched:
            query, key, value = (x.unsqueeze(1) for x in (query, key, value))
        elif self.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        L, N, E = query.shape
        S = key.shape[0]
        h, d = self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        q, k, v = (x @ w[i * E:(i + 1) * E].T + (0.0 if b is None else b[i * E:(i + 1) * E])
                   for i, x in enumerate((query, key, value)))

        def heads(x: Value, n: int) -> Value:  # (n, N, E) -> (N, h, n, d)
            return x.reshape(n, N, h, d).permute(1, 2, 0, 3)

        scores = heads(q, L) @ heads(k, S).transpose(-2, -1) * (1.0 / math.sqrt(d))
        neg = tensor(float("-inf"), dtype=scores.dtype)
        if attn_mask is not None:
            m = attn_mask if isinstance(attn_mask, Value) else tensor(attn_mask)
            m = m.reshape(N, h, L, S) if m.ndim == 3 else m
            scores = where(m, neg, scores) if m.dtype == np.bool_ else scores + m
        if key_padding_mask is not None:
            m = (key_padding_mask if isinstance(key_padding_mask, Value)
                 else tensor(key_padding_mask))
            m = m.reshape(1 if unbatched else N, 1, 1, S)
            scores = where(m, neg, scores) if m.dtype == np.bool_ else scores + m
        p = scores.softmax(-1)
        if self.training and self.dropout > 0.0:
            p = F.dropout(p, self.dropout)
        out = (p @ heads(v, S)).permute(2, 0, 1, 3).reshape(L, N, E)
        out = self.out_proj(out)
        if unbatched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        weights = p.mean(1) if average_attn_weights else p
        return out, (weights.squeeze(0) if unbatched else weights)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


class Dropout(Module):
    """In training mode, zeros each element with probability ``p`` and scales the rest by
    ``1 / (1 - p)``; in eval mode, the identity. The mask draws from ``manual_seed``.

    >>> import mikagrad as mg; _ = mg.manual_seed(0); drop = Dropout(0.5)
    >>> sorted(set(drop(mg.ones(100)).tolist())), drop.eval()(mg.ones(3)).tolist()
    ([0.0, 2.0], [1.0, 1.0, 1.0])
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x: Value) -> Value:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = (rand(x.shape, dtype=x.dtype) >= self.p) * (1.0 / (1.0 - self.p))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class LayerNorm(Module):
    """Normalizes over the trailing ``normalized_shape`` dims, then ``* weight + bias``.

    The variance is the biased one, as PyTorch; ``weight`` starts at 1 and ``bias`` at 0.

    >>> LayerNorm(3)(Value([[1.0, 2.0, 3.0]])).tolist()
    [[-1.225, 0.0, 1.225]]
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(s) for s in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        self.weight = _parameter(np.ones(self.normalized_shape)) if elementwise_affine else None
        self.bias = _empty(*self.normalized_shape) if elementwise_affine else None

    def forward(self, x: Value) -> Value:
        n = len(self.normalized_shape)
        if x.ndim < n or tuple(x.shape[x.ndim - n:]) != self.normalized_shape:
            raise ShapeError(
                f"LayerNorm: input of shape {x.shape} does not end in {self.normalized_shape}")
        dims = tuple(range(-n, 0))
        centred = x - x.mean(dims, keepdim=True)
        out = centred / (x.var(dims, keepdim=True, correction=0) + self.eps).sqrt()
        if self.weight is not None:
            out = out * self.weight + self.bias
        return out

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class Embedding(Module):
    """A lookup table: ``forward(indices)`` is ``weight[indices]``, weight drawn from N(0, 1).

    Indices may be ints, nested lists, integer numpy arrays or Values holding integers.

    >>> emb = Embedding(10, 4)
    >>> emb([1, 2, 1]).shape, emb([[0, 1]]).shape
    ((3, 4), (1, 2, 4))
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: int | None = None) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                             f"num_embeddings {num_embeddings}")
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = init.normal_(_empty(num_embeddings, embedding_dim))
        if self.padding_idx is not None:  # torch zeros the padding row and never trains it
            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, indices: Any) -> Value:
        w = F._padded(self.weight, self.padding_idx, "Embedding")
        if isinstance(indices, Value) and indices.dtype in (np.int64, np.int32):
            if indices.size and indices.min().item() < 0:  # torch refuses negative indices
                raise IndexError(
                    f"Embedding: index {indices.min().item()} is out of range for "
                    f"{self.num_embeddings} embeddings")
            return w[indices]  # the core checks the upper end
        idx = np.asarray(indices.numpy() if isinstance(indices, Value) else indices)
        if idx.dtype.kind == "f" and np.all(idx == np.round(idx)):
            idx = idx.astype(np.int64)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Embedding: indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            bad = idx[(idx < 0) | (idx >= self.num_embeddings)].flat[0]
            raise IndexError(
                f"Embedding: index {bad} is out of range for {self.num_embeddings} embeddings")
        return w[idx.astype(np.int64)]

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"


# ---- convolution, pooling and normalization layers ------------------------------------------


def _pair(v: Any, n: int) -> tuple[int, ...]:
    return (int(v),) * n if isinstance(v, (int, np.integer)) else tuple(int(i) for i in v)


class _ConvNd(Module):
    _dims = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", output_padding: Any = 0) -> None:
        super().__init__()
        name, n = type(self).__name__, self._dims
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"{name}: padding_mode must be 'zeros', 'reflect', 'replicate' "
                             f"or 'circular', got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, n)
        self.stride, self.dilation = _pair(stride, n), _pair(dilation, n)
        self.padding = padding if isinstance(padding, str) else _pair(padding, n)
        if isinstance(self.padding, str) and self.padding not in ("same", "valid"):
            raise ValueError(f"{name}: padding must be 'same', 'valid' or ints, got {padding!r}")
        if self.padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions")
        self.output_padding = _pair(output_padding, n)
        self.groups, self.padding_mode = groups, padding_mode
        shape = ((in_channels, out_channels // groups) if self._transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        # torch's reset_parameters: kaiming_uniform_(a=sqrt(5)), then the bias from fan_in.
        self.weight = init.kaiming_uniform_(_empty(*shape), a=math.sqrt(5))
        self.bias = None
        if bias:
            fan_in = _fans(self.weight)[0]
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            self.bias = init.uniform_(_empty(out_channels), -bound, bound)

    def _padded(self, x: Value) -> tuple[Value, Any]:
        """The input padded by ``padding_mode`` (then the conv pads nothing), as torch."""
        if self.padding_mode == "zeros":
            return x, self.padding
        lo, hi = F._conv_padding(type(self).__name__, self.padding, self._dims, self.weight,
                                 self.stride, self.dilation)
        flat = [v for pair in reversed(list(zip(lo, hi, strict=True))) for v in pair]
        return F.pad(x, flat, mode=self.padding_mode), 0

    def forward(self, x: Value) -> Value:
        x, padding = self._padded(x)
        fn = F.conv1d if self._dims == 1 else F.conv2d
        return fn(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._dims:
            s += f", padding={self.padding!r}"
        if self.dilation != (1,) * self._dims:
            s += f", dilation={self.dilation}"
        if self._transposed and self.output_padding != (0,) * self._dims:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv1d(_ConvNd):
    """torch's ``Conv1d`` over (N, C, L): weight (out, in/groups, k), torch's init.

    >>> Conv1d(2, 4, 3, padding=1)(Value(np.ones((5, 2, 7)))).shape
    (5, 4, 7)
    """

    _dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)


class Conv2d(_ConvNd):
    """torch's ``Conv2d`` over (N, C, H, W): weight (out, in/groups, kH, kW), both drawn as
    torch draws them (``kaiming_uniform_`` with ``a=sqrt(5)``; the bias from the fan-in), so
    a seed gives torch's weights; ``padding_mode`` zeros, reflect, replicate or circular.

    >>> conv = Conv2d(1, 8, 3, padding=1)
    >>> conv.weight.shape, conv(Value(np.ones((2, 1, 8, 8)))).shape
    ((8, 1, 3, 3), (2, 8, 8, 8))
    """

    _dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding)

    def forward(self, x: Value, output_size: Any = None) -> Value:
        op = "conv_transpose1d" if self._dims == 1 else "conv_transpose2d"
        return F._conv_transpose(op, self._dims, x, self.weight, self.bias, self.stride,
                                 self.padding, self.output_padding, self.groups,
                                 self.dilation, output_size)


class ConvTranspose1d(_ConvTransposeNd):
    """torch's ``ConvTranspose1d``: weight (in, out/groups, k).

    >>> ConvTranspose1d(2, 3, 2, stride=2)(Value(np.ones((1, 2, 4)))).shape
    (1, 3, 8)
    """

    _dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    """torch's ``ConvTranspose2d``: weight (in, out/groups, kH, kW); ``forward(x,
    output_size)`` picks among the sizes a stride allows.

    >>> up = ConvTranspose2d(4, 2, 2, stride=2)
    >>> up.weight.shape, up(Value(np.ones((1, 4, 3, 3)))).shape
    ((4, 2, 2, 2), (1, 2, 6, 6))
    """

    _dims = 2


class _MaxPoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x: Value) -> Any:
        fn = F.max_pool1d if self._dims == 1 else F.max_pool2d
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                  self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """torch's ``MaxPool1d``.

    >>> MaxPool1d(2)(Value([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
    [[[3.0, 2.0]]]
    """

    _dims = 1


class MaxPool2d(_MaxPoolNd):
    """torch's ``MaxPool2d``; ``stride`` defaults to ``kernel_size``.

    >>> MaxPool2d(2)(Value(np.ones((1, 3, 8, 8)))).shape
    (1, 3, 4, 4)
    """

    _dims = 2


class _AvgPoolNd(Module):
    _dims = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Value) -> Value:
        if self._dims == 1:
            return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """torch's ``AvgPool1d``.

    >>> AvgPool1d(2)(Value([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
    [[[2.0, 1.0]]]
    """

    _dims = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)


class AvgPool2d(_AvgPoolNd):
    """torch's ``AvgPool2d``.

    >>> AvgPool2d(2)(Value(np.ones((1, 3, 8, 8)))).shape
    (1, 3, 4, 4)
    """

    _dims = 2


class AdaptiveAvgPool1d(Module):
    """torch's ``AdaptiveAvgPool1d``.

    >>> AdaptiveAvgPool1d(1)(Value([[[1.0, 3.0]]])).tolist()
    [[[2.0]]]
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Value) -> Value:
        return F.adaptive_avg_pool1d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(AdaptiveAvgPool1d):
    """torch's ``AdaptiveAvgPool2d``: ``AdaptiveAvgPool2d(1)`` is global average pooling.

    >>> AdaptiveAvgPool2d(1)(Value(np.ones((2, 3, 5, 5)))).shape
    (2, 3, 1, 1)
    """

    def forward(self, x: Value) -> Value:
        return F.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(Module):
    """torch's ``AdaptiveMaxPool2d``.

    >>> AdaptiveMaxPool2d((2, 1))(Value(np.ones((2, 3, 5, 5)))).shape
    (2, 3, 2, 1)
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x: Value) -> Any:
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(Module):
    """torch's ``Upsample``: ``F.interpolate`` as a layer.

    >>> Upsample(scale_factor=2)(Value(np.ones((1, 1, 2, 2)))).shape
    (1, 1, 4, 4)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None) -> None:
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Value) -> Value:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else \
            f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"


class _NormBase(Module):
    """Running statistics as buffers (``running_mean``, ``running_var``,
    ``num_batches_tracked``), and the affine ``weight`` (1) and ``bias`` (0), as torch's."""

    _input_dims: tuple[int, ...] = (2, 3)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = _parameter(np.ones(num_features)) if affine else None
        self.bias = _empty(num_features) if affine else None
        if track_running_stats:
            dtype = get_default_dtype()
            self.register_buffer("running_mean", Value(np.zeros(num_features), dtype=dtype,
                                                       requires_grad=False))
            self.register_buffer("running_var", Value(np.ones(num_features), dtype=dtype,
                                                      requires_grad=False))
            self.register_buffer("num_batches_tracked",
                                 Value(np.array(0, dtype=np.int64), requires_grad=False))
        else:
            self.running_mean: Value | None = None
            self.running_var: Value | None = None
            self.num_batches_tracked: Value | None = None

    def _check(self, x: Value) -> None:
        name = type(self).__name__
        if x.ndim not in self._input_dims:
            dims = " or ".join(f"{d}-D" for d in self._input_dims)
            raise ShapeError(f"{name}: expected a {dims} input, got shape {x.shape}")

    def _factor(self) -> float:
        """The weight of this batch in the running statistics (momentum, or 1/n for the
        cumulative average of ``momentum=None``), counting the batch when training."""
        count = self.num_batches_tracked
        if not (self.training and count is not None):
            return 0.0 if self.momentum is None else self.momentum
        with no_grad():
            count.add_(1)
        return 1.0 / float(count.item()) if self.momentum is None else self.momentum

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, x: Value) -> Value:
        self._check(x)
        if x.shape[1] != self.num_features:
            raise ShapeError(f"{type(self).__name__}: expected {self.num_features} channels "
                             f"(dim 1), got input of shape {x.shape}")
        factor = self._factor()
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """torch's ``BatchNorm1d`` over (N, C) or (N, C, L): batch statistics in ``train()``
    (the running ones move by ``momentum``, with the unbiased variance), the running ones in
    ``eval()``.

    >>> bn = BatchNorm1d(2)
    >>> bn(Value([[1.0, 2.0], [3.0, 6.0]])).tolist(), bn.running_mean.tolist()
    ([[-1.0, -1.0], [1.0, 1.0]], [0.2, 0.4])
    """

    _input_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """torch's ``BatchNorm2d`` over (N, C, H, W), per channel.

    >>> BatchNorm2d(3)(Value(np.random.default_rng(0).normal(size=(4, 3, 5, 5)))).shape
    (4, 3, 5, 5)
    """

    _input_dims = (4,)


class _InstanceNorm(_NormBase):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x: Value) -> Value:
        self._check(x)
        unbatched = x.ndim == self._input_dims[0]
        if unbatched:
            x = x.unsqueeze(0)
        # torch's InstanceNorm counts no batches; momentum=None leaves the statistics still.
        factor = 0.0 if self.momentum is None else self.momentum
        use_input = self.training or not self.track_running_stats
        out = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                              use_input, factor, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """torch's ``InstanceNorm1d`` over (N, C, L) or (C, L); no affine by default.

    >>> InstanceNorm1d(1)(Value([[[1.0, 3.0]]])).tolist()
    [[[-1.0, 1.0]]]
    """

    _input_dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """torch's ``InstanceNorm2d`` over (N, C, H, W) or (C, H, W).

    >>> InstanceNorm2d(3)(Value(np.random.default_rng(0).normal(size=(2, 3, 4, 4)))).shape
    (2, 3, 4, 4)
    """

    _input_dims = (3, 4)


class GroupNorm(Module):
    """torch's ``GroupNorm``: ``num_channels`` split into ``num_groups``, each normalized per
    sample; a per-channel ``weight`` (1) and ``bias`` (0).

    >>> GroupNorm(2, 4)(Value(np.random.default_rng(0).normal(size=(2, 4, 3)))).shape
    (2, 4, 3)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = (
            num_groups, num_channels, eps, affine)
        self.weight = _parameter(np.ones(num_channels)) if affine else None
        self.bias = _empty(num_channels) if affine else None

    def forward(self, x: Value) -> Value:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _ChannelDropout(Module):
    _fn: Any = None

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: p must be between 0 and 1, got {p}")
        self.p = p

    def forward(self, x: Value) -> Value:
        return type(self)._fn(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Dropout1d(_ChannelDropout):
    """torch's ``Dropout1d``: whole channels of (N, C, L) zeroed in training.

    >>> Dropout1d(0.5).eval()(Value(np.ones((1, 2, 3)))).shape
    (1, 2, 3)
    """

    _fn = staticmethod(F.dropout1d)


class Dropout2d(_ChannelDropout):
    """torch's ``Dropout2d``: whole channels of (N, C, H, W) zeroed in training, the rest
    scaled by ``1 / (1 - p)``.

    >>> Dropout2d(0.5).eval()(Value(np.ones((1, 2, 3, 3)))).shape
    (1, 2, 3, 3)
    """

    _fn = staticmethod(F.dropout2d)


class Unflatten(Module):
    """torch's ``Unflatten``: dim ``dim`` split into ``unflattened_size``.

    >>> Unflatten(1, (2, 3))(Value(np.ones((4, 6)))).shape
    (4, 2, 3)
    """

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Value) -> Value:
        return x.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# ---- losses --------------------------------------------------------------------------------


class _Loss(Module):
    _fn: Any = None

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(
                f"{type(self).__name__}: reduction must be 'mean', 'sum' or 'none', "
                f"got {reduction!r}")
        self.reduction = reduction

    def forward(self, input: Value, target: Any) -> Value:
        return self._fn(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """The module form of ``F.mse_loss``; ``reduction`` is set when it is made.

    >>> MSELoss()(Value([1.0, 2.0]), [0.0, 0.0]).item()
    2.5
    """

    _fn = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    """The module form of ``F.l1_loss``; ``reduction`` is set when it is made.

    >>> L1Loss(reduction="sum")(Value([1.0, 2.0]), [0.0, 0.0]).item()
    3.0
    """

    _fn = staticmethod(F.l1_loss)


def _loss_buffer(x: Any) -> Value | None:
    """A loss's weight as a Value without gradient: in ``state_dict`` as a torch buffer."""
    if x is None:
        return None
    if isinstance(x, Value):
        return x.detach()  # shares the data; never a parameter
    return Value(x, requires_grad=False)


class CrossEntropyLoss(_Loss):
    """Logits (C,), (N, C) or (N, C, d1, ...) against class indices or probabilities;
    ``weight``, ``ignore_index`` and ``label_smoothing`` as ``F.cross_entropy``.

    >>> CrossEntropyLoss()(Value([[2.0, 0.0], [0.0, 2.0]]), [0, 1]).item()
    0.1269
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.weight = _loss_buffer(weight)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Value, target: Any) -> Value:
        return F.cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                               self.label_smoothing)


class NLLLoss(_Loss):
    """Log-probabilities against class indices; ``weight`` and ``ignore_index`` as
    ``F.nll_loss``.

    >>> NLLLoss()(Value([[-0.5, -1.0], [-2.0, -0.1]]), [0, 1]).item()
    0.3
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = _loss_buffer(weight)
        self.ignore_index = int(ignore_index)

    def forward(self, input: Value, target: Any) -> Value:
        return F.nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class BCELoss(_Loss):
    """The module form of ``F.binary_cross_entropy``: probabilities against 0/1 targets.

    >>> BCELoss(reduction="none")(Value([0.5, 0.9]), [1.0, 1.0]).tolist()
    [0.693, 0.105]
    """

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.weight = _loss_buffer(weight)

    def forward(self, input: Value, target: Any) -> Value:
        return F.binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """The module form of ``F.binary_cross_entropy_with_logits``: logits against 0/1 targets,
    with ``weight`` and ``pos_weight``.

    >>> BCEWithLogitsLoss()(Value([0.0, 0.0]), [1.0, 0.0]).item()
    0.693
    """

    def __init__(self, weight: Any = None, reduction: str = "mean",
                 pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.weight = _loss_buffer(weight)
        self.pos_weight = _loss_buffer(pos_weight)

    def forward(self, input: Value, target: Any) -> Value:
        return F.binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                  self.pos_weight)
