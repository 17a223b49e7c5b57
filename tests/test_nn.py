"""mikagrad.nn: gradients through every module, parameter discovery, state dicts, modes,
initialisation, repr, and small training runs (the original MikaGrad's README loop among them).
"""

import math

import numpy as np
import pytest
from helpers import avoid, randn, uniform

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import nn
from mikagrad.engine import Value
from mikagrad.nn import init

# ---- a gradient check for parameters ----------------------------------------------------------


def check_param_grads(run, params, eps=1e-6, atol=1e-6, rtol=1e-4, seed=7):
    """Each parameter's .grad from ``run()`` against central differences of ``p.data``.

    The output is reduced with random weights, so the whole Jacobian counts.
    """
    for p in params:
        p.grad = None
    out = run()
    w = np.random.default_rng(seed).standard_normal(out.shape)
    (out * Value(w, requires_grad=False)).sum().backward()

    def f():
        with mg.no_grad():
            return float(np.sum(run().numpy() * w))

    for k, p in enumerate(params):
        assert p.grad is not None, f"parameter {k} got no gradient"
        data = np.asarray(p.data)
        num = np.zeros(p.shape)
        for idx in np.ndindex(*p.shape):
            orig = data[idx]
            data[idx] = orig + eps
            hi = f()
            data[idx] = orig - eps
            lo = f()
            data[idx] = orig
            num[idx] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(p.grad, num, atol=atol, rtol=rtol,
                                   err_msg=f"parameter {k} of shape {p.shape}")


def check_module(module, *inputs, wrt_inputs=True, before=None):
    """gradcheck through ``module`` for its inputs and for each of its parameters (float64)."""
    def call(*xs):
        if before is not None:
            before()
        return module(*xs)

    if wrt_inputs:
        assert mg.gradcheck(call, *inputs)
    values = [Value(np.asarray(x, dtype=np.float64), requires_grad=False) for x in inputs]
    params = module.parameters()
    if params:
        check_param_grads(lambda: call(*values), params)


X = randn((4, 3), seed=1)


# ---- gradients through every module ---------------------------------------------------------


@pytest.mark.parametrize("nonlin", [True, False])
def test_grad_layer(nonlin):
    mg.manual_seed(0)
    layer = nn.Layer(3, 5, nonlin=nonlin)
    layer.b.data[...] = randn(5, seed=3)
    pre = X @ layer.w.numpy() + layer.b.numpy()
    # keep the pre-activations away from ReLU's kink
    x = X if np.min(np.abs(pre)) > 1e-3 else X + 0.05
    check_module(layer, x)


def test_grad_mlp():
    mg.manual_seed(1)
    model = nn.MLP(3, [6, 5, 2])
    for layer in model.layers:
        layer.b.data[...] = np.linspace(0.1, 0.5, layer.b.size)  # ReLUs mostly active
    check_module(model, X)


@pytest.mark.parametrize("bias", [True, False])
def test_grad_linear(bias):
    mg.manual_seed(2)
    check_module(nn.Linear(3, 4, bias=bias), X)


def test_grad_linear_batched_3d():
    mg.manual_seed(3)
    check_module(nn.Linear(3, 2), randn((2, 4, 3), seed=4))


def test_grad_sequential():
    mg.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.GELU(),
                          nn.LayerNorm(4), nn.Linear(4, 3), nn.LogSoftmax(dim=1))
    check_module(model, X)


ACTIVATIONS = {
    "ReLU": (nn.ReLU, "away0"),
    "Tanh": (nn.Tanh, "any"),
    "Sigmoid": (nn.Sigmoid, "any"),
    "GELU": (nn.GELU, "any"),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), "away0"),
    "Softmax": (lambda: nn.Softmax(dim=1), "any"),
    "Softmax0": (lambda: nn.Softmax(dim=0), "any"),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=1), "any"),
    "Flatten": (nn.Flatten, "any"),
    "Flatten02": (lambda: nn.Flatten(0, 2), "any"),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_grad_parameter_free_modules(name):
    make, domain = ACTIVATIONS[name]
    x = randn((2, 3, 4), seed=5)
    if domain == "away0":
        x = avoid(x, margin=0.1)
    check_module(make(), x)


def test_grad_dropout_train_and_eval():
    drop = nn.Dropout(0.4)
    x = randn((5, 6), seed=6)
    check_module(drop, x, before=lambda: mg.manual_seed(11))  # the same mask on every call
    drop.eval()
    check_module(drop, x)


@pytest.mark.parametrize("shape,normalized", [((4, 5), 5), ((2, 3, 4), (3, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_grad_layernorm(shape, normalized, affine):
    ln = nn.LayerNorm(normalized, elementwise_affine=affine)
    if affine:
        ln.weight.data[...] = uniform(ln.weight.shape, 0.5, 1.5, seed=8)
        ln.bias.data[...] = randn(ln.bias.shape, seed=9)
    check_module(ln, randn(shape, seed=10))


def test_grad_embedding_with_repeated_indices():
    mg.manual_seed(5)
    emb = nn.Embedding(6, 3)
    idx = np.array([[0, 2, 2], [5, 0, 2]])
    check_param_grads(lambda: emb(idx), emb.parameters())
    counts = np.bincount(idx.ravel(), minlength=6)
    emb.weight.grad = None
    emb(idx).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad, np.repeat(counts[:, None], 3, axis=1))


CLASS_T = np.array([0, 2, 1, 2])
LOSSES = {
    "MSELoss": (nn.MSELoss, randn((4, 3), seed=11), randn((4, 3), seed=12)),
    "L1Loss": (nn.L1Loss, avoid(randn((4, 3), seed=13), margin=0.1), np.zeros((4, 3))),
    "CrossEntropyLoss": (nn.CrossEntropyLoss, randn((4, 3), seed=14), CLASS_T),
    "CrossEntropyLoss-probs": (nn.CrossEntropyLoss, randn((4, 3), seed=15),
                               np.full((4, 3), 1 / 3)),
    "NLLLoss": (nn.NLLLoss, randn((4, 3), seed=16), CLASS_T),
    "BCELoss": (nn.BCELoss, uniform((4, 3), 0.1, 0.9, seed=17),
                (uniform((4, 3), 0, 1, seed=18) > 0.5).astype(float)),
    "BCEWithLogitsLoss": (nn.BCEWithLogitsLoss, randn((4, 3), seed=19),
                          uniform((4, 3), 0, 1, seed=20)),
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_grad_losses(name, reduction):
    cls, x, target = LOSSES[name]
    loss = cls(reduction=reduction)
    assert mg.gradcheck(lambda v: loss(v, target), x)


# ---- forward values -------------------------------------------------------------------------


def test_linear_forward_is_x_weight_t_plus_bias():
    mg.manual_seed(0)
    lin = nn.Linear(3, 4)
    assert lin.weight.shape == (4, 3) and lin.bias.shape == (4,)
    expected = X @ lin.weight.numpy().T + lin.bias.numpy()
    np.testing.assert_allclose(lin(Value(X)).numpy(), expected, rtol=1e-12)
    assert nn.Linear(3, 4, bias=False).bias is None


def test_layer_and_mlp_keep_the_original_meaning():
    mg.manual_seed(0)
    layer = nn.Layer(3, 4)
    assert layer.w.shape == (3, 4) and layer.b.shape == (4,)
    np.testing.assert_allclose(layer(Value(X)).numpy(),
                               np.maximum(X @ layer.w.numpy() + layer.b.numpy(), 0))
    linear = nn.Layer(3, 4, nonlin=False)
    np.testing.assert_allclose(linear(Value(X)).numpy(), X @ linear.w.numpy())
    model = nn.MLP(3, [8, 8, 2])
    assert [(la.w.shape, la.nonlin) for la in model.layers] == [
        ((3, 8), True), ((8, 8), True), ((8, 2), False)]


def test_layernorm_forward_matches_numpy():
    x = randn((3, 5), seed=21)
    ln = nn.LayerNorm(5, eps=1e-5)
    ln.weight.data[...] = np.arange(5) + 1.0
    ln.bias.data[...] = 0.5
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    expected = (x - mu) / np.sqrt(var + 1e-5) * (np.arange(5) + 1.0) + 0.5
    np.testing.assert_allclose(ln(Value(x)).numpy(), expected, rtol=1e-10, atol=1e-12)


def test_layernorm_rejects_a_wrong_trailing_shape():
    with pytest.raises(mg.ShapeError, match=r"\(2, 3, 4\).*\(3, 5\)"):
        nn.LayerNorm((3, 5))(Value(np.zeros((2, 3, 4))))


def test_embedding_accepts_lists_arrays_and_values():
    mg.manual_seed(0)
    emb = nn.Embedding(10, 4)
    w = emb.weight.numpy()
    idx = [[1, 2, 9], [0, 0, 3]]
    expected = w[np.array(idx)]
    for form in (idx, np.array(idx, dtype=np.int32), np.array(idx, dtype=np.uint8),
                 Value(np.array(idx, dtype=np.float64), requires_grad=False)):
        out = emb(form)
        assert out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(emb(7).numpy(), w[7])


def test_embedding_rejects_bad_indices():
    emb = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match="5"):
        emb([0, 5])
    with pytest.raises(IndexError, match="-1"):
        emb(np.array([-1]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([0.5]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_modules_match_functional(name, reduction):
    cls, x, target = LOSSES[name]
    fn = {
        "MSELoss": F.mse_loss, "L1Loss": F.l1_loss, "CrossEntropyLoss": F.cross_entropy,
        "CrossEntropyLoss-probs": F.cross_entropy, "NLLLoss": F.nll_loss,
        "BCELoss": F.binary_cross_entropy,
        "BCEWithLogitsLoss": F.binary_cross_entropy_with_logits,
    }[name]
    got = cls(reduction=reduction)(Value(x), target).numpy()
    np.testing.assert_array_equal(got, fn(Value(x), target, reduction=reduction).numpy())


def test_loss_rejects_an_unknown_reduction():
    with pytest.raises(ValueError, match="'avg'"):
        nn.MSELoss(reduction="avg")


def test_forward_matches_pytorch_with_the_same_state_dict():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    mg.manual_seed(0)
    ours = nn.Sequential(nn.Linear(3, 8), nn.GELU(), nn.LayerNorm(8), nn.LeakyReLU(0.1),
                         nn.Linear(8, 4), nn.Softmax(dim=1))
    theirs = tnn.Sequential(tnn.Linear(3, 8), tnn.GELU(), tnn.LayerNorm(8), tnn.LeakyReLU(0.1),
                            tnn.Linear(8, 4), tnn.Softmax(dim=1)).double()
    sd = ours.state_dict()
    assert list(sd) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    expected = theirs(torch.from_numpy(X)).detach().numpy()
    np.testing.assert_allclose(ours(Value(X)).numpy(), expected, rtol=1e-10, atol=1e-12)


# ---- initialisation and dtype -----------------------------------------------------------


def test_linear_default_init_bounds():
    mg.manual_seed(0)
    lin = nn.Linear(16, 400)
    bound = 1 / math.sqrt(16)
    for p in (lin.weight, lin.bias):
        assert np.all(np.abs(p.numpy()) <= bound)
        assert np.max(np.abs(p.numpy())) > 0.9 * bound  # spread over the whole interval


def test_layer_init():
    mg.manual_seed(0)
    layer = nn.Layer(25, 300)
    assert np.all(np.abs(layer.w.numpy()) <= 0.2) and np.max(np.abs(layer.w.numpy())) > 0.18
    np.testing.assert_array_equal(layer.b.numpy(), 0.0)


def test_init_is_seeded():
    mg.manual_seed(3)
    a = nn.MLP(4, [5, 2]).state_dict()
    mg.manual_seed(3)
    b = nn.MLP(4, [5, 2]).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_init_helpers_work_in_place_and_return_the_tensor():
    w = mg.zeros(200, 300, requires_grad=True)
    view = w.data
    mg.manual_seed(0)
    assert init.uniform_(w, -2.0, 3.0) is w
    assert w.numpy().min() >= -2.0 and w.numpy().max() < 3.0
    assert abs(view.mean() - 0.5) < 0.05  # written into the same memory
    init.normal_(w, 1.0, 0.5)
    assert abs(w.numpy().mean() - 1.0) < 0.01 and abs(w.numpy().std() - 0.5) < 0.01
    assert init.zeros_(w) is w and not w.numpy().any()
    assert init.ones_(w) is w and np.all(w.numpy() == 1.0)
    assert w.is_leaf and w.requires_grad


@pytest.mark.parametrize("mode,fan", [("fan_in", 300), ("fan_out", 200)])
def test_kaiming_uniform_bound(mode, fan):
    w = mg.zeros(200, 300)
    mg.manual_seed(0)
    nn.init.kaiming_uniform_(w, mode=mode, nonlinearity="relu")
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan)
    assert np.max(np.abs(w.numpy())) <= bound
    assert np.max(np.abs(w.numpy())) > 0.99 * bound
    # a = sqrt(5) with leaky_relu gives PyTorch's Linear default, 1 / sqrt(fan_in)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    assert np.max(np.abs(w.numpy())) <= 1 / math.sqrt(300)


def test_xavier_uniform_bound():
    w = mg.zeros(30, 50, 2)  # fans count the receptive field: 100 and 60
    mg.manual_seed(0)
    nn.init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / 160)
    assert bound * 0.99 < np.max(np.abs(w.numpy())) <= bound


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="2 or more dims"):
        init.xavier_uniform_(mg.zeros(5))


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(3, 2), lambda: nn.Layer(3, 2), lambda: nn.LayerNorm(3),
    lambda: nn.Embedding(4, 3), lambda: nn.MLP(3, [4, 2]),
])
def test_parameters_follow_the_default_dtype(make):
    for dtype in (mg.float32, mg.float64):
        mg.set_default_dtype(dtype)
        model = make()
        assert {p.dtype for p in model.parameters()} == {dtype}
        x = [[0, 1]] if isinstance(model, nn.Embedding) else mg.ones(2, 3, dtype=dtype)
        assert model(x).dtype == dtype


# ---- parameter discovery ----------------------------------------------------------------


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = mg.ones(2, requires_grad=True)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 2)
        self.blocks = [Block(), Block()]
        self.heads = {"a": nn.Linear(2, 1), "b": (nn.Tanh(), nn.Linear(2, 1, bias=False))}
        self.tied = self.inp  # a shared sub-module
        self.gain = self.blocks[0].scale  # a shared parameter
        self.frozen = mg.ones(2)  # requires_grad=False: state, not a parameter
        self.derived = self.inp.weight * 2  # not a leaf: neither
        self.label = "net"

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = b(h)
        return self.heads["a"](h) + self.heads["b"][1](self.heads["b"][0](h)) * self.gain.sum()


NET_PARAMS = [
    "inp.weight", "inp.bias",
    "blocks.0.scale", "blocks.0.fc.weight", "blocks.0.fc.bias",
    "blocks.1.scale", "blocks.1.fc.weight", "blocks.1.fc.bias",
    "heads.a.weight", "heads.a.bias", "heads.b.1.weight",
]


def test_named_parameters_nested_lists_dicts_tuples_in_stable_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == NET_PARAMS
    assert [n for n, _ in net.named_parameters()] == NET_PARAMS  # the same every time
    assert net.num_parameters() == 8 + 2 * (2 + 6) + 3 + 2


def test_shared_parameters_and_modules_are_listed_once():
    net = Net()
    ids = [id(p) for p in net.parameters()]
    assert len(ids) == len(set(ids)) == len(NET_PARAMS)
    assert sum(p is net.blocks[0].scale for p in net.parameters()) == 1
    assert sum(m is net.inp for m in net.modules()) == 1


def test_every_parameter_gets_a_gradient():
    net = Net()
    net(mg.randn(5, 3)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name


def test_children_and_modules():
    net = Net()
    assert [n for n, _ in net.named_children()] == [
        "inp", "blocks.0", "blocks.1", "heads.a", "heads.b.0", "heads.b.1"]
    assert next(net.children()) is net.inp
    assert [n for n, _ in net.named_modules()] == [
        "", "inp", "blocks.0", "blocks.0.fc", "blocks.1", "blocks.1.fc",
        "heads.a", "heads.b.0", "heads.b.1"]
    assert next(net.modules()) is net


def test_module_without_super_init_and_without_forward():
    class Bare(nn.Module):
        def __init__(self):
            self.w = mg.zeros(3, requires_grad=True)

    m = Bare()
    assert m.training and m.parameters()[0] is m.w
    assert m.eval().training is False
    with pytest.raises(NotImplementedError, match="Bare"):
        m(1)


def test_zero_grad_in_place_and_set_to_none():
    model = nn.MLP(2, [3, 1])
    assert all(p.grad is None for p in model.parameters())
    model.zero_grad()  # before any backward: grads stay None
    model(mg.randn(4, 2)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    model.zero_grad()
    for p, g in zip(model.parameters(), grads):
        assert not p.grad.any() and np.shares_memory(p.grad, g)
    model.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in model.parameters())


# ---- train() / eval() and Dropout ---------------------------------------------------------


def test_train_eval_propagate_to_every_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.blocks[1].train(False)
    assert net.training and not net.blocks[1].training and not net.blocks[1].fc.training


def test_dropout_zeros_and_scales_in_training_only():
    model = nn.Sequential(nn.Dropout(0.25))
    x = mg.ones(200, 100)
    out = model(x).numpy()
    kept = out != 0
    np.testing.assert_allclose(out[kept], 1 / 0.75)
    assert abs(1 - kept.mean() - 0.25) < 0.01
    model.eval()
    assert model(x) is x
    model.train()
    assert (model(x).numpy() == 0).any()


def test_dropout_is_seeded_by_manual_seed():
    drop = nn.Dropout(0.5)
    x = mg.randn(10, 10)
    mg.manual_seed(42)
    a = drop(x).numpy().copy()
    b = drop(x).numpy().copy()
    mg.manual_seed(42)
    np.testing.assert_array_equal(drop(x).numpy(), a)
    assert not np.array_equal(a, b)


def test_dropout_edge_probabilities():
    x = mg.randn(3, 4)
    assert nn.Dropout(0.0)(x) is x
    assert not nn.Dropout(1.0)(x).numpy().any()
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            nn.Dropout(p)


def test_dropout_gradient_follows_the_mask():
    x = mg.randn(6, 6, requires_grad=True)
    out = nn.Dropout(0.5)(x)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, (out.numpy() != 0) * 2.0)


# ---- state_dict --------------------------------------------------------------------------


def test_state_dict_keys_and_copies():
    mg.manual_seed(0)
    model = nn.MLP(2, [3, 1])
    sd = model.state_dict()
    assert list(sd) == ["layers.0.w", "layers.0.b", "layers.1.w", "layers.1.b"]
    assert all(isinstance(a, np.ndarray) for a in sd.values())
    sd["layers.0.w"][...] = 99.0  # a copy: the model is untouched
    assert not np.any(model.layers[0].w.numpy() == 99.0)
    assert "frozen" in Net().state_dict() and "derived" not in Net().state_dict()


def test_state_dict_round_trip_is_exact():
    mg.manual_seed(0)
    a = Net()
    mg.manual_seed(1)
    b = Net()
    x = mg.randn(4, 3)
    assert not np.array_equal(a(x).numpy(), b(x).numpy())
    sd = a.state_dict()
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    sd["inp.weight"][...] = 0.0  # the model copied the arrays in
    assert b.inp.weight.numpy().any()


def test_load_state_dict_writes_in_place_and_casts():
    model = nn.Linear(2, 2)
    w = model.weight
    model.load_state_dict({"weight": np.ones((2, 2), dtype=np.float32), "bias": [1, 2]})
    assert model.weight is w and w.dtype == np.float64
    np.testing.assert_array_equal(w.numpy(), 1.0)
    np.testing.assert_array_equal(model.bias.numpy(), [1.0, 2.0])


def test_load_state_dict_missing_key():
    model = nn.MLP(2, [3, 1])
    sd = model.state_dict()
    del sd["layers.1.b"]
    with pytest.raises(nn.StateDictKeyError, match=r"missing keys 'layers\.1\.b'"):
        model.load_state_dict(sd)
    with pytest.raises(KeyError):
        model.load_state_dict(sd)


def test_load_state_dict_unexpected_key():
    model = nn.MLP(2, [3, 1])
    sd = model.state_dict()
    sd["layers.2.w"] = np.zeros((1, 1))
    with pytest.raises(KeyError, match=r"unexpected keys 'layers\.2\.w'"):
        model.load_state_dict(sd)


def test_load_state_dict_shape_mismatch_names_key_and_both_shapes():
    model = nn.MLP(2, [3, 1])
    sd = model.state_dict()
    sd["layers.0.w"] = np.zeros((3, 2))
    for strict in (True, False):
        with pytest.raises(mg.ShapeError, match=r"'layers\.0\.w'.*\(3, 2\).*\(2, 3\)"):
            model.load_state_dict(sd, strict=strict)


def test_load_state_dict_rejects_non_numbers():
    model = nn.Linear(2, 1)
    with pytest.raises(TypeError, match="'bias'"):
        model.load_state_dict({"weight": np.zeros((1, 2)), "bias": np.array(["a"])})


def test_load_state_dict_is_all_or_nothing():
    model = nn.MLP(2, [3, 1])
    before = model.state_dict()
    bad = {k: np.zeros_like(v) for k, v in before.items()}
    bad["layers.1.b"] = np.zeros(2)
    with pytest.raises(mg.ShapeError):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_not_strict_reports_and_loads_the_rest():
    model = nn.MLP(2, [3, 1])
    sd = {"layers.0.b": np.full(3, 7.0), "extra": np.zeros(1)}
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["layers.0.w", "layers.1.w", "layers.1.b"]
    assert result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model.layers[0].b.numpy(), 7.0)


# ---- repr and Sequential -----------------------------------------------------------------


def test_repr_nested_like_pytorch():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(4, 8),
        nn.Sequential(nn.LeakyReLU(0.1), nn.Dropout(0.2)),
        nn.LayerNorm(8),
        nn.Linear(8, 3, bias=False),
    )
    assert repr(model) == """Sequential(
  (0): Flatten(start_dim=1, end_dim=-1)
  (1): Linear(in_features=4, out_features=8, bias=True)
  (2): Sequential(
    (0): LeakyReLU(negative_slope=0.1)
    (1): Dropout(p=0.2)
  )
  (3): LayerNorm((8,), eps=1e-05, elementwise_affine=True)
  (4): Linear(in_features=8, out_features=3, bias=False)
)"""
    assert repr(nn.MLP(2, [4, 1])) == """MLP(
  (layers.0): Layer(num_in=2, num_out=4, nonlin=True)
  (layers.1): Layer(num_in=4, num_out=1, nonlin=False)
)"""
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert repr(nn.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"
    assert repr(nn.Embedding(10, 3)) == "Embedding(10, 3)"


def test_sequential_indexing_len_iteration():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    x = mg.randn(4, 2)
    np.testing.assert_array_equal(seq(x).numpy(), c(b(a(x))).numpy())
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(a, "relu")


def test_sequential_from_a_dict_uses_its_names():
    seq = nn.Sequential({"fc": nn.Linear(2, 2), "act": nn.Tanh()})
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert "(act): Tanh()" in repr(seq)


# ---- utils.clip_grad_norm_ ---------------------------------------------------------------


def test_clip_grad_norm_scales_in_place():
    a = mg.zeros(2, requires_grad=True)
    b = mg.zeros(2, 2, requires_grad=True)
    unused = mg.zeros(3, requires_grad=True)
    a.grad = np.array([3.0, 0.0])
    b.grad = np.array([[0.0, 4.0], [0.0, 0.0]])
    ga = a.grad
    total = nn.utils.clip_grad_norm_([a, b, unused], max_norm=1.0)
    assert total == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-5)
    np.testing.assert_allclose(b.grad, [[0.0, 0.8], [0.0, 0.0]], rtol=1e-5)
    assert np.shares_memory(a.grad, ga) and unused.grad is None
    assert nn.utils.clip_grad_norm_([a, b], max_norm=10.0) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(a.grad, [0.6, 0.0], rtol=1e-5)  # below the limit: unchanged


def test_clip_grad_norm_inf_and_a_module():
    model = nn.Linear(3, 2)
    model(mg.randn(5, 3)).sum().backward()
    biggest = max(np.abs(p.grad).max() for p in model.parameters())
    assert nn.utils.clip_grad_norm_(model.parameters(), 0.5, norm_type=math.inf) == biggest
    assert max(np.abs(p.grad).max() for p in model.parameters()) <= 0.5


# ---- training ------------------------------------------------------------------------------


def moons(n, noise, seed):
    """micrograd's two interleaving half circles, labels in {-1, +1}."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    top = rng.random(n) < 0.5
    x = np.where(top, np.cos(t), 1 - np.cos(t))
    y = np.where(top, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], 1) + rng.normal(0, noise, (n, 2))
    return pts, np.where(top, 1.0, -1.0)


def test_readme_loop_lowers_the_loss_on_mlp():
    mg.manual_seed(0)
    X, y = moons(100, 0.1, seed=0)
    model = nn.MLP(2, [16, 16, 1])
    xs, ys = Value(X, requires_grad=False), Value(y.reshape(-1, 1), requires_grad=False)
    lr = 0.5
    losses = []
    for _ in range(20):
        loss = (1 - ys * model(xs)).relu().mean()
        losses.append(loss.item())
        # the original MikaGrad's README, verbatim
        # backward pass
        model.zero_grad()
        loss.backward()

        # parameter update
        for param in model.parameters():
            param.data -= lr * param.grad
    assert losses[-1] < 0.5 * losses[0]


def test_mlp_learns_moons_to_100_percent():
    """micrograd's demo: MLP(2, [16, 16, 1]), hinge loss with L2, decaying lr, 100% accuracy."""
    mg.manual_seed(0)
    X, y = moons(100, 0.1, seed=1)
    model = nn.MLP(2, [16, 16, 1])
    xs, ys = Value(X, requires_grad=False), Value(y.reshape(-1, 1), requires_grad=False)
    steps = 400
    for k in range(steps):
        hinge = (1 - ys * model(xs)).relu().mean()
        loss = hinge + 1e-4 * sum((p * p).sum() for p in model.parameters())
        model.zero_grad()
        loss.backward()
        lr = 1.0 - 0.9 * k / steps
        for p in model.parameters():
            p.data -= lr * p.grad
    accuracy = np.mean((model(xs).numpy().ravel() > 0) == (y > 0))
    assert accuracy == 1.0


def test_sequential_classifier_reaches_95_percent_on_blobs():
    """Three overlapping Gaussian blobs, Linear/ReLU/Dropout/CrossEntropyLoss: >= 95% held out.

    The nearest-centre rule (optimal here) scores 97.3% on this test split.
    """
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
    labels = rng.integers(0, 3, 600)
    points = centres[labels] + rng.normal(0, 0.9, (600, 2))
    train, test = slice(0, 450), slice(450, None)
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
    loss_fn = nn.CrossEntropyLoss()
    xs = Value(points[train], requires_grad=False)
    for _ in range(100):
        loss = loss_fn(model(xs), labels[train])
        model.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        for p in model.parameters():
            p.data -= 0.5 * p.grad
    model.eval()
    pred = model(Value(points[test])).numpy().argmax(1)
    assert np.mean(pred == labels[test]) >= 0.95


def test_a_module_shared_at_two_depths_gets_one_name_everywhere():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            inner = nn.Linear(2, 2)
            self.first = nn.Sequential(nn.Tanh(), inner)
            self.again = inner

    m = Outer()
    assert [n for n, _ in m.named_modules()] == ["", "first", "first.0", "first.1"]
    assert list(m.state_dict()) == ["first.1.weight", "first.1.bias"]
