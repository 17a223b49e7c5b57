"""MLX's side of the training steps (``mlx[cpu]``): ``mlx.nn`` layers, ``mlx.optimizers.SGD``
and one ``mx.compile``-d step over the model and optimizer state, as in MLX's own examples.
MLX is lazy: the timer stops only after ``mx.eval`` of the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from .workloads import L2, LR

NAME = "MLX"


def version() -> str:
    return mx.__version__


def _model(weights: list) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(weights):
        lin = nn.Linear(w.shape[0], w.shape[1])
        lin.weight = mx.array(np.ascontiguousarray(w.T, np.float32))  # (out, in), as torch
        lin.bias = mx.array(np.asarray(b, np.float32))
        layers += [lin] if i == len(weights) - 1 else [lin, nn.ReLU()]
    return nn.Sequential(*layers)


def mlp_step(weights: list, x: np.ndarray, y: np.ndarray, loss: str,
             ) -> tuple[Callable[[], None], Callable[[], list[np.ndarray]]]:
    """One SGD step, compiled: forward, loss, ``nn.value_and_grad`` and the update."""
    model = _model(weights)
    mx.eval(model.parameters())
    opt = optim.SGD(learning_rate=LR)
    xs = mx.array(np.asarray(x, np.float32))
    if loss == "hinge":
        ys = mx.array(np.asarray(y, np.float32))

        def loss_fn(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
            reg = sum((p * p).sum() for _, p in tree_flatten(model.parameters()))
            return nn.relu(1 - y * model(x)).mean() + L2 * reg
    else:
        ys = mx.array(np.asarray(y, np.int32))

        def loss_fn(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
            return nn.losses.cross_entropy(model(x), y, reduction="mean")

    loss_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, opt.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def update(x: mx.array, y: mx.array) -> mx.array:
        value, grads = loss_and_grad(model, x, y)
        opt.update(model, grads)
        return value

    def step() -> None:
        update(xs, ys)
        mx.eval(state)

    def params() -> list[np.ndarray]:
        lins = [m for m in model.layers if isinstance(m, nn.Linear)]
        return [a for m in lins for a in (np.array(m.weight).T, np.array(m.bias))]
    return step, params

