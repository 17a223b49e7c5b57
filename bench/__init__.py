"""MikaGrad's benchmark suite (issue 4). Run ``python -m bench``; see BENCHMARKS.md."""
