"""Integer and bool tensors outside the engine: pickle, deepcopy, mikagrad.save/load, DLPack,
repr, draw_dot and explain mode. Each keeps the dtype and the values exactly (int64 values
beyond float64's 53 bits included, so a trip through float would show).
"""

import copy
import io
import pickle

import numpy as np
import pytest
from dtype_helpers import BOOL, F64, I32, I64, expect

import mikagrad as mg
from mikagrad import Value

INT64_MAX = np.iinfo(np.int64).max

# Per dtype: values that a float round trip would not survive.
SAMPLES = {
    "int64": [[INT64_MAX, -(2**53) - 1], [0, 7]],
    "int32": [[2**31 - 1, -(2**31)], [0, -7]],
    "bool": [[True, False], [False, True]],
}
INT_DTYPES = list(SAMPLES)
PROTOCOLS = list(range(2, pickle.HIGHEST_PROTOCOL + 1))


def sample(dtype):
    return np.array(SAMPLES[dtype], dtype=dtype)


# ---- pickle and deepcopy -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_pickle_keeps_dtype_and_values(dtype, protocol):
    v = mg.tensor(sample(dtype))
    back = pickle.loads(pickle.dumps(v, protocol=protocol))
    expect(back, sample(dtype), dtype)
    assert back.requires_grad is False and back.grad is None


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_pickle_0d(dtype):
    v = mg.tensor(sample(dtype)[0, 0])
    expect(pickle.loads(pickle.dumps(v)), sample(dtype)[0, 0], dtype)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_deepcopy_keeps_dtype_and_values_and_copies(dtype):
    v = mg.tensor(sample(dtype))
    c = copy.deepcopy(v)
    expect(c, sample(dtype), dtype)
    assert not np.shares_memory(c.numpy(), v.numpy())


def test_pickle_a_structure_of_mixed_dtypes():
    state = {"ids": mg.tensor([1, 2, 3]), "mask": mg.tensor([True, False]),
             "w": Value([0.5, 1.5])}
    back = pickle.loads(pickle.dumps(state))
    expect(back["ids"], [1, 2, 3], I64)
    expect(back["mask"], [True, False], BOOL)
    assert back["w"].dtype == F64 and back["w"].requires_grad is True


# ---- mikagrad.save / load ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_save_load_keeps_dtype_and_values(dtype, tmp_path):
    path = tmp_path / "state.npz"
    mg.save({"a": mg.tensor(sample(dtype)), "nested": [mg.tensor(sample(dtype)[0])]}, path)
    got = mg.load(path)
    a = np.asarray(got["a"])
    assert a.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(a, sample(dtype))
    n = np.asarray(got["nested"][0])
    assert n.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(n, sample(dtype)[0])


def test_save_load_to_a_file_object():
    buf = io.BytesIO()
    mg.save({"ids": mg.tensor([[1, 2], [3, 4]]), "m": mg.tensor([True]),
             "i32": mg.tensor(np.array([5], dtype=np.int32)), "step": 3}, buf)
    buf.seek(0)
    got = mg.load(buf)
    assert np.asarray(got["ids"]).dtype == I64 and np.asarray(got["ids"]).tolist() == [[1, 2],
                                                                                      [3, 4]]
    assert np.asarray(got["m"]).dtype == BOOL and np.asarray(got["m"]).tolist() == [True]
    assert np.asarray(got["i32"]).dtype == I32 and np.asarray(got["i32"]).tolist() == [5]
    assert got["step"] == 3


def test_loaded_arrays_become_tensors_of_the_same_dtype(tmp_path):
    path = tmp_path / "s.npz"
    mg.save({"ids": mg.tensor([INT64_MAX, 1])}, path)
    expect(mg.tensor(mg.load(path)["ids"]), [INT64_MAX, 1], I64)


# ---- DLPack ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_numpy_from_dlpack_keeps_dtype_and_shares(dtype):
    v = mg.tensor(sample(dtype))
    a = np.from_dlpack(v)
    assert a.dtype == np.dtype(dtype) and a.shape == (2, 2)
    np.testing.assert_array_equal(a, sample(dtype))
    assert np.shares_memory(a, v.numpy())
    assert v.__dlpack_device__() == (1, 0)


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_mikagrad_from_dlpack_keeps_dtype(dtype):
    a = sample(dtype)
    v = mg.from_dlpack(a)
    expect(v, a, dtype)
    assert v.requires_grad is False and v.is_leaf
    expect(mg.from_dlpack(v), a, dtype)  # Value to Value


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_torch_dlpack_round_trip(dtype):
    torch = pytest.importorskip("torch")
    v = mg.tensor(sample(dtype))
    tt = torch.from_dlpack(v)
    assert str(tt.dtype) == f"torch.{dtype}"
    np.testing.assert_array_equal(tt.numpy(), sample(dtype))
    src = torch.from_numpy(sample(dtype))
    expect(mg.from_dlpack(src), sample(dtype), dtype)


# ---- repr --------------------------------------------------------------------------------


def test_int_repr_prints_integers():
    r = repr(mg.tensor([1, 2, 3]))
    assert "1." not in r and "2." not in r
    assert "1" in r and "3" in r
    r2 = repr(mg.tensor([[10, 20], [30, 40]]))
    assert "10." not in r2 and "40" in r2


def test_int_repr_of_one_element():
    assert "5." not in repr(mg.tensor(5)) and "5" in repr(mg.tensor(5))
    assert "7." not in repr(mg.tensor([7])) and "7" in repr(mg.tensor([7]))


def test_bool_repr_shows_true_false():
    r = repr(mg.tensor([True, False]))
    assert "True" in r and "False" in r
    assert "True" in repr(mg.tensor(True))


def test_repr_names_non_default_int_dtypes():
    assert "int32" in repr(mg.tensor(np.array([1, 2], dtype=np.int32)))
    assert "int32" in repr(mg.tensor(np.array(3, dtype=np.int32)))


def test_float_reprs_are_unchanged():
    assert "1." in repr(Value([1.0, 2.0]))
    assert "float32" in repr(Value(np.array([1.0, 2.0], dtype=np.float32)))


# ---- draw_dot ----------------------------------------------------------------------------


def test_draw_dot_labels_show_int_and_bool_dtypes():
    pytest.importorskip("graphviz")
    from mikagrad.visualization import draw_dot

    x = Value([1.0, -2.0, 3.0])
    i = mg.tensor([2, 0, 1])
    src = draw_dot((x * i + x * (x > 0)).sum()).source
    assert "int64" in src
    assert "bool" in src
    assert "float64" in src


def test_draw_dot_of_an_int32_result():
    pytest.importorskip("graphviz")
    from mikagrad.visualization import draw_dot

    a = mg.tensor(np.array([1, 2, 3], dtype=np.int32))
    src = draw_dot(a * 2 + a).source
    assert "int32" in src
    assert "float" not in src  # nothing here is a float


def test_draw_dot_of_a_one_element_int_tensor_shows_its_dtype():
    pytest.importorskip("graphviz")
    from mikagrad.visualization import draw_dot

    src = draw_dot(mg.tensor(3) * mg.tensor(4)).source
    assert "12" in src and "int64" in src


# ---- explain mode ------------------------------------------------------------------------


def test_explain_reports_float_steps_fed_by_an_int_tensor():
    x = Value([1.0, 2.0, 3.0])
    i = mg.tensor([2, 0, 1])
    with mg.explain(file=io.StringIO()) as ex:
        (x * i).sum().backward()
    assert [s["op"] for s in ex.steps] == ["sum", "mul"]
    assert [s["dtype"] for s in ex.steps] == ["float64", "float64"]
    assert "mul(a (3,), b (3,)) -> (3,) float64" in ex.text
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 1.0])


def test_explain_float32_fed_by_int():
    x = Value(np.array([1.0, 2.0], dtype=np.float32))
    with mg.explain(file=io.StringIO()) as ex:
        (x * mg.tensor([3, 4])).sum().backward()
    assert [s["dtype"] for s in ex.steps] == ["float32", "float32"]


def test_explain_has_no_step_for_the_mask():
    x = Value([-1.0, 2.0, 3.0])
    with mg.explain(file=io.StringIO()) as ex:
        (x * (x > 0)).sum().backward()
    assert [s["op"] for s in ex.steps] == ["sum", "mul"]
    assert all(s["dtype"] == "float64" for s in ex.steps)


def test_explain_prints_dtype(capsys):
    x = Value([1.0, 2.0])
    (x * mg.tensor([1, 1])).sum().backward(explain=True)
    out = capsys.readouterr().out
    assert "-> (2,) float64" in out and "-> () float64" in out


# ---- regressions from review ----------------------------------------------------------------


def test_bool_bytes_other_than_0_and_1_read_as_true():
    # numpy bools over arbitrary bytes: copied (read-only here) and shared, both as nonzero
    raw = np.frombuffer(b"\x02\x00\x05", np.uint8).view(np.bool_)
    assert mg.tensor(raw).tolist() == [True, False, True]
    shared = np.array([2, 0, 5], np.uint8).view(np.bool_)
    v = Value(shared, requires_grad=False)
    assert (v == mg.tensor([True, False, True])).all().item() is True


def test_argmax_and_max_over_a_dim_are_exact_beyond_2_to_53():
    t = mg.tensor([2**62 + 1, 2**62])
    assert t.argmin().item() == 1 and t.argmax().item() == 0
    v, i = mg.tensor([2**53, 2**53 + 1]).max(0)
    assert (v.item(), i.item()) == (2**53 + 1, 1)


def test_sort_and_max_of_a_0d_bool():
    v, i = mg.tensor(True).sort()
    assert v.item() is True and i.item() == 0
    assert mg.tensor(False).max(0).values.item() is False


def test_uint64_index_past_int64_is_an_index_error():
    with pytest.raises(IndexError, match="out of bounds"):
        mg.zeros(2)[np.array([2**64 - 1], np.uint64)]


def test_int_power_wraps_for_any_exponent():
    assert (mg.tensor([-1]) ** (2**32)).item() == 1
    assert (mg.tensor([3]) ** 20).item() == 3**20


def test_float_clamp_bounds_on_ints_give_floats():
    out = mg.tensor([1, 5]).clamp(1.5, 2.5)
    assert out.dtype == np.float64 and out.tolist() == [1.5, 2.5]
    assert mg.tensor([1, 5]).clamp(2, 3).tolist() == [2, 3]


def test_embedding_refuses_negative_int_indices():
    with pytest.raises(IndexError, match="out of range"):
        mg.nn.Embedding(3, 2)(mg.tensor([-1]))


def test_zero_divisor_check_sees_only_the_view():
    # the divisor's buffer holds a 0 outside the sliced view: no error; a 0 inside: an error
    assert (mg.tensor([8, 8]) // mg.tensor([4, 0, 2])[::2]).tolist() == [2, 4]
    with pytest.raises(ValueError, match="division by zero"):
        mg.tensor([8, 8]) % mg.tensor([4, 0, 2])[:2]
