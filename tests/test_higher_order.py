"""Gradients of gradients (issue 12, first part): ``mikagrad.autograd.grad`` with
``create_graph=True`` and ``gradgradcheck``, on the classic cases and the convolution ops."""

import numpy as np
import pytest
from helpers import randn

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.engine import Value

try:
    import torch
except ImportError:
    torch = None


def test_grad_returns_values_and_leaves_dot_grad_alone():
    w = mg.tensor([1.0, -2.0], requires_grad=True)
    (g,) = mg.autograd.grad((w * w * w).sum(), w)
    assert g.tolist() == [3.0, 12.0]
    assert w.grad is None
    assert not g.requires_grad  # no create_graph: a plain value


def test_third_derivative_of_tanh():
    x0 = np.array([0.3, -0.7, 1.1])
    x = mg.tensor(x0, requires_grad=True)
    (g1,) = mg.autograd.grad(x.tanh().sum(), x, create_graph=True)
    (g2,) = mg.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = mg.autograd.grad(g2.sum(), x)
    t = np.tanh(x0)
    np.testing.assert_allclose(g1.numpy(), 1 - t**2, rtol=1e-12)
    np.testing.assert_allclose(g2.numpy(), -2 * t * (1 - t**2), rtol=1e-12)
    np.testing.assert_allclose(g3.numpy(), -2 * (1 - t**2) * (1 - 3 * t**2), rtol=1e-12)


def test_the_hessian_of_a_quadratic_is_its_matrix():
    a = randn((3, 3), 1)
    a = a + a.T
    x = mg.tensor(randn(3, 2), requires_grad=True)
    (g,) = mg.autograd.grad(0.5 * (x @ Value(a, requires_grad=False) @ x), x, create_graph=True)
    rows = [mg.autograd.grad(g[i], x)[0].numpy() for i in range(3)]
    np.testing.assert_allclose(np.stack(rows), a, rtol=1e-12)


def test_grad_outputs_unused_inputs_and_errors():
    x, y = mg.tensor([1.0, 2.0], requires_grad=True), mg.tensor([3.0], requires_grad=True)
    out = x * 2
    (gx,) = mg.autograd.grad(out, x, grad_outputs=mg.tensor([1.0, 10.0]))
    assert gx.tolist() == [2.0, 20.0]
    with pytest.raises(mg.GradError, match="grad: output 0 has shape"):
        mg.autograd.grad(out, x)
    with pytest.raises(mg.GradError, match="not used"):
        mg.autograd.grad(out.sum(), [x, y])
    assert mg.autograd.grad(out.sum(), [x, y], allow_unused=True)[1] is None
    assert mg.autograd.grad(out.sum(), [x, y], materialize_grads=True)[1].tolist() == [0.0]
    with pytest.raises(mg.GradError, match="does not require grad"):
        mg.autograd.grad(out.sum(), mg.tensor([1.0]))


def test_gradgradcheck_catches_a_wrong_second_derivative():
    # abs's second derivative is 0 almost everywhere, so finite differences of it agree;
    # a function whose backward is detached from its input does not.
    assert mg.gradgradcheck(lambda x: (x.abs() * x).sum(), randn(4, 2) + 3.0)
    with pytest.raises(mg.GradcheckError, match="gradgradcheck"):
        mg.gradgradcheck(lambda x: (x * Value(x.numpy(), requires_grad=False)).sum() * x.sum(),
                         randn(3, 3))


CONV_CASES = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
               [(1, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    "conv2d_groups_dilation": (lambda x, w: F.conv2d(x, w, padding=2, dilation=2, groups=2),
                               [(1, 4, 5, 5), (4, 2, 2, 2)]),
    "conv2d_depthwise": (lambda x, w: F.conv2d(x, w, padding=1, groups=2),
                         [(2, 2, 4, 4), (2, 1, 3, 3)]),
    "conv1d": (lambda x, w: F.conv1d(x, w, stride=2), [(2, 2, 7), (3, 2, 3)]),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2, output_padding=1),
                         [(1, 2, 3, 3), (2, 3, 2, 2)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False) ** 2,
                   [(1, 2, 5, 5)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)) ** 2, [(1, 2, 5, 4)]),
    "pad_reflect": (lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect") ** 2, [(1, 2, 4, 4)]),
    "interpolate_bilinear": (lambda x: F.interpolate(x, size=(5, 7), mode="bilinear") ** 2,
                             [(1, 2, 3, 4)]),
    "unfold": (lambda x: F.unfold(x, 2, padding=1) ** 2, [(1, 2, 3, 3)]),
    "fold": (lambda c: F.fold(c, (3, 3), 2) ** 2, [(1, 8, 4)]),
    "batch_norm_train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                         [(4, 3, 2), (3,), (3,)]),
    "group_norm": (lambda x: F.group_norm(x, 2), [(2, 4, 3)]),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_gradgradcheck_convolution_ops(name):
    fn, shapes = CONV_CASES[name]
    assert mg.gradgradcheck(fn, *[randn(s, i + 10) for i, s in enumerate(shapes)])


def test_gradgradcheck_max_pool_away_from_ties():
    x = np.random.default_rng(3).permutation(32).reshape(1, 2, 4, 4) / 5.0
    assert mg.gradgradcheck(lambda x: F.max_pool2d(x, 2) ** 2, x)


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_a_conv_hessian_vector_product_matches_torch():
    x0, w0 = randn((1, 2, 5, 5), 20), randn((3, 2, 3, 3), 21)
    v0 = randn((3, 2, 3, 3), 22)
    x, w = mg.tensor(x0), mg.tensor(w0, requires_grad=True)
    loss = F.conv2d(x, w, padding=1).tanh().sum()
    (g,) = mg.autograd.grad(loss, w, create_graph=True)
    (hv,) = mg.autograd.grad((g * Value(v0, requires_grad=False)).sum(), w)
    tw = torch.tensor(w0, requires_grad=True)
    tl = torch.nn.functional.conv2d(torch.tensor(x0), tw, padding=1).tanh().sum()
    (tg,) = torch.autograd.grad(tl, tw, create_graph=True)
    (thv,) = torch.autograd.grad((tg * torch.tensor(v0)).sum(), tw)
    np.testing.assert_allclose(hv.numpy(), thv.numpy(), rtol=1e-9, atol=1e-12)
