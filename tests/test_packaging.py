"""Packaging: the hand-written stub matches the built ``_core``, the version has one source
(Cargo.toml), and mypy is clean over the package and a sample user script.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mikagrad
from mikagrad import _core

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(mikagrad.__file__).resolve().parent
STUB = PKG / "_core.pyi"

# Attributes every module or class has; the stub need not spell them.
MODULE_BOILERPLATE = {"__doc__", "__file__", "__loader__", "__name__", "__package__", "__spec__",
                      "__builtins__", "__cached__", "__path__"}
CLASS_BOILERPLATE = {"__doc__", "__module__", "__dict__", "__weakref__", "__qualname__",
                     "__text_signature__", "__firstlineno__", "__static_attributes__"}


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))


def _stub_names(body: list[ast.stmt]) -> dict[str, ast.AST]:
    """Names a stub body defines (classes, functions, annotated or assigned variables)."""
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
    return out


def _public(names: set[str]) -> set[str]:
    """Public names, plus the dunders a stub must declare (``__version__``, methods...)."""
    return {n for n in names if not n.startswith("_") or (n.startswith("__") and n.endswith("__"))}


def _stub_module_names() -> dict[str, ast.AST]:
    # Private helpers of the stub itself (type aliases like ``_Array``) are not module names.
    return {k: v for k, v in _stub_names(_stub().body).items() if k in _public({k})}


def _decorators(fn: ast.FunctionDef) -> set[str]:
    return {d.id for d in fn.decorator_list if isinstance(d, ast.Name)}


# ---- the stub and the built module ---------------------------------------------------------


def test_stub_and_py_typed_ship_in_the_package() -> None:
    assert STUB.is_file(), "mikagrad/_core.pyi is missing"
    assert (PKG / "py.typed").is_file(), "mikagrad/py.typed is missing (PEP 561 marker)"


def test_stub_lists_the_same_names_as_the_module() -> None:
    runtime = _public(set(dir(_core))) - MODULE_BOILERPLATE
    stub = set(_stub_module_names()) - MODULE_BOILERPLATE
    assert sorted(runtime - stub) == [], "in mikagrad._core but missing from _core.pyi"
    assert sorted(stub - runtime) == [], "in _core.pyi but not in the built mikagrad._core"


def test_stub_all_matches_the_module_all() -> None:
    node = _stub_module_names().get("__all__")
    assert isinstance(node, ast.Assign), "_core.pyi should spell out __all__ = [...]"
    assert sorted(ast.literal_eval(node.value)) == sorted(_core.__all__)


def _class_members(cls: type) -> set[str]:
    return _public(set(vars(cls))) - CLASS_BOILERPLATE


STUB_CLASSES = sorted(n for n, node in _stub_module_names().items()
                      if isinstance(node, ast.ClassDef))


@pytest.mark.parametrize("name", STUB_CLASSES)
def test_stub_class_lists_the_same_members(name: str) -> None:
    node = _stub_module_names()[name]
    assert isinstance(node, ast.ClassDef)
    cls = getattr(_core, name)
    stub = set(_stub_names(node.body))
    runtime = _class_members(cls)
    assert sorted(runtime - stub) == [], f"{name}: missing from _core.pyi"
    assert sorted(stub - runtime) == [], f"{name}: in _core.pyi but not in the built class"


@pytest.mark.parametrize("name", STUB_CLASSES)
def test_stub_class_has_the_same_bases(name: str) -> None:
    node = _stub_module_names()[name]
    assert isinstance(node, ast.ClassDef)
    stub_bases = [ast.unparse(b) for b in node.bases] or ["object"]
    runtime_bases = [b.__name__ for b in getattr(_core, name).__bases__]
    assert stub_bases == runtime_bases


def _runtime_params(obj: object) -> list[tuple[str, bool]] | None:
    """(name, has default) for each parameter, or None without a text signature."""
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return [(p.name, p.default is not inspect.Parameter.empty) for p in sig.parameters.values()
            if p.name not in ("self", "$self")]


def _stub_params(fn: ast.FunctionDef, method: bool) -> list[tuple[str, bool]]:
    args = fn.args.posonlyargs + fn.args.args
    if method and "staticmethod" not in _decorators(fn):
        args = args[1:]
    with_default = set(a.arg for a in args[len(args) - len(fn.args.defaults):]) \
        if fn.args.defaults else set()
    out = [(a.arg, a.arg in with_default) for a in args]
    if fn.args.vararg is not None:
        out.append((fn.args.vararg.arg, False))
    out += [(a.arg, d is not None) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults)]
    return out


def _callables() -> list[tuple[str, object, ast.FunctionDef, bool]]:
    out = []
    for name, node in _stub_module_names().items():
        if isinstance(node, ast.FunctionDef):
            out.append((name, getattr(_core, name), node, False))
        elif isinstance(node, ast.ClassDef):
            cls = getattr(_core, name)
            for mname, m in _stub_names(node.body).items():
                # A constructor's runtime signature is type's generic one; stubtest checks it.
                if isinstance(m, ast.FunctionDef) and "property" not in _decorators(m) \
                        and mname != "__new__":
                    out.append((f"{name}.{mname}", getattr(cls, mname), m, True))
    return out


@pytest.mark.parametrize("qualname,obj,fn,method",
                         [pytest.param(*c, id=c[0]) for c in _callables()])
def test_stub_signatures_match(qualname: str, obj: object, fn: ast.FunctionDef,
                               method: bool) -> None:
    runtime = _runtime_params(obj)
    if runtime is None:
        pytest.skip(f"{qualname} has no text signature")
    assert _stub_params(fn, method) == runtime, qualname


def test_stub_properties_and_staticmethods_match() -> None:
    for name, node in _stub_module_names().items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_core, name)
        for mname, m in _stub_names(node.body).items():
            if not isinstance(m, ast.FunctionDef):
                continue
            raw = inspect.getattr_static(cls, mname)
            is_prop = type(raw).__name__ in ("getset_descriptor", "property", "member_descriptor")
            assert ("property" in _decorators(m)) == is_prop, f"{name}.{mname}: @property"
            assert ("staticmethod" in _decorators(m)) == isinstance(raw, staticmethod), \
                f"{name}.{mname}: @staticmethod"


@pytest.mark.parametrize("exc", [_core.ShapeError, _core.GradError], ids=lambda e: e.__name__)
def test_exceptions_pickle_by_their_module_path(exc: type[Exception]) -> None:
    """``__module__`` names a module that holds the class, so errors cross processes."""
    import pickle

    assert exc.__module__ == "mikagrad._core"
    err = pickle.loads(pickle.dumps(exc("add: shapes (2,) and (3,)")))
    assert type(err) is exc and str(err) == "add: shapes (2,) and (3,)"


# ---- one version, from Cargo.toml ----------------------------------------------------------


def _cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', text,
                      re.MULTILINE | re.DOTALL)
        assert m, "no [workspace.package] version in Cargo.toml"
        return m.group(1)
    return tomllib.loads(text)["workspace"]["package"]["version"]


def _pep440(v: str) -> str:
    """Cargo's semver as maturin writes it in metadata (0.2.0-alpha.1 -> 0.2.0a1)."""
    try:
        from packaging.version import Version
    except ModuleNotFoundError:
        return v
    v = re.sub(r"-(alpha|beta|rc)\.?(\d+)", lambda m: {"alpha": "a", "beta": "b", "rc": "rc"}[
        m.group(1)] + m.group(2), v)
    return str(Version(v))


def test_version_comes_from_cargo_toml() -> None:
    cargo = _cargo_version()
    assert _core.__version__ == cargo
    assert mikagrad.__version__ == cargo


def test_installed_metadata_version_matches() -> None:
    try:
        installed = importlib.metadata.version("mikagrad")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("mikagrad is imported from a source tree, not installed")
    assert _pep440(installed) == _pep440(mikagrad.__version__), (
        "installed metadata is stale: reinstall (pip install -e . / maturin develop)")


def test_public_all_names_exist() -> None:
    for mod in (mikagrad, mikagrad.nn, mikagrad.optim, mikagrad.functional, mikagrad.data):
        for name in getattr(mod, "__all__", []):
            assert hasattr(mod, name), f"{mod.__name__}.__all__ lists missing {name!r}"


# ---- type checking -------------------------------------------------------------------------


def test_typing_sample_runs() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "typing_sample.py")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubtest_finds_no_difference() -> None:
    """mypy's stubtest: every name, signature, default and kind in _core.pyi against the
    built module."""
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "mikagrad._core"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_is_clean() -> None:
    """mypy over mikagrad/ and tests/typing_sample.py, with the config in pyproject.toml."""
    pytest.importorskip("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_changelog_has_a_section_for_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{_cargo_version()}]" in text, "add the version's section to CHANGELOG.md"
