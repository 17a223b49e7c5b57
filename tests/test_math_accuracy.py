"""Accuracy of the vectorized exp, log, tanh, sigmoid, softplus and gelu kernels
(rust/core/src/math.rs), as the distance in ulps from the correctly rounded result.

- float32: a sweep over the float32 bit patterns, every STRIDE-th one, which reaches every
  binade of the whole range, against float64 (or long double) references rounded once to
  float32. ``MIKAGRAD_EXHAUSTIVE=1`` sweeps all 2^32 patterns instead (minutes).
- float64: points spread over each function's range, against mpmath at 50 digits.
- Special values: ±0, ±inf, NaN, subnormals and the overflow and underflow thresholds.
"""

import math
import os

import numpy as np
import pytest

from mikagrad.engine import Value

mp = pytest.importorskip("mpmath")
mp.mp.dps = 50

FUNCS = ["exp", "log", "tanh", "sigmoid", "softplus", "gelu"]
# float64 bounds: gelu's tail multiplies e^(−x²/2), an erfc fit and x, three rounded factors.
F64_ULPS = {"exp": 1, "log": 1, "tanh": 1, "sigmoid": 2, "softplus": 2, "gelu": 3}
EXHAUSTIVE = os.environ.get("MIKAGRAD_EXHAUSTIVE") == "1"
STRIDE = 1 if EXHAUSTIVE else 4093  # a prime, so the sweep walks through every mantissa


def run(name, x):
    return getattr(Value(x, requires_grad=False), name)().numpy()


def ordered(a):
    """Float bit patterns as integers in the floats' order, so ulp distance is a difference."""
    bits = a.view(np.int32 if a.dtype == np.float32 else np.int64).astype(np.int64)
    magnitude = np.int64((1 << (8 * a.dtype.itemsize - 1)) - 1)
    return np.where(bits < 0, -(bits & magnitude), bits)


def ulps(got, want):
    """Distance in ulps; NaN where either is NaN, and where both are NaN, 0."""
    both_nan = np.isnan(got) & np.isnan(want)
    d = np.abs(ordered(got) - ordered(want)).astype(np.float64)
    d[np.isnan(got) != np.isnan(want)] = np.inf
    d[both_nan] = 0
    return d


def _erfc(z):
    return np.frompyfunc(math.erfc, 1, 1)(z).astype(np.float64)


def reference_f32(name, x):
    """float32 results, rounded once from a reference accurate well past float32."""
    d, ld = x.astype(np.float64), x.astype(np.longdouble)
    with np.errstate(all="ignore"):
        want = {
            "exp": lambda: np.exp(d),
            "log": lambda: np.log(d),
            "tanh": lambda: np.tanh(d),
            "sigmoid": lambda: 1 / (1 + np.exp(-ld)),
            "softplus": lambda: np.logaddexp(np.longdouble(0), ld),
            "gelu": lambda: d * 0.5 * _erfc(-d / math.sqrt(2)),
        }[name]()
        return want.astype(np.float32)


def sweep(start):
    """Every STRIDE-th float32 bit pattern from `start`, finite ones, in chunks."""
    chunk = STRIDE << 22
    for lo in range(start, 1 << 32, chunk):
        bits = np.arange(lo, min(lo + chunk, 1 << 32), STRIDE, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
        x = x[np.isfinite(x)]
        if x.size:  # (a chunk of the exhaustive sweep may hold only infs and NaNs)
            yield x


@pytest.mark.parametrize("name", FUNCS)
def test_float32_sweep_within_one_ulp(name):
    worst, count = 0.0, 0
    for x in sweep(start=1 if name != "gelu" else 7):
        if name == "gelu" and not EXHAUSTIVE:
            x = x[np.abs(x) < 1e4]  # past that gelu is x or 0; math.erfc per element is slow
        got = run(name, x)
        d = ulps(got, reference_f32(name, x))
        count += x.size
        if d.max() > worst:
            worst, at = d.max(), x[np.argmax(d)]
    assert count > 10**5
    assert worst <= 1, f"{name} float32: {worst} ulps at x = {at!r}"


def f64_points(name):
    rng = np.random.default_rng(7)
    n = 1500
    if name == "log":
        return np.concatenate([np.exp(rng.uniform(-744, 709, n)), rng.uniform(0.25, 4, n),
                               1 + rng.uniform(-1e-3, 1e-3, n)])
    reach = {"exp": 709, "tanh": 22, "sigmoid": 745, "softplus": 745, "gelu": 39}[name]
    mags = np.exp(rng.uniform(-40, math.log(reach), n))
    return np.concatenate([rng.uniform(-reach, reach, n), rng.uniform(-3, 3, n),
                           np.where(rng.random(n) < 0.5, -mags, mags)])


MP = {"exp": mp.exp, "log": mp.log, "tanh": mp.tanh,
      "sigmoid": lambda v: 1 / (1 + mp.exp(-v)), "softplus": lambda v: mp.log1p(mp.exp(v)),
      "gelu": lambda v: v * mp.erfc(-v / mp.sqrt(2)) / 2}


@pytest.mark.parametrize("name", FUNCS)
def test_float64_against_mpmath(name):
    x = f64_points(name)
    want = np.array([float(MP[name](mp.mpf(float(v)))) for v in x])
    d = ulps(run(name, x), want)
    i = int(np.argmax(d))
    assert d[i] <= F64_ULPS[name], f"{name} float64: {d[i]} ulps at x = {x[i]!r}"


# ---- special values --------------------------------------------------------------------

INF, NAN = math.inf, math.nan
F32_MAX, F32_TINY = float(np.finfo(np.float32).max), float(np.finfo(np.float32).smallest_subnormal)
SPECIAL = {  # (x, exact result) in both dtypes
    "exp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (NAN, NAN)],
    "log": [(1.0, 0.0), (0.0, -INF), (-0.0, -INF), (INF, INF), (-1.0, NAN), (-INF, NAN),
            (NAN, NAN)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (NAN, NAN), (F32_TINY, F32_TINY),
             (-F32_TINY, -F32_TINY), (30.0, 1.0), (-30.0, -1.0)],
    "sigmoid": [(0.0, 0.5), (INF, 1.0), (-INF, 0.0), (NAN, NAN), (50.0, 1.0)],
    "softplus": [(INF, INF), (-INF, 0.0), (NAN, NAN), (F32_MAX, F32_MAX)],
    "gelu": [(0.0, 0.0), (INF, INF), (NAN, NAN), (-INF, NAN), (-40.0, -0.0), (F32_MAX, F32_MAX)],
}


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("name", FUNCS)
def test_special_values(name, dt):
    xs, want = (np.array(c, dt) for c in zip(*SPECIAL[name]))
    got = run(name, xs)
    np.testing.assert_array_equal(got, want, err_msg=name)
    zero = want == 0
    assert list(np.signbit(got[zero])) == list(np.signbit(want[zero])), f"{name}: zero's sign"


def _neighbours(x, dt):
    """x and the floats next to it, in dtype dt."""
    x = np.array(x, dt)
    with np.errstate(over="ignore"):
        return np.array([np.nextafter(x, -np.inf), x, np.nextafter(x, np.inf)], dt)


THRESHOLDS = {  # where results overflow, underflow, turn subnormal or saturate
    "float32": {"exp": [88.72283, -87.33654, -103.27893, -103.972084],
                "log": [F32_TINY, float(np.finfo(np.float32).tiny), F32_MAX],
                "tanh": [9.010913, 0.0004, 0.55],
                "sigmoid": [-87.33654, -103.27893, 16.635532, -88.72283],
                "softplus": [-87.33654, -103.97208, 15.942385, 88.72283],
                "gelu": [-13.190, -14.0, 0.6745, -0.6745, 4.2426, -4.2426]},
    "float64": {"exp": [709.782712893384, -708.3964185322641, -745.1332191019411, -744.44],
                "log": [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308],
                "tanh": [19.061547465398498, 0.55, -0.55, 1e-300],
                "sigmoid": [-708.3964185322641, -744.44, 36.7368005696771],
                "softplus": [-708.3964185322641, -744.44, 36.7368005696771, 709.78],
                "gelu": [-37.5, -38.4, 0.6745, -0.6745, 4.2426, -4.2426, 1.25 * math.sqrt(2)]},
}


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("name", FUNCS)
def test_thresholds(name, dt):
    x = np.concatenate([_neighbours(t, dt) for t in THRESHOLDS[dt][name]])
    if dt == "float32":
        want = reference_f32(name, x)
        bound = 1
    else:
        want = np.array([float(MP[name](mp.mpf(float(v)))) for v in x])
        bound = F64_ULPS[name]
    d = ulps(run(name, x), want)
    i = int(np.argmax(d))
    assert d[i] <= bound, f"{name} {dt}: {d[i]} ulps at x = {x[i]!r}"
