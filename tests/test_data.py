"""mikagrad.data: the toy datasets, train_test_split and DataLoader."""

import numpy as np
import pytest

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import data
from mikagrad.data import DataLoader, make_blobs, make_moons, make_spirals, train_test_split
from mikagrad.engine import Value

# ---- make_moons ---------------------------------------------------------------------------


def test_make_moons_shapes_labels_and_geometry():
    X, y = make_moons(101, shuffle=False)
    assert X.shape == (101, 2) and X.dtype == np.float64
    assert y.shape == (101,) and y.dtype == np.int64
    assert (y == 0).sum() == 50 and (y == 1).sum() == 51
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*outer.T), 1.0)  # the outer moon is the unit circle
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1.0)
    np.testing.assert_array_equal(outer[[0, -1]], [[1, 0], [-1, np.sin(np.pi)]])


def test_make_moons_is_deterministic_for_a_seed():
    a = make_moons(50, noise=0.2, random_state=3)
    b = make_moons(50, noise=0.2, random_state=3)
    c = make_moons(50, noise=0.2, random_state=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_make_moons_without_a_seed_follows_manual_seed():
    mg.manual_seed(7)
    a = make_moons(30, noise=0.1)
    mg.manual_seed(7)
    b = make_moons(30, noise=0.1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], make_moons(30, noise=0.1)[0])


def test_make_moons_takes_a_pair_and_a_generator():
    X, y = make_moons((3, 5), random_state=np.random.default_rng(0))
    assert X.shape == (8, 2) and (y == 0).sum() == 3


@pytest.mark.parametrize("kwargs", [
    {"n_samples": -1}, {"n_samples": (1, 2, 3)}, {"noise": -0.1, "random_state": 0},
])
def test_make_moons_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_moons(**kwargs)


def test_bad_random_state():
    with pytest.raises(TypeError, match="random_state"):
        make_moons(10, random_state="seed")


@pytest.mark.parametrize("n, noise, shuffle, seed", [
    (100, None, False, 0), (100, 0.1, True, 0), (7, 0.3, True, 42), ((4, 9), 0.05, True, 1),
])
def test_make_moons_equals_scikit_learn(n, noise, shuffle, seed):
    sk = pytest.importorskip("sklearn.datasets")
    X, y = make_moons(n, noise=noise, random_state=seed, shuffle=shuffle)
    X_sk, y_sk = sk.make_moons(n, noise=noise, random_state=seed, shuffle=shuffle)
    np.testing.assert_array_equal(X, X_sk)
    np.testing.assert_array_equal(y, y_sk)


# ---- make_blobs and make_spirals ----------------------------------------------------------


def test_make_blobs_shapes_and_clusters():
    X, y = make_blobs(300, centers=[[0, 0, 0], [10, 10, 10]], cluster_std=0.5, random_state=0)
    assert X.shape == (300, 3) and X.dtype == np.float64 and y.dtype == np.int64
    assert sorted(np.bincount(y)) == [150, 150]
    np.testing.assert_allclose(X[y == 1].mean(0), [10, 10, 10], atol=0.2)
    np.testing.assert_allclose(X[y == 0].std(0), 0.5, rtol=0.2)


@pytest.mark.parametrize("kwargs", [
    {"n_samples": 100, "centers": 3, "random_state": 0},
    {"n_samples": 10, "centers": 3, "n_features": 4, "cluster_std": [0.5, 1.0, 2.0],
     "random_state": 5},
    {"n_samples": [3, 4, 5], "centers": None, "random_state": 0, "shuffle": False},
    {"n_samples": 50, "centers": [[1.0, 2.0], [-3.0, 0.5]], "random_state": 2},
])
def test_make_blobs_equals_scikit_learn(kwargs):
    sk = pytest.importorskip("sklearn.datasets")
    X, y = make_blobs(**kwargs)
    X_sk, y_sk = sk.make_blobs(**kwargs)
    np.testing.assert_array_equal(X, X_sk)
    np.testing.assert_array_equal(y, y_sk)


def test_make_blobs_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="cluster_std has 2 values but there are 3 centers"):
        make_blobs(10, centers=3, cluster_std=[1.0, 2.0], random_state=0)
    with pytest.raises(ValueError, match="2 counts but there are 3 centers"):
        make_blobs([5, 5], centers=[[0, 0], [1, 1], [2, 2]], random_state=0)


def test_make_spirals():
    X, y = make_spirals(301, n_classes=3, shuffle=False)
    assert X.shape == (301, 2) and y.dtype == np.int64
    assert list(np.bincount(y)) == [101, 100, 100]
    r = np.hypot(*X.T)
    assert r.max() == pytest.approx(1.0) and r.min() == pytest.approx(0.0)
    # Each arm turns once, starting at angle 2 pi k / 3.
    for k in range(3):
        end = X[y == k][-1]
        np.testing.assert_allclose(end, [np.cos(2 * np.pi * k / 3), np.sin(2 * np.pi * k / 3)],
                                   atol=1e-12)
    a = make_spirals(100, noise=0.1, random_state=0)
    b = make_spirals(100, noise=0.1, random_state=0)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], make_spirals(100, shuffle=False)[0])


def test_make_spirals_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        make_spirals(10, n_classes=0)


# ---- train_test_split ---------------------------------------------------------------------


def test_train_test_split_sizes_and_pairing():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
    assert X_tr.shape == (15, 2) and X_te.shape == (5, 2)  # test rounds up: ceil(0.25 * 20)
    np.testing.assert_array_equal(X_tr[:, 0] // 2, y_tr)  # rows stay paired
    np.testing.assert_array_equal(X_te[:, 0] // 2, y_te)
    assert sorted(np.concatenate([y_tr, y_te])) == list(range(20))


@pytest.mark.parametrize("kwargs, sizes", [
    ({"test_size": 0.3}, (7, 3)), ({"test_size": 4}, (6, 4)), ({"train_size": 0.5}, (5, 5)),
    ({"train_size": 3, "test_size": 2}, (3, 2)), ({"test_size": 0.01}, (9, 1)),
])
def test_train_test_split_size_rules(kwargs, sizes):
    tr, te = train_test_split(np.arange(10), random_state=0, **kwargs)
    assert (len(tr), len(te)) == sizes


def test_train_test_split_is_deterministic_and_can_keep_order():
    a = train_test_split(np.arange(50), random_state=1)
    b = train_test_split(np.arange(50), random_state=1)
    np.testing.assert_array_equal(a[0], b[0])
    tr, te = train_test_split(np.arange(10), test_size=0.2, shuffle=False)
    np.testing.assert_array_equal(tr, np.arange(8))
    np.testing.assert_array_equal(te, [8, 9])
    mg.manual_seed(3)
    c = train_test_split(np.arange(50))
    mg.manual_seed(3)
    np.testing.assert_array_equal(c[1], train_test_split(np.arange(50))[1])


@pytest.mark.parametrize("kwargs", [
    {"test_size": 0.25}, {"test_size": 3, "train_size": 5}, {"train_size": 0.6}, {},
])
def test_train_test_split_equals_scikit_learn(kwargs):
    ms = pytest.importorskip("sklearn.model_selection")
    X, y = make_moons(23, noise=0.1, random_state=0)
    ours = train_test_split(X, y, random_state=9, **kwargs)
    theirs = ms.train_test_split(X, y, random_state=9, **kwargs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"test_size": 0}, "test_size=0"), ({"test_size": 1.0}, "fraction"),
    ({"test_size": 10}, r"\[1, 9\]"), ({"test_size": 6, "train_size": 6}, "exceeds"),
    ({"test_size": "a"}, "test_size must be"),
])
def test_train_test_split_rejects_bad_sizes(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        train_test_split(np.arange(10), **kwargs)


def test_train_test_split_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"different lengths \[10, 9\]"):
        train_test_split(np.arange(10), np.arange(9))
    with pytest.raises(ValueError, match="at least one array"):
        train_test_split()


# ---- DataLoader ---------------------------------------------------------------------------


def test_dataloader_batches_in_order():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    loader = DataLoader(X, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [xb.shape for xb, _ in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(np.concatenate([xb.numpy() for xb, _ in batches]), X)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in batches]), y)


def test_dataloader_yields_values_without_grad_and_keeps_dtypes():
    X = np.ones((6, 3), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    xb, yb = next(iter(DataLoader(X, y, batch_size=6)))
    assert type(xb) is Value and type(yb) is Value
    assert not xb.requires_grad and not yb.requires_grad
    assert xb.dtype == np.float32
    assert yb.dtype == np.int64 and yb.tolist() == [0, 1, 2, 0, 1, 2]  # labels, as torch
    xb.data[:] = 5.0  # a batch is a copy: the dataset is untouched
    assert X[0, 0] == 1.0


def test_dataloader_labels_feed_cross_entropy():
    X, y = make_blobs(12, centers=3, random_state=0)
    W = mg.Value(np.random.default_rng(0).standard_normal((2, 3)))
    for xb, yb in DataLoader(X, y, batch_size=5):
        F.cross_entropy(xb @ W, yb).backward()
    assert W.grad is not None and np.all(np.isfinite(W.grad))


def test_dataloader_int_labels_are_class_indices():
    mg.set_default_dtype(mg.float32)
    X = np.zeros((4, 3), dtype=np.float32)
    xb, yb = next(iter(DataLoader(X, np.array([0, 2, 1, 2]), batch_size=4)))
    assert yb.dtype == np.int64
    loss = F.cross_entropy(xb, yb)
    assert loss.dtype == np.float32 and loss.item() == pytest.approx(np.log(3))


@pytest.mark.parametrize("n, bs, drop, expected", [
    (10, 4, False, 3), (10, 4, True, 2), (12, 4, False, 3), (12, 4, True, 3), (3, 5, False, 1),
    (3, 5, True, 0), (0, 2, False, 0), (1, 1, False, 1),
])
def test_dataloader_len_and_drop_last(n, bs, drop, expected):
    loader = DataLoader(np.zeros((n, 2)), batch_size=bs, drop_last=drop)
    batches = list(loader)
    assert len(loader) == len(batches) == expected
    assert all(b.shape[0] == bs for (b,) in batches[:-1])
    if drop:
        assert all(b.shape[0] == bs for (b,) in batches)


def order_of(loader):
    return np.concatenate([b.numpy() for (b, *_) in loader]).astype(int).tolist()


def test_seeded_shuffle_is_reproducible_and_reshuffles_each_epoch():
    a = DataLoader(np.arange(50.0), batch_size=8, shuffle=True, seed=123)
    b = DataLoader(np.arange(50.0), batch_size=8, shuffle=True, seed=123)
    a1, a2, b1, b2 = order_of(a), order_of(a), order_of(b), order_of(b)
    assert (a1, a2) == (b1, b2)
    assert a1 != a2  # a new order each epoch
    assert sorted(a1) == list(range(50)) and a1 != list(range(50))
    assert a1 == np.random.default_rng(123).permutation(50).tolist()
    assert order_of(DataLoader(np.arange(50.0), batch_size=8, shuffle=True, seed=124)) != a1


def test_shuffle_keeps_arrays_paired():
    X = np.arange(30.0).reshape(15, 2)
    y = np.arange(15)
    for xb, yb in DataLoader(X, y, batch_size=4, shuffle=True, seed=0):
        np.testing.assert_array_equal(xb.numpy()[:, 0] // 2, yb.numpy())


def test_unseeded_shuffle_follows_manual_seed():
    loader = DataLoader(np.arange(40.0), batch_size=16, shuffle=True)
    mg.manual_seed(11)
    first = order_of(loader), order_of(loader)
    mg.manual_seed(11)
    again = order_of(loader), order_of(loader)
    assert first == again and first[0] != first[1]


def test_dataloader_takes_lists_and_values():
    loader = DataLoader([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                        mg.Value([1.0, 2.0, 3.0]), batch_size=2)
    (x1, v1), (x2, v2) = loader
    assert x1.tolist() == [[1.0, 2.0], [3.0, 4.0]] and x2.tolist() == [[5.0, 6.0]]
    assert v1.tolist() == [1.0, 2.0] and v2.tolist() == [3.0]


def test_dataloader_repr():
    assert repr(DataLoader(np.zeros((4, 2)), batch_size=2)) == (
        "DataLoader((4, 2), batch_size=2, shuffle=False, drop_last=False, seed=None)")


def test_dataloader_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match=r"different lengths \[5, 4\]"):
        DataLoader(np.zeros((5, 2)), np.zeros(4))


@pytest.mark.parametrize("bs", [0, -3, 2.5, True])
def test_dataloader_rejects_bad_batch_size(bs):
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(np.zeros(4), batch_size=bs)


def test_dataloader_rejects_other_bad_input():
    with pytest.raises(ValueError, match="at least one array"):
        DataLoader()
    with pytest.raises(ValueError, match="0-d"):
        DataLoader(np.float64(3.0))
    with pytest.raises(TypeError, match="array 1 has dtype"):
        DataLoader(np.zeros(2), np.array(["a", "b"]))
    with pytest.raises(TypeError, match="seed"):
        DataLoader(np.zeros(2), seed="x")


def test_module_exports():
    assert set(data.__all__) == {
        "DataLoader", "make_blobs", "make_moons", "make_spirals", "train_test_split"}
