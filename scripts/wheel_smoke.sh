#!/usr/bin/env bash
# Wheel smoke test: what a user gets from `pip install mikagrad`, with no Rust toolchain.
#
#   1. builds the release wheel (maturin, abi3, LTO fat + one codegen unit) and the sdist;
#   2. checks what the wheel ships (the extension, _core.pyi, py.typed) and its size;
#   3. for each interpreter, makes a fresh venv and installs the wheel + numpy + graphviz
#      from binary wheels only, with cargo and rustc removed from PATH;
#   4. in that venv, outside the source tree: imports mikagrad, trains a tiny MLP on
#      make_moons with Adam, draws the graph with draw_dot.
#
# Usage:  bash scripts/wheel_smoke.sh
# Env:    SMOKE_DIR        work folder (default: a new temp dir, removed at the end)
#         SMOKE_PYTHONS    interpreters to test, space separated (default: `python`, plus the
#                          oldest supported one, 3.10, when pyenv has it: it proves abi3)
#         SMOKE_SDIST_BUILD=1  also build a wheel from the sdist (needs cargo; +~1 min)
#         SMOKE_MAX_MB     the wheel size limit in MB (default 5)
# Exits nonzero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - START ))"; }

PYTHON=${PYTHON:-python}
MAX_MB=${SMOKE_MAX_MB:-5}
if [[ -n "${SMOKE_DIR:-}" ]]; then
  WORK=$SMOKE_DIR; mkdir -p "$WORK"
else
  WORK=$(mktemp -d -t mikagrad-smoke.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
DIST="$WORK/dist"
rm -rf "$DIST"; mkdir -p "$DIST"

if ! command -v maturin >/dev/null 2>&1; then
  step "installing maturin"
  "$PYTHON" -m pip install -q "maturin>=1.7,<2"
fi

# ---- 1. build -------------------------------------------------------------------------------
step "maturin build --release"
maturin build --release --out "$DIST" 2>&1 | { grep -v '^\s*Compiling' || true; }
step "maturin sdist"
maturin sdist --out "$DIST" 2>&1 | tail -n 1
WHEEL=$(ls "$DIST"/mikagrad-*.whl)
SDIST=$(ls "$DIST"/mikagrad-*.tar.gz)
[[ $(echo "$WHEEL" | wc -l) -eq 1 ]] || { echo "expected one wheel, got: $WHEEL"; exit 1; }

# ---- 2. what ships --------------------------------------------------------------------------
step "checking the wheel and the sdist"
"$PYTHON" - "$WHEEL" "$SDIST" "$MAX_MB" <<'EOF'
import sys, tarfile, zipfile
from pathlib import Path

wheel, sdist, max_mb = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
names = zipfile.ZipFile(wheel).namelist()
for need in ("mikagrad/__init__.py", "mikagrad/_core.pyi", "mikagrad/py.typed"):
    assert need in names, f"the wheel lacks {need}"
exts = [n for n in names if n.startswith("mikagrad/_core") and n.endswith((".so", ".pyd"))]
assert len(exts) == 1, f"expected one extension module in the wheel, got {exts}"
assert "-abi3-" in wheel.name, f"not an abi3 wheel: {wheel.name}"
assert not any(n.startswith(("tests/", "rust/", "target/")) for n in names), "stray files"
mb = wheel.stat().st_size / 2**20
ext_mb = zipfile.ZipFile(wheel).getinfo(exts[0]).file_size / 2**20
print(f"wheel: {wheel.name}")
print(f"wheel size: {mb:.2f} MB (extension {ext_mb:.2f} MB unpacked), limit {max_mb:g} MB")
assert mb < max_mb, f"the wheel is {mb:.2f} MB, over the {max_mb:g} MB target"
with tarfile.open(sdist) as tf:
    members = {m.split("/", 1)[1] for m in tf.getnames() if "/" in m}
for need in ("pyproject.toml", "Cargo.toml", "Cargo.lock", "rust/core/Cargo.toml",
             "rust/python/Cargo.toml", "rust/python/src/lib.rs", "mikagrad/_core.pyi",
             "mikagrad/py.typed"):
    assert need in members, f"the sdist lacks {need}"
print(f"sdist: {sdist.name}, {sdist.stat().st_size / 2**20:.2f} MB, {len(members)} files")
EOF

if [[ "${SMOKE_SDIST_BUILD:-0}" == "1" ]]; then
  step "building a wheel from the sdist"
  "$PYTHON" -m pip wheel -q --no-cache-dir --no-deps "$SDIST" -w "$WORK/from-sdist"
  ls "$WORK"/from-sdist/mikagrad-*.whl
fi

# ---- 3. a PATH without the Rust toolchain -----------------------------------------------------
CLEAN_PATH=""
IFS=: read -r -a PATH_DIRS <<< "$PATH"
for d in "${PATH_DIRS[@]}"; do
  [[ -z "$d" ]] && continue
  [[ -x "$d/cargo" || -x "$d/rustc" || -x "$d/rustup" || "$d" == *"/.cargo/"* ]] && continue
  CLEAN_PATH="${CLEAN_PATH:+$CLEAN_PATH:}$d"
done
if PATH="$CLEAN_PATH" command -v cargo >/dev/null 2>&1; then
  echo "could not remove cargo from PATH"; exit 1
fi

# The interpreters to test: the current one, and 3.10 (the abi3 floor) if pyenv has it.
if [[ -n "${SMOKE_PYTHONS:-}" ]]; then
  read -r -a PYTHONS <<< "$SMOKE_PYTHONS"
else
  PYTHONS=("$(command -v "$PYTHON")")
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/3.10*/bin/python; do
      [[ -x "$p" ]] && { PYTHONS+=("$p"); break; }
    done
  fi
fi

cat > "$WORK/smoke.py" <<'EOF'
import importlib.metadata
import shutil
import sys
import time
from pathlib import Path

t0 = time.perf_counter()
assert shutil.which("cargo") is None and shutil.which("rustc") is None, "cargo is on PATH"

import numpy as np

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import data, nn, optim
from mikagrad.visualization import draw_dot

pkg = Path(mg.__file__).resolve().parent
assert "site-packages" in str(pkg), f"imported mikagrad from {pkg}, not from the wheel"
assert (pkg / "py.typed").is_file() and (pkg / "_core.pyi").is_file()
meta = importlib.metadata.version("mikagrad")
assert mg.__version__ == meta, (mg.__version__, meta)
print(f"python {sys.version.split()[0]}, numpy {np.__version__}: mikagrad {mg.__version__} "
      f"from {pkg}")

mg.manual_seed(0)
X, y = data.make_moons(100, noise=0.1, random_state=0)
Xv, yv = mg.tensor(X), mg.tensor(y * 2.0 - 1.0)
model = nn.MLP(2, [16, 16, 1])
opt = optim.Adam(model.parameters(), lr=0.05)
losses = []
for step in range(30):
    scores = model(Xv).reshape(-1)
    loss = F.hinge_loss(scores, yv)
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())
acc = float(((scores.numpy() > 0) == (y > 0)).mean())
print(f"trained MLP(2, [16, 16, 1]) for 30 Adam steps: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
      f"accuracy {acc:.0%}")
assert losses[-1] < 0.5 * losses[0], losses

a, b = mg.Value(2.0), mg.Value(-3.0)
c = a * b + a
c.backward()
dot = draw_dot(c)
src = dot.source
assert src.lstrip().startswith("digraph") and "mul" in src and "add" in src, src[:200]
print(f"draw_dot: a DOT source of {len(src.splitlines())} lines for a * b + a "
      f"(grad a {a.grad.item():.1f}, b {b.grad.item():.1f})")
print(f"smoke ok in {time.perf_counter() - t0:.2f}s")
EOF

# ---- 4. install and run, per interpreter -----------------------------------------------------
for py in "${PYTHONS[@]}"; do
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  step "fresh venv, Python $ver, no cargo on PATH"
  VENV="$WORK/venv-$ver"
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  env -u CARGO_HOME -u RUSTUP_HOME -u VIRTUAL_ENV -u PYTHONPATH PATH="$VENV/bin:$CLEAN_PATH" \
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: \
    "$WHEEL" graphviz
  (cd "$WORK" && env -u CARGO_HOME -u RUSTUP_HOME -u PYTHONPATH PATH="$VENV/bin:$CLEAN_PATH" \
    "$VENV/bin/python" -I smoke.py)
done

step "wheel smoke test passed"
