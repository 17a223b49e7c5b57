"""Where MikaGrad's time goes, for the moons, digits and large-MLP steps.

Three measurements, each cheap:

- the cost of one tiny op split into the Rust call and the Python shell around it (MikaGrad
  internals are looked up by name and skipped if they have changed);
- each training step split into phases (forward + loss, zero_grad, backward, optimizer
  step) for MikaGrad, PyTorch and numpy, with the graph's size and ops counted through the
  public ``Value.op`` / ``Value.parents``;
- cProfile of the step: the functions with the most own time, per step, and the split
  between MikaGrad's Python, the Rust calls and everything else.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import time
from collections import Counter
from typing import Any

import numpy as np

from . import workloads as W
from .timing import SETTLE_S, Budget, measure


class _Floor:
    """A do-nothing Python ``__add__``: the cost of operator dispatch into Python code."""

    __slots__ = ()

    def __add__(self, other: Any) -> Any:
        return self


def op_split(budget: Budget, torch_fw: Any = None) -> dict[str, float]:
    """Seconds per call of ``a + b`` ((1,), float32, graph recorded) and of its parts."""
    import mikagrad as mg
    from mikagrad import engine

    a = mg.tensor(np.ones(1, np.float32), requires_grad=True)
    b = mg.tensor(np.ones(1, np.float32), requires_grad=True)
    parts: dict[str, tuple[str, dict[str, Any]]] = {"a + b": ("a + b", {"a": a, "b": b})}
    n = getattr(a, "_node", None)
    if n is not None and hasattr(n, "binary"):
        parts["Rust call (Node.binary, node made and freed)"] = (
            "an.binary(bn, \"add\", False)", {"an": a._node, "bn": b._node})
        if hasattr(engine, "_arg"):
            parts["_arg(b) (operand coercion)"] = (
                "arg(b)", {"arg": engine._arg, "b": b})
        if hasattr(engine, "_wrap"):
            node = a._node.binary(b._node, "add", False)
            parts["_wrap(node, a, b) (Value made)"] = (
                "wrap(node, a, b)", {"wrap": engine._wrap, "node": node, "a": a, "b": b})
    parts["floor: a Python __add__ that does nothing"] = ("p + p", {"p": _Floor()})
    out = {name: measure(stmt, ns, budget).median for name, (stmt, ns) in parts.items()}
    if torch_fw is not None:
        stmt, ns = torch_fw.tiny()["a + b, (1,), requires grad"]
        out["PyTorch a + b"] = measure(stmt, ns, budget).median
    return out


KERNELS = [  # (name, MikaGrad statement, numpy statement)
    ("x + y", "x + y", "xn + yn"),
    ("x * y", "x * y", "xn * yn"),
    ("x + bias (row broadcast)", "x + b", "xn + bn"),
    ("relu", "x.relu()", "np.maximum(xn, 0)"),
    ("exp", "x.exp()", "np.exp(xn)"),
    ("tanh", "x.tanh()", "np.tanh(xn)"),
    ("sum()", "x.sum()", "xn.sum()"),
    ("sum(axis=0)", "x.sum(0)", "xn.sum(0)"),
    ("x.T (view) + y", "x.T + z", "xn.T + zn"),
    ("x @ w, w (n, n)", "x @ w", "xn @ wn"),
    ("x @ w.T (view)", "x @ w.T", "xn @ wn.T"),
]


def kernels(budget: Budget, shapes: tuple = ((64, 128), (256, 512))) -> list[dict[str, Any]]:
    """Forward-only kernel time of MikaGrad vs numpy (no grad, float32)."""
    import mikagrad as mg

    rng = np.random.default_rng(0)
    rows = []
    for shape in shapes:
        arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in
                  (("xn", shape), ("yn", shape), ("bn", shape[-1:]), ("zn", shape[::-1]),
                   ("wn", (shape[-1], shape[-1])))}
        ns = {"np": np, **arrays, **{k[0]: mg.tensor(v) for k, v in arrays.items()}}
        for name, stmt, np_stmt in KERNELS:
            if "@" in stmt:  # let OpenBLAS's spinning threads go idle first
                time.sleep(SETTLE_S)
            m = measure(stmt, ns, budget).median
            n = measure(np_stmt, ns, budget).median
            rows.append({"op": name, "shape": shape, "MikaGrad": m, "numpy": n, "ratio": m / n})
    return rows


def backward_ops(budget: Budget, torch_fw: Any = None) -> list[dict[str, Any]]:
    """Backward alone of each op of the large MLP, at its shapes (batch 256, float32).

    MikaGrad runs ``backward`` again on one recorded graph (it allows that; the leaves'
    ``.grad`` is reset first, so nothing accumulates); PyTorch the same with
    ``retain_graph=True``; numpy computes the same gradients by hand.
    """
    import mikagrad as mg

    rng = np.random.default_rng(0)

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    x, h, z = arr(256, 784), arr(256, 512), arr(256, 512)
    w1, w2, b = arr(512, 784), arr(512, 512), arr(512)
    g = arr(256, 512)
    np_ns = {"x": x, "h": h, "z": z, "w1": w1, "w2": w2, "b": b, "g": g, "np": np}
    cases = [  # name, forward (same text in MikaGrad and PyTorch), leaves needing grad, numpy
        ("x @ W.T: (256, 784) @ (784, 512), grad of W", "x @ w1.T", ("w1",), "g.T @ x"),
        ("h @ W.T: (256, 512) @ (512, 512), grads of h and W", "h @ w2.T", ("h", "w2"),
         "(g.T @ h, g @ w2)"),
        ("z + b, b (512,) broadcast, grads of z and b", "z + b", ("z", "b"), "(g, g.sum(0))"),
        ("z.relu(), (256, 512)", "z.relu()", ("z",), "g * (z > 0)"),
    ]
    rows = []
    for name, fwd, leaves, np_stmt in cases:
        row: dict[str, Any] = {"op": name}
        for fw, mod in (("MikaGrad", mg), ("PyTorch", torch_fw)):
            if mod is None:
                continue
            if fw == "MikaGrad":
                ns = {k: mg.tensor(v, requires_grad=k in leaves) for k, v in np_ns.items()
                      if k != "np"}
            else:
                import torch

                ns = {k: torch.tensor(v, requires_grad=k in leaves) for k, v in np_ns.items()
                      if k != "np"}
            out = eval(fwd, {}, ns)
            reset = "; ".join(f"{k}.grad = None" for k in leaves)
            call = "out.backward(g)" if fw == "MikaGrad" else "out.backward(g, retain_graph=True)"
            time.sleep(SETTLE_S)
            row[fw] = measure(f"{reset}; {call}", {**ns, "out": out}, budget).median
        time.sleep(SETTLE_S)
        row["numpy"] = measure(np_stmt, np_ns, budget).median
        rows.append(row)
    return rows


def gc_effect(n_ops: int) -> dict[str, Any]:
    """Build time per op of an ``n_ops`` chain with Python's garbage collector on and off.

    Each MikaGrad Value keeps its operands' Values alive (to give back ``parents``), so a
    long graph is that many GC-tracked Python objects, and the collector's full passes walk
    them (and every other tracked object in the process) again and again.
    """
    import gc

    from . import fw_mikagrad

    build, _ = fw_mikagrad.chain_parts(n_ops)
    out: dict[str, Any] = {"n_ops": n_ops, "tracked": len(gc.get_objects())}
    for on in (True, False):
        gc.collect()
        if not on:
            gc.disable()
        try:
            t0 = time.perf_counter()
            loss = build()
            out["on" if on else "off"] = (time.perf_counter() - t0) / n_ops
        finally:
            gc.enable()
        del loss
    return out


def graph_ops(loss: Any) -> dict[str, Any]:
    """Nodes behind ``loss`` (through the public ``op`` / ``parents``), by op."""
    seen: set[int] = set()
    stack, ops, leaves = [loss], Counter(), 0
    while stack:
        v = stack.pop()
        key = hash(v)  # a Value hashes by its node's id; == is elementwise, so no set of Values
        if key in seen:
            continue
        seen.add(key)
        if v.op:
            ops[v.op] += 1
        else:
            leaves += 1
        stack.extend(v.parents)
    out = {"op_nodes": sum(ops.values()), "leaves": leaves, "ops": dict(ops.most_common())}
    try:  # explain mode (public: mikagrad.explain) lists the backward's steps and broadcasts
        import io

        import mikagrad as mg

        with mg.explain(file=io.StringIO()) as ex:
            loss.backward()
        out["backward_steps"] = len(ex.steps)
        out["unbroadcasts"] = sum(len(s.get("broadcasts", ())) for s in ex.steps)
    except Exception:  # an older or newer engine without it
        pass
    return out


def phases(parts: tuple, steps: int) -> dict[str, float]:
    """Median seconds of each phase over ``steps`` steps (after a short warm-up)."""
    forward, zero_grad, backward, update, _ = parts
    times: dict[str, list[float]] = {k: [] for k in ("forward", "zero_grad", "backward", "step")}
    pc = time.perf_counter
    for i in range(steps + 5):
        t0 = pc()
        out = forward()
        t1 = pc()
        zero_grad()
        t2 = pc()
        r = backward(out)
        t3 = pc()
        update(*(() if r is None else (r,)))
        t4 = pc()
        del out, r
        if i >= 5:
            for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[k].append(dt)
    med = {k: statistics.median(v) for k, v in times.items()}
    med["total"] = sum(med.values())
    return med


def _label(key: tuple) -> tuple[str, str]:
    """(readable name, kind) of a pstats key: 'rust', 'mikagrad', 'bench' (the step's own
    code, e.g. the L2 term's generator) or 'other'."""
    file, line, func = key
    if file == "~":
        name = func.strip("<>")
        if name.startswith("built-in method __new__ of type object"):
            return "object.__new__ (Value shells)", "other"
        for pre in ("method ", "built-in method "):
            name = name.removeprefix(pre)
        if "of 'builtins.Node' objects" in name or "of 'mikagrad._core.Node' objects" in name:
            return "Node." + name.split("'")[1], "rust"
        if "mikagrad._core" in name or name.startswith("_core."):
            return name.replace("mikagrad.", ""), "rust"
        return name, "other"
    path = file.replace(os.sep, "/")
    short = "/".join(path.split("/")[-2:])
    kind = "mikagrad" if "/mikagrad/" in path else ("bench" if "/bench/" in path else "other")
    return f"{short}:{func}", kind


def cprofile(step: Any, steps: int, top: int = 12) -> dict[str, Any]:
    """cProfile of ``steps`` calls of ``step``: per-step totals and the top functions."""
    for _ in range(5):
        step()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        step()
    prof.disable()
    wall = (time.perf_counter() - t0) / steps
    st = pstats.Stats(prof)
    rows, kinds, calls, rust_calls = [], Counter(), 0, 0
    for key, (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        name, kind = _label(key)
        if name.startswith("disable") and "Profiler" in name:
            continue
        kinds[kind] += tt
        calls += nc
        if kind == "rust":
            rust_calls += nc
        rows.append({"name": name, "kind": kind, "calls": nc / steps, "tottime": tt / steps,
                     "cumtime": ct / steps})
    rows.sort(key=lambda r: -r["tottime"])
    total = sum(kinds.values())
    return {"wall_under_profiler": wall, "calls": calls / steps, "rust_calls": rust_calls / steps,
            "share": {k: v / total for k, v in kinds.items()}, "top": rows[:top]}


def run(frameworks: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Everything the 'Profile findings' section reports."""
    budget = Budget(budget_s=0.1 if quick else 0.3, min_samples=5)
    mgfw = frameworks["MikaGrad"]
    out: dict[str, Any] = {"op_split": op_split(budget, frameworks.get("PyTorch")),
                           "kernels": kernels(budget),
                           "backward_ops": backward_ops(budget, frameworks.get("PyTorch")),
                           "gc": gc_effect(20_000 if quick else 100_000)}
    xm, ym = W.moons(100)
    xd, yd, _ = W.digits(64)
    xl, yl = W.large(256)
    cases = {"moons": (W.MOONS_SIZES, xm, ym, "hinge", 50 if quick else 200),
             "digits": (W.DIGITS_SIZES, xd, yd, "ce", 50 if quick else 200),
             "large": (W.LARGE_SIZES, xl, yl, "ce", 10 if quick else 30)}
    for case, (sizes, x, y, loss, steps) in cases.items():
        weights = W.init_mlp(sizes)
        res: dict[str, Any] = {"phases": {}}
        for name in ("MikaGrad", "PyTorch", "numpy"):
            if name in frameworks:
                time.sleep(SETTLE_S)
                res["phases"][name] = phases(frameworks[name].mlp_parts(weights, x, y, loss), steps)
        forward = mgfw.mlp_parts(weights, x, y, loss)[0]
        res["graph"] = graph_ops(forward())
        step, _ = mgfw.mlp_step(weights, x, y, loss)
        res["cprofile"] = cprofile(step, steps // 2)
        out[case] = res
    return out
