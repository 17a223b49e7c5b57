"""Gradients of gradients (issue 12): ``autograd.grad`` and ``backward`` with
``create_graph=True``, ``gradgradcheck``, ``autograd.functional`` and ``func``, on the classic
cases, the convolution ops and the issue's Done-when cases (against torch, else fixed values).
Every op's double backward is checked by finite differences in tests/test_ops.py
(``check_op``), and tests/test_op_catalog.py fails for an op the table does not reach."""

import gc
import io

import higher_order_cases
import numpy as np
import pytest
from helpers import randn

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import _core
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


# ---- what the finite-difference table cannot reach --------------------------------------


def test_casts_pass_second_derivatives_through():
    # d²/dx² (x as float32)³ = 6x; the float64 table cannot see through a float32 cast.
    x = mg.tensor([0.5, -1.25, 2.0], requires_grad=True)
    (g,) = mg.autograd.grad((x.float() ** 3).sum(), x, create_graph=True)
    assert g.dtype == np.float64
    (h,) = mg.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy(), rtol=1e-6)


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("name", ["relu", "abs", "max_ties", "amax_ties", "clamp", "maximum"])
def test_second_derivatives_at_kinks_follow_torch(name):
    # At relu's 0, abs's 0, a tie of max or maximum and clamp's bounds the derivative is a
    # convention; the second derivative of each is 0, as torch's.
    fns = {
        "relu": lambda lib, x: (lib.relu(x) * x).sum(),
        "abs": lambda lib, x: (x.abs() * x).sum(),
        "max_ties": lambda lib, x: x.max() * x.sum(),
        "amax_ties": lambda lib, x: (x.amax(dim=0) ** 2).sum(),
        "clamp": lambda lib, x: (x.clamp(-1.0, 0.0) ** 2).sum(),
        "maximum": lambda lib, x: (lib.maximum(x, x.flip(0)) ** 2).sum(),
    }
    x0 = np.array([[0.0, 2.0, -1.0], [0.0, 2.0, 1.0]])
    got = mg.autograd.functional.hessian(lambda x: fns[name](mg, x), mg.tensor(x0))
    want = torch.autograd.functional.hessian(lambda x: fns[name](torch, x), torch.tensor(x0))
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-15)


# ---- backward(create_graph=True, inputs=...) ----------------------------------------------


def test_backward_with_create_graph_gives_grads_with_graphs():
    x = mg.tensor([2.0, 3.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.tolist() == [12.0, 27.0]
    x.grad = None  # as torch: reset before differentiating the gradient
    g.sum().backward()
    assert x.grad.tolist() == [12.0, 18.0]


def test_backward_create_graph_accumulates_out_of_place():
    x = mg.tensor([1.0, -2.0], requires_grad=True)
    (x ** 2).sum().backward(create_graph=True)
    first = x.grad
    (x ** 3).sum().backward(create_graph=True)
    assert first.tolist() == [2.0, -4.0]  # the earlier gradient's graph is untouched
    total = x.grad
    x.grad = None
    total.sum().backward()  # d/dx (2x + 3x²) = 2 + 6x
    assert x.grad.tolist() == [8.0, -10.0]


def test_backward_seed_that_requires_grad_is_differentiated():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    v = mg.tensor([3.0, 4.0], requires_grad=True)
    (x ** 2).backward(v, create_graph=True)
    g = x.grad  # 2·x·v
    x.grad = None
    g.sum().backward(inputs=[v])
    assert v.grad.tolist() == [2.0, 4.0] and x.grad is None


def test_backward_inputs_limits_which_grads_are_written():
    a, b = mg.tensor([1.0], requires_grad=True), mg.tensor([2.0], requires_grad=True)
    h = a * b
    (h * h).sum().backward(inputs=[a])
    assert a.grad.tolist() == [8.0] and b.grad is None and h.grad is None
    (h * h).sum().backward(inputs=b)
    assert b.grad.tolist() == [4.0]
    with pytest.raises(mg.GradError, match=r"backward: inputs\[0\] does not require grad"):
        (h * h).sum().backward(inputs=[mg.tensor([1.0])])
    with pytest.raises(TypeError, match="backward: inputs must be"):
        (h * h).sum().backward(inputs=[1.0])


def test_backward_twice_without_create_graph_adds_twice():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    loss = (x.tanh() * x).sum()
    loss.backward()
    once = x.grad.numpy().copy()
    loss.backward(retain_graph=False)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * once)
    assert not x.grad.requires_grad


def test_a_plain_backward_after_create_graph_detaches_the_gradient():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    (x ** 3).sum().backward()
    assert x.grad.tolist() == [6.0, 24.0] and not x.grad.requires_grad


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_backward_create_graph_matches_torch_on_an_mlp():
    rng = np.random.default_rng(5)
    x0, w0, v0 = rng.standard_normal((5, 3)), rng.standard_normal((3, 2)), rng.standard_normal(
        (3, 2))
    results = []
    for lib in (mg, torch):
        w = lib.tensor(w0, requires_grad=True)
        (lib.tensor(x0) @ w).tanh().pow(2).mean().backward(create_graph=True)
        g = w.grad
        w.grad = None
        (g * lib.tensor(v0)).sum().backward()
        results.append((g.detach().numpy(), w.grad.numpy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_resetting_grad_frees_the_cycle_of_create_graph():
    gc.collect()
    before = _core.live_nodes()
    x = mg.tensor(np.ones(3), requires_grad=True)
    for _ in range(50):
        (x.tanh() ** 2).sum().backward(create_graph=True)
        x.grad = None
    del x
    assert _core.live_nodes() <= before


# ---- autograd.functional and func against torch -------------------------------------------

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
A, B = randn(3, 30), randn((2, 3), 31)


def pair(lib, x, y):
    return ((x * y).sin().sum(1) * x.sum()).tanh(), x.exp() @ y.T


def scalar(lib, x, y):
    a, b = pair(lib, x, y)
    return a.sum() * b.mean()


def as_np(r):
    if isinstance(r, tuple):
        return tuple(as_np(v) for v in r)
    return r.detach().numpy()


def same(a, b):
    if isinstance(b, tuple):
        assert isinstance(a, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            same(u, v)
        return
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def call(lib, name, cg):
    af = lib.autograd.functional
    x, y = lib.tensor(A), lib.tensor(B)
    half = (lib.tensor(np.full(3, 0.5)), lib.tensor(np.full((2, 3), 0.25)))
    outs = (lib.tensor(np.ones(2)), lib.tensor(np.full(2, 0.5)))
    return {
        "jacobian": lambda: af.jacobian(lambda *a: pair(lib, *a), (x, y), create_graph=cg),
        "jacobian_single": lambda: af.jacobian(lambda x: x.sin() * x.sum(), x),
        "jacobian_0d": lambda: af.jacobian(lambda x: x * x, lib.tensor(2.0)),
        "jacobian_unused": lambda: af.jacobian(lambda x, y: x * 2, (x, y)),
        "vjp": lambda: af.vjp(lambda *a: pair(lib, *a), (x, y), outs, create_graph=cg),
        "jvp": lambda: af.jvp(lambda *a: pair(lib, *a), (x, y), half, create_graph=cg),
        "hessian": lambda: af.hessian(lambda *a: scalar(lib, *a), (x, y), create_graph=cg),
        "hessian_single": lambda: af.hessian(lambda x: scalar(lib, x, y), x),
        "hessian_unused": lambda: af.hessian(lambda x, y: (x * x).sum(), (x, y)),
        "vhp": lambda: af.vhp(lambda *a: scalar(lib, *a), (x, y), half, create_graph=cg),
        "hvp": lambda: af.hvp(lambda *a: scalar(lib, *a), (x, y), half, create_graph=cg),
        "hvp_single": lambda: af.hvp(lambda x: (x ** 4).sum(), x, half[0]),
    }[name]()


@needs_torch
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", ["jacobian", "jacobian_single", "jacobian_0d", "jacobian_unused",
                                  "vjp", "jvp", "hessian", "hessian_single", "hessian_unused",
                                  "vhp", "hvp", "hvp_single"])
def test_autograd_functional_matches_torch(name, create_graph):
    import torch.autograd.functional  # noqa: F401

    same(as_np(call(mg, name, create_graph)), as_np(call(torch, name, create_graph)))


def test_functional_with_create_graph_can_be_differentiated_again():
    x = mg.tensor([0.5, 1.5], requires_grad=True)
    h = mg.autograd.functional.hessian(lambda x: (x ** 4).sum(), x, create_graph=True)
    (d,) = mg.autograd.grad(h.sum(), x)  # d/dx Σ 12x² = 24x
    np.testing.assert_allclose(d.numpy(), 24 * x.numpy())
    h2 = mg.autograd.functional.hessian(lambda x: (x ** 4).sum(), x)
    assert not h2.requires_grad


def test_functional_errors():
    af = mg.autograd.functional
    x = mg.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="vjp: v can be omitted only"):
        af.vjp(lambda x: x * 2, x)
    with pytest.raises(ValueError, match=r"vjp: v\[0\] has shape \(3,\) but the output"):
        af.vjp(lambda x: x * 2, x, mg.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="hessian: the function must return a single"):
        af.hessian(lambda x: x * 2, x)
    with pytest.raises(TypeError, match="jacobian: the inputs must be a Value"):
        af.jacobian(lambda x: x, [1.0])
    with pytest.raises(RuntimeError, match="independent of input 1"):
        af.jacobian(lambda x, y: x * 2, (x, mg.tensor([1.0])), strict=True)
    with pytest.raises(ValueError, match="strategy 'forward-mode' is not supported"):
        af.jacobian(lambda x: x, x, strategy="forward-mode")


def f3(x):
    return (x.sin() * x).sum()


@needs_torch
def test_func_transforms_compose_and_match_torch():
    import torch.func as tf

    x, tx = mg.tensor(A), torch.tensor(A)
    same(mg.func.grad(f3)(x).numpy(), tf.grad(f3)(tx).numpy())
    same(mg.func.grad(lambda x: mg.func.grad(f3)(x).sum())(x).numpy(),
         tf.grad(lambda x: tf.grad(f3)(x).sum())(tx).numpy())
    same(mg.func.jacrev(mg.func.jacrev(f3))(x).numpy(), tf.jacrev(tf.jacrev(f3))(tx).numpy())
    same(mg.func.hessian(f3)(x).numpy(), tf.hessian(f3)(tx).numpy())
    y, ty = mg.tensor(A[::-1].copy()), torch.tensor(A[::-1].copy())
    same(as_np(mg.func.grad(lambda a, b: (a * b.exp()).sum(), argnums=(0, 1))(x, y)),
         as_np(tf.grad(lambda a, b: (a * b.exp()).sum(), argnums=(0, 1))(tx, ty)))
    out, fn = mg.func.vjp(lambda a: a.tanh() * 2, x)
    tout, tfn = tf.vjp(lambda a: a.tanh() * 2, tx)
    same(as_np(fn(mg.tensor(B[0]))), as_np(tfn(torch.tensor(B[0]))))
    g, (v, aux) = mg.func.grad_and_value(lambda a: (f3(a), a.sum()), has_aux=True)(x)
    tg, (tv, taux) = tf.grad_and_value(lambda a: (f3(a), a.sum()), has_aux=True)(tx)
    same(g.numpy(), tg.numpy())
    assert v.item() == pytest.approx(tv.item()) and aux.item() == pytest.approx(taux.item())


def test_func_grad_of_grad_fixed_values():
    d2 = mg.func.grad(mg.func.grad(lambda x: x ** 3))
    assert d2(mg.tensor(2.0)).item() == 12.0
    d3 = mg.func.grad(mg.func.grad(mg.func.grad(lambda x: x.tanh())))
    t = np.tanh(0.3)
    assert d3(mg.tensor(0.3)).item() == pytest.approx(-2 * (1 - t**2) * (1 - 3 * t**2), rel=1e-12)
    assert not mg.func.grad(lambda x: x ** 2)(mg.tensor(1.0)).requires_grad


def test_func_composes_with_autograd():
    # a leaf that requires grad stays on its graph, as torch.func with torch.autograd
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    g = mg.func.grad(lambda x: (x ** 3).sum())(x)
    g.sum().backward()
    assert x.grad.tolist() == [6.0, 12.0]


def test_func_errors():
    with pytest.raises(ValueError, match="grad: the function must return a one-element Value"):
        mg.func.grad(lambda x: x * 2)(mg.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="argnums 2 is out of range"):
        mg.func.grad(lambda x: x.sum(), argnums=2)(mg.tensor([1.0]))
    with pytest.raises(TypeError, match="only float Values"):
        mg.func.grad(lambda x: x.sum())(mg.tensor([1, 2]))
    with pytest.raises(TypeError, match="has_aux=True the function must return a pair"):
        mg.func.grad(lambda x: x.sum(), has_aux=True)(mg.tensor([1.0]))
    _, fn = mg.func.vjp(lambda x: x * 2, mg.tensor([1.0]))
    with pytest.raises(ValueError, match=r"vjp: cotangent 0 has shape \(2,\)"):
        fn(mg.tensor([1.0, 2.0]))


# ---- the Done-when cases: against torch, else fixed values -------------------------------

# From torch 2.13 in float64 (tests/higher_order_cases.py): sum, sum of |·|, and Σ aₖ·cos k
# of each result.
FIXED = {'maml_step': {'g0': [-0.879454156716606, 2.7284344609694116, -0.5992965425126386],
                       'g1': [-0.5677244230458126, 0.7644458835412274, -0.03893838262059704],
                       'g2': [-0.4870222618344504, 2.4445585536642778, -1.873834847911041],
                       'g3': [-0.19876047492154061, 0.19876047492154061, -0.19876047492154061],
                       'outer': [1.8615656682572368, 1.8615656682572368, 1.8615656682572368],
                       'p0': [1.6284599906599553, 5.611788278986349, 2.2537190974015195],
                       'p1': [-0.06631416777065444, 0.2954284441802739, 0.19576785490886675],
                       'p2': [-0.28535378236413816, 3.0606236569782452, -1.0223548153927946],
                       'p3': [0.03488456769523562, 0.03488456769523562, 0.03488456769523562]},
         'mlp_loss_hessian': {'hessian': [-5.280585155766774, 10.185231690330685,
                                          1.2079526780351246]},
         'mlp_loss_hvp': {'hvp0': [-2.3923302945648866, 4.171607860697311, -1.843280930862918],
                          'hvp1': [-1.0107925881496331, 1.0107925881496331,
                                   -0.26655953720853914],
                          'hvp2': [0.969176643127184, 10.112673187959885, 8.67624776591505],
                          'hvp3': [-0.46683386658334436, 0.46683386658334436,
                                   -0.46683386658334436],
                          'loss': [3.256489857165092, 3.256489857165092, 3.256489857165092]},
         'tanh_third': {'d3': [-3.8229467042525767, 5.512255311627664, 1.3687681286630906]},
         'wgan_gp_steps': {'losses': [7.905430702573508, 7.905430702573508, 4.605701102077202],
                           'p0': [1.8842650376830217, 5.242635119019731, 2.53801615827259],
                           'p1': [-0.3145425099204386, 0.3166378275208124, 0.16854236078153648],
                           'p2': [-0.352207177609585, 2.7649221371607506, -0.7564990657765942],
                           'p3': [0.03289696294602021, 0.03289696294602021,
                                  0.03289696294602021]}}


def fingerprint(a):
    a = np.asarray(a, dtype=np.float64).ravel()
    return [a.sum(), np.abs(a).sum(), (a * np.cos(np.arange(a.size))).sum()]


@pytest.mark.parametrize("name", list(higher_order_cases.CASES))
def test_done_when_cases_match_fixed_values(name):
    got = higher_order_cases.CASES[name](mg)
    assert set(got) == set(FIXED[name])
    for key, want in FIXED[name].items():
        np.testing.assert_allclose(fingerprint(got[key]), want, rtol=1e-10, atol=1e-13,
                                   err_msg=f"{name}: {key}")


@needs_torch
@pytest.mark.parametrize("name", list(higher_order_cases.CASES))
def test_done_when_cases_match_torch(name):
    import torch.autograd.functional  # noqa: F401

    got = higher_order_cases.CASES[name](mg)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        want = higher_order_cases.CASES[name](torch)
    finally:
        torch.set_default_dtype(prev)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-11, atol=1e-14,
                                   err_msg=f"{name}: {key}")
    if name == "mlp_loss_hessian":  # a Hessian is symmetric
        h = got["hessian"].reshape(8, 8)
        np.testing.assert_allclose(h, h.T, rtol=1e-12, atol=1e-15)


# ---- teaching: the backward pass as a graph of its own ----------------------------------


def _tanh_times_x_gradient():
    x = Value(np.array([0.5, -1.0]))
    (x.tanh() * x).sum().backward(create_graph=True)
    g = x.grad
    x.grad = None
    return x, g


def test_nodes_say_which_backward_pass_made_them():
    x, g = _tanh_times_x_gradient()
    y = x.tanh()
    assert x._node.made_by is None and y._node.made_by is None  # the forward pass
    assert g._node.made_by == (1, "tanh")  # the last step of dx: tanh's rule
    made = {n.made_by for n in _graph_nodes(g) if n.op}
    assert made == {None, (1, "tanh"), (1, "mul")}  # the forward ops it reads stay None
    (g2,) = mg.autograd.grad(g.sum(), x, create_graph=True)
    orders = {n.made_by[0] for n in _graph_nodes(g2) if n.made_by}
    assert orders == {1, 2}
    # Ops the user applies to a gradient are forward ops again, as in torch's graph.
    assert (g * 2.0)._node.made_by is None


def test_two_create_graph_passes_mark_the_accumulation():
    x = Value(np.array([0.5, -1.0]))
    (x ** 3).sum().backward(create_graph=True)
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad._node.made_by == (1, "grad accumulation")
    np.testing.assert_allclose(x.grad, 6 * np.array([0.5, -1.0]) ** 2, rtol=1e-15)
    x.grad = None


def _graph_nodes(v):
    seen, stack = {}, [v._node]
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen[n.id] = n
            stack.extend(n.parents)
    return list(seen.values())


def test_draw_dot_draws_a_gradient_graph():
    from mikagrad.visualization import BACKWARD_COLORS, OP_COLOR, draw_dot

    x, g = _tanh_times_x_gradient()
    src = draw_dot(g).source
    assert src.count(f'fillcolor="{BACKWARD_COLORS[0]}"') >= 5  # the ops of tanh's and mul's rules
    assert 'label="*\\n∂ tanh"' in src and 'label="*\\n∂ mul"' in src
    assert "from the backward rule of tanh (1st backward)" in src
    assert f'fillcolor="{OP_COLOR}"' in src  # the forward tanh that the gradient reads
    assert "op of the 1st backward" in src  # the legend
    (g2,) = mg.autograd.grad(g.sum(), x, create_graph=True)
    src2 = draw_dot(g2).source
    assert f'fillcolor="{BACKWARD_COLORS[1]}"' in src2 and "op of the 2nd backward" in src2
    plain = draw_dot(x.tanh().sum()).source  # an ordinary graph is drawn as before
    assert "backward" not in plain and "∂" not in plain


def test_explain_marks_the_backward_graph():
    x, g = _tanh_times_x_gradient()
    with mg.explain(file=io.StringIO()) as ex:
        (g * g).sum().backward()
    made = [s["made_by"] for s in ex.steps]
    assert made[0] is None and made[-1] is None  # the new sum; the forward tanh
    assert (1, "tanh") in made and (1, "mul") in made
    assert "backward graph: this node is part of a gradient (1st backward), recorded by the " \
           "backward rule of tanh" in ex.text
    with mg.explain(file=io.StringIO()) as ex:
        x.tanh().sum().backward(create_graph=True)
    assert ex.text.startswith("backward(create_graph=True): each step below is recorded")
    assert "backward graph" not in ex.text  # this pass runs over forward nodes only
    x.grad = None


def test_ordinal():
    from mikagrad.explain import ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 103, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "103rd", "111th"]
