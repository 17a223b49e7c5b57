"""Convolution, pooling, padding, resizing and normalization: ops and layers.

Every case of the tables below is checked three ways: forward against a numpy reference
written here (loops, einsum, ``sliding_window_view``, ``np.pad``: no torch, so CI checks
it), backward against central finite differences in float64, and, where torch is installed,
forward and gradients against torch in float64 and float32. Then the layers (torch's
weights for a seed, torch's outputs for torch's state dict, BatchNorm's running statistics),
dtypes, bad inputs (each names the op and the shapes) and memory.

Max pooling draws inputs without ties (a shuffled grid), where a finite difference has a
single right answer; the other ops are smooth in their inputs.
"""

import gc
import itertools
import math

import numpy as np
import pytest
from helpers import check_op, distinct, randn, rng
from numpy.lib.stride_tricks import sliding_window_view

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import _core, nn
from mikagrad.engine import Value

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # CI: the numpy references and finite differences still run
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
# torch's note that an even 'same' kernel costs a padded copy: about its speed, not results
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def _tup(v, n):
    return (v,) * n if isinstance(v, (int, np.integer)) else tuple(v)


def _const(like, a):
    """``a`` as a constant of ``like``'s kind and dtype: a Value, or a torch tensor."""
    if isinstance(like, Value):
        return Value(np.asarray(a, dtype=like.dtype), requires_grad=False)
    return torch.tensor(np.asarray(a), dtype=like.dtype)


def _batch(x, n):
    """(x with a batch dim, whether one was added): the references take (N, C, *spatial)."""
    return (x[None], True) if x.ndim == n + 1 else (x, False)


# ---- numpy references: convolutions ---------------------------------------------------------


def np_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """torch's convN (a cross-correlation), one kernel tap at a time with einsum."""
    n = w.ndim - 2
    x, added = _batch(x, n)
    s, d, k = _tup(stride, n), _tup(dilation, n), w.shape[2:]
    if padding == "valid":
        pads = [(0, 0)] * n
    elif padding == "same":  # an odd total goes on the right, as torch
        total = [dd * (kk - 1) for dd, kk in zip(d, k)]
        pads = [(t // 2, t - t // 2) for t in total]
    else:
        pads = [(p, p) for p in _tup(padding, n)]
    xp = np.pad(x, [(0, 0), (0, 0), *pads])
    out_sp = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(n)]
    o, cg = w.shape[0], x.shape[1] // groups
    og = o // groups
    out = np.zeros((x.shape[0], o, *out_sp))
    for g in range(groups):
        xg, wg = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for tap in np.ndindex(*k):
            sl = tuple(slice(t * dd, t * dd + ss * (m - 1) + 1, ss)
                       for t, dd, ss, m in zip(tap, d, s, out_sp))
            patch = xg[(slice(None), slice(None), *sl)]
            out[:, g * og:(g + 1) * og] += np.einsum("nc...,oc->no...", patch,
                                                     wg[(slice(None), slice(None), *tap)])
    if b is not None:
        out += b.reshape(1, -1, *[1] * n)
    return out[0] if added else out


def np_conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1,
                      dilation=1):
    """torch's conv_transposeN by scattering: input position i and tap t add into
    i·stride + t·dilation of the uncropped output, which then loses ``padding`` each side."""
    n = w.ndim - 2
    x, added = _batch(x, n)
    s, d, k = _tup(stride, n), _tup(dilation, n), w.shape[2:]
    p, op = _tup(padding, n), _tup(output_padding, n)
    sp = x.shape[2:]
    full = [(i - 1) * ss + dd * (kk - 1) + 1 + e for i, ss, dd, kk, e in zip(sp, s, d, k, op)]
    size = [f - 2 * pp for f, pp in zip(full, p)]
    cig, cog = x.shape[1] // groups, w.shape[1]
    out = np.zeros((x.shape[0], cog * groups, *full))
    for g in range(groups):
        xg, wg = x[:, g * cig:(g + 1) * cig], w[g * cig:(g + 1) * cig]
        for tap in np.ndindex(*k):
            sl = tuple(slice(t * dd, t * dd + ss * (m - 1) + 1, ss)
                       for t, dd, ss, m in zip(tap, d, s, sp))
            out[(slice(None), slice(g * cog, (g + 1) * cog), *sl)] += np.einsum(
                "nc...,co->no...", xg, wg[(slice(None), slice(None), *tap)])
    out = out[(slice(None), slice(None), *[slice(pp, pp + m) for pp, m in zip(p, size)])]
    if b is not None:
        out = out + b.reshape(1, -1, *[1] * n)
    return out[0] if added else out


# ---- numpy references: pooling --------------------------------------------------------------


def _pool_len(length, k, s, p, d, ceil):
    num = length + 2 * p - d * (k - 1) - 1
    o = (-(-num // s) if ceil else num // s) + 1
    if ceil and (o - 1) * s >= length + p:  # the last window must start inside the input
        o -= 1
    return o


def _windows(a, n, k, s, p, d, ceil, fill):
    """(N, C, *out, *k) windows of ``a`` padded by ``p`` with ``fill``, plus on the right
    whatever ceil_mode's last window reaches past the padding (also ``fill``)."""
    out = [_pool_len(a.shape[2 + i], k[i], s[i], p[i], d[i], ceil) for i in range(n)]
    eff = [dd * (kk - 1) + 1 for dd, kk in zip(d, k)]
    extra = [max(0, (o - 1) * ss + e - (a.shape[2 + i] + 2 * pp))
             for i, (o, ss, e, pp) in enumerate(zip(out, s, eff, p))]
    ap = np.pad(a, [(0, 0), (0, 0), *[(pp, pp + x) for pp, x in zip(p, extra)]],
                constant_values=fill)
    win = sliding_window_view(ap, eff, axis=tuple(range(2, 2 + n)))
    sl = [slice(0, ss * (o - 1) + 1, ss) for ss, o in zip(s, out)]
    return win[(slice(None), slice(None), *sl, *[slice(None, None, dd) for dd in d])]


def _pool_args(n, kernel_size, stride, padding, dilation=1):
    k = _tup(kernel_size, n)
    s = k if stride is None else _tup(stride, n)
    return k, s, _tup(padding, n), _tup(dilation, n)


def np_max_pool(x, n, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                return_indices=False):
    """Max over -inf-padded windows; the indices are flat positions in each input plane."""
    x, added = _batch(x, n)
    k, s, p, d = _pool_args(n, kernel_size, stride, padding, dilation)
    win = _windows(x, n, k, s, p, d, ceil_mode, -np.inf)
    flat = win.reshape(*win.shape[:2 + n], -1)
    pos = np.broadcast_to(np.arange(math.prod(x.shape[2:]), dtype=np.float64)
                          .reshape(x.shape[2:]), x.shape)
    where = _windows(pos, n, k, s, p, d, ceil_mode, -1.0).reshape(flat.shape)
    arg = flat.argmax(-1)[..., None]
    val = np.take_along_axis(flat, arg, -1)[..., 0]
    idx = np.take_along_axis(where, arg, -1)[..., 0].astype(np.int64)
    if added:
        val, idx = val[0], idx[0]
    return (val, idx) if return_indices else val


def np_avg_pool(x, n, kernel_size, stride=None, padding=0, ceil_mode=False,
                count_include_pad=True, divisor_override=None):
    """Window sums over the zero-padded input, divided by the count of a mask: ones over
    input and padding (count_include_pad) or over the input alone; never ceil_mode's
    overhang."""
    x, added = _batch(x, n)
    k, s, p, d = _pool_args(n, kernel_size, stride, padding)
    axes = tuple(range(-n, 0))
    total = _windows(x, n, k, s, p, d, ceil_mode, 0.0).sum(axes)
    if divisor_override is not None:
        out = total / divisor_override
    else:
        ones = np.ones(x.shape[:2] + x.shape[2:])
        if count_include_pad:
            ones = np.pad(ones, [(0, 0), (0, 0), *[(pp, pp) for pp in p]], constant_values=1)
            count = _windows(ones, n, k, s, (0,) * n, d, ceil_mode, 0.0)
            # the mask already holds the padding: windows start where the padded input does
            count = count[tuple(slice(0, m) for m in total.shape)].sum(axes)
        else:
            count = _windows(ones, n, k, s, p, d, ceil_mode, 0.0).sum(axes)
        out = total / count
    return out[0] if added else out


def _adaptive(x, n, output_size, reduce):
    x, added = _batch(x, n)
    size = [x.shape[2 + i] if o is None else o for i, o in enumerate(_tup(output_size, n))]
    out = np.zeros(x.shape[:2] + tuple(size))
    for idx in np.ndindex(*size):
        sl = tuple(slice(i * length // o, -(-(i + 1) * length // o))
                   for i, o, length in zip(idx, size, x.shape[2:]))
        out[(slice(None), slice(None), *idx)] = reduce(x[(slice(None), slice(None), *sl)],
                                                       axis=tuple(range(2, 2 + n)))
    return out[0] if added else out


# ---- numpy references: padding, im2col, resizing --------------------------------------------

_NP_MODE = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
            "circular": "wrap"}


def np_pad(x, pad, mode="constant", value=None):
    """np.pad for the positive pads (torch lists the last dim first), then crops the
    negative ones."""
    pairs = [(0, 0)] * (x.ndim - len(pad) // 2) + [
        (pad[2 * i], pad[2 * i + 1]) for i in reversed(range(len(pad) // 2))]
    extra = {"constant_values": value or 0.0} if mode == "constant" else {}
    out = np.pad(x, [(max(lo, 0), max(hi, 0)) for lo, hi in pairs], mode=_NP_MODE[mode],
                 **extra)
    crop = tuple(slice(max(-lo, 0), out.shape[i] - max(-hi, 0))
                 for i, (lo, hi) in enumerate(pairs))
    return out[crop]


def _blocks(spatial, k, s, p, d):
    return [(m + 2 * pp - dd * (kk - 1) - 1) // ss + 1
            for m, kk, ss, pp, dd in zip(spatial, k, s, p, d)]


def np_unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    x, added = _batch(x, 2)
    k, s, p, d = (_tup(v, 2) for v in (kernel_size, stride, padding, dilation))
    win = _windows(x, 2, k, s, p, d, False, 0.0)  # (N, C, oh, ow, kh, kw)
    nb, c = x.shape[:2]
    out = win.transpose(0, 1, 4, 5, 2, 3).reshape(nb, c * k[0] * k[1], -1)
    return out[0] if added else out


def np_fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: each column's taps added back where they came from."""
    added = x.ndim == 2
    x = x[None] if added else x
    o, k, s, p, d = (_tup(v, 2) for v in (output_size, kernel_size, stride, padding, dilation))
    nb = _blocks(o, k, s, p, d)
    c = x.shape[1] // (k[0] * k[1])
    cols = x.reshape(x.shape[0], c, k[0], k[1], nb[0], nb[1])
    out = np.zeros((x.shape[0], c, o[0] + 2 * p[0], o[1] + 2 * p[1]))
    for i, j in np.ndindex(*k):
        out[:, :, i * d[0]:i * d[0] + s[0] * (nb[0] - 1) + 1:s[0],
            j * d[1]:j * d[1] + s[1] * (nb[1] - 1) + 1:s[1]] += cols[:, :, i, j]
    out = out[:, :, p[0]:p[0] + o[0], p[1]:p[1] + o[1]]
    return out[0] if added else out


def _source(out_len, in_len, mode, align_corners, scale):
    """Per output position: (left source index, right one, weight of the right one)."""
    j = np.arange(out_len, dtype=np.float64)
    ratio = 1.0 / scale if scale is not None else in_len / out_len
    if mode in ("nearest", "nearest-exact"):
        src = j * ratio if mode == "nearest" else (j + 0.5) * ratio
        i0 = np.minimum(np.floor(src).astype(np.int64), in_len - 1)
        return i0, i0, np.zeros(out_len)
    if align_corners:
        src = j * ((in_len - 1) / (out_len - 1) if out_len > 1 else 0.0)
    else:
        src = np.maximum((j + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_len - 1)
    return i0, np.minimum(i0 + 1, in_len - 1), src - i0


def np_interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Separable: one spatial dim at a time, nearest picks and linear blends."""
    n = x.ndim - 2
    if size is not None:
        out, scales = _tup(size, n), [None] * n
    else:
        sf = (scale_factor,) * n if isinstance(scale_factor, (int, float)) else scale_factor
        scales = [float(f) for f in sf]
        out = [math.floor(m * f) for m, f in zip(x.shape[2:], scales)]
    for i in range(n):
        axis = 2 + i
        i0, i1, lam = _source(out[i], x.shape[axis], mode, align_corners, scales[i])
        lam = lam.reshape([-1 if a == axis else 1 for a in range(x.ndim)])
        x = np.take(x, i0, axis) * (1 - lam) + np.take(x, i1, axis) * lam
    return x


# ---- numpy references: normalization --------------------------------------------------------


def _norm(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)


def _channel(a, x):
    return a.reshape(1, -1, *[1] * (x.ndim - 2))


def np_batch_norm(x, weight=None, bias=None, running=None, eps=1e-5):
    if running is None:
        out = _norm(x, (0, *range(2, x.ndim)), eps)
    else:
        mean, var = running
        out = (x - _channel(mean, x)) / np.sqrt(_channel(var, x) + eps)
    out = out if weight is None else out * _channel(weight, x)
    return out if bias is None else out + _channel(bias, x)


def np_instance_norm(x, weight=None, bias=None, eps=1e-5):
    out = _norm(x, tuple(range(2, x.ndim)), eps)
    out = out if weight is None else out * _channel(weight, x)
    return out if bias is None else out + _channel(bias, x)


def np_group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    g = x.reshape(x.shape[0], num_groups, -1)
    out = _norm(g, (2,), eps).reshape(x.shape)
    out = out if weight is None else out * _channel(weight, x)
    return out if bias is None else out + _channel(bias, x)


def np_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    n = len(_tup(normalized_shape, 1))
    out = _norm(x, tuple(range(-n, 0)), eps)
    out = out if weight is None else out * weight
    return out if bias is None else out + bias


# ---- the op table ---------------------------------------------------------------------------
# Each op: how to call it on a functional module (mikagrad's F or torch's; both spell the
# arguments alike), and its numpy reference. Arrays are the differentiable inputs (input,
# then weight, bias...); options go as keywords.

RUNNING = (np.array([0.3, -0.2, 0.1]), np.array([0.5, 1.5, 2.0]))  # batch_norm's eval stats


def _bn_eval(mod, x, *wb, **kw):
    rm, rv = (_const(x, a[:x.shape[1]]) for a in RUNNING)
    return mod.batch_norm(x, rm, rv, *wb, training=False, **kw)


def _bn_eval_ref(x, *wb, **kw):
    return np_batch_norm(x, *wb, running=tuple(a[:x.shape[1]] for a in RUNNING), **kw)


OPS = {
    "conv1d": (lambda mod, *a, **kw: mod.conv1d(*a, **kw), np_conv),
    "conv2d": (lambda mod, *a, **kw: mod.conv2d(*a, **kw), np_conv),
    "conv_transpose1d": (lambda mod, *a, **kw: mod.conv_transpose1d(*a, **kw),
                         np_conv_transpose),
    "conv_transpose2d": (lambda mod, *a, **kw: mod.conv_transpose2d(*a, **kw),
                         np_conv_transpose),
    "max_pool1d": (lambda mod, x, **kw: mod.max_pool1d(x, **kw),
                   lambda x, **kw: np_max_pool(x, 1, **kw)),
    "max_pool2d": (lambda mod, x, **kw: mod.max_pool2d(x, **kw),
                   lambda x, **kw: np_max_pool(x, 2, **kw)),
    "avg_pool1d": (lambda mod, x, **kw: mod.avg_pool1d(x, **kw),
                   lambda x, **kw: np_avg_pool(x, 1, **kw)),
    "avg_pool2d": (lambda mod, x, **kw: mod.avg_pool2d(x, **kw),
                   lambda x, **kw: np_avg_pool(x, 2, **kw)),
    "adaptive_avg_pool1d": (lambda mod, x, o: mod.adaptive_avg_pool1d(x, o),
                            lambda x, o: _adaptive(x, 1, o, np.mean)),
    "adaptive_avg_pool2d": (lambda mod, x, o: mod.adaptive_avg_pool2d(x, o),
                            lambda x, o: _adaptive(x, 2, o, np.mean)),
    "adaptive_max_pool1d": (lambda mod, x, o: mod.adaptive_max_pool1d(x, o),
                            lambda x, o: _adaptive(x, 1, o, np.max)),
    "adaptive_max_pool2d": (lambda mod, x, o: mod.adaptive_max_pool2d(x, o),
                            lambda x, o: _adaptive(x, 2, o, np.max)),
    "pad": (lambda mod, x, **kw: mod.pad(x, **kw), np_pad),
    "unfold": (lambda mod, x, **kw: mod.unfold(x, **kw), np_unfold),
    "fold": (lambda mod, x, **kw: mod.fold(x, **kw), np_fold),
    "interpolate": (lambda mod, x, **kw: mod.interpolate(x, **kw), np_interpolate),
    "batch_norm": (lambda mod, x, *wb, **kw: mod.batch_norm(x, None, None, *wb, training=True,
                                                            **kw), np_batch_norm),
    "batch_norm_eval": (_bn_eval, _bn_eval_ref),
    "instance_norm": (lambda mod, x, *wb, **kw: mod.instance_norm(x, None, None, *wb, **kw),
                      np_instance_norm),
    "group_norm": (lambda mod, x, g, *wb, **kw: mod.group_norm(x, g, *wb, **kw),
                   np_group_norm),
    "layer_norm": (lambda mod, x, s, *wb, **kw: mod.layer_norm(x, s, *wb, **kw),
                   np_layer_norm),
}

# Ops whose gradients pick one input per output: their inputs must not tie.
PICKS = {"max_pool1d", "max_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d"}


def case(op, shapes, *args, id=None, xfail=None, **kw):
    """A row: the op, its array inputs' shapes, positional non-array args (after the
    input), keyword options; ``xfail`` says why the implementation is wrong today."""
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(op, shapes, args, kw, id=id, marks=marks)


CASES = [
    # conv1d: stride, padding, 'same' with an even kernel (odd total: more on the right),
    # dilation, groups, depthwise, unbatched
    case("conv1d", [(2, 4, 9), (6, 2, 3), (6,)], stride=2, padding=1, groups=2, id="c1-groups"),
    case("conv1d", [(3, 7), (2, 3, 3)], id="c1-unbatched"),
    case("conv1d", [(1, 2, 8), (4, 2, 2), (4,)], padding="same", dilation=3, id="c1-same-even"),
    case("conv1d", [(2, 3, 6), (3, 1, 3)], groups=3, padding=(2,), dilation=2, id="c1-depth"),
    case("conv1d", [(1, 2, 5), (2, 2, 3), (2,)], padding="valid", stride=(3,), id="c1-valid"),
    # conv2d
    case("conv2d", [(2, 3, 5, 6), (4, 3, 3, 2), (4,)], id="c2-plain"),
    case("conv2d", [(1, 2, 7, 6), (3, 2, 3, 3), (3,)], stride=(2, 3), padding=(1, 2),
         id="c2-stride-pad"),
    case("conv2d", [(2, 4, 6, 5), (4, 2, 2, 3)], groups=2, dilation=(2, 1), padding=1,
         id="c2-groups-dil"),
    case("conv2d", [(3, 5, 5), (2, 3, 3, 3), (2,)], padding="same", id="c2-same-unbatched"),
    case("conv2d", [(1, 2, 5, 6), (2, 2, 2, 3)], padding="same", dilation=(2, 1),
         id="c2-same-even"),
    case("conv2d", [(2, 3, 5, 5), (3, 1, 3, 3), (3,)], groups=3, stride=2, padding=1,
         id="c2-depthwise"),
    case("conv2d", [(1, 2, 6, 6), (6, 1, 2, 2)], groups=2, stride=2, id="c2-depth-mult3"),
    case("conv2d", [(2, 2, 4, 4), (3, 2, 1, 1), (3,)], padding="valid", id="c2-1x1"),
    case("conv2d", [(1, 1, 3, 3), (2, 1, 3, 3)], id="c2-kernel-is-input"),
    case("conv2d", [(2, 2, 3, 4), (2, 2, 2, 2), (2,)], stride=3, dilation=2, padding=(2, 1),
         id="c2-stride-gt-kernel"),
    # conv_transpose1d/2d: stride, padding, output_padding, groups, dilation, bias
    case("conv_transpose1d", [(2, 4, 5), (4, 3, 3), (3,)], stride=2, padding=1,
         output_padding=1, id="ct1-stride"),
    case("conv_transpose1d", [(3, 4), (3, 2, 2)], id="ct1-unbatched"),
    case("conv_transpose1d", [(1, 4, 4), (4, 1, 3), (2,)], groups=2, dilation=2,
         id="ct1-groups-dil"),
    case("conv_transpose1d", [(2, 2, 3), (2, 2, 2)], stride=3, output_padding=2, id="ct1-op2"),
    case("conv_transpose2d", [(2, 3, 3, 4), (3, 2, 3, 2), (2,)], stride=2, padding=1,
         output_padding=1, id="ct2-stride"),
    case("conv_transpose2d", [(2, 3, 3), (2, 3, 2, 2)], id="ct2-unbatched"),
    case("conv_transpose2d", [(1, 4, 3, 3), (4, 1, 2, 3), (2,)], groups=2, dilation=(2, 1),
         stride=(1, 2), id="ct2-groups-dil"),
    case("conv_transpose2d", [(1, 2, 3, 3), (2, 2, 3, 3)], stride=(2, 3), padding=(0, 1),
         output_padding=(1, 2), id="ct2-op"),
    case("conv_transpose2d", [(1, 4, 2, 3), (4, 1, 2, 2), (4,)], groups=4, stride=2,
         id="ct2-depthwise"),
    case("conv_transpose2d", [(1, 2, 3, 3), (2, 1, 2, 2)], stride=2, dilation=3,
         output_padding=2, id="ct2-op-from-dilation"),
    # max pooling: padding (-inf), dilation, ceil_mode (a last window past the input)
    case("max_pool1d", [(2, 3, 9)], kernel_size=3, id="mp1-plain"),
    case("max_pool1d", [(2, 8)], kernel_size=2, stride=1, padding=1, id="mp1-unbatched-pad"),
    case("max_pool1d", [(1, 2, 10)], kernel_size=3, stride=2, dilation=2, ceil_mode=True,
         id="mp1-dil-ceil"),
    case("max_pool1d", [(1, 2, 7)], kernel_size=4, stride=3, padding=2, ceil_mode=True,
         id="mp1-pad-ceil"),
    case("max_pool2d", [(2, 2, 6, 6)], kernel_size=2, id="mp2-plain"),
    case("max_pool2d", [(1, 2, 7, 5)], kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
         id="mp2-pad"),
    case("max_pool2d", [(2, 7, 7)], kernel_size=3, stride=2, ceil_mode=True,
         id="mp2-unbatched-ceil"),
    case("max_pool2d", [(1, 1, 8, 7)], kernel_size=2, stride=2, dilation=(2, 3),
         padding=(1, 0), id="mp2-dil"),
    case("max_pool2d", [(1, 2, 5, 5)], kernel_size=2, stride=2, padding=1, ceil_mode=True,
         id="mp2-pad-ceil"),
    case("max_pool2d", [(1, 1, 6, 6)], kernel_size=3, stride=1, id="mp2-overlap"),
    # average pooling: count_include_pad, ceil_mode, divisor_override
    case("avg_pool1d", [(2, 3, 8)], kernel_size=3, stride=2, id="ap1-plain"),
    case("avg_pool1d", [(2, 7)], kernel_size=3, stride=2, padding=1, count_include_pad=False,
         id="ap1-unbatched-nopad"),
    case("avg_pool1d", [(1, 2, 6)], kernel_size=2, stride=3, padding=1, ceil_mode=True,
         id="ap1-ceil"),
    case("avg_pool1d", [(1, 2, 7)], kernel_size=3, stride=2, padding=1, ceil_mode=True,
         count_include_pad=False, id="ap1-ceil-nopad"),
    case("avg_pool2d", [(2, 2, 6, 6)], kernel_size=2, id="ap2-plain"),
    case("avg_pool2d", [(1, 2, 7, 5)], kernel_size=(3, 2), stride=(2, 1), padding=(1, 1),
         id="ap2-pad"),
    case("avg_pool2d", [(1, 2, 7, 5)], kernel_size=3, stride=2, padding=1,
         count_include_pad=False, id="ap2-nopad"),
    case("avg_pool2d", [(2, 5, 5)], kernel_size=2, stride=2, padding=1, ceil_mode=True,
         id="ap2-unbatched-ceil"),
    case("avg_pool2d", [(1, 1, 6, 5)], kernel_size=3, stride=2, padding=1, ceil_mode=True,
         count_include_pad=False, id="ap2-ceil-nopad"),
    case("avg_pool2d", [(1, 2, 5, 5)], kernel_size=2, divisor_override=3, id="ap2-divisor"),
    case("avg_pool2d", [(1, 1, 5, 5)], kernel_size=3, stride=2, padding=1, divisor_override=2,
         ceil_mode=True, id="ap2-divisor-ceil"),
    # adaptive pooling: windows that overlap, output bigger than the input, None keeps a dim
    case("adaptive_avg_pool1d", [(2, 3, 7)], 3, id="aap1-3"),
    case("adaptive_avg_pool1d", [(3, 5)], 5, id="aap1-unbatched-same"),
    case("adaptive_avg_pool1d", [(1, 2, 4)], 6, id="aap1-up"),
    case("adaptive_avg_pool1d", [(1, 1, 5)], 1, id="aap1-global"),
    case("adaptive_avg_pool2d", [(1, 2, 7, 5)], (3, 2), id="aap2-32"),
    case("adaptive_avg_pool2d", [(2, 5, 6)], 4, id="aap2-unbatched"),
    case("adaptive_avg_pool2d", [(1, 2, 6, 6)], (None, 4), id="aap2-none"),
    case("adaptive_avg_pool2d", [(1, 1, 3, 2)], (5, 4), id="aap2-up"),
    case("adaptive_max_pool1d", [(2, 3, 7)], 3, id="amp1-3"),
    case("adaptive_max_pool1d", [(3, 5)], 2, id="amp1-unbatched"),
    case("adaptive_max_pool2d", [(1, 2, 7, 5)], (3, 2), id="amp2-32"),
    case("adaptive_max_pool2d", [(2, 5, 6)], 4, id="amp2-unbatched"),
    case("adaptive_max_pool2d", [(1, 1, 6, 6)], (None, 2), id="amp2-none"),
    # pad: constant (value, negative pads crop), reflect, replicate, circular
    case("pad", [(2, 3, 4)], pad=(1, 2), id="pad-const"),
    case("pad", [(2, 3, 4)], pad=(1, 2, 0, 1), value=1.5, id="pad-const-value"),
    case("pad", [(2, 5, 4)], pad=(-1, 2, 1, -2), id="pad-const-negative"),
    case("pad", [(2, 3, 4)], pad=(1, 1, 1, 1, 1, 1), id="pad-const-3dims"),
    case("pad", [(1, 2, 5)], pad=(2, 3), mode="reflect", id="pad-reflect1"),
    case("pad", [(1, 2, 4, 5)], pad=(1, 4, 3, 2), mode="reflect", id="pad-reflect2"),
    case("pad", [(3, 4, 5)], pad=(2, 1, 3, 0), mode="reflect", id="pad-reflect2-unbatched"),
    case("pad", [(1, 2, 4)], pad=(3, 1), mode="replicate", id="pad-replicate1"),
    case("pad", [(1, 2, 3, 4)], pad=(2, 0, 1, 3), mode="replicate", id="pad-replicate2"),
    case("pad", [(1, 2, 5)], pad=(2, 3), mode="circular", id="pad-circular1"),
    case("pad", [(1, 2, 3, 4)], pad=(1, 2, 3, 2), mode="circular", id="pad-circular2"),
    # unfold / fold (im2col / col2im)
    case("unfold", [(1, 2, 4, 5)], kernel_size=2, id="unfold-plain"),
    case("unfold", [(2, 1, 5, 5)], kernel_size=(2, 3), stride=(2, 1), padding=1,
         dilation=(1, 2), id="unfold-all"),
    case("unfold", [(2, 4, 4)], kernel_size=3, padding=1, id="unfold-unbatched"),
    case("fold", [(1, 8, 12)], output_size=(4, 5), kernel_size=2, id="fold-plain"),
    case("fold", [(2, 6, 9)], output_size=(5, 5), kernel_size=(2, 3), stride=(2, 1),
         padding=1, dilation=(1, 2), id="fold-all"),
    case("fold", [(9, 16)], output_size=(4, 4), kernel_size=3, padding=1, id="fold-unbatched"),
    # interpolate: nearest, nearest-exact, linear, bilinear; size or scale_factor
    case("interpolate", [(2, 2, 3)], size=5, id="nearest1-size"),
    case("interpolate", [(1, 2, 4)], scale_factor=2.5, id="nearest1-scale"),
    case("interpolate", [(1, 2, 3, 4)], size=(5, 7), mode="nearest", id="nearest2-size"),
    case("interpolate", [(1, 1, 3, 5)], scale_factor=(1.5, 0.6), id="nearest2-scale"),
    case("interpolate", [(1, 2, 5)], size=3, mode="nearest-exact", id="exact1-down"),
    case("interpolate", [(1, 1, 3, 4)], scale_factor=1.7, mode="nearest-exact",
         id="exact2-scale"),
    case("interpolate", [(2, 2, 4)], size=7, mode="linear", align_corners=False, id="lin1"),
    case("interpolate", [(2, 2, 4)], size=7, mode="linear", align_corners=True, id="lin1-ac"),
    case("interpolate", [(1, 2, 5)], scale_factor=0.5, mode="linear", id="lin1-down"),
    case("interpolate", [(1, 2, 3, 4)], size=(5, 6), mode="bilinear", align_corners=False,
         id="bilin"),
    case("interpolate", [(1, 2, 3, 4)], size=(5, 6), mode="bilinear", align_corners=True,
         id="bilin-ac"),
    case("interpolate", [(1, 1, 4, 4)], scale_factor=(1.5, 2.0), mode="bilinear",
         id="bilin-scale"),
    case("interpolate", [(1, 1, 4, 5)], size=(2, 3), mode="bilinear", id="bilin-down"),
    case("interpolate", [(1, 1, 3, 3)], size=(1, 4), mode="bilinear", align_corners=True,
         id="bilin-ac-to-1"),
    case("interpolate", [(1, 1, 4, 3)], scale_factor=0.75, mode="bilinear",
         align_corners=True, id="bilin-ac-scale"),
    # normalization: training statistics, eval with running ones, affine or not
    case("batch_norm", [(4, 3), (3,), (3,)], id="bn-2d"),
    case("batch_norm", [(2, 3, 4), (3,), (3,)], id="bn-3d"),
    case("batch_norm", [(2, 2, 3, 3), (2,), (2,)], id="bn-4d"),
    case("batch_norm", [(3, 2, 4)], eps=1e-3, id="bn-no-affine"),
    case("batch_norm_eval", [(4, 3), (3,), (3,)], id="bn-eval-2d"),
    case("batch_norm_eval", [(2, 2, 3, 3), (2,), (2,)], id="bn-eval-4d"),
    case("instance_norm", [(2, 3, 5), (3,), (3,)], id="in-1d"),
    case("instance_norm", [(2, 2, 3, 3)], id="in-2d"),
    case("group_norm", [(2, 4, 3), (4,), (4,)], 2, id="gn-2"),
    case("group_norm", [(2, 6, 2, 2)], 3, id="gn-4d"),
    case("group_norm", [(3, 4), (4,), (4,)], 2, id="gn-no-positions"),
    case("group_norm", [(2, 4, 3)], 4, eps=1e-3, id="gn-per-channel"),
    case("layer_norm", [(3, 4), (4,), (4,)], (4,), id="ln-1"),
    case("layer_norm", [(2, 3, 4), (3, 4), (3, 4)], (3, 4), id="ln-2"),
    case("layer_norm", [(2, 5)], (5,), id="ln-no-affine"),
]


def inputs(op, shapes, seed=0):
    if op in PICKS:  # no ties: a grid 0.1 apart, shuffled
        return [distinct(s, seed + i) for i, s in enumerate(shapes)]
    return [randn(s, seed + i) for i, s in enumerate(shapes)]


def ours(op, args, kw):
    call = OPS[op][0]
    return lambda x, *rest: call(F, x, *args, *rest, **kw)


def theirs(op, args, kw):
    call = OPS[op][0]
    return lambda x, *rest: call(TF, x, *args, *rest, **kw)


def reference(op, args, kw):
    ref = OPS[op][1]
    return lambda x, *rest: ref(x, *args, *rest, **kw)


@pytest.mark.parametrize("op,shapes,args,kw", CASES)
def test_forward_vs_numpy_and_grad_vs_finite_differences(op, shapes, args, kw):
    check_op(ours(op, args, kw), *inputs(op, shapes), ref=reference(op, args, kw))


def test_every_op_has_cases():
    covered = {p.values[0] for p in CASES}
    assert covered == set(OPS)


# ---- against torch --------------------------------------------------------------------------


def against_torch(fn, tfn, arrays, dtype, rtol, atol, seed=7):
    """fn on Values and tfn on torch tensors of the same arrays: the outputs, and every
    input's gradient of a randomly weighted sum, agree."""
    values = [Value(np.asarray(a, dtype=dtype)) for a in arrays]
    tensors = [torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
    out, ref = fn(*values), tfn(*tensors)
    assert out.dtype == dtype, f"{np.dtype(dtype).name} inputs gave {out.dtype}"
    assert out.shape == tuple(ref.shape), f"shape {out.shape} != torch's {tuple(ref.shape)}"

    def close(a, b, what):
        b = b.detach().numpy().astype(np.float64)
        scale = max(1.0, float(np.abs(b).max(initial=0.0)))
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=rtol,
                                   atol=atol * scale, err_msg=what)

    close(out.numpy(), ref, "forward vs torch")
    w = rng(seed).standard_normal(out.shape).astype(dtype)
    (out * Value(w, requires_grad=False)).sum().backward()
    (ref * torch.from_numpy(w)).sum().backward()
    for i, (v, t) in enumerate(zip(values, tensors)):
        assert v.grad is not None and v.grad.dtype == dtype, f"input {i}: grad dtype"
        close(v.grad.numpy(), t.grad, f"grad of input {i} vs torch")
    return out


TOLERANCE = {np.float64: (1e-10, 1e-12), np.float32: (1e-5, 1e-6)}


@needs_torch
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("op,shapes,args,kw", CASES)
def test_table_matches_torch(op, shapes, args, kw, dtype):
    against_torch(ours(op, args, kw), theirs(op, args, kw), inputs(op, shapes, seed=3), dtype,
                  *TOLERANCE[dtype])


def _grid(**options):
    keys = list(options)
    return [dict(zip(keys, vals)) for vals in itertools.product(*options.values())]


CONV2D_GRID = [
    kw for kw in _grid(stride=[1, 2, (1, 3)], padding=[0, 1, (2, 0), "same", "valid"],
                       dilation=[1, (2, 1)], groups=[1, 2], bias=[False, True])
    if not (kw["padding"] == "same" and kw["stride"] != 1)
]


@needs_torch
@pytest.mark.parametrize("kw", CONV2D_GRID, ids=str)
def test_conv2d_grid_matches_torch(kw):
    kw = dict(kw)
    g, bias = kw["groups"], kw.pop("bias")
    arrays = [randn((2, 4, 7, 6), 1), randn((6, 4 // g, 3, 2), 2)] + [randn(6, 3)] * bias
    against_torch(lambda *a: F.conv2d(*a, **kw), lambda *a: TF.conv2d(*a, **kw), arrays,
                  np.float64, 1e-10, 1e-12)


CONV1D_GRID = [
    kw for kw in _grid(stride=[1, 2], padding=[0, 2, "same"], dilation=[1, 3], groups=[1, 3],
                       unbatched=[False, True])
    if not (kw["padding"] == "same" and kw["stride"] != 1)
]


@needs_torch
@pytest.mark.parametrize("kw", CONV1D_GRID, ids=str)
def test_conv1d_grid_matches_torch(kw):
    kw = dict(kw)
    shape = (6, 11) if kw.pop("unbatched") else (2, 6, 11)
    arrays = [randn(shape, 1), randn((3, 6 // kw["groups"], 4), 2), randn(3, 3)]
    against_torch(lambda *a: F.conv1d(*a, **kw), lambda *a: TF.conv1d(*a, **kw), arrays,
                  np.float64, 1e-10, 1e-12)


CONV_T_GRID = [
    pytest.param(kw, id=str(kw))
    for kw in _grid(stride=[1, 2, (3, 1)], padding=[0, 1], output_padding=[0, 1],
                    groups=[1, 2], dilation=[1, 2])
    if min(max(s, kw["dilation"]) for s in _tup(kw["stride"], 2)) > kw["output_padding"]
]


@needs_torch
@pytest.mark.parametrize("kw", CONV_T_GRID)
def test_conv_transpose2d_grid_matches_torch(kw):
    arrays = [randn((2, 4, 3, 4), 1), randn((4, 3, 3, 2), 2), randn(3 * kw["groups"], 3)]
    against_torch(lambda *a: F.conv_transpose2d(*a, **kw),
                  lambda *a: TF.conv_transpose2d(*a, **kw), arrays, np.float64, 1e-10, 1e-12)


POOL_GRID = [
    kw for kw in _grid(kernel_size=[2, 3, (3, 2)], stride=[None, 1, 2, (2, 3)],
                       padding=[0, 1], ceil_mode=[False, True])
    if min(_tup(kw["kernel_size"], 2)) >= 2 * kw["padding"]
]


@needs_torch
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("kw", POOL_GRID, ids=str)
def test_max_pool2d_grid_matches_torch(kw, dilation):
    out = against_torch(lambda x: F.max_pool2d(x, dilation=dilation, **kw),
                        lambda x: TF.max_pool2d(x, dilation=dilation, **kw),
                        [distinct((2, 2, 7, 8), 4)], np.float64, 1e-10, 1e-12)
    assert out.shape[-2:] == tuple(np_max_pool(np.zeros((1, 1, 7, 8)), 2, dilation=dilation,
                                               **kw).shape[-2:])


@needs_torch
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kw", POOL_GRID, ids=str)
def test_avg_pool2d_grid_matches_torch(kw, count_include_pad):
    kw = dict(kw, count_include_pad=count_include_pad)
    against_torch(lambda x: F.avg_pool2d(x, **kw), lambda x: TF.avg_pool2d(x, **kw),
                  [randn((2, 2, 7, 8), 4)], np.float64, 1e-10, 1e-12)


@needs_torch
@pytest.mark.parametrize("mode,align_corners", [
    ("nearest", None), ("nearest-exact", None), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("how", [dict(size=(7, 3)), dict(size=(2, 9)),
                                 dict(scale_factor=1.5), dict(scale_factor=(0.5, 2.25)),
                                 dict(scale_factor=3)], ids=str)
def test_interpolate_grid_matches_torch(mode, align_corners, how):
    kw = dict(how, mode=mode, align_corners=align_corners)
    against_torch(lambda x: F.interpolate(x, **kw), lambda x: TF.interpolate(x, **kw),
                  [randn((2, 2, 4, 5), 5)], np.float64, 1e-10, 1e-12)


@needs_torch
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("pad", [(1, 0), (0, 2), (2, 2, 0, 1), (1, 3, 2, 2)], ids=str)
def test_pad_grid_matches_torch(mode, pad):
    # torch pads the last len(pad) // 2 dims of a batched input, outside 'constant'
    shape = (2, 3, 5) if len(pad) == 2 else (2, 3, 4, 5)
    against_torch(lambda x: F.pad(x, pad, mode=mode), lambda x: TF.pad(x, pad, mode=mode),
                  [randn(shape, 6)], np.float64, 1e-10, 1e-12)


@needs_torch
@pytest.mark.parametrize("op,shapes,kw", [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (2, 2, 7, 6), dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2))),
    ("max_pool2d", (3, 5, 5), dict(kernel_size=2, ceil_mode=True)),
    ("adaptive_max_pool1d", (2, 3, 7), dict(output_size=3)),
    ("adaptive_max_pool2d", (2, 2, 7, 5), dict(output_size=(3, 2))),
    ("adaptive_max_pool2d", (2, 5, 6), dict(output_size=4)),
], ids=lambda v: str(v) if not isinstance(v, dict) else "")
def test_return_indices_match_torch(op, shapes, kw):
    x = distinct(shapes, 8)
    values, idx = getattr(F, op)(Value(x), return_indices=True, **kw)
    t_values, t_idx = getattr(TF, op)(torch.from_numpy(x), return_indices=True, **kw)
    np.testing.assert_array_equal(values.numpy(), t_values.numpy())
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())
    assert idx.dtype == np.int64


@pytest.mark.parametrize("op,shape,kw", [
    ("max_pool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("max_pool2d", (2, 2, 7, 6), dict(kernel_size=3, stride=2, padding=1, dilation=(1, 2))),
    ("max_pool2d", (3, 5, 5), dict(kernel_size=2, ceil_mode=True)),
])
def test_return_indices_vs_numpy(op, shape, kw):
    x = distinct(shape, 8)
    values, idx = getattr(F, op)(Value(x), return_indices=True, **kw)
    n = int(op[-2])
    want_v, want_i = np_max_pool(x, n, return_indices=True, **kw)
    np.testing.assert_array_equal(values.numpy(), want_v)
    np.testing.assert_array_equal(idx.numpy(), want_i)
    # the indices point at the values: gathering the input there gives the output
    flat = x.reshape(*x.shape[:-n], -1)
    gathered = np.take_along_axis(flat, idx.numpy().reshape(*flat.shape[:-1], -1), -1)
    np.testing.assert_array_equal(gathered.reshape(values.shape), values.numpy())


# ---- dropout1d / dropout2d ------------------------------------------------------------------


@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (4, 6, 5)), (F.dropout1d, (16, 5)),
                                      (F.dropout2d, (4, 6, 3, 3)), (F.dropout2d, (16, 3, 3))])
def test_channel_dropout_zeros_whole_channels(fn, shape):
    mg.manual_seed(0)
    x = uniform_away(shape)
    y = fn(Value(x), 0.4).numpy()
    spatial = 1 if fn is F.dropout1d else 2
    ratio = (y / x).reshape(*shape[:len(shape) - spatial], -1)
    # each channel is all dropped (0) or all kept and scaled by 1 / (1 - p)
    per_channel = ratio[..., :1]
    np.testing.assert_allclose(ratio, np.broadcast_to(per_channel, ratio.shape), rtol=1e-12)
    assert set(np.round(per_channel.ravel(), 12)) <= {0.0, round(1 / 0.6, 12)}
    assert 0 < np.count_nonzero(per_channel) < per_channel.size
    np.testing.assert_array_equal(fn(Value(x), 0.4, training=False).numpy(), x)
    np.testing.assert_array_equal(fn(Value(x), 1.0).numpy(), np.zeros(shape))


def uniform_away(shape):
    return rng(5).uniform(0.5, 2.0, size=shape)


@pytest.mark.parametrize("fn,shape", [(F.dropout1d, (3, 4, 3)), (F.dropout2d, (2, 4, 2, 2))])
def test_channel_dropout_grad(fn, shape):
    def run(x):
        mg.manual_seed(1)  # the same mask on every call, finite differences included
        return fn(x, 0.5)

    out = check_op(run, randn(shape, 2))
    assert np.count_nonzero(out.numpy()) < out.size  # some channels were dropped


@pytest.mark.parametrize("cls", [nn.Dropout1d, nn.Dropout2d])
def test_dropout_modules_follow_train_and_eval(cls):
    shape = (8, 6, 4) if cls is nn.Dropout1d else (8, 6, 2, 2)
    x = Value(np.ones(shape))
    m = cls(0.5)
    mg.manual_seed(3)
    y = m(x).numpy()
    mg.manual_seed(3)
    np.testing.assert_array_equal(y, F.dropout1d(x, 0.5).numpy() if cls is nn.Dropout1d
                                  else F.dropout2d(x, 0.5).numpy())
    np.testing.assert_array_equal(m.eval()(x).numpy(), x.numpy())


# ---- layers against torch -------------------------------------------------------------------
# Each row builds the same layer from mikagrad's nn and torch's: seeded alike, they hold the
# same numbers (torch's float32 stream, exact in MikaGrad's float64); loaded with a torch
# layer's state dict, they compute what it computes, gradients included.

LAYERS = [
    ("Conv1d", lambda m: m.Conv1d(4, 6, 3, stride=2, padding=1, groups=2), (2, 4, 9)),
    ("Conv1d-unbatched", lambda m: m.Conv1d(3, 2, 2, dilation=2, bias=False), (3, 8)),
    ("Conv1d-same-reflect", lambda m: m.Conv1d(2, 3, 4, padding="same",
                                               padding_mode="reflect"), (2, 2, 7)),
    ("Conv2d", lambda m: m.Conv2d(3, 4, 3), (2, 3, 6, 5)),
    ("Conv2d-stride-dil", lambda m: m.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2),
                                             dilation=(1, 2)), (2, 2, 7, 6)),
    ("Conv2d-depthwise", lambda m: m.Conv2d(3, 6, 3, padding=1, groups=3), (1, 3, 5, 5)),
    ("Conv2d-same", lambda m: m.Conv2d(2, 3, (2, 3), padding="same", dilation=2),
     (1, 2, 6, 6)),
    ("Conv2d-reflect", lambda m: m.Conv2d(2, 3, 3, padding=(1, 2),
                                          padding_mode="reflect"), (2, 2, 5, 5)),
    ("Conv2d-replicate", lambda m: m.Conv2d(2, 3, 3, padding=2, padding_mode="replicate"),
     (2, 2, 4, 5)),
    ("Conv2d-circular", lambda m: m.Conv2d(2, 3, 3, stride=2, padding=(2, 1),
                                           padding_mode="circular"), (2, 2, 5, 6)),
    ("Conv2d-circular-same", lambda m: m.Conv2d(2, 2, 4, padding="same",
                                                padding_mode="circular"), (1, 2, 5, 5)),
    ("Conv2d-unbatched", lambda m: m.Conv2d(3, 2, 2, bias=False), (3, 4, 4)),
    ("ConvTranspose1d", lambda m: m.ConvTranspose1d(4, 2, 3, stride=2, padding=1,
                                                    output_padding=1, groups=2), (2, 4, 5)),
    ("ConvTranspose2d", lambda m: m.ConvTranspose2d(3, 4, (3, 2), stride=2, padding=(1, 0)),
     (2, 3, 3, 4)),
    ("ConvTranspose2d-dil", lambda m: m.ConvTranspose2d(2, 2, 2, dilation=2, bias=False),
     (2, 3, 3)),
    ("MaxPool1d", lambda m: m.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), (2, 3, 8)),
    ("MaxPool2d", lambda m: m.MaxPool2d((2, 3), stride=(2, 1), dilation=(1, 2)),
     (2, 2, 6, 7)),
    ("AvgPool1d", lambda m: m.AvgPool1d(3, stride=2, padding=1, count_include_pad=False),
     (2, 3, 8)),
    ("AvgPool2d", lambda m: m.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                        divisor_override=4), (2, 2, 6, 7)),
    ("AdaptiveAvgPool1d", lambda m: m.AdaptiveAvgPool1d(3), (2, 3, 7)),
    ("AdaptiveAvgPool2d", lambda m: m.AdaptiveAvgPool2d((2, None)), (2, 2, 5, 3)),
    ("AdaptiveMaxPool2d", lambda m: m.AdaptiveMaxPool2d(2), (2, 2, 5, 5)),
    ("Upsample-nearest", lambda m: m.Upsample(scale_factor=2), (1, 2, 3, 3)),
    ("Upsample-bilinear", lambda m: m.Upsample(size=(5, 4), mode="bilinear",
                                               align_corners=True), (1, 2, 3, 3)),
    ("BatchNorm1d", lambda m: m.BatchNorm1d(3), (4, 3)),
    ("BatchNorm1d-3d", lambda m: m.BatchNorm1d(3, momentum=None), (2, 3, 4)),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(2, eps=1e-3), (2, 2, 3, 3)),
    ("BatchNorm2d-no-affine", lambda m: m.BatchNorm2d(2, affine=False), (3, 2, 2, 2)),
    ("BatchNorm2d-untracked", lambda m: m.BatchNorm2d(2, track_running_stats=False),
     (3, 2, 2, 2)),
    ("InstanceNorm1d", lambda m: m.InstanceNorm1d(3, affine=True), (2, 3, 5)),
    ("InstanceNorm1d-unbatched", lambda m: m.InstanceNorm1d(3), (3, 5)),
    ("InstanceNorm2d", lambda m: m.InstanceNorm2d(2, affine=True, track_running_stats=True),
     (2, 2, 3, 3)),
    ("GroupNorm", lambda m: m.GroupNorm(2, 4), (2, 4, 3)),
    ("GroupNorm-4d", lambda m: m.GroupNorm(3, 6, affine=False), (2, 6, 2, 2)),
    ("Flatten", lambda m: m.Flatten(), (2, 3, 2, 2)),
    ("Flatten-range", lambda m: m.Flatten(0, 2), (2, 3, 2, 2)),
    ("Unflatten", lambda m: m.Unflatten(1, (2, 3)), (2, 6, 2)),
    ("Dropout2d-eval", lambda m: m.Dropout2d(0.5).eval(), (2, 3, 2, 2)),
    ("Dropout1d-eval", lambda m: m.Dropout1d(0.5).eval(), (2, 3, 4)),
]


def _perturbed(torch_layer):
    """torch's layer with every float buffer and parameter moved off its initial value."""
    g = rng(99)
    with torch.no_grad():
        for name, t in itertools.chain(torch_layer.named_parameters(),
                                       torch_layer.named_buffers()):
            if t.is_floating_point():
                shift = g.uniform(0.5, 1.5, size=tuple(t.shape)) if "var" in name or \
                    name.endswith("weight") else g.standard_normal(tuple(t.shape))
                t.copy_(torch.from_numpy(shift))
    return torch_layer


@needs_torch
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[r[0] for r in LAYERS])
def test_layer_same_seed_gives_torchs_weights(name, make, shape):
    mg.manual_seed(17)
    mine = make(nn)
    torch.manual_seed(17)
    ref = make(torch.nn)
    ours_sd, ref_sd = mine.state_dict(), ref.state_dict()
    assert list(ours_sd) == list(ref_sd)
    for k, t in ref_sd.items():
        a = np.asarray(ours_sd[k])
        assert a.shape == tuple(t.shape), k
        np.testing.assert_array_equal(a, t.numpy().astype(a.dtype), err_msg=k)


@needs_torch
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[r[0] for r in LAYERS])
def test_layer_with_torchs_state_dict_matches_torch(name, make, shape, train):
    torch.manual_seed(5)
    ref = _perturbed(make(torch.nn).double().train(train))
    mine = make(nn).train(train)
    mine.load_state_dict({k: t.numpy() for k, t in ref.state_dict().items()})
    x = randn(shape, 11)
    if name.startswith("Dropout"):  # eval rows: the layer is the identity, in either mode
        mine.eval(), ref.eval()
    params = [p for _, p in mine.named_parameters()]
    t_params = [p for _, p in ref.named_parameters()]
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in ref.named_parameters()]
    xv, xt = Value(x), torch.tensor(x, requires_grad=True)
    out, want = mine(xv), ref(xt)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = randn(out.shape, 12)
    (out * Value(w, requires_grad=False)).sum().backward()
    (want * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(xv.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    for p, tp in zip(params, t_params):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-9, atol=1e-12)
    for k, t in ref.state_dict().items():  # the running statistics moved alike
        np.testing.assert_allclose(np.asarray(mine.state_dict()[k]), t.numpy(), rtol=1e-12,
                                   err_msg=k)


@needs_torch
@pytest.mark.parametrize("output_size", [(7, 9), (8, 9), (8, 10), [2, 3, 8, 10]], ids=str)
def test_conv_transpose2d_output_size_matches_torch(output_size):
    mg.manual_seed(2)
    mine = nn.ConvTranspose2d(3, 2, 3, stride=(2, 3), padding=(1, 0))
    torch.manual_seed(2)
    ref = torch.nn.ConvTranspose2d(3, 2, 3, stride=(2, 3), padding=(1, 0)).double()
    x = randn((2, 3, 4, 3), 1)
    out = mine(Value(x), output_size=output_size)
    want = ref(torch.from_numpy(x), output_size=output_size)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_conv_transpose_output_size_picks_the_output_padding():
    x = randn((1, 2, 3), 1)
    mg.manual_seed(0)
    layer = nn.ConvTranspose1d(2, 2, 3, stride=3)
    for size, extra in [(9, 0), (10, 1), (11, 2)]:
        out = layer(Value(x), output_size=[size])
        want = np_conv_transpose(x, layer.weight.numpy(), layer.bias.numpy(), stride=3,
                                 output_padding=extra)
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


# ---- BatchNorm's running statistics against torch -------------------------------------------


@needs_torch
@pytest.mark.parametrize("momentum", [0.1, 0.3, None], ids=str)
@pytest.mark.parametrize("cls,shape", [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (4, 3, 2)),
                                       ("BatchNorm2d", (3, 3, 2, 2))], ids=str)
def test_batchnorm_running_stats_match_torch(cls, shape, momentum):
    mine = getattr(nn, cls)(3, momentum=momentum)
    ref = getattr(torch.nn, cls)(3, momentum=momentum).double()
    for step in range(5):
        x = randn(shape, 20 + step, scale=1.0 + step) + step  # statistics that move
        out, want = mine(Value(x)), ref(torch.from_numpy(x))
        np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(mine, k).numpy(), getattr(ref, k).numpy(),
                                   rtol=1e-12, err_msg=k)
    assert int(mine.num_batches_tracked.item()) == int(ref.num_batches_tracked) == 5
    assert mine.num_batches_tracked.dtype == np.int64
    mine.eval(), ref.eval()
    x = randn(shape, 40)
    np.testing.assert_allclose(mine(Value(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    assert int(mine.num_batches_tracked.item()) == 5  # eval does not count


@needs_torch
@pytest.mark.parametrize("momentum", [0.1, None], ids=str)
def test_instance_norm_running_stats_match_torch(momentum):
    mine = nn.InstanceNorm1d(3, momentum=momentum, track_running_stats=True)
    ref = torch.nn.InstanceNorm1d(3, momentum=momentum, track_running_stats=True).double()
    for step in range(3):
        x = randn((2, 3, 5), 60 + step) + step
        np.testing.assert_allclose(mine(Value(x)).numpy(), ref(torch.from_numpy(x)).numpy(),
                                   rtol=1e-10, atol=1e-12)
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(mine, k).numpy(), getattr(ref, k).numpy(),
                                   rtol=1e-12, err_msg=k)
    mine.eval(), ref.eval()
    x = randn((2, 3, 5), 70)
    np.testing.assert_allclose(mine(Value(x)).numpy(), ref(torch.from_numpy(x)).numpy(),
                               rtol=1e-10, atol=1e-12)
    if momentum is None:
        assert int(mine.num_batches_tracked.item()) == int(ref.num_batches_tracked)


def test_batchnorm_running_stats_vs_numpy():
    xs = [randn((6, 2, 3), 30 + i) * (i + 1) + i for i in range(4)]
    for momentum in (0.1, None):
        bn = nn.BatchNorm1d(2, momentum=momentum)
        mean, var = np.zeros(2), np.ones(2)
        for n, x in enumerate(xs, 1):
            bn(Value(x))
            f = 1.0 / n if momentum is None else momentum  # None: the cumulative average
            mean = (1 - f) * mean + f * x.mean(axis=(0, 2))
            var = (1 - f) * var + f * x.var(axis=(0, 2), ddof=1)  # unbiased, as torch
        np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-12)
        if momentum is None:  # the cumulative average is the plain mean of the batches'
            np.testing.assert_allclose(mean, np.mean([x.mean(axis=(0, 2)) for x in xs], 0))
        assert bn.num_batches_tracked.item() == 4
        bn.eval()
        x = randn((3, 2, 3), 50)
        np.testing.assert_allclose(bn(Value(x)).numpy(), np_batch_norm(
            x, bn.weight.numpy(), bn.bias.numpy(), running=(mean, var)), rtol=1e-10,
            atol=1e-12)


def test_functional_batch_norm_updates_running_stats_in_place():
    x = randn((5, 3, 2), 3)
    rm, rv = Value(np.zeros(3), requires_grad=False), Value(np.ones(3), requires_grad=False)
    F.batch_norm(Value(x), rm, rv, training=True, momentum=0.25)
    np.testing.assert_allclose(rm.numpy(), 0.25 * x.mean(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.75 + 0.25 * x.var(axis=(0, 2), ddof=1),
                               rtol=1e-12)
    before = rm.numpy().copy()
    F.batch_norm(Value(x), rm, rv, training=False)  # eval reads them only
    np.testing.assert_array_equal(rm.numpy(), before)


def test_batchnorm_state_dict_keys_and_buffers():
    bn = nn.BatchNorm2d(4)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(nn.BatchNorm2d(4, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm2d(4, track_running_stats=False).state_dict()) == ["weight", "bias"]


# ---- gradient through a whole conv stack ----------------------------------------------------


def test_grad_through_a_conv_stack():
    """Conv2d → BatchNorm2d → relu → MaxPool2d → Flatten → Linear, for the input and every
    parameter (BatchNorm in training: its batch statistics are differentiated too)."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 2))
    names = [n for n, _ in model.named_parameters()]
    start = [p.numpy().copy() for p in model.parameters()]
    assert len(names) == 6

    def run(x, *params):
        for name, p in zip(names, params):
            mod, attr = name.rsplit(".", 1)
            setattr(model.get_submodule(mod) if hasattr(model, "get_submodule")
                    else model[int(mod)], attr, p)
        return model(x)

    check_op(run, randn((2, 2, 4, 4), 1), *start)


# ---- double backward (smoke) ----------------------------------------------------------------


def test_double_backward_smoke():
    if not hasattr(mg, "autograd"):
        pytest.skip("mikagrad has no autograd.grad yet")
    x = Value(randn((1, 2, 5, 5), 1))
    w = Value(randn((2, 2, 3, 3), 2))
    (g,) = mg.autograd.grad(F.conv2d(x, w).pow(2).sum(), [x], create_graph=True)
    g.sum().backward()
    assert w.grad is not None and w.grad.shape == w.shape


# ---- dtypes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op,shapes,args,kw", CASES)
def test_float32_in_float32_out(op, shapes, args, kw):
    values = [Value(a.astype(np.float32)) for a in inputs(op, shapes)]
    out = ours(op, args, kw)(*values)
    assert out.dtype == np.float32
    out.sum().backward()
    assert all(v.grad.dtype == np.float32 for v in values)
    np.testing.assert_allclose(out.numpy(), reference(op, args, kw)(
        *[v.numpy().astype(np.float64) for v in values]), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("fn,x,w", [
    (F.conv2d, (1, 2, 4, 4), (3, 2, 2, 2)), (F.conv1d, (1, 2, 5), (3, 2, 2)),
    (F.conv_transpose2d, (1, 2, 3, 3), (2, 3, 2, 2)), (F.conv_transpose1d, (2, 4), (2, 3, 2))])
@pytest.mark.parametrize("dx,dw", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_float32_float64_promotes_to_float64(fn, x, w, dx, dw):
    xv, wv = Value(randn(x, 1).astype(dx)), Value(randn(w, 2).astype(dw))
    bias = Value(randn(w[1] if fn in (F.conv_transpose1d, F.conv_transpose2d) else w[0], 3)
                 .astype(np.float32))
    out = fn(xv, wv, bias)
    assert out.dtype == np.float64
    out.sum().backward()
    assert xv.grad.dtype == dx and wv.grad.dtype == dw and bias.grad.dtype == np.float32
    want = (np_conv_transpose if "transpose" in fn.__name__ else np_conv)(
        xv.numpy().astype(np.float64), wv.numpy().astype(np.float64),
        bias.numpy().astype(np.float64))
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


def test_float32_layers():
    mg.set_default_dtype(mg.float32)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
                          nn.BatchNorm2d(3), nn.MaxPool2d(2), nn.Upsample(scale_factor=2,
                                                                          mode="bilinear"),
                          nn.GroupNorm(1, 3), nn.ConvTranspose2d(3, 1, 2, stride=2))
    x = Value(randn((2, 2, 4, 4)).astype(np.float32))
    out = model(x)
    assert out.dtype == np.float32 and out.shape == (2, 1, 8, 8)
    out.sum().backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    assert model[1].running_mean.dtype == np.float32


# ---- bad inputs -----------------------------------------------------------------------------


def v(*shape):
    return Value(np.ones(shape))


# Each row: an id, a callable, the exception class, and a regex the message must match
# (shape errors name the op and the shapes involved).
BAD = [
    ("max_pool1d_padding_past_half_the_kernel",
     lambda: F.max_pool1d(v(1, 1, 3), 2, 1, 2, dilation=3), ValueError, r"max_pool1d.*half"),
    ("conv1d_dilation_overflows", lambda: F.conv1d(v(1, 1, 6), v(1, 1, 5), dilation=2**62),
     mg.ShapeError, r"conv1d.*\(6,\)"),
    ("conv1d_padding_overflows", lambda: F.conv1d(v(1, 1, 6), v(1, 1, 1), padding=2**63),
     mg.ShapeError, r"conv1d"),
    ("unfold_dilation_overflows", lambda: F.unfold(v(1, 1, 1, 4), (1, 3), dilation=(1, 2**63)),
     mg.ShapeError, r"unfold"),
    ("avg_pool1d_sizes_overflow", lambda: F.avg_pool1d(v(1, 1, 6), 2**63, 1, 2**62),
     ValueError, r"avg_pool1d"),
    ("conv2d_kernel_bigger_than_input", lambda: F.conv2d(v(1, 1, 3, 3), v(1, 1, 4, 4)),
     mg.ShapeError, r"conv2d.*\(3, 3\).*\(4, 4\)"),
    ("conv2d_kernel_bigger_than_padded", lambda: F.conv2d(v(1, 1, 3, 3), v(1, 1, 6, 6),
                                                          padding=1),
     mg.ShapeError, r"conv2d.*\(5, 5\).*\(6, 6\)"),
    ("conv2d_dilated_kernel_too_big", lambda: F.conv2d(v(1, 1, 5, 5), v(1, 1, 3, 3),
                                                       dilation=3),
     mg.ShapeError, r"conv2d.*\(5, 5\).*\(7, 7\)"),
    ("conv1d_kernel_too_big", lambda: F.conv1d(v(1, 1, 3), v(1, 1, 4)), mg.ShapeError,
     r"conv1d.*3.*4"),
    ("max_pool2d_kernel_bigger_than_input", lambda: F.max_pool2d(v(1, 1, 3, 3), 4),
     mg.ShapeError, r"max_pool2d.*3.*kernel 4"),
    ("avg_pool2d_kernel_bigger_than_input", lambda: F.avg_pool2d(v(1, 1, 3, 3), 4),
     mg.ShapeError, r"avg_pool2d.*3.*kernel 4"),
    ("conv2d_in_channels_not_divisible", lambda: F.conv2d(v(1, 3, 5, 5), v(4, 1, 3, 3),
                                                          groups=2),
     mg.ShapeError, r"conv2d.*groups=2.*\(4, 1, 3, 3\).*\(1, 3, 5, 5\)"),
    ("conv2d_out_channels_not_divisible", lambda: F.conv2d(v(1, 4, 5, 5), v(3, 2, 3, 3),
                                                           groups=2),
     mg.ShapeError, r"conv2d.*\(3, 2, 3, 3\).*groups=2"),
    ("conv2d_channels_mismatch", lambda: F.conv2d(v(1, 3, 5, 5), v(4, 2, 3, 3)),
     mg.ShapeError, r"conv2d.*\(4, 2, 3, 3\).*\(1, 3, 5, 5\)"),
    ("conv2d_unbatched_channels_mismatch", lambda: F.conv2d(v(3, 5, 5), v(4, 2, 3, 3)),
     mg.ShapeError, r"conv2d.*\(4, 2, 3, 3\).*\(3, 5, 5\)"),
    ("conv1d_channels_mismatch", lambda: F.conv1d(v(2, 3, 5), v(4, 2, 3)), mg.ShapeError,
     r"conv1d.*\(4, 2, 3\).*\(2, 3, 5\)"),
    ("conv2d_2d_input", lambda: F.conv2d(v(5, 5), v(4, 1, 3, 3)), mg.ShapeError,
     r"conv2d.*3-D.*4-D.*\(5, 5\)"),
    ("conv2d_5d_input", lambda: F.conv2d(v(1, 1, 1, 5, 5), v(4, 1, 3, 3)), mg.ShapeError,
     r"conv2d.*\(1, 1, 1, 5, 5\)"),
    ("conv1d_4d_input", lambda: F.conv1d(v(1, 1, 3, 3), v(2, 1, 2)), mg.ShapeError,
     r"conv1d.*\(1, 1, 3, 3\)"),
    ("conv2d_3d_weight", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 3, 3)), mg.ShapeError,
     r"conv2d.*weight.*\(4, 3, 3\)"),
    ("conv2d_bias_shape", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), v(3)), mg.ShapeError,
     r"conv2d.*bias.*\(4,\).*\(4, 1, 3, 3\).*\(3,\)"),
    ("conv2d_bias_2d", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), v(4, 1)), mg.ShapeError,
     r"conv2d.*bias.*\(4, 1\)"),
    ("conv_transpose2d_bias_shape",
     lambda: F.conv_transpose2d(v(1, 2, 3, 3), v(2, 2, 2, 2), v(3)), mg.ShapeError,
     r"conv_transpose2d.*bias.*\(3,\)"),
    ("conv_transpose2d_bias_broadcasts",
     lambda: F.conv_transpose2d(v(1, 2, 3, 3), v(2, 2, 2, 2), v(1)), mg.ShapeError,
     r"conv_transpose2d.*bias"),
    ("conv_transpose2d_channels", lambda: F.conv_transpose2d(v(1, 3, 3, 3), v(2, 2, 2, 2)),
     mg.ShapeError, r"conv_transpose2d.*\(2, 2, 2, 2\).*\(1, 3, 3, 3\)"),
    ("conv_transpose2d_groups", lambda: F.conv_transpose2d(v(1, 3, 3, 3), v(3, 2, 2, 2),
                                                           groups=2),
     mg.ShapeError, r"conv_transpose2d.*\(3, 2, 2, 2\).*groups=2"),
    ("conv_transpose2d_2d_input", lambda: F.conv_transpose2d(v(3, 3), v(2, 2, 2, 2)),
     mg.ShapeError, r"conv_transpose2d.*\(3, 3\)"),
    ("conv_transpose2d_output_padding", lambda: F.conv_transpose2d(
        v(1, 2, 3, 3), v(2, 2, 2, 2), output_padding=1), ValueError,
     r"conv_transpose2d.*output_padding.*stride"),
    ("conv_transpose2d_output_size", lambda: nn.ConvTranspose2d(1, 1, 3, stride=2)(
        v(1, 1, 3, 3), output_size=(9, 9)), ValueError, r"conv_transpose2d.*\(9, 9\)"),
    ("conv2d_negative_padding", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), padding=-1),
     ValueError, r"conv2d.*padding.*-1"),
    ("conv2d_zero_stride", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), stride=0),
     ValueError, r"conv2d.*stride.*0"),
    ("conv2d_zero_dilation", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), dilation=0),
     ValueError, r"conv2d.*dilation"),
    ("conv2d_zero_groups", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), groups=0),
     ValueError, r"conv2d.*groups"),
    ("conv2d_same_strided", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), stride=2,
                                             padding="same"),
     ValueError, r"conv2d.*'same'.*strided"),
    ("conv2d_padding_word", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3), padding="full"),
     ValueError, r"conv2d.*'full'"),
    ("conv2d_stride_three_ints", lambda: F.conv2d(v(1, 1, 5, 5), v(4, 1, 3, 3),
                                                  stride=(1, 1, 1)),
     TypeError, r"conv2d.*stride"),
    ("conv2d_int_input", lambda: F.conv2d(mg.tensor(np.ones((1, 1, 5, 5), dtype=np.int64)),
                                          v(4, 1, 3, 3)),
     TypeError, r"conv2d.*int64"),
    ("conv2d_int_weight", lambda: F.conv2d(v(1, 1, 5, 5),
                                           mg.tensor(np.ones((4, 1, 3, 3), dtype=np.int64))),
     TypeError, r"conv2d.*weight.*int64"),
    ("Conv2d_groups", lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError,
     r"Conv2d.*\(3\).*groups \(2\)"),
    ("Conv2d_out_groups", lambda: nn.Conv2d(4, 3, 3, groups=2), ValueError,
     r"Conv2d.*\(3\).*groups \(2\)"),
    ("Conv2d_padding_mode", lambda: nn.Conv2d(1, 1, 3, padding_mode="mirror"), ValueError,
     r"Conv2d.*'mirror'"),
    ("Conv2d_same_strided", lambda: nn.Conv2d(1, 1, 3, stride=2, padding="same"), ValueError,
     r"Conv2d.*'same'"),
    ("ConvTranspose2d_padding_mode", lambda: nn.ConvTranspose2d(1, 1, 3,
                                                                padding_mode="reflect"),
     ValueError, r"ConvTranspose2d.*zeros"),
    ("Conv2d_reflect_too_wide", lambda: nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(
        v(1, 1, 3, 3)), mg.ShapeError, r"pad.*reflect.*3.*\(1, 1, 3, 3\)"),
    ("max_pool2d_padding_over_half", lambda: F.max_pool2d(v(1, 1, 6, 6), 3, padding=2),
     ValueError, r"max_pool2d.*padding 2.*kernel.*3"),
    ("max_pool1d_padding_over_half", lambda: F.max_pool1d(v(1, 1, 6), 2, padding=2),
     ValueError, r"max_pool1d.*padding 2.*2"),
    ("avg_pool2d_padding_over_half", lambda: F.avg_pool2d(v(1, 1, 6, 6), 3, padding=2),
     ValueError, r"avg_pool2d.*padding 2.*3"),
    ("max_pool2d_zero_stride", lambda: F.max_pool2d(v(1, 1, 6, 6), 3, stride=0), ValueError,
     r"max_pool2d.*stride"),
    ("MaxPool2d_zero_stride", lambda: nn.MaxPool2d(2, stride=0)(v(1, 1, 4, 4)), ValueError,
     r"max_pool2d.*stride"),
    ("AvgPool2d_zero_stride", lambda: nn.AvgPool2d(2, stride=0)(v(1, 1, 4, 4)), ValueError,
     r"avg_pool2d.*stride"),
    ("max_pool2d_2d_input", lambda: F.max_pool2d(v(6, 6), 2), mg.ShapeError,
     r"max_pool2d.*\(6, 6\)"),
    ("avg_pool1d_4d_input", lambda: F.avg_pool1d(v(1, 1, 6, 6), 2), mg.ShapeError,
     r"avg_pool1d.*\(1, 1, 6, 6\)"),
    ("adaptive_avg_pool2d_2d_input", lambda: F.adaptive_avg_pool2d(v(3, 3), 2),
     mg.ShapeError, r"adaptive_avg_pool2d.*\(3, 3\)"),
    ("adaptive_max_pool2d_three_sizes", lambda: F.adaptive_max_pool2d(v(1, 1, 3, 3),
                                                                      (1, 2, 3)),
     ValueError, r"adaptive_max_pool2d.*output_size"),
    ("pad_reflect_as_large_as_dim", lambda: F.pad(v(1, 1, 3), (3, 0), mode="reflect"),
     mg.ShapeError, r"pad.*reflect.*\(3, 0\).*size 3.*\(1, 1, 3\)"),
    ("pad_reflect_2d_too_large", lambda: F.pad(v(1, 1, 4, 2), (1, 2, 1, 1), mode="reflect"),
     mg.ShapeError, r"pad.*reflect.*\(1, 2\).*size 2"),
    ("pad_circular_too_large", lambda: F.pad(v(1, 1, 3), (4, 0), mode="circular"),
     mg.ShapeError, r"pad.*circular.*\(4, 0\).*\(1, 1, 3\)"),
    ("pad_unknown_mode", lambda: F.pad(v(1, 1, 3), (1, 1), mode="mirror"), ValueError,
     r"pad.*mirror"),
    ("pad_odd_length", lambda: F.pad(v(1, 1, 3), (1,)), ValueError, r"pad.*even.*\(1, 1, 3\)"),
    ("pad_more_dims_than_input", lambda: F.pad(v(3), (1, 1, 1, 1)), ValueError,
     r"pad.*4.*\(3,\)"),
    ("pad_crops_below_zero", lambda: F.pad(v(1, 1, 3), (-2, -2)), mg.ShapeError,
     r"pad.*\(-2, -2\).*3"),
    ("pad_value_with_reflect", lambda: F.pad(v(1, 1, 3), (1, 1), mode="reflect", value=1.0),
     ValueError, r"pad.*value"),
    ("pad_float_amount", lambda: F.pad(v(1, 1, 3), (1.5, 1)), TypeError, r"pad.*1\.5"),
    ("interpolate_size_and_scale", lambda: F.interpolate(v(1, 1, 3), size=4, scale_factor=2),
     ValueError, r"interpolate.*size.*scale_factor"),
    ("interpolate_neither", lambda: F.interpolate(v(1, 1, 3)), ValueError,
     r"interpolate.*size.*scale_factor"),
    ("interpolate_align_corners_nearest", lambda: F.interpolate(v(1, 1, 3), size=4,
                                                                align_corners=True),
     ValueError, r"interpolate.*align_corners"),
    ("interpolate_bilinear_3d", lambda: F.interpolate(v(1, 1, 3), size=4, mode="bilinear"),
     ValueError, r"interpolate.*bilinear.*\(1, 1, 3\)"),
    ("interpolate_unknown_mode", lambda: F.interpolate(v(1, 1, 3), size=4, mode="cubic"),
     ValueError, r"interpolate.*cubic"),
    ("interpolate_2d_input", lambda: F.interpolate(v(3, 3), size=4), mg.ShapeError,
     r"interpolate.*\(3, 3\)"),
    ("interpolate_negative_scale", lambda: F.interpolate(v(1, 1, 3), scale_factor=-1),
     ValueError, r"interpolate.*scale_factor"),
    ("interpolate_empty_output", lambda: F.interpolate(v(1, 1, 3), scale_factor=0.2),
     mg.ShapeError, r"interpolate.*\(1, 1, 3\)"),
    ("fold_block_count", lambda: F.fold(v(1, 4, 5), (3, 3), 2), mg.ShapeError,
     r"fold.*\(1, 4, 5\).*5 blocks.*\(3, 3\).*4"),
    ("fold_channels_not_divisible", lambda: F.fold(v(1, 5, 4), (3, 3), 2), mg.ShapeError,
     r"fold.*\(1, 5, 4\).*5.*\(2, 2\)"),
    ("BatchNorm2d_3d_input", lambda: nn.BatchNorm2d(3)(v(2, 3, 4)), mg.ShapeError,
     r"BatchNorm2d.*4-D.*\(2, 3, 4\)"),
    ("BatchNorm1d_4d_input", lambda: nn.BatchNorm1d(3)(v(2, 3, 4, 4)), mg.ShapeError,
     r"BatchNorm1d.*\(2, 3, 4, 4\)"),
    ("BatchNorm2d_channels", lambda: nn.BatchNorm2d(3)(v(2, 4, 4, 4)), mg.ShapeError,
     r"BatchNorm2d.*3.*\(2, 4, 4, 4\)"),
    ("batch_norm_one_value_per_channel", lambda: F.batch_norm(v(1, 3), None, None,
                                                              training=True),
     ValueError, r"batch_norm.*more than 1 value per channel.*\(1, 3\)"),
    ("BatchNorm2d_one_value_per_channel", lambda: nn.BatchNorm2d(3)(v(1, 3, 1, 1)), ValueError,
     r"batch_norm.*more than 1 value.*\(1, 3, 1, 1\)"),
    ("batch_norm_running_shape", lambda: F.batch_norm(v(2, 3), v(4), v(3)), mg.ShapeError,
     r"batch_norm.*running_mean.*\(3,\).*\(2, 3\).*\(4,\)"),
    ("batch_norm_eval_without_stats", lambda: F.batch_norm(v(2, 3), None, None), ValueError,
     r"batch_norm.*running"),
    ("instance_norm_no_positions", lambda: F.instance_norm(v(3, 4)), mg.ShapeError,
     r"instance_norm.*\(3, 4\)"),
    ("instance_norm_one_position", lambda: F.instance_norm(v(2, 3, 1)), ValueError,
     r"instance_norm.*\(2, 3, 1\)"),
    ("group_norm_not_divisible", lambda: F.group_norm(v(2, 3, 4), 2), mg.ShapeError,
     r"group_norm.*num_groups=2.*\(2, 3, 4\)"),
    ("GroupNorm_not_divisible", lambda: nn.GroupNorm(2, 3), ValueError,
     r"GroupNorm.*\(3\).*\(2\)"),
    ("layer_norm_shape", lambda: F.layer_norm(v(2, 3, 4), (3,)), mg.ShapeError,
     r"layer_norm.*\(2, 3, 4\).*\(3,\)"),
    ("dropout2d_p", lambda: F.dropout2d(v(2, 3, 4, 4), 1.5), ValueError, r"dropout2d.*1\.5"),
    ("dropout1d_4d_input", lambda: F.dropout1d(v(2, 3, 4, 4), 0.5), mg.ShapeError,
     r"dropout1d.*\(2, 3, 4, 4\)"),
    ("Dropout2d_p", lambda: nn.Dropout2d(-0.1), ValueError, r"Dropout2d.*-0\.1"),
]


# Rows where the implementation is wrong today (see the reasons): kept as they should be.
def _bad_rows():
    for name, make, exc, pattern in BAD:
        yield pytest.param(make, exc, pattern, id=name)


@pytest.mark.parametrize("make,exc,pattern", list(_bad_rows()))
def test_bad_input(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_bad_inputs_do_not_leak_the_core():
    """Each bad input raised a Python exception of a documented kind, never a panic."""
    for _, make, _, _ in BAD:
        try:
            make()
        except (ValueError, TypeError):
            pass
        except BaseException as e:  # a pyo3 PanicException is a BaseException
            pytest.fail(f"{type(e).__name__}: {e}")


# ---- memory ---------------------------------------------------------------------------------


def test_conv_loop_keeps_live_nodes_flat():
    assert hasattr(_core, "live_nodes")
    x = Value(randn((2, 3, 8, 8), 1), requires_grad=False)
    w, b = Value(randn((4, 3, 3, 3), 2)), Value(randn(4, 3))

    def step():
        h = F.conv2d(x, w, b, padding=1, stride=2)
        out = F.max_pool2d(F.batch_norm(h, None, None, training=True).relu(), 2).sum()
        out.backward()
        w.grad = b.grad = None

    step()
    gc.collect()
    steady = _core.live_nodes()
    for _ in range(200):
        step()
    gc.collect()
    assert _core.live_nodes() == steady, "each step's graph is freed"


# ---- nn.grad: the conv's two gradients as ops of their own ---------------------------------
# conv_input and conv_weight are the backward of conv and, in turn, of each other: checking
# their own gradients by finite differences checks every rule of the three (gradients of
# gradients included).

GRAD_OPTS = [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2, groups=2),
             dict(stride=(2, 1), padding=(1, 0), groups=4)]


@pytest.mark.parametrize("kw", GRAD_OPTS, ids=str)
def test_conv2d_weight_and_input_gradients_by_finite_differences(kw):
    x, w = randn((2, 4, 7, 6), 60), randn((4, 4 // kw.get("groups", 1), 3, 2), 61)
    gy = F.conv2d(Value(x), Value(w), **kw).numpy()
    check_op(lambda x, gy: nn.grad.conv2d_weight(x, w.shape, gy, **kw), x, gy)
    check_op(lambda w, gy: nn.grad.conv2d_input(x.shape, w, gy, **kw), w, gy)


def test_conv1d_weight_and_input_gradients_by_finite_differences():
    x, w = randn((3, 2, 9), 62), randn((4, 2, 3), 63)
    gy = F.conv1d(Value(x), Value(w), stride=2, padding=1).numpy()
    check_op(lambda x, gy: nn.grad.conv1d_weight(x, w.shape, gy, stride=2, padding=1), x, gy)
    check_op(lambda w, gy: nn.grad.conv1d_input(x.shape, w, gy, stride=2, padding=1), w, gy)


@needs_torch
@pytest.mark.parametrize("kw", GRAD_OPTS, ids=str)
def test_nn_grad_matches_torch(kw):
    x, w = randn((2, 4, 7, 6), 64), randn((4, 4 // kw.get("groups", 1), 3, 2), 65)
    gy = F.conv2d(Value(x), Value(w), **kw).numpy()
    tx, tw, tgy = (torch.from_numpy(a) for a in (x, w, gy))
    np.testing.assert_allclose(nn.grad.conv2d_weight(Value(x), w.shape, Value(gy), **kw).numpy(),
                               torch.nn.grad.conv2d_weight(tx, w.shape, tgy, **kw).numpy(),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nn.grad.conv2d_input(x.shape, Value(w), Value(gy), **kw).numpy(),
                               torch.nn.grad.conv2d_input(x.shape, tw, tgy, **kw).numpy(),
                               rtol=1e-10, atol=1e-12)


def test_batch_norm_is_one_node_and_its_gradient_follows_the_batch_statistics():
    x, w, b = randn((4, 3, 2, 2), 66), randn(3, 67), randn(3, 68)
    out = F.batch_norm(Value(x), None, None, Value(w), Value(b), training=True)
    assert out._node.op == "batch_norm"
    check_op(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    rm, rv = Value(randn(3, 69), requires_grad=False), Value(np.abs(randn(3, 70)) + 0.5,
                                                             requires_grad=False)
    check_op(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), x, w, b)


@pytest.mark.parametrize("where", ["x", "w"])
def test_an_inf_in_a_depthwise_conv_gives_the_plain_products(where):
    # The direct depthwise loops skip padding and compute extra columns against zeros of
    # the gradient; with an inf they hand over to im2col, whose results are torch's.
    x, w = randn((1, 2, 3, 5), 75), np.ones((2, 1, 2, 3))
    (x if where == "x" else w)[(0, 0, 0, 0) if where == "w" else (0, 0, 0, 4)] = np.inf
    for kw in (dict(), dict(stride=2, padding=1)):
        xv, wv = Value(x), Value(w)
        out = F.conv2d(xv, wv, groups=2, **kw)
        out.backward(np.ones(out.shape))
        xg, wg = Value(x), Value(w)
        # The reference: the same conv, one group at a time, through the im2col path.
        ref = mg.cat([F.conv2d(xg[:, i:i + 1], wg[i:i + 1], **kw) for i in range(2)], 1)
        ref.backward(np.ones(ref.shape))
        for got, want in ((out, ref), (xv.grad, xg.grad), (wv.grad, wg.grad)):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)  # NaN == NaN


@pytest.mark.parametrize("where", ["x", "w"])
def test_an_inf_reaches_the_gradients_as_the_plain_products_give(where):
    # Stride-1 kernels compute extra columns that meet zeros of the output gradient; an inf
    # there must not turn a kept result into NaN (0·inf), so they fall back when inputs are
    # not finite. The reference is unfold's im2col and a matmul.
    x, w = randn((2, 3, 5, 5), 71), randn((4, 3, 3, 3), 72)
    (x if where == "x" else w)[(0, 1, 2, 2)] = np.inf
    xv, wv = Value(x), Value(w)
    gy = randn((2, 4, 5, 5), 73)
    F.conv2d(xv, wv, padding=1).backward(gy)
    cols = F.unfold(Value(x, requires_grad=False), 3, padding=1).numpy()  # (2, 27, 25)
    with np.errstate(invalid="ignore"):
        gw = np.einsum("nol,nkl->ok", gy.reshape(2, 4, 25), cols).reshape(w.shape)
        gcols = np.einsum("ok,nol->nkl", w.reshape(4, 27), gy.reshape(2, 4, 25))
    gx = F.fold(Value(gcols, requires_grad=False), (5, 5), 3, padding=1).numpy()
    for got, want in ((wv.grad.numpy(), gw), (xv.grad.numpy(), gx)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


def test_max_pool_takes_nan_and_keeps_it_and_all_minus_inf_gives_the_first_index():
    x = np.array([[[[1.0, np.nan, 3.0, 0.0],
                    [np.nan, 2.0, 5.0, 4.0],
                    [-np.inf, -np.inf, 7.0, np.inf],
                    [-np.inf, -np.inf, 6.0, 1.0]]]])
    v, i = F.max_pool2d(Value(x), 2, return_indices=True)
    # torch's rule: a NaN replaces the maximum (the last NaN's index), and stays; an all
    # -inf window keeps its first position.
    np.testing.assert_array_equal(v.numpy(), [[[[np.nan, 5.0], [-np.inf, np.inf]]]])
    np.testing.assert_array_equal(i.numpy(), [[[[4, 6], [8, 11]]]])


@needs_torch
def test_max_pool_with_nan_and_inf_matches_torch():
    x = rng(74).random((2, 3, 7, 7))
    x[0, 0, 1, 1] = x[1, 1, 4, 4] = x[1, 1, 4, 5] = np.nan
    x[0, 1, 2, 2], x[1, 0, :3, :3] = np.inf, -np.inf
    v, i = F.max_pool2d(Value(x), 3, 2, 1, return_indices=True)
    tv, ti = TF.max_pool2d(torch.from_numpy(x), 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(v.numpy(), tv.numpy())
    np.testing.assert_array_equal(i.numpy(), ti.numpy())


@pytest.mark.parametrize("x,kw,want", [
    # torch's 1-D kernel uses the scale even when the size comes out the same or doubled.
    ([0.0, 1.0, 2.0], dict(scale_factor=1.3, mode="nearest-exact"), [0.0, 1.0, 1.0]),
    ([0.0, 1.0, 2.0], dict(scale_factor=1.3), [0.0, 0.0, 1.0]),
    ([0.0, 1.0, 2.0], dict(scale_factor=2.1), [0.0, 0.0, 0.0, 1.0, 1.0, 2.0]),
    # ... and computes the position in float64 for float64 data: 41·(2/82) is 1.
    ([0.0, 1.0], dict(size=82), [0.0] * 41 + [1.0] * 41),
])
def test_interpolate_nearest_picks_torchs_source_pixels(x, kw, want):
    got = F.interpolate(Value(np.array(x).reshape(1, 1, -1)), **kw)
    np.testing.assert_array_equal(got.numpy().ravel(), want)


@needs_torch
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_interpolate_nearest_modes_match_torch_exactly(dims, dtype):
    r = rng(76)
    for _ in range(60):
        x = r.standard_normal([1, 2] + [int(v) for v in r.integers(1, 9, dims)]).astype(dtype)
        for mode in ("nearest", "nearest-exact"):
            if r.random() < 0.5:
                kw = dict(size=[int(v) for v in r.integers(1, 20, dims)])
            else:
                kw = dict(scale_factor=float(r.choice([0.7, 1.0, 1.3, 1.5, 2.0, 2.1, 3.0])))
            try:
                want = TF.interpolate(torch.from_numpy(x), mode=mode, **kw).numpy()
            except RuntimeError:  # an empty output: both refuse (test_bad_input)
                continue
            got = F.interpolate(mg.tensor(x), mode=mode, **kw).numpy()
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} {x.shape} {kw}")


def test_batch_norm_of_an_empty_batch_is_empty_and_keeps_the_running_statistics():
    rm, rv = Value(np.zeros(3), requires_grad=False), Value(np.ones(3), requires_grad=False)
    out = F.batch_norm(Value(np.zeros((0, 3, 4))), rm, rv, training=True)
    assert out.shape == (0, 3, 4)
    assert rm.tolist() == [0.0] * 3 and rv.tolist() == [1.0] * 3
