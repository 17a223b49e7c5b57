"""Random numbers with PyTorch's CPU streams (issue 11): `Generator`, `manual_seed` and the
distributions give torch's numbers bit for bit, so the lectures' seeded code samples what
they sample.

Each case is written once for either library. Its expected result is a digest of PyTorch
2.13's output (so CI needs no torch); where torch is installed it is run on torch too.
"""
import hashlib

import numpy as np
import pytest

import mikagrad as mg

try:
    import torch
except ImportError:
    torch = None



def rand_f32(L):
    g = L.Generator().manual_seed(2147483647)
    return L.rand(3, 4, generator=g, dtype=L.float32)


def randn_sizes(L):
    # Below 16 the serial Box-Muller (in double), from 16 up the blocked fill with its
    # redrawn tail, in float32.
    g = L.Generator().manual_seed(7)
    return L.cat([L.randn(5, generator=g, dtype=L.float32).flatten(),
                  L.randn(40, generator=g, dtype=L.float32).flatten(),
                  L.randn(27, 27, generator=g, dtype=L.float32).flatten()])


def randn_f64(L):
    g = L.Generator().manual_seed(7)
    return L.cat([L.randn(3, generator=g, dtype=L.float64),
                  L.randn(33, generator=g, dtype=L.float64)])


def randint_ranges(L):
    g = L.Generator().manual_seed(3)
    return L.cat([L.randint(0, 1000, (5,), generator=g), L.randint(-5, 2**40, (3,), generator=g),
                  L.randint(10, (4,), generator=g)])


def randperm_20(L):
    return L.randperm(20, generator=L.Generator().manual_seed(11))


def multinomial_forms(L):
    g = L.Generator().manual_seed(42)
    P = L.rand(4, 27, generator=g, dtype=L.float32)
    one = L.cat([L.multinomial(P[i], 1, replacement=True, generator=g) for i in range(4)])
    many = L.multinomial(P, 30, replacement=True, generator=g).flatten()
    norep = L.multinomial(P, 5, generator=g).flatten()
    return L.cat([one, many, norep])


def bernoulli_and_normal(L):
    g = L.Generator().manual_seed(5)
    p = L.rand(10, generator=g, dtype=L.float32)
    return L.cat([L.bernoulli(p, generator=g),
                  L.normal(2.0, 3.0, (20,), generator=g, dtype=L.float32),
                  L.zeros(9, dtype=L.float32).exponential_(generator=g),
                  L.zeros(9, dtype=L.float32).uniform_(-2, 3, generator=g)])


def default_generator_and_modules(L):
    # nn.Linear's kaiming_uniform_ and bias, Embedding's normal_: torch's weights for a seed.
    L.manual_seed(0)
    lin = L.nn.Linear(20, 30)
    emb = L.nn.Embedding(10, 4)
    return L.cat([lin.weight.detach().flatten(), lin.bias.detach(), emb.weight.detach().flatten(),
                  L.randn(20)]).float()


def init_functions(L):
    g = L.Generator().manual_seed(5)
    w = L.zeros(30, 50, dtype=L.float32)
    out = []
    for fill in (lambda: L.nn.init.kaiming_normal_(w, generator=g),
                 lambda: L.nn.init.xavier_uniform_(w, generator=g),
                 lambda: L.nn.init.trunc_normal_(w, std=0.02, generator=g),
                 lambda: L.nn.init.trunc_normal_(w, a=-0.1, b=0.1, generator=g),
                 lambda: L.nn.init.normal_(w, 1.0, 0.5, generator=g),
                 lambda: L.nn.init.uniform_(w, -1.0, 1.0, generator=g)):
        fill()
        out.append(w.clone().flatten())
    return L.cat(out)


def sampled_names(L):
    # makemore part 1: a bigram table of a word list, then names sampled with the lecture's
    # generator seed, one multinomial draw per character.
    words = ["emma", "olivia", "ava", "isabella", "sophia", "charlotte", "mia", "amelia",
             "harper", "evelyn", "abigail", "emily", "elizabeth", "mila", "ella", "avery"]
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0
    itos = {i: s for s, i in stoi.items()}
    n = len(stoi)
    N = L.zeros((n, n), dtype=L.int32)
    for w in words:
        cs = ["."] + list(w) + ["."]
        for a, b in zip(cs, cs[1:]):
            N[stoi[a], stoi[b]] += 1
    P = (N + 1).float()
    P /= P.sum(1, keepdim=True)
    g = L.Generator().manual_seed(2147483647)
    names = []
    for _ in range(8):
        ix, out = 0, []
        while True:
            ix = L.multinomial(P[ix], num_samples=1, replacement=True, generator=g).item()
            if ix == 0:
                break
            out.append(itos[ix])
        names.append("".join(out))
    return names


CASES = {name: f for name, f in list(globals().items())
         if callable(f) and getattr(f, "__module__", None) == __name__ and name[0] != "_"}

# PyTorch 2.13's results: (dtype, shape, sha256 of the bytes (16 hex digits), first values),
# or the list itself.
EXPECTED = {'bernoulli_and_normal': ('float32', [48], 'b6b7053b3fe6693e', [1.0, 0.0, 1.0]),
 'default_generator_and_modules': ('float32',
                                   [690],
                                   '7da88a23ba772d5d',
                                   [-0.001674103899858892,
                                    0.11995243281126022,
                                    -0.18403849005699158]),
 'init_functions': ('float32',
                    [9000],
                    'af5d6371bb3f9a4a',
                    [0.36846598982810974, 0.1037774309515953, -0.3423842787742615]),
 'multinomial_forms': ('int64', [144], '4361d965144eb0e6', [21, 7, 4]),
 'rand_f32': ('float32',
              [3, 4],
              '978839ec520457ac',
              [0.7081288695335388, 0.3542391061782837, 0.10543233156204224]),
 'randint_ranges': ('int64', [12], '3f9e03ec65a619cf', [986, 48, 737]),
 'randn_f64': ('float64',
               [36],
               'e6589635084d7a43',
               [-0.1467950974849952, 0.7861412987235358, 0.9468216090039564]),
 'randn_sizes': ('float32',
                 [774],
                 'a8780322675f3468',
                 [-0.1467950940132141, 0.7861412763595581, 0.9468216300010681]),
 'randperm_20': ('int64', [20], '8faa12d9a29efcb4', [1, 5, 8]),
 'sampled_names': ['erhabpililssalteso',
                   'a',
                   'mbprncyarga',
                   'izgemhzmsgrtbrirartzchpnlgpgry',
                   'cltiselezsaavvgabia',
                   'gletmghi',
                   'stembemve',
                   'ophipncni']}


def _array(x):
    return x.detach().numpy() if torch is not None and isinstance(x, torch.Tensor) else x


def _digest(x, dtype):
    a = np.ascontiguousarray(np.asarray(_array(x)).astype(dtype))
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_case_gives_pytorchs_numbers(name):
    got, want = CASES[name](mg), EXPECTED[name]
    if isinstance(want, list):
        assert got == want
        return
    dtype, shape, digest, first = want
    a = np.asarray(got)
    assert list(a.shape) == shape
    np.testing.assert_array_equal(a.ravel()[:3].astype(dtype), np.array(first, dtype=dtype))
    assert _digest(a, dtype) == digest


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_case_matches_torch(name):
    got, want = CASES[name](mg), CASES[name](torch)
    if isinstance(want, list):
        assert got == want
        return
    w = _array(want)
    np.testing.assert_array_equal(np.asarray(got).astype(w.dtype), w)


def test_every_case_has_expected_values():
    assert set(CASES) == set(EXPECTED)


# ---- the generator itself -----------------------------------------------------------------


def test_generators_are_independent_and_reproducible():
    a, b = mg.Generator().manual_seed(1), mg.Generator().manual_seed(1)
    x = mg.randn(50, generator=a)
    mg.rand(7)  # the default generator does not disturb a or b
    np.testing.assert_array_equal(mg.randn(50, generator=b), x)
    assert not np.array_equal(mg.randn(50, generator=a), x)


def test_state_round_trips():
    g = mg.Generator().manual_seed(9)
    mg.randn(3, generator=g)  # leaves a cached normal sample in the state
    state = g.get_state()
    x = mg.randn(21, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(mg.randn(21, generator=g), x)
    with pytest.raises(ValueError, match="set_state"):
        g.set_state([1, 2, 3])


def test_seeds_and_the_default_generator():
    assert mg.Generator().initial_seed() == 67280421310721  # torch's
    g = mg.manual_seed(5)
    assert g is mg.default_generator and mg.initial_seed() == 5
    mg.manual_seed(-1)  # negative seeds wrap, as torch's
    assert mg.initial_seed() == 2**64 - 1
    with pytest.raises(ValueError, match="out of range"):
        mg.manual_seed(2**64)
    s = mg.seed()
    assert mg.initial_seed() == s


def test_the_default_dtype_draws_torchs_float32_stream():
    # MikaGrad's float64 default stands in for torch's float32 one: the same numbers.
    g1, g2 = mg.Generator().manual_seed(3), mg.Generator().manual_seed(3)
    x, y = mg.randn(40, generator=g1), mg.randn(40, generator=g2, dtype=mg.float32)
    assert x.dtype == np.float64 and y.dtype == np.float32
    np.testing.assert_array_equal(x, y.double())
    z = mg.randn(40, generator=mg.Generator().manual_seed(3), dtype=mg.float64)
    assert not np.array_equal(z, x)  # an explicit float64 draws torch's double stream


def test_random_arguments_are_checked():
    with pytest.raises(ValueError, match="randint: expects low < high"):
        mg.randint(5, 5, (2,))
    with pytest.raises(ValueError, match="multinomial: probability tensor contains"):
        mg.multinomial(mg.tensor([0.5, -0.1]), 1)
    with pytest.raises(ValueError, match="sum of probabilities"):
        mg.multinomial(mg.tensor([0.0, 0.0]), 1)
    with pytest.raises(ValueError, match="without replacement"):
        mg.multinomial(mg.tensor([0.5, 0.5]), 3)
    with pytest.raises(ValueError, match="bernoulli: expects 0 <= p <= 1"):
        mg.bernoulli(mg.tensor([1.5]))
    with pytest.raises(TypeError, match="generator must be a mikagrad.Generator"):
        mg.rand(2, generator=object())
    w = mg.Value(np.zeros(3))
    with pytest.raises(mg.GradError, match="leaf Value that requires grad"):
        w.normal_()
    assert mg.randn(2, requires_grad=True).requires_grad


def test_draws_follow_their_distributions():
    g = mg.Generator().manual_seed(0)
    x = mg.randn(20000, generator=g)
    assert abs(x.mean().item()) < 0.03 and abs(x.std().item() - 1) < 0.03
    u = mg.rand(20000, generator=g)
    assert 0 <= u.min().item() and u.max().item() < 1 and abs(u.mean().item() - 0.5) < 0.01
    counts = np.bincount(np.asarray(mg.multinomial(mg.tensor([1.0, 3.0]), 20000, True,
                                                   generator=g)), minlength=2)
    assert abs(counts[1] / 20000 - 0.75) < 0.02
    assert sorted(mg.randperm(100, generator=g).tolist()) == list(range(100))
