"""numpy, DLPack, pickle and copy interop.

What these tests pin down (and document):

* ``np.asarray(v)``, ``v.numpy()`` and ``v.numpy()`` are views of the Value's own memory: no copy,
  for contiguous and strided Values alike. ``np.array(v)`` copies, as it does for arrays.
* ``Value(a)`` copies only when it must: a C-contiguous, aligned, writeable float32/float64
  array is shared (the Value is a view of ``a``, as ``torch.from_numpy``; a write to either
  shows in both, and the Value keeps ``a``'s memory alive). Anything else is copied into memory
  the Value owns: other layouts (Fortran order, strides, broadcasts), other dtypes (ints,
  float16), read-only arrays, lists, a ``dtype=`` that differs from the array's, and another
  Value (a new Value never aliases an old one). ``mikagrad.tensor(a)`` always copies, as
  ``torch.tensor`` does.
* numpy ufuncs (``np.exp(v)``, ``np.add(v, 1)``) raise a TypeError, because ``Value`` sets
  ``__array_ufunc__ = None``; an operator with an array first (``arr + v``) reaches the Value's
  reflected method and records the op.
* DLPack: ``np.from_dlpack(v)`` and ``torch.from_dlpack(v)`` share the Value's memory, and
  ``mikagrad.from_dlpack(x)`` makes a leaf Value (no grad) that shares ``x``'s memory when
  ``Value`` would share the array (C-contiguous, writeable float32/float64), as
  ``torch.from_dlpack`` does; otherwise it copies once.
* ``pickle`` and ``copy.deepcopy`` of a leaf Value or a Module round-trip exactly (data, dtype,
  shape, requires_grad, grad); a Value made by an op refuses, as PyTorch's non-leaf tensors do.
"""

from __future__ import annotations

import copy
import gc
import pickle

import numpy as np
import pytest

import mikagrad as mg
from mikagrad import nn
from mikagrad.engine import Value

DTYPES = [np.float32, np.float64]
PROTOCOLS = list(range(2, pickle.HIGHEST_PROTOCOL + 1))


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.shares_memory(a, b))


# ---- numpy views: zero-copy out of a Value ----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_asarray_and_numpy_are_zero_copy(dtype):
    v = Value(np.arange(12, dtype=dtype).reshape(3, 4))
    a = np.asarray(v)
    assert a.dtype == dtype and a.shape == (3, 4)
    assert _same_memory(a, v.numpy())
    assert _same_memory(v.numpy(), v.numpy())
    assert a.flags.c_contiguous
    a[0, 0] = 42.0  # a write through the view lands in the Value
    assert v.numpy()[0, 0] == 42.0 and v.numpy()[0, 0] == 42.0


def test_strided_views_are_zero_copy_too():
    v = Value(np.arange(12.0).reshape(3, 4))
    for view in (v.T, v[:, ::2], v.detach().transpose(0, 1), v.expand(2, 3, 4)):
        assert _same_memory(np.asarray(view), v.numpy())
    np.testing.assert_array_equal(np.asarray(v.T), np.arange(12.0).reshape(3, 4).T)


def test_np_array_copies():
    v = Value(np.arange(4.0))
    a = np.array(v)
    assert not _same_memory(a, v.numpy())
    np.testing.assert_array_equal(a, v.numpy())


def test_asarray_with_another_dtype_copies():
    v = Value(np.arange(4.0))
    a = np.asarray(v, dtype=np.float32)
    assert a.dtype == np.float32 and not _same_memory(a, v.numpy())


def test_asarray_copy_false_refuses_a_needed_copy():
    """numpy 2's ``__array__`` protocol: ``copy=False`` must raise when a copy is needed."""
    v = Value(np.arange(4.0))
    assert _same_memory(np.asarray(v, copy=False), v.numpy())
    with pytest.raises(ValueError):
        np.asarray(v, dtype=np.float32, copy=False)


# ---- into a Value: shared when it can be, else copied -----------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_value_from_a_contiguous_float_array_shares_it(dtype):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    v = Value(a)
    assert v.dtype == dtype and v.shape == (2, 3)
    assert _same_memory(v.numpy(), a)
    a[0, 0] = 100.0
    assert v.numpy()[0, 0] == 100.0, "a write to the source array should show in the Value"
    v.numpy()[1, 1] = -1.0
    assert a[1, 1] == -1.0, "a write to the Value should show in the source array"


def test_shared_array_stays_alive_with_the_value():
    a = np.arange(1000.0)
    v = Value(a)
    del a
    gc.collect()
    assert v.numpy().sum() == 999 * 1000 / 2
    assert (v * 2).sum().item() == 999 * 1000


def _read_only():
    a = np.arange(6.0).reshape(2, 3)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("make", [
    lambda: np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    lambda: np.arange(12.0).reshape(3, 4)[:, ::2],
    lambda: np.arange(6, dtype=np.int64).reshape(2, 3),
    lambda: np.arange(6, dtype=np.float16).reshape(2, 3),
    lambda: np.broadcast_to(np.arange(3.0), (2, 3)),
    _read_only,
], ids=["fortran", "strided", "int64", "float16", "broadcast", "read-only"])
def test_value_from_other_arrays_copies_to_its_own_memory(make):
    a = make()
    v = Value(a)
    np.testing.assert_array_equal(v.numpy(), a)
    assert not _same_memory(v.numpy(), a)
    assert v.numpy().flags.c_contiguous and v.numpy().flags.writeable


def test_value_with_another_dtype_copies():
    a = np.arange(4.0)
    v = Value(a, dtype=np.float32)
    assert v.dtype == np.float32 and not _same_memory(v.numpy(), a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tensor_always_copies(dtype):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    v = mg.tensor(a)
    assert v.dtype == dtype and not _same_memory(v.numpy(), a)
    a[0, 0] = 100.0
    assert v.numpy()[0, 0] == 0.0


def test_value_from_a_value_never_aliases_it():
    v = Value([[1.0, 2.0], [3.0, 4.0]])
    for w in (Value(v), mg.tensor(v)):
        np.testing.assert_array_equal(w.numpy(), v.numpy())
        assert w.is_leaf and w is not v and not _same_memory(w.numpy(), v.numpy())


# ---- numpy ufuncs and reflected operators -----------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda v: np.exp(v),
    lambda v: np.tanh(v),
    lambda v: np.maximum(v, 0),
    lambda v: np.add.reduce(v),
], ids=["exp", "tanh", "maximum", "add.reduce"])
def test_ufuncs_on_a_value_that_requires_grad_raise_a_clear_type_error(call):
    v = Value(np.ones(3))
    with pytest.raises(TypeError, match="requires grad"):
        call(v)


@pytest.mark.parametrize("call", [
    lambda v: np.exp(v),
    lambda v: np.tanh(v),
    lambda v: np.maximum(v, 0),
    lambda v: np.add.reduce(v),
    lambda v: np.isfinite(v),
], ids=["exp", "tanh", "maximum", "add.reduce", "isfinite"])
def test_ufuncs_on_a_value_without_grad_run_on_its_data(call):
    # As torch's detached tensors: `np.isfinite(p.grad)` works.
    a = np.array([0.5, 1.0, 2.0])
    np.testing.assert_array_equal(call(Value(a, requires_grad=False)), call(a))


@pytest.mark.parametrize("call", [
    lambda v: np.add(v, 1),
    lambda v: np.add(1, v),
    lambda v: np.multiply(np.ones(3), v),
    lambda v: np.matmul(v, v),
], ids=["add", "add-reflected", "multiply-array-first", "matmul"])
def test_operator_ufuncs_give_a_value_with_its_graph(call):
    v = Value(np.ones(3))
    out = call(v)
    assert isinstance(out, Value) and out.requires_grad and not out.is_leaf


@pytest.mark.parametrize("op,grad", [
    (lambda a, v: a + v, lambda a: np.ones(3)),
    (lambda a, v: a - v, lambda a: -np.ones(3)),
    (lambda a, v: a * v, lambda a: a),
    (lambda a, v: a / v, lambda a: -a / 4.0),  # v = 2
    (lambda a, v: a ** v, lambda a: a ** 2 * np.log(a)),
], ids=["add", "sub", "mul", "div", "pow"])
def test_array_first_operators_reach_the_value(op, grad):
    a = np.array([1.0, 2.0, 3.0])
    v = Value(np.full(3, 2.0))
    out = op(a, v)
    assert isinstance(out, Value) and out.op and not out.is_leaf
    out.sum().backward()
    np.testing.assert_allclose(v.grad, grad(a), rtol=1e-12)


def test_array_first_matmul_and_numpy_scalars_reach_the_value():
    v = Value(np.arange(6.0).reshape(3, 2))
    out = np.ones((2, 3)) @ v
    assert isinstance(out, Value) and out.shape == (2, 2)
    out.sum().backward()
    np.testing.assert_array_equal(v.grad, np.full((3, 2), 2.0))
    for s in (np.float64(2.0), np.float32(2.0), np.int64(2)):
        r = s * v
        assert isinstance(r, Value) and not r.is_leaf, type(s)


@pytest.mark.parametrize("call", [
    lambda v: np.dot(v, np.ones(2)),
    lambda v: np.where(v > 1, v, 0.0),
    lambda v: np.clip(v, 0.0, 1.0),
    lambda v: np.concatenate([v, v]),
    lambda v: np.sum(v),
], ids=["dot", "where", "clip", "concatenate", "sum"])
def test_numpy_functions_do_not_silently_drop_the_graph(call):
    """Non-ufunc numpy functions either give a Value in the graph or a clear TypeError."""
    v = Value(np.arange(6.0).reshape(3, 2))
    try:
        out = call(v)
    except TypeError as e:
        assert "Value" in str(e) and "unexpected keyword" not in str(e), str(e)
        return
    assert isinstance(out, Value) and not out.is_leaf, f"got {type(out).__name__}"


# ---- pickle and deepcopy ------------------------------------------------------------------------


def _leaf_cases():
    a = Value(np.arange(6.0).reshape(2, 3))
    (a * a).sum().backward()
    b = Value(np.linspace(-1, 1, 5, dtype=np.float32))
    c = mg.tensor(np.float64(3.5))
    d = Value(np.zeros((0, 3)), requires_grad=False)
    e = Value(np.arange(12.0).reshape(3, 4)).detach().T.detach()  # a strided leaf
    with mg.no_grad():
        f = Value(np.ones(2)) * 3  # made under no_grad: a leaf
    return {"with-grad": a, "float32": b, "0-d": c, "empty": d, "strided": e, "no_grad": f}


def _assert_same_leaf(new, old):
    assert type(new) is Value
    assert new.dtype == old.dtype and new.shape == old.shape
    assert new.numpy().tobytes() == np.ascontiguousarray(old.numpy()).tobytes()  # bit-exact
    assert new.requires_grad == old.requires_grad
    assert new.is_leaf
    if old.grad is None:
        assert new.grad is None
    else:
        assert new.grad is not None
        assert np.asarray(new.grad).tobytes() == np.asarray(old.grad).tobytes()
    if old.size:
        assert not _same_memory(new.numpy(), old.numpy()), "the copy shares memory"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("name", list(_leaf_cases()))
def test_pickle_leaf_value_round_trips_exactly(name, protocol):
    v = _leaf_cases()[name]
    _assert_same_leaf(pickle.loads(pickle.dumps(v, protocol=protocol)), v)


@pytest.mark.parametrize("name", list(_leaf_cases()))
def test_deepcopy_leaf_value_round_trips_exactly(name):
    v = _leaf_cases()[name]
    _assert_same_leaf(copy.deepcopy(v), v)


def test_unpickled_value_is_a_working_leaf():
    v = pickle.loads(pickle.dumps(Value([1.0, 2.0, 3.0])))
    (v * v).sum().backward()
    np.testing.assert_array_equal(v.grad, [2.0, 4.0, 6.0])


def test_deepcopy_keeps_shared_references_shared():
    v = Value(np.ones(3))
    a, b = copy.deepcopy([v, v])
    assert a is b and a is not v


@pytest.mark.parametrize("dump", [
    lambda v: pickle.dumps(v),
    pytest.param(lambda v: copy.deepcopy(v)),
    lambda v: pickle.dumps({"nested": [v]}),
], ids=["pickle", "deepcopy", "nested"])
def test_non_leaf_value_refuses_to_pickle(dump):
    x = Value(np.ones(3))
    y = x * 2
    with pytest.raises(RuntimeError, match=r"(?i)leaf") as info:
        dump(y)
    assert "detach" in str(info.value), "the message should say how to fix it"
    dump(y.detach())  # the data alone is fine


def _modules():
    mg.manual_seed(0)
    mlp = nn.MLP(3, [8, 8, 2])
    seq = nn.Sequential(nn.Linear(3, 8), nn.LayerNorm(8), nn.GELU(), nn.Dropout(0.25),
                        nn.Linear(8, 2, bias=False))
    seq.eval()
    emb = nn.Embedding(5, 3)
    return {"MLP": mlp, "Sequential": seq, "Embedding": emb}


def _module_input(name):
    if name == "Embedding":
        return np.array([[0, 4], [2, 2]])
    return Value(np.linspace(-1, 1, 12).reshape(4, 3), requires_grad=False)


def _assert_same_module(new, old, name):
    assert type(new) is type(old) and new is not old
    sd_new, sd_old = new.state_dict(), old.state_dict()
    assert list(sd_new) == list(sd_old)
    for k in sd_old:
        assert sd_new[k].dtype == sd_old[k].dtype and sd_new[k].tobytes() == sd_old[k].tobytes(), k
    for p_new, p_old in zip(new.parameters(), old.parameters()):
        assert p_new is not p_old and p_new.requires_grad and p_new.is_leaf
        assert not _same_memory(p_new.numpy(), p_old.numpy())
    assert [m.training for m in new.modules()] == [m.training for m in old.modules()]
    x = _module_input(name)
    np.testing.assert_array_equal(new(x).numpy(), old(x).numpy())
    new(x).sum().backward()  # the copy trains
    assert all(p.grad is not None for p in new.parameters())


@pytest.mark.parametrize("name", ["MLP", "Sequential", "Embedding"])
def test_pickle_module_round_trips_exactly(name):
    m = _modules()[name]
    _assert_same_module(pickle.loads(pickle.dumps(m)), m, name)


@pytest.mark.parametrize("name", ["MLP", "Sequential", "Embedding"])
def test_deepcopy_module_round_trips_exactly(name):
    m = _modules()[name]
    _assert_same_module(copy.deepcopy(m), m, name)


class Tied(nn.Module):
    """A module-level class (pickle finds classes by name) with one weight used twice."""

    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(4, 4)
        self.dec = nn.Linear(4, 4)
        self.dec.weight = self.enc.weight

    def forward(self, x):
        return self.dec(self.enc(x))


def test_module_copy_keeps_tied_weights_tied():
    for new in (copy.deepcopy(Tied()), pickle.loads(pickle.dumps(Tied()))):
        assert new.dec.weight is new.enc.weight


def test_module_state_dict_survives_pickle_today():
    """Until Modules pickle, their state_dict (plain numpy arrays) always does."""
    m = _modules()["MLP"]
    sd = pickle.loads(pickle.dumps(m.state_dict()))
    fresh = nn.MLP(3, [8, 8, 2])
    fresh.load_state_dict(sd)
    x = _module_input("MLP")
    np.testing.assert_array_equal(fresh(x).numpy(), m(x).numpy())


# ---- DLPack --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_dlpack_protocol_methods(dtype):
    v = Value(np.arange(4, dtype=dtype))
    assert v.__dlpack_device__() == (1, 0)  # (kDLCPU, device 0)
    capsule = v.__dlpack__()
    assert type(capsule).__name__ == "PyCapsule"


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_from_dlpack_is_zero_copy(dtype):
    v = Value(np.arange(12, dtype=dtype).reshape(3, 4))
    a = np.from_dlpack(v)
    assert a.dtype == dtype and a.shape == (3, 4)
    assert _same_memory(a, v.numpy())
    t = np.from_dlpack(v.T)  # strided
    np.testing.assert_array_equal(t, v.numpy().T)
    assert _same_memory(t, v.numpy())


def test_dlpack_export_keeps_the_memory_alive():
    v = Value(np.arange(1000.0))
    a = np.from_dlpack(v * 2)  # the only reference to the product is the capsule's
    del v
    gc.collect()
    assert a.sum() == 2 * 999 * 1000 / 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_mikagrad_from_dlpack_round_trip_with_numpy(dtype):
    a = np.arange(6, dtype=dtype).reshape(2, 3)
    v = mg.from_dlpack(a)
    assert isinstance(v, Value) and v.is_leaf and not v.requires_grad
    assert v.dtype == dtype and v.shape == (2, 3)
    np.testing.assert_array_equal(v.numpy(), a)
    assert _same_memory(v.numpy(), a), "from_dlpack copied a C-contiguous float array"
    back = np.from_dlpack(v)
    np.testing.assert_array_equal(back, a)
    w = mg.from_dlpack(v)  # Value to Value
    np.testing.assert_array_equal(w.numpy(), v.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_round_trip(dtype):
    torch = pytest.importorskip("torch")
    v = Value(np.arange(6, dtype=dtype).reshape(2, 3))
    t = torch.from_dlpack(v)
    assert str(t.dtype) == f"torch.{dtype}" and tuple(t.shape) == (2, 3)
    assert t.data_ptr() == v.numpy().ctypes.data, "torch.from_dlpack copied"
    t[0, 0] = 7.0
    assert v.numpy()[0, 0] == 7.0
    tt = torch.from_dlpack(v.T)  # strided
    assert torch.equal(tt, torch.from_numpy(np.ascontiguousarray(v.numpy().T)))

    src = torch.linspace(-1, 1, 8, dtype=getattr(torch, dtype)).reshape(2, 4)
    w = mg.from_dlpack(src)
    assert isinstance(w, Value) and w.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(w.numpy(), src.numpy())
    assert w.numpy().ctypes.data == src.data_ptr(), "from_dlpack copied a contiguous tensor"
    strided = mg.from_dlpack(src.T)  # not C-contiguous: copied
    np.testing.assert_array_equal(strided.numpy(), src.T.numpy())
    w2 = mg.from_dlpack(src.requires_grad_().detach())
    np.testing.assert_array_equal(w2.numpy(), src.detach().numpy())
