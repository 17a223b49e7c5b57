"""Reductions with integer results or integer inputs: argmax/argmin, max/min over a dim as
(values, indices), sort, argsort, topk, any/all, and sum/mean of int and bool tensors.

Indices are int64 and record no gradient; the values' gradient flows back to the positions
they came from. Inputs avoid ties except where torch documents the tie rule (argmax: first).
"""

import numpy as np
import pytest
from dtype_helpers import BOOL, F32, F64, I32, I64, expect, same_as_torch, t

import mikagrad as mg
from mikagrad import Value

M = [[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]]  # no ties


# ---- argmax / argmin --------------------------------------------------------------------------


@pytest.mark.parametrize("call,values", [
    (lambda x: x.argmax(), 5),
    (lambda x: x.argmin(), 0),
    (lambda x: x.argmax(1), [1, 2]),
    (lambda x: x.argmax(dim=0), [1, 0, 1]),
    (lambda x: x.argmin(dim=1), [0, 1]),
    (lambda x: x.argmin(0), [0, 1, 0]),
    (lambda x: x.argmax(dim=1, keepdim=True), [[1], [2]]),
    (lambda x: x.argmin(dim=0, keepdim=True), [[0, 1, 0]]),
    (lambda x: x.argmax(dim=-1), [1, 2]),
    (lambda x: mg.argmax(x), 5),
    (lambda x: mg.argmax(x, dim=1), [1, 2]),
    (lambda x: mg.argmin(x, dim=1), [0, 1]),
], ids=["argmax", "argmin", "argmax1", "argmax_dim0", "argmin_dim1", "argmin0", "argmax_keep",
        "argmin_keep", "argmax_neg", "fn_argmax", "fn_argmax_dim", "fn_argmin_dim"])
def test_argmax_argmin_are_int64(call, values):
    x = Value(M)
    out = call(x)
    expect(out, values, I64)
    assert out.requires_grad is False


@pytest.mark.parametrize("dtype", [I64, I32, F32])
def test_argmax_of_other_dtypes(dtype):
    x = t([[3, -1, 7], [2, 9, 0]], dtype)
    expect(x.argmax(), 4, I64)
    expect(x.argmax(1), [2, 1], I64)
    expect(x.argmin(1), [1, 2], I64)


def test_argmax_ties_give_the_first():
    # documented by torch: "the indices of the first maximal value are returned"
    expect(mg.tensor([1, 3, 3, 2]).argmax(), 1, I64)
    expect(mg.tensor([2.0, 0.0, 0.0]).argmin(), 1, I64)


def test_argmax_indexes_back():
    x = Value([0.5, -1.0, 4.0, 2.0])
    i = x.argmax()
    assert x[i].item() == 4.0
    assert [10, 11, 12, 13][i] == 12  # a 0-d int64 is an index


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": 1}, {"dim": 1, "keepdim": True}],
                         ids=str)
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_oracle(torch64, name, kw):
    torch = torch64
    data = np.array([[3.0, -1.0, 7.0, 0.5], [2.0, 9.0, 0.0, -4.0], [1.0, 1.5, -2.0, 8.0]])
    same_as_torch(getattr(Value(data), name)(**kw), getattr(torch.tensor(data), name)(**kw))
    ints = data.astype(np.int64)
    same_as_torch(getattr(mg.tensor(ints), name)(**kw), getattr(torch.tensor(ints), name)(**kw))


# ---- max(dim) / min(dim) -----------------------------------------------------------------------


def test_max_with_dim_gives_values_and_indices():
    x = Value(M)
    res = x.max(1)
    expect(res.values.detach(), [5.0, 6.0], F64)
    expect(res.indices, [1, 2], I64)
    assert len(res) == 2
    expect(res[0].detach(), [5.0, 6.0], F64)
    expect(res[1], [1, 2], I64)
    v, i = x.max(dim=0)
    expect(v.detach(), [4.0, 5.0, 6.0], F64)
    expect(i, [1, 0, 1], I64)
    assert i.requires_grad is False and v.requires_grad is True


def test_min_with_dim_gives_values_and_indices():
    v, i = Value(M).min(dim=1)
    expect(v.detach(), [1.0, 2.0], F64)
    expect(i, [0, 1], I64)
    res = Value(M).min(0, keepdim=True)
    expect(res.values.detach(), [[1.0, 2.0, 3.0]], F64)
    expect(res.indices, [[0, 1, 0]], I64)


def test_max_keepdim_and_negative_dim():
    v, i = Value(M).max(dim=-1, keepdim=True)
    expect(v.detach(), [[5.0], [6.0]], F64)
    expect(i, [[1], [2]], I64)


def test_max_without_dim_is_just_the_value():
    out = Value(M).max()
    assert isinstance(out, Value)
    expect(out.detach(), 6.0, F64)
    expect(Value(M).min().detach(), 1.0, F64)


@pytest.mark.parametrize("dtype", [I64, I32])
def test_max_of_ints_keeps_the_dtype(dtype):
    x = t([[3, -1, 7], [2, 9, 0]], dtype)
    expect(x.max(), 9, dtype)
    expect(x.min(), -1, dtype)
    v, i = x.max(1)
    expect(v, [7, 9], dtype)
    expect(i, [2, 1], I64)


def test_max_values_gradient_goes_to_the_chosen_positions():
    x = Value(M)
    v, _ = x.max(1)
    (v * Value([1.0, 10.0], requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 1.0, 0.0], [0.0, 0.0, 10.0]])


def test_min_values_gradient_goes_to_the_chosen_positions():
    x = Value(M)
    x.min(dim=0).values.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim_oracle(torch64, name, dim, keepdim):
    torch = torch64
    data = np.array([[3.0, -1.0, 7.0, 0.5], [2.0, 9.0, 0.0, -4.0], [1.0, 1.5, -2.0, 8.0]])
    x = Value(data.copy())
    tx = torch.tensor(data, requires_grad=True)
    v, i = getattr(x, name)(dim, keepdim=keepdim)
    tv, ti = getattr(tx, name)(dim, keepdim=keepdim)
    same_as_torch(v.detach(), tv)
    same_as_torch(i, ti)
    (v * v).sum().backward()
    (tv * tv).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


# ---- sort / argsort ----------------------------------------------------------------------------


def test_sort():
    v, i = Value([3.0, 1.0, 2.0]).sort()
    expect(v.detach(), [1.0, 2.0, 3.0], F64)
    expect(i, [1, 2, 0], I64)
    res = Value([3.0, 1.0, 2.0]).sort(descending=True)
    expect(res.values.detach(), [3.0, 2.0, 1.0], F64)
    expect(res.indices, [0, 2, 1], I64)


def test_sort_2d_along_each_dim():
    x = Value([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    v, i = x.sort()  # dim=-1
    expect(v.detach(), [[1.0, 2.0, 3.0], [0.0, 4.0, 5.0]], F64)
    expect(i, [[1, 2, 0], [0, 2, 1]], I64)
    v, i = x.sort(dim=0, descending=True)
    expect(v.detach(), [[3.0, 5.0, 4.0], [0.0, 1.0, 2.0]], F64)
    expect(i, [[0, 1, 1], [1, 0, 0]], I64)


@pytest.mark.parametrize("dtype", [I64, I32])
def test_sort_of_ints_keeps_the_dtype(dtype):
    v, i = t([[3, 1], [0, 5]], dtype).sort(dim=0, descending=True)
    expect(v, [[3, 5], [0, 1]], dtype)
    expect(i, [[0, 1], [1, 0]], I64)


def test_sort_gradient_goes_back_to_the_source_positions():
    x = Value([3.0, 1.0, 2.0])
    v, _ = x.sort()
    # v = [x1, x2, x0], weighted 1, 2, 3
    (v * Value([1.0, 2.0, 3.0], requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 1.0, 2.0])


def test_sort_descending_gradient_2d():
    x = Value([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    v, _ = x.sort(dim=1, descending=True)
    (v * Value([[1.0, 2.0, 3.0]], requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [[1.0, 3.0, 2.0], [3.0, 1.0, 2.0]])


def test_argsort():
    x = Value([3.0, 1.0, 2.0])
    out = x.argsort()
    expect(out, [1, 2, 0], I64)
    assert out.requires_grad is False
    expect(x.argsort(descending=True), [0, 2, 1], I64)
    expect(mg.tensor([[3, 1], [0, 5]]).argsort(dim=0), [[1, 0], [0, 1]], I64)
    expect(Value([[3.0, 1.0, 2.0]]).argsort(dim=-1, descending=False), [[1, 2, 0]], I64)


def test_sort_function_forms():
    v, i = mg.sort(Value([3.0, 1.0, 2.0]))
    expect(v.detach(), [1.0, 2.0, 3.0], F64)
    expect(i, [1, 2, 0], I64)
    v, i = mg.sort(mg.tensor([3, 1, 2]), descending=True)
    expect(v, [3, 2, 1], I64)
    expect(mg.argsort(mg.tensor([3, 1, 2])), [1, 2, 0], I64)
    expect(mg.argsort(mg.tensor([[3, 1, 2]]), dim=1, descending=True), [[0, 2, 1]], I64)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_sort_oracle(torch64, dim, descending):
    torch = torch64
    data = np.array([[3.0, -1.0, 7.0, 0.5], [2.0, 9.0, 0.0, -4.0], [1.0, 1.5, -2.0, 8.0]])
    x = Value(data.copy())
    tx = torch.tensor(data, requires_grad=True)
    v, i = x.sort(dim=dim, descending=descending)
    tv, ti = tx.sort(dim=dim, descending=descending)
    same_as_torch(v.detach(), tv)
    same_as_torch(i, ti)
    same_as_torch(x.argsort(dim=dim, descending=descending),
                  tx.argsort(dim=dim, descending=descending))
    w = np.arange(12.0).reshape(3, 4)
    (v * Value(w, requires_grad=False)).sum().backward()
    (tv * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad, tx.grad.numpy())


# ---- topk ----------------------------------------------------------------------------------


def test_topk():
    x = Value([1.0, 4.0, 2.0, 3.0])
    v, i = x.topk(2)
    expect(v.detach(), [4.0, 3.0], F64)
    expect(i, [1, 3], I64)
    res = x.topk(2, largest=False)
    expect(res.values.detach(), [1.0, 2.0], F64)
    expect(res.indices, [0, 2], I64)
    assert res.indices.requires_grad is False


def test_topk_2d_and_dims():
    x = Value([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    v, i = x.topk(1)  # dim=-1
    expect(v.detach(), [[3.0], [5.0]], F64)
    expect(i, [[0], [1]], I64)
    v, i = x.topk(1, dim=0, largest=False)
    expect(v.detach(), [[0.0, 1.0, 2.0]], F64)
    expect(i, [[1, 0, 0]], I64)


def test_topk_unsorted_has_the_same_elements():
    x = Value([1.0, 4.0, 2.0, 3.0, 0.0])
    v, i = x.topk(3, sorted=False)
    pairs = sorted(zip(v.numpy().tolist(), i.numpy().tolist()))
    assert pairs == [(2.0, 2), (3.0, 3), (4.0, 1)]
    assert i.dtype == I64


@pytest.mark.parametrize("dtype", [I64, I32])
def test_topk_of_ints_keeps_the_dtype(dtype):
    v, i = t([5, -2, 9, 0], dtype).topk(2)
    expect(v, [9, 5], dtype)
    expect(i, [2, 0], I64)


def test_topk_gradient_goes_back_to_the_source_positions():
    x = Value([1.0, 4.0, 2.0, 3.0])
    v, _ = x.topk(2)
    (v * Value([10.0, 1.0], requires_grad=False)).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 10.0, 0.0, 1.0])


def test_topk_function_form():
    v, i = mg.topk(Value([1.0, 4.0, 2.0, 3.0]), 3, largest=False)
    expect(v.detach(), [1.0, 2.0, 3.0], F64)
    expect(i, [0, 2, 3], I64)


@pytest.mark.parametrize("k", [5, -1])
def test_topk_k_out_of_range_raises(k):
    with pytest.raises((ValueError, IndexError, RuntimeError)):
        Value([1.0, 2.0, 3.0]).topk(k)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dim,k", [(-1, 2), (0, 2), (1, 4)])
def test_topk_oracle(torch64, dim, k, largest):
    torch = torch64
    data = np.array([[3.0, -1.0, 7.0, 0.5], [2.0, 9.0, 0.0, -4.0], [1.0, 1.5, -2.0, 8.0]])
    x = Value(data.copy())
    tx = torch.tensor(data, requires_grad=True)
    v, i = x.topk(k, dim=dim, largest=largest)
    tv, ti = tx.topk(k, dim=dim, largest=largest)
    same_as_torch(v.detach(), tv)
    same_as_torch(i, ti)
    (v * v).sum().backward()
    (tv * tv).sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


# ---- any / all -------------------------------------------------------------------------------


@pytest.mark.parametrize("data,dtype,any_,all_", [
    ([True, False], BOOL, True, False),
    ([True, True], BOOL, True, True),
    ([False, False], BOOL, False, False),
    ([0, 3], I64, True, False),
    ([-1, 3], I32, True, True),
    ([0.0, 0.5], F64, True, False),
    ([1.5, -2.0], F32, True, True),
    ([0.0, 0.0], F64, False, False),
], ids=["bool_mixed", "bool_all", "bool_none", "i64", "i32", "f64", "f32", "zeros"])
def test_any_all_give_bool_tensors(data, dtype, any_, all_):
    x = t(data, dtype)
    expect(x.any(), any_, BOOL)
    expect(x.all(), all_, BOOL)
    assert x.any().item() is any_ and x.all().item() is all_


def test_any_all_over_dims():
    x = t([[0, 1], [0, 0], [2, 3]], I64)
    expect(x.any(dim=1), [True, False, True], BOOL)
    expect(x.all(dim=1), [False, False, True], BOOL)
    expect(x.any(dim=0), [True, True], BOOL)
    expect(x.all(dim=0, keepdim=True), [[False, False]], BOOL)
    expect(x.any(1, keepdim=True), [[True], [False], [True]], BOOL)
    expect((Value([[1.0, -2.0], [3.0, 4.0]]) > 0).all(dim=1), [False, True], BOOL)


def test_any_all_record_no_gradient():
    x = Value([1.0, 2.0])
    assert x.any().requires_grad is False and (x > 1).all().requires_grad is False


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": 1}, {"dim": 1, "keepdim": True}],
                         ids=str)
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float64"])
@pytest.mark.parametrize("name", ["any", "all"])
def test_any_all_oracle(torch64, name, dtype, kw):
    torch = torch64
    data = np.array([[0, 1, 2], [0, 0, 0], [3, 4, 5]]).astype(dtype)
    same_as_torch(getattr(mg.tensor(data), name)(**kw),
                  getattr(torch.from_numpy(data.copy()), name)(**kw))


# ---- sum / prod / mean of ints --------------------------------------------------------------


@pytest.mark.parametrize("data,dtype,total", [
    ([1, 2, 3], I64, 6),
    ([1, 2, 3], I32, 6),
    ([True, True, False], BOOL, 2),
    ([2147483647, 1], I32, 2147483648),  # accumulated in int64: no int32 overflow
], ids=["i64", "i32", "bool", "i32_big"])
def test_sum_of_ints_is_int64(data, dtype, total):
    out = t(data, dtype).sum()
    expect(out, total, I64)
    assert type(out.item()) is int and out.requires_grad is False


def test_sum_of_ints_over_dims():
    x = t([[1, 2], [3, 4]], I32)
    expect(x.sum(0), [4, 6], I64)
    expect(x.sum(dim=1, keepdim=True), [[3], [7]], I64)
    expect(t([[True, False], [True, True]], BOOL).sum(1), [1, 2], I64)


def test_sum_of_floats_keeps_its_dtype():
    expect(t([1.5, 2.5], F32).sum(), 4.0, F32)


def test_int64_sum_wraps_on_overflow():
    expect(t([2**62, 2**62], I64).sum(), -(2**63), I64)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_mean_of_ints_raises(dtype):
    with pytest.raises((TypeError, RuntimeError)):
        t([1, 0, 1], dtype).mean()


def test_mean_after_a_cast_works():
    expect(mg.tensor([1, 2]).double().mean(), 1.5, F64)
    expect(mg.tensor([1, 2]).float().mean(), 1.5, F32)


@pytest.mark.parametrize("kw", [{}, {"dim": 0}, {"dim": 1, "keepdim": True}], ids=str)
@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float32"])
@pytest.mark.parametrize("name", ["sum"])
def test_sum_oracle(torch64, name, dtype, kw):
    torch = torch64
    data = np.array([[1, 2, 0], [3, 1, 5]]).astype(dtype)
    v = getattr(mg.tensor(data), name)(**kw)
    r = getattr(torch.from_numpy(data.copy()), name)(**kw)
    same_as_torch(v, r)


# ---- finite differences through the index-returning reductions ----------------------------------


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name,fn", [
    ("max_dim", lambda x: x.max(dim=-1).values),
    ("min_dim_keep", lambda x: x.min(dim=0, keepdim=True).values),
    ("sort", lambda x: x.sort(dim=-1).values),
    ("sort_desc", lambda x: x.sort(dim=0, descending=True).values),
    ("topk", lambda x: x.topk(2, dim=-1).values),
    ("topk_smallest", lambda x: x.topk(1, dim=0, largest=False).values),
])
def test_index_returning_reductions_by_finite_differences(name, fn, shape):
    # distinct values, far apart: no ties, so finite differences never cross an order change
    x = np.random.default_rng(0).permutation(int(np.prod(shape))).reshape(shape) * 0.5
    assert mg.gradcheck(fn, x)
