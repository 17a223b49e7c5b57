"""Shared by the dtype tests: exact expectations, and torch as an oracle where installed."""

import numpy as np

import mikagrad as mg
from mikagrad import Value

I64, I32, BOOL, F32, F64 = (np.dtype(n) for n in ("int64", "int32", "bool", "float32", "float64"))
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def expect(v, values, dtype):
    """``v`` is a Value of exactly this dtype, shape and these values."""
    want = np.array(values, dtype=dtype)
    assert isinstance(v, Value), f"expected a Value, got {type(v).__name__}"
    assert v.dtype == want.dtype, f"dtype {v.dtype}, expected {want.dtype}"
    got = np.asarray(v.numpy())
    assert got.dtype == want.dtype, f"numpy() dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape}, expected {want.shape}"
    np.testing.assert_array_equal(got, want)


def t(values, dtype):
    """A tensor of exactly ``dtype`` (through numpy, so the dtype is never inferred)."""
    return mg.tensor(np.array(values, dtype=dtype))


def tname(dtype):
    """torch.int64 -> 'int64', to compare with a numpy dtype's name."""
    return str(dtype).split(".")[-1]


def same_as_torch(v, r):
    """MikaGrad result ``v`` has torch result ``r``'s dtype, shape and values."""
    assert v.dtype.name == tname(r.dtype), f"dtype {v.dtype}, torch gives {tname(r.dtype)}"
    want = r.detach().numpy()
    got = np.asarray(v.numpy())
    assert got.shape == want.shape, f"shape {got.shape}, torch gives {want.shape}"
    if want.dtype.kind == "f":
        tol = 1e-6 if want.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, want)
