"""The seed README's training loop, run verbatim, lowers the loss."""

import numpy as np

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.nn import MLP, Layer, Module


def seed_everything(seed):
    np.random.seed(seed)  # the original MikaGrad initialised weights with np.random
    mg.manual_seed(seed)


def train(model, loss_fn, steps, lr):
    losses = []
    for _ in range(steps):
        loss = loss_fn(model)
        losses.append(loss.item())

        # backward pass
        model.zero_grad()
        loss.backward()

        # parameter update
        for param in model.parameters():
            param.data -= lr * param.grad
    losses.append(loss_fn(model).item())
    return losses


def test_regression_loss_decreases():
    seed_everything(0)
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(64, 2))
    Y = (0.5 * X[:, :1] - X[:, 1:] ** 2 + 0.3).astype(np.float64)
    x, y = mg.tensor(X), mg.tensor(Y)
    model = MLP(2, [16, 16, 1])
    losses = train(model, lambda m: ((m(x) - y) ** 2).mean(), steps=400, lr=0.1)
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_classification_with_hinge_loss():
    seed_everything(1)
    rng = np.random.default_rng(1)
    n = 50
    X = np.concatenate([rng.normal(-1.0, 0.6, (n, 2)), rng.normal(1.0, 0.6, (n, 2))])
    labels = np.concatenate([-np.ones(n), np.ones(n)])
    x = mg.tensor(X)
    model = MLP(2, [8, 1])

    def loss_fn(m):
        return F.hinge_loss(m(x).reshape(-1), labels)

    losses = train(model, loss_fn, steps=150, lr=0.1)
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    accuracy = np.mean((model(x).data.reshape(-1) > 0) == (labels > 0))
    assert accuracy > 0.9


def test_module_api():
    seed_everything(2)
    layer = Layer(3, 4, nonlin=False)
    assert isinstance(layer, Module)
    out = layer(mg.tensor(np.ones((5, 3))))
    assert out.shape == (5, 4)
    model = MLP(3, [4, 2])
    params = model.parameters()
    assert len(params) == 4 and all(p.requires_grad for p in params)
    assert sum(p.size for p in params) == 3 * 4 + 4 + 4 * 2 + 2
    model(mg.tensor(np.ones((5, 3)))).sum().backward()
    assert all(p.grad is not None for p in params)
    model.zero_grad()
    assert all(p.grad is None or np.all(p.grad == 0) for p in params)
