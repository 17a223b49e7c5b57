"""Bad inputs raise the documented Python exception class, with a message that says why.

Each row: an id, a callable, the exception class, and fragments that must all appear in
the message (shape errors name the op and both shapes; index errors say "out of").
"""

import contextlib
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.engine import Value


def v(*shape):
    return Value(np.ones(shape))


def no_grad_backward():
    with mg.no_grad():
        y = Value(np.ones(3)) * 2
    y.backward()


def saved_then(edit):
    """A valid mikagrad archive's bytes, passed through ``edit``, then loaded."""
    buf = io.BytesIO()
    mg.save({"w": np.arange(64.0), "step": 3}, buf)
    return mg.load(io.BytesIO(edit(buf.getvalue())))


def flip_middle(data):
    data = bytearray(data)
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    return bytes(data)


def set_grad(x, g):
    x.grad = g


CONSTRUCTION = [
    ("ragged_list", lambda: Value([[1.0, 2.0], [3.0]]), ValueError, ()),
    ("ragged_deep", lambda: Value([1.0, [2.0, 3.0]]), ValueError, ()),
    ("ragged_tensor_factory", lambda: mg.tensor([[1], [2, 3]]), ValueError, ()),
    ("string", lambda: Value("abc"), TypeError, ("str",)),
    ("none", lambda: Value(None), TypeError, ("None",)),
    ("complex", lambda: Value(1 + 2j), TypeError, ("complex",)),
    ("object", lambda: Value(object()), TypeError, ("object",)),
    ("dict", lambda: Value({"a": 1}), TypeError, ()),
    ("list_with_string", lambda: Value([1.0, "a"]), TypeError, ()),
    ("list_with_none", lambda: Value([1.0, None]), TypeError, ()),
    ("np_complex", lambda: Value(np.array([1 + 1j, 2.0])), TypeError, ("complex",)),
    ("np_str", lambda: Value(np.array(["a", "b"])), TypeError, ()),
    ("np_object", lambda: Value(np.array([object(), 1], dtype=object)), TypeError, ()),
    ("dtype_int", lambda: Value([1.0], dtype=np.int32), mg.GradError, ("int32", "float")),
    ("dtype_float16", lambda: Value([1.0], dtype=np.float16), TypeError, ("float16",)),
    ("dtype_complex", lambda: mg.zeros(2, dtype=np.complex128), TypeError, ()),
    # issue 6: more hostile constructors
    ("bytes", lambda: Value(b"ab"), TypeError, ("bytes",)),
    ("tensor_string", lambda: mg.tensor("1.0"), TypeError, ("str",)),
    ("set", lambda: Value({1.0, 2.0}), TypeError, ("object",)),
    ("function", lambda: Value(len), TypeError, ()),
    ("np_datetime", lambda: Value(np.array(["2020-01-01"], dtype="datetime64[D]")), TypeError,
     ("datetime64",)),
    ("np_timedelta", lambda: Value(np.array([1], dtype="timedelta64[s]")), TypeError,
     ("timedelta64",)),
    ("np_bytes", lambda: Value(np.array([b"a", b"b"])), TypeError, ("dtype",)),
    ("np_structured", lambda: Value(np.zeros(2, dtype=[("a", "f8")])), TypeError, ("dtype",)),
    ("np_complex64_scalar", lambda: Value(np.complex64(1)), TypeError, ("complex",)),
    ("np_complex_2d", lambda: mg.tensor(np.ones((2, 2), np.complex128)), TypeError,
     ("complex",)),
    ("np_object_ragged", lambda: Value(np.array([np.ones(2), np.ones(3)], dtype=object)),
     TypeError, ("object",)),
    ("ragged_of_values", lambda: Value([Value([1.0]), Value([1.0, 2.0])]), ValueError,
     ("ragged",)),
    ("ragged_numpy_rows", lambda: Value([np.ones(2), np.ones(3)]), ValueError, ("ragged",)),
    ("list_with_complex", lambda: Value([1.0, 2j]), TypeError, ("complex",)),
    ("dtype_float16", lambda: Value([1.0], dtype="float16"), TypeError, ("float16",)),
    ("dtype_name", lambda: Value([1.0], dtype="no such dtype"), TypeError, ()),
    ("to_complex", lambda: v(3).to(np.complex64), TypeError, ("complex64",)),
    ("zeros_dtype_float16", lambda: mg.zeros(2, dtype=np.float16), TypeError, ("float16",)),
    ("randn_dtype_int", lambda: mg.randn(2, dtype=np.int64), TypeError, ("int64",)),
]

SHAPE_MISMATCH = [
    ("add", lambda: v(3) + v(4), mg.ShapeError, ("add", "(3,)", "(4,)")),
    ("sub", lambda: v(3) - v(4), mg.ShapeError, ("sub", "(3,)", "(4,)")),
    ("mul", lambda: v(3) * v(4), mg.ShapeError, ("mul", "(3,)", "(4,)")),
    ("div", lambda: v(3) / v(4), mg.ShapeError, ("div", "(3,)", "(4,)")),
    ("pow", lambda: v(3) ** v(4), mg.ShapeError, ("pow", "(3,)", "(4,)")),
    ("maximum", lambda: mg.maximum(v(3), v(4)), mg.ShapeError, ("maximum", "(3,)", "(4,)")),
    ("minimum", lambda: mg.minimum(v(3), v(4)), mg.ShapeError, ("minimum", "(3,)", "(4,)")),
    (
        "where",
        lambda: mg.where(np.ones(3, bool), v(4), v(3)),
        mg.ShapeError,
        ("where", "(3,)", "(4,)"),
    ),
    ("add_2d", lambda: v(2, 3) + v(3, 2), mg.ShapeError, ("add", "(2, 3)", "(3, 2)")),
    ("numpy_first", lambda: np.ones(4) + v(3), mg.ShapeError, ("add", "(4,)", "(3,)")),
    ("numpy_second", lambda: v(3) * np.ones((2, 4)), mg.ShapeError, ("mul", "(3,)", "(2, 4)")),
    ("matmul", lambda: v(3, 4) @ v(5, 2), mg.ShapeError, ("matmul", "(3, 4)", "(5, 2)")),
    ("matmul_1d", lambda: v(3) @ v(4), mg.ShapeError, ("matmul", "(3,)", "(4,)")),
    ("matmul_vec_mat", lambda: v(3) @ v(4, 2), mg.ShapeError, ("matmul", "(3,)", "(4, 2)")),
    (
        "matmul_batch",
        lambda: v(2, 3, 4) @ v(3, 4, 5),
        mg.ShapeError,
        ("matmul", "(2, 3, 4)", "(3, 4, 5)"),
    ),
    ("matmul_0d", lambda: Value(1.0) @ v(3), mg.ShapeError, ("matmul",)),
    ("mg.matmul", lambda: mg.matmul(v(2, 3), v(2, 3)), mg.ShapeError, ("(2, 3)",)),
    ("dot", lambda: mg.dot(v(3), v(4)), mg.ShapeError, ("(3,)", "(4,)")),
    ("reshape", lambda: v(2, 3).reshape(4, 2), mg.ShapeError, ("reshape", "(2, 3)")),
    ("reshape_-1", lambda: v(2, 3).reshape(4, -1), mg.ShapeError, ("reshape", "(2, 3)")),
    ("view", lambda: v(2, 3).view(7), mg.ShapeError, ("(2, 3)",)),
    ("reshape_two_holes", lambda: v(2, 3).reshape(-1, -1), ValueError, ()),
    ("expand", lambda: v(3).expand(4), mg.ShapeError, ("(3,)", "(4,)")),
    ("broadcast_to", lambda: v(2, 3).broadcast_to((3, 3)), mg.ShapeError, ("(2, 3)", "(3, 3)")),
    ("cat", lambda: mg.cat([v(2, 3), v(2, 4)]), mg.ShapeError, ("cat", "(2, 3)", "(2, 4)")),
    ("stack", lambda: mg.stack([v(2, 3), v(3, 2)]), mg.ShapeError, ("stack", "(2, 3)", "(3, 2)")),
    ("cat_empty", lambda: mg.cat([]), ValueError, ()),
    ("split_sizes", lambda: v(5).split([2, 2]), ValueError, ()),
    ("mse_loss", lambda: F.mse_loss(v(3), v(4)), mg.ShapeError, ("(3,)", "(4,)")),
    (
        "backward_gradient_shape",
        lambda: (v(3) * 2).backward(gradient=np.ones(4)),
        mg.ShapeError,
        ("backward", "(3,)", "(4,)"),
    ),
    # issue 6: a shape mismatch in every binary op, each spelling
    ("lt", lambda: v(3) < v(4), mg.ShapeError, ("lt", "(3,)", "(4,)")),
    ("le", lambda: v(3) <= v(4), mg.ShapeError, ("le", "(3,)", "(4,)")),
    ("gt", lambda: v(3) > v(4), mg.ShapeError, ("gt", "(3,)", "(4,)")),
    ("ge", lambda: v(3) >= v(4), mg.ShapeError, ("ge", "(3,)", "(4,)")),
    ("eq", lambda: v(3) == v(4), mg.ShapeError, ("eq", "(3,)", "(4,)")),
    ("ne", lambda: v(3) != v(4), mg.ShapeError, ("ne", "(3,)", "(4,)")),
    ("rsub_numpy", lambda: np.ones(4) - v(3), mg.ShapeError, ("sub", "(4,)", "(3,)")),
    ("rdiv_numpy", lambda: np.ones(4) / v(3), mg.ShapeError, ("div", "(4,)", "(3,)")),
    ("rpow_numpy", lambda: np.ones(4) ** v(3), mg.ShapeError, ("pow", "(4,)", "(3,)")),
    ("rmul_numpy", lambda: np.ones((2, 4)) * v(3), mg.ShapeError, ("mul", "(2, 4)", "(3,)")),
    ("rmatmul_numpy", lambda: np.ones((2, 4)) @ v(3, 2), mg.ShapeError,
     ("matmul", "(2, 4)", "(3, 2)")),
    ("maximum_numpy", lambda: mg.maximum(np.ones(4), v(3)), mg.ShapeError, ("maximum",)),
    ("where_cond", lambda: mg.where(np.ones(4, bool), v(3), v(3)), mg.ShapeError,
     ("where", "(4,)", "(3,)")),
    ("matmul_mat_vec", lambda: v(3, 4) @ v(3), mg.ShapeError, ("matmul", "(3, 4)", "(3,)")),
    ("matmul_batch_vec", lambda: v(2, 3, 4) @ v(3), mg.ShapeError, ("matmul", "(2, 3, 4)")),
    ("matmul_batch_broadcast", lambda: v(2, 3, 4) @ v(5, 4, 2), mg.ShapeError,
     ("matmul", "(2, 3, 4)", "(5, 4, 2)")),
    ("matmul_empty_inner", lambda: v(2, 0) @ v(3, 2), mg.ShapeError, ("matmul", "(2, 0)")),
    ("dot_2d_1d", lambda: mg.dot(v(2, 3), v(2)), mg.ShapeError, ("(2, 3)", "(2,)")),
    ("reshape_size0", lambda: v(0, 3).reshape(2, -1, 0), mg.ShapeError, ("reshape",)),
    ("reshape_empty_to_one", lambda: v(0).reshape(()), mg.ShapeError, ("reshape", "(0,)")),
    ("reshape_one_to_empty", lambda: Value(1.0).reshape(0), mg.ShapeError, ("reshape",)),
    ("expand_fewer_dims", lambda: v(2, 3).expand(3), mg.ShapeError, ("(2, 3)", "(3,)")),
    ("expand_negative", lambda: v(2, 3).expand(2, -2), mg.ShapeError, ("expand",)),
    ("gather_index_shape", lambda: v(2, 3).gather(1, np.zeros((3, 3), dtype=np.int64)),
     mg.ShapeError, ("gather", "(3, 3)", "(2, 3)")),
    ("cat_0d", lambda: mg.cat([Value(1.0), Value(2.0)]), mg.ShapeError, ("cat",)),
    ("stack_0d_and_1d", lambda: mg.stack([Value(1.0), v(1)]), mg.ShapeError,
     ("stack", "()", "(1,)")),
    ("l1_loss", lambda: F.l1_loss(v(3), v(4)), mg.ShapeError, ("l1_loss", "(3,)", "(4,)")),
    ("bce", lambda: F.binary_cross_entropy(v(3) * 0.5, v(4)), mg.ShapeError,
     ("binary_cross_entropy", "(3,)", "(4,)")),
    ("bce_logits", lambda: F.binary_cross_entropy_with_logits(v(3), v(4)), mg.ShapeError,
     ("binary_cross_entropy_with_logits", "(3,)", "(4,)")),
    ("hinge_loss", lambda: F.hinge_loss(v(3), v(4)), mg.ShapeError, ("hinge_loss",)),
    ("nll_3d", lambda: F.nll_loss(v(2, 3, 4), [0, 1]), mg.ShapeError, ("nll_loss", "(2, 3, 4)")),
    ("cross_entropy_target_count", lambda: F.cross_entropy(v(3, 4), [0, 1]), mg.ShapeError,
     ("(2,)",)),
    ("backward_gradient_value", lambda: (v(3) * 2).backward(gradient=v(4)), mg.ShapeError,
     ("backward", "(3,)", "(4,)")),
    ("backward_gradient_2d", lambda: (v(2, 3) * 2).backward(gradient=np.ones((3, 2))),
     mg.ShapeError, ("backward", "(2, 3)", "(3, 2)")),
    ("backward_gradient_0d_for_vector", lambda: (v(3) * 2).backward(gradient=np.float64(1.0)),
     mg.ShapeError, ("backward",)),
    ("grad_setter", lambda: set_grad(v(3), np.ones(4)), mg.ShapeError, ("grad", "4", "3")),
]

DIM_OUT_OF_RANGE = [
    ("sum", lambda: v(2, 3).sum(dim=5)),
    ("sum_axis", lambda: v(2, 3).sum(axis=2)),
    ("sum_tuple", lambda: v(2, 3).sum(dim=(0, 2))),
    ("mean_neg", lambda: v(2, 3).mean(dim=-3)),
    ("max", lambda: v(2, 3).max(dim=2)),
    ("var", lambda: v(2, 3).var(dim=2)),
    ("logsumexp", lambda: v(2, 3).logsumexp(dim=2)),
    ("argmax", lambda: v(2, 3).argmax(dim=2)),
    ("softmax", lambda: v(2, 3).softmax(dim=3)),
    ("log_softmax", lambda: v(2, 3).log_softmax(-3)),
    ("transpose", lambda: v(2, 3).transpose(0, 4)),
    ("unsqueeze", lambda: v(2, 3).unsqueeze(4)),
    ("squeeze", lambda: v(2, 1).squeeze(3)),
    ("flatten", lambda: v(2, 3).flatten(3)),
    ("cat", lambda: mg.cat([v(2, 3), v(2, 3)], dim=2)),
    ("stack", lambda: mg.stack([v(2, 3), v(2, 3)], dim=4)),
    ("split", lambda: v(2, 3).split(1, dim=2)),
    ("gather", lambda: v(2, 3).gather(2, np.zeros((2, 3), dtype=np.int64))),
    ("min", lambda: v(2, 3).min(dim=-3)),
    ("std", lambda: v(2, 3).std(dim=2)),
    ("argmin", lambda: v(2, 3).argmin(dim=-3)),
    ("mean_tuple", lambda: v(2, 3).mean(dim=(1, 2))),
    ("sum_0d", lambda: Value(1.0).sum(dim=1)),
    ("softmax_0d", lambda: Value(1.0).softmax(dim=2)),
    ("squeeze_tuple", lambda: v(2, 1).squeeze((0, 5))),
    ("unsqueeze_neg", lambda: v(2, 3).unsqueeze(-4)),
    ("mT_1d", lambda: v(3).mT),
    ("chunk", lambda: v(2, 3).chunk(2, dim=-3)),
    ("permute", lambda: v(2, 3).permute(0, 2)),
    ("flatten_end", lambda: v(2, 3).flatten(0, 5)),
    ("index_select", lambda: v(2, 3).index_select(2, mg.tensor([0]))),
]

INDEX_OUT_OF_RANGE = [
    ("int", lambda: v(3)[5]),
    ("neg_int", lambda: v(3)[-4]),
    ("second_dim", lambda: v(2, 3)[:, 3]),
    ("list", lambda: v(3)[[0, 7]]),
    ("array_neg", lambda: v(3)[np.array([-5])]),
    ("gather", lambda: v(2, 3).gather(1, np.array([[0, 3], [1, 1]]))),
    ("cross_entropy_target", lambda: F.cross_entropy(v(3, 4), np.array([0, 1, 4]))),
    ("nll_target", lambda: F.nll_loss(v(3, 4), [0, 9, 1])),
    ("np_int", lambda: v(3)[np.int64(5)]),
    ("nested_list", lambda: v(3)[[[0, 5]]]),
    ("tuple_second", lambda: v(2, 3)[1, -4]),
    ("list_in_second_dim", lambda: v(2, 3)[:, [0, 3]]),
    ("empty_dim", lambda: v(0, 3)[0]),
    ("index_select", lambda: v(3, 2).index_select(0, mg.tensor([0, 3]))),
    ("index_select_negative", lambda: v(3, 2).index_select(1, mg.tensor([-3]))),
    ("int32_tensor", lambda: v(3)[mg.tensor(np.array([0, -4], np.int32))]),
    ("int64_tensor_pair", lambda: v(2, 3)[mg.tensor([0, 1]), mg.tensor([0, 3])]),
    ("gather_int_tensor", lambda: v(2, 3).gather(1, mg.tensor([[0], [3]]))),
]

OTHER = [
    ("too_many_indices", lambda: v(2, 3)[0, 0, 0], IndexError, ("too many",)),
    ("bool_mask_shape", lambda: v(3, 4)[np.ones((4, 3), bool)], IndexError, ("(4, 3)",)),
    ("bool_mask_length", lambda: v(3, 4)[np.ones(5, bool)], IndexError, ("(5,)",)),
    (
        "backward_no_grad",
        lambda: mg.tensor([1.0, 2.0]).sum().backward(),
        mg.GradError,
        ("backward",),
    ),
    ("backward_leaf_no_grad", lambda: Value(1.0, requires_grad=False).backward(), mg.GradError, ()),
    ("backward_comparison", lambda: (v(3) > 0).sum().backward(), mg.GradError, ()),
    ("backward_under_no_grad", no_grad_backward, mg.GradError, ()),
    ("zeros_huge", lambda: mg.zeros((1 << 40,)), MemoryError, ()),
    ("ones_huge", lambda: mg.ones(1 << 20, 1 << 20), MemoryError, ()),
    ("add_str", lambda: v(3) + "a", TypeError, ()),
    ("mul_none", lambda: v(3) * None, TypeError, ()),
    ("rsub_str", lambda: "a" - v(3), TypeError, ()),
    ("pow_str", lambda: v(3) ** "x", TypeError, ()),
    ("matmul_str", lambda: v(3) @ "x", TypeError, ()),
    ("len_0d", lambda: len(Value(1.0)), TypeError, ()),
    # issue 6: more bad indices, arguments and states
    ("int_index_of_0d", lambda: Value(1.0)[0], IndexError, ("too many",)),
    ("bool_mask_too_many_dims", lambda: v(2, 3)[np.ones((2, 3, 1), bool)], IndexError,
     ("too many",)),
    ("bool_list_wrong_length", lambda: v(3)[[True, False]], IndexError, ("(2,)",)),
    ("comparison_mask_wrong_shape", lambda: v(3, 4)[v(4) > 0], IndexError, ("(4,)",)),
    ("float_array_index", lambda: v(3)[np.array([0.5])], IndexError, ("integers",)),
    ("float_value_index", lambda: v(3)[Value([0.5])], IndexError, ("bool, int32 or int64",)),
    ("index_arrays_do_not_broadcast", lambda: v(3, 3)[[0, 1], [0, 1, 2]], IndexError,
     ("broadcast",)),
    ("float_index", lambda: v(3)[1.5], TypeError, ("float",)),
    ("str_index", lambda: v(3)["a"], TypeError, ("str",)),
    ("slice_step_zero", lambda: v(3)[::0], ValueError, ("zero",)),
    ("gather_float_index", lambda: v(2, 3).gather(1, np.full((2, 3), 0.5)), TypeError,
     ("gather",)),
    ("gather_float_tensor_index", lambda: v(2, 3).gather(1, mg.tensor([[0.0], [1.0]])),
     TypeError, ("gather", "float64", "(2, 1)")),
    ("index_select_float_index", lambda: v(3).index_select(0, mg.tensor([0.0])), TypeError,
     ("index_select", "float64")),
    ("index_select_float_list", lambda: v(3).index_select(0, [0.5]), TypeError,
     ("index_select",)),
    ("index_select_2d_index", lambda: v(3).index_select(0, mg.tensor([[0]])), IndexError,
     ("index_select", "(1, 1)")),
    ("float32_tensor_index", lambda: v(3, 3)[mg.tensor([0.0, 1.0]).float()], IndexError,
     ("float32",)),
    ("bool_tensor_mask_shape", lambda: v(3, 4)[mg.tensor(np.ones((3, 5), bool))], IndexError,
     ("(3, 5)", "(3, 4)")),
    ("bool_mask_after_slice", lambda: v(3, 4)[:, mg.tensor([True, False])], IndexError,
     ("(2,)", "(3, 4)")),
    ("slice_float_bound", lambda: v(3)[0.5:], TypeError, ("slice",)),
    ("two_ellipses", lambda: v(3, 4)[..., 0, ...], IndexError, ("ellipsis",)),
    ("split_zero", lambda: v(3).split(0), ValueError, ("split",)),
    ("chunk_zero", lambda: v(3).chunk(0), ValueError, ("chunk",)),
    ("cat_not_a_list", lambda: mg.cat(v(3)), TypeError, ("cat",)),
    ("stack_empty", lambda: mg.stack([]), ValueError, ("stack",)),
    ("sum_dims_repeat", lambda: v(2, 3).sum(dim=(0, -2)), ValueError, ("more than once",)),
    ("permute_repeat", lambda: v(2, 3).permute(0, 0), ValueError, ("permute",)),
    ("flatten_reversed", lambda: v(2, 3, 4).flatten(2, 0), ValueError, ("flatten",)),
    ("item_of_many", lambda: v(3).item(), ValueError, ("item", "3")),
    ("item_of_none", lambda: v(0).item(), ValueError, ("item",)),
    ("bool_of_many", lambda: bool(v(3)), ValueError, ("ambiguous",)),
    ("zeros_negative", lambda: mg.zeros(-1), ValueError, ("negative",)),
    ("zeros_str", lambda: mg.zeros("a"), TypeError, ()),
    ("zeros_none", lambda: mg.zeros(None), TypeError, ()),
    ("linspace_negative", lambda: mg.linspace(0, 1, -1), ValueError, ("linspace",)),
    ("arange_step_zero", lambda: mg.arange(0, 1, 0), ValueError, ("arange",)),
    ("arange_nan", lambda: mg.arange(0, float("nan")), ValueError, ("arange",)),
    ("arange_inf", lambda: mg.arange(0, float("inf")), ValueError, ("arange",)),
    ("leaky_relu_str", lambda: v(3).leaky_relu("a"), ValueError, ()),
    ("clamp_str", lambda: v(3).clamp(min="a"), ValueError, ()),
    ("softmax_dim_str", lambda: v(3).softmax("a"), TypeError, ()),
    ("manual_seed_str", lambda: mg.manual_seed("a"), ValueError, ()),
    ("backward_gradient_str", lambda: (v(3) * 2).backward(gradient="a"), ValueError, ()),
    ("requires_grad_off_non_leaf", lambda: (v(3) * 2).requires_grad_(False), mg.GradError,
     ("leaf",)),
    ("backward_detached", lambda: v(3).detach().sum().backward(), mg.GradError, ("backward",)),
    ("cross_entropy_float_target", lambda: F.cross_entropy(v(3, 4), np.array([0.5, 1, 2])),
     ValueError, ("integers",)),
    ("cross_entropy_str_target", lambda: F.cross_entropy(v(3, 4), ["a", "b", "c"]), TypeError,
     ("class indices",)),
    ("loss_reduction", lambda: F.mse_loss(v(3), v(3), reduction="avg"), ValueError,
     ("reduction",)),
    ("load_garbage", lambda: mg.load(io.BytesIO(b"garbage")), mg.SerializationError,
     ("not a mikagrad file",)),
    ("load_empty", lambda: mg.load(io.BytesIO(b"")), mg.SerializationError, ("empty",)),
    ("load_truncated", lambda: saved_then(lambda b: b[: len(b) // 2]), mg.SerializationError,
     ("truncated or corrupt",)),
    ("load_flipped_bytes", lambda: saved_then(flip_middle), mg.SerializationError, ()),
    ("load_missing", lambda: mg.load("/nonexistent/mikagrad/state.npz"), mg.SerializationError,
     ("does not exist",)),
    ("save_unsupported", lambda: mg.save({"a": object()}, io.BytesIO()), TypeError, ("'a'",)),
    ("randn_huge", lambda: mg.randn(1 << 40), MemoryError, ("randn",)),
    ("rand_huge", lambda: mg.rand(1 << 20, 1 << 20), MemoryError, ()),
    ("full_huge", lambda: mg.full((1 << 40,), 2.0), MemoryError, ()),
    ("eye_huge", lambda: mg.eye(1 << 21), MemoryError, ("eye",)),
    ("zeros_overflowing_shape", lambda: mg.zeros(1 << 62, 1 << 62), MemoryError, ()),
    ("zeros_like_huge", lambda: mg.zeros_like(v(1).expand(1 << 40)), MemoryError, ()),
]

def b(*values):
    return mg.tensor(np.array(values, dtype=bool))


# Ops whose dtype kind refuses some inputs (tests/test_op_catalog.py asks for a row per op:
# "<op>_bool", "<op>_float", "<op>_by_zero" or "<op>_negative_int").
DTYPE_REFUSED = [
    ("neg_bool", lambda: -b(True), TypeError, ("neg", "bool")),
    ("abs_bool", lambda: b(True).abs(), TypeError, ("abs", "bool")),
    ("sign_bool", lambda: b(True).sign(), TypeError, ("sign", "bool")),
    ("relu_bool", lambda: b(True).relu(), TypeError, ("relu", "bool")),
    ("clamp_bool", lambda: b(True).clamp(0, 1), TypeError, ("clamp", "bool")),
    ("bitwise_not_float", lambda: ~v(3), TypeError, ("bitwise_not", "float64")),
    ("sub_bool", lambda: b(True) - b(False), TypeError, ("sub", "bool")),
    ("sub_bool_number", lambda: mg.tensor([1, 2]) - True, TypeError, ("sub", "~")),
    ("floor_divide_by_zero", lambda: mg.tensor([3, 4]) // mg.tensor([1, 0]), ValueError,
     ("floor_divide", "zero")),
    ("remainder_by_zero", lambda: mg.tensor([3]) % 0, ValueError, ("remainder", "zero")),
    ("pow_negative_int", lambda: mg.tensor([2]) ** -1, ValueError, ("pow", "negative")),
    ("bitwise_and_float", lambda: v(2) & v(2), TypeError, ("bitwise_and", "float64")),
    ("bitwise_or_float", lambda: v(2) | b(True, False), TypeError, ("bitwise_or", "float64")),
    ("bitwise_xor_float", lambda: v(2) ^ 1, TypeError, ("bitwise_xor", "float64")),
]

TABLE = (
    CONSTRUCTION
    + DTYPE_REFUSED
    + SHAPE_MISMATCH
    + [(f"dim_{name}", fn, IndexError, ("out of",)) for name, fn in DIM_OUT_OF_RANGE]
    + [(f"index_{name}", fn, IndexError, ("out of",)) for name, fn in INDEX_OUT_OF_RANGE]
    + OTHER
)


@pytest.mark.parametrize(
    "make,exc,fragments", [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_bad_input(make, exc, fragments):
    with pytest.raises(exc) as info:
        make()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_exception_classes():
    assert issubclass(mg.ShapeError, ValueError)
    assert issubclass(mg.GradError, RuntimeError)


NEGATIVE_DIMS = [
    (lambda x: x.sum(dim=-1), (2, 3)),
    (lambda x: x.sum(dim=(-1, -2)), (2,)),
    (lambda x: x.max(dim=-2, keepdim=True).values, (2, 1, 4)),
    (lambda x: x.amax(dim=-2, keepdim=True), (2, 1, 4)),
    (lambda x: x.softmax(dim=-2), (2, 3, 4)),
    (lambda x: x.log_softmax(-3), (2, 3, 4)),
    (lambda x: x.transpose(-1, -3), (4, 3, 2)),
    (lambda x: x.unsqueeze(-1), (2, 3, 4, 1)),
    (lambda x: x.unsqueeze(-4), (1, 2, 3, 4)),
    (lambda x: x.flatten(-2), (2, 12)),
    (lambda x: x.permute(-1, 0, -2), (4, 2, 3)),
    (lambda x: mg.cat([x, x], dim=-1), (2, 3, 8)),
    (lambda x: mg.stack([x, x], dim=-1), (2, 3, 4, 2)),
    (lambda x: x.split(2, dim=-1)[0], (2, 3, 2)),
    (lambda x: x.gather(-1, np.zeros((2, 3, 1), dtype=np.int64)), (2, 3, 1)),
    (lambda x: x.argmax(dim=-1), (2, 3)),
    (lambda x: x.unsqueeze(-2).squeeze(-2), (2, 3, 4)),
]


@pytest.mark.parametrize("fn,shape", NEGATIVE_DIMS)
def test_negative_dims_are_valid(fn, shape):
    assert np.shape(fn(v(2, 3, 4))) == shape


# User input must never reach a Rust panic. pyo3's PanicException derives from
# BaseException, so it escapes `except Exception` and fails these tests.
EDGE_CASES = {
    "transpose_0d": lambda: Value(1.0).transpose(0, 0),
    "split_0d": lambda: Value(1.0).split(1),
    "gather_0d": lambda: Value(1.0).gather(0, np.zeros((), dtype=np.int64)),
    "sum_empty_dim": lambda: Value(np.ones((0, 2))).sum(0),
    "std_empty_dim": lambda: Value(np.ones((0, 2))).std(0),
    "gather_empty": lambda: Value(np.ones((2, 0))).gather(0, np.zeros((2, 0), dtype=np.int64)),
    "index_select_0d": lambda: Value(1.0).index_select(0, mg.tensor(0)),
    "index_select_empty": lambda: Value(np.ones((0, 2))).index_select(0, mg.tensor([0])),
    "index_empty_by_tensor": lambda: Value(np.ones((0, 2)))[mg.tensor([0])],
    "gather_empty_src": lambda: Value(np.ones((2, 0))).gather(1, mg.tensor(np.zeros((2, 1), int))),
    "slice_huge_step": lambda: v(3)[:: -(2**63)],
    "where_empty": lambda: mg.where(np.ones((2, 0), bool), v(2, 0), v(2, 0)),
    "where_empty_broadcast": lambda: mg.where(np.ones((), bool), v(1), v(2, 0)),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_no_panic_edge_cases(name):
    with contextlib.suppress(Exception):
        EDGE_CASES[name]()


small_int = st.integers(-6, 6)
shape = st.lists(st.integers(0, 4), max_size=4).map(tuple)


@given(sa=shape, sb=shape)
def test_no_panic_binary_and_matmul(sa, sb):
    for op in (
        lambda a, b: a + b,
        lambda a, b: a @ b,
        lambda a, b: mg.where(np.ones(sa, bool), a, b),
        lambda a, b: mg.cat([a, b]),
        lambda a, b: mg.stack([a, b]),
    ):
        with contextlib.suppress(Exception):
            op(Value(np.ones(sa)), Value(np.ones(sb)))


@given(
    sa=shape, target=st.lists(st.integers(-2, 6), max_size=4), dims=st.lists(small_int, max_size=3)
)
def test_no_panic_shape_ops(sa, target, dims):
    x = Value(np.ones(sa))
    calls = [
        lambda: x.reshape(*target),
        lambda: x.reshape(tuple(target)),
        lambda: x.expand(*target),
        lambda: x.permute(*dims),
        lambda: x.sum(dim=tuple(dims)),
        lambda: x.max(dim=dims[0] if dims else None),
        lambda: x.transpose(*(dims + [0, 0])[:2]),
        lambda: x.softmax(dims[0] if dims else 0),
        lambda: x.unsqueeze(dims[0] if dims else 0),
        lambda: x.squeeze(dims[0] if dims else None),
        lambda: x.split(max(1, target[0]) if target else 1, dim=dims[0] if dims else 0),
        lambda: x.chunk(max(1, target[0]) if target else 1),
        lambda: x[tuple(dims)],
        lambda: x[list(dims)],
        lambda: x[::-2, None, ...],
        lambda: x.gather(
            dims[0] if dims else 0, np.zeros(sa, dtype=np.int64) + (target[0] if target else 0)
        ),
        lambda: x.backward(gradient=np.ones(tuple(t % 4 for t in target))),
    ]
    for call in calls:
        with contextlib.suppress(Exception):
            call()
