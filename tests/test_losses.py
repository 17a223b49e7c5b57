"""The PyTorch loss options: weight, ignore_index, label_smoothing, pos_weight, (N, C, d1, ...).

Three kinds of test: against torch (skipped without it; float64 and float32, forward and the
gradients of the input and, where torch gives one, of the target), fixed values computed by
hand (so CI without torch still checks the behaviour), errors, and finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mikagrad as mg
import mikagrad.functional as F
import mikagrad.nn as nn
from mikagrad import Value

C = 5
SHAPES = [(C,), (4, C), (3, C, 4), (2, C, 3, 2)]
SHAPE_IDS = ["C", "NC", "NCd", "NCdd"]
REDUCTIONS = ["mean", "sum", "none"]
DTYPES = [np.float64, np.float32]
DTYPE_IDS = ["f64", "f32"]
INF = math.inf


def rng(seed):
    return np.random.default_rng(seed)


def target_shape(shape):
    return () if len(shape) == 1 else shape[:1] + shape[2:]


def class_targets(shape, ignore, seed=0):
    """Class indices for input `shape`, and the ignore_index to pass (None: the default).

    ignore: "absent" (none ignored), "some" (some -100, torch's default ignore_index),
    "inside" (ignore_index=2, a real class), "all" (every target -100).
    """
    t = rng(seed).integers(0, C, size=target_shape(shape))
    if ignore == "absent":
        return t, None
    if ignore == "all":
        return np.full_like(t, -100), None
    if ignore == "inside":
        t.reshape(-1)[::2] = 2
        return t, 2
    if t.ndim == 0:  # a single target: "some" is the same as "all"
        return np.array(-100), None
    t.reshape(-1)[1::3] = -100
    return t, None


def probs(shape, seed=0):
    z = rng(seed).standard_normal(shape) * 2
    d = 0 if len(shape) == 1 else 1
    e = np.exp(z - z.max(axis=d, keepdims=True))
    return e / e.sum(axis=d, keepdims=True)


TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def against_torch(torch, dtype, mg_fn, torch_fn, x, target, grad_target=False, seed=0, **kw):
    """Runs both libraries on the same data; compares the loss and the gradients of the input
    (and of the target with `grad_target`). `kw` (weight, pos_weight) go to both as tensors."""
    tdt = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    xm = Value(np.asarray(x, dtype))
    xt = torch.tensor(np.asarray(x, dtype), requires_grad=True)
    if np.asarray(target).dtype.kind in "iu":
        tm, tt = mg.tensor(np.asarray(target, np.int64)), torch.tensor(np.asarray(target))
    else:
        arr = np.asarray(target, dtype)
        tm = mg.tensor(arr, requires_grad=grad_target)
        tt = torch.tensor(arr, requires_grad=grad_target)
    kwm = {k: (mg.tensor(np.asarray(v, dtype)) if isinstance(v, np.ndarray) else v)
           for k, v in kw.items()}
    kwt = {k: (torch.tensor(np.asarray(v, dtype)) if isinstance(v, np.ndarray) else v)
           for k, v in kw.items()}
    out_m = mg_fn(xm, tm, **kwm)
    out_t = torch_fn(xt, tt, **kwt)
    assert out_m.shape == tuple(out_t.shape)
    assert out_m.dtype == dtype
    tol = TOL[dtype]
    np.testing.assert_allclose(out_m.numpy(), out_t.detach().numpy(), **tol, err_msg="forward")
    w = rng(seed + 100).standard_normal(out_m.shape).astype(dtype)
    (out_m * mg.tensor(w)).sum().backward()
    (out_t * torch.tensor(w, dtype=tdt)).sum().backward()
    scale = max(1.0, float(np.nanmax(np.abs(xt.grad.numpy()), initial=0.0)))
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=tol["rtol"],
                               atol=tol["atol"] * scale, err_msg="input gradient")
    if grad_target:
        np.testing.assert_allclose(tm.grad, tt.grad.numpy(), rtol=tol["rtol"],
                                   atol=tol["atol"] * scale, err_msg="target gradient")
    return out_m


# ---- against torch: cross_entropy and nll_loss with class indices ------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore", ["absent", "some", "inside", "all"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_cross_entropy_class_indices_vs_torch(torch64, shape, reduction, weighted, ignore,
                                              label_smoothing, dtype):
    torch = torch64
    x = rng(1).standard_normal(shape) * 2
    t, ignore_index = class_targets(shape, ignore, seed=2)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    if weighted:
        kw["weight"] = rng(3).uniform(0.2, 2.0, C)
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    out = against_torch(torch, dtype, F.cross_entropy, torch.nn.functional.cross_entropy,
                        x, t, **kw)
    if ignore == "all" and reduction == "mean":
        assert math.isnan(out.item())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("ignore", ["absent", "some", "inside", "all"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_nll_loss_vs_torch(torch64, shape, reduction, weighted, ignore, dtype):
    torch = torch64
    d = 0 if len(shape) == 1 else 1
    z = rng(4).standard_normal(shape)
    logp = z - np.log(np.exp(z).sum(axis=d, keepdims=True))
    t, ignore_index = class_targets(shape, ignore, seed=5)
    kw: dict = dict(reduction=reduction)
    if weighted:
        kw["weight"] = rng(6).uniform(0.2, 2.0, C)
    if ignore_index is not None:
        kw["ignore_index"] = ignore_index
    against_torch(torch, dtype, F.nll_loss, torch.nn.functional.nll_loss, logp, t, **kw)


def test_nll_loss_of_any_floats_vs_torch(torch64):
    """nll_loss does not need log-probabilities: it picks and negates, as torch."""
    torch = torch64
    x = rng(7).standard_normal((3, C, 2)) * 10
    t = np.array([[0, 4], [-100, 3], [2, 2]])
    for reduction in REDUCTIONS:
        against_torch(torch, np.float64, F.nll_loss, torch.nn.functional.nll_loss, x, t,
                      reduction=reduction, weight=np.arange(1.0, C + 1))


def test_one_d_input_takes_a_target_of_shape_one_as_torch(torch64):
    """torch's forward accepts a (1,) target for a (C,) input (its backward then fails with a
    size mismatch); here it is the same as the 0-d target, gradient included."""
    torch = torch64
    x = rng(8).standard_normal(C)
    for reduction in REDUCTIONS:
        for fn, tfn in ((F.cross_entropy, torch.nn.functional.cross_entropy),
                        (F.nll_loss, torch.nn.functional.nll_loss)):
            out = fn(Value(x), np.array([3]), reduction=reduction)
            t_out = tfn(torch.tensor(x), torch.tensor([3]), reduction=reduction)
            assert out.shape == tuple(t_out.shape) == ()
            np.testing.assert_allclose(out.item(), t_out.item(), rtol=1e-12)
            xv = Value(x)
            fn(xv, np.array([3]), reduction=reduction).backward()
            xt = torch.tensor(x, requires_grad=True)
            tfn(xt, torch.tensor(3), reduction=reduction).backward()
            np.testing.assert_allclose(xv.grad, xt.grad.numpy(), rtol=1e-12)


# ---- against torch: cross_entropy with class probabilities ------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_cross_entropy_class_probabilities_vs_torch(torch64, shape, reduction, weighted,
                                                    label_smoothing, dtype):
    torch = torch64
    x = rng(9).standard_normal(shape) * 2
    p = probs(shape, seed=10)
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    if weighted:
        kw["weight"] = rng(11).uniform(0.2, 2.0, C)
    against_torch(torch, dtype, F.cross_entropy, torch.nn.functional.cross_entropy, x, p,
                  grad_target=True, **kw)


def test_cross_entropy_soft_targets_need_not_sum_to_one(torch64):
    torch = torch64
    x = rng(12).standard_normal((3, C))
    p = rng(13).uniform(0, 2, (3, C))
    against_torch(torch, np.float64, F.cross_entropy, torch.nn.functional.cross_entropy, x, p,
                  grad_target=True, label_smoothing=0.3, weight=np.linspace(0.5, 1.5, C))


# ---- against torch: binary cross-entropy ------------------------------------------------------

BCE_SHAPES = [(C,), (4, C), (2, 3, C)]
BCE_SHAPE_IDS = ["C", "NC", "NdC"]


def bce_extra(kind, shape, seed):
    """A weight or pos_weight: None, one per class of the last dim (C,), (1,), or full."""
    if kind is None:
        return None
    size = {"C": (C,), "1": (1,), "full": shape}[kind]
    return rng(seed).uniform(0.2, 3.0, size)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("pos_weight", [None, "C", "1"], ids=["no_pw", "pw_C", "pw_1"])
@pytest.mark.parametrize("weight", [None, "C", "full"], ids=["no_w", "w_C", "w_full"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", BCE_SHAPES, ids=BCE_SHAPE_IDS)
def test_bce_with_logits_vs_torch(torch64, shape, reduction, weight, pos_weight, dtype):
    torch = torch64
    x = rng(14).standard_normal(shape) * 3
    y = rng(15).uniform(0, 1, shape)
    y.reshape(-1)[::3] = 1.0
    y.reshape(-1)[1::3] = 0.0
    kw: dict = dict(reduction=reduction)
    if weight is not None:
        kw["weight"] = bce_extra(weight, shape, 16)
    if pos_weight is not None:
        kw["pos_weight"] = bce_extra(pos_weight, shape, 17)
    against_torch(torch, dtype, F.binary_cross_entropy_with_logits,
                  torch.nn.functional.binary_cross_entropy_with_logits, x, y,
                  grad_target=True, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("weight", [None, "C", "1", "full"], ids=["no_w", "w_C", "w_1", "w_full"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", BCE_SHAPES, ids=BCE_SHAPE_IDS)
def test_bce_vs_torch(torch64, shape, reduction, weight, dtype):
    torch = torch64
    p = rng(18).uniform(0.05, 0.95, shape)
    y = rng(19).uniform(0, 1, shape)
    y.reshape(-1)[::2] = 1.0
    kw: dict = dict(reduction=reduction)
    if weight is not None:
        kw["weight"] = bce_extra(weight, shape, 20)
    against_torch(torch, dtype, F.binary_cross_entropy,
                  torch.nn.functional.binary_cross_entropy, p, y, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_with_logits_infinite_logits_vs_torch(torch64, dtype):
    """torch: x=+inf, y=0 gives inf (grad 1); x=-inf, y=1 gives nan (grad -1, or -pos_weight);
    x=+inf, y=1 and x=-inf, y=0 give nan (0 * inf) with grad 0."""
    torch = torch64
    x = np.array([INF, -INF, INF, -INF, 30.0, -30.0, 1000.0, -1000.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    for pw in (None, np.array([2.5])):
        kw = {} if pw is None else {"pos_weight": pw}
        for reduction in REDUCTIONS:
            against_torch(torch, dtype, F.binary_cross_entropy_with_logits,
                          torch.nn.functional.binary_cross_entropy_with_logits, x, y,
                          reduction=reduction, **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_logsigmoid_vs_torch(torch64, dtype):
    torch = torch64
    x = np.array([-INF, -1000.0, -30.0, -1.0, -1e-30, 0.0, 1e-30, 1.0, 30.0, 1000.0, INF])
    against_torch(torch, dtype, lambda v, _: F.logsigmoid(v),
                  lambda v, _: torch.nn.functional.logsigmoid(v), x, np.zeros(1))


# ---- fixed values (no torch needed) -----------------------------------------------------------

LOG2 = math.log(2.0)
SP2 = math.log1p(math.exp(-2.0))  # softplus(-2) = -log_softmax([2, 0])[0]


def test_cross_entropy_default_ignore_index_is_minus_100():
    x = Value([[2.0, 0.0], [5.0, -3.0], [1.0, 1.0]])
    loss = F.cross_entropy(x, [0, -100, 1])
    np.testing.assert_allclose(loss.item(), (SP2 + LOG2) / 2, rtol=1e-12)
    loss.backward()
    np.testing.assert_array_equal(x.grad[1], [0.0, 0.0])
    np.testing.assert_allclose(x.grad[2], [0.25, -0.25], rtol=1e-12)
    none = F.cross_entropy(Value([[2.0, 0.0], [5.0, -3.0]]), mg.tensor([0, -100]),
                           reduction="none")
    np.testing.assert_allclose(none.tolist(), [SP2, 0.0], rtol=1e-12)


def test_nll_loss_weighted_mean_divides_by_the_weights_kept():
    logp = Value([[-0.5, -1.0], [-2.0, -0.1], [-0.7, -0.7]])
    w = [1.0, 3.0]
    # (1 * 0.5 + 3 * 0.1) / (1 + 3); the third target is ignored
    np.testing.assert_allclose(F.nll_loss(logp, [0, 1, -100], weight=w).item(), 0.2,
                               rtol=1e-12)
    np.testing.assert_allclose(F.nll_loss(logp, [0, 1, 1], weight=w, ignore_index=1).item(),
                               0.5, rtol=1e-12)
    np.testing.assert_allclose(
        F.nll_loss(logp, [0, 1, -100], weight=w, reduction="none").tolist(), [0.5, 0.3, 0.0],
        rtol=1e-12)
    np.testing.assert_allclose(F.nll_loss(logp, [0, 1, -100], weight=w, reduction="sum").item(),
                               0.8, rtol=1e-12)


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll"])
def test_every_target_ignored_gives_nan_mean_and_zero_grad(fn):
    x = Value([[1.0, 2.0], [3.0, 4.0]])
    loss = fn(x, [-100, -100])
    assert math.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 2)))
    assert fn(Value([[1.0, 2.0]]), [-100], reduction="sum").item() == 0.0
    assert math.isnan(F.cross_entropy(Value([[1.0, 2.0]]), [-100], label_smoothing=0.2).item())


def test_label_smoothing_on_two_classes():
    # target 0 with smoothing 0.1 is the distribution [0.95, 0.05]:
    # -(0.95 * logp0 + 0.05 * logp1) with logp0 = -SP2, logp1 = -2 - SP2
    x = [[2.0, 0.0]]
    expect = SP2 + 0.05 * 2.0
    np.testing.assert_allclose(F.cross_entropy(Value(x), [0], label_smoothing=0.1).item(),
                               expect, rtol=1e-12)
    np.testing.assert_allclose(
        F.cross_entropy(Value(x), mg.tensor([[1.0, 0.0]]), label_smoothing=0.1).item(),
        expect, rtol=1e-12)
    # smoothing 1.0: the uniform target, whatever the class index
    for t in (0, 1):
        np.testing.assert_allclose(F.cross_entropy(Value(x), [t], label_smoothing=1.0).item(),
                                   SP2 + 1.0, rtol=1e-12)
    # its gradient is softmax - q
    v = Value(x)
    F.cross_entropy(v, [0], label_smoothing=0.1).backward()
    s0 = 1 / (1 + math.exp(-2.0))
    np.testing.assert_allclose(v.grad, [[s0 - 0.95, (1 - s0) - 0.05]], rtol=1e-12)


def test_label_smoothing_with_weight_and_ignore_index():
    # logits [0, 0]: logp = [-log2, -log2]. Target 1 with weight [1, 3], smoothing 0.5, mean:
    # torch's formula is 0.5 * nll + (0.5 / 2) * smooth, where nll = 3 log2 / 3 and
    # smooth = (1 + 3) log2 / 3 (both divided by the weight of the target kept).
    x = Value([[0.0, 0.0], [7.0, -7.0]])
    loss = F.cross_entropy(x, [1, -100], weight=[1.0, 3.0], label_smoothing=0.5)
    np.testing.assert_allclose(loss.item(), (0.5 + 1 / 3) * LOG2, rtol=1e-12)
    summed = F.cross_entropy(x, [1, -100], weight=[1.0, 3.0], label_smoothing=0.5,
                             reduction="sum")
    np.testing.assert_allclose(summed.item(), (0.5 * 3 + 0.25 * 4) * LOG2, rtol=1e-12)


def test_class_probabilities_mean_divides_by_n_times_d():
    x = Value(np.zeros((2, 2, 3)))  # logp = -log2 everywhere
    p = np.zeros((2, 2, 3))
    p[:, 0] = 1.0
    w = [2.0, 1.0]  # class 0 weighs 2: each of the 6 positions adds 2 log2
    np.testing.assert_allclose(F.cross_entropy(x, p, weight=w).item(), 2 * LOG2, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(x, p, weight=w, reduction="sum").item(),
                               12 * LOG2, rtol=1e-12)
    assert F.cross_entropy(x, p, reduction="none").shape == (2, 3)


def test_class_probability_target_gets_a_gradient():
    x = Value([[2.0, 0.0]])
    p = mg.tensor([[0.3, 0.7]], requires_grad=True)
    F.cross_entropy(x, p).backward()
    np.testing.assert_allclose(p.grad, [[SP2, 2.0 + SP2]], rtol=1e-12)  # -logp


def test_k_dim_cross_entropy_is_the_flattened_one():
    x = rng(21).standard_normal((2, 3, 4, 5))
    t = rng(22).integers(0, 3, (2, 4, 5))
    t[0, 1, 2] = -100
    w = [0.5, 1.0, 2.0]
    flat_x = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    for reduction in REDUCTIONS:
        a = F.cross_entropy(Value(x), t, weight=w, reduction=reduction, label_smoothing=0.2)
        b = F.cross_entropy(Value(flat_x), t.reshape(-1), weight=w, reduction=reduction,
                            label_smoothing=0.2)
        np.testing.assert_allclose(a.numpy().reshape(-1), b.numpy().reshape(-1), rtol=1e-12)


def test_one_d_input_and_zero_d_target():
    x = Value([2.0, 0.0])
    np.testing.assert_allclose(F.cross_entropy(x, 0).item(), SP2, rtol=1e-12)
    np.testing.assert_allclose(F.nll_loss(x, mg.tensor(1), weight=[1.0, 4.0],
                                          reduction="sum").item(), 0.0)
    ignored = F.cross_entropy(x, -100, reduction="none")
    assert ignored.shape == () and ignored.item() == 0.0
    assert math.isnan(F.cross_entropy(x, -100).item())


def test_pos_weight_scales_the_positive_term():
    x = Value([0.0, 0.0, 2.0])
    y = [1.0, 0.0, 1.0]
    loss = F.binary_cross_entropy_with_logits(x, y, pos_weight=[3.0], reduction="none")
    # y=1: 3 * softplus(-x); y=0: softplus(x), pos_weight does not enter
    np.testing.assert_allclose(loss.tolist(), [3 * LOG2, LOG2, 3 * SP2], rtol=1e-12)
    loss.sum().backward()
    # d/dx = (1 - y) - (1 + 2y) * sigmoid(-x)
    np.testing.assert_allclose(x.grad, [-1.5, 0.5, -3 / (1 + math.exp(2.0))], rtol=1e-12)


def test_pos_weight_broadcasts_over_the_last_dim():
    x = Value(np.zeros((2, 3)))
    y = np.ones((2, 3))
    loss = F.binary_cross_entropy_with_logits(x, y, pos_weight=[1.0, 2.0, 4.0],
                                              reduction="none")
    np.testing.assert_allclose(loss.numpy(), np.tile([1.0, 2.0, 4.0], (2, 1)) * LOG2,
                               rtol=1e-12)


def test_bce_with_logits_weight():
    x = Value([0.0, 0.0])
    loss = F.binary_cross_entropy_with_logits(x, [1.0, 0.0], weight=[2.0, 0.5],
                                              pos_weight=[3.0])
    np.testing.assert_allclose(loss.item(), (2 * 3 * LOG2 + 0.5 * LOG2) / 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_with_logits_infinite_logits(dtype):
    """torch's values at the edges: x=+inf, y=0 -> inf, grad 1; x=-inf, y=1 -> nan, grad -1
    (-pos_weight with it); the 'right' edges x=+inf, y=1 and x=-inf, y=0 -> nan (0 * inf),
    grad 0."""
    for pw, g1 in ((None, -1.0), ([2.0], -2.0)):
        x = Value(np.array([INF, -INF, INF, -INF], dtype))
        loss = F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0, 1.0, 0.0], dtype),
                                                  reduction="none", pos_weight=pw)
        out = loss.numpy()
        assert out[0] == INF and np.isnan(out[1:]).all()
        loss.sum().backward()
        np.testing.assert_array_equal(x.grad, np.array([1.0, g1, 0.0, 0.0], dtype))
        assert x.grad.dtype == dtype


def test_bce_with_logits_finite_large_logits():
    x = Value([1000.0, -1000.0])
    loss = F.binary_cross_entropy_with_logits(x, [0.0, 1.0], reduction="none")
    np.testing.assert_allclose(loss.tolist(), [1000.0, 1000.0])
    loss.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, -1.0])


def test_logsigmoid_fixed_values():
    x = Value([-INF, -1000.0, 0.0, 2.0, 1000.0, INF])
    out = F.logsigmoid(x)
    np.testing.assert_allclose(out.numpy(), [-INF, -1000.0, -LOG2, -SP2, 0.0, 0.0], rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.0, 0.5, 1 / (1 + math.exp(2.0)), 0.0, 0.0],
                               rtol=1e-12)
    assert "logsigmoid" in F.__all__


def test_bce_weight():
    p = Value([0.5, 0.5, 0.9])
    loss = F.binary_cross_entropy(p, [1.0, 0.0, 1.0], weight=[2.0, 0.0, 1.0], reduction="none")
    np.testing.assert_allclose(loss.tolist(), [2 * LOG2, 0.0, -math.log(0.9)], rtol=1e-12)
    m = F.binary_cross_entropy(Value(np.full((2, 3), 0.5)), np.ones((2, 3)), weight=[[1.0], [3.0]])
    np.testing.assert_allclose(m.item(), 2 * LOG2, rtol=1e-12)


def test_other_losses_still_work():
    np.testing.assert_allclose(F.mse_loss(Value([1.0, 2.0]), [0.0, 0.0]).item(), 2.5)
    np.testing.assert_allclose(F.l1_loss(Value([1.0, 2.0]), [0.0, 4.0], reduction="sum").item(),
                               3.0)
    loss = mg.nn.CrossEntropyLoss()(Value([[2.0, 0.0], [0.0, 2.0]]), [0, 1])
    np.testing.assert_allclose(loss.item(), SP2, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_float32_in_float32_out(dtype):
    x = Value(np.zeros((2, 3, 2), dtype))
    t = np.array([[0, -100], [2, 1]])
    for loss in (F.cross_entropy(x, t, weight=np.ones(3, dtype), label_smoothing=0.1),
                 F.cross_entropy(x, np.full((2, 3, 2), 1 / 3, dtype), label_smoothing=0.1),
                 F.nll_loss(x, t, reduction="none"),
                 F.binary_cross_entropy_with_logits(x, np.ones((2, 3, 2), dtype),
                                                    pos_weight=np.ones(2, dtype)),
                 F.logsigmoid(x)):
        assert loss.dtype == dtype


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("shape, target, bad", [
    ((3, 4), [0, 4, 1], 4),
    ((3, 4), [0, -1, 1], -1),
    ((2, 4, 2), [[0, 1], [2, 7]], 7),
    ((4,), 9, 9),
], ids=["too_big", "negative", "k_dim", "one_d"])
def test_out_of_range_class_index_raises_index_error(fn, shape, target, bad):
    with pytest.raises(IndexError) as e:
        fn(Value(np.zeros(shape)), target)
    msg = str(e.value)
    assert fn.__name__ in msg and str(bad) in msg and "4 classes" in msg


@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll_loss"])
def test_minus_100_is_out_of_range_when_another_index_is_ignored(fn):
    with pytest.raises(IndexError, match="-100"):
        fn(Value(np.zeros((2, 3))), [-100, 0], ignore_index=1)
    # ... and an ignore_index inside the range still needs the other targets in range
    with pytest.raises(IndexError, match="3"):
        fn(Value(np.zeros((2, 3))), [1, 3], ignore_index=1)


def shape_error(fn, *parts):
    with pytest.raises(mg.ShapeError) as e:
        fn()
    for p in parts:
        assert p in str(e.value), f"{p!r} not in {str(e.value)!r}"


@pytest.mark.parametrize("case", [
    (lambda: F.cross_entropy(Value(np.zeros((2, 3, 4))), np.zeros((2, 3), np.int64)),
     ("cross_entropy", "(2, 3, 4)", "(2, 3)", "(2, 4)")),
    (lambda: F.nll_loss(Value(np.zeros((2, 3, 4, 5))), np.zeros((2, 5, 4), np.int64)),
     ("nll_loss", "(2, 3, 4, 5)", "(2, 5, 4)")),
    (lambda: F.nll_loss(Value(np.zeros(3)), [0, 1]), ("nll_loss", "(3,)", "(2,)")),
    (lambda: F.cross_entropy(Value(1.0), 0), ("cross_entropy", "()")),
    (lambda: F.cross_entropy(Value(np.zeros((2, 3))), [0, 1], weight=[1.0, 2.0]),
     ("cross_entropy", "(2, 3)", "(2,)")),
    (lambda: F.nll_loss(Value(np.zeros((2, 3))), [0, 1], weight=np.ones((3, 1))),
     ("nll_loss", "(2, 3)", "(3, 1)")),
    (lambda: F.cross_entropy(Value(np.zeros((2, 3))), np.full((2, 3), 1 / 3), weight=[1.0]),
     ("cross_entropy", "(2, 3)", "(1,)")),
    (lambda: F.binary_cross_entropy_with_logits(Value(np.zeros((2, 3))), np.zeros((2, 3)),
                                                pos_weight=[1.0, 2.0]),
     ("binary_cross_entropy_with_logits", "pos_weight", "(2,)", "(2, 3)")),
    (lambda: F.binary_cross_entropy_with_logits(Value(np.zeros((2, 3))), np.zeros((2, 3)),
                                                weight=np.ones((4, 2, 3))),
     ("binary_cross_entropy_with_logits", "weight", "(4, 2, 3)", "(2, 3)")),
    (lambda: F.binary_cross_entropy_with_logits(Value(np.zeros((2, 3))), np.zeros(3)),
     ("binary_cross_entropy_with_logits", "(2, 3)", "(3,)")),
    (lambda: F.binary_cross_entropy(Value(np.full((2, 3), 0.5)), np.zeros((2, 3)),
                                    weight=[1.0, 2.0]),
     ("binary_cross_entropy", "weight", "(2,)", "(2, 3)")),
], ids=["ce_k_dim_target", "nll_k_dim_target", "nll_one_d_target", "ce_0d_input", "ce_weight",
        "nll_weight_2d", "ce_probs_weight", "bce_logits_pos_weight", "bce_logits_weight_grows",
        "bce_logits_target", "bce_weight"])
def test_bad_shapes_raise_shape_error(case):
    fn, parts = case
    shape_error(fn, *parts)


@pytest.mark.parametrize("ls", [-0.1, 1.5, math.nan])
@pytest.mark.parametrize("target", [[0, 1], np.full((2, 3), 1 / 3)], ids=["indices", "probs"])
def test_label_smoothing_outside_zero_one_raises_value_error(ls, target):
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(Value(np.zeros((2, 3))), target, label_smoothing=ls)


@pytest.mark.parametrize("call", [
    lambda r: F.cross_entropy(Value(np.zeros((2, 3))), [0, 1], reduction=r),
    lambda r: F.cross_entropy(Value(np.zeros((2, 3))), np.full((2, 3), 1 / 3), reduction=r),
    lambda r: F.cross_entropy(Value(np.zeros((2, 3))), [0, 1], reduction=r, label_smoothing=0.1),
    lambda r: F.nll_loss(Value(np.zeros((2, 3))), [0, 1], reduction=r),
    lambda r: F.binary_cross_entropy(Value([0.5]), [1.0], reduction=r),
    lambda r: F.binary_cross_entropy_with_logits(Value([0.5]), [1.0], reduction=r),
    lambda r: F.mse_loss(Value([0.5]), [1.0], reduction=r),
    lambda r: F.l1_loss(Value([0.5]), [1.0], reduction=r),
], ids=["ce", "ce_probs", "ce_smoothing", "nll", "bce", "bce_logits", "mse", "l1"])
@pytest.mark.parametrize("reduction", ["avg", "MEAN", None])
def test_bad_reduction_raises_value_error(call, reduction):
    with pytest.raises(ValueError, match="reduction"):
        call(reduction)


def test_probability_targets_refuse_ignore_index_and_int_dtype():
    x = Value(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ignore_index"):
        F.cross_entropy(x, np.full((2, 3), 1 / 3), ignore_index=0)
    with pytest.raises(TypeError, match="floating point"):
        F.cross_entropy(x, np.zeros((2, 3), np.int64))


# ---- finite differences (float64) -------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_gradcheck_cross_entropy_class_indices(reduction, label_smoothing):
    x = rng(30).standard_normal((2, 3, 4)) * 2
    t = np.array([[0, 2, -100, 1], [2, 2, 1, 0]])
    w = [0.5, 1.0, 2.0]
    assert mg.gradcheck(lambda v: F.cross_entropy(v, t, weight=w, reduction=reduction,
                                                  label_smoothing=label_smoothing), x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_cross_entropy_class_probabilities(reduction):
    x = rng(31).standard_normal((2, 3, 2))
    p = probs((2, 3, 2), seed=32)
    w = [0.5, 1.0, 2.0]
    assert mg.gradcheck(lambda v, q: F.cross_entropy(v, q, weight=w, reduction=reduction,
                                                     label_smoothing=0.2), x, p)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_nll_loss_k_dim(reduction):
    x = rng(33).standard_normal((2, 3, 2, 2))
    t = np.array([[[0, 1], [2, 1]], [[-100, 0], [1, 2]]])
    assert mg.gradcheck(lambda v: F.nll_loss(v, t, weight=[3.0, 1.0, 0.5], reduction=reduction),
                        x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_bce_with_logits(reduction):
    x = rng(34).standard_normal((3, 4)) * 3
    y = rng(35).uniform(0, 1, (3, 4))
    pw = [0.5, 1.0, 2.0, 4.0]
    w = rng(36).uniform(0.2, 2.0, (3, 1))
    assert mg.gradcheck(lambda v, q: F.binary_cross_entropy_with_logits(
        v, q, weight=w, reduction=reduction, pos_weight=pw), x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_bce_weight(reduction):
    p = rng(37).uniform(0.1, 0.9, (3, 4))
    y = rng(38).uniform(0, 1, (3, 4))
    assert mg.gradcheck(lambda v: F.binary_cross_entropy(v, y, weight=[1.0, 2.0, 0.5, 3.0],
                                                         reduction=reduction), p)


def test_gradcheck_logsigmoid():
    assert mg.gradcheck(F.logsigmoid, rng(39).standard_normal(7) * 5)


def test_loss_modules_keep_float32_and_their_weights_out_of_parameters():
    x = Value(np.zeros((2, 2), np.float32))
    w = Value([1.0, 2.0])  # float64, requires grad
    for m in (nn.CrossEntropyLoss(weight=[1.0, 2.0]), nn.NLLLoss(weight=w)):
        assert m(x, [0, 1]).dtype == np.float32
        assert m.parameters() == [] and "weight" in m.state_dict()
    for m in (nn.BCELoss(weight=[1.0, 2.0]), nn.BCEWithLogitsLoss(pos_weight=w)):
        assert m(x.sigmoid(), np.ones((2, 2))).dtype == np.float32
        assert m.parameters() == []
    assert F.cross_entropy(x, [0, 1], weight=w).dtype == np.float32
