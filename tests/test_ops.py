"""Every op, forward against numpy and backward against central differences in float64.

Inputs stay away from kinks (relu, abs, clamp, l1, hinge) and ties (max, min, maximum),
where a finite difference has no single right answer.
"""

import math

import numpy as np
import pytest
from helpers import avoid, check_f32, check_op, distinct, randn, sum_to, uniform
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.engine import Value

# ---- numpy references ---------------------------------------------------------------------

_erf = np.vectorize(math.erf, otypes=[np.float64])


def np_sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))


def np_gelu(a):
    return 0.5 * a * (1.0 + _erf(a / math.sqrt(2.0)))


def np_logsumexp(a, axis=None, keepdims=False):
    m = np.max(a, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


def np_log_softmax(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    return a - m - np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))


def np_softmax(a, axis):
    return np.exp(np_log_softmax(a, axis))


def _erfinv_ref(a):
    # Bisection on math.erf: slow, exact to the last bits, independent of the core's method.
    import math

    def inv(y):
        lo, hi = -6.0, 6.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
        return (lo + hi) / 2

    return np.vectorize(inv)(np.asarray(a, dtype=np.float64)).astype(np.asarray(a).dtype)


# ---- inputs by domain ------------------------------------------------------------------------


def make(domain, shape, seed):
    if domain == "any":
        return randn(shape, seed)
    if domain == "positive":  # log, sqrt, the base of pow
        return uniform(shape, 0.5, 2.0, seed)
    if domain == "nonzero":  # divisors
        return avoid(randn(shape, seed), margin=0.5)
    if domain == "away0":  # relu, abs, leaky_relu
        return avoid(randn(shape, seed), margin=0.1)
    if domain == "prob":  # binary_cross_entropy's probabilities and targets
        return uniform(shape, 0.1, 0.9, seed)
    if domain == "even":  # maximum / minimum: "even" and "odd" grids never tie
        return distinct(shape, seed, spacing=0.2)
    if domain == "odd":
        return distinct(shape, seed, spacing=0.2, offset=0.1) + 0.0
    raise ValueError(domain)


# ---- binary elementwise ops --------------------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, np.add, "any", "any"),
    "sub": (lambda a, b: a - b, np.subtract, "any", "any"),
    "mul": (lambda a, b: a * b, np.multiply, "any", "any"),
    "div": (lambda a, b: a / b, np.divide, "any", "nonzero"),
    "pow": (lambda a, b: a**b, np.power, "positive", "any"),
    "maximum": (lambda a, b: mg.maximum(a, b), np.maximum, "even", "odd"),
    "minimum": (lambda a, b: mg.minimum(a, b), np.minimum, "even", "odd"),
    # (random data lands within the FD step of a jump of % with probability ~1e-6)
    "remainder": (lambda a, b: a % b, np.mod, "positive", "nonzero"),
    "binary_cross_entropy": (lambda a, b: a._bin(b, "binary_cross_entropy"),
                             lambda a, b: -(b * np.log(a) + (1 - b) * np.log1p(-a)),
                             "prob", "prob"),
}

SHAPE_PAIRS = [
    ((), ()),
    ((7,), (7,)),
    ((3, 5), (3, 5)),
    ((2, 4, 3), (2, 4, 3)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 3, 4)),
    ((3, 1), (1, 5)),
    ((), (3, 4)),
    ((3, 4), ()),
    ((2, 1, 4), (3, 1)),
    ((1,), (5,)),
    ((1, 1), (2, 3)),
    ((5, 1, 1), (1, 1, 1)),
]


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary(name, sa, sb):
    fn, ref, da, db = BINARY[name]
    a, b = make(da, sa, 1), make(db, sb, 2)
    check_op(fn, a, b, ref=ref)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_float32(name):
    fn, _, da, db = BINARY[name]
    check_f32(fn, make(da, (2, 3, 4), 1), make(db, (3, 1), 2))


# A number or a numpy array on either side; the numpy-first forms must keep the graph.
NP_B = np.array([[0.5, -1.5, 2.0], [1.25, 0.75, -0.5]])
NP_POS = np.array([[0.5, 1.5, 2.0], [1.25, 0.75, 3.0]])

SCALAR_FORMS = {
    "x+2": (lambda x: x + 2.0, lambda a: a + 2.0, "any"),
    "2+x": (lambda x: 2.0 + x, lambda a: 2.0 + a, "any"),
    "x+int": (lambda x: x + 3, lambda a: a + 3, "any"),
    "x-2": (lambda x: x - 2.0, lambda a: a - 2.0, "any"),
    "2-x": (lambda x: 2 - x, lambda a: 2 - a, "any"),
    "x*3": (lambda x: x * 3.0, lambda a: a * 3.0, "any"),
    "3*x": (lambda x: 3 * x, lambda a: 3 * a, "any"),
    "x/4": (lambda x: x / 4.0, lambda a: a / 4.0, "any"),
    "1/x": (lambda x: 1 / x, lambda a: 1 / a, "nonzero"),
    "x**2": (lambda x: x**2, lambda a: a**2, "any"),
    "x**3.0": (lambda x: x**3.0, lambda a: a**3.0, "any"),
    "x**0.5": (lambda x: x**0.5, lambda a: a**0.5, "positive"),
    "x**-1.5": (lambda x: x**-1.5, lambda a: a**-1.5, "positive"),
    "2**x": (lambda x: 2.0**x, lambda a: 2.0**a, "any"),
    "-x": (lambda x: -x, lambda a: -a, "any"),
    "np+x": (lambda x: NP_B + x, lambda a: NP_B + a, "any"),
    "x+np": (lambda x: x + NP_B, lambda a: a + NP_B, "any"),
    "np-x": (lambda x: NP_B - x, lambda a: NP_B - a, "any"),
    "np*x": (lambda x: NP_B * x, lambda a: NP_B * a, "any"),
    "np/x": (lambda x: NP_B / x, lambda a: NP_B / a, "nonzero"),
    "x/np": (lambda x: x / NP_B, lambda a: a / NP_B, "any"),
    "np**x": (lambda x: NP_POS**x, lambda a: NP_POS**a, "any"),
    "x**np": (lambda x: x**NP_B, lambda a: a**NP_B, "positive"),
    "np.float64*x": (lambda x: np.float64(2.5) * x, lambda a: 2.5 * a, "any"),
    "np_int+x": (lambda x: np.arange(3) + x, lambda a: np.arange(3) + a, "any"),
}


@pytest.mark.parametrize("name", list(SCALAR_FORMS))
def test_number_and_numpy_operands(name):
    fn, ref, domain = SCALAR_FORMS[name]
    out = check_op(fn, make(domain, (2, 3), 3), ref=ref)
    assert out.requires_grad


# ---- unary ops ------------------------------------------------------------------------------

UNARY = {
    "neg": (lambda x: -x, lambda a: -a, "any"),
    "exp": (lambda x: x.exp(), np.exp, "any"),
    "log": (lambda x: x.log(), np.log, "positive"),
    "log1p": (lambda x: x.log1p(), np.log1p, "positive"),
    "erfinv": (lambda x: x.erfinv(), lambda a: _erfinv_ref(a), "prob"),
    "reciprocal": (lambda x: x.reciprocal(), lambda a: 1.0 / a, "away0"),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, "positive"),
    "abs": (lambda x: x.abs(), np.abs, "away0"),
    "sin": (lambda x: x.sin(), np.sin, "any"),
    "cos": (lambda x: x.cos(), np.cos, "any"),
    "tanh": (lambda x: x.tanh(), np.tanh, "any"),
    "sigmoid": (lambda x: x.sigmoid(), np_sigmoid, "any"),
    "relu": (lambda x: x.relu(), lambda a: np.maximum(a, 0.0), "away0"),
    "leaky_relu": (lambda x: x.leaky_relu(), lambda a: np.where(a > 0, a, 0.01 * a), "away0"),
    "leaky_relu_0.2": (
        lambda x: x.leaky_relu(negative_slope=0.2),
        lambda a: np.where(a > 0, a, 0.2 * a),
        "away0",
    ),
    "gelu": (lambda x: x.gelu(), np_gelu, "any"),
    "softplus": (lambda x: x.softplus(), lambda a: np.logaddexp(0.0, a), "any"),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), lambda a: np.clip(a, -0.5, 0.5), "clamp"),
    "clamp_kw": (lambda x: x.clamp(min=-0.5, max=0.5), lambda a: np.clip(a, -0.5, 0.5), "clamp"),
    "clamp_min": (lambda x: x.clamp(min=-0.3), lambda a: np.maximum(a, -0.3), "clamp"),
    "clamp_max": (lambda x: x.clamp(max=0.4), lambda a: np.minimum(a, 0.4), "clamp"),
    "F.relu": (lambda x: F.relu(x), lambda a: np.maximum(a, 0.0), "away0"),
}

UNARY_SHAPES = [(), (7,), (3, 5), (2, 1, 3)]


def unary_input(domain, shape, seed):
    if domain == "clamp":
        return avoid(randn(shape, seed), points=(-0.5, -0.3, 0.4, 0.5), margin=0.05)
    return make(domain, shape, seed) * (1.5 if domain == "any" else 1.0)


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name, shape):
    fn, ref, domain = UNARY[name]
    check_op(fn, unary_input(domain, shape, 5), ref=ref)


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_float32(name):
    fn, _, domain = UNARY[name]
    check_f32(fn, unary_input(domain, (3, 5), 6))


def test_unary_large_inputs_stay_finite():
    x = Value(np.array([-1000.0, -50.0, 0.5, 50.0, 1000.0]))
    for out in (x.sigmoid(), x.softplus(), x.tanh(), x.gelu()):
        out.sum().backward()
        assert np.all(np.isfinite(out.data))
        assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(x.sigmoid().data, np_sigmoid(x.data), rtol=1e-12, atol=0)
    np.testing.assert_allclose(x.softplus().data, np.logaddexp(0.0, x.data), rtol=1e-12)


# ---- reductions ----------------------------------------------------------------------------


def np_var(a, axis, keepdims, ddof=1):
    return np.var(a, axis=axis, ddof=ddof, keepdims=keepdims)


REDUCE = {
    "sum": (lambda x, d, k: x.sum(dim=d, keepdim=k), np.sum),
    "mean": (lambda x, d, k: x.mean(dim=d, keepdim=k), np.mean),
    "amax": (lambda x, d, k: x.amax(dim=d, keepdim=k), np.max),
    "amin": (lambda x, d, k: x.amin(dim=d, keepdim=k), np.min),
    "max": (lambda x, d, k: x.max(dim=d, keepdim=k) if not isinstance(d, int)
            else x.max(dim=d, keepdim=k).values, np.max),
    "min": (lambda x, d, k: x.min(dim=d, keepdim=k) if not isinstance(d, int)
            else x.min(dim=d, keepdim=k).values, np.min),
    "var": (lambda x, d, k: x.var(dim=d, keepdim=k), np_var),
    "std": (
        lambda x, d, k: x.std(dim=d, keepdim=k),
        lambda a, axis, keepdims: np.std(a, axis=axis, ddof=1, keepdims=keepdims),
    ),
    "logsumexp": (lambda x, d, k: x.logsumexp(dim=d, keepdim=k), np_logsumexp),
}

DIMS = [None, 0, 1, -1, (0, 2), (1, -1), (0, 1, 2)]


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", DIMS, ids=str)
@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce(name, dim, keepdim):
    fn, ref = REDUCE[name]
    x = distinct((2, 3, 4), seed=7, spacing=0.15)
    check_op(lambda v: fn(v, dim, keepdim), x, ref=lambda a: ref(a, axis=dim, keepdims=keepdim))


SMALL_REDUCE_CASES = [
    (name, shape, dim)
    for name in REDUCE
    for shape, dim in [((), None), ((5,), None), ((5,), 0), ((1, 3), 0)]
    # the sample variance (correction=1) of one element is undefined
    if not (name in ("var", "std") and shape in ((), (1, 3)))
]


@pytest.mark.parametrize("name,shape,dim", SMALL_REDUCE_CASES, ids=str)
def test_reduce_small_shapes(name, shape, dim):
    fn, ref = REDUCE[name]
    x = distinct(shape, seed=8, spacing=0.3) if shape else np.array(0.7)
    check_op(lambda v: fn(v, dim, False), x, ref=lambda a: ref(a, axis=dim, keepdims=False))


@pytest.mark.parametrize("name", list(REDUCE))
def test_reduce_float32(name):
    fn, _ = REDUCE[name]
    check_f32(lambda v: fn(v, 1, False), distinct((3, 4, 2), seed=9, spacing=0.15))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "var", "std", "logsumexp"])
def test_reduce_accepts_numpy_and_torch_spellings(name):
    a = distinct((2, 3, 4), seed=10, spacing=0.1)
    x = Value(a)
    method = getattr(x, name)
    want = np.asarray(method(dim=1, keepdim=True).data)
    assert want.shape == (2, 1, 4)
    for out in (
        method(axis=1, keepdims=True),
        method(dim=1, keepdims=True),
        method(axis=1, keepdim=True),
        method(1, keepdim=True),
    ):
        np.testing.assert_array_equal(out.data, want)
    np.testing.assert_array_equal(method(axis=(0, 2)).data, method(dim=(0, 2)).data)


VAR_FORMS = {
    "default": ({}, 1),
    "unbiased=True": ({"unbiased": True}, 1),
    "unbiased=False": ({"unbiased": False}, 0),
    "correction=0": ({"correction": 0}, 0),
    "correction=2": ({"correction": 2}, 2),
    "ddof=0": ({"ddof": 0}, 0),
    "ddof=1": ({"ddof": 1}, 1),
}


@pytest.mark.parametrize("dim", [None, 1, (0, 2)], ids=str)
@pytest.mark.parametrize("form", list(VAR_FORMS))
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_corrections(name, form, dim):
    kwargs, ddof = VAR_FORMS[form]
    np_fn = np.var if name == "var" else np.std
    check_op(
        lambda v: getattr(v, name)(dim=dim, **kwargs),
        randn((2, 4, 3), seed=11),
        ref=lambda a: np_fn(a, axis=dim, ddof=ddof),
    )


def test_max_min_gradient_goes_to_chosen_position():
    x = Value(np.array([[1.0, 5.0, 2.0], [7.0, -1.0, 3.0]]))
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0, 0, 0], [1, 0, 0]])
    y = Value(np.array([[1.0, 5.0, 2.0], [7.0, -1.0, 3.0]]))
    y.min(dim=1).values.sum().backward()
    np.testing.assert_array_equal(y.grad, [[1, 0, 0], [0, 1, 0]])


def test_max_min_ties_split_the_gradient_evenly():
    x = Value(np.array([1.0, 3.0, 3.0]))
    out = x.max()
    assert out.item() == 3.0
    out.backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.5, 0.5])
    y = Value(np.array([[2.0, 2.0, 2.0], [0.0, -1.0, 0.0]]))
    y.amin(dim=1).sum().backward()
    np.testing.assert_allclose(y.grad, [[1 / 3, 1 / 3, 1 / 3], [0.0, 1.0, 0.0]])
    z = Value(np.array([[2.0, 2.0, 2.0], [0.0, -1.0, 0.0]]))
    z.amax(dim=1).sum().backward()
    np.testing.assert_allclose(z.grad, [[1 / 3, 1 / 3, 1 / 3], [0.5, 0.0, 0.5]])
    # max(dim) is torch's (values, indices): the gradient goes to the first of ties alone
    w = Value(np.array([[2.0, 2.0, 2.0], [0.0, -1.0, 0.0]]))
    v, i = w.max(dim=1)
    assert i.dtype == np.int64 and i.tolist() == [0, 0]
    v.sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize(
    "dim,keepdim", [(None, False), (0, False), (1, False), (-1, False), (1, True), (0, True)]
)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, dim, keepdim):
    a = distinct((3, 5), seed=12)
    kwargs = {} if dim is None else {"dim": dim, "keepdim": keepdim}
    got = np.asarray(getattr(Value(a), name)(**kwargs))
    want = (
        getattr(np, name)(a, axis=dim, keepdims=keepdim)
        if dim is not None
        else getattr(np, name)(a)
    )
    assert got.shape == np.shape(want)
    np.testing.assert_array_equal(got.astype(np.int64), want)
    # the numpy spelling gives the same answer
    if dim is not None:
        alt = getattr(Value(a), name)(axis=dim, keepdims=keepdim)
        np.testing.assert_array_equal(np.asarray(alt).astype(np.int64), want)


# ---- softmax family ---------------------------------------------------------------------------


SOFTMAX_CASES = [((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -1), ((5,), 0), ((1,), 0), ((3, 1), 1)]


SOFTMAX = {
    "softmax": (lambda x, d: x.softmax(d), np_softmax),
    "softmax_kw": (lambda x, d: x.softmax(dim=d), np_softmax),
    "log_softmax": (lambda x, d: x.log_softmax(d), np_log_softmax),
    "F.softmax": (lambda x, d: F.softmax(x, dim=d), np_softmax),
    "F.log_softmax": (lambda x, d: F.log_softmax(x, dim=d), np_log_softmax),
}


@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES, ids=str)
@pytest.mark.parametrize("name", list(SOFTMAX))
def test_softmax_family(name, shape, dim):
    fn, ref = SOFTMAX[name]
    check_op(lambda v: fn(v, dim), randn(shape, seed=13, scale=2.0), ref=lambda a: ref(a, dim))


HUGE = np.array([[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1000.0, -1000.0, -999.5]])

STABLE = {
    "softmax": (lambda x: x.softmax(1), lambda a: np_softmax(a, 1)),
    "log_softmax": (lambda x: x.log_softmax(1), lambda a: np_log_softmax(a, 1)),
    "log_softmax_dim0": (lambda x: x.log_softmax(0), lambda a: np_log_softmax(a, 0)),
    "logsumexp": (lambda x: x.logsumexp(dim=1), lambda a: np_logsumexp(a, axis=1)),
    "logsumexp_all": (lambda x: x.logsumexp(), lambda a: np_logsumexp(a)),
}


@pytest.mark.parametrize("name", list(STABLE))
def test_stable_at_plus_minus_1000(name):
    fn, ref = STABLE[name]
    x = Value(HUGE.copy())
    out = fn(x)
    assert np.all(np.isfinite(out.data))
    out.sum().backward()
    assert np.all(np.isfinite(x.grad))
    # and still correct, gradients included
    check_op(fn, HUGE + randn(HUGE.shape, seed=14, scale=0.1), ref=ref, fwd_rtol=1e-12)


def test_softmax_float32():
    check_f32(lambda v: v.softmax(-1), randn((3, 5), seed=15, scale=2.0))
    check_f32(lambda v: v.log_softmax(0), randn((3, 5), seed=16, scale=2.0))
    x = Value(HUGE.astype(np.float32))
    out = x.log_softmax(1)
    assert out.dtype == np.float32 and np.all(np.isfinite(out.data))


# ---- shape ops -------------------------------------------------------------------------------

SHAPE_OPS = {
    "reshape_tuple": ((2, 3, 4), lambda x: x.reshape((6, 4)), lambda a: a.reshape(6, 4)),
    "reshape_varargs": ((2, 3, 4), lambda x: x.reshape(4, -1), lambda a: a.reshape(4, -1)),
    "reshape_-1": ((2, 3, 4), lambda x: x.reshape(-1), lambda a: a.reshape(-1)),
    "reshape_to_0d": ((1,), lambda x: x.reshape(()), lambda a: a.reshape(())),
    "reshape_from_0d": ((), lambda x: x.reshape(1, 1), lambda a: a.reshape(1, 1)),
    "view": ((2, 3, 4), lambda x: x.view(3, 8), lambda a: a.reshape(3, 8)),
    "view_tuple_-1": ((2, 3, 4), lambda x: x.view((-1, 2)), lambda a: a.reshape(-1, 2)),
    "reshape_of_transpose": (
        (2, 3, 4),
        lambda x: x.transpose(0, 2).reshape(4, 6),
        lambda a: np.swapaxes(a, 0, 2).reshape(4, 6),
    ),
    "flatten": ((2, 3, 4), lambda x: x.flatten(), lambda a: a.reshape(-1)),
    "flatten_1": ((2, 3, 4), lambda x: x.flatten(1), lambda a: a.reshape(2, 12)),
    "flatten_0_1": ((2, 3, 4), lambda x: x.flatten(0, 1), lambda a: a.reshape(6, 4)),
    "flatten_kw": (
        (2, 3, 4, 2),
        lambda x: x.flatten(start_dim=1, end_dim=2),
        lambda a: a.reshape(2, 12, 2),
    ),
    "squeeze": ((2, 1, 3, 1), lambda x: x.squeeze(), lambda a: np.squeeze(a)),
    "squeeze_1": ((2, 1, 3, 1), lambda x: x.squeeze(1), lambda a: np.squeeze(a, 1)),
    "squeeze_-1": ((2, 1, 3, 1), lambda x: x.squeeze(dim=-1), lambda a: np.squeeze(a, -1)),
    "unsqueeze_0": ((3, 4), lambda x: x.unsqueeze(0), lambda a: a[None]),
    "unsqueeze_1": ((3, 4), lambda x: x.unsqueeze(1), lambda a: a[:, None]),
    "unsqueeze_-1": ((3, 4), lambda x: x.unsqueeze(-1), lambda a: a[..., None]),
    "unsqueeze_0d": ((), lambda x: x.unsqueeze(0), lambda a: a.reshape(1)),
    "transpose": ((2, 3, 4), lambda x: x.transpose(0, 1), lambda a: np.swapaxes(a, 0, 1)),
    "transpose_neg": ((2, 3, 4), lambda x: x.transpose(-1, -3), lambda a: np.swapaxes(a, 0, 2)),
    "transpose_same": ((2, 3), lambda x: x.transpose(1, 1), lambda a: a),
    "permute": ((2, 3, 4), lambda x: x.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "permute_2": ((2, 3, 4), lambda x: x.permute(1, 2, 0), lambda a: a.transpose(1, 2, 0)),
    "T": ((3, 5), lambda x: x.T, lambda a: a.T),
    "T_1d": ((5,), lambda x: x.T, lambda a: a),
    "expand": ((3, 1), lambda x: x.expand(2, 3, 4), lambda a: np.broadcast_to(a, (2, 3, 4))),
    "expand_0d": ((), lambda x: x.expand(2, 3), lambda a: np.broadcast_to(a, (2, 3))),
    "broadcast_to": (
        (3, 1),
        lambda x: x.broadcast_to((4, 3, 5)),
        lambda a: np.broadcast_to(a, (4, 3, 5)),
    ),
    "view_chain": (
        (4, 6),
        lambda x: x[:, ::2].T.reshape(-1),
        lambda a: a[:, ::2].T.reshape(-1),
    ),
    "strided_binary": (
        (4, 4),
        lambda x: x.T * x[::-1] + x.permute(1, 0)[1:].sum(0),
        lambda a: a.T * a[::-1] + a.T[1:].sum(0),
    ),
    "overlapping_views": ((6,), lambda x: x[:-1] * x[1:], lambda a: a[:-1] * a[1:]),
    "view_of_expand": (
        (3, 1),
        lambda x: x.expand(3, 4)[:, 1:] * x.T.expand(2, 3).T[:, :1],
        lambda a: np.broadcast_to(a, (3, 4))[:, 1:] * a,
    ),
    "permute_index_reshape": (
        (2, 3, 4),
        lambda x: x.permute(2, 0, 1)[1].reshape(-1),
        lambda a: a.transpose(2, 0, 1)[1].reshape(-1),
    ),
    # times x, so the second derivative is not zero
    "clone": ((3, 4), lambda x: x.clone() * x, lambda a: a * a),
    "cumsum": ((2, 3, 4), lambda x: x.cumsum(1) * x, lambda a: np.cumsum(a, 1) * a),
    "cumsum_-1": ((5,), lambda x: x.cumsum(-1) ** 2, lambda a: np.cumsum(a) ** 2),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_op(name):
    shape, fn, ref = SHAPE_OPS[name]
    check_op(fn, randn(shape, seed=17), ref=ref)


def test_shape_ops_float32():
    for name in ("reshape_of_transpose", "expand", "view_chain", "strided_binary"):
        shape, fn, _ = SHAPE_OPS[name]
        check_f32(fn, randn(shape, seed=18))


CAT_STACK = {
    "cat0": ([(2, 3), (4, 3)], lambda *v: mg.cat(list(v)), lambda *a: np.concatenate(a)),
    "cat1": (
        [(2, 3), (2, 5), (2, 1)],
        lambda *v: mg.cat(list(v), dim=1),
        lambda *a: np.concatenate(a, axis=1),
    ),
    "cat-1_3d": (
        [(2, 3, 1), (2, 3, 2)],
        lambda *v: mg.cat(list(v), dim=-1),
        lambda *a: np.concatenate(a, axis=-1),
    ),
    "cat_single": ([(3, 2)], lambda *v: mg.cat(list(v)), lambda *a: np.concatenate(a)),
    "cat_tuple": ([(2,), (3,)], lambda *v: mg.cat(tuple(v)), lambda *a: np.concatenate(a)),
    "stack0": ([(3, 4)] * 3, lambda *v: mg.stack(list(v)), lambda *a: np.stack(a)),
    "stack1": ([(3, 4)] * 2, lambda *v: mg.stack(list(v), dim=1), lambda *a: np.stack(a, 1)),
    "stack-1": ([(3, 4)] * 2, lambda *v: mg.stack(list(v), dim=-1), lambda *a: np.stack(a, -1)),
    "stack_0d": ([()] * 4, lambda *v: mg.stack(list(v)), lambda *a: np.stack(a)),
}


@pytest.mark.parametrize("name", list(CAT_STACK))
def test_cat_stack(name):
    shapes, fn, ref = CAT_STACK[name]
    arrays = [randn(s, seed=20 + i) for i, s in enumerate(shapes)]
    check_op(fn, *arrays, ref=ref)


def np_split_sizes(a, sizes, axis):
    return np.split(a, np.cumsum(sizes)[:-1], axis=axis)


SPLITS = {
    "split3": (lambda x: x.split(3), lambda a: np_split_sizes(a, [3, 3, 1], 0)),
    "split_list": (lambda x: x.split([2, 5]), lambda a: np_split_sizes(a, [2, 5], 0)),
    "split_dim1": (lambda x: x.split(2, dim=1), lambda a: np_split_sizes(a, [2, 1], 1)),
    "split_list_dim-1": (lambda x: x.split([1, 2], dim=-1), lambda a: np_split_sizes(a, [1, 2], 1)),
    "chunk3": (lambda x: x.chunk(3), lambda a: np_split_sizes(a, [3, 3, 1], 0)),
    "chunk7": (lambda x: x.chunk(7), lambda a: np_split_sizes(a, [1] * 7, 0)),
    "chunk2_dim1": (lambda x: x.chunk(2, dim=1), lambda a: np_split_sizes(a, [2, 1], 1)),
}


@pytest.mark.parametrize("name", list(SPLITS))
def test_split_chunk(name):
    fn, ref = SPLITS[name]
    a = randn((7, 3), seed=25)
    parts = fn(Value(a))
    want = ref(a)
    assert len(parts) == len(want)
    for p, w in zip(parts, want):
        assert isinstance(p, Value)
        assert p.shape == w.shape
        np.testing.assert_array_equal(p.data, w)
    # every part carries its own slice of the gradient back
    for k in range(len(want)):
        check_op(lambda v, k=k: fn(v)[k], a, ref=lambda arr, k=k: ref(arr)[k])
    dim = 1 if "dim" in name else 0
    check_op(
        lambda v: mg.cat([p * (k + 1.0) for k, p in enumerate(fn(v))], dim=dim),
        a,
        ref=lambda arr: np.concatenate([p * (k + 1.0) for k, p in enumerate(ref(arr))], dim),
    )


# ---- indexing ---------------------------------------------------------------------------------

MASK_45 = np.array(
    [
        [True, False, True, False, True],
        [False, False, False, True, True],
        [True, True, False, False, False],
        [False, True, False, True, False],
    ]
)
ROWS_4 = np.array([True, False, True, True])
COLS_5 = np.array([False, True, True, False, True])

INDEX_CASES = {
    "int": 1,
    "neg_int": -1,
    "np_int": np.int64(2),
    "slice": slice(1, 3),
    "step": slice(None, None, 2),
    "neg_step": slice(None, None, -1),
    "neg_bounds": slice(-3, -1),
    "neg_step_bounds": slice(3, 0, -2),
    "int_int": (2, -3),
    "int_slice": (1, slice(None, None, -2)),
    "col": (slice(None), 1),
    "ellipsis_int": (Ellipsis, 0),
    "ellipsis_slice": (Ellipsis, slice(None, None, -1)),
    "none": None,
    "none_mid": (slice(None), None, slice(None)),
    "int_ellipsis_none": (0, Ellipsis, None),
    "mixed": (slice(1, 4), -1, slice(None, None, -1)),
    "list_repeats": [0, 2, 2],
    "array_repeats": np.array([3, 1, 1, 0]),
    "neg_list": [-1, 0, -1],
    "list_dim1": (slice(None), [4, 0, 4]),
    "ellipsis_list": (Ellipsis, [2, 2]),
    "array_2d": np.array([[0, 1], [1, 1]]),
    "two_lists": ([0, 1, 1], [2, 0, 2]),
    "slice_list": (slice(1, None), [0, 2]),
    "bool_full": np.stack([MASK_45] * 3, axis=-1),
    "bool_2d": MASK_45,
    "bool_rows": ROWS_4,
    "bool_cols": (slice(None), COLS_5),
}


@pytest.mark.parametrize("name", list(INDEX_CASES))
def test_getitem(name):
    idx = INDEX_CASES[name]
    check_op(lambda x: x[idx], randn((4, 5, 3), seed=30), ref=lambda a: a[idx])


def test_getitem_with_comparison_mask():
    a = avoid(randn((4, 5), seed=31), points=(0.0, -0.5), margin=0.1)
    check_op(lambda x: x[x > 0], a, ref=lambda arr: arr[arr > 0])
    check_op(lambda x: x[x <= -0.5], a, ref=lambda arr: arr[arr <= -0.5])


def test_getitem_on_1d_and_0d():
    check_op(lambda x: x[3], randn((6,), seed=32), ref=lambda a: a[3])
    check_op(lambda x: x[::-2], randn((6,), seed=33), ref=lambda a: a[::-2])
    check_op(lambda x: x[None], np.array(1.5), ref=lambda a: a[None])
    check_op(lambda x: x[...], np.array(1.5), ref=lambda a: a[...])


def test_repeated_indices_accumulate():
    x = Value(np.zeros(4))
    x[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0, 0.0])
    y = Value(np.zeros((2, 3)))
    (y[:, [1, 1]] * 2.0).sum().backward()
    np.testing.assert_array_equal(y.grad, [[0, 4, 0], [0, 4, 0]])


def test_getitem_float32():
    check_f32(lambda x: x[1:, [0, 2, 2]], randn((4, 5), seed=34))
    check_f32(lambda x: x[MASK_45], randn((4, 5), seed=35))


GATHER_CASES = {
    "dim1": ((3, 4), 1, np.array([[0, 0], [1, 3], [2, 2]])),
    "dim0": ((3, 4), 0, np.array([[2, 0, 1, 1], [0, 0, 2, 2]])),
    "dim-1": ((3, 4), -1, np.array([[3], [3], [0]])),
    "3d_dim1": ((2, 3, 4), 1, np.random.default_rng(36).integers(0, 3, size=(2, 5, 4))),
    "list": ((3, 4), 1, [[0, 0], [1, 3], [2, 2]]),
}


@pytest.mark.parametrize("name", list(GATHER_CASES))
def test_gather(name):
    shape, dim, index = GATHER_CASES[name]
    check_op(
        lambda x: x.gather(dim, index),
        randn(shape, seed=37),
        ref=lambda a: np.take_along_axis(a, np.asarray(index), axis=dim),
    )


# ---- index_select and integer tensors as indices --------------------------------------------

INDEX_SELECT_CASES = {
    "rows_repeats": ((4, 3), 0, [2, 0, 2, 2]),
    "cols": ((3, 5), 1, [4, 0, 4]),
    "last_dim_negative": ((2, 3, 4), -1, [-1, 0, -1]),
    "middle": ((2, 3, 4), 1, [1, 1]),
    "1d": ((5,), 0, [3, 3, 0]),
    "0d_index": ((4, 3), 0, 2),
    "empty": ((4, 3), 1, []),
}


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("name", list(INDEX_SELECT_CASES))
def test_index_select(name, dtype):
    shape, dim, index = INDEX_SELECT_CASES[name]
    idx = mg.tensor(np.array(index, dtype=dtype))
    check_op(
        lambda x: x.index_select(dim, idx),
        randn(shape, seed=38),
        ref=lambda a: np.take(a, np.atleast_1d(index).astype(np.int64), axis=dim),
    )


TENSOR_INDEX_CASES = {
    "rows_repeats": (np.array([3, 1, 1, 0]),),
    "2d": (np.array([[0, 1], [1, 1]]),),
    "negative": (np.array([-1, -4, -1]),),
    "pair_repeats": (np.array([0, 2, 2]), np.array([1, 1, 4])),
    "pair_broadcast": (np.array([[0], [3]]), np.array([4, 0, 4])),
    "slice_then_array": (slice(1, None), np.array([0, 4, 4])),
    "separated": (np.array([0, 3, 3]), slice(None), np.array([2, 2, 0])),
    "ellipsis_last": (Ellipsis, np.array([2, 0, 2])),
    "int_and_array": (1, slice(None, None, -1), np.array([2, 2])),
}


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("name", list(TENSOR_INDEX_CASES))
def test_int_tensor_index(name, dtype):
    key = TENSOR_INDEX_CASES[name]
    tkey = tuple(mg.tensor(k.astype(dtype)) if isinstance(k, np.ndarray) else k for k in key)
    # An int selects first, as torch (numpy would count it as an advanced index).
    ref = (lambda a: a[key[0]][key[1:]]) if isinstance(key[0], int) else (lambda a: a[key])
    check_op(lambda x: x[tkey], randn((4, 5, 3), seed=39), ref=ref)


def test_int32_and_int64_indices_agree_with_numpy():
    a = randn((6, 4, 5), seed=40)
    r = np.random.default_rng(41)
    rows, cols = r.integers(-6, 6, (3, 7)), r.integers(0, 5, 7)
    g = r.integers(0, 4, (6, 9, 5))
    x = Value(a)
    for dtype in (np.int32, np.int64):
        tr, tc = mg.tensor(rows.astype(dtype)), mg.tensor(cols.astype(dtype))
        for got, want in [
            (x[tr], a[rows]),
            (x[tr, :, tc], a[rows, :, cols]),
            (x[:, 1:3, tc], a[:, 1:3, cols]),
            (x[tr, 2], a[rows, 2]),
            (x.index_select(2, tc), np.take(a, cols, axis=2)),
            (x.gather(1, mg.tensor(g.astype(dtype))), np.take_along_axis(a, g, axis=1)),
        ]:
            np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("dtype", [np.bool_, np.int32, np.int64, np.float32, np.float64])
def test_index_family_on_every_source_dtype(dtype):
    a = (np.arange(24).reshape(4, 6) % 3).astype(dtype)
    x = mg.tensor(a)
    rows, idx = [3, 0, 3], np.array([[5, 0], [1, 1], [0, 0], [2, 5]])
    for got, want in [
        (x[mg.tensor(rows)], a[rows]),
        (x[mg.tensor(rows), mg.tensor([5, 5, 0])], a[rows, [5, 5, 0]]),
        (x[:, mg.tensor(rows)], a[:, rows]),
        (x[mg.tensor(a != 0)], a[a != 0]),
        (x.index_select(1, mg.tensor(rows)), np.take(a, rows, axis=1)),
        (x.gather(1, mg.tensor(idx)), np.take_along_axis(a, idx, axis=1)),
    ]:
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.numpy(), want)


@given(s0=st.slices(7), s1=st.slices(5))
def test_slices_resolve_as_numpy(s0, s1):
    a = np.arange(35.0).reshape(7, 5)
    np.testing.assert_array_equal(Value(a)[s0, s1].numpy(), a[s0, s1])
    np.testing.assert_array_equal(Value(a)[..., s1].numpy(), a[..., s1])


def test_slice_bounds_past_int64_clamp():
    a = np.arange(6.0)
    for s in (slice(-(10**30), 10**30), slice(10**30, None, -(10**30)), slice(None, -(10**30), -1)):
        np.testing.assert_array_equal(Value(a)[s].numpy(), a[s])


# ---- matmul and dot --------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3,), (3,)),
    ((3,), (3, 4)),
    ((3, 4), (4,)),
    ((2, 3), (3, 4)),
    ((1, 3), (3, 1)),
    ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)),
    ((5, 2, 3), (5, 3, 4)),
    ((2, 1, 2, 3), (4, 3, 2)),
    ((3,), (2, 3, 4)),
    ((2, 3, 4), (4,)),
]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES, ids=str)
def test_matmul(sa, sb):
    a, b = randn(sa, seed=40), randn(sb, seed=41)
    check_op(lambda x, y: x @ y, a, b, ref=np.matmul)
    check_op(lambda x, y: mg.matmul(x, y), a, b, ref=np.matmul)


@pytest.mark.parametrize("sa,sb", [((4,), (4,)), ((3, 4), (4,)), ((3, 4), (4, 2))], ids=str)
def test_dot(sa, sb):
    a, b = randn(sa, seed=42), randn(sb, seed=43)
    check_op(lambda x, y: mg.dot(x, y), a, b, ref=np.dot)
    check_op(lambda x, y: x.dot(y), a, b, ref=np.dot)


def test_matmul_with_numpy_operands():
    m = randn((2, 3), seed=44)
    check_op(lambda x: m @ x, randn((3, 4), seed=45), ref=lambda a: m @ a)
    check_op(lambda x: x @ m.T, randn((4, 3), seed=46), ref=lambda a: a @ m.T)


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((3,), (3, 4)), ((5, 2, 3), (3,))], ids=str)
def test_matmul_float32(sa, sb):
    check_f32(lambda x, y: x @ y, randn(sa, seed=47), randn(sb, seed=48))


# ---- where / maximum / minimum / clamp -----------------------------------------------------


def test_where_same_shapes():
    cond = randn((3, 4), seed=50) > 0
    check_op(
        lambda a, b: mg.where(cond, a, b),
        randn((3, 4), seed=51),
        randn((3, 4), seed=52),
        ref=lambda a, b: np.where(cond, a, b),
    )


def test_where_broadcasts():
    cond = np.array([[True], [False], [True]])
    check_op(
        lambda a, b: mg.where(cond, a, b),
        randn((1, 4), seed=53),
        np.array(0.25),
        ref=lambda a, b: np.where(cond, a, b),
    )


def test_where_with_comparison_and_number():
    a = avoid(randn((3, 4), seed=54), margin=0.1)
    check_op(lambda x: mg.where(x > 0, x, 0.0), a, ref=lambda v: np.where(v > 0, v, 0.0))
    check_op(
        lambda x, y: mg.where(x > y, x, y),
        make("even", (3, 4), 55),
        make("odd", (3, 4), 56),
        ref=np.maximum,
    )


def test_where_float32():
    cond = randn((3, 4), seed=57) > 0
    check_f32(lambda a, b: mg.where(cond, a, b), randn((3, 4), seed=58), randn((4,), seed=59))


def test_maximum_minimum_with_numbers():
    a = avoid(randn((3, 4), seed=60), points=(0.2,), margin=0.05)
    check_op(lambda x: mg.maximum(x, 0.2), a, ref=lambda v: np.maximum(v, 0.2))
    check_op(lambda x: mg.minimum(0.2, x), a, ref=lambda v: np.minimum(0.2, v))


# ---- losses ------------------------------------------------------------------------------------

REDUCTIONS = ["mean", "sum", "none"]


def reduce_np(per_item, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](per_item)


N, C = 5, 4
TARGET = np.array([0, 3, 1, 1, 2])


def probs_target():
    return np_softmax(randn((N, C), seed=61), 1)


def ce_ref(logits, target, reduction):
    return reduce_np(-np_log_softmax(logits, 1)[np.arange(N), target], reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(reduction):
    check_op(
        lambda x, y: F.mse_loss(x, y, reduction=reduction),
        randn((4, 3), seed=62),
        randn((4, 3), seed=63),
        ref=lambda x, y: reduce_np((x - y) ** 2, reduction),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_loss(reduction):
    x = randn((4, 3), seed=64)
    y = x + avoid(randn((4, 3), seed=65), margin=0.2)
    check_op(
        lambda a, b: F.l1_loss(a, b, reduction=reduction),
        x,
        y,
        ref=lambda a, b: reduce_np(np.abs(a - b), reduction),
    )


@pytest.mark.parametrize("target_form", ["numpy", "list", "Value"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_indices(reduction, target_form):
    target = {
        "numpy": TARGET,
        "list": TARGET.tolist(),
        "Value": mg.tensor(TARGET),
    }[target_form]
    check_op(
        lambda z: F.cross_entropy(z, target, reduction=reduction),
        randn((N, C), seed=66, scale=2.0),
        ref=lambda z: ce_ref(z, TARGET, reduction),
    )


@pytest.mark.parametrize("target_form", ["numpy", "Value"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_probabilities(reduction, target_form):
    p = probs_target()
    target = p if target_form == "numpy" else mg.tensor(p)
    check_op(
        lambda z: F.cross_entropy(z, target, reduction=reduction),
        randn((N, C), seed=67, scale=2.0),
        ref=lambda z: reduce_np(-(p * np_log_softmax(z, 1)).sum(1), reduction),
    )


def test_cross_entropy_is_stable():
    logits = Value(np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]]))
    loss = F.cross_entropy(logits, np.array([1, 2]))
    assert np.isfinite(loss.item())
    np.testing.assert_allclose(loss.item(), (2000.0 + (1.0 + np.log1p(np.exp(-1.0)))) / 2)
    loss.backward()
    assert np.all(np.isfinite(logits.grad))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(reduction):
    check_op(
        lambda z: F.nll_loss(z, TARGET, reduction=reduction),
        randn((N, C), seed=68),
        ref=lambda z: reduce_np(-z[np.arange(N), TARGET], reduction),
    )
    # composed with log_softmax it is cross_entropy
    z = randn((N, C), seed=69)
    a = F.nll_loss(Value(z).log_softmax(1), TARGET, reduction=reduction)
    b = F.cross_entropy(Value(z), TARGET, reduction=reduction)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


def bce_np(p, y):
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


@pytest.mark.parametrize("target", ["hard", "soft"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction, target):
    y = (randn((6,), seed=70) > 0).astype(np.float64)
    if target == "soft":
        y = uniform((6,), 0.0, 1.0, seed=71)
    check_op(
        lambda p: F.binary_cross_entropy(p, y, reduction=reduction),
        uniform((6,), 0.1, 0.9, seed=72),
        ref=lambda p: reduce_np(bce_np(p, y), reduction),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction):
    y = uniform((3, 4), 0.0, 1.0, seed=73)
    check_op(
        lambda z: F.binary_cross_entropy_with_logits(z, mg.tensor(y), reduction=reduction),
        randn((3, 4), seed=74, scale=3.0),
        ref=lambda z: reduce_np(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))), reduction),
    )


def test_binary_cross_entropy_with_logits_is_stable():
    z = Value(np.array([1000.0, -1000.0, 1000.0, -1000.0]))
    y = np.array([1.0, 0.0, 0.0, 1.0])
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 1000.0, 1000.0], atol=1e-12)
    loss.sum().backward()
    np.testing.assert_allclose(z.grad, [0.0, 0.0, 1.0, -1.0], atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_loss(reduction):
    y = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0])
    s = randn((8,), seed=75, scale=1.5)
    s = y * avoid(y * s, points=(1.0,), margin=0.1)  # keep 1 - y*s away from the kink
    check_op(
        lambda v: F.hinge_loss(v, y, reduction=reduction),
        s,
        ref=lambda v: reduce_np(np.maximum(0.0, 1.0 - y * v), reduction),
    )
    if reduction == "mean":
        ys = mg.tensor(y)
        manual = (1 - ys * Value(s)).relu().mean()
        np.testing.assert_allclose(F.hinge_loss(Value(s), ys).item(), manual.item(), rtol=1e-12)


LOSSES_F32 = {
    "mse": (lambda x: F.mse_loss(x, mg.tensor(np.ones((4, 3), np.float32))), (4, 3)),
    "l1": (lambda x: F.l1_loss(x, mg.tensor(np.full((4, 3), 5.0, np.float32))), (4, 3)),
    "ce": (lambda x: F.cross_entropy(x, TARGET), (N, C)),
    "nll": (lambda x: F.nll_loss(x, TARGET), (N, C)),
    "bce_logits": (
        lambda x: F.binary_cross_entropy_with_logits(x, mg.tensor(np.ones((4, 3), np.float32))),
        (4, 3),
    ),
    "hinge": (lambda x: F.hinge_loss(x, mg.tensor(np.ones((4, 3), np.float32))), (4, 3)),
}


@pytest.mark.parametrize("name", list(LOSSES_F32))
def test_loss_float32(name):
    fn, shape = LOSSES_F32[name]
    check_f32(fn, randn(shape, seed=76) * 0.5 + 0.1)


# ---- property tests: shapes are where engines break ----------------------------------------

finite = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def broadcast_pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3))
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=finite))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=finite))
    return a, b


# (op, numpy forward, d out / d a, d out / d b)
ANALYTIC = {
    "add": (lambda x, y: x + y, np.add, lambda a, b: np.ones_like(a + b), lambda a, b: 1.0 + 0 * b),
    "sub": (
        lambda x, y: x - y,
        np.subtract,
        lambda a, b: 1.0 + 0 * (a + b),
        lambda a, b: -1.0 + 0 * (a + b),
    ),
    "mul": (lambda x, y: x * y, np.multiply, lambda a, b: b + 0 * a, lambda a, b: a + 0 * b),
    "div": (
        lambda x, y: x / y,
        np.divide,
        lambda a, b: 1.0 / b + 0 * a,
        lambda a, b: -a / b**2,
    ),
}


@pytest.mark.parametrize("name", list(ANALYTIC))
@given(pair=broadcast_pair(), seed=st.integers(0, 2**16))
def test_broadcasting_property(name, pair, seed):
    fn, ref, da, db = ANALYTIC[name]
    a, b = pair
    if name == "div":
        b = avoid(b, margin=0.5)
    x, y = Value(a), Value(b)
    out = fn(x, y)
    want = ref(a, b)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, rtol=1e-12, atol=1e-12)
    w = np.random.default_rng(seed).standard_normal(want.shape)
    (out * Value(w, requires_grad=False)).sum().backward()
    np.testing.assert_allclose(x.grad, sum_to(w * da(a, b), a.shape), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.grad, sum_to(w * db(a, b), b.shape), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", list(BINARY))
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    seed=st.integers(0, 999),
)
def test_binary_finite_difference_property(name, shapes, seed):
    fn, ref, da, db = BINARY[name]
    sa, sb = shapes.input_shapes
    check_op(fn, make(da, sa, seed), make(db, sb, seed + 1), ref=ref)


@st.composite
def array_and_axes(draw):
    a = draw(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), elements=finite
        )
    )
    axes = draw(st.none() | st.lists(st.integers(-a.ndim, a.ndim - 1), min_size=1, max_size=a.ndim))
    if axes is not None:
        axes = tuple(sorted({d % a.ndim for d in axes}))
        axes = axes[0] if len(axes) == 1 and draw(st.booleans()) else axes
    return a, axes, draw(st.booleans())


@given(case=array_and_axes())
def test_sum_mean_property(case):
    a, axes, keepdim = case
    for name in ("sum", "mean"):
        x = Value(a)
        out = getattr(x, name)(dim=axes, keepdim=keepdim)
        want = getattr(np, name)(a, axis=axes, keepdims=keepdim)
        assert out.shape == np.shape(want)
        np.testing.assert_allclose(out.data, want, rtol=1e-12, atol=1e-12)
        out.backward()  # seeds ones: the gradient of out.sum()
        reduced = a.size // np.size(want)
        expected = 1.0 if name == "sum" else 1.0 / reduced
        np.testing.assert_allclose(x.grad, np.full(a.shape, expected), rtol=1e-12)


@given(
    a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), elements=finite),
    data=st.data(),
)
def test_permute_property(a, data):
    perm = data.draw(st.permutations(range(a.ndim)))
    x = Value(a)
    out = x.permute(*perm)
    np.testing.assert_array_equal(out.data, np.transpose(a, perm))
    w = np.random.default_rng(0).standard_normal(out.shape)
    (out * Value(w, requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, np.transpose(w, np.argsort(perm)))


@given(
    a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite),
    data=st.data(),
)
def test_basic_indexing_property(a, data):
    idx = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    x = Value(a)
    out = x[idx]
    want = a[idx]
    assert out.shape == want.shape
    np.testing.assert_array_equal(out.data, want)
    w = np.random.default_rng(1).standard_normal(want.shape)
    (out * Value(w, requires_grad=False)).sum().backward()
    g = np.zeros_like(a)
    g[idx] += w
    np.testing.assert_allclose(x.grad, g)


@given(
    a=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5), elements=finite),
    data=st.data(),
)
def test_integer_array_indexing_property(a, data):
    idx = data.draw(
        hnp.integer_array_indices(a.shape, result_shape=hnp.array_shapes(max_dims=2, max_side=4))
    )
    x = Value(a)
    out = x[idx]
    want = a[idx]
    assert out.shape == want.shape
    np.testing.assert_array_equal(out.data, want)
    w = np.random.default_rng(2).standard_normal(want.shape)
    (out * Value(w, requires_grad=False)).sum().backward()
    g = np.zeros_like(a)
    np.add.at(g, idx, w)  # repeated indices accumulate
    np.testing.assert_allclose(x.grad, g, rtol=1e-12, atol=1e-12)


@given(
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
    mkn=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    data=st.data(),
)
def test_matmul_property(batch, mkn, data):
    m, k, n = mkn
    sa, sb = batch.input_shapes[0] + (m, k), batch.input_shapes[1] + (k, n)
    a = data.draw(hnp.arrays(np.float64, sa, elements=finite))
    b = data.draw(hnp.arrays(np.float64, sb, elements=finite))
    x, y = Value(a), Value(b)
    out = x @ y
    want = np.matmul(a, b)
    assert out.shape == want.shape
    np.testing.assert_allclose(out.data, want, rtol=1e-10, atol=1e-10)
    w = np.random.default_rng(3).standard_normal(want.shape)
    (out * Value(w, requires_grad=False)).sum().backward()
    ga = sum_to(np.matmul(w, np.swapaxes(b, -1, -2)), sa)
    gb = sum_to(np.matmul(np.swapaxes(a, -1, -2), w), sb)
    np.testing.assert_allclose(x.grad, ga, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y.grad, gb, rtol=1e-10, atol=1e-10)


# ---- larger and strided inputs: the kernels' fast paths and their strided fallbacks ----------


def big(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


# (stored shape of a, view of a, stored shape of b, view of b): the same code views numpy
# arrays and Values, so the expected gradient is the view's gradient written back in place.
MATMUL_LAYOUTS = {
    "contiguous": ((130, 70), lambda a: a, (70, 129), lambda b: b),
    "transposed": ((70, 130), lambda a: a.T, (129, 70), lambda b: b.T),
    "stepped": ((260, 70), lambda a: a[::2, ::-1], (70, 129), lambda b: b[::-1]),
    "batched": ((3, 40, 70), lambda a: a[:, ::-1], (2, 1, 70, 33), lambda b: b),
}


@pytest.mark.parametrize("layout", list(MATMUL_LAYOUTS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_matmul(layout, dtype):
    sa, view_a, sb, view_b = MATMUL_LAYOUTS[layout]
    a_np, b_np = big(sa, 1), big(sb, 2)
    x, y = Value(a_np.astype(dtype)), Value(b_np.astype(dtype))
    out = view_a(x) @ view_b(y)
    want = view_a(a_np) @ view_b(b_np)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, want, rtol=tol, atol=tol * 10)
    w = big(want.shape, 3)
    (out * Value(w.astype(dtype), requires_grad=False)).sum().backward()
    ga, gb = np.zeros_like(a_np), np.zeros_like(b_np)
    view_a(ga)[...] = sum_to(w @ np.swapaxes(view_b(b_np), -1, -2), view_a(a_np).shape)
    view_b(gb)[...] = sum_to(np.swapaxes(view_a(a_np), -1, -2) @ w, view_b(b_np).shape)
    np.testing.assert_allclose(x.grad, ga, rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(y.grad, gb, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_elementwise_and_reductions_on_views(dtype):
    a_np = big((17, 33, 9), 4)
    b_np = big((9, 33), 5)
    x, y = Value(a_np.astype(dtype)), Value(b_np.astype(dtype))
    xv = x.permute(2, 1, 0)[:, ::-1]  # (9, 33, 17), non-contiguous
    yv = y.unsqueeze(-1)  # (9, 33, 1), broadcast along the last dim
    out = ((xv * yv).exp() - xv / (yv.abs() + 1.0)).sum(dim=(0, 2)) + xv.max(dim=1).values.sum()
    av = a_np.transpose(2, 1, 0)[:, ::-1]
    bv = b_np[..., None]
    want = (np.exp(av * bv) - av / (np.abs(bv) + 1.0)).sum(axis=(0, 2)) + av.max(axis=1).sum()
    tol = 1e-10 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(out.data, want, rtol=tol)
    for op, ref in (
        (lambda v: v.sum(dim=1), lambda a: a.sum(1)),
        (lambda v: v.mean(dim=(0, 2)), lambda a: a.mean((0, 2))),
        (lambda v: v.var(dim=0), lambda a: a.var(0, ddof=1)),
        (lambda v: v.logsumexp(dim=2), lambda a: np_logsumexp(a, axis=2)),
        (lambda v: v.softmax(1), lambda a: np_softmax(a, 1)),
        (lambda v: v.min(), lambda a: a.min()),
    ):
        np.testing.assert_allclose(op(xv).data, ref(av), rtol=tol, atol=tol)
