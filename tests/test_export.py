"""Taking a model further: to_torch/from_torch (bit-exact round trips, outputs, optimizer
state) and ONNX export run in onnxruntime. Each part skips without its optional package."""

import io

import numpy as np
import pytest

import mikagrad as mg
from mikagrad import nn

BATCHES = [1, 7]


class Block(nn.Module):
    """Embedding, LayerNorm and self-attention with a residual, then a vocabulary head."""

    def __init__(self, vocab=11, embed=8, heads=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, embed)
        self.ln = nn.LayerNorm(embed)
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.head = nn.Linear(embed, vocab)

    def forward(self, idx):
        x = self.emb(idx)
        h = self.ln(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        return self.head(x + a).log_softmax(-1)


def torch_block(torch, vocab=11, embed=8, heads=2):
    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, embed)
            self.ln = torch.nn.LayerNorm(embed)
            self.attn = torch.nn.MultiheadAttention(embed, heads, batch_first=True)
            self.head = torch.nn.Linear(embed, vocab)

        def forward(self, idx):
            x = self.emb(idx)
            h = self.ln(x)
            a, _ = self.attn(h, h, h, need_weights=False)
            return self.head(x + a).log_softmax(-1)

    return TorchBlock()


ACTIVATIONS = [nn.ReLU(), nn.Tanh(), nn.Sigmoid(), nn.GELU(), nn.SiLU(), nn.LeakyReLU(0.2),
               nn.Softmax(-1), nn.LogSoftmax(-1)]


def models():
    """(name, builder, input maker) for each model of the issue."""
    rng = np.random.default_rng(0)

    def floats(*shape):
        return lambda b: mg.tensor(rng.standard_normal((b, *shape)).astype(np.float32))

    def mlp():
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 4))

    def micrograd_mlp():
        return nn.MLP(6, [16, 16, 4])

    def cnn():
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, stride=1, padding=1, groups=2), nn.AvgPool2d(2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))

    def activations():
        return nn.Sequential(*[m for a in ACTIVATIONS for m in (nn.Linear(5, 5), a)])

    def block():
        return Block()

    def tokens(b):
        return mg.tensor(rng.integers(0, 11, size=(b, 5)))

    return [("mlp", mlp, floats(6)), ("micrograd_mlp", micrograd_mlp, floats(6)),
            ("cnn", cnn, floats(1, 8, 8)), ("activations", activations, floats(5)),
            ("block", block, tokens)]


MODELS = models()
IDS = [m[0] for m in MODELS]


def build(builder):
    """The model in float32 (torch's default), seeded, in eval mode."""
    mg.manual_seed(0)
    old = mg.get_default_dtype()
    mg.set_default_dtype(mg.float32)
    try:
        model = builder()
    finally:
        mg.set_default_dtype(old)
    return model.eval()


def warm(model, make_input):
    """Moves BatchNorm's running statistics off their defaults, so the test sees them."""
    model.train()
    model(make_input(7))
    return model.eval()


# ---- PyTorch -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def to_torch_model(model, torch):
    from mikagrad.interop import to_torch

    return to_torch(model, into=torch_block(torch)) if isinstance(model, Block) else \
        to_torch(model)


def from_torch_model(tmodel, like):
    from mikagrad.interop import from_torch

    if isinstance(like, (Block, nn.MLP)):
        return from_torch(tmodel, into=build(type(like) if isinstance(like, Block)
                                             else lambda: nn.MLP(6, [16, 16, 4])))
    return from_torch(tmodel)


def torch_input(torch, x):
    return torch.from_numpy(x.numpy().copy())


@pytest.mark.parametrize("name, builder, make_input", MODELS, ids=IDS)
def test_round_trip_through_torch_is_bit_exact(name, builder, make_input, torch):
    model = warm(build(builder), make_input)
    tmodel = to_torch_model(model, torch)
    back = from_torch_model(tmodel, model)
    a, b = model.state_dict(), back.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    for batch in BATCHES:
        x = make_input(batch)
        assert model(x).numpy().tobytes() == back(x).numpy().tobytes()


@pytest.mark.parametrize("name, builder, make_input", MODELS, ids=IDS)
def test_torch_outputs_agree(name, builder, make_input, torch):
    model = warm(build(builder), make_input)
    tmodel = to_torch_model(model, torch)
    assert not tmodel.training
    tkeys = set(tmodel.state_dict())
    if name != "micrograd_mlp":
        assert set(model.state_dict()) == tkeys  # torch's keys
    for batch in BATCHES:
        x = make_input(batch)
        with torch.no_grad():
            want = tmodel(torch_input(torch, x)).numpy()
        got = model(x).numpy()
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_state_dict_keys_and_dtypes_are_torchs(torch):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    from mikagrad.interop import to_torch

    tmodel = to_torch(model)
    assert isinstance(tmodel, torch.nn.Sequential)
    assert isinstance(tmodel[0], torch.nn.Linear) and isinstance(tmodel[1], torch.nn.BatchNorm1d)
    sd = tmodel.state_dict()
    assert list(sd) == list(model.state_dict())
    assert sd["0.weight"].dtype == torch.float64  # MikaGrad's default dtype is kept
    assert sd["1.num_batches_tracked"].dtype == torch.int64
    assert isinstance(tmodel[0].weight, torch.nn.Parameter) and tmodel[0].weight.requires_grad


def test_micrograd_layers_become_linear_and_relu(torch):
    from mikagrad.interop import to_torch

    tmodel = to_torch(nn.MLP(2, [4, 1]))
    assert [type(m).__name__ for m in tmodel] == ["Linear", "ReLU", "Linear"]
    assert list(tmodel.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_torch_modules_come_back_as_ours(torch):
    from mikagrad.interop import from_torch

    tmodel = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 3, padding=1), torch.nn.GroupNorm(1, 3),
                                 torch.nn.SiLU(), torch.nn.Flatten(), torch.nn.Linear(15, 2))
    model = from_torch(tmodel)
    assert [type(m).__name__ for m in model] == ["Conv1d", "GroupNorm", "SiLU", "Flatten",
                                                 "Linear"]
    x = np.random.default_rng(1).standard_normal((4, 2, 5)).astype(np.float32)
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(mg.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)


def test_unsupported_modules_are_named(torch):
    from mikagrad.interop import from_torch, to_torch

    with pytest.raises(TypeError, match=r"torch\.nn\.modules\.rnn\.LSTM has no counterpart"):
        from_torch(torch.nn.Sequential(torch.nn.LSTM(2, 2)))
    with pytest.raises(TypeError, match=r"test_export\.Block has no counterpart.*into="):
        to_torch(Block())
    with pytest.raises(ValueError, match="approximate='tanh'"):
        from_torch(torch.nn.GELU(approximate="tanh"))
    with pytest.raises(KeyError, match="lacks"):
        to_torch(nn.Linear(2, 2), into=torch.nn.Sequential(torch.nn.Linear(2, 2)))


@pytest.mark.parametrize("make_opt", [
    lambda ps: mg.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: mg.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), amsgrad=True),
    lambda ps: mg.optim.AdamW(ps, lr=0.01, weight_decay=0.1),
], ids=["sgd", "adam", "adamw"])
def test_training_resumes_in_torch_and_back(make_opt, torch):
    """Two steps here, then the next step in torch matches the next step here, and the
    optimizer state comes back to MikaGrad intact."""
    from mikagrad.interop import from_torch, to_torch

    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 6))
    y = rng.integers(0, 4, size=8)
    mg.manual_seed(0)
    model = nn.MLP(6, [5, 4])  # float64, and Layer's w is torch's weight transposed
    opt = make_opt(model.parameters())

    def step_ours(m, o):
        o.zero_grad()
        mg.functional.cross_entropy(m(mg.tensor(x)), mg.tensor(y)).backward()
        o.step()

    for _ in range(2):
        step_ours(model, opt)
    tmodel = to_torch(model)
    topt = to_torch(opt, model, tmodel)
    back = from_torch(tmodel, into=nn.MLP(6, [5, 4]))
    opt_back = from_torch(topt, tmodel, back)
    for ka, kb in zip(opt.state_dict()["state"].values(), opt_back.state_dict()["state"].values()):
        assert set(ka) == set(kb)
        for k in ka:
            assert np.array_equal(ka[k], kb[k]), k

    topt.zero_grad()
    torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    topt.step()
    step_ours(model, opt)
    step_ours(back, opt_back)
    for k, v in model.state_dict().items():
        tk = {"layers.0.w": "0.weight", "layers.0.b": "0.bias",
              "layers.1.w": "2.weight", "layers.1.b": "2.bias"}[k]
        t = tmodel.state_dict()[tk].numpy()
        np.testing.assert_allclose(v, t.T if k.endswith(".w") else t, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(v, back.state_dict()[k])


@pytest.mark.parametrize("name, builder, make_input", MODELS, ids=IDS)
def test_safetensors_of_each_model_round_trip_with_torch(name, builder, make_input, torch,
                                                        tmp_path):
    """Ours read by safetensors.torch, and torch's file read by us, bit for bit; where the
    keys are torch's (all but the micrograd MLP), torch's model runs on our file."""
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file, save_file

    model = warm(build(builder), make_input)
    mg.save(model.state_dict(), tmp_path / "ours.safetensors")
    theirs = load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert theirs[k].numpy().tobytes() == v.tobytes() and theirs[k].numpy().dtype == v.dtype
    tmodel = to_torch_model(build(builder), torch)
    save_file(tmodel.state_dict(), str(tmp_path / "theirs.safetensors"))
    back = mg.load(tmp_path / "theirs.safetensors")
    for k, t in tmodel.state_dict().items():
        assert back[k].tobytes() == t.numpy().tobytes(), k
    if name == "micrograd_mlp":
        return
    tmodel.load_state_dict(theirs)
    x = make_input(7)
    with torch.no_grad():
        np.testing.assert_allclose(tmodel.eval()(torch_input(torch, x)).numpy(),
                                   model(x).numpy(), rtol=0, atol=1e-6)
    other = build(builder)
    other.load_state_dict(back)
    other.load_state_dict(mg.load(tmp_path / "ours.safetensors"))
    assert other(x).numpy().tobytes() == model(x).numpy().tobytes()


# ---- ONNX --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def run_onnx(ort, proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("name, builder, make_input", MODELS, ids=IDS)
def test_onnx_export_runs_in_onnxruntime(name, builder, make_input, ort, tmp_path):
    from mikagrad.onnx import export

    model = warm(build(builder), make_input)
    path = tmp_path / f"{name}.onnx"
    proto = export(model, make_input(3), path, input_names=["x"], output_names=["y"],
                   dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    assert path.read_bytes() == proto.SerializeToString()
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in BATCHES:
        x = make_input(batch)
        (got,) = run_onnx(ort, proto, {"x": x.numpy()})
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_initializers_are_named_by_state_dict_keys(ort):
    from mikagrad.onnx import export

    model = nn.Sequential(nn.Linear(3, 2))
    proto = export(model, mg.randn(2, 3), io.BytesIO())
    assert {i.name for i in proto.graph.initializer} >= {"0.weight", "0.bias"}
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]


def test_onnx_common_tensor_ops(ort):
    from mikagrad.onnx import export

    class Ops(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = mg.Value(np.linspace(-1, 1, 12).reshape(3, 4))

        def forward(self, x, idx):
            h = x @ self.w                                   # (B, 4)
            parts = [h[:, :2].exp(), h[:, 2:].abs().sqrt(), h.sum(1, keepdim=True),
                     h.mean(-1, keepdim=True), h.amax(1, keepdim=True), h.var(1, keepdim=True),
                     h.std(1, keepdim=True), h.clamp(-0.5, 0.5), (h * 2 - 1) / 3,
                     h.pow(2), h.softmax(-1), h.logsumexp(1, keepdim=True),
                     h.cumsum(1), mg.maximum(h, h.T.T * 0.5)]
            out = mg.cat(parts, dim=1)
            out = out.reshape(x.shape[0], -1, 2).transpose(1, 2).flatten(1)
            picked = self.w[idx]                             # (B, 4) from an int input
            return out, picked.unsqueeze(1).expand(-1, 3, -1)

    model = Ops()
    rng = np.random.default_rng(3)
    mk = lambda b: (mg.tensor(rng.standard_normal((b, 3))),  # noqa: E731
                    mg.tensor(rng.integers(-3, 3, size=b)))
    proto = export(model, mk(4), io.BytesIO(), input_names=["x", "idx"],
                   output_names=["out", "picked"],
                   dynamic_axes={"x": [0], "idx": [0], "out": [0], "picked": [0]})
    for b in BATCHES:
        x, idx = mk(b)
        got = run_onnx(ort, proto, {"x": x.numpy(), "idx": idx.numpy()})
        want = model(x, idx)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-8)


def test_onnx_functional_activations_and_attention(ort):
    from mikagrad.onnx import export

    F = mg.functional

    class Acts(nn.Module):
        def forward(self, x):
            q = x.reshape(x.shape[0], 2, 3, 2)
            att = F.scaled_dot_product_attention(q, q, q)
            parts = [F.softplus(x), F.mish(x), F.logsigmoid(x), F.silu(x), F.gelu(x),
                     F.leaky_relu(x, 0.3), x.relu(), x.sigmoid(), x.tanh(), x.neg().exp(),
                     (x.abs() + 1).log(), x.sign(), x.sin(), x.cos(), (x * x + 1).reciprocal(),
                     F.layer_norm(x, (12,)), att.flatten(1)]
            return mg.cat(parts, 1)

    rng = np.random.default_rng(7)  # float32: onnxruntime has no float64 Softplus
    x32 = lambda b: mg.tensor((rng.standard_normal((b, 12)) * 3).astype(np.float32))  # noqa: E731
    proto = export(Acts(), x32(3), io.BytesIO(), dynamic_axes={"input": [0], "output": [0]})
    for b in BATCHES:
        x = x32(b)
        (got,) = run_onnx(ort, proto, {"input": x.numpy()})
        np.testing.assert_allclose(got, Acts()(x).numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_padding_resizing_and_transposed_convs(ort):
    from mikagrad.onnx import export

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)
            self.conv = nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect")

        def forward(self, x):
            x = mg.functional.pad(x, (1, 2, 0, 1), value=0.5)
            x = self.conv(self.up(x))
            x = mg.functional.interpolate(x, scale_factor=2, mode="bilinear")
            return mg.functional.max_pool2d(x, 3, stride=2, padding=1)

    model = build(Net)  # float32: onnxruntime's ConvTranspose has no float64 kernel
    rng = np.random.default_rng(4)
    x32 = lambda b: mg.tensor(rng.standard_normal((b, 2, 5, 4)).astype(np.float32))  # noqa: E731
    proto = export(model, x32(2), io.BytesIO(), dynamic_axes={"input": [0], "output": [0]})
    for b in BATCHES:
        x = x32(b)
        (got,) = run_onnx(ort, proto, {"input": x.numpy()})
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_in_place_ops_in_forward(ort):
    from mikagrad.onnx import export

    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            h = self.lin(x)
            h.relu_()
            h.mul_(2)
            return h

    model = InPlace()
    proto = export(model, mg.randn(2, 3), io.BytesIO())
    x = mg.randn(2, 3)
    (got,) = run_onnx(ort, proto, {"input": x.numpy()})
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-12)


def test_onnx_op_without_a_mapping_is_named(ort):
    from mikagrad.onnx import ExportError, export

    class Odd(nn.Module):
        def forward(self, x):
            return x.tanh().erfinv()

    with pytest.raises(ExportError, match="op 'erfinv' has no ONNX mapping"):
        export(Odd(), mg.randn(2, 3), io.BytesIO())


def test_onnx_refuses_to_freeze_a_value_dependent_tensor(ort):
    from mikagrad.onnx import ExportError, export

    class Masked(nn.Module):
        def forward(self, x):
            return mg.where(x.detach() > 0, x, x * 0.1)

    with pytest.raises(ExportError, match="computed from the input's values"):
        export(Masked(), mg.randn(4, 3), io.BytesIO())


def test_onnx_refuses_a_constant_that_follows_a_dynamic_size(ort):
    from mikagrad.onnx import ExportError, export

    class Pool(nn.Module):
        def forward(self, x):
            return x.mean(1)  # sum times 1/n: n is baked into the op

    export(Pool(), mg.randn(4, 3), io.BytesIO(), dynamic_axes={"input": [0], "output": [0]})
    with pytest.raises(ExportError, match="setting 'params'.*depends on the input"):
        export(Pool(), mg.randn(4, 3), io.BytesIO(), dynamic_axes={"input": [1]})


def test_onnx_without_a_dynamic_axis_fixes_the_size(ort):
    from mikagrad.onnx import ExportError, export

    class Flat(nn.Module):
        def forward(self, x):
            return x.reshape(-1)

    proto = export(Flat(), mg.randn(4, 3), io.BytesIO())
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [4, 3]
    with pytest.raises(ExportError, match="name it in dynamic_axes"):
        export(Flat(), mg.randn(4, 3), io.BytesIO(), dynamic_axes={"input": [0]})


def test_onnx_argument_errors(ort):
    from mikagrad.onnx import export

    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="opset must be between 13 and 20"):
        export(model, mg.randn(1, 2), io.BytesIO(), opset=9)
    with pytest.raises(TypeError, match="example input 0 is a ndarray"):
        export(model, np.ones((1, 2)), io.BytesIO())
    with pytest.raises(ValueError, match="2 input_names for 1 inputs"):
        export(model, mg.randn(1, 2), io.BytesIO(), input_names=["a", "b"])
    with pytest.raises(ValueError, match="neither inputs nor outputs"):
        export(model, mg.randn(1, 2), io.BytesIO(), dynamic_axes={"x": [0]})


def test_export_leaves_the_model_in_its_mode(ort):
    from mikagrad.onnx import export

    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    export(model, mg.randn(3, 2), io.BytesIO())
    assert model.training and model[1].training


# ---- every layer on its own --------------------------------------------------------------


def _f(*shape):
    return lambda rng, b: mg.tensor(rng.standard_normal((b, *shape)).astype(np.float32))


LAYERS = [
    (lambda: nn.Linear(4, 3, bias=False), _f(4)),
    (lambda: nn.Conv1d(2, 3, 3, padding=1), _f(2, 6)),
    (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=2), _f(2, 9, 9)),
    (lambda: nn.Conv2d(2, 4, 3, padding="same", padding_mode="circular", groups=2), _f(2, 5, 5)),
    (lambda: nn.ConvTranspose1d(2, 3, 3, stride=2), _f(2, 5)),
    (lambda: nn.ConvTranspose2d(2, 3, 2, stride=2, bias=False), _f(2, 3, 3)),
    (lambda: nn.MaxPool1d(2), _f(2, 6)),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), _f(2, 8, 8)),
    (lambda: nn.AvgPool1d(3, stride=2, padding=1), _f(2, 7)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), _f(2, 7, 7)),
    (lambda: nn.AdaptiveAvgPool1d(3), _f(2, 7)),
    (lambda: nn.AdaptiveAvgPool2d((2, 3)), _f(2, 7, 7)),
    (lambda: nn.AdaptiveMaxPool2d(2), _f(2, 6, 6)),
    (lambda: nn.Upsample(scale_factor=2), _f(2, 3, 3)),
    (lambda: nn.Upsample(size=(5, 6), mode="bilinear", align_corners=True), _f(2, 3, 3)),
    (lambda: nn.BatchNorm1d(3), _f(3)),
    (lambda: nn.BatchNorm1d(3, affine=False), _f(3, 5)),
    (lambda: nn.BatchNorm2d(3, momentum=None), _f(3, 4, 4)),
    (lambda: nn.BatchNorm1d(3, track_running_stats=False), _f(3, 5)),
    (lambda: nn.InstanceNorm1d(3, affine=True), _f(3, 5)),
    (lambda: nn.InstanceNorm2d(3), _f(3, 4, 4)),
    (lambda: nn.GroupNorm(2, 4), _f(4, 3, 3)),
    (lambda: nn.LayerNorm((3, 4), eps=1e-3), _f(2, 3, 4)),
    (lambda: nn.LayerNorm(4, elementwise_affine=False), _f(4)),
    (lambda: nn.Dropout(0.3), _f(4)),
    (lambda: nn.Dropout1d(0.3), _f(2, 4)),
    (lambda: nn.Dropout2d(0.3), _f(2, 3, 3)),
    (lambda: nn.Flatten(), _f(2, 3, 2)),
    (lambda: nn.Unflatten(1, (2, 3)), _f(6)),
    (lambda: nn.Softmax(1), _f(4, 2)),
    (lambda: nn.LogSoftmax(1), _f(4, 2)),
    (lambda: nn.Embedding(10, 3, padding_idx=0),
     lambda rng, b: mg.tensor(rng.integers(0, 10, size=(b, 4)))),
    (lambda: nn.Sequential({"a": nn.Linear(3, 3), "act": nn.Tanh()}), _f(3)),
    *[(lambda a=a: nn.Sequential(nn.Linear(3, 3), a), _f(3)) for a in ACTIVATIONS],
]
LAYER_IDS = [type(build(make)).__name__ + f"-{i}" for i, (make, _) in enumerate(LAYERS)]


@pytest.mark.parametrize("make, make_input", LAYERS, ids=LAYER_IDS)
def test_each_layer_in_torch(make, make_input, torch):
    from mikagrad.interop import from_torch, to_torch

    rng = np.random.default_rng(5)
    model = build(make)
    if any(isinstance(m, nn._NormBase) for m in model.modules()):
        model.train()(make_input(rng, 7))  # running statistics off their defaults
        model.eval()
    tmodel = to_torch(model)
    back = from_torch(tmodel)
    assert type(back) is type(model)
    for k, v in model.state_dict().items():
        assert back.state_dict()[k].tobytes() == v.tobytes(), k
    for b in BATCHES:
        x = make_input(rng, b)
        with torch.no_grad():
            want = tmodel(torch_input(torch, x)).numpy()
        np.testing.assert_allclose(model(x).numpy(), want, rtol=0, atol=1e-6)
        assert back(x).numpy().tobytes() == model(x).numpy().tobytes()


@pytest.mark.parametrize("make, make_input", LAYERS, ids=LAYER_IDS)
def test_each_layer_in_onnxruntime(make, make_input, ort):
    from mikagrad.onnx import export

    rng = np.random.default_rng(6)
    model = build(make)
    proto = export(model, make_input(rng, 3), io.BytesIO(),
                   dynamic_axes={"input": [0], "output": [0]})
    for b in BATCHES:
        x = make_input(rng, b)
        (got,) = run_onnx(ort, proto, {"input": x.numpy()})
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_containers_keep_their_structure(torch):
    from mikagrad.interop import from_torch, to_torch

    model = nn.Sequential(nn.ModuleList([nn.Linear(2, 2), nn.ReLU()]),
                          nn.ModuleDict({"head": nn.Linear(2, 1)}))
    tmodel = to_torch(model)
    assert isinstance(tmodel[0], torch.nn.ModuleList)
    assert isinstance(tmodel[1], torch.nn.ModuleDict)
    assert list(tmodel.state_dict()) == list(model.state_dict())
    back = from_torch(tmodel)
    assert isinstance(back[0], nn.ModuleList) and isinstance(back[1], nn.ModuleDict)
    assert back[1]["head"].weight.numpy().tobytes() == model[1]["head"].weight.numpy().tobytes()


def test_the_export_demo_hands_the_model_over(capsys):
    pytest.importorskip("sklearn")
    from mikagrad import demo_export

    demo_export.main(["--epochs", "3"])
    out = capsys.readouterr().out
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert "test accuracy" in lines["MikaGrad"]
    for part, package in (("ONNX", "onnxruntime"), ("PyTorch", "torch")):
        try:
            __import__(package)
        except ImportError:
            assert f"{part}: skipped" in out
            continue
        # Each hand-over reports how far the other engine's numbers are from ours.
        diffs = [float(w.rstrip(",;")) for line in out.splitlines() if line.startswith(part)
                 for w in line.split() if w[:1].isdigit() and "e" in w]
        assert diffs and max(diffs) < 1e-5, out


# ---- what a second trace must catch, and edge mappings -------------------------------------


def f32(*shape, seed=0):
    return mg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def one_op(fn):
    class One(nn.Module):
        def forward(self, *xs):
            return fn(*xs)
    return One()


@pytest.mark.parametrize("fn, x", [
    (lambda x: x[:, 0], f32(2, 3)),
    (lambda x: x[-1, 1:], f32(2, 3)),
    (lambda x: x.sum() * 2, f32(2, 3)),
    (lambda x: x[:, None, ::-2], f32(2, 5)),
    (lambda x: x.sum(dim=()), f32(2, 3)),
    (lambda x: x.var(dim=(), correction=0) + x.amax(dim=()), f32(2, 3)),
    (lambda x: mg.functional.pad(x, (1, 1), value=float("-inf")), f32(2, 3)),
    (lambda x: mg.functional.pad(x, (2, 1), mode="reflect"), f32(1, 2, 5)),
    (lambda x: mg.functional.max_pool1d(x, 2, 2, padding=1, ceil_mode=True), f32(1, 1, 5)),
    (lambda x: mg.functional.max_pool2d(x, 3, 2, ceil_mode=True), f32(1, 1, 6, 6)),
    (lambda x: mg.functional.logsigmoid(x * 30), f32(2, 3)),
    (lambda x: (x * 1e-9).log1p(), f32(2, 3)),
], ids=["select", "select-slice", "0-d", "new-axis-step", "sum-no-dims", "moments-no-dims",
        "pad-inf", "reflect", "ceil-1d", "ceil-2d", "logsigmoid", "log1p-tiny"])
def test_onnx_edge_mappings(fn, x, ort):
    from mikagrad.onnx import export

    model = one_op(fn)
    proto = export(model, x, io.BytesIO())
    (got,) = run_onnx(ort, proto, {"input": x.numpy()})
    want = model(x).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("fn, want", [
    (lambda x: mg.functional.pad(x, (1, 2), mode="replicate"), [np.inf, np.inf, 0, 0, 0, 0, 0]),
    (lambda x: mg.functional.avg_pool1d(x, 2), [np.inf, 0, 0]),
    (lambda x: mg.functional.interpolate(x, size=3, mode="linear"), [np.inf, 0, 0]),
])
def test_onnx_inf_stays_where_the_core_puts_it(fn, want, ort):
    from mikagrad.onnx import export

    model = one_op(fn)
    x = np.zeros((1, 1, 6), np.float32)
    x[0, 0, 0] = np.inf
    (got,) = run_onnx(ort, export(model, mg.tensor(x), io.BytesIO()), {"input": x})
    np.testing.assert_array_equal(got, model(mg.tensor(x)).numpy())
    assert got.ravel().tolist()[:len(want)] == want


@pytest.mark.parametrize("fn", [
    lambda x: mg.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
    lambda x: mg.functional.interpolate(x, scale_factor=2, mode="bilinear"),
    lambda x: mg.functional.adaptive_avg_pool2d(x, (2, 3)),
], ids=["avg_pool2d", "bilinear", "adaptive_avg"])
def test_onnx_linear_maps_are_bit_exact(fn, ort):
    from mikagrad.onnx import export

    model = one_op(fn)
    x = f32(2, 3, 7, 7)
    (got,) = run_onnx(ort, export(model, x, io.BytesIO()), {"input": x.numpy()})
    assert got.tobytes() == model(x).numpy().tobytes()


def test_onnx_indices_counted_from_the_end_follow_a_dynamic_dim(ort):
    from mikagrad.onnx import export

    model = one_op(lambda x: x[:, -1])
    proto = export(model, f32(2, 5, 3), io.BytesIO(), dynamic_axes={"input": [1]})
    x = f32(2, 7, 3, seed=1)
    (got,) = run_onnx(ort, proto, {"input": x.numpy()})
    np.testing.assert_array_equal(got, x.numpy()[:, -1])


@pytest.mark.parametrize("fn, x, axes, match", [
    (lambda x: x[:, :x.shape[1] - 1], f32(2, 4), {"input": [1]}, "slice of dim 1 whose bounds"),
    (lambda x: x[:, 2], f32(2, 4), {"input": [1]}, None),  # a fixed index is fine
    (lambda x: x[:, :4], f32(2, 4), {"input": [1]}, None),  # fixed bounds too
    (lambda x: mg.functional.adaptive_max_pool2d(x, 1), f32(1, 2, 4, 4),
     {"input": [2, 3]}, "adaptive pooling of a dim"),
    (lambda x: mg.functional.adaptive_avg_pool2d(x, 1), f32(1, 2, 4, 4),
     {"input": [2, 3]}, "setting 'taps'"),
    (lambda x: x.mean(-1), f32(2, 3), {"input": [-1]}, "setting 'params'"),
    (lambda x: mg.functional.batch_norm(x, x.detach().mean(0), x.detach().var(0)),
     f32(4, 3), {}, "setting 'mean'"),
], ids=["slice-to-size", "fixed-index", "fixed-slice", "adaptive-max", "adaptive-avg",
        "negative-axis", "outside-statistics"])
def test_onnx_refuses_what_depends_on_a_dynamic_size(fn, x, axes, match, ort):
    from mikagrad.onnx import ExportError, export

    if match is None:
        proto = export(one_op(fn), x, io.BytesIO(), dynamic_axes=axes)
        big = f32(2, 6, seed=2)
        (got,) = run_onnx(ort, proto, {"input": big.numpy()})
        np.testing.assert_array_equal(got, fn(big).numpy())
        return
    with pytest.raises(ExportError, match=match):
        export(one_op(fn), x, io.BytesIO(), dynamic_axes=axes)


def test_onnx_masks_from_integer_inputs_are_refused_even_for_a_constant_example(ort):
    from mikagrad.onnx import ExportError, export

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)

        def forward(self, ids):
            h = self.emb(ids)
            return mg.where((ids != 0).unsqueeze(-1), h, h * 0.0)

    with pytest.raises(ExportError, match="computed from the input's values"):
        export(Masked(), mg.tensor(np.full((2, 5), 3)), io.BytesIO())


def test_onnx_a_transposed_integer_input_is_not_the_input(ort):
    from mikagrad.onnx import ExportError, export

    class T(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)

        def forward(self, ids):
            return self.emb(ids.T)

    with pytest.raises(ExportError):
        export(T(), mg.tensor(np.arange(9).reshape(3, 3)), io.BytesIO())


def test_onnx_integer_inputs_as_operands_and_index_select(ort):
    from mikagrad.onnx import export

    class Use(nn.Module):
        def forward(self, x, m, idx):
            return (x * m).index_select(0, idx)

    rng = np.random.default_rng(8)
    mk = lambda: (f32(4, 3), mg.tensor(rng.integers(0, 3, size=(4, 3))),  # noqa: E731
                  mg.tensor(rng.integers(-4, 4, size=5)))
    proto = export(Use(), mk(), io.BytesIO(), input_names=["x", "m", "idx"])
    x, m, idx = mk()
    (got,) = run_onnx(ort, proto, {"x": x.numpy(), "m": m.numpy(), "idx": idx.numpy()})
    np.testing.assert_allclose(got, Use()(x, m, idx).numpy(), rtol=1e-6)


def test_onnx_batch_norm_with_a_bias_and_no_weight(ort):
    from mikagrad.onnx import export

    class B(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = mg.Value(np.full(3, 2.0, np.float32))

        def forward(self, x):
            return mg.functional.batch_norm(x, None, None, None, self.b, training=True)

    x = f32(4, 3)
    (got,) = run_onnx(ort, export(B(), x, io.BytesIO()), {"input": x.numpy()})
    np.testing.assert_allclose(got, B()(x).numpy(), rtol=1e-5, atol=1e-6)


def test_onnx_a_forward_that_fails_on_the_second_trace_is_explained(ort):
    from mikagrad.onnx import ExportError, export

    class Even(nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0] // 2, 2, -1)

    with pytest.raises(ExportError, match="fails on other inputs of shapes"):
        export(Even(), f32(4, 3), io.BytesIO(), dynamic_axes={"input": [0]})


def test_export_keeps_each_module_in_its_own_mode(ort):
    from mikagrad.onnx import export

    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).train()
    m[1].eval()
    export(m, f32(4, 2), io.BytesIO())
    assert m.training and m[0].training and not m[1].training


# ---- interop edges -----------------------------------------------------------------------


def test_into_keeps_parameter_objects_and_refuses_extra_tensors(torch):
    from mikagrad.interop import from_torch, to_torch

    tm = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(tm.parameters(), 0.1)
    src = nn.Linear(3, 2).float()
    to_torch(src, into=tm)
    assert opt.param_groups[0]["params"][0] is tm.weight
    assert np.array_equal(tm.weight.detach().numpy(), src.weight.numpy())
    with pytest.raises(KeyError, match="has '0.bias'.*lacks"):
        to_torch(nn.Sequential(nn.Linear(3, 2, bias=False)),
                 into=torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(KeyError, match="lacks '0.bias'"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(3, 2, bias=False)),
                   into=nn.Sequential(nn.Linear(3, 2)))


def test_tied_torch_weights_convert(torch):
    from mikagrad.interop import from_torch

    tt = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5, bias=False))
    tt[1].weight = tt[0].weight
    back = from_torch(tt)
    assert np.array_equal(back[0].weight.numpy(), back[1].weight.numpy())


def test_frozen_parameters_and_modes_carry_over(torch):
    from mikagrad.interop import from_torch, to_torch

    tm = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)).train()
    tm[0].weight.requires_grad_(False)
    tm[1].eval()
    m = from_torch(tm)
    assert not m[0].weight.requires_grad and m[0].bias.requires_grad
    assert m.training and not m[1].training
    back = to_torch(m)
    assert not back[0].weight.requires_grad and back.training and not back[1].training


def test_torch_settings_without_a_counterpart_are_refused(torch):
    from mikagrad.interop import from_torch

    with pytest.raises(ValueError, match="max_norm"):
        from_torch(torch.nn.Embedding(5, 3, max_norm=1.0))
    with pytest.raises(ValueError, match="recompute_scale_factor"):
        from_torch(torch.nn.Upsample(scale_factor=1.5, recompute_scale_factor=True))


def test_decoupled_torch_adam_becomes_adamw(torch):
    from mikagrad.interop import from_torch

    tm = torch.nn.Linear(2, 1)
    try:
        topt = torch.optim.Adam(tm.parameters(), weight_decay=0.1, decoupled_weight_decay=True)
    except TypeError:
        pytest.skip("this torch's Adam has no decoupled_weight_decay")
    m = from_torch(tm)
    assert type(from_torch(topt, tm, m)) is mg.optim.AdamW


def test_onnx_reshaped_integer_and_bool_inputs(ort):
    """A key padding mask given as an input and reshaped inside forward stays an input."""
    from mikagrad.onnx import export

    class Attend(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, ids, pad):
            h = self.emb(ids)
            return self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0]

    rng = np.random.default_rng(9)

    def mk(b, t):
        pad = np.zeros((b, t), bool)
        pad[:, -1] = rng.random(b) < 0.5
        return mg.tensor(rng.integers(0, 10, size=(b, t))), mg.tensor(pad)

    model = build(Attend)
    proto = export(model, mk(2, 5), io.BytesIO(), input_names=["ids", "pad"],
                   dynamic_axes={"ids": [0, 1], "pad": [0, 1], "output": [0, 1]})
    for b, t in [(1, 3), (7, 6)]:
        ids, pad = mk(b, t)
        (got,) = run_onnx(ort, proto, {"ids": ids.numpy(), "pad": pad.numpy()})
        np.testing.assert_allclose(got, model(ids, pad).numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_sizes_rounded_down_by_strides_are_caught(ort):
    """8 and 9 both pool to 4: a third trace, at 2n + 3, tells the mean's 1/16 apart."""
    from mikagrad.onnx import ExportError, export

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2)

        def forward(self, x):
            return self.pool(x).mean((2, 3))

    with pytest.raises(ExportError, match="differs for other input values or sizes"):
        export(Net(), f32(1, 3, 8, 8), io.BytesIO(),
               dynamic_axes={"input": [2, 3]})
    with pytest.raises(ExportError, match="index into dim 1 that follows"):
        export(one_op(lambda x: x[:, x.shape[1] // 2]), f32(2, 5, 4), io.BytesIO(),
               dynamic_axes={"input": [1]})


def test_onnx_max_over_a_dim_names_amax(ort):
    from mikagrad.onnx import ExportError, export

    with pytest.raises(ExportError, match="use amax/amin"):
        export(one_op(lambda x: x.max(1).values), f32(2, 3), io.BytesIO())


def test_onnx_float64_softplus_runs_in_onnxruntime(ort):
    """onnxruntime has no float64 Softplus: export writes it out of ops it has."""
    from mikagrad.onnx import export

    model = one_op(lambda x: mg.functional.softplus(x) + (x * 1e-20).log1p())
    x = mg.tensor(np.concatenate([np.linspace(-800, 800, 41), [-40.0, 1e-12, 0.0, 37.0]]))
    (got,) = run_onnx(ort, export(model, x, io.BytesIO()), {"input": x.numpy()})
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-14, atol=0)
