"""The main demo: train on real data (scikit-learn's digits) with an MLP and with a CNN,
then micrograd's moons.

    python -m mikagrad.demo [--epochs 30] [--cnn-epochs 15] [--plot] [--torch]

digits: 1,797 8x8 handwritten digits that ship inside scikit-learn (no download).
``python -m mikagrad.demo_cnn`` runs the CNNs alone, with a 28x28 case.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

import mikagrad as mg
from mikagrad import nn, optim
from mikagrad.data import DataLoader, make_moons, train_test_split


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, ...]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit(
            "the digits demo needs scikit-learn: pip install 'mikagrad[demo]'"
        ) from None
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-3
    return (xtr - mean) / std, (xte - mean) / std, ytr, yte


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with mg.no_grad():
        pred = np.asarray(model(mg.tensor(x))).argmax(1)
    return float((pred == y).mean())


def train_digits(epochs: int, seed: int = 0) -> tuple[nn.Module, list[float], float]:
    mg.manual_seed(seed)
    mg.set_default_dtype(mg.float32)
    xtr, xte, ytr, yte = load_digits_split(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    opt = optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(xtr, ytr, batch_size=64, shuffle=True, seed=seed)
    print(f"digits: {len(xtr)} train / {len(xte)} test images, model {model.num_parameters():,} "
          f"parameters, {epochs} epochs")
    losses, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0, total, n = time.perf_counter(), 0.0, 0
        model.train()
        for xb, yb in loader:
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
            n += len(xb)
        dt = time.perf_counter() - t0
        model.eval()
        losses.append(total / n)
        print(f"  epoch {epoch:3d}  loss {total / n:.4f}  train acc {accuracy(model, xtr, ytr):.3f}"
              f"  test acc {accuracy(model, xte, yte):.3f}  {dt * 1e3:6.1f} ms")
    elapsed = time.perf_counter() - start
    test_acc = accuracy(model, xte, yte)
    print(f"digits: test accuracy {test_acc:.3f} after {elapsed:.2f} s "
          f"({elapsed / epochs * 1e3:.1f} ms per epoch, evaluation included)")
    mg.set_default_dtype(mg.float64)
    return model, losses, test_acc


def train_moons(steps: int = 200, seed: int = 1) -> tuple[nn.Module, np.ndarray, np.ndarray, float]:
    mg.manual_seed(seed)
    x, y = make_moons(n_samples=100, noise=0.1, random_state=seed)
    y = y * 2.0 - 1.0  # labels in {-1, +1} for the hinge loss
    model = nn.MLP(2, [16, 16, 1])
    xs, ys = mg.tensor(x), mg.tensor(y.reshape(-1, 1))
    start = time.perf_counter()
    for k in range(steps):
        scores = model(xs)
        loss = mg.functional.hinge_loss(scores, ys) + 1e-4 * sum(
            (p * p).sum() for p in model.parameters())
        model.zero_grad()
        loss.backward()
        lr = 1.0 - 0.9 * k / steps  # micrograd's decaying rate
        for p in model.parameters():
            if p.grad is not None:
                p.data -= lr * p.grad
    elapsed = time.perf_counter() - start
    with mg.no_grad():
        acc = float(((np.asarray(model(xs)) > 0) == (y.reshape(-1, 1) > 0)).mean())
    print(f"moons: MLP(2, [16, 16, 1]), {steps} steps of SGD on hinge loss: train accuracy "
          f"{acc:.2f}, {elapsed / steps * 1e6:.0f} µs per step")
    return model, x, y, acc


def torch_digits_epoch_time() -> float | None:
    """The same model and loop in PyTorch, for a side-by-side time per epoch."""
    from .demo_cnn import torch_epoch_time

    def mlp(tnn: Any) -> Any:
        return tnn.Sequential(tnn.Linear(64, 128), tnn.ReLU(), tnn.Linear(128, 64), tnn.ReLU(),
                              tnn.Linear(64, 10))
    return torch_epoch_time(mlp, load_digits_split(), 2e-3, epochs=3)


def plot(losses: list[float], moons: tuple) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(5, 3.5))
    plt.plot(range(1, len(losses) + 1), losses)
    plt.xlabel("epoch")
    plt.ylabel("training loss")
    plt.title("digits")
    plt.tight_layout()
    plt.savefig("digits_loss.png", dpi=120)
    model, x, y, _ = moons
    xx, yy = np.meshgrid(np.linspace(-1.6, 2.6, 200), np.linspace(-1.1, 1.6, 200))
    with mg.no_grad():
        z = np.asarray(model(mg.tensor(np.c_[xx.ravel(), yy.ravel()]))).reshape(xx.shape)
    plt.figure(figsize=(5, 3.5))
    plt.contourf(xx, yy, z > 0, cmap=plt.cm.Spectral, alpha=0.6)
    plt.scatter(x[:, 0], x[:, 1], c=y, s=20, cmap=plt.cm.Spectral, edgecolors="k")
    plt.title("moons decision boundary")
    plt.tight_layout()
    plt.savefig("moons_boundary.png", dpi=120)
    print("saved digits_loss.png and moons_boundary.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--cnn-epochs", type=int, default=15, help="epochs of the CNN (0: skip)")
    ap.add_argument("--plot", action="store_true", help="save the loss curve and moons boundary")
    ap.add_argument("--torch", action="store_true", help="time the same digits model in PyTorch")
    args = ap.parse_args(argv)
    _, losses, test_acc = train_digits(args.epochs)
    cnn_ok = True
    if args.cnn_epochs:
        from . import demo_cnn

        cnn_ok = demo_cnn.main(["--epochs", str(args.cnn_epochs), "--big-epochs", "0"]
                               + (["--torch"] if args.torch else [])) == 0
    moons = train_moons()
    if args.torch:
        t = torch_digits_epoch_time()
        print("PyTorch not installed" if t is None else
              f"PyTorch, same model and loop: {t * 1e3:.1f} ms per epoch (training only)")
    if args.plot:
        plot(losses, moons)
    return 0 if test_acc >= 0.97 and cnn_ok and moons[3] == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
