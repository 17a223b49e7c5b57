"""Optimizer steps against PyTorch's update formulas, computed by hand with numpy."""

import math

import numpy as np
import pytest

import mikagrad as mg
from mikagrad import optim

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.75, 1.5]), np.array([1.0, 0.0, -3.0])]
P0 = np.array([1.0, -2.0, 0.5])


def run(opt_cls, steps=3, **kw):
    p = mg.Value(P0.copy())
    opt = opt_cls([p], **kw)
    for g in GRADS[:steps]:
        opt.zero_grad()
        p.grad = g
        opt.step()
    return np.array(p.data), opt


def ref_sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p, buf = P0.copy(), None
    for g in GRADS:
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def ref_adam(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    p, m, v = P0.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr / (1 - b1**t) * m / (np.sqrt(v) / math.sqrt(1 - b2**t) + eps)
    return p


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
])
def test_sgd_matches_formula(kw):
    got, _ = run(optim.SGD, **kw)
    np.testing.assert_allclose(got, ref_sgd(**kw), rtol=1e-12, atol=1e-12)


def test_sgd_first_step_by_hand():
    got, _ = run(optim.SGD, steps=1, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(got, P0 - 0.1 * GRADS[0])


def test_adam_bias_correction_first_step_moves_by_lr():
    # After one step m_hat/sqrt(v_hat) = sign(g), so each weight moves by lr.
    got, _ = run(optim.Adam, steps=1, lr=0.01)
    np.testing.assert_allclose(got, P0 - 0.01 * np.sign(GRADS[0]), rtol=1e-6)


@pytest.mark.parametrize("kw", [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1),
                                dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)])
def test_adam_matches_formula(kw):
    got, _ = run(optim.Adam, **kw)
    b1, b2 = kw.get("betas", (0.9, 0.999))
    ref = ref_adam(kw["lr"], b1, b2, kw.get("eps", 1e-8), kw.get("weight_decay", 0.0))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_adamw_decouples_weight_decay():
    got, _ = run(optim.AdamW, lr=0.01, weight_decay=0.1)
    np.testing.assert_allclose(got, ref_adam(0.01, weight_decay=0.1, decoupled=True), rtol=1e-12)
    plain, _ = run(optim.Adam, lr=0.01, weight_decay=0.1)
    assert not np.allclose(got, plain)


def test_float32_parameters_update_in_float32():
    p = mg.Value(P0.astype(np.float32))
    opt = optim.Adam([p], lr=0.01)
    p.grad = GRADS[0].astype(np.float32)
    opt.step()
    assert p.data.dtype == np.float32
    np.testing.assert_allclose(p.data, P0 - 0.01 * np.sign(GRADS[0]), rtol=1e-5)


def test_defaults_are_pytorchs():
    p = mg.Value([1.0])
    assert optim.Adam([p]).defaults["lr"] == 1e-3
    assert optim.Adam([p]).defaults["betas"] == (0.9, 0.999)
    assert optim.AdamW([p]).defaults["weight_decay"] == 1e-2
    assert optim.SGD([p]).defaults["momentum"] == 0.0


def test_update_is_in_place_and_visible_through_data_views():
    p = mg.Value(P0.copy())
    view = p.data
    opt = optim.SGD([p], lr=0.1)
    p.grad = GRADS[0]
    opt.step()
    np.testing.assert_allclose(view, P0 - 0.1 * GRADS[0])


def test_params_without_grad_are_skipped():
    a, b = mg.Value([1.0]), mg.Value([2.0])
    opt = optim.Adam([a, b], lr=0.1)
    (a * 3).sum().backward()
    opt.step()
    assert b.data[0] == 2.0 and a.data[0] != 1.0


def test_zero_grad_sets_none_or_zeros():
    p = mg.Value([1.0, 2.0])
    (p * p).sum().backward()
    opt = optim.SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=False)
    assert np.all(p.grad == 0)
    opt.zero_grad()
    assert p.grad is None


def test_state_dict_round_trip_resumes_exactly():
    _, opt = run(optim.Adam, steps=2, lr=0.01)
    sd = opt.state_dict()
    p = mg.Value(P0.copy())
    full = optim.Adam([p], lr=0.01)
    for g in GRADS[:2]:
        p.grad = g
        full.step()
    q = mg.Value(np.array(p.data))
    resumed = optim.Adam([q], lr=0.5)
    resumed.load_state_dict(full.state_dict())
    assert resumed.param_groups[0]["lr"] == 0.01
    p.grad = GRADS[2]
    q.grad = GRADS[2]
    full.step()
    resumed.step()
    np.testing.assert_array_equal(p.data, q.data)
    assert sd["state"][0]["step"] == 2


def test_load_state_dict_rejects_bad_input():
    p = mg.Value(P0.copy())
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(KeyError, match="param_groups"):
        opt.load_state_dict({"state": {}})
    bad = {"state": {0: {"momentum_buffer": np.zeros(5)}}, "param_groups": [
        {"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0, "nesterov": False,
         "maximize": False, "params": [0]}]}
    with pytest.raises(ValueError, match="momentum_buffer"):
        opt.load_state_dict(bad)
    bad["state"] = {7: {}}
    with pytest.raises(KeyError, match="7"):
        opt.load_state_dict(bad)


def test_bad_hyperparameters():
    p = mg.Value([1.0])
    with pytest.raises(ValueError):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(TypeError):
        optim.Adam([np.zeros(2)])


def test_schedulers_follow_closed_forms():
    p = mg.Value([1.0])
    opt = optim.SGD([p], lr=1.0)
    s = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):
        lrs.append(s.get_last_lr()[0])
        s.step()
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25]
    opt = optim.SGD([p], lr=1.0)
    e = optim.ExponentialLR(opt, gamma=0.9)
    e.step()
    e.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.81)
    opt = optim.SGD([p], lr=1.0)
    c = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    for _ in range(2):
        c.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 + 0.9 * 0.5)
    for _ in range(2):
        c.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    for ours, theirs, kw in [
        (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
        (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.01)),
        (optim.AdamW, torch.optim.AdamW, dict(lr=0.01)),
    ]:
        got, _ = run(ours, **kw)
        tp = torch.tensor(P0.copy(), requires_grad=True)
        topt = theirs([tp], **kw)
        for g in GRADS:
            tp.grad = torch.tensor(g)
            topt.step()
        np.testing.assert_allclose(got, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
