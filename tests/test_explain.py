"""Explain mode: one printed entry per backward step, the broadcast notes, silence when off."""

import io
import re

import numpy as np

import mikagrad as mg
from mikagrad.engine import Value

STEP = re.compile(r"^step (\d+): (\w+)\(", re.M)


def broadcast_graph():
    """loss = relu(a * b + c).sum(), a (3, 4), b (4,), c (): two broadcasts, four ops."""
    a = Value(np.arange(12.0).reshape(3, 4) - 5.0)
    b = Value(np.array([1.0, -2.0, 3.0, -4.0]))
    c = Value(0.5)
    return a, b, c, ((a * b) + c).relu().sum()


def test_prints_one_entry_per_step_in_reverse_topological_order(capsys):
    *_, loss = broadcast_graph()
    loss.backward(explain=True)
    out = capsys.readouterr().out
    steps = STEP.findall(out)
    assert [int(k) for k, _ in steps] == [1, 2, 3, 4]
    assert [op for _, op in steps] == ["sum", "relu", "add", "mul"]
    assert out.count("    rule: ") == 4
    assert out.count("    incoming grad g: ") == 4


def test_entry_gives_shapes_rule_and_incoming_grad_stats(capsys):
    *_, loss = broadcast_graph()
    loss.backward(explain=True)
    out = capsys.readouterr().out
    assert "step 1: sum(x (3, 4)) -> () float64" in out
    assert "step 4: mul(a (3, 4), b (4,)) -> (3, 4) float64" in out
    assert "rule: grad_a = g·b, grad_b = g·a" in out
    # the sum hands relu a gradient of ones: 12 of them, norm sqrt(12)
    assert "incoming grad g: norm 3.464, mean 1, min 1, max 1, zeros 0%" in out


def test_broadcast_notes_name_the_input_shapes_and_axes(capsys):
    *_, loss = broadcast_graph()
    loss.backward(explain=True)
    out = capsys.readouterr().out
    assert "b was broadcast (4,) → (3, 4): gradient summed over axis 0" in out
    assert "b was broadcast () → (3, 4): gradient summed over axes 0, 1" in out
    assert out.count("was broadcast") == 2
    blocks = re.split(r"^(?=step \d+:)", out, flags=re.M)[1:]
    notes = {STEP.match(b).group(2): b.count("was broadcast") for b in blocks}
    assert notes == {"sum": 0, "relu": 0, "add": 1, "mul": 1}


def test_both_inputs_broadcast(capsys):
    a = Value(np.ones((1, 4)))
    b = Value(np.ones((5, 1)))
    (a * b).backward(explain=True)
    out = capsys.readouterr().out
    assert len(STEP.findall(out)) == 1
    assert "a was broadcast (1, 4) → (5, 4): gradient summed over axis 0" in out
    assert "b was broadcast (5, 1) → (5, 4): gradient summed over axis 1" in out


def test_nothing_is_printed_when_off(capsys):
    a, b, c, loss = broadcast_graph()
    loss.backward()
    assert capsys.readouterr().out == ""
    loss.backward(explain=False)
    assert capsys.readouterr().out == ""
    on = (a.data * b.data + 0.5) > 0
    np.testing.assert_allclose(b.grad, 2 * (a.data * on).sum(0))  # two backward calls


def test_explain_gives_the_same_gradients(capsys):
    a1, b1, c1, loss1 = broadcast_graph()
    loss1.backward()
    a2, b2, c2, loss2 = broadcast_graph()
    loss2.backward(explain=True)
    for g1, g2 in ((a1.grad, a2.grad), (b1.grad, b2.grad), (c1.grad, c2.grad)):
        np.testing.assert_array_equal(g1, g2)


def test_context_manager_records_the_steps(capsys):
    *_, loss = broadcast_graph()
    with mg.explain() as ex:
        loss.backward()
    out = capsys.readouterr().out
    assert [s["op"] for s in ex.steps] == ["sum", "relu", "add", "mul"]
    assert ex.text.strip() == out.strip()
    mul = ex.steps[3]
    assert mul["parents"] == [(3, 4), (4,)] and mul["shape"] == (3, 4)
    assert mul["rule"] == "grad_a = g·b, grad_b = g·a"
    assert [(i, tuple(s), tuple(g), list(d)) for i, s, g, d in mul["broadcasts"]] == [
        (1, (4,), (3, 4), [0])
    ]
    assert set(mul["grad"]) == {"norm", "mean", "min", "max", "zeros", "nonfinite"}
    # outside the block, backward is silent again
    *_, again = broadcast_graph()
    again.backward()
    assert capsys.readouterr().out == "" and len(ex.steps) == 4


def test_context_manager_can_write_elsewhere(capsys):
    *_, loss = broadcast_graph()
    buf = io.StringIO()
    with mg.explain(file=buf) as ex:
        loss.backward()
    assert capsys.readouterr().out == ""
    assert buf.getvalue().count("step ") == 4 == len(ex.steps)


def test_nan_in_the_incoming_gradient_is_flagged(capsys):
    y = Value(np.array([-1.0, 4.0]))
    with np.errstate(invalid="ignore"):
        (y.sqrt().sqrt()).sum().backward(explain=True)
    out = capsys.readouterr().out
    assert "step 3: sqrt(x (2,))" in out and "(1 NaN/Inf!)" in out.split("step 3")[1]
