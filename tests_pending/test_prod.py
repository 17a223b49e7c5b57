"""prod (not yet built): of int and bool tensors it is int64 and exact, as torch."""

import numpy as np

import mikagrad as mg
from mikagrad import Value

I64, I32, BOOL = (np.dtype(n) for n in ("int64", "int32", "bool"))


def expect(v, values, dtype):
    want = np.array(values, dtype=dtype)
    assert isinstance(v, Value) and v.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(v.numpy()), want)


def t(values, dtype):
    return mg.tensor(np.array(values, dtype=dtype))


def test_prod_of_ints_is_int64():
    expect(t([2, 3, 4], I32).prod(), 24, I64)
    expect(t([2, 3], I64).prod(), 6, I64)
    expect(t([True, False], BOOL).prod(), 0, I64)
    expect(t([True, True], BOOL).prod(), 1, I64)
    expect(t([[1, 2], [3, 4]], I32).prod(1), [2, 12], I64)
    expect(t([2**20, 2**20, 2**20], I64).prod(), 2**60, I64)  # exact, beyond float53
