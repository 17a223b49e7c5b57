"""The Zero to Hero lectures as the yardstick (issue 11): learner-style scripts written once
against torch's API (`tests/lecture_scripts.py`) run on MikaGrad with only the modules
swapped, and give PyTorch's numbers. A seed gives torch's random streams, so the same
initial weights, minibatches and samples come out; losses then agree to float rounding
(MikaGrad computes in float64 where torch's default is float32).

The expected values are PyTorch 2.13's, fixed below; where torch is installed each script
also runs on torch in the same test.
"""
import math

import lecture_scripts as scripts
import mikagrad.nn.functional
import pytest

import mikagrad
import mikagrad.nn

try:
    import torch
    import torch.nn
    import torch.nn.functional
except ImportError:
    torch = None

MG = (mikagrad, mikagrad.nn, mikagrad.nn.functional)

# PyTorch 2.13's results for each script.
TORCH = {
    "bigram_counts": [1.6818515062332153, 1492, ["eran", "cel", "er", "moter", "ra"]],
    "bigram_network": [3.0480246543884277, 2.286161422729492, 1.9667102098464966,
                       1.8283878564834595, 1.7702175378799438, 1.7416709661483765,
                       1.7242430448532104, 1.7126996517181396],
    "mlp_with_batchnorm": [
        [2.7178361415863037, 2.6701653003692627, 2.6799185276031494, 2.634079933166504,
         2.6151983737945557, 2.5832440853118896, 2.583799362182617, 2.5126757621765137,
         2.593534469604492, 2.498408079147339, 2.5207314491271973, 2.5505616664886475],
        [-4.577674388885498, -4.277259826660156, None, -1.7002232074737549,
         -1.8222285509109497, -1.4684044122695923, -1.567575454711914],
        -0.055283982306718826, 1.0055619478225708, 3237],
    "manual_backprop": 2.9602999687194824,
    "tiny_gpt": [[2.7146127223968506, 2.678834915161133, 2.5885732173919678, 2.567086935043335,
                  2.53869891166687, 2.423560380935669], 7119,
                 [0, 0, 2, 2, 8, 1, 8, 12, 12, 8, 4, 0, 1, 7, 2, 4, 9, 14, 1, 11, 10]],
}

# float32 (torch) against float64 (MikaGrad): a few float32 ulps, grown by training.
REL = 2e-6


def close(got, want, rel=REL):
    if want is None:
        return
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            close(g, w, rel)
    elif isinstance(want, (int, str)) and not isinstance(want, bool):
        assert got == want
    else:
        assert math.isclose(got, want, rel_tol=rel, abs_tol=1e-6), (got, want)


@pytest.mark.parametrize("name", ["bigram_counts", "bigram_network", "tiny_gpt"])
def test_script_gives_pytorchs_numbers(name):
    close(getattr(scripts, name)(*MG), TORCH[name])


def test_mlp_with_batchnorm_by_hand():
    losses, ud, mean_sum, std_mean, n_params = scripts.mlp_with_batchnorm(*MG)
    close([losses, ud, mean_sum, std_mean, n_params], TORCH["mlp_with_batchnorm"], rel=1e-5)
    # b1's gradient is 0 up to rounding (BatchNorm removes any bias): its update ratio is
    # rounding noise, about 1e-9 in torch's float32 and far smaller in float64.
    assert ud[2] < -8


def test_manual_backprop_matches_autograd():
    loss, *checks = scripts.manual_backprop(*MG)
    close(loss, TORCH["manual_backprop"])
    # dlogits, dh, dW2, db2, dhpreact, dW1, db1, demb and dC (filled with `dC[ix] += ...`)
    # equal the gradients autograd keeps with retain_grad().
    assert checks == [[True, True]] * 9


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("name", ["bigram_counts", "bigram_network", "mlp_with_batchnorm",
                                  "tiny_gpt"])
def test_script_matches_torch_run_now(name):
    want = getattr(scripts, name)(torch, torch.nn, torch.nn.functional)
    got = getattr(scripts, name)(*MG)
    if name == "mlp_with_batchnorm":
        want[1][2] = None  # b1's ratio is rounding noise (see above)
    close(got, want, rel=1e-5)
