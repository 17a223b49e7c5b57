"""Explain mode: what each step of a backward pass did, in words.

    loss.backward(explain=True)        # prints the steps
    with mikagrad.explain() as ex:     # prints them, and keeps them in ex.steps
        loss.backward()

A step of a node that a recorded backward pass made (``create_graph=True``, then a second
backward through the gradient) says so: that node is part of the backward graph.

The records come from the Rust backward pass; each op's rule text lives beside its backward
in ``rust/core/src/ops``, so the two cannot drift apart.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from ._core import ACCUMULATION

__all__ = ["explain", "format_steps"]

_ACTIVE = threading.local()
RECORDED = ("backward(create_graph=True): each step below is recorded as ops of its own, so "
            "the gradients are Values with a graph (draw_dot(x.grad) draws it)")


def _shape(s: tuple) -> str:
    return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"


def _name(i: int, n: int) -> str:
    return "x" if n == 1 else "abcdefghijklmnopqrstuvw"[i] if i < 23 else f"input {i}"


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, ..., 21st."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _num(x: float) -> str:
    return f"{x:.4g}"


def format_steps(steps: list[dict[str, Any]]) -> str:
    """One block per backward step, in the order backward ran (reverse topological).

    >>> import io, mikagrad as mg; x = mg.Value([1.0, 2.0])
    >>> with explain(file=io.StringIO()) as ex: (x * 3.0).sum().backward()
    >>> print(format_steps(ex.steps[:1]))
    step 1: sum(x (2,)) -> () float64
        rule: grad_x = g broadcast back over the summed dims
        incoming grad g: norm 1, mean 1, min 1, max 1, zeros 0%
    """
    lines = []
    for k, s in enumerate(steps, start=1):
        n = len(s["parents"])
        ins = ", ".join(f"{_name(i, n)} {_shape(sh)}" for i, sh in enumerate(s["parents"]))
        lines.append(f"step {k}: {s['op']}({ins}) -> {_shape(s['shape'])} {s['dtype']}")
        made_by = s.get("made_by")
        if made_by is not None:
            order, of = made_by
            source = ("two gradients summed into one .grad" if of == ACCUMULATION
                      else f"recorded by the backward rule of {of}")
            lines.append(f"    backward graph: this node is part of a gradient "
                         f"({ordinal(order)} backward), {source}")
        lines.append(f"    rule: {s['rule']}")
        g = s["grad"]
        bad = f"  ({g['nonfinite']} NaN/Inf!)" if g["nonfinite"] else ""
        lines.append(
            f"    incoming grad g: norm {_num(g['norm'])}, mean {_num(g['mean'])}, "
            f"min {_num(g['min'])}, max {_num(g['max'])}, zeros {g['zeros']:.0%}{bad}"
        )
        for i, inp, grad_shape, dims in s["broadcasts"]:
            axes = ", ".join(map(str, dims))
            word = "axis" if len(dims) == 1 else "axes"
            lines.append(
                f"    {_name(i, n)} was broadcast {_shape(inp)} → {_shape(grad_shape)}: "
                f"gradient summed over {word} {axes}"
            )
    return "\n".join(lines)


class explain:
    """Context manager: every backward() inside prints its steps and records them.

    The text goes to ``file`` (stdout by default) and to ``text``; the records, as dicts, to
    ``steps``.

    >>> import mikagrad as mg; x = mg.Value([1.0, 2.0])
    >>> with explain() as ex: (x * 3.0).sum().backward()
    step 1: sum(x (2,)) -> () float64
    ...
    >>> [s["op"] for s in ex.steps]
    ['sum', 'mul']
    """

    def __init__(self, file: TextIO | None = None) -> None:
        self.file = file
        self.steps: list[dict[str, Any]] = []
        self.text = ""

    def __enter__(self) -> explain:
        stack = getattr(_ACTIVE, "stack", None)
        if stack is None:
            stack = _ACTIVE.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.stack.pop()

    def _report(self, steps: list[dict[str, Any]], recorded: bool = False) -> None:
        text = format_steps(steps)
        if recorded:
            text = (f"{RECORDED}\n{text}" if text else RECORDED)
        self.steps.extend(steps)
        self.text += text + "\n"
        print(text, file=self.file or sys.stdout)


def active() -> explain | None:
    stack = getattr(_ACTIVE, "stack", None)
    return stack[-1] if stack else None
