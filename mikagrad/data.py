"""Toy datasets, ``train_test_split`` and a ``DataLoader`` that yields Values.

Data preparation is not gradient computation, so it works on numpy arrays. The dataset
makers follow scikit-learn's algorithms: with the same integer ``random_state``,
``make_moons``, ``make_blobs`` and ``train_test_split`` give scikit-learn's exact arrays.
``random_state=None`` (and an unseeded ``DataLoader``) draw from the engine's generator,
so ``mikagrad.manual_seed`` makes them reproducible.

>>> X, y = make_moons(100, noise=0.1, random_state=0)
>>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
>>> loader = DataLoader(X_train, y_train, batch_size=32, shuffle=True, seed=0)
>>> len(loader), [tuple(xb.shape) for xb, yb in loader]
(3, [(32, 2), (32, 2), (11, 2)])
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .creation import rand, randperm
from .engine import Value, float64

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    # Only for annotations: importing numpy.random costs `import mikagrad` 13 ms.
    Rng = np.random.RandomState | np.random.Generator

__all__ = ["DataLoader", "make_blobs", "make_moons", "make_spirals", "train_test_split"]


def _integral(x: object) -> TypeIs[int]:
    """``isinstance(x, numbers.Integral)``, spelled so that type checkers narrow ``x``."""
    return isinstance(x, numbers.Integral)


def _real(x: object) -> TypeIs[float]:
    """``isinstance(x, numbers.Real)``, spelled so that type checkers narrow ``x``."""
    return isinstance(x, numbers.Real)


def _rng(random_state: Any) -> Rng:
    """Like scikit-learn's ``check_random_state``, but None draws a seed from the engine."""
    if random_state is None:
        return np.random.RandomState(int(rand(1, dtype=float64).item() * 2**32))
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    if _integral(random_state) and not isinstance(random_state, bool):
        return np.random.RandomState(int(random_state))
    raise TypeError(
        "random_state must be None, an int, a np.random.RandomState or a np.random.Generator, "
        f"got {random_state!r}"
    )


def _count(name: str, n: Any) -> int:
    if not _integral(n) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return int(n)


def _split_counts(n_samples: int, k: int) -> list[int]:
    """``n_samples`` shared among ``k`` groups, the first ``n_samples % k`` getting one more."""
    return [n_samples // k + (i < n_samples % k) for i in range(k)]


def _shuffle_and_noise(X: np.ndarray, y: np.ndarray, shuffle: bool, noise: float | None,
                       rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's order of draws: first the shuffle, then the noise."""
    if shuffle:
        order = np.arange(len(X))
        rng.shuffle(order)
        X, y = X[order], y[order]
    if noise is not None:
        if noise < 0:
            raise ValueError(f"noise must be non-negative, got {noise!r}")
        X = X + rng.normal(scale=noise, size=X.shape)
    return X, y


def make_moons(n_samples: int | tuple[int, int] = 100, noise: float | None = None,
               random_state: Any = None, *,
               shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, micrograd's demo data, as in scikit-learn.

    ``n_samples`` is a total (the outer moon gets ``n // 2``) or an ``(outer, inner)`` pair.
    Returns X, float64 of shape (n, 2), and y, int64 labels 0 (outer) and 1 (inner).

    >>> X, y = make_moons(100, noise=0.1, random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((100, 2), [50, 50])
    """
    if _integral(n_samples):
        n_out = _count("n_samples", n_samples) // 2
        n_in = int(n_samples) - n_out
    else:
        try:
            n_out, n_in = (_count("n_samples", n) for n in n_samples)
        except (TypeError, ValueError):
            raise ValueError(
                f"n_samples must be an int or a pair of ints, got {n_samples!r}"
            ) from None
    rng = _rng(random_state)
    t_out, t_in = np.linspace(0, np.pi, n_out), np.linspace(0, np.pi, n_in)
    X = np.vstack([
        np.append(np.cos(t_out), 1 - np.cos(t_in)),
        np.append(np.sin(t_out), 1 - np.sin(t_in) - 0.5),
    ]).T
    y = np.hstack([np.zeros(n_out, dtype=np.int64), np.ones(n_in, dtype=np.int64)])
    return _shuffle_and_noise(X, y, shuffle, noise, rng)


def make_blobs(n_samples: int | Sequence[int] = 100, centers: Any = None, n_features: int = 2,
               cluster_std: float | Sequence[float] = 1.0,
               center_box: tuple[float, float] = (-10.0, 10.0), shuffle: bool = True,
               random_state: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, as in scikit-learn: ``centers`` is a count (3 by default; drawn
    uniformly in ``center_box``) or an array of shape (n_centers, n_features), and
    ``n_samples`` a total shared evenly or one count per center.

    >>> X, y = make_blobs([2, 3], centers=[[0.0, 0.0], [5.0, 5.0]], random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((5, 2), [2, 3])
    """
    rng = _rng(random_state)
    per_center = None if _integral(n_samples) else list(n_samples)
    if centers is None:
        centers = 3 if per_center is None else len(per_center)
    if _integral(centers):
        n_features = _count("n_features", n_features)
        centers = rng.uniform(center_box[0], center_box[1], size=(int(centers), n_features))
    else:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2:
            raise ValueError(f"centers must be an int or a 2-d array, got shape {centers.shape}")
    k = len(centers)
    if per_center is None:
        per_center = _split_counts(_count("n_samples", n_samples), k)
    elif len(per_center) != k:
        raise ValueError(f"n_samples gives {len(per_center)} counts but there are {k} centers")
    stds = np.asarray(cluster_std, dtype=np.float64)
    if stds.ndim == 0:
        stds = np.full(k, float(stds))
    elif stds.shape != (k,):
        raise ValueError(f"cluster_std has {len(stds)} values but there are {k} centers")
    X = np.concatenate([
        rng.normal(loc=c, scale=s, size=(_count("n_samples", n), centers.shape[1]))
        for c, s, n in zip(centers, stds, per_center)
    ]) if k else np.empty((0, centers.shape[1]))
    y = np.repeat(np.arange(k, dtype=np.int64), per_center)
    return _shuffle_and_noise(X, y, shuffle, None, rng)


def make_spirals(n_samples: int = 100, n_classes: int = 2, noise: float | None = None,
                 random_state: Any = None, *,
                 shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` interleaved spiral arms, as in CS231n's classic toy problem.

    Arm ``k`` runs from the origin to radius 1 through one full turn, rotated by
    ``2 pi k / n_classes``; ``noise`` is the std of Gaussian noise added to each coordinate.
    Returns X, float64 (n, 2), and y, int64 labels in ``range(n_classes)``.

    >>> X, y = make_spirals(90, n_classes=3, random_state=0)
    >>> X.shape, np.bincount(y).tolist(), float(np.linalg.norm(X, axis=1).max())
    ((90, 2), [30, 30, 30], 1.0)
    """
    n = _count("n_samples", n_samples)
    if not _integral(n_classes) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive int, got {n_classes!r}")
    rng = _rng(random_state)
    counts = _split_counts(n, int(n_classes))
    r = np.concatenate([np.linspace(0.0, 1.0, c) for c in counts])
    y = np.repeat(np.arange(n_classes, dtype=np.int64), counts)
    theta = 2 * np.pi * (r + y / n_classes)
    X = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return _shuffle_and_noise(X, y, shuffle, noise, rng)


def _sizes(n: int, test_size: Any, train_size: Any) -> tuple[int, int]:
    """scikit-learn's rules: a float is a fraction (test rounds up), an int a count."""
    def parse(name: str, size: Any) -> float | int | None:
        if size is None:
            return None
        if _integral(size) and not isinstance(size, bool):
            if not 0 < size < n:
                raise ValueError(f"{name}={size} must be in [1, {n - 1}] for {n} samples")
            return int(size)
        if _real(size) and not isinstance(size, bool):
            if not 0 < size < 1:
                raise ValueError(f"{name}={size} must be a fraction in (0, 1)")
            return float(size)
        raise ValueError(f"{name} must be an int, a float or None, got {size!r}")

    test, train = parse("test_size", test_size), parse("train_size", train_size)
    if test is None and train is None:
        test = 0.25
    n_test = None if test is None else (math.ceil(test * n) if isinstance(test, float) else test)
    n_train = None if train is None else (
        math.floor(train * n) if isinstance(train, float) else train)
    if n_test is None:
        assert n_train is not None  # both None was made test = 0.25 above
        n_test = n - n_train
    n_train = n - n_test if n_train is None else n_train
    if n_train + n_test > n:
        raise ValueError(
            f"train_size + test_size = {n_train + n_test} exceeds the {n} samples"
        )
    if n_train == 0 or n_test == 0:
        raise ValueError(
            f"with {n} samples, test_size={test_size} and train_size={train_size} "
            "leave an empty train or test set"
        )
    return n_train, n_test


def _check_lengths(caller: str, arrays: list[np.ndarray]) -> int:
    if not arrays:
        raise ValueError(f"{caller}: at least one array is required")
    for i, a in enumerate(arrays):
        if a.ndim == 0:
            raise ValueError(f"{caller}: array {i} is 0-d; each array needs a sample axis")
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"{caller}: the arrays have different lengths {lengths}")
    return lengths[0]


def train_test_split(*arrays: Any, test_size: float | None = None,
                     train_size: float | None = None, random_state: Any = None,
                     shuffle: bool = True) -> list[np.ndarray]:
    """Splits each array along its first axis into train and test parts, as scikit-learn:
    returns ``[a_train, a_test, b_train, b_test, ...]``. ``test_size`` is 0.25 when neither
    size is given; with ``shuffle=False`` the test part is the tail.

    >>> a_train, a_test = train_test_split(np.arange(10), test_size=0.2, shuffle=False)
    >>> a_train.tolist(), a_test.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    arrays_np = [np.asarray(a) for a in arrays]
    n = _check_lengths("train_test_split", arrays_np)
    n_train, n_test = _sizes(n, test_size, train_size)
    if shuffle:
        perm = _rng(random_state).permutation(n)
        train, test = perm[n_test:n_test + n_train], perm[:n_test]
    else:
        train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    return [part for a in arrays_np for part in (a[train], a[test])]


class DataLoader:
    """Batches of ``arrays`` (numpy arrays, lists or Values sharing a first axis) as tuples
    of Values that do not require grad.

    Every array keeps its dtype: float features stay float, integer labels stay int64 (or
    int32), which ``cross_entropy`` takes as class indices, as in torch.
    With ``shuffle``, each pass draws a new order: from ``np.random.default_rng(seed)``,
    advanced once per epoch, when ``seed`` is given, else from the engine's generator
    (``mikagrad.manual_seed``).

    >>> loader = DataLoader(np.arange(10.0), batch_size=4, drop_last=True)
    >>> len(loader), [b.tolist() for (b,) in loader]
    (2, [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]])
    """

    def __init__(self, *arrays: Any, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None) -> None:
        self.arrays = [np.asarray(a) for a in arrays]
        self.num_samples = _check_lengths("DataLoader", self.arrays)
        for i, a in enumerate(self.arrays):
            if a.dtype.kind not in "biuf":
                raise TypeError(f"DataLoader: array {i} has dtype {a.dtype}; it needs numbers")
        if not _integral(batch_size) or isinstance(batch_size, bool) \
                or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and not _integral(seed):
            raise TypeError(f"DataLoader: seed must be an int or None, got {seed!r}")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return (self.num_samples + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[Value, ...]]:
        order = self._order()  # drawn now, so each pass advances the generator once
        return self._batches(order)

    def _order(self) -> np.ndarray | None:
        if not self.shuffle:
            return None
        if self._rng is not None:
            return self._rng.permutation(self.num_samples)
        return np.asarray(randperm(self.num_samples), dtype=np.intp)

    def _batches(self, order: np.ndarray | None) -> Iterator[tuple[Value, ...]]:
        bs = self.batch_size
        for start in range(0, len(self) * bs, bs):
            idx = np.arange(start, min(start + bs, self.num_samples)) if order is None \
                else order[start:start + bs]
            # Integer indexing copies, so a batch never aliases the dataset.
            yield tuple(Value(a[idx], requires_grad=False) for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self.arrays)
        return (f"DataLoader({shapes}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed})")
