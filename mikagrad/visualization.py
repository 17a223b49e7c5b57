"""``draw_dot``: the computation graph behind a Value, as a graphviz Digraph."""

from __future__ import annotations

from typing import Any

import numpy as np

from .engine import Value

__all__ = ["draw_dot", "trace"]


def trace(root: Value) -> tuple[dict[int, Value], set[tuple[int, int]]]:
    """Nodes (by id) and edges (child id, parent id) behind ``root``, without recursion."""
    nodes: dict[int, Value] = {}
    edges: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        v = stack.pop()
        vid = v._n.id
        if vid in nodes:
            continue
        nodes[vid] = v
        for p in v.parents:
            edges.add((p._n.id, vid))
            stack.append(p)
    return nodes, edges


def _summary(a: np.ndarray | None) -> str:
    if a is None:
        return "None"
    if a.size == 1:
        return f"{float(a.reshape(-1)[0]):.4f}"
    if a.size <= 4:
        return np.array2string(a.reshape(-1), precision=3, separator=", ")
    return f"mean {a.mean():.3g} min {a.min():.3g} max {a.max():.3g}"


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR") -> Any:
    """Draws the graph behind ``root`` (data and ∇ on each value, op nodes apart)."""
    from graphviz import Digraph

    dot = Digraph(format=format, graph_attr={"rankdir": rankdir})
    nodes, edges = trace(root)
    for vid, v in nodes.items():
        shape = "" if v.size == 1 else f"shape {v.shape} | "
        label = f"{{ {shape}data {_summary(v.numpy())} | ∇ {_summary(v.grad)} }}"
        dot.node(str(vid), label=label, shape="record")
        if v.op:
            dot.node(f"{vid}{v.op}", label=v.op)
            dot.edge(f"{vid}{v.op}", str(vid))
    for child, parent in edges:
        dot.edge(str(child), f"{parent}{nodes[parent].op}")
    return dot
