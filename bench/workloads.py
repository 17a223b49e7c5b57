"""The data and the initial weights that every framework is given, as numpy arrays.

Weights are a list of ``(W, b)`` per layer with ``W`` shaped (in, out) (micrograd's and the
original MikaGrad's layout); each framework converts them to its own layout, so all start
from the same numbers and ``bench.check`` can compare one step exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

MOONS_SIZES = [2, 16, 16, 1]
DIGITS_SIZES = [64, 128, 64, 10]
LARGE_SIZES = [784, 512, 512, 10]
L2 = 1e-4  # the moons step's regulariser: loss + L2 * sum(p * p)
LR = 0.05


def init_mlp(sizes: list[int], seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """U(-1/sqrt(in), 1/sqrt(in)) weights and biases, float64."""
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_in)
        out.append((rng.uniform(-bound, bound, (n_in, n_out)),
                    rng.uniform(-bound, bound, n_out)))
    return out


def moons(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` moons points (mikagrad.data.make_moons), labels in {-1, +1} shaped (n, 1)."""
    from mikagrad.data import make_moons

    x, y = make_moons(n_samples=n, noise=0.1, random_state=seed)
    return x.astype(np.float64), (y * 2.0 - 1.0).reshape(-1, 1)


def digits(batch: int = 64) -> tuple[np.ndarray, np.ndarray, str]:
    """The first ``batch`` of scikit-learn's digits (scaled to [0, 1]), or random data."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        rng = np.random.default_rng(0)
        return rng.random((batch, 64)), rng.integers(0, 10, batch), "random (no sklearn)"
    x, y = load_digits(return_X_y=True)
    return x[:batch] / 16.0, y[:batch].astype(np.int64), "sklearn load_digits"


def large(batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Random MNIST-shaped data: (batch, 784) inputs and labels in range(10)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 784)), rng.integers(0, 10, batch).astype(np.int64)


# ---- matmul: the same 2n³ flops in three forms ---------------------------------------------
# "3-D @ 2-D" is (8, n/8, n) @ (n, n), a batched input times a weight as in a transformer.
MATMUL_FORMS = ("a @ b", "a.T @ b", "3-D @ 2-D")


def matmul_operands(n: int, dtype: str, form: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((8, n // 8, n) if form == "3-D @ 2-D" else (n, n)).astype(dtype)
    return a, rng.standard_normal((n, n)).astype(dtype)


def matmul_expr(form: str) -> Callable[[Any, Any], Any]:
    """``a.T`` is a view in every framework, so the product reads a transposed operand."""
    return (lambda a, b: a.T @ b) if form == "a.T @ b" else (lambda a, b: a @ b)


# ---- cases whose code is the same in every framework with tensor operators -----------------
# `t(array, grad=...)` makes the framework's tensor; the rest is plain operators.


def tiny_cases(t: Callable[..., Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Forward-only statements on tiny float32 tensors."""
    one = np.ones(1, np.float32)
    a, b = t(one, grad=True), t(one * 2, grad=True)
    an, bn = t(one), t(one * 2)
    m = t(np.ones((4, 4)), grad=True)
    return {
        "a + b, (1,), no grad": ("an + bn", {"an": an, "bn": bn}),
        "a + b, (1,), requires grad": ("a + b", {"a": a, "b": b}),
        "a * b, (1,)": ("a * b", {"a": a, "b": b}),
        "a + 1.0, (1,)": ("a + 1.0", {"a": a}),
        "a.relu(), (1,)": ("a.relu()", {"a": a}),
        "a.exp(), (1,)": ("a.exp()", {"a": a}),
        "a.sum(), (1,)": ("a.sum()", {"a": a}),
        "a @ b, (4,4)": ("m @ m", {"m": m}),
    }


def chain_forward(x: Any, n_ops: int) -> Any:
    """The 100-op chain: a repeating mix of mul, add, relu and sub, summed."""
    y = x
    for i in range(n_ops):
        k = i % 4
        if k == 0:
            y = y * 0.999
        elif k == 1:
            y = y + x
        elif k == 2:
            y = y.relu()
        else:
            y = y - 0.5
    return y.sum()


def chain_run(t: Callable[..., Any], n_ops: int, shape: tuple[int, ...]) -> Callable[[], Any]:
    """Forward + backward of the chain; returns x's gradient (for bench.check)."""
    x = t(np.random.default_rng(0).standard_normal(shape), grad=True)

    def run() -> Any:
        x.grad = None
        chain_forward(x, n_ops).backward()
        return x.grad
    return run


def chain_split(t: Callable[..., Any],
                n_ops: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """(build the graph, run backward on it) for the chain-length scaling table."""
    x = t(np.ones(1), grad=True)
    return (lambda: chain_forward(x, n_ops)), (lambda loss: loss.backward())


def softmax_run(t: Callable[..., Any], n: int, c: int) -> Callable[[], None]:
    """softmax over the last dim, backward with a random seed gradient."""
    rng = np.random.default_rng(0)
    z = t(rng.standard_normal((n, c)), grad=True)
    w = t(rng.standard_normal((n, c)))

    def run() -> None:
        z.grad = None
        z.softmax(-1).backward(w)
    return run


# ---- indexing: makemore's bigram statements ------------------------------------------------
# 228,146 (character, next character) pairs over 27 characters, as in makemore part 1.
INDEX_N, INDEX_C = 228146, 27


def index_cases(lib: Any, t: Callable[..., Any]) -> dict[str, Callable[[], Any]]:
    """Integer-array indexing and gather on makemore's sizes, written once: ``lib`` is
    mikagrad or torch (``arange``, ``eye``, dtypes), ``t(array, dtype, grad=...)`` its tensor.
    ``probs`` requires grad, so the forward rows record the graph as training does."""
    n, c = INDEX_N, INDEX_C
    rng = np.random.default_rng(0)
    probs = t(rng.random((n, c)), lib.float32, grad=True)
    ys, xs = t(rng.integers(0, c, n), lib.int64), t(rng.integers(0, c, n), lib.int64)
    idx = t(rng.integers(0, c, (n, 1)), lib.int64)
    eye = lib.eye(c, dtype=lib.float32)

    def backward(out: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            probs.grad = None
            out().sum().backward()
        return run

    def pick() -> Any:
        return probs[lib.arange(n), ys]

    def gather() -> Any:
        return probs.gather(1, idx)

    return {
        f"probs[arange(N), ys], probs ({n}, {c})": pick,
        f"eye({c})[xs], {n} int64 indices": lambda: eye[xs],
        f"probs.gather(1, idx), idx ({n}, 1)": gather,
        "probs[arange(N), ys].sum(), forward + backward": backward(pick),
        "probs.gather(1, idx).sum(), forward + backward": backward(gather),
    }


def lecture_cases(lib: Any, t: Callable[..., Any]) -> dict[str, Callable[[], Any]]:
    """The two hot spots of the Zero to Hero loops, written once for mikagrad and torch:
    makemore part 1's Python loop of bigram counts (``N[ix1, ix2] += 1``), and part 5's
    ``(B, T, C) @ (C, H)`` with the weight's gradient."""
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 27, (2000, 2)).tolist()
    B, T, C, H = 32, 8, 24, 128
    x = t(rng.standard_normal((B, T, C)), lib.float32, grad=True)
    w = t(rng.standard_normal((C, H)) * 0.1, lib.float32, grad=True)

    def counts() -> Any:
        N = lib.zeros((27, 27), dtype=lib.int32)
        for i, j in pairs:
            N[i, j] += 1
        return N

    def batched_linear() -> None:
        x.grad = None
        w.grad = None
        (x @ w).sum().backward()

    # makemore part 3's training step: embeddings, a hand-written BatchNorm, tanh, SGD.
    g = lib.Generator().manual_seed(2147483647)
    n_embd, n_hidden, V = 10, 200, 27
    emb_w = lib.randn((V, n_embd), generator=g, dtype=lib.float32)
    W1 = lib.randn((3 * n_embd, n_hidden), generator=g, dtype=lib.float32) * 0.3
    W2 = lib.randn((n_hidden, V), generator=g, dtype=lib.float32) * 0.01
    b2 = lib.zeros(V, dtype=lib.float32)
    gain = lib.ones((1, n_hidden), dtype=lib.float32)
    bias = lib.zeros((1, n_hidden), dtype=lib.float32)
    params = [emb_w, W1, W2, b2, gain, bias]
    for p in params:
        p.requires_grad = True
    Xtr = t(rng.integers(0, V, (5000, 3)), lib.int64)
    Ytr = t(rng.integers(0, V, 5000), lib.int64)

    def mlp_step() -> None:
        ix = lib.randint(0, 5000, (32,), generator=g)
        emb = emb_w[Xtr[ix]].view(32, -1)
        hpre = emb @ W1
        hpre = gain * (hpre - hpre.mean(0, keepdim=True)) / hpre.std(0, keepdim=True) + bias
        loss = lib.nn.functional.cross_entropy(lib.tanh(hpre) @ W2 + b2, Ytr[ix])
        for p in params:
            p.grad = None
        loss.backward()
        for p in params:
            p.data += -0.1 * p.grad

    return {
        "bigram counts: N[i, j] += 1 for 2,000 pairs (Python loop)": counts,
        f"({B}, {T}, {C}) @ ({C}, {H}), forward + backward (both gradients)": batched_linear,
        "makemore MLP step: embedding, BatchNorm by hand, tanh, cross-entropy, SGD": mlp_step,
    }


# ---- convolutional networks ----------------------------------------------------------------
# The large conv case, (N, C_in, C_out, H, W); its GFLOP/s counts the forward product and the
# two of the backward (input and weight gradients), 2 * N * C_out * C_in * 9 * H * W each.
CONV_LARGE = (32, 32, 64, 32, 32)
CONV_LARGE_CASE = "conv2d 32→64, 3×3, padding 1, (32, 32, 32, 32)"
CONV_LARGE_FLOPS = 3 * 2 * CONV_LARGE[0] * CONV_LARGE[2] * CONV_LARGE[1] * 9 * CONV_LARGE[3] \
    * CONV_LARGE[4]
CNN_CASE = "digits CNN step: conv 1→16→32, max-pool, MLP 512-64-10, batch 64, cross-entropy, SGD"


def cnn_model(nn: Any) -> Any:
    """The digits CNN in ``nn`` (``mikagrad.nn`` or ``torch.nn``): state_dict keys match."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def init_cnn(seed: int = 0) -> dict[str, np.ndarray]:
    """``cnn_model``'s state_dict: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch's init, float32."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in (("0", (16, 1, 3, 3)), ("2", (32, 16, 3, 3)), ("6", (64, 512)),
                       ("8", (10, 64))):
        bound = 1.0 / np.sqrt(np.prod(shape[1:]))
        out[f"{key}.weight"] = rng.uniform(-bound, bound, shape).astype(np.float32)
        out[f"{key}.bias"] = rng.uniform(-bound, bound, shape[0]).astype(np.float32)
    return out


def cnn_step(lib: Any, t: Callable[..., Any], model: Any, x: np.ndarray,
             y: np.ndarray) -> Callable[[], Any]:
    """One SGD step of ``model`` on digits ``x`` (batch, 64) reshaped to (batch, 1, 8, 8):
    forward, cross-entropy, zero_grad, backward, update; returns the loss (for bench.check)."""
    opt = lib.optim.SGD(model.parameters(), lr=LR)
    xs = t(x.reshape(-1, 1, 8, 8), lib.float32)
    ys = t(y, lib.int64)
    cross_entropy = lib.nn.functional.cross_entropy

    def step() -> Any:
        loss = cross_entropy(model(xs), ys)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def convnet_cases(lib: Any, t: Callable[..., Any],
                  step: Callable[[], Any]) -> dict[str, Callable[[], Any]]:
    """Convolutions and max-pooling, forward + backward, float32, written once for mikagrad
    and torch (``lib.nn.functional``'s ``conv2d``/``max_pool2d``/``relu``); the input requires
    grad too, and every leaf's ``.grad`` is dropped before each call. ``step`` is the
    framework's digits CNN step (``cnn_step``)."""
    F = lib.nn.functional
    rng = np.random.default_rng(0)

    def leaf(shape: tuple[int, ...], scale: float = 1.0) -> Any:
        return t(rng.standard_normal(shape) * scale, lib.float32, grad=True)

    def conv_params(c_out: int, c_in: int) -> tuple[Any, Any]:
        s = 1.0 / np.sqrt(c_in * 9)
        return leaf((c_out, c_in, 3, 3), s), leaf((c_out,), s)

    def fwd_bwd(out: Callable[[], Any], leaves: list[Any]) -> Callable[[], None]:
        def run() -> None:
            for p in leaves:
                p.grad = None
            out().sum().backward()
        return run

    cases: dict[str, Callable[[], Any]] = {}
    for hw in (8, 28):
        x = leaf((64, 1, hw, hw))
        w1, b1 = conv_params(8, 1)
        w2, b2 = conv_params(16, 8)

        def two(x: Any = x, w1: Any = w1, b1: Any = b1, w2: Any = w2, b2: Any = b2) -> Any:
            return F.conv2d(F.relu(F.conv2d(x, w1, b1, 1, 1)), w2, b2, 1, 1)
        cases[f"conv2d 1→8, relu, conv2d 8→16 (3×3, padding 1), (64, 1, {hw}, {hw})"] = fwd_bwd(
            two, [x, w1, b1, w2, b2])
    n, c_in, c_out, h, w = CONV_LARGE
    xl = leaf((n, c_in, h, w))
    wl, bl = conv_params(c_out, c_in)
    cases[CONV_LARGE_CASE] = fwd_bwd(lambda: F.conv2d(xl, wl, bl, 1, 1), [xl, wl, bl])
    xd = leaf((32, 64, 32, 32))
    wd, bd = conv_params(64, 1)
    cases["depthwise conv2d 3×3, 64 channels (groups=64), padding 1, (32, 64, 32, 32)"] = \
        fwd_bwd(lambda: F.conv2d(xd, wd, bd, 1, 1, 1, 64), [xd, wd, bd])
    xp = leaf((64, 16, 28, 28))
    cases["max_pool2d 2×2, (64, 16, 28, 28)"] = fwd_bwd(lambda: F.max_pool2d(xp, 2), [xp])
    cases[CNN_CASE] = step
    return cases


# ---- gradients of gradients ------------------------------------------------------------------


def higher_order_cases(lib: Any, t: Callable[..., Any]) -> dict[str, Callable[[], Any]]:
    """Hessians, Hessian-vector products and a gradient-penalty step, float64, written once
    for mikagrad and torch (``lib.autograd.functional``, ``lib.autograd.grad``)."""
    rng = np.random.default_rng(0)
    x = t(rng.standard_normal((32, 8)), lib.float64)
    y = t(rng.standard_normal((32, 1)), lib.float64)
    w1, b1 = t(rng.standard_normal((16, 8)) * 0.35, lib.float64), t(np.zeros(16), lib.float64)
    w2, b2 = t(rng.standard_normal((1, 16)) * 0.25, lib.float64), t(np.zeros(1), lib.float64)
    v = tuple(t(rng.standard_normal(p.shape), lib.float64) for p in (w1, b1, w2, b2))
    functional = lib.autograd.functional

    def loss(w1: Any, b1: Any, w2: Any, b2: Any) -> Any:
        return (((x @ w1.T + b1).tanh() @ w2.T + b2 - y) ** 2).mean()

    def hessian() -> Any:
        return functional.hessian(lambda w: loss(w, b1, w2, b2), w1)

    def hvp() -> Any:
        return functional.hvp(loss, (w1, b1, w2, b2), v)[1]

    critic = [t(a, lib.float64, grad=True) for a in (
        rng.standard_normal((32, 8)) * 0.35, np.zeros(32), rng.standard_normal((1, 32)) * 0.18,
        np.zeros(1))]
    opt = lib.optim.SGD(critic, lr=1e-3)
    real, fake = x, t(rng.standard_normal((32, 8)) + 1.0, lib.float64)
    mix = t(rng.uniform(size=(32, 1)), lib.float64)

    def score(inp: Any) -> Any:
        return (inp @ critic[0].T + critic[1]).tanh() @ critic[2].T + critic[3]

    def penalty_step() -> Any:
        interp = (mix * real + (1 - mix) * fake).detach().requires_grad_(True)
        (g,) = lib.autograd.grad(score(interp).sum(), interp, create_graph=True)
        gp = (((g ** 2).sum(1) + 1e-12).sqrt() - 1) ** 2
        out = score(fake).mean() - score(real).mean() + 10 * gp.mean()
        opt.zero_grad()
        out.backward()
        opt.step()
        return out

    return {
        "Hessian of an MLP loss (8→16 tanh →1, MSE, batch 32) in its 16×8 first weight: "
        "autograd.functional.hessian, a 128×128 matrix": hessian,
        "hvp of the same loss in all four parameters: autograd.functional.hvp": hvp,
        "WGAN-GP critic step: gradient penalty through autograd.grad(create_graph=True), "
        "critic 8→32 tanh →1, batch 32, SGD": penalty_step,
    }


# ---- transcendental kernels ------------------------------------------------------------------


def math_cases(lib: Any, t: Callable[..., Any]) -> dict[str, Callable[[], Any]]:
    """exp, log, tanh, sigmoid, gelu and softplus on (256, 512), float32 and float64, forward
    only (under ``no_grad``), written once for mikagrad and torch."""
    F = lib.nn.functional
    ops: dict[str, Callable[[Any], Any]] = {
        "exp": lambda x: x.exp(), "log": lambda x: x.log(), "tanh": lambda x: x.tanh(),
        "sigmoid": lambda x: x.sigmoid(), "gelu": F.gelu, "softplus": F.softplus}
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 512)) * 3
    cases: dict[str, Callable[[], Any]] = {}
    for dtype in ("float32", "float64"):
        for name, op in ops.items():
            x = t(np.abs(a) + 1e-3 if name == "log" else a, getattr(lib, dtype))

            def run(op: Callable[[Any], Any] = op, x: Any = x) -> Any:
                with lib.no_grad():
                    return op(x)
            cases[f"{name}, (256, 512) {dtype}"] = run
    return cases
