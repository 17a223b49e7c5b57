"""Neural-network modules. ``Module``, ``Layer`` and ``MLP`` keep the original MikaGrad's API."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .creation import rand
from .engine import Value, get_default_dtype

__all__ = ["Module", "Layer", "MLP"]


class Module:
    """Base class: finds parameters (Values) and sub-modules held in attributes."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Value]]:
        seen: set[int] = set()
        for name, p in _walk(self, prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self) -> list[Value]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            if p.grad is not None:
                p.grad[...] = 0


def _walk(obj: Any, prefix: str) -> Iterator[tuple[str, Value]]:
    items: Any
    if isinstance(obj, Module):
        items = vars(obj).items()
    elif isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return
    for k, v in items:
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Value):
            if v.requires_grad:
                yield name, v
        elif isinstance(v, (Module, dict, list, tuple)):
            yield from _walk(v, name)


class Layer(Module):
    """A dense layer ``x @ W + b``, ReLU'd when ``nonlin`` (the original MikaGrad's Layer)."""

    def __init__(self, num_in: int, num_out: int, nonlin: bool = True) -> None:
        bound = 1.0 / math.sqrt(num_in)
        dt = get_default_dtype()
        self.w = rand(num_in, num_out, dtype=dt) * (2 * bound) - bound
        self.w = Value(self.w.numpy(), requires_grad=True)
        self.b = Value(np.zeros(num_out, dtype=dt), requires_grad=True)
        self.nonlin = nonlin

    def forward(self, x: Value) -> Value:
        out = x @ self.w + self.b
        return out.relu() if self.nonlin else out

    def __repr__(self) -> str:
        kind = "ReLU" if self.nonlin else "Linear"
        return f"Layer({self.w.shape[0]}, {self.w.shape[1]}, {kind})"


class MLP(Module):
    """ReLU hidden layers and a linear last layer: ``MLP(2, [16, 16, 1])``."""

    def __init__(self, num_in: int, num_outs: list[int]) -> None:
        sizes = [num_in] + list(num_outs)
        self.layers = [
            Layer(sizes[i], sizes[i + 1], nonlin=i != len(num_outs) - 1)
            for i in range(len(num_outs))
        ]

    def forward(self, x: Value) -> Value:
        for layer in self.layers:
            x = layer(x)
        return x

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
