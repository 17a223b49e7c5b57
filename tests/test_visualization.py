"""draw_dot: what is drawn (nodes, edges, labels), rendering, and the no-Graphviz error.

Graphs are checked through ``dot.body``: each value node is named by its node id, each op
node by that id + "_op", so counts and labels can be compared with the graph itself.
"""

import os
import re
import shutil

import numpy as np
import pytest

graphviz = pytest.importorskip("graphviz")

import mikagrad as mg  # noqa: E402
from mikagrad import nn, visualization  # noqa: E402
from mikagrad.engine import Value  # noqa: E402
from mikagrad.visualization import (  # noqa: E402
    COLORS,
    GraphvizNotFoundError,
    draw_dot,
    trace,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# CI runs the tests with `dot` (.ci/run installs it) and again in a fresh venv without it.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="the Graphviz `dot` program is not installed"
)
# requirements.txt installs graphviz-pure, so in CI a missing one fails instead of skipping.
needs_pure = pytest.mark.skipif(
    visualization._graphviz_pure() is None and not os.environ.get("CI"),
    reason="graphviz-pure is not installed (pip install 'mikagrad[viz]')",
)
NODE = re.compile(r'^\t("?[\w]+"?) \[(.*)\]$', re.S)
EDGE = re.compile(r'^\t("?[\w]+"?) -> ("?[\w]+"?)(?: \[.*\])?$')


def parse(dot):
    """({node name: attribute text}, [(tail, head)]) from a Digraph's body."""
    nodes, edges = {}, []
    for line in dot.body:
        line = line.rstrip("\n")
        if m := EDGE.match(line):
            edges.append(tuple(s.strip('"') for s in m.groups()))
        elif m := NODE.match(line):
            nodes[m.group(1).strip('"')] = m.group(2)
    return nodes, edges


def value_nodes(nodes):
    return {k: v for k, v in nodes.items() if k.isdigit()}


def op_nodes(nodes):
    return {k: v for k, v in nodes.items() if k.endswith("_op")}


def expected_counts(root):
    """Values, ops and edges draw_dot must draw for the whole graph behind root."""
    values, pairs = trace(root)
    ops = sum(1 for v in values.values() if v.op)
    return len(values), ops, ops + len(pairs)  # op -> result, then each (input -> op)


def assert_whole_graph(dot, root):
    nodes, edges = parse(dot)
    n_values, n_ops, n_edges = expected_counts(root)
    assert len(value_nodes(nodes)) == n_values
    assert len(op_nodes(nodes)) == n_ops
    assert len(edges) == n_edges
    assert "truncated" not in nodes
    names = set(nodes)
    assert all(a in names and b in names for a, b in edges)
    return nodes, edges


# ---- scalar graphs ----------------------------------------------------------------------


def test_a_plus_b_is_micrograds_picture():
    a, b = Value(2.0), Value(-3.0)
    c = a + b
    dot = draw_dot(c)
    assert isinstance(dot, graphviz.Digraph)
    nodes, edges = assert_whole_graph(dot, c)
    assert len(nodes) == 4 and len(edges) == 3  # a, b, c, "+" ; a->+, b->+, +->c
    ids = {v: str(v._node.id) for v in (a, b, c)}
    op = ids[c] + "_op"
    assert nodes[op].startswith('label="+"') and 'tooltip=add' in nodes[op]
    assert sorted(edges) == sorted([(ids[a], op), (ids[b], op), (op, ids[c])])
    for v in (a, b, c):
        attrs = nodes[ids[v]]
        assert "shape=record" in attrs
        assert f"data {v.item():.4f}" in attrs and "grad None" in attrs


def test_scalar_records_show_gradients_after_backward():
    # micrograd's README example: its numbers must be on the picture.
    a, b = Value(-4.0), Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    g.backward()
    dot = draw_dot(g)
    nodes, _ = assert_whole_graph(dot, g)
    assert "{ data 24.7041 | grad 1.0000 }" in nodes[str(g._node.id)]
    assert "data -4.0000 | grad 138.8338" in nodes[str(a._node.id)]
    assert "data 2.0000 | grad 645.5773" in nodes[str(b._node.id)]
    # micrograd's symbols, as micrograd draws them; ops it lacks by name.
    assert {"+", "*", "**", "ReLU", "neg", "-", "/"} <= {
        attrs.split()[0].removeprefix("label=").strip('"') for attrs in op_nodes(nodes).values()
    }


def test_shared_node_is_drawn_once():
    x = Value(3.0)
    y = x * x  # one edge x -> mul, as micrograd's set of edges
    nodes, edges = parse(draw_dot(y))
    assert len(value_nodes(nodes)) == 2 and len(edges) == 2


def test_kinds_are_coloured_apart_with_a_legend():
    x = mg.tensor([1.0, 2.0])           # input: needs no grad
    w = Value([0.5, -1.0])              # parameter: a leaf that requires grad
    h = x * w                           # intermediate
    out = h.sum()                       # output
    dot = draw_dot(out)
    nodes, _ = parse(dot)
    assert f'BGCOLOR="{COLORS["input"]}"' in nodes[str(x._node.id)]
    assert f'BGCOLOR="{COLORS["parameter"]}"' in nodes[str(w._node.id)]
    assert f'BGCOLOR="{COLORS["intermediate"]}"' in nodes[str(h._node.id)]
    assert f'fillcolor="{COLORS["output"]}"' in nodes[str(out._node.id)]
    assert len(set(COLORS.values())) == 4
    legend = dot.source.split("label=<<TABLE", 1)[1]
    for kind in ("input", "parameter", "intermediate", "output", "op"):
        assert f">{kind}</TD>" in legend
    assert "labelloc=b" not in draw_dot(out, legend=False).source


def test_rankdir_and_format():
    v = Value(1.0) * 2.0
    assert "rankdir=TB" in draw_dot(v, rankdir="TB").source
    assert "rankdir=LR" in draw_dot(v).source
    assert draw_dot(v, format="png").format == "png"
    assert draw_dot(v).format == "svg"
    with pytest.raises(ValueError, match="rankdir"):
        draw_dot(v, rankdir="XY")
    with pytest.raises(TypeError, match="must be a Value"):
        draw_dot(3.0)


# ---- tensor graphs ----------------------------------------------------------------------


def test_tensor_nodes_show_shape_dtype_summary_and_grad_stats():
    rng = np.random.default_rng(0)
    W = Value(rng.standard_normal((3, 4)))
    x = mg.tensor(rng.standard_normal((4, 1)))
    b = Value(np.array([[0.0], [1.0], [-1.0]]))
    h = (W @ x + b).relu()
    out = h.sum()
    before = parse(draw_dot(out))[0]
    assert "grad None" in before[str(W._node.id)]
    out.backward()
    nodes, _ = assert_whole_graph(draw_dot(out), out)

    w_label = nodes[str(W._node.id)]
    assert "(3, 4) float64" in w_label
    d = W.data
    assert f"data mean {d.mean():.3g} · min {d.min():.3g} · max {d.max():.3g}" in w_label
    g = W.grad
    zeros = float(np.mean(g == 0))
    assert (f"grad norm {np.linalg.norm(g):.3g} · mean {g.mean():.3g} · zeros {zeros:.0%}"
            in w_label)

    b_label = nodes[str(b._node.id)]  # a handful: the values themselves, flattened
    assert "(3, 1) float64" in b_label and "data [0, 1, -1]" in b_label
    assert "grad [" in b_label and "grad norm" in b_label
    assert "grad None" in nodes[str(x._node.id)]  # inputs get no gradient

    h_label = nodes[str(h._node.id)]
    assert "(3, 1) float64" in h_label and "grad [1, 1, 1]" in h_label
    assert "#dc2626" not in h_label  # nothing to flag


def test_small_matrix_values_are_shown_by_row_and_float32_is_named():
    m = Value(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32))
    out = (m * 2).sum()
    nodes, _ = parse(draw_dot(out))
    label = nodes[str(m._node.id)]
    assert "(2, 3) float32" in label
    assert "data [[1, 2, 3],<BR/> [4, 5, 6]]" in label


def test_every_op_in_the_engine_can_be_drawn():
    rng = np.random.default_rng(1)
    a = Value(rng.uniform(0.5, 1.5, (2, 3)))
    b = Value(rng.uniform(0.5, 1.5, (3,)))
    parts = [
        a + b, a - b, a * b, a / b, a**2, 2**a, -a, a.exp(), a.log(), a.sqrt(), a.abs(),
        a.sin(), a.cos(), a.tanh(), a.sigmoid(), a.relu(), a.gelu(), a.softplus(),
        a.leaky_relu(0.1), a.clamp(0.6, 1.2), a.softmax(), a.log_softmax(),
        mg.maximum(a, b), mg.minimum(a, b), mg.where(a > 1.0, a, b),
        a.reshape(3, 2).T, a.flatten().reshape(2, 3), a.unsqueeze(0).squeeze(0),
        a.permute(1, 0).transpose(0, 1), b.expand(2, 3), a[:, ::2].sum() * a,
        a.gather(1, np.array([[0, 1, 2], [2, 1, 0]])), mg.cat([a[:1], a[1:]]),
        mg.stack([a[0], a[1]]), a.split(1)[0] * a, (a @ a.T).sum() + a,
        a.to(mg.float32).double(), a.amax(1, keepdim=True) + a.amin(0), a.mean() + a.var(),
        a.std() + a.logsumexp(1, keepdim=True),
    ]
    out = parts[0].sum()
    for p in parts[1:]:
        out = out + p.sum()
    out.backward()
    dot = draw_dot(out, max_nodes=10_000)
    nodes, _ = assert_whole_graph(dot, out)
    drawn = {attrs.split()[0].removeprefix("label=").strip('"')
             for attrs in op_nodes(nodes).values()}
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "relu": "ReLU",
              "matmul": "@"}
    for op in ("add", "sub", "mul", "div", "pow", "neg", "exp", "log", "sqrt", "abs", "sin",
               "cos", "tanh", "sigmoid", "relu", "gelu", "softplus", "leaky_relu", "clamp",
               "softmax", "log_softmax", "maximum", "minimum", "where", "reshape", "permute",
               "expand", "getitem", "gather", "cat", "matmul", "to", "max", "min", "sum",
               "logsumexp"):  # squeeze/unsqueeze/flatten are reshapes, stack is a cat
        assert symbol.get(op, op) in drawn, op
    source = dot.source  # every node label is well formed
    assert source.count("label=<<TABLE") == source.count("</TABLE>>")


# ---- modules ----------------------------------------------------------------------------


def test_module_graph_names_its_parameters():
    mg.manual_seed(0)
    model = nn.MLP(2, [4, 1])
    x = mg.tensor(np.random.default_rng(0).standard_normal((5, 2)))
    y = mg.tensor(np.array([[1.0], [-1.0], [1.0], [1.0], [-1.0]]))
    loss = mg.functional.hinge_loss(model(x), y)
    loss.backward()
    dot = draw_dot(loss, params=model)
    nodes, _ = assert_whole_graph(dot, loss)
    named = dict(model.named_parameters())
    assert list(named) == ["layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b"]
    for name, p in named.items():
        label = nodes[str(p._node.id)]
        if p.size == 1:  # layers.1.b, shape (1,): a record
            assert label.startswith(f'label="{{ {name} | (1,) | data ')
            assert f'fillcolor="{COLORS["parameter"]}"' in label
        else:
            assert f"<B>{name} {tuple(p.shape)} float64</B>" in label
            assert f'BGCOLOR="{COLORS["parameter"]}"' in label
            assert "grad norm" in label
    assert f'BGCOLOR="{COLORS["input"]}"' in nodes[str(x._node.id)]
    # the same names from a dict, or from (name, Value) pairs
    for params in (named, list(named.items()), model.named_parameters()):
        assert "layers.1.w" in draw_dot(loss, params=params).source
    with pytest.raises(TypeError, match="params"):
        draw_dot(loss, params=[1, 2])


def test_sequential_with_linear_layers():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = mg.randn(6, 3)
    loss = nn.CrossEntropyLoss()(model(x), np.array([0, 1, 0, 1, 1, 0]))
    loss.backward()
    nodes, _ = assert_whole_graph(draw_dot(loss, params=model), loss)
    text = " ".join(nodes.values())
    for name, _ in model.named_parameters():
        assert name in text
    assert "tanh" in {a.split()[0].removeprefix("label=") for a in op_nodes(nodes).values()}


# ---- NaN / Inf ---------------------------------------------------------------------------


def test_nan_gradients_are_flagged_in_red():
    x = Value(np.array([4.0, 1.0, -1.0, 9.0, 16.0, 25.0, 36.0]))
    with np.errstate(invalid="ignore"):
        y = x.sqrt()  # sqrt(-1) = NaN, and so is its gradient
        out = y.sum()
        out.backward()
    nodes, _ = parse(draw_dot(out))
    x_label = nodes[str(x._node.id)]
    assert '<FONT COLOR="#dc2626"><B>grad: 1 NaN/Inf of 7</B></FONT>' in x_label
    assert 'COLOR="#dc2626"' in x_label.split("<TR>")[0]  # the border too
    assert "data: 1 NaN/Inf of 7" in nodes[str(y._node.id)]
    assert "NaN/Inf" not in nodes[str(out._node.id)].split("grad")[1]  # grad of the output is 1
    assert "color=\"#dc2626\"" in nodes[str(out._node.id)]  # its data is NaN: red record

    s = Value(-1.0)
    with np.errstate(invalid="ignore"):
        t = s.sqrt()
        t.backward()
    s_label = parse(draw_dot(t))[0][str(s._node.id)]
    assert "grad nan" in s_label and 'fontcolor="#dc2626"' in s_label


def test_finite_graph_has_no_red():
    out = (Value(np.ones((3, 3))) * 2).sum()
    out.backward()
    assert "#dc2626" not in "".join(draw_dot(out, legend=False).body)


# ---- max_nodes ---------------------------------------------------------------------------


def test_over_max_nodes_is_truncated_with_a_visible_note():
    x = Value(1.0)
    h = x
    for _ in range(30):
        h = h * 1.01 + 0.5
    n_values, _, _ = expected_counts(h)
    dot = draw_dot(h, max_nodes=10)
    nodes, edges = parse(dot)
    assert len(value_nodes(nodes)) == 10
    assert str(h._node.id) in nodes  # the nodes nearest the root are kept
    assert str(x._node.id) not in nodes
    note = nodes["truncated"]
    assert f"{n_values - 10} more values not drawn" in note
    assert f"graph has {n_values}; max_nodes=10" in note
    assert [e for e in edges if e[0] == "truncated"]  # linked to where the cut is
    assert f"graph truncated: {n_values - 10} of {n_values} values not drawn" in dot.source
    names = set(nodes)
    assert all(a in names and b in names for a, b in edges)
    # at the limit nothing is cut
    assert "truncated" not in parse(draw_dot(h, max_nodes=n_values))[0]
    with pytest.raises(ValueError, match="max_nodes"):
        draw_dot(h, max_nodes=0)


def test_deep_graph_needs_no_recursion():
    x = Value(1.0)
    h = x
    for _ in range(20_000):  # far past Python's recursion limit
        h = h * 1.0
    dot = draw_dot(h, max_nodes=50)
    total = 1 + 2 * 20_000  # x, and each step's result and constant
    assert len(value_nodes(parse(dot)[0])) == 50
    assert f"(graph has {total}; max_nodes=50)" in parse(dot)[0]["truncated"]


# ---- rendering ---------------------------------------------------------------------------


@needs_dot
def test_render_png_makes_a_png(tmp_path):
    a = Value(np.arange(6.0).reshape(2, 3))
    out = (a * a).sum()
    out.backward()
    dot = draw_dot(out, format="png")
    path = dot.render(tmp_path / "graph", cleanup=True)
    assert path.endswith("graph.png")
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    assert not (tmp_path / "graph").exists()  # cleanup removed the source
    assert draw_dot(out).pipe(format="png")[:8] == PNG_MAGIC
    assert draw_dot(out).pipe(format="svg").lstrip().startswith(b"<?xml")
    # Jupyter gets the picture in the graph's format (GitHub shows PNG, not SVG)
    assert list(dot._repr_mimebundle_()) == ["image/png"]


@needs_pure
def test_without_dot_graphviz_pure_renders(monkeypatch, tmp_path):
    a = Value(np.arange(6.0).reshape(2, 3))
    out = (a * a).sum()
    out.backward()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` to be found
    assert shutil.which("dot") is None
    svg = draw_dot(out).pipe(format="svg")
    assert svg.lstrip().startswith(b"<?xml") and b"graphviz-pure" in svg
    assert "grad norm" in draw_dot(out).pipe(format="svg", encoding="utf-8")  # HTML labels
    assert draw_dot(out).pipe(format="png")[:8] == PNG_MAGIC
    # Jupyter's path: the picture in the graph's own format
    bundle = draw_dot(out)._repr_mimebundle_()
    assert list(bundle) == ["image/svg+xml"] and "<svg" in bundle["image/svg+xml"]
    png = draw_dot(out, format="png")._repr_mimebundle_()["image/png"]
    assert png[:8] == PNG_MAGIC
    # render() names its files as graphviz does, and cleans up the source
    dot = draw_dot(out, format="png")
    path = dot.render(tmp_path / "graph", cleanup=True)
    assert path == str(tmp_path / "graph.png") and open(path, "rb").read(8) == PNG_MAGIC
    assert not (tmp_path / "graph").exists()
    path = dot.render(outfile=tmp_path / "pic.svg")
    assert path == str(tmp_path / "pic.svg") and (tmp_path / "pic.gv").exists()
    assert open(path, "rb").read().lstrip().startswith(b"<?xml")
    with pytest.raises(FileExistsError):
        dot.render(outfile=tmp_path / "pic.svg", raise_if_result_exists=True)
    with pytest.raises(graphviz.CalledProcessError):  # a format graphviz-pure does not write
        dot.pipe(format="pdf")


def test_without_any_renderer_rendering_says_how_to_install(monkeypatch, tmp_path):
    out = (Value([1.0, 2.0]) * 3).sum()
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(visualization, "_graphviz_pure", lambda: None)
    dot = draw_dot(out, format="png")  # building needs no `dot`
    assert 'label="*"' in dot.source
    for render in (lambda: dot.pipe(), lambda: dot.render(tmp_path / "g"),
                   lambda: dot._repr_mimebundle_()):
        with pytest.raises(GraphvizNotFoundError) as info:
            render()
        msg = str(info.value)
        assert "pip install graphviz-pure" in msg
        assert "apt-get install graphviz" in msg
        assert "brew install graphviz" in msg
        assert "conda install -c conda-forge graphviz" in msg
        assert isinstance(info.value, graphviz.ExecutableNotFound)  # callers' except still works


def test_empty_tensor_is_drawn():
    e = Value(np.zeros((0, 3)))
    out = e.sum()
    out.backward()
    nodes, _ = assert_whole_graph(draw_dot(out), out)
    assert "(0, 3) float64" in nodes[str(e._node.id)] and "data (empty)" in nodes[str(e._node.id)]
