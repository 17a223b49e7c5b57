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
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d",
    "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "pad", "unfold", "fold", "interpolate",
    "batch_norm", "instance_norm", "group_norm", "layer_norm", "dropout1d", "dropout2d",
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


# ---- convolution, pooling, padding, resizing --------------------------------------------------
# Thin faces of the core's ops (rust/core/src/ops/conv.rs, pool.rs): arguments are parsed
# and checked here, shapes and kernels there.


def _ints(op: str, name: str, v: Any, n: int, least: int = 1) -> tuple[int, ...]:
    """An int or a sequence of ``n`` ints, each at least ``least``."""
    items = (v,) * n if isinstance(v, (int, np.integer)) else tuple(v)
    if len(items) != n or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                                  for i in items):
        raise TypeError(f"{op}: {name} must be an int or {n} ints, got {v!r}")
    if any(i < least for i in items):
        raise ValueError(f"{op}: {name} must be at least {least}, got {v!r}")
    return tuple(int(i) for i in items)


def _node(op: str, x: Any, name: str = "input") -> Value:
    if not isinstance(x, Value):
        x = _v(x)
    if not x._is_float:
        raise TypeError(f"{op}: {name} must be a float tensor, got {x.dtype}")
    return x


def _conv_padding(op: str, padding: Any, n: int, weight: Value, stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """(left, right) padding per dim; 'same' puts an odd remainder on the right, as torch."""
    if isinstance(padding, str):
        if padding == "valid":
            return [0] * n, [0] * n
        if padding != "same":
            raise ValueError(f"{op}: padding must be 'valid', 'same', an int or {n} ints, "
                             f"got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
        if weight.ndim != n + 2:
            from .engine import ShapeError
            raise ShapeError(f"{op}: weight must be {n + 2}-D, got shape {weight.shape}")
        total = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:], strict=True)]
        return [t // 2 for t in total], [t - t // 2 for t in total]
    p = list(_ints(op, "padding", padding, n, least=0))
    return p, p


def _conv(op: str, n: int, input: Any, weight: Any, bias: Any, stride: Any, padding: Any,
          dilation: Any, groups: int) -> Value:
    from .engine import _wrap

    x, w = _node(op, input), _node(op, weight, "weight")
    s, d = _ints(op, "stride", stride, n), _ints(op, "dilation", dilation, n)
    g = _ints(op, "groups", groups, 1)[0]
    lo, hi = _conv_padding(op, padding, n, w, s, d)
    b = None if bias is None else _node(op, bias, "bias")
    node = x._node.conv(w._node, None if b is None else b._node, list(s), lo, hi, list(d), g)
    return _wrap(node, x, w) if b is None else _wrap(node, x, w, b)


def conv1d(input: Value, weight: Value, bias: Value | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
    """torch's ``conv1d``: (N, C, L) or (C, L) input, (O, C/groups, k) weight.

    >>> conv1d(Value([[[1.0, 2.0, 3.0]]]), Value([[[1.0, -1.0]]])).tolist()
    [[[-1.0, -1.0]]]
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv2d(input: Value, weight: Value, bias: Value | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Value:
    """torch's ``conv2d`` (a cross-correlation): (N, C, H, W) or (C, H, W) input, weight
    (O, C/groups, kH, kW); ``padding`` is ints, ``'same'`` or ``'valid'``.

    >>> x = Value(np.arange(9.0).reshape(1, 1, 3, 3))
    >>> conv2d(x, Value(np.ones((1, 1, 2, 2)))).tolist()
    [[[[8.0, 12.0], [20.0, 24.0]]]]
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(op: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
                    padding: Any, output_padding: Any, groups: int, dilation: Any,
                    output_size: Any = None) -> Value:
    from .engine import ShapeError, _wrap

    x, w = _node(op, input), _node(op, weight, "weight")
    s, d = _ints(op, "stride", stride, n), _ints(op, "dilation", dilation, n)
    p = _ints(op, "padding", padding, n, least=0)
    g = _ints(op, "groups", groups, 1)[0]
    if x.ndim not in (n + 1, n + 2) or w.ndim != n + 2:
        raise ShapeError(f"{op}: expected a {n + 1}-D or {n + 2}-D input and a {n + 2}-D "
                         f"weight, got input {x.shape} and weight {w.shape}")
    batched = x.ndim == n + 2
    c_in = x.shape[1 if batched else 0]
    if c_in != w.shape[0]:
        raise ShapeError(f"{op}: weight of shape {w.shape} expects {w.shape[0]} input channels, "
                         f"but the input of shape {x.shape} has {c_in}")
    k, spatial = w.shape[2:], x.shape[x.ndim - n:]
    base = [(i - 1) * st - 2 * pp + dd * (kk - 1) + 1
            for i, st, pp, dd, kk in zip(spatial, s, p, d, k, strict=True)]
    if output_size is not None:
        want = list(output_size)[-n:]
        op_pad = [o - b for o, b in zip(want, base, strict=True)]
        if any(not 0 <= e < st for e, st in zip(op_pad, s, strict=True)):
            top = tuple(b + st - 1 for b, st in zip(base, s, strict=True))
            raise ValueError(f"{op}: output_size {tuple(output_size)} is not reachable for "
                             f"input {x.shape}: each size must lie between {tuple(base)} and {top}")
    else:
        op_pad = list(_ints(op, "output_padding", output_padding, n, least=0))
        if any(e >= max(st, dd) for e, st, dd in zip(op_pad, s, d, strict=True)):
            raise ValueError(f"{op}: output_padding {tuple(op_pad)} must be smaller than "
                             f"stride {s} or dilation {d}")
    out_sp = [b + e for b, e in zip(base, op_pad, strict=True)]
    if any(o < 1 for o in out_sp):
        raise ShapeError(f"{op}: input {x.shape} with weight {w.shape} gives an empty output "
                         f"{tuple(out_sp)}")
    out_shape = ([x.shape[0]] if batched else []) + [w.shape[1] * g, *out_sp]
    node = x._node.conv_input(w._node, out_shape, list(s), list(p), list(p), list(d), g)
    out = _wrap(node, x, w)
    if bias is not None:
        b = _node(op, bias, "bias")
        if tuple(b.shape) != (out_shape[-n - 1],):
            raise ShapeError(f"{op}: bias must have shape ({out_shape[-n - 1]},) for weight of "
                             f"shape {w.shape} and groups={g}, got {tuple(b.shape)}")
        out = out + b.reshape((-1,) + (1,) * n)
    return out


def conv_transpose1d(input: Value, weight: Value, bias: Value | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Value:
    """torch's ``conv_transpose1d``: weight (C_in, C_out/groups, k).

    >>> conv_transpose1d(Value([[[1.0, 2.0]]]), Value([[[1.0, 1.0]]])).tolist()
    [[[1.0, 3.0, 2.0]]]
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose2d(input: Value, weight: Value, bias: Value | None = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Value:
    """torch's ``conv_transpose2d``, the gradient of ``conv2d`` for its input: weight
    (C_in, C_out/groups, kH, kW); the output side is (H-1)·stride − 2·padding +
    dilation·(k−1) + output_padding + 1.

    >>> conv_transpose2d(Value(np.ones((1, 1, 2, 2))), Value(np.ones((1, 1, 2, 2)))).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def _pool_args(op: str, n: int, kernel_size: Any, stride: Any, padding: Any,
               dilation: Any = 1) -> tuple[list[int], list[int], list[int], list[int]]:
    k = _ints(op, "kernel_size", kernel_size, n)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else \
        _ints(op, "stride", stride, n)
    return (list(k), list(s), list(_ints(op, "padding", padding, n, least=0)),
            list(_ints(op, "dilation", dilation, n)))


def _max_pool(op: str, n: int, input: Any, kernel_size: Any, stride: Any, padding: Any,
              dilation: Any, ceil_mode: bool, return_indices: bool) -> Any:
    from .engine import _wrap

    x = _node(op, input)
    k, s, p, d = _pool_args(op, n, kernel_size, stride, padding, dilation)
    v, i = x._node.max_pool(k, s, p, d, bool(ceil_mode))
    out = _wrap(v, x)
    return (out, _wrap(i)) if return_indices else out


def max_pool1d(input: Value, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """torch's ``max_pool1d`` on (N, C, L) or (C, L).

    >>> max_pool1d(Value([[[1.0, 3.0, 2.0, 0.0]]]), 2).tolist()
    [[[3.0, 2.0]]]
    """
    return _max_pool("max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool2d(input: Value, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """torch's ``max_pool2d`` on (N, C, H, W) or (C, H, W); padding counts as -inf, and the
    indices (``return_indices=True``) are flat positions in each H·W plane.

    >>> max_pool2d(Value(np.arange(16.0).reshape(1, 1, 4, 4)), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
    """
    return _max_pool("max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def _avg_pool(op: str, n: int, input: Any, kernel_size: Any, stride: Any, padding: Any,
              ceil_mode: bool, count_include_pad: bool, divisor_override: Any) -> Value:
    from .engine import _wrap

    x = _node(op, input)
    k, s, p, _ = _pool_args(op, n, kernel_size, stride, padding)
    div = None if divisor_override is None else int(divisor_override)
    return _wrap(x._node.avg_pool(k, s, p, bool(ceil_mode), bool(count_include_pad), div), x)


def avg_pool1d(input: Value, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Value:
    """torch's ``avg_pool1d`` on (N, C, L) or (C, L).

    >>> avg_pool1d(Value([[[1.0, 3.0, 2.0, 0.0]]]), 2).tolist()
    [[[2.0, 1.0]]]
    """
    return _avg_pool("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None)


def avg_pool2d(input: Value, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Value:
    """torch's ``avg_pool2d``; ``count_include_pad=False`` divides by the real elements only.

    >>> avg_pool2d(Value(np.arange(16.0).reshape(1, 1, 4, 4)), 2).tolist()
    [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _avg_pool("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override)


def _adaptive_size(op: str, x: Value, output_size: Any, n: int) -> list[int]:
    items = (output_size,) * n if isinstance(output_size, (int, np.integer)) or \
        output_size is None else tuple(output_size)
    if len(items) != n:
        raise ValueError(f"{op}: output_size must be an int or {n} ints, got {output_size!r}")
    sizes = [x.shape[x.ndim - n + i] if v is None else int(v) for i, v in enumerate(items)]
    if any(v < 1 for v in sizes):
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    return sizes


def adaptive_avg_pool1d(input: Value, output_size: Any) -> Value:
    """torch's ``adaptive_avg_pool1d``.

    >>> adaptive_avg_pool1d(Value([[[1.0, 3.0, 2.0]]]), 2).tolist()
    [[[2.0, 2.5]]]
    """
    from .engine import _wrap

    x = _node("adaptive_avg_pool1d", input)
    return _wrap(x._node.adaptive_avg_pool(_adaptive_size("adaptive_avg_pool1d", x,
                                                          output_size, 1)), x)


def adaptive_avg_pool2d(input: Value, output_size: Any) -> Value:
    """torch's ``adaptive_avg_pool2d``: windows ``[floor(i·H/h), ceil((i+1)·H/h))``; a None
    size keeps the input's.

    >>> adaptive_avg_pool2d(Value(np.arange(16.0).reshape(1, 1, 4, 4)), 1).tolist()
    [[[[7.5]]]]
    """
    from .engine import _wrap

    x = _node("adaptive_avg_pool2d", input)
    return _wrap(x._node.adaptive_avg_pool(_adaptive_size("adaptive_avg_pool2d", x,
                                                          output_size, 2)), x)


def adaptive_max_pool1d(input: Value, output_size: Any, return_indices: bool = False) -> Any:
    """torch's ``adaptive_max_pool1d``.

    >>> adaptive_max_pool1d(Value([[[1.0, 3.0, 2.0]]]), 2).tolist()
    [[[3.0, 3.0]]]
    """
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)


def adaptive_max_pool2d(input: Value, output_size: Any, return_indices: bool = False) -> Any:
    """torch's ``adaptive_max_pool2d``.

    >>> adaptive_max_pool2d(Value(np.arange(16.0).reshape(1, 1, 4, 4)), 1).tolist()
    [[[[15.0]]]]
    """
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def _adaptive_max(op: str, n: int, input: Any, output_size: Any, return_indices: bool) -> Any:
    from .engine import _wrap

    x = _node(op, input)
    v, i = x._node.adaptive_max_pool(_adaptive_size(op, x, output_size, n))
    out = _wrap(v, x)
    return (out, _wrap(i)) if return_indices else out


def pad(input: Value, pad: Any, mode: str = "constant", value: float | None = None) -> Value:
    """torch's ``F.pad``: ``pad`` lists (left, right) for the last dim, then the dim before,
    ...; ``mode`` is 'constant' (negative pads crop), 'reflect', 'replicate' or 'circular'.

    >>> F_pad = pad; F_pad(Value([[1.0, 2.0, 3.0]]), (1, 2), mode="reflect").tolist()
    [[2.0, 1.0, 2.0, 3.0, 2.0, 1.0]]
    """
    from .engine import _wrap

    x = _node("pad", input)
    pads = list(pad)
    if not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pads):
        raise TypeError(f"pad: pad must be a sequence of ints, got {pad!r}")
    if value is not None and mode != "constant":
        raise ValueError(f"pad: value is only used by mode 'constant', not {mode!r}")
    return _wrap(x._node.pad([int(p) for p in pads], mode, float(value or 0.0)), x)


def unfold(input: Value, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Value:
    """torch's ``F.unfold`` (im2col): (N, C, H, W) → (N, C·kH·kW, L), one column per block.

    >>> unfold(Value(np.arange(9.0).reshape(1, 1, 3, 3)), 2).shape
    (1, 4, 4)
    """
    from .engine import _wrap

    op = "unfold"
    x = _node(op, input)
    k, s = _ints(op, "kernel_size", kernel_size, 2), _ints(op, "stride", stride, 2)
    p, d = _ints(op, "padding", padding, 2, least=0), _ints(op, "dilation", dilation, 2)
    return _wrap(x._node.unfold(list(k), list(s), list(p), list(d)), x)


def fold(input: Value, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Value:
    """torch's ``F.fold`` (col2im): sums (N, C·kH·kW, L) blocks into (N, C, H, W).

    >>> x = Value(np.ones((1, 4, 4)))
    >>> fold(x, (3, 3), 2).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    from .engine import _wrap

    op = "fold"
    x = _node(op, input)
    o, k = _ints(op, "output_size", output_size, 2), _ints(op, "kernel_size", kernel_size, 2)
    s, d = _ints(op, "stride", stride, 2), _ints(op, "dilation", dilation, 2)
    p = _ints(op, "padding", padding, 2, least=0)
    return _wrap(x._node.fold(list(o), list(k), list(s), list(p), list(d)), x)


def interpolate(input: Value, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Value:
    """torch's ``F.interpolate`` for modes 'nearest', 'nearest-exact', 'linear', 'bilinear'
    and 'trilinear', with torch's source positions (``align_corners``, scale factors).

    >>> interpolate(Value([[[1.0, 2.0]]]), scale_factor=2).tolist()
    [[[1.0, 1.0, 2.0, 2.0]]]
    """
    from .engine import _wrap

    op = "interpolate"
    x = _node(op, input)
    n = x.ndim - 2
    if n < 1:
        from .engine import ShapeError
        raise ShapeError(f"{op}: expected an (N, C, ...) input of 3 or more dims, got {x.shape}")
    if antialias:
        raise ValueError(f"{op}: antialias=True is not supported")
    linear = mode in ("linear", "bilinear", "trilinear", "bicubic")
    if align_corners is not None and not linear:
        raise ValueError(f"{op}: align_corners can only be set with the interpolating modes "
                         "(linear, bilinear, trilinear)")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    scales = None
    if size is not None:
        out = list(_ints(op, "size", size, n))
    else:
        sf = (scale_factor,) * n if isinstance(scale_factor, (int, float)) else \
            tuple(scale_factor)
        if len(sf) != n or any(float(f) <= 0 for f in sf):
            raise ValueError(f"{op}: scale_factor must be a positive number or {n} of them "
                             f"for input of shape {x.shape}, got {scale_factor!r}")
        out = [math.floor(float(i) * float(f)) for i, f in zip(x.shape[2:], sf, strict=True)]
        scales = None if recompute_scale_factor else [float(f) for f in sf]
    return _wrap(x._node.interpolate(out, mode, bool(align_corners), scales), x)


# ---- normalization --------------------------------------------------------------------------


def batch_norm(input: Value, running_mean: Value | None, running_var: Value | None,
               weight: Value | None = None, bias: Value | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Value:
    """torch's ``batch_norm`` over (N, C, ...): per channel, batch statistics when
    ``training`` (the running ones then move by ``momentum``, the variance unbiased), else
    the running statistics.

    >>> batch_norm(Value([[1.0], [3.0]]), None, None, training=True).tolist()
    [[-1.0], [1.0]]
    """
    from .engine import ShapeError, _wrap, no_grad

    x = _node("batch_norm", input)
    if x.ndim < 2:
        raise ShapeError(f"batch_norm: expected an (N, C, ...) input, got shape {x.shape}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (c,):
            raise ShapeError(f"batch_norm: {name} must have shape ({c},) for input of shape "
                             f"{x.shape}, got {tuple(t.shape)}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: running_mean and running_var are needed when not "
                         "training")
    w = None if weight is None else _node("batch_norm", weight, "weight")
    b = None if bias is None else _node("batch_norm", bias, "bias")
    rm, rv = (None, None) if training else (running_mean, running_var)
    node, mean, var = x._node.batch_norm(
        None if w is None else w._node, None if b is None else b._node,
        None if rm is None else rm._node, None if rv is None else rv._node, float(eps))
    out = _wrap(node, x, *(v for v in (w, b) if v is not None))
    if training and x.size and (running_mean is not None or running_var is not None):
        count = x.size // c
        with no_grad():
            if running_mean is not None:
                running_mean.mul_(1.0 - momentum).add_(_wrap(mean) * momentum)
            if running_var is not None:
                unbiased = _wrap(var) * (count / (count - 1))
                running_var.mul_(1.0 - momentum).add_(unbiased * momentum)
    return out


def instance_norm(input: Value, running_mean: Value | None = None,
                  running_var: Value | None = None, weight: Value | None = None,
                  bias: Value | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Value:
    """torch's ``instance_norm``: each (sample, channel) normalized over its positions.

    >>> instance_norm(Value([[[1.0, 3.0]]])).tolist()
    [[[-1.0, 1.0]]]
    """
    from .engine import ShapeError

    x = _node("instance_norm", input)
    if x.ndim < 3:
        raise ShapeError(f"instance_norm: expected an (N, C, ...) input with positions, got "
                         f"shape {x.shape}")
    n, c = x.shape[0], x.shape[1]
    if use_input_stats and int(np.prod(x.shape[2:])) <= 1:
        raise ValueError(f"instance_norm: expected more than 1 value per channel when "
                         f"training, got input of shape {x.shape}")
    folded = x.reshape(1, n * c, *x.shape[2:])
    rm = None if running_mean is None else running_mean.repeat(n)
    rv = None if running_var is None else running_var.repeat(n)
    out = batch_norm(folded, rm, rv, None, None, use_input_stats, momentum, eps)
    if use_input_stats and running_mean is not None and rm is not None:
        from .engine import no_grad
        with no_grad():
            running_mean.copy_(rm.reshape(n, c).mean(0))
            if running_var is not None and rv is not None:
                running_var.copy_(rv.reshape(n, c).mean(0))
    out = out.reshape(x.shape)
    return _affine(out, weight, bias, (1, c) + (1,) * (x.ndim - 2))


def group_norm(input: Value, num_groups: int, weight: Value | None = None,
               bias: Value | None = None, eps: float = 1e-5) -> Value:
    """torch's ``group_norm``: channels split into ``num_groups``, each group of each sample
    normalized with its biased variance, then a per-channel affine.

    >>> group_norm(Value([[1.0, 3.0]]), 1).tolist()
    [[-1.0, 1.0]]
    """
    from .engine import ShapeError

    x = _node("group_norm", input)
    if x.ndim < 2 or num_groups < 1 or x.shape[1] % num_groups:
        raise ShapeError(f"group_norm: expected an (N, C, ...) input with C divisible by "
                         f"num_groups={num_groups}, got shape {x.shape}")
    n, c = x.shape[0], x.shape[1]
    g = x.reshape(n, num_groups, -1)
    out = ((g - g.mean(-1, keepdim=True)) / (g.var(-1, keepdim=True, correction=0) + eps)
           .sqrt()).reshape(x.shape)
    return _affine(out, weight, bias, (1, c) + (1,) * (x.ndim - 2))


def layer_norm(input: Value, normalized_shape: Any, weight: Value | None = None,
               bias: Value | None = None, eps: float = 1e-5) -> Value:
    """torch's ``layer_norm`` over the trailing ``normalized_shape`` dims.

    >>> layer_norm(Value([[1.0, 3.0]]), 2).tolist()
    [[-1.0, 1.0]]
    """
    from .engine import ShapeError

    x = _node("layer_norm", input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    n = len(shape)
    if x.ndim < n or tuple(x.shape[x.ndim - n:]) != shape:
        raise ShapeError(f"layer_norm: input of shape {x.shape} does not end in {shape}")
    dims = tuple(range(-n, 0))
    out = (x - x.mean(dims, keepdim=True)) / (x.var(dims, keepdim=True, correction=0)
                                               + eps).sqrt()
    return _affine(out, weight, bias, None)


def _affine(out: Value, weight: Value | None, bias: Value | None,
            view: tuple[int, ...] | None) -> Value:
    """``out * weight + bias``, each reshaped to ``view`` (None: as they are)."""
    if weight is not None:
        out = out * (weight if view is None else weight.reshape(view))
    if bias is not None:
        out = out + (bias if view is None else bias.reshape(view))
    return out


def _channel_dropout(op: str, input: Value, p: float, training: bool, spatial: int) -> Value:
    from .creation import rand

    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: p must be between 0 and 1, got {p}")
    if input.ndim not in (spatial + 1, spatial + 2):
        from .engine import ShapeError
        raise ShapeError(f"{op}: expected a {spatial + 1}-D or {spatial + 2}-D input, got "
                         f"shape {input.shape}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    lead = input.shape[:input.ndim - spatial]
    keep = (rand(lead, dtype=input.dtype) >= p) * (1.0 / (1.0 - p))
    return input * keep.reshape(*lead, *([1] * spatial))


def dropout1d(input: Value, p: float = 0.5, training: bool = True) -> Value:
    """Zeros whole channels of (N, C, L) with probability ``p``, scaling the rest.

    >>> dropout1d(Value(np.ones((1, 2, 3))), 0.5, training=False).shape
    (1, 2, 3)
    """
    return _channel_dropout("dropout1d", input, p, training, 1)


def dropout2d(input: Value, p: float = 0.5, training: bool = True) -> Value:
    """Zeros whole channels of (N, C, H, W) with probability ``p``, scaling the rest.

    >>> y = dropout2d(Value(np.ones((4, 8, 2, 2))), 0.5)
    >>> sorted(set(y.numpy().reshape(32, 4).std(1).round(3).tolist()))
    [0.0]
    """
    return _channel_dropout("dropout2d", input, p, training, 2)
