"""A user script that mypy checks against MikaGrad's hints and ``_core.pyi`` (see pyproject).

It is also runnable (``python tests/typing_sample.py``); ``tests/test_packaging.py`` runs it, so
the sample cannot drift from what the package does. The ``assert_type`` lines are checked by
mypy and are no-ops at run time.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import _core, data, nn, optim
from mikagrad.engine import Value

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:
    def assert_type(value: Any, _type: Any) -> Any:
        return value


def train_moons(steps: int = 5, seed: int = 0) -> list[float]:
    mg.manual_seed(seed)
    X, y = data.make_moons(64, noise=0.1, random_state=seed)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    losses: list[float] = []
    for _ in range(steps):
        for xb, yb in data.DataLoader(X, y, batch_size=32, shuffle=True, seed=seed):
            loss: Value = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    return losses


def values() -> None:
    a = mg.Value(np.arange(6.0).reshape(2, 3))
    b = mg.tensor([1.0, 2.0, 3.0], dtype=mg.float32)
    c = (a * b.double() + 1).relu().sum(dim=1, keepdim=True)
    assert_type(c, Value)
    c.backward()
    grad = a.grad
    assert grad is not None
    arr: npt.NDArray[np.floating] = a.numpy()
    shape: tuple[int, ...] = a.shape
    assert arr.shape == shape
    with mg.no_grad():
        d = a * 2
    assert not d.requires_grad
    x = mg.randn(3, 4, requires_grad=True)
    y = mg.cat([x, mg.zeros(1, 4)], dim=0)
    z = mg.where(y > 0, y, 0.0).mean()
    z.backward()
    assert x.grad is not None and x.grad.shape == (3, 4)
    try:
        mg.Value([1.0, 2.0]) + mg.Value([1.0, 2.0, 3.0])
    except mg.ShapeError as e:
        msg: str = str(e)
        assert "add" in msg


def core_version() -> str:
    v: str = mg.__version__
    assert v == _core.__version__
    n: int = _core.live_nodes()
    assert n >= 0
    return v


if __name__ == "__main__":
    losses = train_moons()
    values()
    print(f"mikagrad {core_version()}: losses {[round(v, 4) for v in losses]}")
    sys.exit(0 if losses[-1] < losses[0] else 1)
