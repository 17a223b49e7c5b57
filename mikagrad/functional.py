"""Functional forms of activations and losses, built from Value ops (no gradient code here).

Each loss takes ``reduction='mean' | 'sum' | 'none'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import Value, _as_array

__all__ = [
    "relu", "tanh", "sigmoid", "gelu", "leaky_relu", "softplus", "softmax", "log_softmax",
    "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "hinge_loss",
]


def _v(x: Any, like: Value | None = None) -> Value:
    if isinstance(x, Value):
        return x
    dtype = like.dtype if like is not None else None
    return Value(_as_array(x, dtype), requires_grad=False)


def _reduce(x: Value, reduction: str, op: str) -> Value:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _same_shape(op: str, a: Value, b: Value) -> None:
    if a.shape != b.shape:
        from .engine import ShapeError
        raise ShapeError(f"{op}: input has shape {a.shape} but target has shape {b.shape}")


def relu(x: Value) -> Value:
    return x.relu()


def tanh(x: Value) -> Value:
    return x.tanh()


def sigmoid(x: Value) -> Value:
    return x.sigmoid()


def gelu(x: Value) -> Value:
    return x.gelu()


def softplus(x: Value) -> Value:
    return x.softplus()


def leaky_relu(x: Value, negative_slope: float = 0.01) -> Value:
    return x.leaky_relu(negative_slope)


def softmax(x: Value, dim: int = -1) -> Value:
    return x.softmax(dim)


def log_softmax(x: Value, dim: int = -1) -> Value:
    return x.log_softmax(dim)


def mse_loss(input: Value, target: Any, reduction: str = "mean") -> Value:
    """Mean squared error: ``((input - target) ** 2).mean()``."""
    t = _v(target, input)
    _same_shape("mse_loss", input, t)
    d = input - t
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Value, target: Any, reduction: str = "mean") -> Value:
    t = _v(target, input)
    _same_shape("l1_loss", input, t)
    return _reduce((input - t).abs(), reduction, "l1_loss")


def _class_indices(op: str, target: Any, n: int) -> np.ndarray:
    t = np.asarray(target.numpy() if isinstance(target, Value) else target)
    if t.dtype.kind == "f":
        if not np.all(t == np.round(t)):
            raise ValueError(f"{op}: class-index targets must be integers")
        t = t.astype(np.int64)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices, got dtype {t.dtype}")
    if t.shape != (n,):
        from .engine import ShapeError
        raise ShapeError(f"{op}: expected {n} class indices, got target of shape {t.shape}")
    return t.astype(np.int64)


def nll_loss(input: Value, target: Any, reduction: str = "mean") -> Value:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at class indices."""
    x = input.unsqueeze(0) if input.ndim == 1 else input
    if x.ndim != 2:
        from .engine import ShapeError
        raise ShapeError(f"nll_loss: expected input of shape (N, C), got {input.shape}")
    idx = _class_indices("nll_loss", np.reshape(np.asarray(
        target.numpy() if isinstance(target, Value) else target), (-1,)), x.shape[0])
    picked = -x.gather(1, idx.reshape(-1, 1)).reshape(-1)
    if input.ndim == 1 and reduction == "none":
        picked = picked.reshape(())
    return _reduce(picked, reduction, "nll_loss")


def cross_entropy(input: Value, target: Any, reduction: str = "mean") -> Value:
    """Cross-entropy of logits (N, C) with class indices (N,) or class probabilities (N, C)."""
    dim = -1 if input.ndim == 1 else 1
    logp = input.log_softmax(dim)
    t = target.numpy() if isinstance(target, Value) else np.asarray(target)
    if t.shape == input.shape and t.dtype.kind == "f" and input.ndim > 0:
        probs = _v(target, input)
        return _reduce(-(probs * logp).sum(dim), reduction, "cross_entropy")
    return nll_loss(logp, target, reduction)


def binary_cross_entropy(input: Value, target: Any, reduction: str = "mean") -> Value:
    """BCE of probabilities; each log is clamped at -100, as in PyTorch."""
    t = _v(target, input)
    _same_shape("binary_cross_entropy", input, t)
    lp = input.log().clamp(min=-100)
    lq = (1 - input).log().clamp(min=-100)
    return _reduce(-(t * lp + (1 - t) * lq), reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Value, target: Any,
                                     reduction: str = "mean") -> Value:
    """Stable BCE of logits: ``softplus(x) - x * y``."""
    t = _v(target, input)
    _same_shape("binary_cross_entropy_with_logits", input, t)
    return _reduce(input.softplus() - input * t, reduction, "binary_cross_entropy_with_logits")


def hinge_loss(scores: Value, labels: Any, reduction: str = "mean") -> Value:
    """micrograd's max-margin loss for labels in {-1, +1}: ``relu(1 - y * s)``."""
    y = _v(labels, scores)
    _same_shape("hinge_loss", scores, y)
    return _reduce((1 - y * scores).relu(), reduction, "hinge_loss")
