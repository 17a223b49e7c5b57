"""A bounded, seeded random-API fuzz run (issue 6), and the hostile inputs it turned up.

tests/fuzz_driver.py makes random API calls with random (often invalid) arguments. It runs
in subprocesses, so that an abort or a segfault fails a test instead of killing pytest.
The run must end by itself (no signal), let no pyo3 PanicException out, and raise only the
documented exception classes. Two seeds run at once, ``CALLS`` calls each.
"""

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.engine import Value

DRIVER = Path(__file__).with_name("fuzz_driver.py")
SEEDS = (0, 1)
CALLS = 100_000  # per seed; about 3 s each, both seeds at once


def _describe_death(rc, trace):
    lines = trace.read_text(errors="replace").splitlines() if trace.exists() else []
    name = signal.Signals(-rc).name if rc < 0 else f"exit code {rc}"
    return f"the fuzz process died ({name}) during call: {lines[-1] if lines else '?'}"


@pytest.fixture(scope="module")
def fuzz_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    procs = []
    for seed in SEEDS:
        trace = tmp / f"trace-{seed}.txt"
        cmd = [sys.executable, str(DRIVER), "--seed", str(seed), "--calls", str(CALLS),
               "--trace", str(trace)]
        procs.append((seed, trace, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "RUST_BACKTRACE": "1"})))
    runs = []
    for seed, trace, proc in procs:
        try:
            out, err = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"fuzz seed {seed} hung; last call: {_describe_death(0, trace)}")
        runs.append({"seed": seed, "rc": proc.returncode, "stdout": out, "stderr": err,
                     "trace": trace})
    return runs


def _summary(run):
    assert run["rc"] == 0, (
        f"seed {run['seed']}: {_describe_death(run['rc'], run['trace'])}\n"
        f"{run['stderr'][-3000:]}")
    return json.loads(run["stdout"].strip().splitlines()[-1])


def test_fuzz_no_crash_no_panic_only_documented_errors(fuzz_runs):
    total = 0
    for run in fuzz_runs:
        s = _summary(run)
        total += s["calls"]
        counts = s["counts"]
        assert sum(counts.values()) == s["calls"] + counts.get("VIOLATION invariant", 0)
        panics = [v for v in s["violations"] if "PanicException" in v["class"]]
        assert not panics, f"seed {s['seed']}: a Rust panic escaped: {panics}"
        assert not s["violations"], f"seed {s['seed']}: undocumented errors: {s['violations']}"
        assert counts.get("ok", 0) > s["calls"] // 2, "most calls should be valid ones"
        print(f"fuzz seed {s['seed']}: {s['calls']} calls in {s['seconds']:.1f}s: {counts}")
    assert total >= 20_000
    print(f"fuzz calls made: {total}")


# ---- hostile inputs the fuzzer found (fixed ones stay as regression tests) ---------------------


@pytest.mark.parametrize("make", [
    lambda: mg.eye(-1),
    lambda: mg.eye(2, -1),
    lambda: mg.randperm(-1),
    lambda: mg.zeros(2**64 + 1),
    lambda: mg.randn(3, 2**64 + 1),
    lambda: mg.full((2**64 + 1,), 1.0),
], ids=["eye", "eye_m", "randperm", "zeros", "randn", "full"])
def test_sizes_out_of_range_raise_value_or_memory_error(make):
    """These gave OverflowError ("can't convert negative int to unsigned", "int too big to
    convert"); numpy gives ValueError."""
    with pytest.raises((ValueError, MemoryError)):
        make()


def _corrupt_header(offset, bits):
    buf = io.BytesIO()
    mg.save({"w": np.zeros(3)}, buf)
    data = bytearray(buf.getvalue())
    i = data.index(b"PK\x01\x02")  # the first central-directory entry
    data[i + offset] |= bits
    return io.BytesIO(bytes(data))


@pytest.mark.parametrize("offset,bits", [(10, 99), (6, 200), (8, 32), (8, 1)],
                         ids=["compression", "version", "patched_flag", "encrypted_flag"])
def test_load_of_a_corrupt_zip_header(offset, bits):
    """zipfile's NotImplementedError (compression method, zip version, 'patched data' flag)
    and RuntimeError (the 'encrypted' flag) used to escape from load."""
    with pytest.raises(mg.SerializationError, match="corrupt"):
        mg.load(_corrupt_header(offset, bits))


@pytest.mark.parametrize("make", [
    lambda: mg.zeros(2.5),
    lambda: mg.ones(2, 1.5),
    lambda: Value(np.ones(4)).reshape(2.5, 2),
    lambda: Value(np.ones((2, 3))).softmax(1.7),
    lambda: Value(np.ones((2, 3))).transpose(0.5, 1.2),
    lambda: Value(np.ones((2, 3))).unsqueeze(0.9),
], ids=["zeros", "ones", "reshape", "softmax", "transpose", "unsqueeze"])
def test_float_sizes_and_dims_raise_type_error(make):
    """Found by the fuzzer (int() used to truncate them); numpy and PyTorch raise TypeError."""
    with pytest.raises(TypeError):
        make()


@pytest.mark.parametrize("loss", [F.cross_entropy, F.nll_loss], ids=["cross_entropy", "nll"])
def test_negative_class_index_raises_index_error(loss):
    """-1 used to wrap around to the last class; PyTorch raises IndexError."""
    with pytest.raises(IndexError):
        loss(Value(np.zeros((3, 4))), [0, 1, -1])


def test_data_of_another_shape_on_an_intermediate():
    """Found by the fuzzer: this once made a later backward panic in Rust."""
    x = Value(np.arange(4.0))
    g = x.gather(0, np.array([0, 0]))
    try:
        g.data = np.array(5.0)
        g.backward()
    except (ValueError, mg.GradError):
        return  # refusing the new shape, or the backward, is fine
    except BaseException as e:  # noqa: BLE001 - pyo3's PanicException is a BaseException
        pytest.fail(f"{type(e).__module__}.{type(e).__name__}: {e}")
    assert x.grad is not None and x.grad.shape == x.shape
