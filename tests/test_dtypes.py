"""Integer and bool dtypes: names, construction, casts, promotion, arithmetic, comparisons,
logic ops, creation functions, item/__index__/__int__, numpy views and the gradient rules.

PyTorch is the spec where this file is silent, except that MikaGrad's default float dtype is
float64 (torch's is float32). Every rule has a test with fixed expected values; the tables
marked "oracle" also compare against torch (skipped without it), with torch's default dtype
set to float64 so that both libraries mean the same thing by "the default float".
"""

import operator

import numpy as np
import pytest
from dtype_helpers import BOOL, F32, F64, I32, I64, expect, same_as_torch, t

import mikagrad as mg
from mikagrad import Value

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


class T:
    """A tensor for a parameter table, built inside the test (not at collection)."""

    def __init__(self, values, dtype):
        self.values, self.dtype = values, np.dtype(dtype)

    def make(self):
        return t(self.values, self.dtype)

    def array(self):
        return np.array(self.values, dtype=self.dtype)

    def __repr__(self):
        return f"{self.dtype.name}{np.shape(self.values)}"


def build(x):
    return x.make() if isinstance(x, T) else x


def ref(x):
    """The numpy twin of a table entry (Python numbers stay Python numbers)."""
    return x.array() if isinstance(x, T) else x


# ---- dtype names -------------------------------------------------------------------------


@pytest.mark.parametrize("name,alias,dtype", [
    ("int64", "long", "int64"),
    ("int32", "int", "int32"),
    ("bool", None, "bool"),
    ("float32", "float", "float32"),
    ("float64", "double", "float64"),
])
def test_dtype_names_are_numpy_dtypes(name, alias, dtype):
    d = getattr(mg, name)
    assert isinstance(d, np.dtype) and d == np.dtype(dtype)
    if alias is not None:
        assert getattr(mg, alias) == np.dtype(dtype)


def test_dtype_compares_with_numpy_types():
    v = mg.tensor([1, 2])
    assert v.dtype == np.int64 and v.dtype == mg.int64 and v.dtype == np.dtype("int64")
    assert v.dtype != np.int32 and v.dtype != np.float64


def test_default_dtype_is_float64_and_can_change():
    assert mg.get_default_dtype() == np.float64
    mg.set_default_dtype(mg.float32)
    assert mg.get_default_dtype() == np.float32
    mg.set_default_dtype(mg.float64)
    assert mg.get_default_dtype() == np.float64


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_default_dtype_must_be_floating(dtype):
    # torch: "only floating-point types are supported as the default type"
    with pytest.raises((TypeError, ValueError)):
        mg.set_default_dtype(np.dtype(dtype))
    assert mg.get_default_dtype() == np.float64


# ---- construction: mg.tensor follows torch.tensor ---------------------------------------


TENSOR_INFERENCE = [
    ("py_int", 3, 3, I64),
    ("py_bool", True, True, BOOL),
    ("py_float", 2.5, 2.5, F64),
    ("int_list", [1, 2], [1, 2], I64),
    ("nested_int_list", [[1, 2], [3, 4]], [[1, 2], [3, 4]], I64),
    ("bool_list", [True, False], [True, False], BOOL),
    ("float_list", [1.0, 2.5], [1.0, 2.5], F64),
    ("int_float_list", [1, 2.5], [1.0, 2.5], F64),
    ("bool_int_list", [True, 2], [1, 2], I64),
    ("bool_float_list", [True, 2.5], [1.0, 2.5], F64),
    ("np_int64", np.array([1, 2], dtype=np.int64), [1, 2], I64),
    ("np_int32", np.array([1, 2], dtype=np.int32), [1, 2], I32),
    ("np_bool", np.array([True, False]), [True, False], BOOL),
    ("np_float32", np.array([0.5, 1.5], dtype=np.float32), [0.5, 1.5], F32),
    ("np_float64", np.array([0.5, 1.5]), [0.5, 1.5], F64),
    ("np_int32_0d", np.array(7, dtype=np.int32), 7, I32),
    ("np_int64_scalar", np.int64(3), 3, I64),
    ("np_float32_scalar", np.float32(1.5), 1.5, F32),
    ("np_bool_scalar", np.bool_(True), True, BOOL),
]


@pytest.mark.parametrize("data,values,dtype", [r[1:] for r in TENSOR_INFERENCE],
                         ids=[r[0] for r in TENSOR_INFERENCE])
def test_tensor_infers_dtype_like_torch(data, values, dtype):
    v = mg.tensor(data)
    expect(v, values, dtype)
    assert v.requires_grad is False


@pytest.mark.parametrize("data", [r[1] for r in TENSOR_INFERENCE],
                         ids=[r[0] for r in TENSOR_INFERENCE])
def test_tensor_inference_oracle(torch64, data):
    torch = torch64
    same_as_torch(mg.tensor(data), torch.tensor(data))


def test_tensor_with_default_float32():
    mg.set_default_dtype(mg.float32)
    expect(mg.tensor([1.5, 2.0]), [1.5, 2.0], F32)
    expect(mg.tensor([1, 2.5]), [1.0, 2.5], F32)
    expect(mg.tensor([1, 2]), [1, 2], I64)  # ints are not affected by the default float
    expect(mg.tensor(np.array([1.5])), [1.5], F64)  # a numpy array keeps its dtype


@pytest.mark.parametrize("data,dtype,values", [
    ([1.5, 2.7, -2.7], I64, [1, 2, -2]),  # truncation toward zero, as torch
    ([1, 2], F32, [1.0, 2.0]),
    ([1, 2], I32, [1, 2]),
    ([0, 3, -1], BOOL, [False, True, True]),
    ([True, False], I64, [1, 0]),
    (np.array([1, 2], dtype=np.int32), I64, [1, 2]),
])
def test_tensor_with_dtype(data, dtype, values):
    expect(mg.tensor(data, dtype=dtype), values, dtype)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_tensor_of_a_tensor_keeps_its_dtype_and_copies(dtype):
    a = t([1, 0, 1], dtype)
    b = mg.tensor(a)
    expect(b, [1, 0, 1], dtype)
    assert not np.shares_memory(a.numpy(), b.numpy())


@pytest.mark.parametrize("data", [5, 5.0, True, [1, 2], [True, False],
                                  np.array([1, 2]), np.array([1, 2], dtype=np.int32),
                                  np.array([True, False])],
                         ids=["int", "float", "bool", "int_list", "bool_list", "np_int64",
                              "np_int32", "np_bool"])
def test_value_requires_grad_so_becomes_default_float(data):
    # micrograd's meaning: Value(x) requires grad, so it must be floating point
    v = Value(data)
    assert v.dtype == F64 and v.requires_grad is True
    np.testing.assert_array_equal(v.numpy(), np.asarray(data, dtype=np.float64))


def test_value_of_a_number_follows_the_default_float():
    mg.set_default_dtype(mg.float32)
    assert Value(5).dtype == F32 and Value(np.array([1, 2])).dtype == F32


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_value_without_grad_keeps_an_integer_array_dtype(dtype):
    v = Value(np.array([1, 0, 1], dtype=dtype), requires_grad=False)
    expect(v, [1, 0, 1], dtype)
    assert v.requires_grad is False


# ---- casts -------------------------------------------------------------------------------


CASTS = [
    # (source values, source dtype, cast, expected values, expected dtype)
    ([2.7, -2.7, 0.5], F64, lambda v: v.long(), [2, -2, 0], I64),
    ([2.7, -2.7, 0.5], F32, lambda v: v.int(), [2, -2, 0], I32),
    ([1, 2, 3], I64, lambda v: v.float(), [1.0, 2.0, 3.0], F32),  # .float() is float32!
    ([1, 2, 3], I32, lambda v: v.double(), [1.0, 2.0, 3.0], F64),
    ([0, 3, -1], I64, lambda v: v.bool(), [False, True, True], BOOL),
    ([0.0, 0.5, -2.0], F64, lambda v: v.bool(), [False, True, True], BOOL),
    ([True, False], BOOL, lambda v: v.long(), [1, 0], I64),
    ([True, False], BOOL, lambda v: v.int(), [1, 0], I32),
    ([True, False], BOOL, lambda v: v.float(), [1.0, 0.0], F32),
    ([2**32 + 5, -(2**31) - 1], I64, lambda v: v.int(), [5, 2**31 - 1], I32),  # wraps
    ([-5, 7], I32, lambda v: v.long(), [-5, 7], I64),
    ([1, 2], I64, lambda v: v.to(mg.int32), [1, 2], I32),
    ([1, 2], I64, lambda v: v.to(np.float64), [1.0, 2.0], F64),
    ([1.9, -1.9], F64, lambda v: v.to(mg.int64), [1, -1], I64),
    ([1, 0], I32, lambda v: v.to(mg.bool), [True, False], BOOL),
    ([1, 2], I64, lambda v: v.to("int32"), [1, 2], I32),
    ([1, 2], I64, lambda v: v.type(mg.float64), [1.0, 2.0], F64),
    ([1.5, 2.5], F64, lambda v: v.type(mg.int32), [1, 2], I32),
    ([3, 4], I32, lambda v: v.type(mg.int32), [3, 4], I32),
]


@pytest.mark.parametrize("src,src_dtype,cast,values,dtype", CASTS)
def test_casts(src, src_dtype, cast, values, dtype):
    expect(cast(t(src, src_dtype)), values, dtype)


@pytest.mark.parametrize("method", ["long", "int", "float", "double", "bool"])
@pytest.mark.parametrize("src_dtype", ["int64", "int32", "bool", "float32", "float64"])
def test_cast_oracle(torch64, method, src_dtype):
    torch = torch64
    if src_dtype.startswith("float"):  # in range: float -> int out of range is undefined
        data = np.array([2.7, -2.7, 0.0, 3.0, -0.5], dtype=src_dtype)
    elif src_dtype == "bool":
        data = np.array([True, False, True])
    else:  # int64 -> int32 wraps
        data = np.array([2, -2, 0, 3, 2**31 + 7], dtype=np.int64).astype(src_dtype)
    v = getattr(mg.tensor(data), method)()
    r = getattr(torch.from_numpy(data.copy()), method)()
    same_as_torch(v, r)


def test_cast_does_not_change_the_source():
    x = t([1.5, 2.5], F64)
    x.long()
    expect(x, [1.5, 2.5], F64)


# ---- promotion, fixed values ---------------------------------------------------------------


PROMOTION = [
    # (id, left, right, expected dtype): both operand orders are checked with `+`
    ("i32+i64", T([1, 2, 3], I32), T([1, 2, 3], I64), I64),
    ("i64+f32", T([1, 2, 3], I64), T([0.5, 0.5, 0.5], F32), F32),
    ("i32+f64", T([1, 2, 3], I32), T([0.5, 0.5, 0.5], F64), F64),
    ("f32+f64", T([1, 2, 3], F32), T([0.5, 0.5, 0.5], F64), F64),
    ("bool+i32", T([True, False, True], BOOL), T([1, 2, 3], I32), I32),
    ("bool+i64", T([True, False, True], BOOL), T([1, 2, 3], I64), I64),
    ("bool+f32", T([True, False, True], BOOL), T([0.5, 0.5, 0.5], F32), F32),
    ("i64+py_float", T([1, 2, 3], I64), 0.5, F64),
    ("i32+py_float", T([1, 2, 3], I32), 0.5, F64),
    ("i32+py_int", T([1, 2, 3], I32), 2, I32),
    ("i64+py_int", T([1, 2, 3], I64), 2, I64),
    ("i32+py_bool", T([1, 2, 3], I32), True, I32),
    ("f32+py_float", T([1, 2, 3], F32), 0.5, F32),
    ("f32+py_int", T([1, 2, 3], F32), 2, F32),
    ("bool+py_int", T([True, False, True], BOOL), 2, I64),
    ("bool+py_float", T([True, False, True], BOOL), 0.5, F64),
    # 0-d tensors do not promote a dimensioned tensor within the same category ...
    ("f32+f64_0d", T([1, 2, 3], F32), T(0.5, F64), F32),
    ("i32+i64_0d", T([1, 2, 3], I32), T(2, I64), I32),
    ("bool+bool_0d", T([True, False, True], BOOL), T(True, BOOL), BOOL),
    # ... but do across categories, with the 0-d tensor's own dtype
    ("i32+f64_0d", T([1, 2, 3], I32), T(0.5, F64), F64),
    ("i32+f32_0d", T([1, 2, 3], I32), T(0.5, F32), F32),
    ("i64+f32_0d", T([1, 2, 3], I64), T(0.5, F32), F32),
    ("bool+i32_0d", T([True, False, True], BOOL), T(2, I32), I32),
    ("bool+i64_0d", T([True, False, True], BOOL), T(2, I64), I64),
    # two 0-d tensors promote normally
    ("i32_0d+i64_0d", T(1, I32), T(2, I64), I64),
    ("f32_0d+f64_0d", T(1, F32), T(0.5, F64), F64),
    ("i64_0d+py_float", T(1, I64), 0.5, F64),
    ("i32_0d+py_int", T(1, I32), 2, I32),
]


@pytest.mark.parametrize("a,b,dtype", [r[1:] for r in PROMOTION], ids=[r[0] for r in PROMOTION])
def test_promotion_fixed(a, b, dtype):
    want = np.add(np.asarray(ref(a), dtype=dtype), np.asarray(ref(b), dtype=dtype))
    a, b = build(a), build(b)
    expect(a + b, want, dtype)
    expect(b + a, want, dtype)


def test_int_plus_float_tensor_values():
    expect(t([1, 2, 3], I64) + t([0.5, 0.25, -1.0], F32), [1.5, 2.25, 2.0], F32)


@pytest.mark.parametrize("a,b", [
    (T([1, 2, 3], I64), 0.5), (T([1, 2, 3], I32), T([1, 2, 3], I64)), (T([1, 2], I32), 2),
])
def test_true_division_of_ints_is_the_default_float(a, b):
    a, b = build(a), build(b)
    out = a / b
    assert out.dtype == F64
    mg.set_default_dtype(mg.float32)
    assert (a / b).dtype == F32
    assert (a + 0.5).dtype == F32


def test_int_true_division_values():
    expect(t([1, 2, -7], I64) / t([2, 2, 2], I64), [0.5, 1.0, -3.5], F64)
    expect(t([1, 3], I32) / 2, [0.5, 1.5], F64)
    expect(6 / t([4, -3], I32), [1.5, -2.0], F64)
    expect(t([True, False], BOOL) / 2, [0.5, 0.0], F64)


# ---- promotion and values, torch oracle -----------------------------------------------------

# Left operands take these values, right operands those: divisors stay nonzero.
LEFT = {"b": [True, False, True], "i": [-7, 3, 5], "f": [-7.5, 3.0, 5.25]}
RIGHT = {"b": [True, True, True], "i": [2, -3, 4], "f": [2.0, -1.5, 4.0]}
PY = {"py_int": (-7, 3), "py_float": (-2.5, 2.5), "py_bool": (True, True)}
TENSOR_DTYPES = ["bool", "int32", "int64", "float32", "float64"]
OPERANDS = [f"{d}{s}" for d in TENSOR_DTYPES for s in ("(3,)", "()")] + list(PY)
PAIRS = [(a, b) for a in OPERANDS for b in OPERANDS if not (a in PY and b in PY)]
OPS = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
    "lt": operator.lt, "eq": operator.eq,
}


def operand(spec, side, lib):
    """The operand named ``spec`` (e.g. 'int32(3,)', 'float64()', 'py_int') for one library."""
    if spec in PY:
        return PY[spec][0 if side == "left" else 1]
    dtype, zero_d = spec.split("(")[0], spec.endswith("()")
    vals = (LEFT if side == "left" else RIGHT)[dtype[0]]
    arr = np.array(vals[0] if zero_d else vals, dtype=dtype)
    return mg.tensor(arr) if lib == "mg" else lib.from_numpy(arr)


def torch_refuses(a, b, op):
    """torch raises for `-` with any bool operand (even int_tensor - True) and for // and %
    between two bools; this file leaves those cases unspecified."""
    bools = ("bool" in a, "bool" in b)
    return (op == "sub" and any(bools)) or (op in ("floordiv", "mod") and all(bools))


CASES = [(a, b, op) for a, b in PAIRS for op in OPS if not torch_refuses(a, b, op)]


@pytest.mark.parametrize("a,b,op", CASES, ids=[f"{a}-{b}-{op}" for a, b, op in CASES])
def test_binary_promotion_oracle(torch64, a, b, op):
    torch = torch64
    fn = OPS[op]
    with np.errstate(all="ignore"):
        r = fn(operand(a, "left", torch), operand(b, "right", torch))
    same_as_torch(fn(operand(a, "left", "mg"), operand(b, "right", "mg")), r)


# ---- arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [I64, I32, F64, F32])
def test_floor_division_and_remainder_follow_python_signs(dtype):
    a = t([-7, 7, -7, 7], dtype)
    b = t([2, 2, -2, -2], dtype)
    expect(a // b, [-4, 3, 3, -4], dtype)
    expect(a % b, [1, 1, -1, -1], dtype)
    assert [-7 // 2, 7 // -2, -7 % 2, 7 % -2] == [-4, -4, 1, -1]  # Python agrees


def test_floor_division_and_remainder_with_python_numbers():
    x = t([-7, 7], I64)
    expect(x // 2, [-4, 3], I64)
    expect(x % 2, [1, 1], I64)
    expect(x % -2, [-1, -1], I64)
    expect(-7 // t([2, -2], I64), [-4, 3], I64)
    expect(7 % t([-2, 3], I32), [-1, 1], I32)
    expect(t([-7.5, 7.5], F64) // 2, [-4.0, 3.0], F64)
    expect(x // 2.0, [-4.0, 3.0], F64)  # a Python float makes it the default float
    expect(t([-7.5, 7.5], F32) % 2, [0.5, 1.5], F32)


def test_float_floor_division_and_remainder_by_zero():
    with np.errstate(all="ignore"):
        expect(t([5.0, -5.0, 0.0], F64) // 0.0, [np.inf, -np.inf, np.nan], F64)
        expect(t([5.0], F64) % 0.0, [np.nan], F64)
        expect(t([5.0], F32) // t([0.0], F32), [np.inf], F32)


def test_int64_overflow_wraps():
    expect(t([INT64_MAX], I64) + 1, [INT64_MIN], I64)
    expect(t([INT64_MIN], I64) - 1, [INT64_MAX], I64)
    expect(t([INT64_MAX], I64) * 2, [-2], I64)
    expect(-t([INT64_MIN], I64), [INT64_MIN], I64)


def test_int32_overflow_wraps():
    expect(t([2147483647], I32) + 1, [-2147483648], I32)
    expect(t([65536], I32) * t([65536], I32), [0], I32)
    expect(t([-2147483648], I32) - t([1], I32), [2147483647], I32)


def test_int_power_stays_int_and_exact():
    expect(t([3], I64) ** 20, [3486784401], I64)
    expect(t([3], I64) ** 39, [3**39], I64)  # beyond float64's 53 bits: must be exact
    expect(t([2, 3], I32) ** 2, [4, 9], I32)
    expect(t([2, 3], I64) ** t([2, 0], I64), [4, 1], I64)
    expect(2 ** t([3, 4], I64), [8, 16], I64)
    expect(t([2147483647], I32) ** 2, [1], I32)  # wraps like repeated multiplication


def test_int_power_with_floats_is_float():
    expect(t([4, 9], I64) ** 0.5, [2.0, 3.0], F64)
    expect(2.0 ** t([3], I64), [8.0], F64)
    expect(t([1.0, 2.0, 3.0], F32) ** t([2, -1, 4], I64), [1.0, 0.5, 81.0], F32)


def test_int_power_oracle(torch64):
    torch = torch64
    for a, b in [([3], 20), ([2, 3], 2), ([4, 9], 0.5)]:
        same_as_torch(mg.tensor(a) ** b, torch.tensor(a) ** b)
    same_as_torch(mg.tensor([2, 3]) ** mg.tensor([5, 0]),
                  torch.tensor([2, 3]) ** torch.tensor([5, 0]))


@pytest.mark.parametrize("dtype", [I64, I32])
def test_int_unary_ops_that_keep_the_dtype(dtype):
    x = t([-3, 0, 4], dtype)
    expect(-x, [3, 0, -4], dtype)
    expect(abs(x), [3, 0, 4], dtype)
    expect(x.abs(), [3, 0, 4], dtype)
    expect(x.relu(), [0, 0, 4], dtype)


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "sin", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_float_unary_ops_on_ints_give_the_default_float(name, dtype):
    x = t([1, 1, 1], dtype)
    out = getattr(x, name)()
    ref = getattr(np, name, None) or (lambda a: 1 / (1 + np.exp(-a)))
    assert out.dtype == F64
    np.testing.assert_allclose(out.numpy(), ref(np.ones(3)), rtol=1e-12)


def test_int_arithmetic_values():
    a, b = t([1, -2, 3], I64), t([4, 5, -6], I32)
    expect(a + b, [5, 3, -3], I64)
    expect(a - b, [-3, -7, 9], I64)
    expect(a * b, [4, -10, -18], I64)
    expect(a * 3, [3, -6, 9], I64)
    expect(3 - b, [-1, -2, 9], I32)


# ---- comparisons -------------------------------------------------------------------------


CMP = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]
CMP_PAIRS = PAIRS[::4]  # lt and eq see every pair in the promotion oracle above


@pytest.mark.parametrize("op", CMP, ids=lambda f: f.__name__)
@pytest.mark.parametrize("a,b", [
    (T([1, 2, 3], I64), T([3, 2, 1], I64)),
    (T([1, 2, 3], I32), T([3.0, 2.0, 1.0], F64)),
    (T([1.0, 2.0, 3.0], F32), T([3, 2, 1], I64)),
    (T([True, False, True], BOOL), T([1, 0, 0], I64)),
    (T([1, 2, 3], I64), 2),
    (T([1, 2, 3], I64), 2.5),
    (T([1.5, 2.0, 3.0], F64), 2),
    (T([True, False, True], BOOL), True),
], ids=["i64-i64", "i32-f64", "f32-i64", "bool-i64", "i64-int", "i64-float", "f64-int",
        "bool-bool"])
def test_comparisons_give_bool(op, a, b):
    ra, rb = np.asarray(ref(a)), np.asarray(ref(b))
    a, b = build(a), build(b)
    expect(op(a, b), op(ra, rb), BOOL)
    expect(op(b, a), op(rb, ra), BOOL)


def test_comparison_values():
    x = t([1, 2, 3], I64)
    expect(x < 2.5, [True, True, False], BOOL)
    expect(x == 2.0, [False, True, False], BOOL)
    expect(x >= 2, [False, True, True], BOOL)
    expect(t([1, 2], I64) == t([1.0, 2.5], F64), [True, False], BOOL)
    expect(Value([-1.0, 2.0]) > 0, [False, True], BOOL)


def test_int64_comparisons_are_exact_beyond_float53():
    # via float64, 2**53 + 1 would round to 2**53 and compare equal
    a, b = t([2**53 + 1], I64), t([2**53], I64)
    expect(a > b, [True], BOOL)
    expect(a == b, [False], BOOL)
    expect(a == 2**53 + 1, [True], BOOL)


@pytest.mark.parametrize("op", CMP, ids=lambda f: f.__name__)
@pytest.mark.parametrize("a,b", CMP_PAIRS, ids=[f"{a}-{b}" for a, b in CMP_PAIRS])
def test_comparison_oracle(torch64, op, a, b):
    torch = torch64
    same_as_torch(op(operand(a, "left", "mg"), operand(b, "right", "mg")),
                  op(operand(a, "left", torch), operand(b, "right", torch)))


def test_isnan_isinf_isfinite():
    x = t([1.0, np.nan, np.inf, -np.inf], F64)
    expect(x.isnan(), [False, True, False, False], BOOL)
    expect(x.isinf(), [False, False, True, True], BOOL)
    expect(x.isfinite(), [True, False, False, False], BOOL)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_isnan_isinf_isfinite_on_ints(dtype):
    x = t([1, 0, 1], dtype)
    expect(x.isnan(), [False] * 3, BOOL)
    expect(x.isinf(), [False] * 3, BOOL)
    expect(x.isfinite(), [True] * 3, BOOL)


# ---- logic and bitwise ops ---------------------------------------------------------------


def test_bitwise_on_ints():
    a, b = t([6, 5, -1], I64), t([3, 3, 12], I64)
    expect(a & b, [2, 1, 12], I64)
    expect(a | b, [7, 7, -1], I64)
    expect(a ^ b, [5, 6, -13], I64)
    expect(~t([5, 0, -1], I64), [-6, -1, 0], I64)
    expect(~t([5], I32), [-6], I32)
    expect(t([6], I32) & 3, [2], I32)
    expect(3 | t([4], I32), [7], I32)
    expect(t([6], I64) ^ t([3], I32), [5], I64)


def test_logic_on_bools():
    a, b = t([True, True, False, False], BOOL), t([True, False, True, False], BOOL)
    expect(a & b, [True, False, False, False], BOOL)
    expect(a | b, [True, True, True, False], BOOL)
    expect(a ^ b, [False, True, True, False], BOOL)
    expect(~a, [False, False, True, True], BOOL)
    expect(a & True, [True, True, False, False], BOOL)
    expect(False | b, [True, False, True, False], BOOL)


def test_bool_with_int_is_bitwise_int():
    expect(t([True, False], BOOL) | t([0, 2], I64), [1, 2], I64)
    expect(t([True, True], BOOL) & t([1, 2], I32), [1, 0], I32)
    expect(t([True], BOOL) & 1, [1], I64)


def test_combined_masks():
    x = Value([-1.0, 0.5, 2.0, 4.0])
    expect((x > 0) & (x < 3), [False, True, True, False], BOOL)
    expect((x < 0) | (x > 3), [True, False, False, True], BOOL)
    expect(~(x > 0), [True, False, False, False], BOOL)


@pytest.mark.parametrize("call", [
    lambda: t([1.0], F64) & t([1.0], F64),
    lambda: t([1.0], F32) | t([1], I64),
    lambda: t([1], I64) ^ t([1.0], F64),
    lambda: t([1.5], F64) & 1,
    lambda: t([True], BOOL) | 1.5,
    lambda: ~t([1.0], F64),
    lambda: ~Value([1.0, 2.0]),
], ids=["f64&f64", "f32|i64", "i64^f64", "f64&int", "bool|float", "~f64", "~value"])
def test_bitwise_on_floats_raises_type_error(call):
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize("op", [operator.and_, operator.or_, operator.xor],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("a,b", [
    ("bool(3,)", "bool(3,)"), ("int32(3,)", "int64(3,)"), ("bool(3,)", "int32()"),
    ("int64(3,)", "py_int"), ("py_bool", "bool(3,)"), ("int32(3,)", "py_bool"),
    ("bool()", "int64(3,)"),
])
def test_bitwise_oracle(torch64, op, a, b):
    torch = torch64
    same_as_torch(op(operand(a, "left", "mg"), operand(b, "right", "mg")),
                  op(operand(a, "left", torch), operand(b, "right", torch)))


# ---- where -------------------------------------------------------------------------------


def test_where_takes_a_bool_condition_and_grads_flow_to_both_branches():
    a = Value([1.0, 2.0, 3.0])
    b = Value([10.0, 20.0, 30.0])
    out = mg.where(t([True, False, True], BOOL), a, b)
    expect(out.detach(), [1.0, 20.0, 3.0], F64)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(b.grad, [0.0, 1.0, 0.0])


def test_where_broadcasts_the_condition():
    cond = t([[True], [False], [True]], BOOL)  # (3, 1)
    a = Value([[1.0, 2.0]])  # (1, 2)
    b = Value(0.5)  # ()
    out = mg.where(cond, a, b)
    expect(out.detach(), [[1.0, 2.0], [0.5, 0.5], [1.0, 2.0]], F64)
    out.sum().backward()
    np.testing.assert_array_equal(a.grad, [[2.0, 2.0]])
    assert b.grad.shape == () and float(b.grad) == 2.0


def test_where_with_a_comparison_mask():
    x = Value([-1.0, 2.0, -3.0])
    out = mg.where(x > 0, x, 0.0)
    expect(out.detach(), [0.0, 2.0, 0.0], F64)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])


def test_where_promotes_its_branches():
    cond = t([True, False], BOOL)
    expect(mg.where(cond, t([1, 2], I64), t([5, 6], I64)), [1, 6], I64)
    expect(mg.where(cond, t([1, 2], I64), 7), [1, 7], I64)
    expect(mg.where(cond, t([1, 2], I64), 0.5), [1.0, 0.5], F64)
    expect(mg.where(cond, t([1, 2], I32), t([1.5, 2.5], F32)), [1.0, 2.5], F32)


# ---- creation functions --------------------------------------------------------------------


CREATION = [
    ("arange_n", lambda: mg.arange(5), [0, 1, 2, 3, 4], I64),
    ("arange_step", lambda: mg.arange(2, 7, 2), [2, 4, 6], I64),
    ("arange_down", lambda: mg.arange(5, 0, -2), [5, 3, 1], I64),
    ("arange_float_step", lambda: mg.arange(0, 1, 0.25), [0.0, 0.25, 0.5, 0.75], F64),
    ("arange_float_start", lambda: mg.arange(0.0, 3), [0.0, 1.0, 2.0], F64),
    ("arange_f32", lambda: mg.arange(3, dtype=mg.float32), [0.0, 1.0, 2.0], F32),
    ("arange_i32", lambda: mg.arange(3, dtype=mg.int32), [0, 1, 2], I32),
    ("zeros", lambda: mg.zeros(3), [0.0, 0.0, 0.0], F64),
    ("zeros_i32", lambda: mg.zeros(3, dtype=mg.int32), [0, 0, 0], I32),
    ("zeros_i64_2d", lambda: mg.zeros(2, 1, dtype=mg.int64), [[0], [0]], I64),
    ("zeros_bool", lambda: mg.zeros(2, dtype=mg.bool), [False, False], BOOL),
    ("ones_i64", lambda: mg.ones(2, dtype=mg.int64), [1, 1], I64),
    ("ones_bool", lambda: mg.ones((2,), dtype=mg.bool), [True, True], BOOL),
    ("full_int", lambda: mg.full((2,), 3), [3, 3], I64),
    ("full_bool", lambda: mg.full((2,), True), [True, True], BOOL),
    ("full_float", lambda: mg.full((2,), 1.5), [1.5, 1.5], F64),
    ("full_int_as_f32", lambda: mg.full((2,), 3, dtype=mg.float32), [3.0, 3.0], F32),
    ("full_int_as_i32", lambda: mg.full((2, 1), -4, dtype=mg.int32), [[-4], [-4]], I32),
    ("full_big_int", lambda: mg.full((1,), 2**53 + 1), [2**53 + 1], I64),  # exact, no float
    ("eye_bool", lambda: mg.eye(3, dtype=mg.bool), np.eye(3, dtype=bool), BOOL),
    ("eye_i64", lambda: mg.eye(2, 3, dtype=mg.int64), [[1, 0, 0], [0, 1, 0]], I64),
    ("eye", lambda: mg.eye(2), [[1.0, 0.0], [0.0, 1.0]], F64),
]


@pytest.mark.parametrize("make,values,dtype", [r[1:] for r in CREATION],
                         ids=[r[0] for r in CREATION])
def test_creation(make, values, dtype):
    v = make()
    expect(v, values, dtype)
    assert v.requires_grad is False


def test_creation_with_default_float32():
    mg.set_default_dtype(mg.float32)
    expect(mg.zeros(2), [0.0, 0.0], F32)
    expect(mg.full((2,), 1.5), [1.5, 1.5], F32)
    expect(mg.arange(0, 1, 0.5), [0.0, 0.5], F32)
    expect(mg.arange(3), [0, 1, 2], I64)
    expect(mg.full((1,), 3), [3], I64)


LIKE = [
    ("zeros_like_i32", lambda: mg.zeros_like(t([1, 2], I32)), [0, 0], I32),
    ("ones_like_bool", lambda: mg.ones_like(t([True, False], BOOL)), [True, True], BOOL),
    ("full_like_i64", lambda: mg.full_like(t([1, 2], I64), 7), [7, 7], I64),
    ("full_like_trunc", lambda: mg.full_like(t([1, 2], I64), 2.5), [2, 2], I64),  # as torch
    ("full_like_bool", lambda: mg.full_like(t([True, False], BOOL), 2), [True, True], BOOL),
    ("zeros_like_to_f32", lambda: mg.zeros_like(t([1, 2], I64), dtype=mg.float32),
     [0.0, 0.0], F32),
    ("ones_like_to_i64", lambda: mg.ones_like(t([1.5], F64), dtype=mg.int64), [1], I64),
    ("full_like_to_bool", lambda: mg.full_like(t([1, 2], I32), 1, dtype=mg.bool),
     [True, True], BOOL),
]


@pytest.mark.parametrize("make,values,dtype", [r[1:] for r in LIKE], ids=[r[0] for r in LIKE])
def test_like_keeps_the_dtype_unless_given(make, values, dtype):
    expect(make(), values, dtype)


CREATION_ORACLE = [
    ("arange_n", lambda m, d: m.arange(5)),
    ("arange_step", lambda m, d: m.arange(2, 9, 3)),
    ("arange_float_step", lambda m, d: m.arange(0, 1, 0.25)),
    ("arange_float_start", lambda m, d: m.arange(0.0, 3)),
    ("arange_i32", lambda m, d: m.arange(4, dtype=d("int32"))),
    ("zeros", lambda m, d: m.zeros(3)),
    ("zeros_i32", lambda m, d: m.zeros(3, dtype=d("int32"))),
    ("ones_bool", lambda m, d: m.ones(2, 2, dtype=d("bool"))),
    ("full_int", lambda m, d: m.full((2,), 3)),
    ("full_bool", lambda m, d: m.full((2,), True)),
    ("full_float", lambda m, d: m.full((2,), 1.5)),
    ("eye_bool", lambda m, d: m.eye(3, dtype=d("bool"))),
    ("eye_i32", lambda m, d: m.eye(2, 3, dtype=d("int32"))),
    ("full_like_trunc", lambda m, d: m.full_like(m.tensor([1, 2]), 2.5)),
    ("ones_like_f32", lambda m, d: m.ones_like(m.tensor([1, 2]), dtype=d("float32"))),
]


@pytest.mark.parametrize("make", [r[1] for r in CREATION_ORACLE],
                         ids=[r[0] for r in CREATION_ORACLE])
def test_creation_oracle(torch64, make):
    torch = torch64
    same_as_torch(make(mg, lambda n: getattr(mg, n)), make(torch, lambda n: getattr(torch, n)))


# ---- item, tolist, __index__, __int__ -------------------------------------------------------


@pytest.mark.parametrize("v,value,kind", [
    (T(3, I64), 3, int),
    (T([-4], I32), -4, int),
    (T(INT64_MAX, I64), INT64_MAX, int),  # exact: no trip through float
    (T(True, BOOL), True, bool),
    (T([False], BOOL), False, bool),
    (T(2.5, F64), 2.5, float),
    (T([1.5], F32), 1.5, float),
], ids=["i64_0d", "i32_1", "i64_max", "bool_0d", "bool_1", "f64", "f32"])
def test_item_gives_the_matching_python_type(v, value, kind):
    x = build(v).item()
    assert type(x) is kind and x == value


def test_tolist_gives_python_ints_and_bools():
    ints = mg.tensor([[1, 2], [3, 4]]).tolist()
    assert ints == [[1, 2], [3, 4]] and all(type(x) is int for row in ints for x in row)
    bools = mg.tensor([True, False]).tolist()
    assert bools == [True, False] and all(type(x) is bool for x in bools)


@pytest.mark.parametrize("dtype", [I64, I32])
def test_0d_int_tensor_is_an_index(dtype):
    names = ["a", "b", "c"]
    assert names[t(1, dtype)] == "b"
    assert list(range(t(3, dtype))) == [0, 1, 2]
    assert list(range(10))[t(3, dtype)] == 3
    assert list(range(10))[t(2, dtype):t(5, dtype)] == [2, 3, 4]
    i = operator.index(t(4, dtype))
    assert type(i) is int and i == 4
    assert "abcdef"[mg.tensor(2)] == "c"


def test_int_and_float_of_tensors():
    assert type(int(mg.tensor(7))) is int and int(mg.tensor(7)) == 7
    assert int(t(INT64_MAX, I64)) == INT64_MAX
    assert int(mg.tensor(-2.7)) == -2
    assert int(mg.tensor(True)) == 1
    assert float(mg.tensor(3)) == 3.0 and type(float(mg.tensor(3))) is float
    assert bool(mg.tensor(0)) is False and bool(mg.tensor(5)) is True


def test_one_element_1d_int_tensor_is_an_index_like_torch():
    # torch allows __index__ on any one-element integer tensor, not only 0-d
    assert list(range(10))[mg.tensor([3])] == 3
    assert operator.index(mg.tensor([[4]])) == 4


def test_index_oracle(torch64):
    torch = torch64
    for data in (3, [3], [[3]]):
        assert list(range(10))[mg.tensor(data)] == list(range(10))[torch.tensor(data)]


@pytest.mark.parametrize("bad", [T(1.0, F64), T(1.5, F32), T([1.0], F64), T([1, 2], I64),
                                 T([], I64)],
                         ids=["float_0d", "float_frac", "float_1", "two_ints", "empty"])
def test_non_index_tensors_raise_type_error(bad):
    bad = bad.make()
    with pytest.raises(TypeError):
        ["a", "b", "c"][bad]
    with pytest.raises(TypeError):
        operator.index(bad)


# ---- numpy views -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_numpy_and_data_are_zero_copy_views(dtype):
    v = t([0, 1, 0], dtype)
    a = v.numpy()
    assert a.dtype == dtype and v.data.dtype == dtype
    assert np.shares_memory(a, v.numpy()) and np.shares_memory(a, v.data)
    assert np.shares_memory(np.asarray(v), a)
    a[0] = 7 if dtype != BOOL else True
    expect(v, [7 if dtype != BOOL else 1, 1, 0], dtype)


def test_write_through_numpy_changes_an_int_tensor():
    v = mg.tensor([1, 2, 3])
    v.numpy()[0] = 7
    assert v.tolist() == [7, 2, 3]
    assert v.sum().item() == 12


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_value_shares_a_contiguous_int_array(dtype):
    a = np.array([1, 0, 1], dtype=dtype)
    v = Value(a, requires_grad=False)
    assert v.dtype == dtype and np.shares_memory(v.numpy(), a)
    a[1] = 1
    assert v.tolist()[1] == 1


def read_only(a):
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("make", [
    lambda: np.arange(6, dtype=np.int64)[::2],
    lambda: np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    lambda: read_only(np.arange(3, dtype=np.int64)),
], ids=["strided", "fortran", "read_only"])
def test_value_copies_other_int_layouts(make):
    a = make()
    v = Value(a, requires_grad=False)
    assert v.dtype == I64 and not np.shares_memory(v.numpy(), a)
    np.testing.assert_array_equal(v.numpy(), a)


@pytest.mark.parametrize("dtype", [I64, I32, BOOL])
def test_tensor_copies_an_int_array(dtype):
    a = np.array([1, 0, 1], dtype=dtype)
    v = mg.tensor(a)
    assert v.dtype == dtype and not np.shares_memory(v.numpy(), a)
    a[1] = 1
    assert v.tolist()[1] == 0


# ---- gradient rules ------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: mg.tensor([1, 2], requires_grad=True),
    lambda: mg.tensor([True], requires_grad=True),
    lambda: mg.tensor([1.5], dtype=mg.int64, requires_grad=True),
    lambda: mg.zeros(3, dtype=mg.int64, requires_grad=True),
    lambda: mg.arange(3, requires_grad=True),
    lambda: mg.full((2,), True, requires_grad=True),
    lambda: mg.tensor([1]).requires_grad_(),
    lambda: mg.tensor([1], dtype=mg.int32).requires_grad_(True),
    lambda: mg.tensor([True]).requires_grad_(),
], ids=["tensor_int", "tensor_bool", "tensor_dtype_int", "zeros_int", "arange", "full_bool",
        "requires_grad_", "requires_grad_i32", "requires_grad_bool"])
def test_only_floating_tensors_can_require_grad(make):
    with pytest.raises((RuntimeError, TypeError)):
        make()


def test_setting_requires_grad_on_an_int_tensor_raises():
    i = mg.tensor([1, 2])
    with pytest.raises((RuntimeError, TypeError)):
        i.requires_grad = True
    assert i.requires_grad is False
    assert i.requires_grad_(False) is i  # turning it off is fine


def test_int_to_float_can_then_require_grad():
    x = mg.tensor([1, 2]).float().requires_grad_()
    assert x.dtype == F32 and x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, np.array([2.0, 4.0], dtype=np.float32))


@pytest.mark.parametrize("make", [
    lambda x: x > 0,
    lambda x: x == x,
    lambda x: (x > 0) & (x < 2),
    lambda x: x.isnan(),
    lambda x: x.argmax(),
    lambda x: x.argmin(dim=0),
    lambda x: x.long(),
    lambda x: x.int(),
    lambda x: x.bool(),
    lambda x: x.to(mg.int64),
    lambda x: (x.long() * 2).sum(),
    lambda x: x.long() + 1,
    lambda x: (x > 0).float(),
    lambda x: x.long().double(),
], ids=["gt", "eq", "and", "isnan", "argmax", "argmin", "long", "int", "bool", "to",
        "long_mul_sum", "long_add", "mask_float", "long_double"])
def test_integer_and_bool_results_record_no_gradient(make):
    x = Value([1.0, -2.0, 3.0])
    out = make(x)
    assert out.requires_grad is False
    assert x.requires_grad is True


def test_mixed_op_gradients():
    i = t([2, -1, 4], I64)
    cases = [
        (lambda x: x * i, [2.0, -1.0, 4.0]),
        (lambda x: i * x, [2.0, -1.0, 4.0]),
        (lambda x: x + i, [1.0, 1.0, 1.0]),
        (lambda x: i - x, [-1.0, -1.0, -1.0]),
        (lambda x: x / i, [0.5, -1.0, 0.25]),
        (lambda x: i / x, [-2.0, 0.25, -4.0 / 9.0]),
        (lambda x: x ** i, [2.0, -0.25, 108.0]),  # i * x ** (i - 1) at x = 1, 2, 3
        (lambda x: x * t(3, I64), [3.0, 3.0, 3.0]),
        (lambda x: x * t([True, False, True], BOOL), [1.0, 0.0, 1.0]),
    ]
    for fn, grad in cases:
        x = Value([1.0, 2.0, 3.0])
        out = fn(x)
        assert out.dtype == F64 and out.requires_grad is True
        out.sum().backward()
        assert x.grad.dtype == F64
        np.testing.assert_allclose(x.grad, grad, rtol=1e-12)


def test_mixed_op_gradient_float32_with_broadcast():
    x = Value(np.ones((2, 3), dtype=np.float32))
    i = t([1, 2, 3], I32)
    out = x * i
    assert out.dtype == F32
    out.sum().backward()
    assert x.grad.dtype == F32
    np.testing.assert_array_equal(x.grad, np.array([[1, 2, 3], [1, 2, 3]], dtype=np.float32))


def test_mask_times_input_gradient():
    x = Value([-1.0, 2.0, 3.0])
    (x * (x > 0)).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 1.0])


def test_mixed_op_gradient_oracle(torch64):
    torch = torch64
    xs = np.array([0.5, -1.5, 2.0])
    idx = np.array([3, -2, 1])
    for fn in (lambda x, i: (x * i).sum(), lambda x, i: (x / i + i).sum(),
               lambda x, i: ((x - i) ** 2).mean(), lambda x, i: (x ** i).sum()):
        x = Value(xs.copy())
        fn(x, mg.tensor(idx)).backward()
        tx = torch.tensor(xs, requires_grad=True)
        fn(tx, torch.tensor(idx)).backward()
        np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)
