#!/usr/bin/env bash
# The README's two set-up commands, run as a new user runs them on a fresh machine:
#   - in a new venv that holds only what those commands install (no torch);
#   - with no Graphviz `dot` on PATH (each PATH directory holding one is replaced by links to
#     everything else in it), so graphs must render through what pip installed;
#   - the commands are read from README.md itself, so they cannot drift from what it says.
# Then checks that torch is absent, `dot` unreachable, and that the notebook test ran and passed.
#
# Usage:  bash scripts/fresh_machine.sh      (FRESH_DIR=... keeps the work folder)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
START=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - START ))"; }

if [[ -n "${FRESH_DIR:-}" ]]; then
  WORK=$FRESH_DIR; rm -rf "$WORK"; mkdir -p "$WORK"
else
  WORK=$(mktemp -d -t mikagrad-fresh.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi

# The first two commands of README.md's first bash block, in order.
mapfile -t COMMANDS < <(python - <<'EOF'
import re
text = open("README.md", encoding="utf-8").read()
block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
cmds = [line.strip() for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
assert len(cmds) >= 2, cmds
print(cmds[0]); print(cmds[1])
EOF
)

# A PATH with no `dot` on it.
SHADOW="$WORK/path"
mkdir -p "$SHADOW"
NEWPATH=""
IFS=: read -ra DIRS <<< "$PATH"
for d in "${DIRS[@]}"; do
  if [[ -e "$d/dot" ]]; then
    s="$SHADOW/$(echo "$d" | tr / _)"
    mkdir -p "$s"
    for f in "$d"/* "$d"/.[!.]*; do
      [[ -e "$f" && "$(basename "$f")" != dot ]] && ln -sf "$f" "$s/"
    done
    d=$s
  fi
  NEWPATH="${NEWPATH:+$NEWPATH:}$d"
done

step "new venv"
python -m venv "$WORK/venv"
VENV_PATH="$WORK/venv/bin:$NEWPATH"
run() {  # runs a command as if the venv were activated, with the dot-free PATH
  env PATH="$VENV_PATH" VIRTUAL_ENV="$WORK/venv" PYTHONNOUSERSITE=1 bash -c "$1"
}
run 'command -v dot >/dev/null && { echo "dot is still on PATH: $(command -v dot)"; exit 1; } || true'

step "README command 1: ${COMMANDS[0]}"
run "${COMMANDS[0]}"

step "README command 2: ${COMMANDS[1]}"
export PYTEST_ADDOPTS="--junitxml=$WORK/junit.xml -rs"
run "${COMMANDS[1]}"
unset PYTEST_ADDOPTS

step "checking what ran"
run "python - '$WORK/junit.xml'" <<'EOF'
import importlib.util, shutil, sys
import xml.etree.ElementTree as ET

assert importlib.util.find_spec("torch") is None, "torch is installed in the fresh venv"
assert shutil.which("dot") is None, "dot is on PATH"
cases = {(c.get("classname"), c.get("name")): c for c in ET.parse(sys.argv[1]).iter("testcase")}
nb = cases.get(("tests.test_notebook", "test_walkthrough_executes_without_errors"))
assert nb is not None, "the notebook test was not collected"
assert not list(nb), f"the notebook test did not pass: {[e.tag for e in nb]}"
viz = cases.get(("tests.test_visualization", "test_without_dot_graphviz_pure_renders"))
assert viz is not None and not list(viz), "graphviz-pure rendering was not tested"
print(f"fresh machine: {len(cases)} tests; the notebook ran with no `dot` and no torch")
EOF
step "done"
