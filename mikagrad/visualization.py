"""``draw_dot``: the computation graph behind a Value, drawn with Graphviz.

    dot = draw_dot(loss, params=model)           # a graphviz.Digraph; Jupyter shows it inline
    dot.render("graph", format="png", cleanup=True)   # writes graph.png

Building the graph (``draw_dot``, ``dot.source``) needs only the ``graphviz`` Python package.
Rendering it (``render``, ``pipe``, showing it in Jupyter) runs the Graphviz ``dot`` program
when it is on PATH, and otherwise ``graphviz-pure``, a self-contained port of Graphviz that
``pip install 'mikagrad[viz]'`` installs (it writes svg, png, jpeg, json and dot, not pdf).
With neither, rendering raises ``GraphvizNotFoundError`` (a ``graphviz.ExecutableNotFound``)
whose message says what to install.

As in micrograd, each Value is a box and each op an ellipse between its inputs and its
result. A one-element Value is micrograd's record, ``data | grad``; a larger one shows its
shape and dtype, its values (a handful) or their mean/min/max, and after ``backward()`` its
gradient's norm, mean and fraction of exact zeros. NaN or Inf, in data or gradient, is
flagged in red. Fill colours tell inputs, parameters, intermediate results and the output
apart (a legend sits under the graph).

A gradient taken with ``create_graph=True`` is a Value with a graph of its own, so
``draw_dot(x.grad)`` draws the backward pass. Its ops are coloured by the pass that recorded
them (purple for a first derivative, pink for a second, ...), and each names the forward op
whose backward rule it comes from.
"""

from __future__ import annotations

import html
import importlib.metadata
import os
import shutil
import subprocess
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from ._core import ACCUMULATION
from .engine import _MICROGRAD_OPS, Value
from .explain import ordinal

try:
    import graphviz
except ImportError as e:  # pragma: no cover - the extra is documented
    raise ImportError(
        "mikagrad.visualization needs the graphviz Python package: "
        "pip install graphviz  (or pip install 'mikagrad[viz]')"
    ) from e

__all__ = ["draw_dot", "trace", "Graph", "GraphvizNotFoundError", "INSTALL_GRAPHVIZ"]

INSTALL_GRAPHVIZ = """\
Install a renderer with one of:
    pip:            pip install graphviz-pure   (or pip install 'mikagrad[viz]')
    Debian/Ubuntu:  sudo apt-get install graphviz
    macOS:          brew install graphviz
    conda:          conda install -c conda-forge graphviz
Building the graph (draw_dot, .source) works without one; only rendering needs it."""

# Fill colours, one per kind of Value; NaN/Inf is drawn in RED.
COLORS = {
    "input": "#dbeafe",         # a leaf that needs no gradient: data, constants
    "parameter": "#fde68a",     # a leaf that requires grad
    "intermediate": "#ffffff",  # the result of an op
    "output": "#bbf7d0",        # the root being drawn
}
OP_COLOR = "#e5e7eb"
# Ops recorded by a backward pass (create_graph=True), by order: gradient, second derivative, ...
BACKWARD_COLORS = ("#e9d5ff", "#fbcfe8", "#fed7aa")
RED = "#dc2626"
HANDFUL = 6  # tensors with at most this many elements show their values
_MIME = {"svg": "image/svg+xml", "png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}


class GraphvizNotFoundError(graphviz.ExecutableNotFound):
    """Rendering was asked for, but neither Graphviz's ``dot`` nor ``graphviz-pure`` is there."""

    def __init__(self, cause: BaseException | str) -> None:
        RuntimeError.__init__(self, f"rendering a graph needs a Graphviz program ({cause}).\n"
                              + INSTALL_GRAPHVIZ)


def _graphviz_pure() -> str | None:
    """The ``graphviz-pure`` program installed by pip, or None.

    Found through the package's file list, so it works from a Jupyter kernel whose PATH
    lacks the venv's bin directory."""
    try:
        files = importlib.metadata.files("graphviz-pure") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name in ("graphviz-pure", "graphviz-pure.exe"):
            path = Path(str(f.locate()))
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    return shutil.which("graphviz-pure")


def _pipe_without_dot(source: str, engine: str, fmt: str, cause: BaseException) -> bytes:
    """Renders ``source`` with graphviz-pure, as ``dot -K engine -T fmt`` would."""
    program = _graphviz_pure()
    if program is None:
        raise GraphvizNotFoundError(cause) from None
    cmd = [program, f"-K{engine}", f"-T{fmt}", "-q"]  # -q: no font-width warnings on stderr
    proc = subprocess.run(cmd, input=source.encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0:
        raise graphviz.CalledProcessError(proc.returncode, cmd, output=proc.stdout,
                                          stderr=proc.stderr)
    return proc.stdout


def _format_of(fmt: str | None, renderer: str | None, formatter: str | None) -> str:
    return ":".join(x for x in (fmt, renderer, formatter) if x)


class Graph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that renders with ``graphviz-pure`` when ``dot`` is missing, and
    whose error, when neither is there, says what to install.

    In Jupyter it shows in its own ``format`` (so ``format="png"`` embeds a PNG, which
    GitHub displays; it does not display SVG outputs).

    >>> g = draw_dot(Value(2.0) * 3)
    >>> isinstance(g, Graph) and isinstance(g, graphviz.Digraph)
    True
    """

    def pipe(self, format: str | None = None, renderer: str | None = None,
             formatter: str | None = None, neato_no_op: bool | int | None = None,
             quiet: bool = False, *, engine: str | None = None,
             encoding: str | None = None) -> bytes | str:
        try:
            return super().pipe(format, renderer, formatter, neato_no_op, quiet,
                                engine=engine, encoding=encoding)
        except graphviz.ExecutableNotFound as e:
            out = _pipe_without_dot(self.source, engine or self.engine,
                                    _format_of(format or self.format, renderer, formatter), e)
            return out.decode(encoding) if encoding else out

    def render(self, filename: Any = None, directory: Any = None,
               view: bool = False, cleanup: bool = False, format: str | None = None,
               renderer: str | None = None, formatter: str | None = None,
               neato_no_op: bool | int | None = None, quiet: bool = False,
               quiet_view: bool = False, *, outfile: Any = None, engine: str | None = None,
               raise_if_result_exists: bool = False, overwrite_source: bool = False) -> str:
        kwargs = dict(view=view, cleanup=cleanup, format=format, renderer=renderer,
                      formatter=formatter, neato_no_op=neato_no_op, quiet=quiet,
                      quiet_view=quiet_view, outfile=outfile, engine=engine,
                      raise_if_result_exists=raise_if_result_exists,
                      overwrite_source=overwrite_source)
        try:
            return str(super().render(filename, directory=directory, **kwargs))
        except graphviz.ExecutableNotFound as e:
            return self._render_without_dot(filename, directory, e, **kwargs)

    def _render_without_dot(self, filename: Any, directory: Any, cause: BaseException, *,
                            view: bool, cleanup: bool, format: str | None,
                            renderer: str | None, formatter: str | None, quiet_view: bool,
                            outfile: Any, engine: str | None, raise_if_result_exists: bool,
                            **_: Any) -> str:
        """``render`` as graphviz does it (source saved, then ``<source>.<format>``, or
        ``outfile`` with its suffix as the format), with graphviz-pure doing the drawing."""
        if outfile is not None:
            outfile = Path(outfile)
            format = format or outfile.suffix.lstrip(".") or None
            if directory is None:
                outfile = Path(self.directory, outfile)
            if filename is None:
                filename = outfile.with_suffix(".gv")
        fmt = format or self.format
        data = _pipe_without_dot(self.source, engine or self.engine,
                                 _format_of(fmt, renderer, formatter), cause)
        source_path = self.save(filename, directory=directory)
        target = Path(outfile) if outfile is not None else Path(f"{source_path}.{fmt}")
        if raise_if_result_exists and target.exists():
            raise FileExistsError(f"output file exists: {os.fspath(target)!r}")
        target.write_bytes(data)
        if cleanup:
            os.remove(source_path)
        if view or quiet_view:
            graphviz.view(os.fspath(target), quiet=quiet_view)
        return os.fspath(target)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> Any:
        if include is None and self.format in _MIME:
            include = [_MIME[self.format]]
        return super()._repr_mimebundle_(include, exclude, **kwargs)


def trace(root: Value) -> tuple[dict[int, Value], set[tuple[int, int]]]:
    """micrograd's ``trace``: Values by id and edges (parent id, child id), without recursion.

    >>> a = Value(2.0)
    >>> nodes, edges = trace(a * a + a)  # a, a * a and the sum; a -> mul, a -> add, mul -> add
    >>> len(nodes), len(edges)
    (3, 3)
    """
    nodes: dict[int, Value] = {}
    edges: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        v = stack.pop()
        vid = v._node.id
        if vid in nodes:
            continue
        nodes[vid] = v
        for p in v.parents:
            edges.add((p._node.id, vid))
            stack.append(p)
    return nodes, edges


def _walk(root: _core.Node, limit: int) -> tuple[dict[int, tuple[_core.Node, list[int]]], int]:
    """Breadth first from the root over core nodes: the first ``limit`` found, each with its
    parents' ids, and how many there are in all. A queue, not recursion: graphs can be deep."""
    kept: dict[int, tuple[_core.Node, list[int]]] = {}
    seen = {root.id}
    queue = deque([root])
    while queue:
        n = queue.popleft()
        parents = n.parents
        if len(kept) < limit:
            kept[n.id] = (n, [p.id for p in parents])
        for p in parents:
            if p.id not in seen:
                seen.add(p.id)
                queue.append(p)
    return kept, len(seen)


def _param_names(params: Any) -> dict[int, str]:
    """Node id -> name, from a Module, a dict {name: Value} or an iterable of (name, Value)."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        pairs: Iterable[Any] = params.named_parameters()
    elif isinstance(params, Mapping):
        pairs = params.items()
    else:
        pairs = params
    names: dict[int, str] = {}
    for pair in pairs:
        try:
            name, v = pair
        except (TypeError, ValueError):
            raise TypeError(
                "draw_dot: params must be a Module, a dict {name: Value} or (name, Value) pairs"
            ) from None
        if not isinstance(v, Value):
            raise TypeError(f"draw_dot: parameter {name!r} is a {type(v).__name__}, not a Value")
        names.setdefault(v._node.id, str(name))
    return names


def _g(x: float) -> str:
    return f"{x:.3g}"


def _shape(s: tuple) -> str:
    return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"


def _values(a: np.ndarray) -> str:
    """A handful of values: one line, or one line per row for a matrix such as (2, 3)."""
    a = a + 0.0  # a copy, with -0.0 shown as 0
    a = a.reshape(-1, a.shape[-1]) if sum(d > 1 for d in a.shape) > 1 else a.reshape(-1)
    return np.array2string(a, separator=", ", formatter={"float_kind": lambda x: f"{x:.4g}"})


def _record(text: str) -> str:
    """Escapes the characters that structure a record label."""
    for ch in "\\{}|<>\"":
        text = text.replace(ch, "\\" + ch)
    return text


def _scalar_label(n: _core.Node, name: str | None, rankdir: str) -> tuple[str, bool]:
    """micrograd's record: ``{ name | data 2.0000 | grad 1.0000 }``, and whether it holds NaN/Inf.

    The braces lay the fields out in a row when the graph runs left to right."""
    raw = n.data().reshape(-1)[0]
    data = float(raw)
    grad = n.grad()
    g = None if grad is None else float(grad.reshape(-1)[0])
    fields = [] if name is None else [_record(name)]
    if len(n.shape) > 0:
        fields.append(_shape(n.shape))
    if n.dtype in ("float32", "float64"):
        fields.append(f"data {data:.4f}")
    else:  # an int or bool shows as itself, with its dtype
        fields += [n.dtype, f"data {raw.item()}"]
    fields.append("grad None" if g is None else f"grad {g:.4f}")
    bad = not np.isfinite(data) or (g is not None and not np.isfinite(g))
    text = " | ".join(fields)
    return ("{ " + text + " }" if rankdir in ("LR", "RL") else text), bad


def _row(text: str, bold: bool = False, red: bool = False) -> str:
    if bold:
        text = f"<B>{text}</B>"
    if red:
        text = f'<FONT COLOR="{RED}">{text}</FONT>'
    return f'<TR><TD ALIGN="LEFT" BALIGN="LEFT">{text}</TD></TR>'


def _multiline(text: str) -> str:
    return "<BR/>".join(html.escape(line) for line in text.splitlines())


def _tensor_label(n: _core.Node, name: str | None, fill: str) -> tuple[str, bool]:
    """An HTML table: name, shape and dtype; data; gradient statistics. NaN/Inf in red."""
    size = int(np.prod(n.shape, dtype=np.int64))
    title = f"{_shape(n.shape)} {n.dtype}"
    rows = [_row(html.escape(name) + " " + title if name else title, bold=True)]
    d = n.stats(False)
    if d is None or size == 0:
        d = {"nonfinite": 0}
        rows.append(_row("data (empty)"))
    elif size <= HANDFUL:
        rows.append(_row("data " + _multiline(_values(n.data())), red=d["nonfinite"] > 0))
    else:
        rows.append(_row(f"data mean {_g(d['mean'])} · min {_g(d['min'])} · max {_g(d['max'])}"))
    if d["nonfinite"]:
        rows.append(_row(f"data: {d['nonfinite']} NaN/Inf of {size}", bold=True, red=True))
    grad, g = n.grad(), n.stats(True)
    if grad is None or g is None:
        rows.append(_row("grad None"))
    else:
        if 0 < size <= HANDFUL:
            rows.append(_row("grad " + _multiline(_values(grad)), red=g["nonfinite"] > 0))
        rows.append(_row(f"grad norm {_g(g['norm'])} · mean {_g(g['mean'])} · "
                         f"zeros {g['zeros']:.0%}", red=g["nonfinite"] > 0))
        if g["nonfinite"]:
            rows.append(_row(f"grad: {g['nonfinite']} NaN/Inf of {size}", bold=True, red=True))
    bad = bool(d["nonfinite"] or (g is not None and g["nonfinite"]))
    border = f' COLOR="{RED}"' if bad else ""
    table = (f'<TABLE BORDER="{2 if bad else 1}" CELLBORDER="0" CELLSPACING="0" '
             f'CELLPADDING="3" BGCOLOR="{fill}"{border}>{"".join(rows)}</TABLE>')
    return f"<{table}>", bad


def _backward_color(order: int) -> str:
    return BACKWARD_COLORS[min(order, len(BACKWARD_COLORS)) - 1]


def _legend(kinds: set[str], orders: set[int], note: str) -> str:
    """The colour key, and the truncation note in red when there is one."""
    cells = "".join(
        f'<TD BGCOLOR="{COLORS[k]}" BORDER="1">{k}</TD>' for k in COLORS if k in kinds
    )
    cells += f'<TD BGCOLOR="{OP_COLOR}" BORDER="1">op</TD>'
    cells += "".join(
        f'<TD BGCOLOR="{_backward_color(k)}" BORDER="1">op of the {ordinal(k)} backward</TD>'
        for k in sorted(orders)
    )
    key = f'<TABLE BORDER="0" CELLSPACING="4"><TR>{cells}</TR></TABLE>'
    rows = f'<TR><TD ALIGN="LEFT">{key}</TD></TR>'
    if note:
        rows += f'<TR><TD ALIGN="LEFT"><FONT COLOR="{RED}">{html.escape(note)}</FONT></TD></TR>'
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0">{rows}</TABLE>>'


def _kind(n: _core.Node, root_id: int) -> str:
    if n.id == root_id:
        return "output"
    if n.op:
        return "intermediate"
    return "parameter" if n.requires_grad else "input"


def _add_value(dot: Graph, n: _core.Node, kind: str, name: str | None, rankdir: str) -> None:
    """The Value's box: micrograd's record when it holds one element, else a table."""
    if int(np.prod(n.shape, dtype=np.int64)) == 1:
        label, bad = _scalar_label(n, name, rankdir)
        style = {"shape": "record", "style": "filled", "fillcolor": COLORS[kind]}
        if bad:
            style.update(color=RED, fontcolor=RED, penwidth="2")
    else:
        label, _ = _tensor_label(n, name, COLORS[kind])
        style = {"shape": "none", "margin": "0"}
    dot.node(str(n.id), label=label, **style)


def draw_dot(root: Value, format: str = "svg", rankdir: str = "LR", max_nodes: int = 200,
             params: Any = None, legend: bool = True) -> graphviz.Digraph:
    """Draws the graph behind ``root`` and returns it as a ``graphviz.Digraph``.

    format     "svg" or "png" (any Graphviz format): the default of ``.render()`` and the
               picture Jupyter shows.
    rankdir    "LR" (left to right, as micrograd) or "TB" (top to bottom).
    max_nodes  at most this many Values are drawn, those nearest the root; the rest is
               replaced by one red note node saying how many were left out.
    params     a Module (its ``named_parameters``), a dict {name: Value} or (name, Value)
               pairs: those Values are labelled with their names. (The colour comes from
               the Value itself: a leaf that requires grad is a parameter, one that does
               not is an input.)
    legend     show the colour legend under the graph.

    Value nodes are named by their node id (``str(v._node.id)``), op nodes by that id + "_op".

    >>> a, b = Value(2.0), Value(-3.0)
    >>> dot = draw_dot(a * b + a)  # no Graphviz program needed yet
    >>> 'label="*"' in dot.source  # micrograd's symbols
    True
    >>> dot.render("graph", format="png", cleanup=True)  # doctest: +SKIP
    'graph.png'
    """
    if not isinstance(root, Value):
        raise TypeError(f"draw_dot: root must be a Value, got {type(root).__name__}")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_dot: rankdir must be 'LR', 'TB', 'RL' or 'BT', got {rankdir!r}")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"draw_dot: max_nodes must be a positive int, got {max_nodes!r}")
    names = _param_names(params)
    kept, total = _walk(root._node, max_nodes)
    font = {"fontname": "Helvetica", "fontsize": "11"}
    dot = Graph(format=format, graph_attr={"rankdir": rankdir, **font}, node_attr=font,
                edge_attr={"color": "#6b7280", "arrowsize": "0.7"})

    kinds: set[str] = set()
    orders: set[int] = set()  # the backward passes that recorded the ops drawn
    cut: list[str] = []  # op nodes with an input that was left out
    for vid, (n, parent_ids) in kept.items():
        kind = _kind(n, root._node.id)
        kinds.add(kind)
        _add_value(dot, n, kind, names.get(vid, n.label), rankdir)
        if not n.op:
            continue
        op = f"{vid}_op"
        # micrograd's symbols ('+', '*', '**', 'ReLU'); other ops by name.
        label, tooltip, fill = _MICROGRAD_OPS.get(n.op, n.op), n.op, OP_COLOR
        if n.made_by is not None:  # recorded by a backward pass: say whose rule
            order, of = n.made_by
            orders.add(order)
            if of == ACCUMULATION:
                label += f"\\n{of}"
                tooltip = f"{n.op}: two gradients summed into one .grad"
            else:
                label += f"\\n∂ {of}"
                tooltip = f"{n.op}, from the backward rule of {of}"
            tooltip += f" ({ordinal(order)} backward)"
            fill = _backward_color(order)
        dot.node(op, label=label, tooltip=tooltip, style="filled", fillcolor=fill,
                 fontsize="10", height="0.3")
        dot.edge(op, str(vid))
        for pid in dict.fromkeys(parent_ids):  # x * x: one edge, as micrograd
            if pid in kept:
                dot.edge(str(pid), op)
        if any(pid not in kept for pid in parent_ids):
            cut.append(op)

    note = ""
    if total > len(kept):
        hidden = total - len(kept)
        note = f"graph truncated: {hidden} of {total} values not drawn (max_nodes={max_nodes})"
        dot.node("truncated", label=f"… {hidden} more values not drawn\\n"
                 f"(graph has {total}; max_nodes={max_nodes})",
                 shape="note", style="filled", fillcolor="#fee2e2", color=RED, fontcolor=RED)
        for op in cut:
            dot.edge("truncated", op, style="dashed", color=RED)
    if legend:
        dot.attr(label=_legend(kinds, orders, note), labelloc="b", labeljust="l")
    return dot
