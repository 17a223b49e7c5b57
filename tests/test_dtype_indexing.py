"""Integer and bool tensors as indices: masks, integer arrays, gather, index_select,
nn.Embedding, one_hot and class-index targets of cross_entropy / nll_loss.

A bool tensor indexes as a mask and an int64/int32 tensor as an integer array, anywhere numpy
allows. Every rule has a test with fixed values; the oracle tests also compare with torch
(skipped without it).
"""

import numpy as np
import pytest
from dtype_helpers import BOOL, F32, F64, I32, I64, expect, same_as_torch, t

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import Value, nn


def op_matches_torch(torch, name, dim, index):
    """``x.<name>(dim, index)`` on a (3, 4) tensor, and its gradient, match torch's."""
    data = np.arange(12.0).reshape(3, 4)
    x, tx = Value(data.copy()), torch.tensor(data, requires_grad=True)
    out = getattr(x, name)(dim, mg.tensor(index))
    tout = getattr(tx, name)(dim, torch.tensor(index))
    same_as_torch(out.detach(), tout)
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


# ---- bool masks ----------------------------------------------------------------------------


def test_detached_mask_selects_rather_than_gathers():
    # the bug being fixed: a detached comparison used to index as integers 0/1
    x = Value([-1.0, 2.0, -3.0, 4.0])
    expect(x[(x > 0).detach()], [2.0, 4.0], F64)


def test_comparison_mask_selects_and_grad_flows():
    x = Value([-1.0, 2.0, -3.0, 4.0])
    out = x[x > 0]
    expect(out.detach(), [2.0, 4.0], F64)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 1.0])


@pytest.mark.parametrize("make_mask", [
    lambda: mg.tensor([True, False, True, False]),
    lambda: Value(np.array([True, False, True, False]), requires_grad=False),
    lambda: mg.tensor([1, 0, 1, 0]).bool(),
    lambda: mg.tensor([1.0, 0.0, 5.0, 0.0]) != 0,
], ids=["tensor", "value_of_array", "cast", "comparison"])
def test_mask_tensor(make_mask):
    x = Value([-1.0, 2.0, -3.0, 4.0])
    expect(x[make_mask()], [-1.0, -3.0], F64)


def test_combined_mask():
    x = Value([-1.0, 2.0, -3.0, 4.0, 0.5])
    expect(x[(x > 0) & (x < 3)], [2.0, 0.5], F64)
    expect(x[(x < -2) | (x > 3)], [-3.0, 4.0], F64)
    expect(x[~(x > 0)], [-1.0, -3.0], F64)


def test_two_dimensional_mask():
    m = Value(np.arange(6.0).reshape(2, 3))
    out = m[m > 2]
    expect(out.detach(), [3.0, 4.0, 5.0], F64)
    (out * Value([1.0, 2.0, 3.0], requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(m.grad, [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])


def test_mask_on_the_leading_dim():
    m = Value([[0.0, 0.0], [1.0, 2.0], [0.0, 3.0]])
    out = m[m.sum(1) > 0]
    expect(out.detach(), [[1.0, 2.0], [0.0, 3.0]], F64)
    out.sum().backward()
    np.testing.assert_array_equal(m.grad, [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])


def test_mask_on_a_later_dim():
    x = Value(np.arange(6.0).reshape(2, 3))
    expect(x[:, t([True, False, True], BOOL)].detach(), [[0.0, 2.0], [3.0, 5.0]], F64)
    expect(x[t([False, True], BOOL), 1:].detach(), [[4.0, 5.0]], F64)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL, F32])
def test_mask_keeps_the_source_dtype(dtype):
    src = t([5, 0, 7], dtype)
    out = src[t([True, False, True], BOOL)]
    expect(out, np.array([5, 0, 7], dtype=dtype)[[0, 2]], dtype)
    assert out.requires_grad is False


def test_int_tensor_masked_by_its_own_comparison():
    i = mg.tensor([5, 6, 7])
    expect(i[i > 5], [6, 7], I64)


def test_all_false_mask_gives_empty():
    x = Value([1.0, 2.0])
    out = x[x > 10]
    assert out.shape == (0,) and out.dtype == F64


# ---- integer tensor indices ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [I64, I32])
def test_int_tensor_index(dtype):
    x = Value([10.0, 11.0, 12.0, 13.0])
    expect(x[t([2, 0], dtype)].detach(), [12.0, 10.0], F64)
    expect(x[t([-1, -4], dtype)].detach(), [13.0, 10.0], F64)
    expect(x[t([[0, 1], [3, 3]], dtype)].detach(), [[10.0, 11.0], [13.0, 13.0]], F64)


def test_0d_int_tensor_index_is_like_an_int():
    x = Value([10.0, 11.0, 12.0])
    expect(x[mg.tensor(2)].detach(), 12.0, F64)
    m = Value(np.arange(6.0).reshape(2, 3))
    expect(m[mg.tensor(1)].detach(), [3.0, 4.0, 5.0], F64)
    expect(m[mg.tensor(1), mg.tensor(2)].detach(), 5.0, F64)


def test_mixed_slice_and_int_tensor():
    x = Value(np.arange(12.0).reshape(3, 4))
    expect(x[:, t([3, 0], I64)].detach(), [[3.0, 0.0], [7.0, 4.0], [11.0, 8.0]], F64)
    expect(x[t([2], I32), 1:3].detach(), [[9.0, 10.0]], F64)
    expect(x[1, t([0, 2], I64)].detach(), [4.0, 6.0], F64)
    expect(x[..., t([1], I64)].detach(), [[1.0], [5.0], [9.0]], F64)


def test_two_int_tensors_pair_up():
    x = Value(np.arange(12.0).reshape(3, 4))
    expect(x[t([0, 2, 1], I64), t([3, 0, 0], I32)].detach(), [3.0, 8.0, 4.0], F64)


def test_repeated_indices_accumulate_grad():
    x = Value([1.0, 2.0, 3.0, 4.0])
    x[mg.tensor([0, 0, 1])].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 1.0, 0.0, 0.0])


def test_int_index_grad_on_2d():
    x = Value(np.zeros((2, 3)))
    (x[:, mg.tensor([2, 2, 0])] * Value([1.0, 10.0, 100.0], requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [[100.0, 0.0, 11.0], [100.0, 0.0, 11.0]])


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_int_index_keeps_the_source_dtype(dtype):
    src = t([[1, 0], [0, 1]], dtype)
    out = src[mg.tensor([1, 1, 0])]
    expect(out, np.array([[1, 0], [0, 1]], dtype=dtype)[[1, 1, 0]], dtype)
    assert out.requires_grad is False


# Each recipe indexes x (3, 4) using `lib`'s tensor constructor.
INDEX_RECIPES = {
    "mask_gt": lambda x, lib: x[x > 5],
    "mask_and": lambda x, lib: x[(x > 2) & (x < 9)],
    "mask_rows": lambda x, lib: x[x.sum(1) > 10],
    "mask_cols": lambda x, lib: x[:, lib.tensor([True, False, False, True])],
    "mask_rows_slice": lambda x, lib: x[lib.tensor([True, False, True]), 1:],
    "int_rows": lambda x, lib: x[lib.tensor([2, 0, 2])],
    "int_cols": lambda x, lib: x[:, lib.tensor([3, 1])],
    "int_neg": lambda x, lib: x[lib.tensor([-1, 0])],
    "int_pair": lambda x, lib: x[lib.tensor([0, 2]), lib.tensor([3, 3])],
    "int_2d": lambda x, lib: x[lib.tensor([[0, 1], [1, 2]])],
    "int_0d": lambda x, lib: x[lib.tensor(1)],
    "int_0d_and_slice": lambda x, lib: x[lib.tensor(2), :2],
    "int_broadcast": lambda x, lib: x[lib.tensor([[0], [2]]), lib.tensor([1, 3])],
    "int32_rows": lambda x, lib: x[lib.tensor(np.array([1, 1], dtype=np.int32))],
}


@pytest.mark.parametrize("name", list(INDEX_RECIPES))
def test_indexing_oracle(torch64, name):
    torch = torch64
    fn = INDEX_RECIPES[name]
    data = np.arange(12.0).reshape(3, 4)
    w = np.random.default_rng(0).standard_normal(64)
    x = Value(data.copy())
    tx = torch.tensor(data, requires_grad=True)
    out, tout = fn(x, mg), fn(tx, torch)
    same_as_torch(out.detach(), tout)
    (out * Value(w[: out.size].reshape(out.shape), requires_grad=False)).sum().backward()
    (tout * torch.tensor(w[: tout.numel()].reshape(tout.shape))).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


# ---- bad indices -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [
    lambda: mg.tensor([1.0]),
    lambda: mg.tensor([0.0, 1.0]),
    lambda: mg.tensor(1.0),
    lambda: Value([0.0, 1.0]),
    lambda: mg.tensor([0.0, 1.0]).float(),
], ids=["float_1", "float_2", "float_0d", "value", "float32"])
def test_float_tensor_as_index_raises_index_error(key):
    x = Value([1.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        x[key()]


@pytest.mark.parametrize("mask", [
    [True, False],
    [True, False, True, False],
    [[True, False, True]],
], ids=["short", "long", "extra_dim"])
def test_mask_of_the_wrong_shape_raises_index_error(mask):
    x = Value([1.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        x[mg.tensor(mask)]


def test_mask_on_leading_dim_must_match():
    x = Value(np.zeros((2, 3)))
    with pytest.raises(IndexError):
        x[mg.tensor([True, False, True])]


@pytest.mark.parametrize("idx", [[3], [-4], [0, 5], [[0], [9]]], ids=str)
@pytest.mark.parametrize("dtype", [I64, I32])
def test_out_of_range_int_tensor_raises_index_error(idx, dtype):
    x = Value([1.0, 2.0, 3.0])
    with pytest.raises(IndexError):
        x[t(idx, dtype)]


# ---- gather ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [I64, I32])
def test_gather_with_int_tensor(dtype):
    x = Value([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = x.gather(1, t([[2, 0], [1, 1]], dtype))
    expect(out.detach(), [[3.0, 1.0], [5.0, 5.0]], F64)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]])


def test_gather_along_dim0():
    x = Value([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    expect(x.gather(0, mg.tensor([[1, 0, 1]])).detach(), [[4.0, 2.0, 6.0]], F64)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_gather_keeps_the_source_dtype(dtype):
    src = t([[1, 0], [0, 1]], dtype)
    out = src.gather(1, mg.tensor([[1], [1]]))
    expect(out, np.array([[0], [1]], dtype=dtype), dtype)


def test_gather_oracle(torch64):
    idx = np.array([[3, 0, 0], [1, 1, 2], [0, 3, 3]])
    for dim, index in ((1, idx), (0, np.array([[2, 0, 1, 1], [0, 0, 2, 1]]))):
        op_matches_torch(torch64, "gather", dim, index)


@pytest.mark.parametrize("index", [
    lambda: mg.tensor([[0.0], [1.0]]),
    lambda: mg.tensor([[True], [False]]),
], ids=["float", "bool"])
def test_gather_with_non_integer_index_raises(index):
    x = Value([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises((TypeError, IndexError)):
        x.gather(1, index())


def test_gather_out_of_range_raises():
    x = Value([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(IndexError):
        x.gather(1, mg.tensor([[0], [2]]))


# ---- index_select -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [I64, I32])
def test_index_select(dtype):
    x = Value([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    out = x.index_select(0, t([2, 0, 2], dtype))
    expect(out.detach(), [[5.0, 6.0], [1.0, 2.0], [5.0, 6.0]], F64)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])


def test_index_select_along_dim1():
    x = Value([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    expect(x.index_select(1, mg.tensor([2, 1])).detach(), [[3.0, 2.0], [6.0, 5.0]], F64)
    expect(x.index_select(-1, mg.tensor([0])).detach(), [[1.0], [4.0]], F64)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_index_select_keeps_the_source_dtype(dtype):
    src = t([1, 0, 1], dtype)
    expect(src.index_select(0, mg.tensor([1, 2])), np.array([0, 1], dtype=dtype), dtype)


def test_index_select_oracle(torch64):
    for dim, index in ((0, [2, 2, 1]), (1, [3, 0, 3, 1]), (-1, [2])):
        op_matches_torch(torch64, "index_select", dim, index)


@pytest.mark.parametrize("index", [lambda: mg.tensor([0.0]), lambda: mg.tensor([True])],
                         ids=["float", "bool"])
def test_index_select_with_non_integer_index_raises(index):
    with pytest.raises((TypeError, IndexError)):
        Value([1.0, 2.0]).index_select(0, index())


def test_index_select_out_of_range_raises():
    with pytest.raises(IndexError):
        Value([1.0, 2.0]).index_select(0, mg.tensor([2]))


# ---- nn.Embedding ---------------------------------------------------------------------------


def test_embedding_takes_an_int64_tensor():
    emb = nn.Embedding(10, 4)
    idx = mg.tensor([[1, 2], [3, 4]])
    assert idx.dtype == I64
    out = emb(idx)
    assert out.shape == (2, 2, 4) and out.dtype == F64 and out.requires_grad
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[[[1, 2], [3, 4]]])
    out.sum().backward()
    want = np.zeros((10, 4))
    want[1:5] = 1.0
    np.testing.assert_array_equal(emb.weight.grad, want)


@pytest.mark.parametrize("dtype", [I64, I32])
def test_embedding_repeats_accumulate(dtype):
    emb = nn.Embedding(5, 3)
    (emb(t([1, 1, 3, 1], dtype)) * 2.0).sum().backward()
    want = np.zeros((5, 3))
    want[1], want[3] = 6.0, 2.0
    np.testing.assert_array_equal(emb.weight.grad, want)


def test_embedding_with_float32_weights():
    mg.set_default_dtype(mg.float32)
    emb = nn.Embedding(4, 2)
    out = emb(mg.tensor([0, 3]))
    assert out.dtype == F32 and out.shape == (2, 2)


def test_embedding_oracle(torch64):
    torch = torch64
    emb = nn.Embedding(6, 3)
    temb = torch.nn.Embedding(6, 3)
    with torch.no_grad():
        temb.weight.copy_(torch.tensor(emb.weight.numpy()))
    idx = [[0, 5, 5], [2, 0, 1]]
    out, tout = emb(mg.tensor(idx)), temb(torch.tensor(idx))
    same_as_torch(out.detach(), tout)
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    np.testing.assert_allclose(emb.weight.grad, temb.weight.grad.numpy(), rtol=1e-12)


def test_embedding_index_out_of_range_raises():
    with pytest.raises(IndexError):
        nn.Embedding(3, 2)(mg.tensor([0, 3]))


# ---- one_hot ---------------------------------------------------------------------------------


def test_one_hot():
    out = F.one_hot(mg.tensor([0, 2, 1]), num_classes=3)
    expect(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0]], I64)
    assert out.requires_grad is False


def test_one_hot_infers_the_number_of_classes():
    expect(F.one_hot(mg.tensor([0, 3])), [[1, 0, 0, 0], [0, 0, 0, 1]], I64)
    expect(F.one_hot(mg.tensor([1, 0]), num_classes=-1), [[0, 1], [1, 0]], I64)


def test_one_hot_with_more_classes_and_dims():
    expect(F.one_hot(mg.tensor([1]), num_classes=4), [[0, 1, 0, 0]], I64)
    out = F.one_hot(mg.tensor([[0, 2], [1, 1]]), num_classes=3)
    expect(out, [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 1, 0]]], I64)


def test_one_hot_feeds_float_math():
    # an int64 one-hot times float logits is float, and the gradient flows to the logits
    logits = Value([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    picked = (logits * F.one_hot(mg.tensor([2, 0]), num_classes=3)).sum()
    assert picked.item() == 7.0
    picked.backward()
    np.testing.assert_array_equal(logits.grad, [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("idx,n", [([0, 2, 1], 3), ([[0, 3], [1, 1]], -1), ([4], 6)], ids=str)
def test_one_hot_oracle(torch64, idx, n):
    torch = torch64
    same_as_torch(F.one_hot(mg.tensor(idx), num_classes=n),
                  torch.nn.functional.one_hot(torch.tensor(idx), num_classes=n))


@pytest.mark.parametrize("idx,n", [([0, 3], 3), ([5], 2), ([0, -1], 3)],
                         ids=["equal_to_n", "above_n", "negative"])
def test_one_hot_out_of_range_raises(idx, n):
    with pytest.raises((ValueError, RuntimeError)):
        F.one_hot(mg.tensor(idx), num_classes=n)


# ---- class-index targets: cross_entropy and nll_loss --------------------------------------------


def np_log_softmax(a):
    m = a.max(axis=1, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=1, keepdims=True))


LOGITS = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [-0.3, 0.2, 0.9]])


@pytest.mark.parametrize("dtype", [I64, I32])
def test_cross_entropy_with_int_targets(dtype):
    x = Value(LOGITS.copy())
    target = t([0, 2, 1], dtype)
    loss = F.cross_entropy(x, target)
    logp = np_log_softmax(LOGITS)
    assert loss.dtype == F64 and loss.shape == ()
    np.testing.assert_allclose(loss.item(), -logp[[0, 1, 2], [0, 2, 1]].mean(), rtol=1e-12)
    loss.backward()
    onehot = np.eye(3)[[0, 2, 1]]
    np.testing.assert_allclose(x.grad, (np.exp(logp) - onehot) / 3, rtol=1e-12, atol=1e-15)


def test_cross_entropy_fixed_value():
    loss = F.cross_entropy(Value([[2.0, 0.0], [0.0, 2.0]]), mg.tensor([0, 1]))
    np.testing.assert_allclose(loss.item(), np.log1p(np.exp(-2.0)), rtol=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_cross_entropy_int_targets_reductions(reduction):
    loss = F.cross_entropy(Value(LOGITS.copy()), mg.tensor([1, 1, 0]), reduction=reduction)
    per = -np_log_softmax(LOGITS)[[0, 1, 2], [1, 1, 0]]
    np.testing.assert_allclose(loss.numpy(), per.sum() if reduction == "sum" else per,
                               rtol=1e-12)


def test_cross_entropy_with_probability_targets():
    probs = np.array([[0.25, 0.75, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    x = Value(LOGITS.copy())
    loss = F.cross_entropy(x, mg.tensor(probs))
    logp = np_log_softmax(LOGITS)
    np.testing.assert_allclose(loss.item(), -(probs * logp).sum(1).mean(), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad, (np.exp(logp) - probs) / 3, rtol=1e-12, atol=1e-15)


def test_cross_entropy_one_hot_floats_match_int_targets():
    target = mg.tensor([2, 0, 1])
    as_probs = F.one_hot(target, num_classes=3).double()
    a = F.cross_entropy(Value(LOGITS.copy()), target)
    b = F.cross_entropy(Value(LOGITS.copy()), as_probs)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-12)


def test_cross_entropy_module_with_int_targets():
    loss = nn.CrossEntropyLoss()(Value([[2.0, 0.0], [0.0, 2.0]]), mg.tensor([0, 1]))
    np.testing.assert_allclose(loss.item(), np.log1p(np.exp(-2.0)), rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_oracle(torch64, reduction):
    torch = torch64
    for target in ([0, 2, 1], [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]):
        x = Value(LOGITS.copy())
        tx = torch.tensor(LOGITS, requires_grad=True)
        loss = F.cross_entropy(x, mg.tensor(target), reduction=reduction)
        tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(target), reduction=reduction)
        same_as_torch(loss.detach(), tloss)
        loss.sum().backward()
        tloss.sum().backward()
        np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_nll_loss_with_int_targets():
    logp = Value([[-0.5, -1.0], [-2.0, -0.1]])
    loss = F.nll_loss(logp, mg.tensor([0, 1]))
    np.testing.assert_allclose(loss.item(), 0.3, rtol=1e-12)
    loss.backward()
    np.testing.assert_array_equal(logp.grad, [[-0.5, 0.0], [0.0, -0.5]])


def test_nll_loss_int32_targets_and_module():
    logp = Value([[-0.5, -1.0], [-2.0, -0.1]])
    np.testing.assert_allclose(F.nll_loss(logp, t([1, 0], I32), reduction="sum").item(), 3.0)
    np.testing.assert_allclose(nn.NLLLoss()(logp, mg.tensor([0, 1])).item(), 0.3, rtol=1e-12)


def test_nll_loss_oracle(torch64):
    torch = torch64
    logp = np_log_softmax(LOGITS)
    x = Value(logp.copy())
    tx = torch.tensor(logp, requires_grad=True)
    loss = F.nll_loss(x, mg.tensor([2, 2, 0]))
    tloss = torch.nn.functional.nll_loss(tx, torch.tensor([2, 2, 0]))
    same_as_torch(loss.detach(), tloss)
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("target", [[0, 3], [-1, 0]], ids=["too_big", "negative"])
def test_class_index_out_of_range_raises(target):
    with pytest.raises(IndexError):
        F.cross_entropy(Value([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]), mg.tensor(target))
