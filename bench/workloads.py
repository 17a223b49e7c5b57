"""The data and the initial weights that every framework is given, as numpy arrays.

Weights are a list of ``(W, b)`` per layer with ``W`` shaped (in, out) (micrograd's and the
original MikaGrad's layout); each framework converts them to its own layout, so all start
from the same numbers and ``bench.check`` can compare one step exactly.
"""

from __future__ import annotations

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
