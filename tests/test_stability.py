"""Numerical stability (issue 6): extreme inputs give finite, correct values and gradients,
and NaN, Inf, division by zero and logs of negatives propagate as numpy's.

The references are closed forms evaluated in float64 with numpy's stable primitives
(``logaddexp``, max-shifted exponentials, two-pass variance), never the engine itself.
Each function runs at ±1000 and ±1e-30 in float32 and float64, and its gradient is checked
with random output weights against the closed-form derivative.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.engine import Value

# The special values include 1e300, which becomes inf in float32: on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

DTYPES = [np.float32, np.float64]
EXTREME = np.array([1000.0, -1000.0, 1e-30, -1e-30, 0.0, 1.0, -1.0])
# Rows with a huge spread, a huge common offset, and tiny values.
ROWS = np.array([
    [1000.0, -1000.0, 1e-30, 0.0],
    [-1000.0, -1000.5, -999.0, -1000.0],
    [1000.0, 1000.0, 1000.0, 999.5],
    [1e-30, -1e-30, 0.0, 1e-30],
])


def weights(shape, seed=0):
    return np.asarray(np.random.default_rng(seed).standard_normal(shape))


def run(fn, x, dtype, seed=0):
    """fn on a Value of x (as dtype), backpropagated with random weights: (out, grad, w)."""
    v = Value(np.asarray(x, dtype=dtype))
    out = fn(v)
    assert out.dtype == dtype
    w = weights(out.shape, seed)
    (out * Value(w.astype(dtype), requires_grad=False)).sum().backward()
    assert v.grad is not None and v.grad.dtype == dtype
    return out.data.astype(np.float64), v.grad.astype(np.float64), w


def close(got, want, dtype, what, scale=0.0):
    """Finite, and equal to the closed form within the dtype's rounding.

    ``scale`` is the size of terms that cancel in the result (a gradient s * (w - sum(w s))
    subtracts terms as large as the weights w): the absolute error is a few ulps of those.
    """
    assert np.all(np.isfinite(got)), f"{what}: not finite: {got}"
    rtol = 1e-12 if dtype == np.float64 else 3e-6
    # tiny absolute slack: values that underflow (e**-1000) are 0 in both dtypes
    atol = max(1e-300 if dtype == np.float64 else 1e-37, 8 * np.finfo(dtype).eps * scale)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def np_sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))


def np_log_softmax(a, axis=-1):
    m = np.max(a, axis=axis, keepdims=True)
    return a - m - np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))


def as_dtype(x, dtype):
    """The float64 values of x rounded to dtype: the reference sees what the engine sees."""
    return np.asarray(x, dtype=dtype).astype(np.float64)


# ---- elementwise activations -------------------------------------------------------------------

ACTIVATIONS = {
    # name: (fn, value(a), derivative(a))
    "sigmoid": (lambda v: v.sigmoid(), np_sigmoid, lambda a: np_sigmoid(a) * np_sigmoid(-a)),
    "F.sigmoid": (F.sigmoid, np_sigmoid, lambda a: np_sigmoid(a) * np_sigmoid(-a)),
    "tanh": (lambda v: v.tanh(), np.tanh, lambda a: 1 - np.tanh(a) ** 2),
    "softplus": (lambda v: v.softplus(), lambda a: np.logaddexp(0.0, a), np_sigmoid),
    "F.softplus": (F.softplus, lambda a: np.logaddexp(0.0, a), np_sigmoid),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_at_extremes(name, dtype):
    fn, value, deriv = ACTIVATIONS[name]
    a = as_dtype(EXTREME, dtype)
    out, grad, w = run(fn, a, dtype)
    close(out, value(a), dtype, f"{name} value")
    close(grad, w * deriv(a), dtype, f"{name} gradient")


# ---- softmax, log_softmax, logsumexp ------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("dim", [-1, 0])
def test_softmax_at_extremes(dtype, dim):
    a = as_dtype(ROWS, dtype)
    for fn in (lambda v: v.softmax(dim), lambda v: F.softmax(v, dim)):
        out, grad, w = run(fn, a, dtype)
        s = np.exp(np_log_softmax(a, dim))
        close(out, s, dtype, "softmax value")
        close(grad, s * (w - np.sum(w * s, axis=dim, keepdims=True)), dtype, "softmax gradient",
              np.abs(w).max())


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("dim", [-1, 0])
def test_log_softmax_at_extremes(dtype, dim):
    a = as_dtype(ROWS, dtype)
    for fn in (lambda v: v.log_softmax(dim), lambda v: F.log_softmax(v, dim)):
        out, grad, w = run(fn, a, dtype)
        s = np.exp(np_log_softmax(a, dim))
        # log-probabilities near -2000 lose relative accuracy only at float32's own eps
        close(out, np_log_softmax(a, dim), dtype, "log_softmax value")
        close(grad, w - s * np.sum(w, axis=dim, keepdims=True), dtype, "log_softmax gradient",
              np.abs(w).sum())


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("dim,keepdim", [(-1, False), (0, True), ((0, 1), False), (None, False)])
def test_logsumexp_at_extremes(dtype, dim, keepdim):
    a = as_dtype(ROWS, dtype)
    out, grad, w = run(lambda v: v.logsumexp(dim=dim, keepdim=keepdim), a, dtype)
    axis = dim
    m = np.max(a, axis=axis, keepdims=True)
    lse = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    s = np.exp(a - lse)
    want = lse if keepdim else (lse.reshape(()) if axis is None else np.squeeze(lse, axis=axis))
    close(out, want, dtype, "logsumexp value")
    wk = np.asarray(w).reshape(lse.shape)
    close(grad, s * wk, dtype, "logsumexp gradient")


# ---- losses ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_at_extremes(dtype, reduction):
    a = as_dtype(ROWS, dtype)
    n = a.shape[0]
    scale = 1.0 / n if reduction == "mean" else 1.0
    s = np.exp(np_log_softmax(a, 1))
    # class indices, including the least likely class of each row (loss near 2000)
    target = np.array([1, 2, 3, 0])
    onehot = np.eye(4)[target]
    out, grad, w = run(lambda v: F.cross_entropy(v, target, reduction=reduction), a, dtype)
    logp = np_log_softmax(a, 1)
    close(out, -np.sum(logp[np.arange(n), target]) * scale, dtype, "cross_entropy value")
    close(grad, w * (s - onehot) * scale, dtype, "cross_entropy gradient", abs(float(w)))
    # class probabilities
    p = np.array([[0.5, 0.5, 0, 0], [0, 0, 1, 0], [0.25, 0.25, 0.25, 0.25], [1, 0, 0, 0]])
    out, grad, w = run(lambda v: F.cross_entropy(v, p.astype(dtype), reduction=reduction), a,
                       dtype)
    close(out, -np.sum(p * logp) * scale, dtype, "cross_entropy (probabilities) value")
    close(grad, w * (s - p) * scale, dtype, "cross_entropy (probabilities) gradient",
          abs(float(w)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_at_extremes(dtype, reduction):
    x = as_dtype(np.repeat(EXTREME, 3), dtype)
    t = np.tile([0.0, 1.0, 0.25], len(EXTREME))
    red = {"mean": np.mean, "sum": np.sum, "none": lambda z: z}[reduction]
    scale = 1.0 / x.size if reduction == "mean" else 1.0
    out, grad, w = run(
        lambda v: F.binary_cross_entropy_with_logits(v, t.astype(dtype), reduction=reduction),
        x, dtype)
    close(out, red(np.logaddexp(0.0, x) - x * t), dtype, "bce_with_logits value")
    close(grad, w * (np_sigmoid(x) - t) * scale, dtype, "bce_with_logits gradient")


# ---- var and std -------------------------------------------------------------------------------

SPREADS = {
    "huge_spread": [1000.0, -1000.0, 1000.0, -999.0],
    "huge_offset": [1000.0, 1000.5, 999.5, 1000.25],
    "tiny": [1e-30, -1e-30, 3e-30, 0.0],
    "tiny_negative": [-1e-30, -2e-30, -4e-30, -3e-30],
}


# float32 std of values near 1e-30 once gave 0 with a NaN gradient (the variance underflowed
# in float32); float32 var/std are now computed in float64, as PyTorch accumulates.
STD_CASES = [
    pytest.param(case, correction, dtype, id=f"{case}-{correction}-{np.dtype(dtype).name}")
    for case in SPREADS for correction in (0, 1) for dtype in DTYPES
]


def _moments(case, correction, dtype):
    a = as_dtype(SPREADS[case], dtype)
    m = a.mean()
    return a, m, np.sum((a - m) ** 2) / (a.size - correction)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize("case", list(SPREADS))
def test_var_at_extremes(case, correction, dtype):
    a, m, var = _moments(case, correction, dtype)
    out, grad, w = run(lambda v: v.var(correction=correction), a, dtype)
    # float32 cannot hold a variance of 1e-60: its nearest value is 0, its gradient is finite
    close(out, float(np.asarray(var, dtype=dtype)), dtype, "var value")
    close(grad, w * 2 * (a - m) / (a.size - correction), dtype, "var gradient")


@pytest.mark.parametrize("case,correction,dtype", STD_CASES)
def test_std_at_extremes(case, correction, dtype):
    a, m, var = _moments(case, correction, dtype)
    n, std = a.size, math.sqrt(var)
    out, grad, w = run(lambda v: v.std(correction=correction), a, dtype)
    close(out, std, dtype, "std value")
    close(grad, w * (a - m) / ((n - correction) * std), dtype, "std gradient")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_var_std_along_a_dim_at_extremes(dtype):
    a = as_dtype(np.array([SPREADS["huge_spread"], SPREADS["huge_offset"]]), dtype)
    for keepdim in (False, True):
        out, grad, w = run(lambda v, k=keepdim: v.std(dim=1, keepdim=k), a, dtype)
        std = np.std(a, axis=1, ddof=1, keepdims=True)
        close(out, std if keepdim else std[:, 0], dtype, "std value")
        wk = np.asarray(w).reshape(std.shape)
        close(grad, wk * (a - a.mean(1, keepdims=True)) / (3 * std), dtype, "std gradient")


# ---- NaN, Inf, division by zero, logs of negatives: as numpy ------------------------------------

SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e-300,
                           1e300, -1e300, 5e-324, 0.5, -0.5, 3.0])
_erf = np.vectorize(math.erf, otypes=[np.float64])

UNARY = {
    "neg": (lambda x: -x, np.negative),
    "exp": (lambda x: x.exp(), np.exp),
    "log": (lambda x: x.log(), np.log),
    "sqrt": (lambda x: x.sqrt(), np.sqrt),
    "abs": (lambda x: x.abs(), np.abs),
    "sin": (lambda x: x.sin(), np.sin),
    "cos": (lambda x: x.cos(), np.cos),
    "tanh": (lambda x: x.tanh(), np.tanh),
    "sigmoid": (lambda x: x.sigmoid(), np_sigmoid),
    "softplus": (lambda x: x.softplus(), lambda a: np.logaddexp(0.0, a)),
    "relu": (lambda x: x.relu(), lambda a: np.maximum(a, 0.0)),
    "leaky_relu": (lambda x: x.leaky_relu(0.1), lambda a: np.where(a > 0, a, 0.1 * a)),
    "clamp": (lambda x: x.clamp(-1.0, 1.0), lambda a: np.clip(a, -1.0, 1.0)),
    "isnan": (lambda x: x.isnan(), lambda a: np.isnan(a).astype(np.float64)),
    "x**2": (lambda x: x**2, lambda a: a**2.0),
    "x**3": (lambda x: x**3, lambda a: a**3.0),
    "x**-1": (lambda x: x**-1, lambda a: a**-1.0),
    "x**0": (lambda x: x**0, lambda a: a**0.0),
    "x**1.5": (lambda x: x**1.5, lambda a: a**1.5),
    "x**0.5": (lambda x: x**0.5, lambda a: a**0.5),
    "1/x": (lambda x: 1 / x, lambda a: 1 / a),
    "x/0": (lambda x: x / 0.0, lambda a: a / 0.0),
    "x/-0": (lambda x: x / -0.0, lambda a: a / -0.0),
    "0/x": (lambda x: 0.0 / x, lambda a: 0.0 / a),
    "2**x": (lambda x: 2.0**x, lambda a: 2.0**a),
    "gelu": (lambda x: x.gelu(), lambda a: 0.5 * a * (1 + _erf(a / math.sqrt(2)))),
}

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a**b, np.power),
    "maximum": (mg.maximum, np.maximum),
    "minimum": (mg.minimum, np.minimum),
    "lt": (lambda a, b: a < b, np.less),
    "le": (lambda a, b: a <= b, np.less_equal),
    "gt": (lambda a, b: a > b, np.greater),
    "ge": (lambda a, b: a >= b, np.greater_equal),
    "eq": (lambda a, b: a == b, np.equal),
    "ne": (lambda a, b: a != b, np.not_equal),
    "where": (lambda a, b: mg.where(a > b, a, b), lambda a, b: np.where(a > b, a, b)),
    "matmul": (lambda a, b: a.reshape(-1, 1) @ b.reshape(1, -1),
               lambda a, b: a.reshape(-1, 1) @ b.reshape(1, -1)),
}

REDUCE = {
    "sum": (lambda x: x.sum(dim=-1), lambda a: np.sum(a, axis=-1)),
    "mean": (lambda x: x.mean(dim=-1), lambda a: np.mean(a, axis=-1)),
    "max": (lambda x: x.max(dim=-1).values, lambda a: np.max(a, axis=-1)),
    "min": (lambda x: x.min(dim=-1).values, lambda a: np.min(a, axis=-1)),
    "amax": (lambda x: x.amax(dim=-1), lambda a: np.max(a, axis=-1)),
    "amin": (lambda x: x.amin(dim=-1), lambda a: np.min(a, axis=-1)),
    "var": (lambda x: x.var(dim=-1), lambda a: np.var(a, axis=-1, ddof=1)),
    "std": (lambda x: x.std(dim=-1), lambda a: np.std(a, axis=-1, ddof=1)),
    "argmax": (lambda x: x.argmax(dim=-1), lambda a: np.argmax(a, axis=-1)),
    "argmin": (lambda x: x.argmin(dim=-1), lambda a: np.argmin(a, axis=-1)),
}


def numpy_like(got, want, dtype, what):
    """Equal as numpy means it: same NaN positions, same infinities, same finite values."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    nan_g, nan_w = np.isnan(got), np.isnan(want)
    assert np.array_equal(nan_g, nan_w), f"{what}: NaN at {np.argwhere(nan_g != nan_w)[:5]}, " \
        f"got {got[nan_g != nan_w][:5]}, numpy {want[nan_g != nan_w][:5]}"
    inf = np.isinf(want) | np.isinf(got)
    np.testing.assert_array_equal(got[inf], want[inf], err_msg=f"{what}: infinities")
    fin = ~(nan_w | inf)
    rtol = 1e-12 if dtype == np.float64 else 3e-6
    # float32 flushes values numpy computes in float64 near the subnormal range
    atol = 1e-300 if dtype == np.float64 else 1e-37
    np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=atol, err_msg=what)


def _ref(ref, *arrays, dtype):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(ref(*[np.asarray(a, dtype=dtype) for a in arrays])).astype(dtype)


def _backward_does_not_crash(out, *values):
    """The backward pass through NaN and Inf runs, and every gradient has its input's shape."""
    if not out.requires_grad:
        return
    out.sum().backward()
    for v in values:
        assert v.grad is None or (v.grad.shape == v.shape and v.grad.dtype == v.dtype)


@pytest.mark.parametrize("name", list(UNARY))
@given(a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=6),
                    elements=SPECIAL), dtype=st.sampled_from(DTYPES))
def test_special_values_unary(name, a, dtype):
    fn, ref = UNARY[name]
    x = Value(a.astype(dtype))
    with np.errstate(all="ignore"):
        out = fn(x)
    numpy_like(out.data, _ref(ref, a, dtype=dtype), dtype, name)
    _backward_does_not_crash(out, x)


@pytest.mark.parametrize("name", list(BINARY))
@given(data=st.data(), shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2,
                                                                max_side=5),
       dtype=st.sampled_from(DTYPES))
def test_special_values_binary(name, data, shapes, dtype):
    fn, ref = BINARY[name]
    a = data.draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=SPECIAL))
    b = data.draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=SPECIAL))
    if name == "pow" and np.any(b == 0.5):
        # numpy's own (-inf) ** 0.5 depends on the exponent's shape: nan for a scalar or 0-d
        # exponent (its sqrt fast path), inf for an array one (C pow, as PyTorch)
        a = np.where(np.isneginf(a.astype(dtype)), -3.0, a)
    x, y = Value(a.astype(dtype)), Value(b.astype(dtype))
    out = fn(x, y)
    numpy_like(out.data, _ref(ref, a, b, dtype=dtype), dtype, name)
    _backward_does_not_crash(out, x, y)


@pytest.mark.parametrize("name", list(REDUCE))
@given(a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
                    elements=SPECIAL), dtype=st.sampled_from(DTYPES))
def test_special_values_reductions(name, a, dtype):
    fn, ref = REDUCE[name]
    x = Value(a.astype(dtype))
    out = fn(x)
    numpy_like(out.data, _ref(ref, a, dtype=dtype), dtype, name)
    _backward_does_not_crash(out, x)


@given(a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6),
                    elements=SPECIAL), dtype=st.sampled_from(DTYPES))
def test_special_values_softmax_family(a, dtype):
    """No numpy primitive to compare with: rows without NaN or Inf stay finite and correct
    (within a few ulps of their largest element, see test_log_softmax_keeps_precision...),
    and nothing crashes."""
    x = Value(a.astype(dtype))
    a = a.astype(dtype).astype(np.float64)
    ok = np.all(np.isfinite(a), axis=-1)
    for fn, ref in (
        (lambda v: v.softmax(-1), lambda r: np.exp(np_log_softmax(r))),
        (lambda v: v.log_softmax(-1), np_log_softmax),
        (lambda v: v.logsumexp(dim=-1, keepdim=True),
         lambda r: np.log(np.sum(np.exp(r - r.max(-1, keepdims=True)), -1, keepdims=True))
         + r.max(-1, keepdims=True)),
    ):
        out = fn(x)
        got = out.data.astype(np.float64)[ok]
        with np.errstate(all="ignore"):
            want = ref(a[ok]) if ok.any() else got
        assert np.all(np.isfinite(got))
        big = float(np.max(np.abs(a[ok]), initial=1.0))
        np.testing.assert_allclose(got, want, rtol=1e-12 if dtype == np.float64 else 3e-6,
                                   atol=8 * np.finfo(dtype).eps * big)
        assert np.all(np.isnan(out.data[~ok]) | np.isfinite(out.data[~ok])
                      | np.isinf(out.data[~ok]))
        _backward_does_not_crash(out, x)
        x.grad = None


def test_division_by_zero_and_logs_of_negatives():
    x = Value(np.array([1.0, -1.0, 0.0, -0.0, -2.0]))
    with np.errstate(all="ignore"):
        for got, want in (
            ((x / 0.0).data, np.array([1.0, -1.0, 0.0, -0.0, -2.0]) / 0.0),
            ((1.0 / x).data, 1.0 / np.array([1.0, -1.0, 0.0, -0.0, -2.0])),
            (x.log().data, np.log([1.0, -1.0, 0.0, -0.0, -2.0])),
            (x.sqrt().data, np.sqrt([1.0, -1.0, 0.0, -0.0, -2.0])),
        ):
            np.testing.assert_array_equal(got, want)
            # The sign of an infinity or a zero is part of the result; a NaN's is not (it
            # differs by CPU and by numpy's SIMD path).
            num = ~np.isnan(want)
            np.testing.assert_array_equal(np.signbit(got[num]), np.signbit(want[num]))
    y = x.log().sum()
    y.backward()  # 1/x: inf at the zeros, finite elsewhere
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(x.grad, 1.0 / np.array([1.0, -1.0, 0.0, -0.0, -2.0]))


def test_negative_infinity_to_the_half():
    """numpy and PyTorch give nan, as sqrt(-inf); C's pow gives inf."""
    x = Value(np.array([-np.inf]))
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal((x**0.5).data, np.power(-np.inf, 0.5))
