"""Shared pytest set-up: hypothesis profiles and a guard on global engine state.

Nothing here builds the extension; the tests expect an installed (editable) mikagrad.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

# "ci" is fixed and derandomized so that a red CI run reproduces locally with CI=1.
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# A long run to hunt for new edge cases: python -m pytest --hypothesis-profile=thorough
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _restore_engine_state():
    """Each test starts with float64 as the default dtype, whatever the previous test did."""
    import mikagrad as mg

    mg.set_default_dtype(mg.float64)
    yield
    mg.set_default_dtype(mg.float64)


@pytest.fixture
def torch64():
    """torch, with float64 as its default dtype (MikaGrad's), restored afterwards."""
    torch = pytest.importorskip("torch")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(old)
