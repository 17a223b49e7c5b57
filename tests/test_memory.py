"""Memory (issue 6): graphs are freed when their last Value goes, training keeps RSS flat,
there are no reference cycles, deep and wide graphs backpropagate, and huge requests raise
MemoryError instead of aborting the process.

``mikagrad._core.live_nodes()`` counts the graph nodes alive in the process (every Value
holds one). The 1,000,000-op chain lives in tests/test_engine.py::test_million_op_chain_backward
(a subprocess); the wide graph is here.
"""

import gc
import os
import subprocess
import sys
import textwrap
import weakref

import numpy as np
import pytest

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import _core, nn, optim
from mikagrad.engine import Value


def live():
    return _core.live_nodes()


@pytest.fixture
def baseline():
    """Live nodes before the test (after a collection): the test must come back to it.

    Coming back means at most the baseline: pytest may release an earlier test's frames
    (a failure's traceback) while this test runs, which only lowers the count.
    """
    gc.collect()
    return live()


def test_live_nodes_counts_values(baseline):
    x = Value(np.ones(3))
    assert live() == baseline + 1
    y = x * Value(np.full(3, 2.0))  # a number operand would add a constant node too
    assert live() == baseline + 3
    del x, y
    assert live() == baseline  # freed by reference counting alone


def test_graph_is_freed_when_its_last_value_goes(baseline):
    x = Value(np.ones((4, 3)))
    w = Value(np.ones((3, 2)))
    h = (x @ w).tanh()
    out = F.mse_loss(h, np.zeros((4, 2))) + h.logsumexp(dim=1).sum()
    out.backward()
    refs = [weakref.ref(v) for v in (x, w, h, out)]
    grown = live() - baseline
    assert grown >= 6
    del h  # the graph is still reachable from out: nothing goes
    assert live() - baseline == grown
    del x, w, out
    assert all(r() is None for r in refs)
    assert live() <= baseline


def test_a_leaf_does_not_keep_its_consumers_alive(baseline):
    x = Value(np.ones(5))
    out = ((x * 3.0).exp() + x).sum()
    out.backward()
    g = np.array(x.grad)
    del out
    assert live() == baseline + 1  # only x; its gradient is plain data
    np.testing.assert_array_equal(x.grad, g)


def test_an_output_keeps_exactly_its_graph(baseline):
    x = Value(np.ones(5))
    y = x.exp()
    z = y.tanh()
    unused = x.sin()
    del unused
    assert live() == baseline + 3
    del x, y  # z still holds both through its parents
    assert live() == baseline + 3
    del z
    assert live() <= baseline


def test_detach_keeps_no_graph(baseline):
    x = Value(np.ones(5))
    d = x.sin().exp().detach()
    assert live() == baseline + 2  # x and d: the intermediates are gone
    assert d.parents == ()
    del x, d
    assert live() <= baseline


def test_parents_wrappers_do_not_leak(baseline):
    x = Value(np.ones(3))
    y = (x * 2.0).tanh()
    walked = [p for p in y.parents for _ in p.parents]  # micrograd-style graph walks
    assert walked
    del walked, x, y
    gc.collect()
    assert live() <= baseline


def test_failed_ops_leak_nothing(baseline):
    x = Value(np.ones(3))
    for bad in (lambda v: v + Value(np.ones(4)), lambda v: v.sum(dim=3), lambda v: v[7],
                lambda v: v.reshape(2, 2), lambda v: (v * 2).backward(gradient=np.ones(2))):
        with pytest.raises((ValueError, IndexError)):
            bad(x)
    del x, bad
    gc.collect()
    assert live() <= baseline


def _train_step(model, opt, x, y):
    loss = F.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def test_no_reference_cycles_in_training(baseline):
    """With the cyclic collector off, a training loop frees everything by reference counts:
    a later collection finds no garbage at all (so no cycle through a Value)."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x, y = mg.randn(8, 4), mg.randn(8, 1)
    _train_step(model, opt, x, y)  # creates the optimizer's state
    gc.collect()
    steady = live()
    gc.disable()
    try:
        for _ in range(50):
            loss = _train_step(model, opt, x, y)
            loss.item()
            repr(loss)
            [p.parents for p in loss.parents]
        del loss
        after = live()
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0, f"the collector found {found} objects in cycles"
    assert after == steady, "each step's graph is freed by reference counts alone"
    del model, opt, x, y
    gc.collect()
    assert live() <= baseline


def test_no_cycles_between_values_and_nodes():
    """DEBUG_SAVEALL keeps whatever the collector would free: no Value is ever in there."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        x = Value(np.ones((3, 3)))
        out = ((x @ x).softmax(-1) * x).sum()
        out.backward()
        assert out.parents[0].parents  # wrappers made on demand
        del x, out
        gc.collect()
        leaked = [o for o in gc.garbage if isinstance(o, (Value, _core.Node))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not leaked


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    pytest.skip("no VmRSS in /proc/self/status")


STEPS = 10_000
WARMUP = 1_000


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_training_loop_keeps_rss_flat(baseline):
    mg.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 16), nn.ReLU(),
                          nn.Linear(16, 1))
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    batches = [(mg.tensor(rng.standard_normal((16, 4))), mg.tensor(rng.standard_normal((16, 1))))
               for _ in range(8)]
    nodes_at = {}
    for step in range(STEPS):
        x, y = batches[step % len(batches)]
        loss = _train_step(model, opt, x, y)
        if step == WARMUP:
            gc.collect()
            rss_warm, nodes_at["warm"] = rss_kib(), live()
    del loss
    gc.collect()
    rss_end, nodes_at["end"] = rss_kib(), live()
    assert np.isfinite(F.mse_loss(model(batches[0][0]), batches[0][1]).item())
    print(f"memory test: {STEPS} steps, RSS {rss_warm} KiB after {WARMUP} -> {rss_end} KiB")
    assert nodes_at["end"] <= nodes_at["warm"], nodes_at
    assert rss_end <= rss_warm * 1.05, f"RSS grew from {rss_warm} KiB to {rss_end} KiB"


def _gradient_penalty_step(critic, opt, real, fake, mix, through_backward):
    """A WGAN-GP critic step: the penalty (|∇ₓ critic(x̂)| - 1)² at interpolates x̂, its
    gradient recorded (create_graph=True) and differentiated again by loss.backward().
    Through autograd.grad, or through backward(create_graph=True, inputs=...) and then
    resetting the interpolate's .grad, as torch's docs advise against the cycle it holds."""
    interp = (mix * real + (1 - mix) * fake).detach().requires_grad_(True)
    score = critic(interp).sum()
    if through_backward:
        score.backward(create_graph=True, inputs=[interp])
        g = interp.grad
        interp.grad = None
    else:
        (g,) = mg.autograd.grad(score, interp, create_graph=True)
    penalty = ((g ** 2).sum(1) + 1e-12).sqrt().sub(1.0) ** 2
    loss = critic(fake).mean() - critic(real).mean() + 10 * penalty.mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_gradient_penalty_loop_keeps_rss_flat(baseline):
    """Issue 12's Done-when: 10,000 steps with a gradient of a gradient each step."""
    mg.manual_seed(2)
    critic = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))
    opt = optim.Adam(critic.parameters(), lr=1e-4)
    rng = np.random.default_rng(2)
    batches = [tuple(mg.tensor(rng.standard_normal((16, 4)) + shift) for shift in (1.0, -1.0))
               + (mg.tensor(rng.uniform(size=(16, 1))),) for _ in range(8)]
    for step in range(STEPS):
        real, fake, mix = batches[step % len(batches)]
        loss = _gradient_penalty_step(critic, opt, real, fake, mix, through_backward=step % 2)
        if step == WARMUP:
            gc.collect()
            rss_warm, nodes_warm = rss_kib(), live()
    assert np.isfinite(loss.item())
    del loss
    gc.collect()
    rss_end, nodes_end = rss_kib(), live()
    print(f"gradient-penalty memory test: {STEPS} steps, RSS {rss_warm} KiB after {WARMUP} "
          f"-> {rss_end} KiB")
    assert nodes_end <= nodes_warm, (nodes_warm, nodes_end)
    assert rss_end <= rss_warm * 1.05, f"RSS grew from {rss_warm} KiB to {rss_end} KiB"


# ---- deep and wide graphs ------------------------------------------------------------------


def test_wide_graph_one_value_feeds_10000_ops(baseline):
    n = 10_000
    x = Value(np.array([0.5, -1.0, 2.0]))
    c = np.linspace(0.1, 1.0, n)
    outs = [(x * float(ci)).tanh() for ci in c]  # x feeds 10,000 muls
    total = mg.stack(outs).sum()  # one op with 10,000 inputs
    chain = outs[0]
    for o in outs[1:]:  # and a 10,000-long chain of adds over the same outputs
        chain = chain + o
    (total + chain.sum()).backward()
    xs = np.asarray(x.data)[None, :]
    want = 2 * np.sum(c[:, None] * (1 - np.tanh(c[:, None] * xs) ** 2), axis=0)
    np.testing.assert_allclose(x.grad, want, rtol=1e-10)
    assert live() > baseline + 2 * n
    del outs, total, chain, o
    assert live() == baseline + 1


def test_deep_chain_is_freed_without_recursion(baseline):
    # The 1,000,000-op chain runs in tests/test_engine.py (a subprocess); this one checks that
    # a deep chain's nodes are all released, in process, without a RecursionError.
    x = Value(np.array([1.0, 2.0]))
    y = x
    for _ in range(100_000):
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])
    assert live() >= baseline + 200_000
    del y
    assert live() == baseline + 1


# ---- huge requests: MemoryError, never an abort ------------------------------------------------

HUGE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import mikagrad as mg
    from mikagrad import Value

    def big():  # a lazy view of 3 * 2**40 elements: free to make, impossible to copy
        return Value(np.ones(3)).expand(1 << 40, 3)

    CASES = {
        "unary_on_view": lambda: big().exp(),
        "binary_on_view": lambda: big() + 1.0,
        "comparison_on_view": lambda: big() > 0,
        "reshape_copy": lambda: big().reshape(-1),
        "transpose_reshape": lambda: big().T.reshape(-1),
        "to_dtype_view": lambda: big().to(np.float32),
        "where_view": lambda: mg.where(np.ones(3, bool), big(), 0.0),
        "matmul_view": lambda: big() @ Value(np.ones((3, 1))),
        "cat_views": lambda: mg.cat([big(), big()]),
        "mask_view": lambda: big()[:, np.array([True, False, True])],
        "ones_like_view": lambda: mg.ones_like(big()),
        "arange": lambda: mg.arange(0, 1e15),
        "linspace": lambda: mg.linspace(0, 1, 1 << 40),
        "sum_to_huge": lambda: mg.zeros(1 << 40, 0).sum(1),
        "mean_to_huge": lambda: mg.zeros(1 << 40, 0).mean(1),
        "max_over_huge_to_empty": lambda: mg.zeros(1 << 40, 0).amax(0),
        "max_dim_over_huge_to_empty": lambda: mg.zeros(1 << 40, 0).max(0).values,
        "softmax_huge_empty": lambda: mg.zeros(1 << 40, 0).softmax(0),
        "empty_matmul_to_huge": lambda: mg.zeros(1 << 40, 0) @ mg.zeros(0, 1 << 40),
    }
    try:
        out = CASES[sys.argv[1]]()
        print("OK", tuple(out.shape))
    except BaseException as e:
        print("RAISED", type(e).__name__, str(e)[:200])
""")

# case: acceptable outcomes. Where the result has no elements, an empty Value is fine too.
HUGE = {
    "unary_on_view": {"MemoryError"},
    "binary_on_view": {"MemoryError"},
    "comparison_on_view": {"MemoryError"},
    "reshape_copy": {"MemoryError"},
    "transpose_reshape": {"MemoryError"},
    "to_dtype_view": {"MemoryError"},
    "where_view": {"MemoryError"},
    "matmul_view": {"MemoryError"},
    "cat_views": {"MemoryError"},
    "mask_view": {"MemoryError"},
    "ones_like_view": {"MemoryError"},
    "arange": {"MemoryError"},
    "linspace": {"MemoryError"},
    "sum_to_huge": {"MemoryError"},
    "mean_to_huge": {"MemoryError"},
    "max_over_huge_to_empty": {"OK (0,)", "MemoryError", "ValueError"},
    "max_dim_over_huge_to_empty": {"OK (0,)", "MemoryError", "ValueError"},
    "softmax_huge_empty": {"OK (1099511627776, 0)", "MemoryError"},
    "empty_matmul_to_huge": {"MemoryError"},
}


@pytest.fixture(scope="module")
def huge_results():
    """Every case in its own process (an abort must not take pytest with it), all at once."""
    procs = {name: subprocess.Popen([sys.executable, "-c", HUGE_SCRIPT, name],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in HUGE}
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=120)
        results[name] = (p.returncode, out.strip(), err[-500:])
    return results


@pytest.mark.parametrize("case", list(HUGE))
def test_huge_request(case, huge_results):
    rc, out, err = huge_results[case]
    assert rc == 0, f"{case}: the process died with code {rc}: {err}"
    kind = out.split()[1] if out.startswith("RAISED") else out
    assert kind in HUGE[case], f"{case}: {out}"


# ---- regressions ------------------------------------------------------------------------


def test_no_grad_keeps_no_graph(baseline):
    """Found here: a Value made under no_grad kept its operands alive through its Python
    shell, so an inference pass kept every intermediate until its output went."""
    x = Value(np.ones(5))
    with mg.no_grad():
        n = x.sin().exp()
    assert live() == baseline + 2  # x and n: the intermediate sin is gone
    assert n.parents == ()  # (reading .parents drops the hidden reference: check it last)
    del x, n
    assert live() <= baseline
