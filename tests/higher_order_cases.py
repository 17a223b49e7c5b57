"""The Done-when cases of gradients of gradients, written once for any library with torch's
API (``mikagrad`` or ``torch``): each returns named numpy results. tests/test_higher_order.py
compares them with torch where it is installed, and with fixed values (from torch 2.13,
float64) where it is not; bench/ times the Hessian and hvp ones."""

import numpy as np


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((16, 2)),
        "y": rng.standard_normal((16, 1)),
        "w1": rng.standard_normal((2, 4)) * 0.8,
        "b1": rng.standard_normal(4) * 0.1,
        "w2": rng.standard_normal((4, 1)) * 0.8,
        "b2": rng.standard_normal(1) * 0.1,
        "v": rng.standard_normal((2, 4)),
        "real": rng.standard_normal((8, 2)) + 1.0,
        "fake": rng.standard_normal((8, 2)),
        "mix": rng.uniform(size=(8, 1)),
        "xq": rng.standard_normal((12, 2)),
        "yq": rng.standard_normal((12, 1)),
    }


def mlp(lib, x, w1, b1, w2, b2):
    return (x @ w1 + b1).tanh() @ w2 + b2


def _params(lib, d):
    return [lib.tensor(d[k], requires_grad=True) for k in ("w1", "b1", "w2", "b2")]


def mlp_loss_hessian(lib, d=None):
    """The Hessian of an MLP's mean squared error in its first layer's weight (2×4)."""
    d = d or _data()
    x, y = lib.tensor(d["x"]), lib.tensor(d["y"])
    w1, b1, w2, b2 = _params(lib, d)

    def loss(w):
        return ((mlp(lib, x, w, b1, w2, b2) - y) ** 2).mean()

    h = lib.autograd.functional.hessian(loss, w1)
    return {"hessian": h.detach().numpy()}


def mlp_loss_hvp(lib, d=None):
    """An hvp of the same loss in all four parameters (v in the first weight, zeros
    elsewhere)."""
    d = d or _data()
    x, y = lib.tensor(d["x"]), lib.tensor(d["y"])
    params = tuple(_params(lib, d))
    vs = (lib.tensor(d["v"]),) + tuple(lib.zeros_like(p) for p in params[1:])

    def loss(*ps):
        return ((mlp(lib, x, *ps) - y) ** 2).mean()

    value, hv = lib.autograd.functional.hvp(loss, params, vs)
    return {"loss": np.asarray(value.item())} | {f"hvp{i}": h.detach().numpy()
                                                  for i, h in enumerate(hv)}


def wgan_gp_steps(lib, d=None, steps=3, lr=0.05):
    """Three critic steps of WGAN-GP: the penalty is (|∇ₓ D(x̂)| - 1)² at interpolates x̂,
    its gradient taken with create_graph=True and differentiated again by the step."""
    d = d or _data()
    real, fake, mix = (lib.tensor(d[k]) for k in ("real", "fake", "mix"))
    params = _params(lib, d)
    opt = lib.optim.SGD(params, lr=lr)
    losses = []
    for _ in range(steps):
        interp = (mix * real + (1 - mix) * fake).detach().requires_grad_(True)
        score = mlp(lib, interp, *params)
        (g,) = lib.autograd.grad(score.sum(), interp, create_graph=True)
        penalty = (((g ** 2).sum(1) + 1e-12).sqrt() - 1) ** 2
        loss = mlp(lib, fake, *params).mean() - mlp(lib, real, *params).mean() \
            + 10 * penalty.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return {"losses": np.array(losses)} | {f"p{i}": p.detach().numpy()
                                            for i, p in enumerate(params)}


def maml_step(lib, d=None, inner_lr=0.1, outer_lr=0.01):
    """One MAML step: an inner SGD step on the support set, kept in the graph
    (create_graph=True), then the query loss at the adapted weights, differentiated back
    to the original ones."""
    d = d or _data()
    xs, ys, xq, yq = (lib.tensor(d[k]) for k in ("x", "y", "xq", "yq"))
    params = _params(lib, d)
    opt = lib.optim.SGD(params, lr=outer_lr)
    inner = ((mlp(lib, xs, *params) - ys) ** 2).mean()
    grads = lib.autograd.grad(inner, params, create_graph=True)
    fast = [p - inner_lr * g for p, g in zip(params, grads)]
    outer = ((mlp(lib, xq, *fast) - yq) ** 2).mean()
    opt.zero_grad()
    outer.backward()
    meta = {f"g{i}": p.grad.detach().numpy() for i, p in enumerate(params)}
    opt.step()
    return {"outer": np.asarray(outer.item())} | meta | {
        f"p{i}": p.detach().numpy() for i, p in enumerate(params)}


def tanh_third(lib):
    """d³/dx³ tanh(x), by three nested gradients."""
    x = lib.tensor(np.array([-1.3, -0.2, 0.0, 0.4, 2.1]), requires_grad=True)
    (g1,) = lib.autograd.grad(x.tanh().sum(), x, create_graph=True)
    (g2,) = lib.autograd.grad(g1.sum(), x, create_graph=True)
    (g3,) = lib.autograd.grad(g2.sum(), x)
    return {"d3": g3.detach().numpy()}


CASES = {"mlp_loss_hessian": mlp_loss_hessian, "mlp_loss_hvp": mlp_loss_hvp,
         "wgan_gp_steps": wgan_gp_steps, "maml_step": maml_step, "tanh_third": tanh_third}
