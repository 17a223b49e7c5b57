"""Every elementwise op the core declares (``_core.elementwise_ops()``, read from the
``unary_ops!``/``binary_ops!`` tables) has its tests: a finite-difference gradient check in
tests/test_ops.py when it has a gradient, and a row in tests/test_errors.py for each kind of
input its dtype kind refuses. A new op without them fails here."""

import inspect
import itertools
import re
from pathlib import Path

import helpers
import numpy as np
import pytest
import test_conv
import test_errors
import test_ops
from _pytest.mark.structures import ParameterSet

import mikagrad as mg
from mikagrad import _core
from mikagrad.engine import Value

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


# ---- double backward --------------------------------------------------------------------

OPS_DIR = Path(__file__).resolve().parent.parent / "rust" / "core" / "src" / "ops"
# `fn name(&self) -> &'static str { "matmul" }`, as each core op names itself.
LITERAL_NAME = re.compile(r'fn name\(&self\) -> &\'static str \{\s*"(\w+)"\s*\}')
# Ops checked elsewhere: a float64 finite difference cannot see through a cast to float32.
ELSEWHERE = {"index_put": "tests/test_inplace.py",
             "to": "tests/test_higher_order.py::test_casts_pass_second_derivatives_through"}


def core_op_names():
    """Every differentiable op the core declares: the elementwise tables and each op that
    names itself with a literal."""
    names = {n for f, n, k in public_ops() if k not in NO_GRAD_KINDS
             and n not in PIECEWISE_CONSTANT and (f, n) not in SCALAR_FORMS}
    for src in OPS_DIR.glob("*.rs"):
        names |= set(LITERAL_NAME.findall(src.read_text()))
    return names - set(ELSEWHERE)


def graph_ops(out, seen):
    stack, ids = [out], set()
    while stack:
        v = stack.pop()
        if id(v._node) in ids:
            continue
        ids.add(id(v._node))
        seen.add(v.op)
        stack.extend(v.parents)


def fd_table_ops():
    """The ops in the graphs of every case of the finite-difference table (the tests of
    tests/test_ops.py and tests/test_conv.py that call check_op, which checks the first and
    the second derivatives), found by running each case with a check_op that only records."""
    seen = set()

    def record(fn, *arrays, **_):
        xs = [Value(np.array(a, dtype=np.float64)) for a in arrays]
        out = fn(*xs)
        graph_ops(out, seen)
        # the ops of the gradient's graph (index_add, view_scatter, ...) are checked too:
        # check_op differentiates it in the inputs and in the output's weights
        w = mg.ones_like(out, requires_grad=True)
        for g in mg.autograd.grad((out * w).sum(), xs, create_graph=True, allow_unused=True):
            if g is not None:
                graph_ops(g, seen)
        return out

    for module in (test_ops, test_conv):
        for name, test in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_") or "check_op" not in test.__code__.co_names:
                continue
            marks = [m for m in getattr(test, "pytestmark", []) if m.name == "parametrize"]
            grids = []
            for m in marks:
                keys = [a.strip() for a in m.args[0].split(",")]
                values = [v.values if isinstance(v, ParameterSet) else v if len(keys) > 1
                          else (v,) for v in m.args[1]]
                grids.append([dict(zip(keys, v, strict=True)) for v in values])
            wanted = set(inspect.signature(test).parameters)
            for combo in itertools.product(*grids):
                kwargs = {k: v for d in combo for k, v in d.items()}
                if set(kwargs) != wanted:
                    break  # a fixture the recorder cannot give
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(module, "check_op", record)
                    test(**kwargs)
    return seen


def test_check_op_checks_the_second_derivative_by_default():
    assert inspect.signature(helpers.check_op).parameters["second"].default is True


def test_every_differentiable_op_has_a_double_backward_test():
    missing = sorted(core_op_names() - fd_table_ops())
    assert not missing, ("no case of the finite-difference table (check_op in tests/test_ops.py "
                         f"or tests/test_conv.py) reaches: {missing}")
