"""Edges where a gradient used to be silently wrong (issue "Correct at the edges").

Each case is written once against a small adapter, so the same code runs on MikaGrad and on
PyTorch. MikaGrad's result is checked against fixed values (PyTorch 2.13's, so CI needs no
torch) in float64 and float32, and against PyTorch itself where it is installed.
"""

import math

import numpy as np
import pytest
from edge_adapters import MG, Torch

import mikagrad as mg
from mikagrad.engine import Value

INF, NAN = math.inf, math.nan
DTYPES = ["float64", "float32"]


def hinge(L, s, y):
    """micrograd's max-margin loss, written the same way for both libraries."""
    return (1 - y * s).relu()


# Each case: (L, dtype) -> the arrays to compare (outputs and gradients).


def bce_saturated_sigmoid(L, dt):
    x = L.leaf([40.0, -40.0, 17.0, 0.0], dt)
    loss = L.F.binary_cross_entropy(x.sigmoid(), L.const([1.0, 0.0, 1.0, 1.0], dt))
    L.backward(loss)
    return [L.np(loss), L.grad(x)]


def bce_at_0_and_1(L, dt):
    p = L.leaf([0.0, 1.0, 0.0, 1.0, 0.5], dt)
    y = L.leaf([1.0, 0.0, 0.0, 1.0, 0.25], dt)
    loss = L.F.binary_cross_entropy(p, y, reduction="none")
    L.backward(loss.sum())
    return [L.np(loss), L.grad(p), L.grad(y)]


def bce_tiny_p(L, dt):
    # log(1 - p) for tiny p is -p exactly only through log1p (torch's form).
    p = L.leaf([1e-10, 5e-8, 1e-3], dt)
    loss = L.F.binary_cross_entropy(p, L.const([0.0, 0.0, 0.0], dt), reduction="none")
    L.backward(loss.sum())
    return [L.np(loss) * 1e10, L.grad(p)]


def bce_logits_inf(L, dt):
    x = L.leaf([INF, -INF, INF, -INF, 3.0], dt)
    y = L.const([0.0, 1.0, 1.0, 0.0, 0.5], dt)
    loss = L.F.binary_cross_entropy_with_logits(x, y, reduction="none")
    L.backward(loss.sum())
    return [L.np(loss), L.grad(x)]


def relu_sqrt(L, dt):
    x = L.leaf([-1.0, 4.0], dt)
    L.backward(x.relu().sqrt().sum())
    return [L.grad(x)]


def clamp_sqrt(L, dt):
    x = L.leaf([-1.0, 4.0], dt)
    L.backward(x.clamp(min=0).sqrt().sum())
    return [L.grad(x)]


def maximum_sqrt(L, dt):
    x = L.leaf([-1.0, 4.0], dt)
    L.backward(L.maximum(x, L.const([0.0, 0.0], dt)).sqrt().sum())
    return [L.grad(x)]


def minimum_sqrt(L, dt):
    x = L.leaf([1.0, -4.0], dt)
    L.backward((-L.minimum(x, L.const([0.0, 0.0], dt))).sqrt().sum())
    return [L.grad(x)]


def hinge_sqrt(L, dt):
    s = L.leaf([2.0, -3.0], dt)
    L.backward(hinge(L, s, L.const([1.0, 1.0], dt)).sqrt().sum())
    return [L.grad(s)]


def std_constant(L, dt):
    x = L.leaf([3.0, 3.0, 3.0], dt)
    y = x.std()
    L.backward(y)
    return [L.np(y), L.grad(x)]


def var_too_few(L, dt):
    x = L.leaf([[1.0, 2.0]], dt)
    y = x.var(0, correction=2)
    L.backward(y.sum())
    return [L.np(y), L.grad(x)]


def std_too_few(L, dt):
    x = L.leaf([[1.0, 2.0]], dt)
    y = x.std(0, correction=1)
    L.backward(y.sum())
    return [L.np(y), L.grad(x)]


def std_rows(L, dt):
    x = L.leaf([[1.0, 2.0, 4.0], [5.0, 5.0, 5.0]], dt)
    y = x.std(1)
    L.backward(y.sum())
    return [L.np(y), L.grad(x)]


# The gradient arriving at a masked-out position is inf: it must be selected away, not
# multiplied by 0 (which gives NaN). Where PyTorch multiplies (abs, amax), so do we.


def relu_inf(L, dt):
    x = L.leaf([-1.0, 0.0, 2.0, NAN], dt)
    L.backward(x.relu(), INF)
    return [L.grad(x)]


def clamp_inf(L, dt):
    x = L.leaf([-3.0, 0.5, 3.0, NAN], dt)
    L.backward(x.clamp(-1, 1), INF)
    return [L.grad(x)]


def maximum_inf(L, dt):
    x = L.leaf([1.0, 3.0, 2.0, NAN], dt)
    L.backward(L.maximum(x, L.const([2.0, 2.0, 2.0, 2.0], dt)), INF)
    return [L.grad(x)]


def maximum_nan(L, dt):
    a, b = L.leaf([NAN, 3.0, 2.0], dt), L.leaf([2.0, NAN, 2.0], dt)
    L.backward(L.maximum(a, b).sum())
    return [L.grad(a), L.grad(b)]


def minimum_ties(L, dt):
    a, b = L.leaf([1.0, 3.0, 2.0], dt), L.leaf([2.0, 2.0, 2.0], dt)
    L.backward(L.minimum(a, b), INF)
    return [L.grad(a), L.grad(b)]


def where_inf(L, dt):
    x = L.leaf([-1.0, 1.0], dt)
    L.backward(L.where(x > 0, x, L.const(0.0, dt)), INF)
    return [L.grad(x)]


def abs_inf(L, dt):
    x = L.leaf([0.0, -1.0], dt)
    L.backward(x.abs(), INF)
    return [L.grad(x)]


def max_all_inf(L, dt):
    x = L.leaf([1.0, 3.0, 3.0], dt)
    L.backward(x.max(), INF)
    return [L.grad(x)]


def max_all_nan(L, dt):
    x = L.leaf([1.0, NAN, 2.0, NAN], dt)
    L.backward(x.max())
    return [L.grad(x)]


def amax_inf(L, dt):
    x = L.leaf([[1.0, 3.0], [2.0, 2.0]], dt)
    L.backward(x.amax(1), INF)
    return [L.grad(x)]


def max_dim_inf(L, dt):
    x = L.leaf([[1.0, 3.0], [2.0, 2.0]], dt)
    L.backward(x.max(1)[0], INF)
    return [L.grad(x)]


def sort_inf(L, dt):
    x = L.leaf([3.0, 1.0, 2.0], dt)
    L.backward(x.sort()[0][:2], INF)
    return [L.grad(x)]


def slice_inf(L, dt):
    x = L.leaf([3.0, 1.0, 2.0], dt)
    L.backward(x[1:], INF)
    return [L.grad(x)]


def pow_half_at_0(L, dt):
    x = L.leaf([0.0, 1.0], dt)
    L.backward((x**0.5).sum())
    return [L.grad(x)]


def pow_zero(L, dt):
    x = L.leaf([0.0, 2.0], dt)
    L.backward((x**0.0).sum())
    return [L.grad(x)]


def pow_value_at_0(L, dt):
    a, b = L.leaf([0.0, 0.0, 2.0], dt), L.leaf([2.0, 0.0, 3.0], dt)
    L.backward((a**b).sum())
    return [L.grad(a), L.grad(b)]


def sign_nan(L, dt):
    return [L.np(L.const([NAN, -2.0, 0.0, 3.0], dt).sign())]


def gather_smaller_index(L, dt):
    x = L.leaf([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], dt)
    y = x.gather(0, L.index([[2, 0]]))
    L.backward((y * L.const([[1.0, 10.0]], dt)).sum())
    return [L.np(y), L.grad(x)]


CASES = {f.__name__: f for f in [
    bce_saturated_sigmoid, bce_at_0_and_1, bce_tiny_p, bce_logits_inf, relu_sqrt, clamp_sqrt,
    maximum_sqrt, minimum_sqrt, hinge_sqrt, std_constant, var_too_few, std_too_few, std_rows,
    relu_inf, clamp_inf, maximum_inf, maximum_nan, minimum_ties, where_inf, abs_inf,
    max_all_inf, max_all_nan, amax_inf, max_dim_inf, sort_inf, slice_inf, pow_half_at_0,
    pow_zero, pow_value_at_0, sign_nan, gather_smaller_index,
]}

# PyTorch 2.13's results (the same in float32).
EXPECTED = {
    "bce_saturated_sigmoid": [0.17328680548983044,
                              [0.0, 4.512128487643113e-24, -1.0349843898582733e-08, -0.125]],
    # torch's epsilon in the derivative is float32's 1e-12
    "bce_at_0_and_1": [[100.0, 100.0, 0.0, 0.0, math.log(2.0)],
                       [-1 / float(np.float32(1e-12)), 1 / float(np.float32(1e-12)), 0, 0, 1],
                       [INF, -INF, INF, -INF, 0.0]],
    "bce_tiny_p": None,  # filled in below: the float64 and float32 values differ
    "bce_logits_inf": [[INF, NAN, NAN, NAN, 1.548587351573742],
                       [1.0, -1.0, 0.0, 0.0, 0.45257412682243336]],
    "relu_sqrt": [[0.0, 0.25]],
    "clamp_sqrt": [[0.0, 0.25]],
    "maximum_sqrt": [[0.0, 0.25]],
    "minimum_sqrt": [[0.0, -0.25]],
    "hinge_sqrt": [[0.0, -1 / (2 * math.sqrt(4.0))]],
    "std_constant": [0.0, [0.0, 0.0, 0.0]],
    "var_too_few": [[NAN, NAN], [[-0.0, -0.0]]],
    "std_too_few": [[NAN, NAN], [[NAN, NAN]]],
    "std_rows": [[math.sqrt(7 / 3), 0.0],
                 [[-4 / 3 / (2 * math.sqrt(7 / 3)), -1 / 3 / (2 * math.sqrt(7 / 3)),
                   5 / 3 / (2 * math.sqrt(7 / 3))], [0.0, 0.0, 0.0]]],
    "relu_inf": [[0.0, 0.0, INF, INF]],
    "clamp_inf": [[0.0, INF, 0.0, 0.0]],
    "maximum_inf": [[0.0, INF, INF / 2, INF]],
    "maximum_nan": [[1.0, 1.0, 0.5], [1.0, 1.0, 0.5]],
    "minimum_ties": [[INF, 0.0, INF], [0.0, INF, INF]],
    "where_inf": [[0.0, INF]],
    "abs_inf": [[NAN, -INF]],
    "max_all_inf": [[0.0, INF, INF]],
    "max_all_nan": [[0.0, 0.5, 0.0, 0.5]],
    "amax_inf": [[[NAN, INF], [INF, INF]]],
    "max_dim_inf": [[[0.0, INF], [INF, 0.0]]],
    "sort_inf": [[0.0, INF, INF]],
    "slice_inf": [[0.0, INF, INF]],
    "pow_half_at_0": [[INF, 0.5]],
    "pow_zero": [[0.0, 0.0]],
    "pow_value_at_0": [[0.0, 0.0, 12.0], [0.0, 0.0, 8 * math.log(2.0)]],
    "sign_nan": [[0.0, -1.0, 0.0, 1.0]],
    "gather_smaller_index": [[[7.0, 2.0]], [[0.0, 10.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]],
}


def _bce_tiny_p(dt):
    p = np.array([1e-10, 5e-8, 1e-3], dtype=dt).astype(np.float64)
    return [-np.log1p(-p) * 1e10, 1 / (1 - p)]


def _same(got, want, dt):
    assert len(got) == len(want)
    tol = 1e-12 if dt == "float64" else 1e-6
    for g, w in zip(got, want):
        g = np.asarray(g, dtype=np.float64)
        w = np.asarray(w, dtype=np.float64)
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_edge_fixed(name, dt):
    want = _bce_tiny_p(dt) if name == "bce_tiny_p" else EXPECTED[name]
    _same(CASES[name](MG, dt), want, dt)


@pytest.mark.filterwarnings("ignore:.*degrees of freedom")
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
def test_edge_matches_torch(name, dt):
    torch = pytest.importorskip("torch")
    _same(CASES[name](MG, dt), CASES[name](Torch(torch), dt), dt)


def test_every_case_has_fixed_values():
    assert set(EXPECTED) == set(CASES)


# ---- shape ops that change nothing still record a node ---------------------------------

NOOP_VIEWS = {
    "reshape": lambda x: x.reshape(x.shape),
    "view": lambda x: x.view(x.shape),
    "expand": lambda x: x.expand(*x.shape),
    "broadcast_to": lambda x: x.broadcast_to(x.shape),
    "squeeze": lambda x: x.squeeze(),
    "ellipsis": lambda x: x[...],
    "empty_tuple": lambda x: x[()],
    "flatten_0d": lambda x: x.sum().flatten(),
}


@pytest.mark.parametrize("name", list(NOOP_VIEWS))
def test_noop_view_is_a_new_node(name):
    x = Value(np.array([[1.0, 2.0, 3.0]]) if name != "squeeze"
              else np.array([[1.0, 2.0], [3.0, 4.0]]))
    y = NOOP_VIEWS[name](x)
    assert y is not x and not y.is_leaf and y.requires_grad
    assert y._node is not x._node and y.op != ""
    ((y * 2).sum() + (x * 3).sum()).backward()
    np.testing.assert_array_equal(x.grad, np.full(x.shape, 5.0))
    # y's own gradient is only what flowed into y, never x's total.
    np.testing.assert_array_equal(y.grad, np.full(y.shape, 2.0))


def test_flatten_with_nothing_to_merge_is_the_value_itself():
    x = Value(np.ones((2, 3)))
    for y in (x.flatten(1, -1), x.flatten(-1, 1), x.flatten(0, 0)):
        assert y is x  # as torch
    v = Value(np.ones(3))
    assert v.flatten() is v
    assert x.flatten().shape == (6,) and not x.flatten().is_leaf


def test_isnan_and_other_predicates_never_require_grad():
    x = Value([1.0, NAN])
    for y in (x.isnan(), x.isinf(), x.isfinite(), x > 0, x == x, x.argmax()):
        assert not y.requires_grad and y.is_leaf


# ---- promotion of numpy operands ----------------------------------------------------------


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_maximum_promotes_like_add(op):
    f = getattr(mg, op)
    v = Value(np.array([1.0], dtype=np.float32))
    a = np.array([0.5])
    assert f(a, v).dtype == (a + v).dtype == np.float64
    assert f(v, a).dtype == np.float64
    assert f(v, 0.5).dtype == np.float32  # a Python number does not promote (torch)
    assert f(mg.tensor([1, 5], dtype=mg.int32), 2).dtype == np.int32
    assert f([1, 5], [0.5, 6.0]).dtype == np.float64
    out = f(a, v)
    out.backward()
    assert v.grad.dtype == np.float32


def test_where_promotes_like_add():
    v = Value(np.array([1.0], dtype=np.float32))
    c = Value([True], requires_grad=False)
    assert mg.where(c, np.array([0.5]), v).dtype == np.float64
    assert mg.where(c, v, np.array([0.5])).dtype == np.float64


# ---- split and chunk along a size-0 dim -------------------------------------------------


def test_split_and_chunk_of_an_empty_dim():
    x = Value(np.zeros((0, 3)))
    assert [p.shape for p in x.split(2)] == [(0, 3)]
    assert [p.shape for p in x.split(0)] == [(0, 3)]
    assert [p.shape for p in x.chunk(3)] == [(0, 3)] * 3
    assert [p.shape for p in mg.chunk(x, 2)] == [(0, 3)] * 2
    assert [p.shape for p in x.split(2, dim=1)] == [(0, 2), (0, 1)]
    with pytest.raises(ValueError, match="split"):
        Value(np.zeros(3)).split(0)


@pytest.mark.parametrize("n,chunks", [(0, 2), (5, 4), (6, 4), (2, 4), (1, 1), (7, 3)])
def test_split_and_chunk_match_torch(n, chunks):
    torch = pytest.importorskip("torch")
    t = torch.zeros(n, 2)
    x = Value(np.zeros((n, 2)))
    assert [p.shape for p in x.chunk(chunks)] == [tuple(p.shape) for p in t.chunk(chunks)]
    assert [p.shape for p in x.split(chunks)] == [tuple(p.shape) for p in t.split(chunks)]


# ---- optimizers: 0-d parameters survive a state round trip, and AMSGrad ------------------

OPTIMIZERS = {
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "adam": ("Adam", dict(lr=0.1)),
    # beta2 = 0.5 lets the second moment fall, so AMSGrad's maximum differs from it.
    "adam_amsgrad": ("Adam", dict(lr=0.1, betas=(0.9, 0.5), amsgrad=True, weight_decay=0.1)),
    "adamw": ("AdamW", dict(lr=0.1)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.1, betas=(0.9, 0.5), amsgrad=True)),
}


def _train(make_param, opt_cls, kw, round_trips, steps=6):
    """Runs `steps` steps on sin(i)·sum(w³), rebuilding the optimizer from its state_dict at
    each step in `round_trips`."""
    w = make_param()
    opt = opt_cls([w], **kw)
    for i in range(steps):
        opt.zero_grad()
        ((w * w * w).sum() * math.sin(i + 1)).backward()
        opt.step()
        if i in round_trips:
            sd = opt.state_dict()
            opt = opt_cls([w], **kw)
            opt.load_state_dict(sd)
    return w, opt


@pytest.mark.parametrize("shape", [(), (3,)], ids=["0d", "1d"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_state_round_trip(name, shape):
    cls, kw = OPTIMIZERS[name]
    opt_cls = getattr(mg.optim, cls)

    def make():
        return Value(np.full(shape, 0.7))

    ref, _ = _train(make, opt_cls, kw, round_trips=())
    got, opt = _train(make, opt_cls, kw, round_trips=(1, 2, 4))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=0, atol=0)
    for k, v in opt.state_dict()["state"][0].items():
        if isinstance(v, np.ndarray):
            assert v.shape == shape, k


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch(name):
    torch = pytest.importorskip("torch")
    cls, kw = OPTIMIZERS[name]
    w, _ = _train(lambda: Value(np.array([0.7, -0.3, 1.2])), getattr(mg.optim, cls), kw, (2,))
    tw = torch.tensor([0.7, -0.3, 1.2], dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, cls)([tw], **kw)
    for i in range(6):
        opt.zero_grad()
        ((tw * tw * tw).sum() * math.sin(i + 1)).backward()
        opt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_amsgrad_fixed_values():
    # Adam(amsgrad) on f = sin(i)·w³ from w = 0.7, six steps (PyTorch 2.13's result).
    kw = dict(lr=0.1, betas=(0.9, 0.5), amsgrad=True)
    w, opt = _train(lambda: Value(np.array([0.7])), mg.optim.Adam, kw, ())
    assert "max_exp_avg_sq" in opt.state_dict()["state"][0]
    np.testing.assert_allclose(w.numpy(), AMSGRAD_W, rtol=1e-12)
    w2, _ = _train(lambda: Value(np.array([0.7])), mg.optim.Adam, dict(kw, amsgrad=False), ())
    assert not np.allclose(w.numpy(), w2.numpy())


AMSGRAD_W = [0.34563540675463467]


# ---- integers at their limits ---------------------------------------------------------------


def test_int_arange_is_exact_past_2_53():
    big = 2**62 + 1
    assert mg.arange(big, big + 3).tolist() == [big, big + 1, big + 2]
    assert mg.arange(2**63 - 3, 2**63 - 1).tolist() == [2**63 - 3, 2**63 - 2]
    assert mg.arange(5, -2, -3).tolist() == [5, 2, -1]
    assert mg.arange(10, dtype=mg.int32).dtype == np.int32
    assert mg.arange(0, 5, -1).shape == (0,)
    assert mg.arange(3, dtype=mg.float32).dtype == np.float32
    with pytest.raises(ValueError, match="arange"):
        mg.arange(0, 5, 0)


@pytest.mark.parametrize("data", [[2**63], [-(2**63) - 1], [1, 2**64],
                                  np.array([2**63], dtype=np.uint64)],
                         ids=["2**63", "-2**63-1", "2**64", "uint64_array"])
def test_tensor_refuses_ints_past_int64(data):
    with pytest.raises(ValueError, match="int64"):
        mg.tensor(data)


def test_int_arange_cannot_require_grad():
    with pytest.raises(mg.GradError):
        mg.arange(3, requires_grad=True)
    assert mg.arange(3.0, requires_grad=True).requires_grad


def test_tensor_keeps_int64_extremes():
    assert mg.tensor([2**63 - 1, -(2**63)]).tolist() == [2**63 - 1, -(2**63)]


@pytest.mark.parametrize("fill", [math.nan, math.inf, -math.inf, 1e30])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_full_refuses_floats_an_int_cannot_hold(fill, dtype):
    with pytest.raises(ValueError, match="full"):
        mg.full((2,), fill, dtype=dtype)
    assert mg.full((2,), 2.7, dtype=dtype).tolist() == [2, 2]  # truncates, as torch


def test_where_refuses_an_int_branch_that_does_not_fit():
    c = mg.tensor([True, False])
    a = mg.tensor([1, 2], dtype=mg.int32)
    with pytest.raises(ValueError, match="int32"):
        mg.where(c, a, 2**40)
    assert mg.where(c, a, 7).tolist() == [1, 7] and mg.where(c, a, 7).dtype == np.int32


# ---- where integer indices put their dims (torch's rule, not numpy's) -----------------------

PLACEMENT = {
    "int_slice_array": (lambda x, i: x[1, :, i], (2, 3, 4)),
    "array_int_array": (lambda x, i: x[i, 1, i], (2, 3, 4)),
    "slice_int_slice_array": (lambda x, i: x[:, 1, :, i], (2, 3, 4, 5)),
    "slice_array_int": (lambda x, i: x[:, i, 1], (2, 3, 4)),
    "int_array_slice": (lambda x, i: x[1, i, :], (2, 3, 4)),
    "array_slice_array": (lambda x, i: x[i, :, i], (2, 3, 4)),
}
PLACEMENT_SHAPES = {
    "int_slice_array": (3, 2),
    "array_int_array": (2,),
    "slice_int_slice_array": (2, 4, 2),
    "slice_array_int": (2, 2),
    "int_array_slice": (2, 4),
    "array_slice_array": (2, 3),
}


@pytest.mark.parametrize("name", list(PLACEMENT))
def test_int_beside_arrays_selects_first(name):
    f, shape = PLACEMENT[name]
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    x = Value(a)
    y = f(x, mg.tensor([0, 1]))
    assert y.shape == PLACEMENT_SHAPES[name]
    y.sum().backward()
    assert x.grad.sum() == y.size  # each picked element got its gradient once


@pytest.mark.parametrize("name", list(PLACEMENT))
def test_int_beside_arrays_matches_torch(name):
    torch = pytest.importorskip("torch")
    f, shape = PLACEMENT[name]
    a = np.arange(math.prod(shape), dtype=np.float64).reshape(shape)
    want = f(torch.tensor(a), torch.tensor([0, 1])).numpy()
    got = f(Value(a), mg.tensor([0, 1])).numpy()
    np.testing.assert_array_equal(got, want)


def test_int_beside_arrays_is_not_numpys_placement():
    a = np.arange(120.0).reshape(2, 3, 4, 5)
    i = np.array([0, 1])
    assert a[:, 1, :, i].shape == (2, 2, 4)  # numpy moves the array's dim to the front
    assert Value(a)[:, 1, :, mg.tensor(i)].shape == (2, 4, 2)
    assert Value(a)[:, 1, :, i].shape == (2, 4, 2)
