"""PyTorch's side of every case (CPU, 2 threads), written as a PyTorch user would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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

NAME = "PyTorch"
torch.set_num_threads(2)


def version() -> str:
    return torch.__version__


def _t(a: np.ndarray, dtype: Any = torch.float32, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)


def tiny() -> dict[str, tuple[str, dict[str, Any]]]:
    return tiny_cases(_t)


def chain(n_ops: int, shape: tuple[int, ...]) -> Callable[[], Any]:
    return chain_run(_t, n_ops, shape)


def chain_parts(n_ops: int) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    return chain_split(_t, n_ops)


def _model(weights: list) -> torch.nn.Sequential:
    mods: list[torch.nn.Module] = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        mods += [lin] if i == len(weights) - 1 else [lin, torch.nn.ReLU()]
    return torch.nn.Sequential(*mods)


def mlp_parts(weights: list, x: np.ndarray, y: np.ndarray, loss: str) -> tuple:
    """(forward giving the loss, zero_grad, backward(loss), optimizer step, state)."""
    model = _model(weights)
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    xs = _t(x)
    if loss == "hinge":
        ys = _t(y)

        def forward() -> torch.Tensor:
            return torch.relu(1 - ys * model(xs)).mean() + L2 * sum((p * p).sum() for p in params)
    else:
        labels = torch.from_numpy(np.asarray(y, np.int64))

        def forward() -> torch.Tensor:
            return F.cross_entropy(model(xs), labels)

    def state() -> list[np.ndarray]:
        lins = [m for m in model if isinstance(m, torch.nn.Linear)]
        return [a for m in lins for a in (m.weight.detach().numpy().T, m.bias.detach().numpy())]
    return forward, opt.zero_grad, torch.Tensor.backward, opt.step, state


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
    layer = torch.nn.Linear(n_in, n_out)
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
    labels = torch.from_numpy(rng.integers(0, c, n).astype(np.int64))

    def run() -> None:
        z.grad = None
        F.cross_entropy(z, labels).backward()
    return run


def softmax(n: int, c: int) -> Callable[[], None]:
    return softmax_run(_t, n, c)


def matmul(n: int, dtype: str, form: str) -> Callable[[], Any]:
    a, b = (torch.from_numpy(m) for m in matmul_operands(n, dtype, form))
    expr = matmul_expr(form)

    def run() -> Any:
        with torch.no_grad():
            return expr(a, b)
    return run


def index() -> dict[str, Callable[[], Any]]:
    return index_cases(torch, _t)


def lectures() -> dict[str, Callable[[], Any]]:
    return lecture_cases(torch, _t)


def threads() -> int:
    return torch.get_num_threads()


def set_threads(n: int) -> None:
    torch.set_num_threads(n)


def cnn(x: np.ndarray, y: np.ndarray, state: dict[str, np.ndarray]) -> Callable[[], Any]:
    """The digits CNN step (``torch.nn.Sequential`` loaded with ``state``); returns the loss."""
    model = cnn_model(torch.nn)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return cnn_step(torch, _t, model, x, y)


def convnets() -> dict[str, Callable[[], Any]]:
    x, y, _ = digits(64)
    return convnet_cases(torch, _t, cnn(x, y, init_cnn()))


def higher() -> dict[str, Callable[[], Any]]:
    return higher_order_cases(torch, _t)


def math() -> dict[str, Callable[[], Any]]:
    return math_cases(torch, _t)
