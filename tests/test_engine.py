"""The Value API and autograd semantics, one behaviour per test."""

import gc
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest
from helpers import check_op, numeric_grad, randn, uniform

import mikagrad as mg
from mikagrad.engine import Value

# ---- micrograd's worked examples, as frozen constants --------------------------------------


def test_micrograd_sanity_check():
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    assert y.item() == -20.0
    assert x.grad.item() == 46.0


def test_micrograd_more_ops():
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    # micrograd's README prints these to 4 places; the full values are from its scalar engine.
    assert f"{g.item():.4f}" == "24.7041"
    assert f"{a.grad.item():.4f}" == "138.8338"
    assert f"{b.grad.item():.4f}" == "645.5773"
    assert abs(g.item() - 24.70408163265306) < 1e-10
    assert abs(a.grad.item() - 138.83381924198252) < 1e-9
    assert abs(b.grad.item() - 645.5772594752186) < 1e-9


# ---- the original MikaGrad's cases, with finite differences as the oracle ------------------

SHAPES = [(), (7,), (3, 5), (2, 4, 3)]


def check_seeded_with_ones(fn, *arrays):
    """The original tests call out.backward() on a non-scalar output: the seed is ones."""
    values = [Value(np.array(a)) for a in arrays]
    out = fn(*values)
    out.backward()
    ones = np.ones(out.shape)
    for i, v in enumerate(values):
        np.testing.assert_allclose(v.grad, numeric_grad(fn, arrays, i, ones), atol=1e-5, rtol=1e-4)
    return out


ELEMENTARY = {
    "add": (lambda a, b: a + b, 0.0),
    "mul": (lambda a, b: a * b, 0.0),
    "div": (lambda a, b: a / b, 1.1),
    "sub": (lambda a, b: a - b, 0.0),
}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", list(ELEMENTARY))
def test_original_elementary(name, shape):
    fn, shift = ELEMENTARY[name]
    a = randn(shape, seed=1)
    b = np.abs(randn(shape, seed=2)) + shift if shift else randn(shape, seed=2)
    check_seeded_with_ones(fn, a, b)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_original_pow_scalar(shape):
    check_seeded_with_ones(lambda a: a**3.0, randn(shape, seed=3))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_original_neg(shape):
    check_seeded_with_ones(lambda a: -a, randn(shape, seed=4))


def test_original_add_broadcast():
    check_seeded_with_ones(
        lambda a, b: (a + b).sum(), randn((2, 3, 4), seed=5), randn((4,), seed=6)
    )


def test_original_dot():
    check_seeded_with_ones(lambda a, b: a.dot(b), randn((5,), seed=7), randn((5,), seed=8))


@pytest.mark.parametrize("m,n,p", [(3, 4, 2), (2, 5, 7)])
def test_original_matmul(m, n, p):
    check_seeded_with_ones(
        lambda a, b: (a @ b).sum(), randn((m, n), seed=9), randn((n, p), seed=10)
    )


def test_original_sum_keepdims():
    out = check_seeded_with_ones(lambda a: a.sum(axis=1, keepdims=True), randn((2, 3, 4), seed=11))
    assert out.shape == (2, 1, 4)


def test_original_relu():
    a = randn((6, 7), seed=12) - 0.5
    a = np.where(np.abs(a) < 0.05, 0.1, a)
    check_seeded_with_ones(lambda x: x.relu(), a)


@pytest.mark.parametrize("seed", [6, 8], ids=["positive", "negative"])
def test_original_composite_and_zero_grad(seed):
    a_np, b_np, c_np = np.random.default_rng(seed).standard_normal((3, 4))
    a, b, c = Value(a_np), Value(b_np), Value(c_np)
    mid = (a * b + c).dot(b) / 3
    expr = mid.relu()
    assert abs(mid.item()) > 0.5  # away from relu's kink
    expr.backward()

    def fn(x, y, z):
        return ((x * y + z).dot(y) / 3).relu()

    for i, v in enumerate((a, b, c)):
        np.testing.assert_allclose(
            v.grad, numeric_grad(fn, [a_np, b_np, c_np], i, np.ones(())), atol=1e-5, rtol=1e-4
        )

    expr.zero_grad()  # zeros every grad in the graph behind expr
    for v in (expr, mid, a, b, c):
        assert v.grad is not None and np.all(v.grad == 0), "zero_grad failed"
    for v in (expr, a, b, c):  # and each Value's own zero_grad, as in the original test
        v.zero_grad()
        assert np.all(v.grad == 0)


# ---- backward semantics ---------------------------------------------------------------------


def test_backward_twice_doubles_exactly():
    # micrograd's issue 53: a second call must not re-propagate stale intermediate grads
    x = Value(np.array([0.3, -1.2, 2.0]))
    a = x * x
    b = a.exp() + a * x
    out = (b * a).sum()
    out.backward()
    nodes = {"x": x, "a": a, "b": b, "out": out}
    first = {name: np.array(v.grad) for name, v in nodes.items()}
    out.backward()
    for name, v in nodes.items():
        np.testing.assert_array_equal(v.grad, 2 * first[name], err_msg=name)


def test_shared_intermediate_grads_stay_independent():
    # `a + b` hands one gradient to both operands; the intermediates keep it without a copy,
    # so zeroing or accumulating one must never show through another or through a leaf.
    x = Value(np.array([1.0, 2.0]))
    a, b = x * 2.0, x * 3.0
    out = (a + b).sum()
    out.backward(retain_graph=True)
    a_grad, x_grad = a.grad, x.grad
    a.zero_grad()  # a's graph: a and x, not b
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    np.testing.assert_array_equal(a_grad, [1.0, 1.0])  # replaced, not zeroed in place
    np.testing.assert_array_equal(x_grad, [0.0, 0.0])  # a leaf is zeroed in place
    out.backward()
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])
    np.testing.assert_array_equal(x_grad, [5.0, 5.0])  # and accumulates in place


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_operand_gets_a_contiguous_gradient(dtype):
    # x @ W.T (Linear's product): W.grad is computed in W's own layout, as torch's mm backward.
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    g = rng.standard_normal((5, 3)).astype(dtype)
    x, w = mg.tensor(xs, requires_grad=True), mg.tensor(ws, requires_grad=True)
    (x @ w.T).backward(mg.tensor(g))
    assert np.asarray(w.grad).flags.c_contiguous
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w.grad, g.T @ xs, rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad, g @ ws, rtol=tol, atol=tol)
    # then a transposed left operand (W.T @ y), and 3-D @ 2-D with a transposed weight
    y = mg.tensor(rng.standard_normal((3, 2)).astype(dtype), requires_grad=True)
    (w.T @ y).sum().backward()
    ys = np.asarray(y)
    np.testing.assert_allclose(w.grad, g.T @ xs + ys.sum(1)[:, None] * np.ones((1, 4), dtype),
                               rtol=tol, atol=tol)
    x3 = mg.tensor(rng.standard_normal((2, 5, 4)).astype(dtype), requires_grad=True)
    w.grad = None
    (x3 @ w.T).backward(mg.tensor(np.ones((2, 5, 3), dtype)))
    np.testing.assert_allclose(w.grad, np.ones((3, 10), dtype) @ np.asarray(x3).reshape(10, 4),
                               rtol=tol, atol=tol)


def test_intermediate_values_keep_their_grad():
    x, y = Value(np.array([1.0, 2.0])), Value(np.array([3.0, 4.0]))
    z = x * y
    out = z.sum()
    out.backward()
    np.testing.assert_array_equal(z.grad, [1.0, 1.0])
    assert out.grad.item() == 1.0
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_non_scalar_backward_seeds_ones():
    x = Value(randn((2, 3), seed=20))
    out = x * 3.0
    out.backward()
    np.testing.assert_array_equal(out.grad, np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 3.0))


def test_one_element_non_0d_output_seeds_one():
    x = Value(np.array([[2.0]]))
    out = x * x
    out.backward()
    np.testing.assert_array_equal(x.grad, [[4.0]])


def test_backward_with_explicit_gradient():
    x = Value(randn((2, 3), seed=21))
    seed = randn((2, 3), seed=22)
    (x * 3.0).backward(gradient=seed)
    np.testing.assert_allclose(x.grad, 3.0 * seed)
    y = Value(randn((2, 3), seed=23))
    (y * 2.0).backward(seed)  # positional, like torch
    np.testing.assert_allclose(y.grad, 2.0 * seed)


def test_reused_node_gets_both_contributions():
    x = Value(np.array([1.5, -2.0]))
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, -4.0])
    y = Value(np.array([1.5, -2.0]))
    (y + y).sum().backward()
    np.testing.assert_array_equal(y.grad, [2.0, 2.0])


def test_diamond_graph():
    def fn(x):
        a = x * 2.0 + 1.0
        return a * a + a.exp() * a

    check_op(fn, randn((4,), seed=24))


def test_broadcast_gradient_sums_back():
    x, b = Value(np.ones((2, 3))), Value(np.zeros(3))
    (x + b).sum().backward()
    np.testing.assert_array_equal(b.grad, [2.0, 2.0, 2.0])


def test_unused_input_gets_no_gradient():
    x, y = Value(np.array([1.0, 2.0])), Value(np.array([3.0, 4.0]))
    (x * 2).sum().backward()
    assert y.grad is None or np.all(y.grad == 0)


def test_constant_operand_gets_no_grad():
    x = Value(np.array([1.0, 2.0]))
    c = mg.tensor([3.0, 4.0])
    assert not c.requires_grad
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_zero_grad_then_backward_again_is_not_accumulated():
    x = Value(np.array([1.0, 2.0]))
    out = (x * x).sum()
    out.backward()
    out.zero_grad()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    out.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


# ---- grad mode -----------------------------------------------------------------------------


def test_no_grad_context():
    x = Value(np.array([1.0, 2.0]))
    with mg.no_grad():
        y = x * 2
        with mg.no_grad():
            z = y + 1
        w = z * x
    assert not y.requires_grad and not z.requires_grad and not w.requires_grad
    assert y._prev == () and w._prev == ()
    after = x * 2
    assert after.requires_grad and len(after._prev) >= 1


def test_no_grad_restores_grad_mode_after_an_exception():
    x = Value(np.array([1.0, 2.0]))
    with pytest.raises(ZeroDivisionError), mg.no_grad():
        raise ZeroDivisionError
    assert (x * 2).requires_grad


def test_no_grad_decorator():
    @mg.no_grad()
    def double(v):
        return v * 2

    x = Value(np.array([1.0, 2.0]))
    y = double(x)
    assert not y.requires_grad
    np.testing.assert_array_equal(y.data, [2.0, 4.0])
    assert (x * 2).requires_grad


def test_detach():
    x = Value(np.array([1.0, 2.0, 3.0]))
    d = x.detach()
    assert not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.data, x.data)
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0, 3.0])  # not 2x: d is a constant


def test_requires_grad_():
    t = mg.tensor([1.0, 2.0])
    assert not t.requires_grad
    assert t.requires_grad_() is t
    assert t.requires_grad
    (t * t).sum().backward()
    np.testing.assert_array_equal(t.grad, [2.0, 4.0])
    t.requires_grad_(False)
    assert not t.requires_grad


# ---- construction, attributes and conversions ---------------------------------------------


def test_aliases_and_factory():
    assert mg.Tensor is mg.Value is Value
    t = mg.tensor([[1, 2], [3, 4]])
    assert isinstance(t, Value) and not t.requires_grad
    assert mg.tensor([1.0], requires_grad=True).requires_grad
    assert Value(1.0).requires_grad  # micrograd's meaning
    assert not Value(1.0, requires_grad=False).requires_grad


@pytest.mark.parametrize(
    "x,shape",
    [
        (2.5, ()),
        (3, ()),
        ([1.0, 2.0], (2,)),
        ([[1, 2, 3], [4, 5, 6]], (2, 3)),
        (np.ones((2, 1, 3)), (2, 1, 3)),
        (np.array(4.0), ()),
        (np.float64(1.5), ()),
        ([], (0,)),
    ],
    ids=str,
)
def test_construction(x, shape):
    v = Value(x)
    assert v.shape == shape
    np.testing.assert_array_equal(v.data, np.asarray(x, dtype=np.float64))
    copy = Value(v)
    assert copy.shape == shape
    np.testing.assert_array_equal(copy.data, v.data)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.T,
        lambda a: a[:, ::2],
        lambda a: a[::-1],
        lambda a: a[1:, 1:],
        lambda a: np.asfortranarray(a),
        lambda a: np.broadcast_to(a[:1], a.shape),
        lambda a: a.T.astype(np.float32),
    ],
    ids=["transposed", "step", "reversed", "offset", "fortran", "broadcast", "f32_transposed"],
)
def test_construction_from_non_contiguous_numpy(make):
    a = make(np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(Value(a).data, a)
    np.testing.assert_array_equal(mg.tensor(a).data, a)
    x = Value(np.ones(a.shape))
    np.testing.assert_array_equal((x * a).data, a)
    np.testing.assert_array_equal((a + 0 * x).data, a)


def test_attributes():
    a = np.arange(24.0).reshape(2, 3, 4)
    v = Value(a)
    assert v.shape == (2, 3, 4) and isinstance(v.shape, tuple)
    assert v.ndim == 3
    assert v.size == 24 and isinstance(v.size, int)
    assert v.numel() == 24
    assert v.dtype == np.float64
    assert v.is_leaf and not (v * 1).is_leaf
    assert v.requires_grad
    m = Value(np.arange(6.0).reshape(2, 3))
    assert m.T.shape == (3, 2)
    np.testing.assert_array_equal(m.T.data, np.arange(6.0).reshape(2, 3).T)


def test_conversions():
    a = np.arange(6.0).reshape(2, 3)
    v = Value(a)
    assert Value(2.5).item() == 2.5 and isinstance(Value(2.5).item(), float)
    assert Value([[7.0]]).item() == 7.0
    assert v.tolist() == a.tolist()
    assert isinstance(v.numpy(), np.ndarray)
    np.testing.assert_array_equal(v.numpy(), a)
    arr = np.asarray(v)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64
    np.testing.assert_array_equal(arr, a)
    assert len(v) == 2
    rows = list(iter(v))
    assert len(rows) == 2
    for row, want in zip(rows, a):
        np.testing.assert_array_equal(np.asarray(row), want)
    assert [float(np.asarray(e)) for e in Value([1.0, 2.0, 3.0])] == [1.0, 2.0, 3.0]


def test_repr():
    r = repr(Value(2.5))
    assert "2.5" in r
    m = Value(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert "4" in repr(m)
    m.sum().backward()
    repr(m)
    str(m)


def test_data_shares_memory():
    v = Value(np.zeros(3))
    v.data[1] = 5.0
    assert v.data[1] == 5.0
    assert np.shares_memory(v.data, v.data)
    np.testing.assert_array_equal((v + 0).data, [0.0, 5.0, 0.0])


def test_data_update_in_place_like_the_seed_readme():
    p = Value(np.array([1.0, 2.0]))
    (p * p).sum().backward()
    view = p.data
    p.data -= 0.1 * p.grad
    np.testing.assert_allclose(p.data, [0.8, 1.6])
    np.testing.assert_allclose(view, [0.8, 1.6])  # in place, not rebound to a new array
    np.testing.assert_allclose((p * 1.0).data, [0.8, 1.6])


def test_scalar_parameter_update_in_place():
    p = Value(3.0)
    (p * p).backward()
    p.data -= 0.5 * p.grad
    assert p.item() == 0.0
    assert isinstance(p.data, Value) and np.shares_memory(np.asarray(p.data), p.numpy())


def test_grad_shares_memory():
    x = Value(np.array([1.0, 2.0]))
    (x * 3).sum().backward()
    x.grad[0] = 7.0
    assert x.grad[0] == 7.0


def test_graph_op_labels_and_parents():
    a, b = Value(np.array([2.0, 5.0])), Value(np.array([3.0, 7.0]))
    c = a * b
    assert isinstance(c._op, str) and c._op
    assert (c.op, c._op) == ("mul", "*")  # the op's name, and micrograd's symbol
    assert isinstance(c._prev, tuple) and len(c._prev) == 2
    assert len(c.parents) == 2
    for got, want in ((c._prev[0], a), (c._prev[1], b), (c.parents[0], a), (c.parents[1], b)):
        np.testing.assert_array_equal(got.data, want.data)  # in order
    d = b * a
    np.testing.assert_array_equal(d._prev[0].data, b.data)
    assert a._prev == () and isinstance(a._op, str)
    e = c + a
    assert e._op != c._op
    np.testing.assert_array_equal(e._prev[0]._prev[1].data, b.data)


def test_prev_gives_back_the_same_objects():
    # Hashing is by identity, so a walk over _prev can only deduplicate nodes if
    # _prev hands back the very objects the graph was built from.
    a, b = Value(2.0), Value(3.0)
    c = a * b
    assert c._prev[0] is a and c._prev[1] is b
    assert c.parents[0] is c._prev[0]
    e = c + a
    assert e._prev[0] is c and e._prev[0]._prev[0] is a


def test_micrograd_style_graph_walk():
    # micrograd's build_topo and draw_dot keep a set of visited nodes and walk `_prev`:
    # on a graph with a shared node, each node must be found once.
    x = Value(np.array([1.0, 2.0]))
    h = x * 2.0
    out = (h * h + h).sum()
    topo, visited = [], set()
    stack = [(out, False)]
    while stack:
        v, done = stack.pop()
        if done:
            topo.append(v)
        elif v not in visited:
            visited.add(v)
            stack.append((v, True))
            stack.extend((p, False) for p in v._prev)
    leaves = [v for v in topo if not v._prev]
    assert sum(v is x for v in topo) == 1 and any(v is x for v in leaves)
    assert len(topo) == len(visited)


# ---- dtype rules ----------------------------------------------------------------------------


def test_dtypes_are_numpy_dtypes():
    assert np.dtype(mg.float32) == np.float32 and np.dtype(mg.float64) == np.float64
    assert mg.get_default_dtype() == np.float64


@pytest.mark.parametrize(
    "x,dtype",
    [
        (np.ones(3, np.float32), np.float32),
        (np.ones(3, np.float64), np.float64),
        (np.arange(3), np.float64),
        (np.arange(3, dtype=np.int8), np.float64),
        (np.array([True, False]), np.float64),
        (1, np.float64),
        (True, np.float64),
        ([1, 2], np.float64),
        ([1.5, 2.5], np.float64),
    ],
    ids=[
        "f32",
        "f64",
        "int64",
        "int8",
        "bool",
        "int",
        "True",
        "int_list",
        "float_list",
    ],
)
def test_construction_dtype(x, dtype):
    v = Value(x)
    assert v.dtype == dtype
    np.testing.assert_array_equal(v.data, np.asarray(x).astype(dtype))


def test_dtype_argument():
    assert Value([1, 2], dtype=mg.float32).dtype == np.float32
    assert Value(np.ones(2), dtype=mg.float32).dtype == np.float32
    assert Value(np.ones(2, np.float32), dtype=mg.float64).dtype == np.float64
    assert mg.tensor([1.0], dtype=mg.float32).dtype == np.float32


def test_mixed_dtypes_promote_to_float64():
    a = Value(np.ones(3, np.float32))
    b = Value(np.ones(3, np.float64))
    out = a + b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert (a @ b).dtype == np.float64


def test_python_numbers_do_not_promote_float32():
    a = Value(np.ones(3, np.float32))
    for out in (a * 2.0, 2 * a, a + 1, 1.0 - a, a / 3.0, a**2, 2.0**a, -a):
        assert out.dtype == np.float32


def test_numpy_float32_scalars_keep_float32():
    assert Value(np.float32(2.0)).dtype == np.float32
    a = Value(np.ones(3, np.float32))
    assert (np.float32(2.0) * a).dtype == np.float32
    assert (a + np.float32(1.0)).dtype == np.float32


def test_float32_grads_are_float32():
    a = Value(np.ones((2, 3), np.float32))
    (a.exp() @ a.T).sum().backward()
    assert a.grad.dtype == np.float32


def test_set_default_dtype():
    mg.set_default_dtype(mg.float32)
    try:
        assert mg.get_default_dtype() == np.float32
        assert Value(1.0).dtype == np.float32
        assert Value([1, 2]).dtype == np.float32
        assert mg.tensor([[1.0]]).dtype == np.float32
        for v in (mg.zeros(2), mg.ones(2), mg.full((2,), 3.0), mg.rand(2), mg.randn(2), mg.eye(2)):
            assert v.dtype == np.float32
        assert Value(np.ones(2, np.float64)).dtype == np.float64  # numpy floats keep theirs
        from mikagrad.nn import MLP

        assert all(p.dtype == np.float32 for p in MLP(2, [3, 1]).parameters())
    finally:
        mg.set_default_dtype(mg.float64)
    assert Value(1.0).dtype == np.float64


# ---- creation functions -----------------------------------------------------------------------


def test_zeros_ones_full():
    for z in (mg.zeros(2, 3), mg.zeros((2, 3))):
        assert z.shape == (2, 3) and z.dtype == np.float64 and not z.requires_grad
        np.testing.assert_array_equal(z.data, np.zeros((2, 3)))
    assert mg.zeros(3, requires_grad=True).requires_grad
    assert mg.zeros(3, dtype=mg.float32).dtype == np.float32
    assert mg.zeros(()).shape == ()
    np.testing.assert_array_equal(mg.ones(2, 2).data, np.ones((2, 2)))
    np.testing.assert_array_equal(mg.full((2, 2), 7.0).data, np.full((2, 2), 7.0))
    assert mg.full((3,), 2, dtype=mg.float32).dtype == np.float32


def test_eye_arange_linspace():
    np.testing.assert_array_equal(mg.eye(3).data, np.eye(3))
    np.testing.assert_array_equal(mg.eye(2, 3).data, np.eye(2, 3))
    np.testing.assert_array_equal(mg.eye(3, m=2).data, np.eye(3, 2))
    np.testing.assert_array_equal(mg.arange(5).data, np.arange(5.0))
    np.testing.assert_array_equal(mg.arange(1, 5).data, np.arange(1.0, 5.0))
    np.testing.assert_allclose(mg.arange(0, 1, 0.25).data, np.arange(0, 1, 0.25))
    np.testing.assert_array_equal(mg.arange(5, 0, -2).data, np.arange(5.0, 0.0, -2.0))
    np.testing.assert_allclose(mg.linspace(0, 1, 5).data, np.linspace(0, 1, 5), rtol=1e-15)
    np.testing.assert_allclose(mg.linspace(-2, 3, 11).data, np.linspace(-2, 3, 11), rtol=1e-14)


def test_rand_randn():
    r = mg.rand(3, 4)
    assert r.shape == (3, 4) and not r.requires_grad
    assert np.all((r.data >= 0) & (r.data < 1))
    assert mg.rand((2, 2)).shape == (2, 2)
    n = mg.randn(20000).data
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1.0) < 0.05
    assert mg.randn(2, 3, requires_grad=True).requires_grad


def test_manual_seed_reproduces():
    mg.manual_seed(123)
    a, b = np.array(mg.rand(5).data), np.array(mg.randn(5).data)
    mg.manual_seed(123)
    np.testing.assert_array_equal(mg.rand(5).data, a)
    np.testing.assert_array_equal(mg.randn(5).data, b)
    mg.manual_seed(124)
    assert not np.array_equal(mg.rand(5).data, a)


def test_like_functions():
    x = Value(np.ones((2, 3), np.float32))
    for v in (
        mg.zeros_like(x),
        mg.ones_like(x),
        mg.full_like(x, 2.5),
        mg.rand_like(x),
        mg.randn_like(x),
    ):
        assert v.shape == (2, 3) and v.dtype == np.float32
    np.testing.assert_array_equal(mg.zeros_like(x).data, 0)
    np.testing.assert_array_equal(mg.ones_like(x).data, 1)
    np.testing.assert_array_equal(mg.full_like(x, 2.5).data, 2.5)


# ---- numpy interop, comparisons, hashing ------------------------------------------------


def test_numpy_first_operands_keep_the_graph():
    x = Value(randn((3, 2), seed=30))
    m = randn((4, 3), seed=31)
    for out in (m @ x, np.ones((3, 2)) + x, np.ones((3, 2)) - x, np.full((3, 2), 2.0) * x):
        assert isinstance(out, Value)
        assert out.requires_grad and len(out._prev) >= 1
    (m @ x).sum().backward()
    np.testing.assert_allclose(x.grad, m.T @ np.ones((4, 2)))


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
        lambda a, b: a == b,
        lambda a, b: a != b,
    ],
    ids=["lt", "le", "gt", "ge", "eq", "ne"],
)
def test_comparisons(op):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    for lhs, rhs, want in (
        (Value(a), Value(b), op(a, b)),
        (Value(a), 2.0, op(a, 2.0)),
        (2.0, Value(a), op(2.0, a)),
        (Value(a), b, op(a, b)),
    ):
        out = op(lhs, rhs)
        assert isinstance(out, Value)
        assert not out.requires_grad
        assert out.dtype == np.bool_
        np.testing.assert_array_equal(out.data, want)


def test_values_hash_by_identity():
    a, b = Value(1.0), Value(1.0)
    d = {a: "a", b: "b"}
    assert d[a] == "a" and d[b] == "b"
    assert len({a, b, a}) == 2
    assert hash(a) == hash(a)


# ---- gradcheck ----------------------------------------------------------------------------


def test_gradcheck_passes_on_correct_gradients():
    a = Value(randn((3, 4), seed=40))
    b = Value(randn((4, 2), seed=41))
    assert mg.gradcheck(lambda x, y: (x.tanh() @ y).sigmoid(), a, b) is True
    assert mg.gradcheck(lambda x: x.softmax(1).log(), Value(randn((2, 3), seed=42))) is True
    assert mg.gradcheck(
        lambda x: x.log(), Value(uniform((5,), 0.5, 2.0, seed=43)), eps=1e-6, atol=1e-5, rtol=1e-3
    )


def test_gradcheck_raises_on_a_wrong_gradient():
    # x * x.detach() has gradient x for autograd, but the true derivative is 2x
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(lambda x: x * x.detach(), Value(np.array([1.0, -2.0, 3.0])))
    # relu at its kink: finite differences see 0.5, autograd 0
    with pytest.raises(mg.GradcheckError):
        mg.gradcheck(lambda x: x.relu(), Value(np.array([0.0, 1.0])))


# ---- deep graphs and memory -----------------------------------------------------------------

CHAIN_SCRIPT = textwrap.dedent(
    """
    import gc, time, weakref
    from mikagrad.engine import Value

    n = 1_000_000
    t0 = time.perf_counter()
    x = Value(0.5)
    y = x
    for _ in range(n):
        y = y + 1.0
    t1 = time.perf_counter()
    y.backward()
    t2 = time.perf_counter()
    assert y.item() == 0.5 + n, y.item()
    assert x.grad.item() == 1.0, x.grad
    ref = weakref.ref(y)
    del y
    gc.collect()
    t3 = time.perf_counter()
    assert ref() is None
    print(f"OK build={t1 - t0:.2f}s backward={t2 - t1:.2f}s free={t3 - t2:.2f}s")
    """
)


def test_million_op_chain_backward():
    # In a subprocess, so that a stack overflow in backward or in freeing the chain
    # fails this test instead of killing the whole run.
    proc = subprocess.run(
        [sys.executable, "-c", CHAIN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "RecursionError" not in proc.stderr
    assert proc.stdout.startswith("OK"), proc.stdout


def test_deep_chain_in_process():
    x = Value(np.array([1.0, 2.0]))
    y = x
    for _ in range(20_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_graph_is_freed():
    x = Value(np.ones(3))
    h = x * 2.0
    out = (h.exp() * x).sum()
    out.backward()
    refs = [weakref.ref(v) for v in (x, h, out)]
    del x, h, out
    gc.collect()
    assert all(r() is None for r in refs)
