"""A reference harness for every op: forward against numpy, backward against finite differences.

`check_op` builds float64 Values, checks the forward pass against a numpy reference,
reduces the output with random weights (so the whole Jacobian is exercised, not only
its column sums), and compares each input's `.grad` with central differences.
`check_f32` checks that the float32 path agrees with float64 within float32 tolerance.
"""

import numpy as np

import mikagrad as mg
from mikagrad.engine import Value

EPS = 1e-6


# ---- input generators ------------------------------------------------------------------


def rng(seed=0):
    return np.random.default_rng(seed)


def randn(shape, seed=0, scale=1.0):
    return np.asarray(rng(seed).standard_normal(shape) * scale, dtype=np.float64)


def uniform(shape, low, high, seed=0):
    return np.asarray(rng(seed).uniform(low, high, size=shape), dtype=np.float64)


def avoid(x, points=(0.0,), margin=0.1):
    """Moves every element at least `margin` away from each kink in `points`."""
    x = np.array(x, dtype=np.float64)
    for p in points:
        near = np.abs(x - p) < margin
        side = np.where(x - p >= 0, 1.0, -1.0)
        x = np.where(near, p + side * margin, x)
    return x


def distinct(shape, seed=0, spacing=0.1, offset=0.0):
    """Values on a grid `spacing` apart, shuffled: no two elements tie (safe for max/min)."""
    n = int(np.prod(shape, dtype=np.int64))
    grid = (np.arange(n) - n // 2) * spacing + offset  # integer centring keeps grids disjoint
    return rng(seed).permutation(grid).reshape(shape).astype(np.float64)


def sum_to(g, shape):
    """Sums a broadcast gradient back to `shape` (numpy's broadcasting, undone)."""
    g = np.asarray(g, dtype=np.float64)
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for d, n in enumerate(shape):
        if n == 1 and g.shape[d] != 1:
            g = g.sum(axis=d, keepdims=True)
    return g.reshape(shape)


# ---- the harness ------------------------------------------------------------------------


def _weighted(out, w):
    return float(np.sum(np.asarray(out.data, dtype=np.float64) * w))


def numeric_grad(fn, arrays, i, w, eps=EPS):
    """Central differences of sum(fn(*arrays) * w) with respect to arrays[i], in float64."""
    base = [np.array(a, dtype=np.float64) for a in arrays]
    grad = np.zeros_like(base[i])
    flat = base[i].reshape(-1)  # a view: editing it perturbs base[i]
    gflat = grad.reshape(-1)

    def f():
        return _weighted(fn(*[Value(a.copy()) for a in base]), w)

    with mg.no_grad():
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            fp = f()
            flat[k] = orig - eps
            fm = f()
            flat[k] = orig
            gflat[k] = (fp - fm) / (2 * eps)
    return grad


def check_op(
    fn,
    *arrays,
    ref=None,
    atol=1e-5,
    rtol=1e-4,
    fwd_atol=1e-12,
    fwd_rtol=1e-10,
    eps=EPS,
    seed=1234,
    wrt=None,
    second=True,
):
    """Checks `fn` forward against `ref` (numpy) and backward against finite differences.

    `arrays` are float inputs; each becomes a float64 Value that requires grad. `wrt` lists
    the input positions whose gradients are checked (default: all). Returns the output.
    """
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    values = [Value(a.copy()) for a in arrays]
    out = fn(*values)
    assert isinstance(out, Value), f"expected a Value, got {type(out).__name__}"
    assert out.dtype == np.float64, f"float64 inputs gave {out.dtype}"
    if ref is not None:
        expected = np.asarray(ref(*[a.copy() for a in arrays]), dtype=np.float64)
        assert out.shape == expected.shape, f"shape {out.shape} != numpy's {expected.shape}"
        np.testing.assert_allclose(
            out.data, expected, rtol=fwd_rtol, atol=fwd_atol, err_msg="forward vs numpy"
        )

    w = np.asarray(rng(seed).standard_normal(out.shape), dtype=np.float64)
    (out * Value(w, requires_grad=False)).sum().backward()

    for i in range(len(arrays)) if wrt is None else wrt:
        got = values[i].grad
        assert got is not None, f"input {i} got no gradient"
        assert got.shape == arrays[i].shape, f"input {i}: grad shape {got.shape}"
        assert got.dtype == np.float64, f"input {i}: grad dtype {got.dtype}"
        expected = numeric_grad(fn, arrays, i, w, eps)
        np.testing.assert_allclose(
            got, expected, atol=atol, rtol=rtol, err_msg=f"grad of input {i} vs finite differences"
        )
    if second:
        check_second_order(fn, arrays, w, list(range(len(arrays))) if wrt is None else wrt,
                           atol=atol, rtol=rtol, eps=eps, seed=seed + 1)
    return out


def check_second_order(fn, arrays, w, wrt, atol=1e-5, rtol=1e-4, eps=EPS, seed=0):
    """The double backward, as torch's gradgradcheck: s = sum_i <v_i, d<w, fn>/dx_i> (the
    first gradients recorded with create_graph=True) is differentiated by autograd and by
    central differences, with respect to the inputs and to the output weights w (which
    checks the backward of a linear op's backward)."""
    v = [rng(seed + i).standard_normal(np.shape(arrays[i])) for i in wrt]

    def s_of(base, create):
        values = [Value(a.copy()) for a in base]
        gs = mg.autograd.grad((fn(*values[:-1]) * values[-1]).sum(),
                              [values[i] for i in wrt], create_graph=create,
                              materialize_grads=True)
        s = sum((g * Value(vi, requires_grad=False)).sum() for g, vi in zip(gs, v))
        return s, values

    base = [np.array(a, dtype=np.float64) for a in arrays] + [np.array(w, dtype=np.float64)]
    where = [*wrt, len(arrays)]
    s, values = s_of(base, True)
    autos = mg.autograd.grad(s, [values[i] for i in where], allow_unused=True) \
        if s.requires_grad else [None] * len(where)
    for i, auto in zip(where, autos):
        auto = np.zeros(base[i].shape) if auto is None else auto.numpy()
        num = np.zeros_like(base[i])
        flat, nflat = base[i].reshape(-1), num.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            hi = s_of(base, False)[0].item()
            flat[k] = orig - eps
            lo = s_of(base, False)[0].item()
            flat[k] = orig
            nflat[k] = (hi - lo) / (2 * eps)
        what = "the output weights" if i == len(arrays) else f"input {i}"
        np.testing.assert_allclose(auto, num, atol=atol, rtol=rtol,
                                   err_msg=f"second derivative in {what} vs finite differences")


def check_f32(fn, *arrays, rtol=2e-4, atol=2e-5, seed=4321, grads=True):
    """float32 inputs give float32 outputs and grads that agree with the float64 path."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    w = None
    results = {}
    for dtype in (np.float64, np.float32):
        values = [Value(a.astype(dtype)) for a in arrays]
        out = fn(*values)
        assert out.dtype == dtype, f"{np.dtype(dtype).name} inputs gave {out.dtype}"
        if w is None:
            w = np.asarray(rng(seed).standard_normal(out.shape))
        if grads:
            (out * Value(w.astype(dtype), requires_grad=False)).sum().backward()
        results[dtype] = (out, values)

    out64, v64 = results[np.float64]
    out32, v32 = results[np.float32]

    def close(a, b, what):
        b = np.asarray(b, dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
        np.testing.assert_allclose(
            np.asarray(a, dtype=np.float64), b, rtol=rtol, atol=atol * scale, err_msg=what
        )

    close(out32.data, out64.data, "float32 forward vs float64")
    if grads:
        for i, (a, b) in enumerate(zip(v32, v64)):
            assert a.grad is not None and a.grad.dtype == np.float32, f"input {i} grad dtype"
            close(a.grad, b.grad, f"float32 grad of input {i} vs float64")
    return out32
