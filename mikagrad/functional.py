"""Functional forms of activations and losses, built from Value ops (no gradient code here).

Each loss takes ``reduction='mean' | 'sum' | 'none'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .creation import eye
from .engine import Value, _as_array, tensor

__all__ = [
    "relu", "tanh", "sigmoid", "gelu", "leaky_relu", "softplus", "softmax", "log_softmax",
    "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "hinge_loss", "one_hot",
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
    """``max(x, 0)`` elementwise; ``x.relu()``.

    >>> relu(Value([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    """
    return x.relu()


def tanh(x: Value) -> Value:
    """The hyperbolic tangent, elementwise; ``x.tanh()``.

    >>> tanh(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.762, 0.0, 0.964]
    """
    return x.tanh()


def sigmoid(x: Value) -> Value:
    """``1 / (1 + exp(-x))`` elementwise; ``x.sigmoid()``.

    >>> sigmoid(Value([-1.0, 0.0, 2.0])).tolist()
    [0.269, 0.5, 0.881]
    """
    return x.sigmoid()


def gelu(x: Value) -> Value:
    """GELU in its exact erf form, ``x * Phi(x)`` (PyTorch's default); ``x.gelu()``.

    >>> gelu(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.159, 0.0, 1.954]
    """
    return x.gelu()


def softplus(x: Value) -> Value:
    """``log(1 + exp(x))`` elementwise, computed stably for large ``|x|``; ``x.softplus()``.

    >>> softplus(Value([-1.0, 0.0, 2.0])).tolist()
    [0.313, 0.693, 2.127]
    """
    return x.softplus()


def leaky_relu(x: Value, negative_slope: float = 0.01) -> Value:
    """``x`` where positive, else ``negative_slope * x``; ``x.leaky_relu(negative_slope)``.

    >>> leaky_relu(Value([-1.0, 0.0, 2.0]), 0.1).tolist()
    [-0.1, 0.0, 2.0]
    """
    return x.leaky_relu(negative_slope)


def softmax(x: Value, dim: int = -1) -> Value:
    """``exp(x)`` normalised to sum to 1 along ``dim``, one fused op; ``x.softmax(dim)``.

    >>> softmax(Value([-1.0, 0.0, 2.0])).tolist()
    [0.042, 0.114, 0.844]
    """
    return x.softmax(dim)


def log_softmax(x: Value, dim: int = -1) -> Value:
    """``log(softmax(x, dim))``, one fused op that stays finite where softmax underflows.

    >>> log_softmax(Value([-1.0, 0.0, 2.0])).tolist()
    [-3.170, -2.170, -0.170]
    """
    return x.log_softmax(dim)


def mse_loss(input: Value, target: Any, reduction: str = "mean") -> Value:
    """Mean squared error: ``((input - target) ** 2).mean()``.

    >>> mse_loss(Value([1.0, 2.0]), [0.0, 0.0]).item()
    2.5
    """
    t = _v(target, input)
    _same_shape("mse_loss", input, t)
    d = input - t
    return _reduce(d * d, reduction, "mse_loss")


def l1_loss(input: Value, target: Any, reduction: str = "mean") -> Value:
    """Mean absolute error: ``(input - target).abs().mean()``.

    >>> l1_loss(Value([1.0, 2.0]), [0.0, 4.0], reduction="none").tolist()
    [1.0, 2.0]
    """
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
    if t.size and t.min() < 0:
        raise IndexError(f"{op}: class index {int(t.min())} is out of range (must be >= 0)")
    return t.astype(np.int64)


def nll_loss(input: Value, target: Any, reduction: str = "mean") -> Value:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at class indices.

    Pair it with ``log_softmax``; ``cross_entropy`` does both in one call.

    >>> logp = Value([[-0.5, -1.0], [-2.0, -0.1]])
    >>> nll_loss(logp, [0, 1]).item()
    0.3
    """
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
    """Cross-entropy of logits (N, C) with class indices (N,) or class probabilities (N, C).

    >>> logits = Value([[2.0, 0.0], [0.0, 2.0]])
    >>> cross_entropy(logits, [0, 1]).item()
    0.1269
    """
    dim = -1 if input.ndim == 1 else 1
    logp = input.log_softmax(dim)
    t = target.numpy() if isinstance(target, Value) else np.asarray(target)
    if t.shape == input.shape and t.dtype.kind == "f" and input.ndim > 0:
        probs = _v(target, input)
        return _reduce(-(probs * logp).sum(dim), reduction, "cross_entropy")
    return nll_loss(logp, target, reduction)


def binary_cross_entropy(input: Value, target: Any, reduction: str = "mean") -> Value:
    """BCE of probabilities; each log is clamped at -100, as in PyTorch.

    >>> binary_cross_entropy(Value([0.5, 0.9]), [1.0, 1.0], reduction="none").tolist()
    [0.693, 0.105]
    """
    t = _v(target, input)
    _same_shape("binary_cross_entropy", input, t)
    lp = input.log().clamp(min=-100)
    lq = (1 - input).log().clamp(min=-100)
    return _reduce(-(t * lp + (1 - t) * lq), reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(input: Value, target: Any,
                                     reduction: str = "mean") -> Value:
    """Stable BCE of logits: ``softplus(x) - x * y``.

    The same as ``binary_cross_entropy(sigmoid(x), y)``, but exact where the sigmoid rounds
    to 0 or 1 (below, the clamped BCE would give 100 for the second element).

    >>> binary_cross_entropy_with_logits(Value([0.0, 50.0]), [1.0, 0.0], reduction="none").tolist()
    [0.693, 50.0]
    """
    t = _v(target, input)
    _same_shape("binary_cross_entropy_with_logits", input, t)
    return _reduce(input.softplus() - input * t, reduction, "binary_cross_entropy_with_logits")


def hinge_loss(scores: Value, labels: Any, reduction: str = "mean") -> Value:
    """micrograd's max-margin loss for labels in {-1, +1}: ``relu(1 - y * s)``.

    >>> hinge_loss(Value([2.0, -0.5]), [1.0, 1.0], reduction="none").tolist()
    [0.0, 1.5]
    """
    y = _v(labels, scores)
    _same_shape("hinge_loss", scores, y)
    return _reduce((1 - y * scores).relu(), reduction, "hinge_loss")


def one_hot(indices: Any, num_classes: int = -1) -> Value:
    """torch's ``one_hot``: an int64 Value of shape ``(*indices.shape, num_classes)`` with a 1
    at each index; ``num_classes=-1`` takes the largest index plus one.

    >>> one_hot(tensor([0, 2]), num_classes=3).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    idx = indices if isinstance(indices, Value) else tensor(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be an integer tensor, got {idx.dtype}")
    lo, hi = (int(idx.min().item()), int(idx.max().item())) if idx.size else (0, -1)
    n = hi + 1 if num_classes == -1 else int(num_classes)
    if lo < 0 or hi >= n:
        raise ValueError(
            f"one_hot: indices must lie in [0, {n}), got {lo if lo < 0 else hi} "
            f"(shape {idx.shape})"
        )
    return eye(n, dtype="int64")[idx]
