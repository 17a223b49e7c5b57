"""JAX's side of the training steps: one ``jax.jit``-compiled step, as JAX users write it.

The parameters are a pytree (a list of (W, b), W shaped (in, out)); the step returns the
new parameters, and the timer stops only after ``block_until_ready``. XLA's CPU backend uses
every core, as MikaGrad and PyTorch (2 threads) do here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .workloads import L2, LR

NAME = "JAX"


def version() -> str:
    return jax.__version__


def _forward(params: list, x: jax.Array) -> jax.Array:
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def _hinge(params: list, x: jax.Array, y: jax.Array) -> jax.Array:
    reg = sum((p * p).sum() for wb in params for p in wb)
    return jax.nn.relu(1 - y * _forward(params, x)).mean() + L2 * reg


def _cross_entropy(params: list, x: jax.Array, labels: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(_forward(params, x))
    return -jnp.take_along_axis(logp, labels[:, None], axis=1).mean()


def mlp_step(weights: list, x: np.ndarray, y: np.ndarray, loss: str,
             ) -> tuple[Callable[[], None], Callable[[], list[np.ndarray]]]:
    """One SGD step, jitted: forward, loss, gradients and the update in one XLA program."""
    loss_fn = _hinge if loss == "hinge" else _cross_entropy

    @jax.jit
    def update(params: list, x: jax.Array, y: jax.Array) -> list:
        grads = jax.grad(loss_fn)(params, x, y)
        return jax.tree.map(lambda p, g: p - LR * g, params, grads)

    params = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in weights]
    xs = jnp.asarray(x, jnp.float32)
    ys = jnp.asarray(y, jnp.float32 if loss == "hinge" else jnp.int32)
    box: dict[str, Any] = {"params": params}

    def step() -> None:
        box["params"] = update(box["params"], xs, ys)
        jax.block_until_ready(box["params"])

    def state() -> list[np.ndarray]:
        return [np.asarray(a) for wb in box["params"] for a in wb]
    return step, state
