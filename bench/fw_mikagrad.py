"""MikaGrad's side of every case, written as a user would (public API only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import nn, optim

from .workloads import (
    L2,
    LR,
    chain_run,
    chain_split,
    cnn_model,
    cnn_step,
    convnet_cases,
    digits,
    higher_order_cases,
    index_cases,
    init_cnn,
    lecture_cases,
    math_cases,
    matmul_expr,
    matmul_operands,
    softmax_run,
    tiny_cases,
)

NAME = "MikaGrad"


def version() -> str:
    return mg.__version__


def _t(a: np.ndarray, dtype: Any = np.float32, grad: bool = False) -> mg.Value:
    return mg.tensor(np.ascontiguousarray(a, dtype=dtype), requires_grad=grad)


def tiny() -> dict[str, tuple[str, dict[str, Any]]]:
    return tiny_cases(_t)


def chain(n_ops: int, shape: tuple[int, ...]) -> Callable[[], Any]:
    return chain_run(_t, n_ops, shape)


def chain_parts(n_ops: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return chain_split(_t, n_ops)


def _model(weights: list, style: str) -> nn.Module:
    """``MLP`` (micrograd's vocabulary, w shaped (in, out)) or ``Sequential`` of ``Linear``."""
    sizes = [weights[0][0].shape[0]] + [w.shape[1] for w, _ in weights]
    mg.set_default_dtype(mg.float32)
    try:
        if style == "mlp":
            model = nn.MLP(sizes[0], sizes[1:])
            pairs = [(layer.w, layer.b) for layer in model.layers]
            for (w, b), (pw, pb) in zip(weights, pairs):
                pw.data[...] = w
                pb.data[...] = b
            return model
        mods: list[nn.Module] = []
        for i, (w, b) in enumerate(weights):
            lin = nn.Linear(w.shape[0], w.shape[1])
            lin.weight.data[...] = w.T
            lin.bias.data[...] = b
            mods += [lin] if i == len(weights) - 1 else [lin, nn.ReLU()]
        return nn.Sequential(*mods)
    finally:
        mg.set_default_dtype(mg.float64)


def mlp_parts(weights: list, x: np.ndarray, y: np.ndarray, loss: str) -> tuple:
    """(forward giving the loss, zero_grad, backward(loss), optimizer step, state), float32.

    ``loss='hinge'``: the moons step (micrograd's ``MLP`` class, hinge loss + L2 on every
    parameter); ``loss='ce'``: ``Sequential`` of ``Linear``/``ReLU`` and cross-entropy.
    ``state()`` gives the parameters as (W (in, out), b) arrays, for ``bench.check``.
    """
    model = _model(weights, "mlp" if loss == "hinge" else "seq")
    params = model.parameters()
    opt = optim.SGD(params, lr=LR)
    xs = _t(x)
    if loss == "hinge":
        ys = _t(y)

        def forward() -> mg.Value:
            return F.hinge_loss(model(xs), ys) + L2 * sum((p * p).sum() for p in params)

        def state() -> list[np.ndarray]:
            return [a for layer in model.layers for a in (layer.w.numpy(), layer.b.numpy())]
    else:
        labels = np.asarray(y, np.int64)

        def forward() -> mg.Value:
            return F.cross_entropy(model(xs), labels)

        def state() -> list[np.ndarray]:
            lins = [m for m in model if isinstance(m, nn.Linear)]
            return [a for m in lins for a in (m.weight.numpy().T, m.bias.numpy())]
    return forward, opt.zero_grad, mg.Value.backward, opt.step, state


def mlp_step(weights: list, x: np.ndarray, y: np.ndarray, loss: str,
             ) -> tuple[Callable[[], None], Callable[[], list[np.ndarray]]]:
    """One SGD step: forward, loss, zero_grad, backward, update."""
    forward, zero_grad, backward, update, state = mlp_parts(weights, x, y, loss)

    def step() -> None:
        out = forward()
        zero_grad()
        backward(out)
        update()
    return step, state


def linear(batch: int, n_in: int, n_out: int) -> Callable[[], None]:
    """``Linear`` forward + backward (input requires grad too), float32."""
    mg.set_default_dtype(mg.float32)
    layer = nn.Linear(n_in, n_out)
    mg.set_default_dtype(mg.float64)
    x = _t(np.random.default_rng(0).standard_normal((batch, n_in)), grad=True)
    params = [x, *layer.parameters()]

    def run() -> None:
        for p in params:
            p.grad = None
        layer(x).sum().backward()
    return run


def cross_entropy(n: int, c: int) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    z = _t(rng.standard_normal((n, c)), grad=True)
    labels = rng.integers(0, c, n).astype(np.int64)

    def run() -> None:
        z.grad = None
        F.cross_entropy(z, labels).backward()
    return run


def softmax(n: int, c: int) -> Callable[[], None]:
    return softmax_run(_t, n, c)


def matmul(n: int, dtype: str, form: str) -> Callable[[], Any]:
    a, b = (_t(m, dtype) for m in matmul_operands(n, dtype, form))
    expr = matmul_expr(form)

    def run() -> Any:
        with mg.no_grad():
            return expr(a, b)
    return run


def index() -> dict[str, Callable[[], Any]]:
    return index_cases(mg, _t)


def lectures() -> dict[str, Callable[[], Any]]:
    return lecture_cases(mg, _t)


def threads() -> int:
    return mg.get_num_threads()


def cnn(x: np.ndarray, y: np.ndarray, state: dict[str, np.ndarray]) -> Callable[[], Any]:
    """The digits CNN step (float32 ``Sequential`` loaded with ``state``); returns the loss."""
    mg.set_default_dtype(mg.float32)
    try:
        model = cnn_model(nn)
    finally:
        mg.set_default_dtype(mg.float64)
    model.load_state_dict(state)
    return cnn_step(mg, _t, model, x, y)


def convnets() -> dict[str, Callable[[], Any]]:
    x, y, _ = digits(64)
    return convnet_cases(mg, _t, cnn(x, y, init_cnn()))


def higher() -> dict[str, Callable[[], Any]]:
    return higher_order_cases(mg, _t)


def math() -> dict[str, Callable[[], Any]]:
    return math_cases(mg, _t)
