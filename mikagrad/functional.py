"""Functional forms of activations and losses, built from Value ops (no gradient code here).

Each loss takes ``reduction='mean' | 'sum' | 'none'``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .creation import eye
from .engine import Value, _as_array, tensor
from .ops import where

__all__ = [
    "relu", "tanh", "sigmoid", "gelu", "leaky_relu", "softplus", "softmax", "log_softmax",
    "mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
    "binary_cross_entropy_with_logits", "hinge_loss", "one_hot", "logsigmoid", "silu",
    "mish", "dropout", "embedding", "scaled_dot_product_attention",
]


def _v(x: Any, like: Value | None = None) -> Value:
    if isinstance(x, Value):
        return x
    dtype = like.dtype if like is not None else None
    return Value(_as_array(x, dtype), requires_grad=False)


def _weight(x: Any, like: Value) -> Value:
    """A loss weight in the input's dtype, as torch requires (a float64 weight must not turn
    a float32 loss into float64)."""
    w = _v(x, like)
    return w if w.dtype == like.dtype or not like._is_float else w.to(like.dtype)


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


def silu(x: Value) -> Value:
    """SiLU (swish): ``x * sigmoid(x)``.

    >>> silu(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.269, 0.0, 1.762]
    """
    return x * x.sigmoid()


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


def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _broadcasts_to(op: str, name: str, w: Value, shape: tuple[int, ...]) -> None:
    """``w`` must broadcast to ``shape`` without growing it (torch multiplies in place)."""
    try:
        ok = np.broadcast_shapes(w.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        from .engine import ShapeError
        raise ShapeError(f"{op}: {name} of shape {w.shape} does not broadcast to the input's "
                         f"shape {shape}")


def _class_dim(op: str, input: Value) -> int:
    if input.ndim == 0:
        from .engine import ShapeError
        raise ShapeError(f"{op}: expected input of shape (C,), (N, C) or (N, C, d1, ...), "
                         f"got {input.shape}")
    return 0 if input.ndim == 1 else 1


def _class_weight(op: str, weight: Any, input: Value, n_classes: int) -> Value | None:
    if weight is None:
        return None
    w = _weight(weight, input)
    if w.shape != (n_classes,):
        from .engine import ShapeError
        raise ShapeError(f"{op}: weight must have shape ({n_classes},) for input of shape "
                         f"{input.shape}, got weight of shape {w.shape}")
    return w


def _class_indices(op: str, target: Any, input: Value,
                   ignore_index: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Class-index targets as int64 (ignored ones set to 0) and the mask of ignored ones
    (None when no target is ignored: the common case, kept cheap).

    Input (C,) takes a target of shape () (or (1,), as torch); (N, C, d1, ...) takes (N, d1, ...).
    """
    t = np.asarray(target.numpy() if isinstance(target, Value) else target)
    if t.dtype.kind == "f":
        if not np.all(t == np.round(t)):
            raise ValueError(f"{op}: class-index targets must be integers")
        t = t.astype(np.int64)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold class indices, got dtype {t.dtype}")
    want = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if input.ndim == 1 and t.shape == (1,):
        t = t.reshape(())
    if t.shape != want:
        from .engine import ShapeError
        raise ShapeError(f"{op}: input of shape {input.shape} needs class indices of shape "
                         f"{want}, got target of shape {t.shape}")
    t = t.astype(np.int64, copy=False)
    n_classes = input.shape[_class_dim(op, input)]
    if t.size:
        lo, hi = int(t.min()), int(t.max())
        if 0 <= lo and hi < n_classes and not lo <= ignore_index <= hi:
            return t, None
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise IndexError(f"{op}: class index {int(t[bad].flat[0])} is out of range for "
                         f"{n_classes} classes (expected 0 <= index < {n_classes}, or "
                         f"ignore_index={ignore_index})")
    return np.where(ignored, 0, t), ignored


def _drop(ignored: np.ndarray | None, x: Value) -> Value:
    """``x`` with 0 where ``ignored`` (and no gradient there); the zero has x's dtype, so a
    0-d float32 ``x`` stays float32."""
    if ignored is None or not ignored.any():
        return x
    return where(ignored, tensor(0, dtype=x.dtype), x)


def _nll(op: str, logp: Value, idx: np.ndarray, ignored: np.ndarray | None, w: Value | None,
         reduction: str) -> Value:
    """torch's nll_loss on validated indices: ``-w[t] * logp[t]``, 0 where ignored; the mean
    divides by the sum of ``w[t]`` over the targets kept (their count without weights)."""
    if logp.ndim == 1:
        picked = logp.gather(0, idx.reshape(1)).reshape(())
    else:
        picked = logp.gather(1, np.expand_dims(idx, 1)).reshape(idx.shape)
    wt = None if w is None else w.gather(0, idx.reshape(-1)).reshape(idx.shape)
    loss = _drop(ignored, -picked if wt is None else -(picked * wt))
    if reduction != "mean":
        return _reduce(loss, reduction, op)
    return loss.sum() / _total_weight(wt, ignored, idx.size)


def _total_weight(wt: Value | None, ignored: np.ndarray | None, n: int) -> Any:
    """The mean's denominator for class-index targets: the sum of ``w[t]`` over the targets
    kept (their count without weights); 0 when every target is ignored, so the mean is nan."""
    if wt is None:
        return float(n - (0 if ignored is None else np.count_nonzero(ignored)))
    return _drop(ignored, wt).sum()


def nll_loss(input: Value, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Value:
    """Negative log-likelihood of log-probabilities ``input`` at class indices, as torch.

    Input (C,), (N, C) or (N, C, d1, ...) with target (), (N,) or (N, d1, ...). ``weight`` (C,)
    scales each class; targets equal to ``ignore_index`` add 0. The mean is
    ``sum(w[t] * loss) / sum(w[t])`` over the targets kept (nan if none is). Pair it with
    ``log_softmax``; ``cross_entropy`` does both in one call.

    >>> logp = Value([[-0.5, -1.0], [-2.0, -0.1]])
    >>> nll_loss(logp, [0, 1]).item(), nll_loss(logp, [0, -100]).item()
    (0.3, 0.5)
    """
    op = "nll_loss"
    _check_reduction(reduction, op)
    cd = _class_dim(op, input)
    idx, ignored = _class_indices(op, target, input, ignore_index)
    return _nll(op, input, idx, ignored, _class_weight(op, weight, input, input.shape[cd]),
                reduction)


def cross_entropy(input: Value, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Value:
    """Cross-entropy of logits, as torch: ``nll_loss(log_softmax(input, 1), target)``.

    Input (C,), (N, C) or (N, C, d1, ...); the target holds class indices ((), (N,) or
    (N, d1, ...)) or class probabilities (input's shape). ``weight``, ``ignore_index`` as in
    ``nll_loss``; ``label_smoothing`` mixes the target with the uniform distribution.

    >>> logits = Value([[2.0, 0.0], [0.0, 2.0]])
    >>> cross_entropy(logits, [0, 1]).item()
    0.1269
    >>> cross_entropy(logits, [0, 1], label_smoothing=1.0).item()  # the uniform target
    1.1269
    """
    op = "cross_entropy"
    _check_reduction(reduction, op)
    ls = float(label_smoothing)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {ls}")
    cd = _class_dim(op, input)
    n_classes = input.shape[cd]
    w = _class_weight(op, weight, input, n_classes)
    wb = None if w is None else w.reshape([n_classes] + [1] * (input.ndim - cd - 1))
    logp = input.log_softmax(cd)
    t = target.numpy() if isinstance(target, Value) else np.asarray(target)
    if t.shape == input.shape:  # class probabilities
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: class-probability targets (the input's shape "
                            f"{input.shape}) must be floating point, got {t.dtype}")
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for class-probability "
                             f"targets, got {ignore_index}")
        p = _v(target, input)
        if ls > 0:
            p = p * (1 - ls) + ls / n_classes
        prod = logp * p if wb is None else logp * p * wb
        if reduction == "none":
            return -prod.sum(cd)
        if reduction == "sum":
            return -prod.sum()
        return -prod.sum() / (input.size // n_classes if n_classes else 0)
    idx, ignored = _class_indices(op, target, input, ignore_index)
    nll = _nll(op, logp, idx, ignored, w, reduction)
    if ls == 0:
        return nll
    smooth = -logp.sum(cd) if wb is None else -(logp * wb).sum(cd)
    smooth = _drop(ignored, smooth)
    if reduction == "mean":
        wt = None if w is None else w.gather(0, idx.reshape(-1)).reshape(idx.shape)
        smooth = smooth.sum() / _total_weight(wt, ignored, idx.size)
    elif reduction == "sum":
        smooth = smooth.sum()
    return (1 - ls) * nll + smooth * (ls / n_classes)


def binary_cross_entropy(input: Value, target: Any, weight: Any = None,
                         reduction: str = "mean") -> Value:
    """BCE of probabilities; each log is clamped at -100 (one fused op), as PyTorch. ``weight``
    (broadcast to the input's shape) scales each element's loss.

    >>> binary_cross_entropy(Value([0.5, 0.9]), [1.0, 1.0], reduction="none").tolist()
    [0.693, 0.105]
    >>> binary_cross_entropy(Value([0.5, 0.9]), [1.0, 1.0], [2.0, 0.0], reduction="none").tolist()
    [1.386, 0.0]
    """
    op = "binary_cross_entropy"
    _check_reduction(reduction, op)
    t = _v(target, input)
    _same_shape(op, input, t)
    lo, hi = (float(input.min().item()), float(input.max().item())) if input.size else (0, 0)
    if not (0 <= lo and hi <= 1):
        raise ValueError(f"{op}: all elements of input should be between 0 and 1, got values "
                         f"in [{lo}, {hi}] (shape {input.shape})")
    # One fused op: its derivative (a - y)/max(a(1 - a), 1e-12) stays finite at 0 and 1.
    loss = input._bin(t, "binary_cross_entropy")
    if weight is not None:
        w = _weight(weight, input)
        _broadcasts_to(op, "weight", w, input.shape)
        loss = loss * w
    return _reduce(loss, reduction, op)


def logsigmoid(x: Value) -> Value:
    """``log(sigmoid(x))`` elementwise, computed stably as ``-softplus(-x)``.

    >>> logsigmoid(Value([-1.0, 0.0, 2.0])).tolist()
    [-1.313, -0.693, -0.127]
    """
    return -((-x).softplus())


def binary_cross_entropy_with_logits(input: Value, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Value:
    """BCE of logits, torch's formula: ``(1 - y) * x - (1 + (pos_weight - 1) * y) *
    logsigmoid(x)``, times ``weight``. ``pos_weight`` (e.g. (C,), one per class of the last
    dim) and ``weight`` broadcast to the input's shape.

    The same as ``binary_cross_entropy(sigmoid(x), y)``, but exact where the sigmoid rounds
    to 0 or 1 (below, the clamped BCE would give 100 for the second element).

    >>> binary_cross_entropy_with_logits(Value([0.0, 50.0]), [1.0, 0.0], reduction="none").tolist()
    [0.693, 50.0]
    >>> binary_cross_entropy_with_logits(Value([0.0]), [1.0], pos_weight=[3.0]).item()
    2.079
    """
    op = "binary_cross_entropy_with_logits"
    _check_reduction(reduction, op)
    t = _v(target, input)
    _same_shape(op, input, t)
    if pos_weight is None:
        loss = (1 - t) * input - logsigmoid(input)
    else:
        pw = _weight(pos_weight, input)
        _broadcasts_to(op, "pos_weight", pw, input.shape)
        loss = (1 - t) * input - ((pw - 1) * t + 1) * logsigmoid(input)
    if weight is not None:
        w = _weight(weight, input)
        _broadcasts_to(op, "weight", w, input.shape)
        loss = loss * w
    return _reduce(loss, reduction, op)


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


def mish(x: Value) -> Value:
    """Mish: ``x * tanh(softplus(x))``.

    >>> mish(Value([-1.0, 0.0, 2.0])).tolist()
    [-0.303, 0.0, 1.944]
    """
    return x * x.softplus().tanh()


def dropout(input: Value, p: float = 0.5, training: bool = True) -> Value:
    """Zeros each element with probability ``p`` and scales the rest by ``1 / (1 - p)`` when
    ``training``; the identity otherwise. The mask draws from ``manual_seed``.

    >>> dropout(Value([1.0, 2.0]), 0.5, training=False).tolist()
    [1.0, 2.0]
    """
    from .creation import rand

    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return input * ((rand(input.shape, dtype=input.dtype) >= p) * (1.0 / (1.0 - p)))


def embedding(input: Any, weight: Value, padding_idx: int | None = None) -> Value:
    """The rows of ``weight`` (num_embeddings, dim) at the integer indices ``input``: shape
    ``(*input.shape, dim)``, as ``torch.nn.functional.embedding``. The row ``padding_idx``
    (negative counts from the end) takes no gradient.

    >>> embedding(tensor([[0, 2]]), Value([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])).tolist()
    [[[1.0, 1.0], [3.0, 3.0]]]
    """
    idx = input if isinstance(input, Value) else tensor(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor, got {idx.dtype}")
    if idx.size and int(idx.min().item()) < 0:
        raise IndexError(f"embedding: index {int(idx.min().item())} is out of range for "
                         f"{weight.shape[0]} embeddings")
    return _padded(weight, padding_idx, "embedding")[idx]


def _padded(weight: Value, padding_idx: int | None, op: str) -> Value:
    """``weight`` with row ``padding_idx`` cut from the graph (its gradient is 0, as torch's)."""
    if padding_idx is None or not weight.requires_grad:
        return weight
    n = weight.shape[0]
    if not -n <= padding_idx < n:
        raise IndexError(f"{op}: padding_idx {padding_idx} is out of range for {n} embeddings")
    from .ops import where

    row = np.zeros((n, 1), dtype=bool)
    row[padding_idx] = True
    return where(tensor(row), weight.detach(), weight)


def scaled_dot_product_attention(query: Value, key: Value, value: Value, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None) -> Value:
    """``softmax(q @ kᵀ · scale + mask) @ v`` over the last two dims, as torch's: ``scale``
    defaults to ``1/sqrt(E)``; ``is_causal`` masks out the future (a lower-triangular mask);
    a bool ``attn_mask`` keeps where True, a float one is added.

    >>> q = Value([[[1.0, 0.0], [0.0, 1.0]]])
    >>> scaled_dot_product_attention(q, q, q, is_causal=True).tolist()[0][0]
    [1.0, 0.0]
    """
    from .ops import tril, where

    L, S, E = query.shape[-2], key.shape[-2], query.shape[-1]
    s = (query @ key.transpose(-2, -1)) * (1.0 / math.sqrt(E) if scale is None else scale)
    neg = tensor(float("-inf"), dtype=s.dtype)
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, "
                             "not both")
        s = where(tril(tensor(np.ones((L, S), dtype=bool))), s, neg)
    elif attn_mask is not None:
        m = attn_mask if isinstance(attn_mask, Value) else tensor(attn_mask)
        s = where(m, s, neg) if m.dtype == np.bool_ else s + m
    p = s.softmax(-1)
    if dropout_p > 0.0:
        p = dropout(p, dropout_p)
    return p @ value
