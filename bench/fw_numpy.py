"""numpy's side: the same computations with hand-written gradients (no autograd).

Each function does the forward, the backward by hand and (for training steps) the SGD
update, in float32 unless told; it is the floor that an autograd engine's bookkeeping adds
to. ``bench.check`` verifies that these gradients match PyTorch's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .workloads import L2, LR, matmul_expr, matmul_operands

NAME = "numpy"
F32 = np.float32


def version() -> str:
    return np.__version__


def tiny() -> dict[str, tuple[str, dict[str, Any]]]:
    a, b = np.ones(1, F32), np.full(1, 2, F32)
    m = np.ones((4, 4), F32)
    return {
        "a + b, (1,), no grad": ("a + b", {"a": a, "b": b}),
        "a + b, (1,), requires grad": ("a + b", {"a": a, "b": b}),
        "a * b, (1,)": ("a * b", {"a": a, "b": b}),
        "a + 1.0, (1,)": ("a + 1.0", {"a": a}),
        "a.relu(), (1,)": ("np.maximum(a, 0)", {"a": a, "np": np}),
        "a.exp(), (1,)": ("np.exp(a)", {"a": a, "np": np}),
        "a.sum(), (1,)": ("a.sum()", {"a": a}),
        "a @ b, (4,4)": ("m @ m", {"m": m}),
    }


def _chain(x: np.ndarray, n_ops: int) -> np.ndarray:
    """Forward of the chain (keeping the ReLU masks), then its backward: d(sum)/dx."""
    y, masks = x, []
    for i in range(n_ops):
        k = i % 4
        if k == 0:
            y = y * 0.999
        elif k == 1:
            y = y + x
        elif k == 2:
            masks.append(y > 0)
            y = np.maximum(y, 0)
        else:
            y = y - 0.5
    y.sum()
    g, gx = np.ones_like(x), np.zeros_like(x)
    for i in reversed(range(n_ops)):
        k = i % 4
        if k == 0:
            g = g * 0.999
        elif k == 1:
            gx += g
        elif k == 2:
            g = g * masks.pop()
    return gx + g


def chain(n_ops: int, shape: tuple[int, ...]) -> Callable[[], Any]:
    x = np.random.default_rng(0).standard_normal(shape).astype(F32)
    return lambda: _chain(x, n_ops)


def chain_parts(n_ops: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """Forward and backward are one function here; 'build' is empty."""
    x = np.ones(1, F32)
    return (lambda: None), (lambda _: _chain(x, n_ops))


def _xent(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of logits ``z`` and its gradient dL/dz."""
    n = len(z)
    m = z.max(1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[rows, labels]))
    dz = e / s
    dz[rows, labels] -= 1
    dz /= n
    return loss, dz


def mlp_parts(weights: list, x: np.ndarray, y: np.ndarray, loss: str) -> tuple:
    """(forward giving the saved activations, zero_grad (nothing to do), backward giving the
    gradients, SGD update, state), so that the phases time as the other frameworks'."""
    params = [np.array(a, F32) for wb in weights for a in wb]
    xs = np.ascontiguousarray(x, F32)
    ys = np.asarray(y, F32) if loss == "hinge" else np.asarray(y, np.int64)
    n_layers = len(weights)

    def forward() -> tuple:
        acts, pre = [xs], []
        h = xs
        for i in range(n_layers):
            z = h @ params[2 * i] + params[2 * i + 1]
            pre.append(z)
            h = np.maximum(z, 0) if i < n_layers - 1 else z
            acts.append(h)
        if loss == "hinge":
            margin = 1 - ys * h
            _ = np.maximum(margin, 0).mean() + L2 * sum(float((p * p).sum()) for p in params)
            g = np.where(margin > 0, -ys, F32(0)) / len(h)
        else:
            _, g = _xent(h, ys)
        return acts, pre, g

    def backward(saved: tuple) -> list[np.ndarray]:
        acts, pre, g = saved
        grads: list[np.ndarray] = [None] * len(params)  # type: ignore[list-item]
        for i in reversed(range(n_layers)):
            if i < n_layers - 1:
                g = g * (pre[i] > 0)
            grads[2 * i] = acts[i].T @ g
            grads[2 * i + 1] = g.sum(0)
            if i:
                g = g @ params[2 * i].T
        if loss == "hinge":
            for p, gp in zip(params, grads):
                gp += (2 * L2) * p
        return grads

    def update(grads: list[np.ndarray]) -> None:
        for p, gp in zip(params, grads):
            p -= LR * gp

    return forward, (lambda: None), backward, update, (lambda: params)


def mlp_step(weights: list, x: np.ndarray, y: np.ndarray, loss: str,
             ) -> tuple[Callable[[], None], Callable[[], list[np.ndarray]]]:
    """One SGD step: forward, loss, backward by hand, update."""
    forward, _, backward, update, state = mlp_parts(weights, x, y, loss)
    return (lambda: update(backward(forward()))), state


def linear(batch: int, n_in: int, n_out: int) -> Callable[[], Any]:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n_out, n_in)).astype(F32)
    b = rng.standard_normal(n_out).astype(F32)
    x = rng.standard_normal((batch, n_in)).astype(F32)

    def run() -> Any:
        out = x @ w.T + b
        out.sum()
        g = np.ones_like(out)
        return g.T @ x, g.sum(0), g @ w  # dW, db, dx
    return run


def cross_entropy(n: int, c: int) -> Callable[[], Any]:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, c)).astype(F32)
    labels = rng.integers(0, c, n)
    return lambda: _xent(z, labels)


def softmax(n: int, c: int) -> Callable[[], Any]:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((n, c)).astype(F32)
    w = rng.standard_normal((n, c)).astype(F32)

    def run() -> Any:
        e = np.exp(z - z.max(-1, keepdims=True))
        s = e / e.sum(-1, keepdims=True)
        return s * (w - (w * s).sum(-1, keepdims=True))
    return run


def matmul(n: int, dtype: str, form: str) -> Callable[[], Any]:
    a, b = matmul_operands(n, dtype, form)
    expr = matmul_expr(form)
    return lambda: expr(a, b)
