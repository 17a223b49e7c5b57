#!/usr/bin/env bash
# Runs the core's Rust tests (storage, views, kernels, gemm, optimizer updates: the code with
# `unsafe` blocks) under valgrind memcheck; any invalid read/write or leak fails the run.
#   bash scripts/memcheck.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "memcheck needs valgrind (apt-get install valgrind)"; exit 2; }
bin=$(cargo test -p mikagrad-core --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "mikagrad_core":
        print(m["executable"])' | tail -1)
RAYON_NUM_THREADS=1 valgrind --tool=memcheck --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite --show-leak-kinds=definite --quiet "$bin" --test-threads=1 -q
