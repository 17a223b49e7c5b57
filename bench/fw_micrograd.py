"""micrograd's side (the scalar engine in ``bench/micrograd.py``), as Karpathy's demo runs it.

Inputs are Python floats (``x.tolist()``): faster than the demo's numpy scalars, so the
ratios against micrograd are conservative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import micrograd as mgd
from .workloads import L2, LR

NAME = "micrograd"


def version() -> str:
    return "inline copy"


def tiny() -> dict[str, tuple[str, dict[str, Any]]]:
    a, b = mgd.Value(1.0), mgd.Value(2.0)
    return {
        "a + b, (1,), requires grad": ("a + b", {"a": a, "b": b}),
        "a * b, (1,)": ("a * b", {"a": a, "b": b}),
        "a + 1.0, (1,)": ("a + 1.0", {"a": a}),
        "a.relu(), (1,)": ("a.relu()", {"a": a}),
        "a.exp(), (1,)": ("a.exp()", {"a": a}),
    }


def _chain(xs: list, n_ops: int) -> Any:
    ys = list(xs)
    for i in range(n_ops):
        k = i % 4
        if k == 0:
            ys = [y * 0.999 for y in ys]
        elif k == 1:
            ys = [y + x for y, x in zip(ys, xs)]
        elif k == 2:
            ys = [y.relu() for y in ys]
        else:
            ys = [y - 0.5 for y in ys]
    return sum(ys)


def chain(n_ops: int, shape: tuple[int, ...]) -> Callable[[], Any]:
    xs = [mgd.Value(v) for v in np.random.default_rng(0).standard_normal(shape).ravel().tolist()]

    def run() -> Any:
        for x in xs:
            x.grad = 0
        _chain(xs, n_ops).backward()
        return xs  # the gradients are in .grad
    return run


def chain_parts(n_ops: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    xs = [mgd.Value(1.0)]
    return (lambda: _chain(xs, n_ops)), (lambda loss: loss.backward())


def _model(weights: list) -> mgd.MLP:
    sizes = [weights[0][0].shape[0]] + [w.shape[1] for w, _ in weights]
    model = mgd.MLP(sizes[0], sizes[1:])
    for layer, (w, b) in zip(model.layers, weights):
        for j, neuron in enumerate(layer.neurons):
            for i, p in enumerate(neuron.w):
                p.data = float(w[i, j])
            neuron.b.data = float(b[j])
    return model


def mlp_step(weights: list, x: np.ndarray, y: np.ndarray, loss: str,
             ) -> tuple[Callable[[], None], Callable[[], list[np.ndarray]]]:
    """The moons demo's step (hinge + L2), or the same loop with cross-entropy."""
    model = _model(weights)
    params = model.parameters()
    rows = np.asarray(x, np.float64).tolist()
    labels = np.asarray(y).ravel().tolist()

    def step() -> None:
        inputs = [list(map(mgd.Value, row)) for row in rows]
        scores = list(map(model, inputs))
        if loss == "hinge":
            losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores)]
            data_loss = sum(losses) * (1.0 / len(losses))
            total = data_loss + L2 * sum(p * p for p in params)
        else:
            losses = []
            for s, yi in zip(scores, labels):
                m = max(v.data for v in s)  # a constant shift, for stability
                lse = sum((v - m).exp() for v in s).log() + m
                losses.append(lse - s[int(yi)])
            total = sum(losses) * (1.0 / len(losses))
        model.zero_grad()
        total.backward()
        for p in params:
            p.data -= LR * p.grad

    def state() -> list[np.ndarray]:
        out = []
        for layer in model.layers:
            out.append(np.array([[p.data for p in n.w] for n in layer.neurons]).T)
            out.append(np.array([n.b.data for n in layer.neurons]))
        return out
    return step, state
