"""A convolutional network on real data: scikit-learn's 8x8 digits, then the same digits
upsampled to 28x28 (MNIST's size) for a bigger-image case.

    python -m mikagrad.demo_cnn [--epochs 15] [--big-epochs 4] [--torch]

``--torch`` trains the same model with the same loop in PyTorch (its own initial weights), for a
side-by-side time.
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

import numpy as np

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import nn, optim
from mikagrad.data import DataLoader, train_test_split


def digits_images(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Digits as (N, 1, 8, 8) float32 images, standardized, split 80/20 as the MLP demo."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("the CNN demo needs scikit-learn: pip install 'mikagrad[demo]'") from None
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed)
    mean, std = xtr.mean(), xtr.std()
    return (xtr - mean) / std, (xte - mean) / std, ytr, yte


def lenet(torch_nn: Any = nn) -> Any:
    """A LeNet-style CNN for 8x8 inputs; ``torch_nn`` may be ``torch.nn`` (same layers)."""
    return torch_nn.Sequential(
        torch_nn.Conv2d(1, 16, 3, padding=1), torch_nn.BatchNorm2d(16), torch_nn.ReLU(),
        torch_nn.Conv2d(16, 32, 3, padding=1), torch_nn.BatchNorm2d(32), torch_nn.ReLU(),
        torch_nn.MaxPool2d(2),                                    # 8x8 -> 4x4
        torch_nn.Conv2d(32, 64, 3, padding=1), torch_nn.ReLU(),
        torch_nn.MaxPool2d(2),                                    # 4x4 -> 2x2
        torch_nn.Flatten(), torch_nn.Dropout(0.25),
        torch_nn.Linear(64 * 2 * 2, 64), torch_nn.ReLU(), torch_nn.Linear(64, 10))


def mnist_sized(torch_nn: Any = nn) -> Any:
    """A small CNN for 28x28 inputs."""
    return torch_nn.Sequential(
        torch_nn.Conv2d(1, 8, 3, padding=1), torch_nn.ReLU(), torch_nn.MaxPool2d(2),   # 14x14
        torch_nn.Conv2d(8, 16, 3, padding=1), torch_nn.ReLU(), torch_nn.MaxPool2d(2),  # 7x7
        torch_nn.Flatten(), torch_nn.Linear(16 * 7 * 7, 10))


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with mg.no_grad():
        pred = np.concatenate([np.asarray(model(mg.tensor(x[i:i + 256]))).argmax(1)
                               for i in range(0, len(x), 256)])
    model.train()
    return float((pred == y).mean())


def fit(name: str, model: nn.Module, data: tuple[np.ndarray, ...], epochs: int, lr: float,
        seed: int = 0) -> tuple[float, float]:
    """Adam on cross-entropy, batch 64, the rate annealed to 0 on a cosine (which makes the
    last epochs settle); prints each epoch; returns (test accuracy, seconds)."""
    xtr, xte, ytr, yte = data
    opt = optim.Adam(model.parameters(), lr=lr)
    schedule = optim.CosineAnnealingLR(opt, epochs)
    loader = DataLoader(xtr, ytr, batch_size=64, shuffle=True, seed=seed)
    print(f"{name}: {len(xtr)} train / {len(xte)} test images of {xtr.shape[2]}x{xtr.shape[3]}, "
          f"{model.num_parameters():,} parameters, {epochs} epochs")
    train_time = 0.0
    for epoch in range(1, epochs + 1):
        t0, total, n = time.perf_counter(), 0.0, 0
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
            n += len(xb)
        schedule.step()
        dt = time.perf_counter() - t0
        train_time += dt
        print(f"  epoch {epoch:3d}  loss {total / n:.4f}  test acc {accuracy(model, xte, yte):.3f}"
              f"  {dt:5.2f} s")
    acc = accuracy(model, xte, yte)
    print(f"{name}: test accuracy {acc:.3f}, training {train_time:.2f} s "
          f"({train_time / epochs * 1e3:.0f} ms per epoch)")
    return acc, train_time


def upsampled(data: tuple[np.ndarray, ...], seed: int = 0) -> tuple[np.ndarray, ...]:
    """The digits resized to 28x28 (bilinear), the training set doubled with 2-pixel shifts."""
    xtr, xte, ytr, yte = data

    def up(x: np.ndarray) -> np.ndarray:
        with mg.no_grad():
            return F.interpolate(mg.tensor(x), size=(28, 28), mode="bilinear",
                                 align_corners=False).numpy()

    rng = np.random.default_rng(seed)
    big = up(xtr)
    shifts = rng.integers(-2, 3, size=(len(big), 2))
    moved = np.stack([np.roll(im, tuple(s), axis=(1, 2)) for im, s in zip(big, shifts)])
    return (np.concatenate([big, moved]), up(xte), np.concatenate([ytr, ytr]), yte)


def torch_epoch_time(make: Any, data: tuple[np.ndarray, ...], lr: float,
                     epochs: int = 2) -> float | None:
    """Median seconds per training epoch of the same model and loop in PyTorch."""
    try:
        torch: Any = importlib.import_module("torch")
    except ImportError:
        return None
    torch.set_num_threads(mg.get_num_threads())
    model = make(torch.nn)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xtr, _, ytr, _ = data
    xt, yt = torch.tensor(xtr), torch.tensor(ytr)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for i in range(0, len(xt), 64):
            loss = torch.nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--big-epochs", type=int, default=4, help="epochs of the 28x28 case (0: skip)")
    ap.add_argument("--torch", action="store_true", help="time the same models in PyTorch")
    args = ap.parse_args(argv)
    mg.manual_seed(0)
    mg.set_default_dtype(mg.float32)
    try:
        data = digits_images()
        acc, secs = fit("digits CNN", lenet(), data, args.epochs, lr=2e-3)
        ok = acc >= 0.985
        if args.torch:
            t = torch_epoch_time(lenet, data, 2e-3)
            print("PyTorch not installed" if t is None else
                  f"PyTorch, same model and loop: {t * 1e3:.0f} ms per epoch "
                  f"(MikaGrad {secs / args.epochs * 1e3:.0f} ms)")
        if args.big_epochs:
            big = upsampled(data)
            big_acc, big_secs = fit("28x28 digits CNN", mnist_sized(), big, args.big_epochs,
                                    lr=2e-3)
            ok = ok and big_acc >= 0.95
            if args.torch:
                t = torch_epoch_time(mnist_sized, big, 2e-3)
                if t is not None:
                    print(f"PyTorch, same model and loop: {t * 1e3:.0f} ms per epoch "
                          f"(MikaGrad {big_secs / args.big_epochs * 1e3:.0f} ms)")
    finally:
        mg.set_default_dtype(mg.float64)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
