"""Every elementwise op the core declares (``_core.elementwise_ops()``, read from the
``unary_ops!``/``binary_ops!`` tables) has its tests: a finite-difference gradient check in
tests/test_ops.py when it has a gradient, and a row in tests/test_errors.py for each kind of
input its dtype kind refuses. A new op without them fails here."""

import test_errors
import test_ops

from mikagrad import _core

# Ops tested under another name: the scalar forms are reached through the binary ops.
FD_NAME = {("unary", "pow"): "x**0.5", ("unary", "add"): "add", ("unary", "mul"): "mul"}
# What each dtype kind refuses, as the suffix of its row in tests/test_errors.py.
REFUSED = {"num": ["bool"], "no_bool": ["bool"], "bits": ["float"], "int_div": ["by_zero"],
           "int_pow": ["negative_int"]}
# Ops that give bool or integer results, or are piecewise constant, have no gradient.
NO_GRAD_KINDS = {"pred", "bits", "compare"}
PIECEWISE_CONSTANT = {"sign", "floor_divide"}
SCALAR_FORMS = {("unary", "add"), ("unary", "mul")}  # internal: no Python method of their own


def public_ops():
    return [(f, n, k) for f, n, k in _core.elementwise_ops() if not n.startswith("_")]


def test_the_catalog_lists_the_ops():
    names = {(f, n) for f, n, _ in public_ops()}
    assert {("unary", "exp"), ("unary", "log1p"), ("binary", "add"), ("binary", "lt")} <= names


def test_every_op_with_a_gradient_has_a_finite_difference_test():
    fd = set(test_ops.UNARY) | set(test_ops.BINARY) | set(test_ops.SCALAR_FORMS)
    missing = [f"{f} {n}" for f, n, k in public_ops()
               if k not in NO_GRAD_KINDS and n not in PIECEWISE_CONSTANT
               and FD_NAME.get((f, n), n) not in fd]
    assert not missing, f"no finite-difference test in tests/test_ops.py for: {missing}"


def test_every_refused_input_has_a_bad_input_row():
    rows = {row[0] for row in test_errors.TABLE}
    missing = [f"{n}_{why}" for f, n, k in public_ops() if (f, n) not in SCALAR_FORMS
               for why in REFUSED.get(k, []) if f"{n}_{why}" not in rows]
    assert not missing, f"no row in tests/test_errors.py for: {missing}"
