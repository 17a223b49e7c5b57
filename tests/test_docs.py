"""Docs: every docstring example runs, and every public function and class has one.

The doctests run in a subprocess (``python -m pytest --doctest-modules mikagrad``), so an
example that sets global state (the default dtype, the seed, grad mode) cannot leak into the
other tests. Run the same by hand with::

    python -m pytest --doctest-modules mikagrad -q -o doctest_optionflags="ELLIPSIS NUMBER"
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import mikagrad

PKG = Path(mikagrad.__file__).resolve().parent
ROOT = PKG.parent
# Modules whose examples would train or plot for long; they are run by their own tests.
SKIP_MODULES = {"mikagrad.demo", "mikagrad.demo_cnn", "mikagrad.demo_export"}
PUBLIC_MODULES = sorted(
    f"mikagrad.{m.name}" for m in pkgutil.iter_modules([str(PKG)])
    if not m.name.startswith("_") and f"mikagrad.{m.name}" not in SKIP_MODULES
)


def test_doctests_pass():
    cmd = [sys.executable, "-m", "pytest", "--doctest-modules", str(PKG), "-q",
           "-p", "no:cacheprovider", "-o", "doctest_optionflags=ELLIPSIS NUMBER",
           "-o", "addopts=", "--rootdir", str(ROOT)]
    cmd += [f"--ignore={PKG / (m.split('.')[-1] + '.py')}" for m in SKIP_MODULES]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 5, "no doctests were collected:\n" + out
    assert r.returncode == 0, "doctests failed:\n" + out


def _public_objects():
    """(qualified name, object) for each public function and class, once per object."""
    seen: set[int] = set()
    for modname in ["mikagrad", *PUBLIC_MODULES]:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{modname}.{name}", obj


@pytest.mark.parametrize("modname", ["mikagrad", *PUBLIC_MODULES])
def test_module_has_a_docstring_and_all(modname):
    mod = importlib.import_module(modname)
    assert inspect.getdoc(mod), f"{modname} has no module docstring"
    assert hasattr(mod, "__all__"), f"{modname} has no __all__"


def test_public_api_has_docstrings_with_examples():
    """Every public function and class has a docstring with a short ``>>>`` example
    (exception classes need only a docstring)."""
    no_doc, no_example = [], []
    for qualname, obj in _public_objects():
        doc = inspect.getdoc(obj) or ""
        if not doc:
            no_doc.append(qualname)
        elif ">>>" not in doc and not (inspect.isclass(obj) and issubclass(obj, BaseException)):
            no_example.append(qualname)
    msg = []
    if no_doc:
        msg.append(f"{len(no_doc)} without a docstring: " + ", ".join(no_doc))
    if no_example:
        msg.append(f"{len(no_example)} without an example: " + ", ".join(no_example))
    assert not msg, "\n".join(msg)
