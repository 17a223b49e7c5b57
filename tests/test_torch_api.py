"""PyTorch's API surface that learner code uses (issue "PyTorch and micrograd code runs
unchanged"): the torch paths, function forms, tensor methods, devices, ModuleList/ModuleDict.

Each is checked against fixed values, and against torch where it is installed.
"""

import importlib

import numpy as np
import pytest

import mikagrad as mg
import mikagrad.nn as nn
from mikagrad import Value

A = np.array([[0.5, -1.5, 2.0], [1.25, 0.0, -0.75]])


def test_torch_import_paths():
    F1 = importlib.import_module("mikagrad.nn.functional")
    from mikagrad.nn import functional as F2

    assert F1 is F2 is mg.functional is nn.functional
    assert hasattr(F1, "cross_entropy") and hasattr(F1, "silu")


# name -> (mikagrad call, torch call) on the same input
UNARY_FORMS = ["tanh", "exp", "log", "log10", "log2", "sqrt", "abs", "sigmoid", "relu",
               "square"]


@pytest.mark.parametrize("name", UNARY_FORMS)
def test_unary_function_forms(name):
    a = np.abs(A) + 0.5 if name in ("log", "log10", "log2", "sqrt") else A
    x = Value(a)
    y = getattr(mg, name)(x)
    np.testing.assert_allclose(y.numpy(), getattr(x, name)().numpy())
    y.sum().backward()
    assert x.grad.shape == a.shape
    ref = {"log10": np.log10, "log2": np.log2, "square": np.square}.get(name)
    if ref is not None:
        np.testing.assert_allclose(y.numpy(), ref(a), rtol=1e-15)


REDUCE_FORMS = {
    "sum": ((1,), {}), "mean": ((0,), {"keepdim": True}), "var": ((1,), {}),
    "std": ((0,), {"correction": 0}), "amax": ((1,), {}), "amin": ((0,), {}),
    "logsumexp": ((1,), {}), "softmax": ((1,), {}), "log_softmax": ((0,), {}),
}


@pytest.mark.parametrize("name", list(REDUCE_FORMS))
def test_reduction_function_forms_match_torch(name):
    torch = pytest.importorskip("torch")
    args, kw = REDUCE_FORMS[name]
    got = getattr(mg, name)(Value(A), *args, **kw).numpy()
    want = getattr(torch, name)(torch.tensor(A), *args, **kw).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_max_min_forms():
    v, i = mg.max(Value(A), 1)
    assert v.tolist() == [2.0, 1.25] and i.tolist() == [2, 0]
    assert mg.min(Value(A)).item() == -1.5
    assert mg.max(Value(A), Value(np.zeros_like(A))).tolist() == np.maximum(A, 0).tolist()
    assert mg.clamp(Value(A), -1, 1).tolist() == np.clip(A, -1, 1).tolist()
    assert mg.all(mg.tensor([1, 1])).item() and not mg.any(mg.tensor([0, 0])).item()
    assert mg.numel(Value(A)) == 6


def test_closeness():
    a, b = [1.0, 2.0, np.inf, np.nan], [1.0 + 1e-9, 2.1, np.inf, np.nan]
    assert mg.isclose(a, b).tolist() == [True, False, True, False]
    assert mg.isclose(a, b, equal_nan=True).tolist() == [True, False, True, True]
    assert mg.allclose([1.0, 2.0], [1.0, 2.0 + 1e-9]) and not mg.allclose(a, b)
    assert mg.equal([1, 2], [1, 2]) and not mg.equal([1, 2], [2, 1])
    assert not mg.equal([1, 2], [[1, 2]])


def test_closeness_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.array([1.0, 2.0, np.inf, -np.inf, np.nan, 0.0, 1e-9])
    b = np.array([1.0 + 1e-6, 2.1, np.inf, np.inf, np.nan, 1e-9, 0.0])
    for kw in ({}, {"equal_nan": True}, {"rtol": 0.1, "atol": 0.0}):
        want = torch.isclose(torch.tensor(a), torch.tensor(b), **kw).tolist()
        assert mg.isclose(a, b, **kw).tolist() == want, kw


@pytest.mark.parametrize("diagonal", [-1, 0, 1, 2])
def test_tril_triu(diagonal):
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Value(a)
    lo, up = mg.tril(x, diagonal), mg.triu(x, diagonal)
    np.testing.assert_array_equal(lo.numpy(), np.tril(a, diagonal))
    np.testing.assert_array_equal(up.numpy(), np.triu(a, diagonal))
    (lo.sum() + 2 * up.sum()).backward()
    np.testing.assert_array_equal(x.grad, np.tril(np.ones_like(a), diagonal)
                                  + 2 * np.triu(np.ones_like(a), diagonal))
    with pytest.raises(ValueError, match="tril"):
        mg.tril(Value([1.0]))


def test_histogram_matches_torch():
    x = mg.tensor([0.5, 1.5, 1.7, 3.9, -1.0])
    h = mg.histogram(x, bins=4, range=(0.0, 4.0))
    assert h.hist.tolist() == [1.0, 2.0, 0.0, 1.0]
    assert h.bin_edges.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    torch = pytest.importorskip("torch")
    t = torch.histogram(torch.tensor(x.numpy()), bins=4, range=(0.0, 4.0))
    assert h.hist.tolist() == t.hist.tolist() and h.bin_edges.tolist() == t.bin_edges.tolist()


# ---- tensor methods ---------------------------------------------------------------------------


def test_size_is_numpys_int_and_torchs_method():
    x = Value(A)
    assert x.size == 6 and x.size * 2 == 12 and isinstance(x.size, int)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2
    with pytest.raises(IndexError, match="size"):
        x.size(2)
    assert x.nelement() == x.numel() == 6 and x.element_size() == 8


def test_clone_view_as_and_friends():
    x = Value(A)
    c = x.clone()
    assert c._node is not x._node and not c.is_leaf
    c.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones_like(A))
    z = Value(np.array([-0.0]))
    assert np.signbit(z.clone().numpy()[0])  # -0.0 stays -0.0
    n = mg.tensor([1, 2])
    assert n.clone().tolist() == [1, 2] and n.clone()._node is not n._node
    assert x.view_as(Value(np.zeros(6))).shape == (6,)
    assert x.reshape_as(Value(np.zeros((3, 2)))).shape == (3, 2)
    assert Value([1.0]).expand_as(x).shape == (2, 3)
    assert mg.tensor([1, 2]).type_as(x).dtype == np.float64
    f32 = Value(np.zeros(2, np.float32))
    assert f32.new_zeros(2, 3).dtype == np.float32 and f32.new_zeros((2, 3)).shape == (2, 3)
    assert f32.new_ones(2).tolist() == [1.0, 1.0] and f32.new_full((1,), 7).tolist() == [7.0]
    assert f32.new_tensor([1, 2]).dtype == np.float32
    assert not f32.new_zeros(1).requires_grad
    y = Value([1.0])
    y.retain_grad()


def test_unbind_masked_fill_flip_repeat_roll():
    x = Value(A)
    rows = x.unbind(0)
    assert len(rows) == 2 and rows[1].tolist() == A[1].tolist()
    m = x.masked_fill(x < 0, 0.0)
    np.testing.assert_array_equal(m.numpy(), np.where(A < 0, 0.0, A))
    m.sum().backward()
    np.testing.assert_array_equal(x.grad, (A >= 0).astype(float))
    with pytest.raises(TypeError, match="masked_fill"):
        x.masked_fill(mg.tensor([1, 0, 1]), 0.0)
    np.testing.assert_array_equal(x.flip(0, 1).numpy(), A[::-1, ::-1])
    np.testing.assert_array_equal(x.flip(-1).numpy(), A[:, ::-1])
    np.testing.assert_array_equal(x.repeat(2, 1, 2).numpy(), np.tile(A, (2, 1, 2)))
    np.testing.assert_array_equal(x.roll(1).numpy(), np.roll(A, 1))
    np.testing.assert_array_equal(x.roll((1, -1), (0, 1)).numpy(), np.roll(A, (1, -1), (0, 1)))
    with pytest.raises(ValueError, match="repeat"):
        x.repeat(2)


def test_tensor_methods_match_torch():
    torch = pytest.importorskip("torch")
    t = torch.tensor(A, requires_grad=True)
    x = Value(A)
    for f in (lambda v: v.repeat(2, 3), lambda v: v.roll(2, 1), lambda v: v.flip(0),
              lambda v: v.unbind(1)[2], lambda v: v.log10(), lambda v: v.abs().log2()):
        a, b = f(x), f(t)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-15)
        w = np.arange(a.size, dtype=float).reshape(a.shape)
        x.grad = None
        t.grad = None
        (a * Value(w, requires_grad=False)).sum().backward()
        (b * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


# ---- devices and grad modes ---------------------------------------------------------------


def test_cpu_is_the_device():
    x = Value(A)
    assert x.device == "cpu" and x.cpu() is x and x.to("cpu") is x
    assert x.to("cpu", mg.float32).dtype == np.float32
    assert x.to(device="cpu", dtype="float32").dtype == np.float32
    assert not mg.cuda.is_available() and mg.cuda.device_count() == 0
    dev = "cuda" if mg.cuda.is_available() else "cpu"
    assert x.to(dev) is x
    with pytest.raises(ValueError, match="CPU only"):
        x.to("cuda")
    with pytest.raises(TypeError, match="to"):
        x.to(bogus=1)


def test_inference_mode_and_no_grad_decorate():
    x = Value([1.0])

    @mg.no_grad()
    def f():
        return x * 2

    @mg.inference_mode()
    def g():
        return x * 2

    assert not f().requires_grad and not g().requires_grad
    with mg.inference_mode(False):
        assert (x * 2).requires_grad


# ---- nn ---------------------------------------------------------------------------------------


def test_module_list_and_dict():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(3, 3) for _ in range(2)])
            self.heads = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)})

        def forward(self, x):
            for b in self.blocks:
                x = b(x).relu()
            return self.heads["a"](x), self.heads["b"](x)

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                     "heads.a.weight", "heads.a.bias", "heads.b.weight", "heads.b.bias"]
    a, b = net(Value(np.ones((4, 3))))
    assert a.shape == (4, 1) and b.shape == (4, 2)
    assert len(net.blocks) == 2 and len(net.blocks[:1]) == 1 and "a" in net.heads
    net.blocks.append(nn.Linear(3, 3))
    assert len(net.parameters()) == 10
    with pytest.raises(TypeError, match="ModuleList"):
        net.blocks.append(3)
    with pytest.raises(TypeError, match="ModuleDict"):
        net.heads["c"] = "x"
    sd = net.state_dict()
    net2 = Net()
    net2.blocks.append(nn.Linear(3, 3))
    net2.load_state_dict(sd)
    np.testing.assert_array_equal(net2.blocks[2].weight.numpy(), net.blocks[2].weight.numpy())


def test_module_list_state_dict_keys_match_torch():
    torch = pytest.importorskip("torch")
    ours = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 1)])
    theirs = torch.nn.ModuleList([torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    d = nn.ModuleDict({"x": nn.Linear(2, 2)})
    assert list(d.state_dict()) == list(torch.nn.ModuleDict({"x": torch.nn.Linear(2, 2)})
                                        .state_dict())


def test_silu_matches_torch():
    x = Value(A)
    y = nn.SiLU()(x)
    np.testing.assert_allclose(y.numpy(), A / (1 + np.exp(-A)), rtol=1e-15)
    torch = pytest.importorskip("torch")
    t = torch.tensor(A, requires_grad=True)
    torch.nn.functional.silu(t).sum().backward()
    y.sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


def test_register_buffer_apply_and_requires_grad():
    class Norm(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = Value(np.ones(2))
            self.register_buffer("running", Value([0.0, 0.0]))
            self.register_buffer("scratch", Value([9.0]), persistent=False)

        def forward(self, x):
            return x * self.w + self.running

    m = nn.Sequential(Norm(), nn.Linear(2, 1))
    assert [n for n, _ in m.named_parameters()] == ["0.w", "1.weight", "1.bias"]
    assert list(m.state_dict()) == ["0.w", "0.running", "1.weight", "1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["0.running", "0.scratch"]
    m.load_state_dict(m.state_dict())  # strict: the non-persistent buffer is not expected
    with pytest.raises(TypeError, match="register_buffer"):
        m[0].register_buffer("bad", [1.0])
    kinds = []
    m.apply(lambda mod: kinds.append(type(mod).__name__))
    assert kinds == ["Norm", "Linear", "Sequential"]
    m.requires_grad_(False)
    assert m.parameters() == [] and not m[0].running.requires_grad
    m.requires_grad_(True)
    assert len(m.parameters()) == 3 and not m[0].running.requires_grad


def test_register_buffer_matches_torch_state_dict():
    torch = pytest.importorskip("torch")

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("mean", Value(np.zeros(2)))
            self.register_buffer("tmp", Value(np.zeros(1)), persistent=False)

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)
            self.register_buffer("mean", torch.zeros(2))
            self.register_buffer("tmp", torch.zeros(1), persistent=False)

    assert sorted(Ours().state_dict()) == sorted(Theirs().state_dict())


def test_functional_extras_match_torch():
    from mikagrad.nn import functional as F

    x = Value(A)
    np.testing.assert_allclose(F.mish(x).numpy(), A * np.tanh(np.log1p(np.exp(A))), rtol=1e-14)
    assert F.dropout(x, 0.3, training=False) is x
    w = Value(np.arange(12.0).reshape(4, 3))
    e = F.embedding(mg.tensor([[3, 0], [1, 1]]), w)
    assert e.shape == (2, 2, 3) and e.tolist()[0][0] == [9.0, 10.0, 11.0]
    with pytest.raises(IndexError, match="embedding"):
        F.embedding(mg.tensor([-1]), w)
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in range(3))
    for kw in ({}, {"is_causal": True}, {"scale": 0.3},
               {"attn_mask": rng.random((4, 4)) > 0.3},
               {"attn_mask": rng.standard_normal((4, 4))}):
        tkw = {k2: (torch.tensor(v2) if isinstance(v2, np.ndarray) else v2)
               for k2, v2 in kw.items()}
        mkw = {k2: (mg.tensor(v2) if isinstance(v2, np.ndarray) else v2)
               for k2, v2 in kw.items()}
        if "attn_mask" in kw and kw["attn_mask"].dtype == bool:
            kw["attn_mask"][:, 0] = True  # every row keeps one position (else NaN in both)
            tkw["attn_mask"], mkw["attn_mask"] = torch.tensor(kw["attn_mask"]), mg.tensor(
                kw["attn_mask"])
        qs = [Value(a) for a in (q, k, v)]
        ts = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*qs, **mkw)
        want = TF.scaled_dot_product_attention(*ts, **tkw)
        np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
        out.sum().backward()
        want.sum().backward()
        for a, b in zip(qs, ts):
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---- micrograd's Value API --------------------------------------------------------------------


def test_micrograd_labels_and_op_symbols():
    from mikagrad.visualization import draw_dot

    a = Value(2.0, label="a")
    b = Value(-3.0, label="b")
    c = Value(10.0, label="c")
    e = a * b
    e.label = "e"
    d = e + c
    d.label = "d"
    f = Value(-2.0, label="f")
    L = d * f
    L.label = "L"
    assert L.data == -8.0 and (a.label, e.label, L.label) == ("a", "e", "L")
    assert (L._op, d._op, e._op, a._op) == ("*", "+", "*", "")
    assert (a**2)._op == "**" and a.relu()._op == "ReLU" and a.tanh()._op == "tanh"
    assert {p.label for p in L._prev} == {"d", "f"}
    src = draw_dot(L).source
    for name in "abcdefL":
        assert f"{{ {name} | data" in src
    e.label = ""
    assert e.label == "" and "{ e |" not in draw_dot(L).source
    L.backward()
    assert (a.grad, b.grad) == (6.0, -4.0)  # the lecture's numbers


def test_micrograd_manual_backprop_node_by_node():
    # The lecture's neuron, back-propagated one `_backward()` at a time, in reverse order.
    x1, x2 = Value(2.0, label="x1"), Value(0.0, label="x2")
    w1, w2 = Value(-3.0, label="w1"), Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")
    x1w1, x2w2 = x1 * w1, x2 * w2
    s = x1w1 + x2w2
    n = s + b
    o = n.tanh()
    o.grad = 1.0
    for v in (o, n, b, s, x2w2, x1w1, x1, w1):
        v._backward()
    got = [float(v.grad) for v in (x1, w1, x2, w2, b)]
    np.testing.assert_allclose(got, [-1.5, 1.0, 0.5, 0.0, 0.5], atol=1e-6)
    # the same as one backward() call
    for v in (x1, w1, x2, w2, b):
        v.grad = None
    o2 = ((x1 * w1 + x2 * w2) + b).tanh()
    o2.backward()
    np.testing.assert_allclose([float(v.grad) for v in (x1, w1, x2, w2, b)], got, rtol=1e-12)


def test_backward_step_broadcasts_and_skips_constants():
    a = Value(np.ones((2, 3)))
    c = Value(np.array([1.0, 2.0, 3.0]), requires_grad=False)
    y = a * c
    y.grad = np.full((2, 3), 2.0)
    y._backward()
    np.testing.assert_array_equal(a.grad, np.tile([2.0, 4.0, 6.0], (2, 1)))
    assert c.grad is None
    y._backward()  # adds again, as micrograd's +=
    np.testing.assert_array_equal(a.grad, np.tile([4.0, 8.0, 12.0], (2, 1)))
    Value([1.0])._backward()  # a leaf: nothing to do
    (a * 2)._backward()  # no grad set yet: nothing to do


# ---- cumsum, MultiheadAttention, padding_idx, method forms -----------------------------


def test_cumsum_values_dtypes_and_gradient():
    x = Value(A)
    y = x.cumsum(1)
    np.testing.assert_allclose(y.numpy(), np.cumsum(A, 1))
    (y * Value(np.arange(6.0).reshape(2, 3), requires_grad=False)).sum().backward()
    # d/dx_j of sum_i w_i·(x_1 + ... + x_i) is the sum of w from j to the end.
    np.testing.assert_allclose(x.grad, [[3.0, 3.0, 2.0], [12.0, 9.0, 5.0]])
    assert mg.cumsum(mg.tensor([True, True, False]), 0).tolist() == [1, 2, 2]
    assert mg.tensor([1, 2], dtype=mg.int32).cumsum(0).dtype == np.int64  # torch's rule
    assert mg.zeros(0, 3).cumsum(0).shape == (0, 3)
    assert mg.gradcheck(lambda v: v.cumsum(0), Value(np.random.default_rng(0).random((4, 2))))


def test_cumsum_matches_torch():
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(1).standard_normal((3, 4, 5))
    for d in (0, 1, -1):
        x, t = Value(a), torch.tensor(a, requires_grad=True)
        x.cumsum(d).exp().sum().backward()
        t.cumsum(d).exp().sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


MHA_X = np.linspace(-1, 1, 24).reshape(2, 3, 4)
MHA_OUT = [[[0.526834850122, 0.045353885139, 0.22647909972, -0.049742095534],
            [0.422052288529, 0.039691377174, 0.182083791321, -0.030925701022],
            [0.318576428193, 0.029225734251, 0.137366900145, -0.009192331599]],
           [[-0.09418008972, -0.012368105107, -0.040977596611, 0.077401489754],
            [-0.196529196487, -0.026405128544, -0.085869370122, 0.101281341816],
            [-0.296049644615, -0.050699078326, -0.131432039966, 0.131384760336]]]
MHA_W = [[[1.0, 0.0, 0.0], [0.493891421879, 0.506108578121, 0.0],
          [0.33041276248, 0.33317890255, 0.33640833497]],
         [[1.0, 0.0, 0.0], [0.505488325199, 0.494511674801, 0.0],
          [0.34831447608, 0.327818355434, 0.323867168486]]]
MHA_GRAD_ROW0 = [-0.698159531209, -0.640157456624, -0.206671472299, 0.102329177238]


def test_multihead_attention_gives_torchs_numbers():
    # torch.manual_seed(0); nn.MultiheadAttention(4, 2, batch_first=True): the same initial
    # weights (torch's order of draws), then a causal mask.
    mg.manual_seed(0)
    mha = nn.MultiheadAttention(4, 2, batch_first=True)
    assert sorted(mha.state_dict()) == ["in_proj_bias", "in_proj_weight", "out_proj.bias",
                                        "out_proj.weight"]
    x = Value(MHA_X)
    out, w = mha(x, x, x, attn_mask=np.triu(np.ones((3, 3), bool), 1))
    (out.sum() + (w**2).sum()).backward()
    np.testing.assert_allclose(out.detach().numpy(), MHA_OUT, atol=1e-7)
    np.testing.assert_allclose(w.detach().numpy(), MHA_W, atol=1e-7)
    np.testing.assert_allclose(x.grad[0, 0].numpy(), MHA_GRAD_ROW0, atol=1e-7)
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match="is_causal is a hint"):
        mha(x, x, x, is_causal=True)


def test_multihead_attention_matches_torch_in_every_layout():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for batch_first, shape in ((False, (5, 2, 6)), (True, (2, 5, 6)), (False, (5, 6))):
        tm = torch.nn.MultiheadAttention(6, 3, batch_first=batch_first).double()
        mm = nn.MultiheadAttention(6, 3, batch_first=batch_first)
        mm.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
        a = rng.standard_normal(shape)
        pad = np.zeros((1 if len(shape) == 2 else 2, 5), bool)
        pad[:, -1] = True
        if len(shape) == 2:
            pad = pad[0]
        x, t = Value(a), torch.tensor(a, requires_grad=True)
        for kw in ({}, {"key_padding_mask": pad}, {"average_attn_weights": False}):
            tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
            (ot, wt), (om, wm) = tm(t, t, t, **tkw), mm(x, x, x, **kw)
            np.testing.assert_allclose(om.detach().numpy(), ot.detach().numpy(), atol=1e-12)
            np.testing.assert_allclose(wm.detach().numpy(), wt.detach().numpy(), atol=1e-12)
        mm(x, x, x)[0].sum().backward()
        tm(t, t, t)[0].sum().backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy(), atol=1e-12)
        np.testing.assert_allclose(mm.in_proj_weight.grad, tm.in_proj_weight.grad.numpy(),
                                   atol=1e-12)


def test_embedding_padding_idx_takes_no_gradient():
    mg.manual_seed(0)
    emb = nn.Embedding(5, 3, padding_idx=1)
    assert emb.weight[1].tolist() == [0.0, 0.0, 0.0]  # zeroed at init, as torch's
    (emb([[1, 2, 1], [4, 0, 1]]) ** 2).sum().backward()
    assert emb.weight.grad[1].tolist() == [0.0, 0.0, 0.0]
    assert np.all(np.asarray(emb.weight.grad[2]) != 0)
    w = Value(np.ones((4, 2)))
    mg.functional.embedding(mg.tensor([3, 0, 3]), w, padding_idx=-1).sum().backward()
    assert w.grad.tolist() == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="padding_idx 7"):
        nn.Embedding(5, 3, padding_idx=7)


def test_operator_method_forms():
    x, y = Value(A), Value(A[::-1].copy())
    for name, want in [("add", A + A[::-1]), ("sub", A - A[::-1]), ("mul", A * A[::-1]),
                       ("maximum", np.maximum(A, A[::-1])), ("minimum", np.minimum(A, A[::-1]))]:
        np.testing.assert_allclose(getattr(x, name)(y).detach().numpy(), want)
    np.testing.assert_allclose(x.add(y, alpha=2).detach().numpy(), A + 2 * A[::-1])
    np.testing.assert_allclose(x.pow(2).detach().numpy(), A**2)
    assert x.div(-2, rounding_mode="trunc").tolist() == np.trunc(A / -2).tolist()
    assert x.div(2, rounding_mode="floor").tolist() == np.floor(A / 2).tolist()
    ints = mg.tensor([7, -7])
    assert ints.div(-2, rounding_mode="trunc").tolist() == [-3, 3]  # torch's: int64 stays int
    assert ints.div(-2, rounding_mode="trunc").dtype == np.int64
    assert (x.eq(x).all().item(), x.lt(y).tolist()) == (True, (A < A[::-1]).tolist())
    assert x.where(x > 0, 0.0).tolist() == np.where(A > 0, A, 0.0).tolist()
    assert x.t().shape == (3, 2) and x.mm(x.t()).shape == (2, 2)
    assert x.narrow(1, 1, 2).tolist() == A[:, 1:3].tolist()
    assert x.unflatten(1, (3, 1)).shape == (2, 3, 1)
    assert not x.t().is_contiguous() and x.t().contiguous().is_contiguous()
    assert Value([1.0, 2.0]).outer([1.0, 0.0, 2.0]).tolist() == [[1, 0, 2], [2, 0, 4]]
    assert Value([4.0]).rsqrt().tolist() == [0.5]
    with pytest.raises(mg.ShapeError, match="bmm"):
        x.bmm(x)


def test_device_arguments_and_module_to():
    for make in (lambda: mg.zeros(2, device="cpu"), lambda: mg.ones(2, device="cpu"),
                 lambda: mg.randn(2, device="cpu"), lambda: mg.arange(3, device="cpu"),
                 lambda: mg.tensor([1.0], device="cpu"), lambda: mg.empty(2, device="cpu"),
                 lambda: mg.randint(0, 5, (2,), device="cpu"),
                 lambda: mg.zeros_like(mg.ones(2), device="cpu")):
        assert make().device == "cpu"
    with pytest.raises(ValueError, match="CPU only"):
        mg.zeros(2, device="cuda")
    assert mg.empty(2, 3).shape == (2, 3)
    assert mg.empty_like(mg.ones(2, dtype="int32")).dtype == np.int32
    m = nn.Linear(2, 3)
    w = m.weight
    assert m.to("cpu") is m and m.cpu() is m
    m.float()
    assert m.weight is w and w.dtype == np.float32 and m.bias.dtype == np.float32
    m(mg.ones(1, 2, dtype="float32")).sum().backward()
    assert w.grad.dtype == np.float32
    m.double()
    assert w.dtype == np.float64 and w.grad is None  # a new dtype drops the gradient
