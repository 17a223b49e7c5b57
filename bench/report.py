"""Turns the results of ``bench.run`` into the markdown report (stdout and BENCHMARKS.md)."""

from __future__ import annotations

from typing import Any

from .check import TOLERANCE
from .timing import Stats
from .workloads import CONV_LARGE_CASE, CONV_LARGE_FLOPS

FWS = ["MikaGrad", "PyTorch", "JAX", "MLX", "numpy", "micrograd"]
TINY_TARGET = "a + b, (1,), requires grad"
CASE_NAMES = {"moons": "moons step", "digits": "digits step", "large": "large MLP step"}


# ---- number formatting ---------------------------------------------------------------------


def _sig(x: float) -> str:
    """Three significant digits, never in scientific notation."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def _unit(seconds: float) -> tuple[float, str]:
    if seconds < 1e-3:
        return 1e6, "µs"
    if seconds < 1.0:
        return 1e3, "ms"
    return 1.0, "s"


def t(seconds: float) -> str:
    scale, unit = _unit(seconds)
    return f"{_sig(seconds * scale)} {unit}"


def cell(st: Any) -> str:
    """'245 µs (240–262)': the median, then min–max in the same unit; or a note."""
    if st is None:
        return "—"
    if not isinstance(st, Stats):
        return str(st)
    scale, unit = _unit(st.median)
    if st.samples == 1:
        return f"{_sig(st.median * scale)} {unit} (1 run)"
    return f"{_sig(st.median * scale)} {unit} ({_sig(st.min * scale)}–{_sig(st.max * scale)})"


def ratio(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}×"
    return f"{x:.3g}×"


def _med(row: dict[str, Any], fw: str) -> float | None:
    st = row.get(fw)
    return st.median if isinstance(st, Stats) else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def time_table(results: dict[str, dict[str, Any]], first: str = "case") -> list[str]:
    """Rows of cases: each framework's median (min–max), then MikaGrad's ratios."""
    present = [f for f in FWS if any(f in r for r in results.values())]
    header = [first] + present
    ratios = [f for f in ("PyTorch", "JAX", "MLX", "numpy") if f in present]
    header += [f"MikaGrad ÷ {f}" for f in ratios]
    if "micrograd" in present:
        header.append("micrograd ÷ MikaGrad")
    rows = []
    for case, row in results.items():
        mg = _med(row, "MikaGrad")
        r = [case] + [cell(row.get(f)) for f in present]
        r += [ratio(_div(mg, _med(row, f))) for f in ratios]
        if "micrograd" in present:
            r.append(ratio(_div(_med(row, "micrograd"), mg)))
        rows.append(r)
    return _table(header, rows)


# ---- the targets of issue 13 ---------------------------------------------------------------


def _gflops(st: Any, n: int) -> float | None:
    return 2 * n**3 / st.median / 1e9 if isinstance(st, Stats) else None


def _find(section: dict[str, Any] | None, prefix: str) -> dict[str, Any]:
    for case, row in (section or {}).items():
        if case.startswith(prefix):
            return row
    return {}


Target = tuple[str, str, str, float | None, bool | None]


def targets(res: dict[str, Any]) -> list[Target]:
    """(case, goal, measured, ratio, passed) for each target; passed is None without data."""
    out: list[Target] = []

    def against(case: str, row: dict[str, Any], other: str, goal: float,
                goal_text: str | None = None) -> None:
        """MikaGrad's median ÷ ``other``'s must be at most ``goal``."""
        r = _div(_med(row, "MikaGrad"), _med(row, other))
        text = goal_text or f"≤ {goal:g}× {other}'s time"
        out.append((case, text, f"{cell(row.get('MikaGrad'))} vs {cell(row.get(other))}", r,
                    None if r is None else r <= goal))

    steps = res.get("steps")
    for prefix, goal, rivals in (("moons", 0.15, True), ("digits", 0.35, True),
                                 ("large", 0.9, False)):
        row = _find(steps, prefix)
        against(CASE_NAMES[prefix], row, "PyTorch", goal)
        if prefix == "moons":
            against("moons step", row, "numpy", 1.2, "≤ 1.2× hand-written numpy")
        for fw in ("JAX", "MLX") if rivals else ():
            against(CASE_NAMES[prefix], row, fw, 1.0,
                    "faster than " + ("`jax.jit`" if fw == "JAX" else "`mx.compile`"))
    for n in (512, 1024):
        against(f"`Linear` {n}→{n}, forward + backward",
                _find(res.get("layers"), f"Linear {n}→{n}"), "PyTorch", 1.0)
    mm = res.get("matmul") or {}
    for key, row in mm.get("results", {}).items():
        dtype, n, form = key.split("/")
        a, b = _gflops(row.get("MikaGrad"), int(n)), _gflops(row.get("numpy"), int(n))
        r = _div(a, b)
        out.append((f"matmul {dtype} n={n} {form}", "≥ 0.95× OpenBLAS's GFLOP/s (numpy)",
                    f"{_sig(a) if a else '—'} vs {_sig(b) if b else '—'} GFLOP/s", r,
                    None if r is None else r >= 0.95))
    for case, row in (res.get("math") or {}).items():
        against(case, row, "PyTorch", 1.0)
    against("tiny-op overhead: `a + b`, (1,), graph recorded",
            (res.get("tiny") or {}).get(TINY_TARGET, {}), "PyTorch", 0.25)
    for case, row in (res.get("lectures") or {}).items():
        against(case, row, "PyTorch", 1.0)
    against("digits CNN step", _find((res.get("convnets") or {}).get("cases"), "digits CNN"),
            "PyTorch", 1.0)
    imp = res.get("import") or {}
    if "mikagrad" in imp:
        ms = (imp["mikagrad"]["wall"].median - imp["python -c pass"].median) * 1e3
        np_ms = (imp["numpy"]["wall"].median - imp["python -c pass"].median) * 1e3 \
            if "numpy" in imp else None
        extra = f" (numpy's own import: {np_ms:.0f} ms)" if np_ms is not None else ""
        out.append(("`import mikagrad`", "≤ 100 ms", f"{ms:.0f} ms{extra}", ms / 100,
                    ms <= 100))
    mem = res.get("memory") or {}
    a, b = mem.get("MikaGrad"), mem.get("PyTorch")
    if isinstance(a, dict) and isinstance(b, dict):
        da, db = a["peak_mib"] - a["baseline_mib"], b["peak_mib"] - b["baseline_mib"]
        r = _div(da, db)
        out.append(("peak memory, large MLP, 50 steps (peak RSS − RSS after imports)",
                    "≤ 0.3× PyTorch", f"{da:.1f} MiB vs {db:.1f} MiB", r,
                    None if r is None else r <= 0.3))
    return out


# ---- the report ----------------------------------------------------------------------------


def _header(res: dict[str, Any]) -> list[str]:
    m = res["machine"]
    v = m["versions"]
    git = m["git"] + (" with uncommitted changes" if m["git_dirty"] else "")
    blas_in = m.get("numpy_blas_in_process") or []
    mm = res.get("matmul") or {}
    blas_sub = mm.get("numpy_blas") or []

    def blas(items: list[dict[str, Any]]) -> str:
        return "; ".join(f"{b.get('prefix', '')} ({b.get('internal_api')} "
                         f"{b.get('version', '')}) kernel {b.get('architecture', '?')}, "
                         f"{b.get('num_threads', '?')} threads" for b in items) or "?"
    env = ", ".join(f"{k}={'unset' if val is None else val}" for k, val in m["blas_env"].items())
    lines = [
        "# MikaGrad benchmarks",
        "",
        "Regenerate this file with one command from the repository root:",
        "",
        "```bash",
        "python -m bench --markdown BENCHMARKS.md   # the full run, about 4 minutes",
        "python -m bench --quick                    # a fast subset, about 1.5 minutes, stdout",
        "```",
        "",
        "(`python bench/run.py` is the same. `--wait-quiet 120` waits, before each section, for "
        "other processes to leave the 2 cores idle and reruns a section they disturbed: use it "
        "on a shared machine. `--only steps,matmul` runs some sections, `--skip micrograd` "
        "leaves a framework out, `--check` only checks that the frameworks compute the same "
        "thing, `--json PATH` keeps the raw numbers.)",
        "",
        f"Generated by `{res['command']}` on {res['started']}, in {res['duration_s']:.0f} s"
        + (" (**--quick**: fewer sizes and samples)" if res.get("quick") else "") + ".",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu']}, {m['cores']}, {m['simd']}; {m['memory']} RAM; {m['os']}",
        f"- Python {m['python']}; MikaGrad {v.get('MikaGrad', '?')} (git {git}); {m['rustc']}",
        f"- numpy {v.get('numpy', '—')}: BLAS in this process {blas(blas_in)}; "
        f"in the matmul subprocess {blas(blas_sub)}",
    ]
    if "PyTorch" in v:
        lines.append(f"- PyTorch {v['PyTorch']}: BLAS {m.get('torch_blas')}, "
                     f"{m.get('torch_threads')} threads (`torch.set_num_threads(2)`), "
                     f"CPU capability {m.get('torch_cpu_capability')}")
    for fw, how in (("JAX", "the whole step under `jax.jit`, XLA's CPU backend"),
                    ("MLX", "the whole step under `mx.compile`, `mlx[cpu]`")):
        if fw in v:
            lines.append(f"- {fw} {v[fw]}: {how} (training steps only)")
    lines += [
        f"- micrograd: {v.get('micrograd', '—')} (bench/micrograd.py); scikit-learn "
        f"{m.get('sklearn') or 'not installed'} (digits data: {res.get('digits_source', '—')})",
        f"- Environment: {env}. The numpy side of the matmul table runs in a subprocess with "
        "both unset, so that numpy picks its own kernel; every other numpy number runs in this "
        "process as the environment is.",
        "- Load from other processes while each section ran, in % of one core (busy time in "
        "/proc/stat minus this run's own CPU time): " + ", ".join(
            f"{k} {v * 100:.0f}%" for k, v in (res.get("section_load") or {}).items())
        + ". On 2 cores, load from others stalls the multi-threaded kernels (PyTorch's "
        "OpenMP, OpenBLAS, rayon) most; above ~10%, treat differences of tens of percent as "
        "noise.",
    ]
    for name, why in (res.get("missing") or {}).items():
        lines.append(f"- {name}: {why}")
    return lines + [""]


_HOW = """## How to read this

- Times are the **median** over samples, with **(min–max)** in the same unit. A sample times
  enough calls in a loop to last ~4 ms, with `time.perf_counter`, after warm-up calls, with the
  garbage collector on; samples are taken for ~0.4 s per case and framework (at least 5).
  micrograd runs are single timed calls (1–3 of them), never extrapolated.
- Frameworks run one after another, with a 0.2 s pause between them so that the previous
  one's worker threads are idle (OpenBLAS's spin for ~0.1 s after a call; interleaving the
  thread pools of PyTorch, OpenBLAS and MikaGrad's rayon sample by sample on 2 cores slowed
  them up to 10×). Only the tiny ops, which start no threads, are interleaved sample by sample.
- **MikaGrad ÷ X** is MikaGrad's time divided by X's: below 1 means MikaGrad is faster.
  **micrograd ÷ MikaGrad** is how many times faster MikaGrad is. For matmul, ratios are of
  GFLOP/s (2n³ / median time): above 1 means MikaGrad is faster.
- Every framework starts from the same weights and data and does the same work in float32
  (micrograd: Python floats). numpy does the forward, a hand-written backward and the SGD
  update, with no autograd: it is the floor that autograd bookkeeping adds to. A training
  step is forward + loss, zero_grad, backward and an SGD update (lr 0.05), with the library's
  own optimizer (`mikagrad.optim.SGD`, `torch.optim.SGD`). JAX and MLX compile the whole
  step, as their users do (`jax.jit` of forward, `jax.grad` and the update; `mx.compile` of
  `nn.value_and_grad` and `optim.SGD`), and the timer stops after `block_until_ready` /
  `mx.eval`; they take part in the training steps only.
- Before timing, `bench/check.py` runs two SGD steps of the moons and digits models in every
  framework and compares the parameters with PyTorch's (see the end of this file).
"""


def _convnet_lines(cn: dict[str, Any]) -> list[str]:
    out = ["### Convolutional networks", "",
           "Forward + backward in float32, the input requiring grad too (every gradient dropped "
           "before each call), `.sum().backward()`; shapes are (N, C, H, W). The digits CNN "
           "step is forward, cross-entropy, zero_grad, backward and `optim.SGD` (lr 0.05) from "
           f"the same weights. PyTorch runs on MikaGrad's {cn.get('threads', '?')} threads.", ""]
    cases = cn.get("cases") or {}
    out += time_table(cases)
    row = cases.get(CONV_LARGE_CASE, {})
    rates = [(f, CONV_LARGE_FLOPS / st.median / 1e9) for f in ("MikaGrad", "PyTorch")
             if isinstance(st := row.get(f), Stats)]
    if rates:
        out += [f"{CONV_LARGE_CASE}: "
                + ", ".join(f"{f} {_sig(g)} GFLOP/s" for f, g in rates)
                + f" (3 products of 2·N·C_out·C_in·9·H·W flops each, forward and both "
                  f"gradients: {CONV_LARGE_FLOPS / 1e9:.2f} GFLOP per call).", ""]
    return out


def _matmul_lines(mm: dict[str, Any]) -> list[str]:
    rows = []
    for key, row in mm.get("results", {}).items():
        dtype, n, form = key.split("/")
        g = {f: _gflops(row.get(f), int(n)) for f in ("MikaGrad", "PyTorch", "numpy")}

        def gcell(f: str, n: int = int(n), row: dict = row, g: dict = g) -> str:
            st = row.get(f)
            if not isinstance(st, Stats):
                return cell(st)
            lo, hi = 2 * n**3 / st.max / 1e9, 2 * n**3 / st.min / 1e9
            return f"{_sig(g[f])} ({_sig(lo)}–{_sig(hi)})"
        rows.append([dtype, n, form, gcell("MikaGrad"),
                     gcell("PyTorch"), gcell("numpy"), ratio(_div(g["MikaGrad"], g["numpy"])),
                     ratio(_div(g["MikaGrad"], g["PyTorch"]))])
    lines = _table(["dtype", "n", "operands", "MikaGrad GFLOP/s", "PyTorch GFLOP/s",
                    "numpy GFLOP/s", "MikaGrad ÷ numpy", "MikaGrad ÷ PyTorch"], rows)
    if mm.get("numpy_error"):
        lines.append(f"numpy subprocess failed: {mm['numpy_error']}")
    return lines


def _scaling_lines(sc: dict[str, Any]) -> list[str]:
    lines = ["### Time per moons-style step as the batch grows", "",
             "MLP 2-16-16-1, hinge + L2, SGD, float32; the last column is MikaGrad's time per "
             "sample.", ""]
    rows = {f"{n:,}": row for n, row in sc.get("batch", {}).items()}
    body = time_table(rows, "batch")
    per = []
    for n, row in sc.get("batch", {}).items():
        mg = _med(row, "MikaGrad")
        per.append(t(mg / int(n)) if mg else "—")
    body[0] += " MikaGrad per sample |"
    body[1] += "---|"
    for i, p in enumerate(per):
        body[2 + i] += f" {p} |"
    lines += body
    lines += ["### Backward time as a chain grows", "",
              "The chain's ops cycle through `* 0.999`, `+ x`, `relu`, `- 0.5` on a (1,) float32 "
              "tensor, then `.sum()`. *build* is the forward (recording the graph), *backward* "
              "the `.backward()` call alone; numpy's column is its forward and hand-written "
              "backward together. A length is skipped when the previous one predicts more than "
              f"{sc.get('cap_s', 15):g} s.", ""]
    chain = sc.get("chain", {})
    present = [f for f in FWS if any(f in r for r in chain.values())]
    header = ["ops"]
    for f in present:
        header += [f"{f} (forward + backward)"] if f == "numpy" else [f"{f} build", f"{f} backward"]
    header += ["backward: MikaGrad ÷ PyTorch", "MikaGrad backward per op"]
    rows2 = []
    for n, row in chain.items():
        r = [f"{int(n):,}"]
        for f in present:
            v = row.get(f)
            if f == "numpy":
                r.append(cell(v["backward"] if isinstance(v, dict) else v))
            elif isinstance(v, dict):
                r += [cell(v["build"]), cell(v["backward"])]
            else:
                r += [cell(v), ""]
        mgb, tb = (row[f]["backward"] if isinstance(row.get(f), dict) else None
                   for f in ("MikaGrad", "PyTorch"))
        r.append(ratio(_div(mgb.median if mgb else None, tb.median if tb else None)))
        r.append(t(mgb.median / int(n)) if mgb else "—")
        rows2.append(r)
    return lines + _table(header, rows2)


def _memory_lines(mem: dict[str, Any]) -> list[str]:
    rows = []
    torch = mem.get("PyTorch")
    tdelta = torch["peak_mib"] - torch["baseline_mib"] if isinstance(torch, dict) else None
    for f, v in mem.items():
        if isinstance(v, dict):
            d = v["peak_mib"] - v["baseline_mib"]
            rows.append([f, f"{v['baseline_mib']:.1f}", f"{v['peak_mib']:.1f}", f"{d:.1f}",
                         ratio(_div(d, tdelta))])
        else:
            rows.append([f, str(v), "", "", ""])
    return ["Each framework in its own process: 50 steps of the large MLP (784-512-512-10, batch "
            "256, float32). The peak RSS is read after the imports (baseline) and after the "
            "steps; the difference counts the model, data, graph and workspace. It is `VmHWM` "
            "from /proc/self/status, the same high-water mark as `getrusage().ru_maxrss`, "
            "because Linux carries `ru_maxrss` over `execve` from the (large) parent.", ""
            ] + _table(
        ["framework", "RSS after imports (MiB)", "peak RSS (MiB)", "peak − baseline (MiB)",
         "÷ PyTorch"], rows)


def _import_lines(imp: dict[str, Any]) -> list[str]:
    base = imp["python -c pass"]
    rows = [["`python -c pass`", cell(base), "", ""]]
    for mod, v in imp.items():
        if mod == "python -c pass":
            continue
        w = v["wall"]
        it = v.get("importtime_us")
        rows.append([f"`import {mod}`", cell(w), t(max(w.median - base.median, 0.0)),
                     t(it / 1e6) if it else "—"])
    return ["Wall time of `python -c \"import X\"` in a fresh process (median of several), minus "
            "the same for `python -c pass`; and the cumulative time Python itself reports with "
            "`-X importtime`. Bytecode caches are on, as in an installed wheel (pip compiles "
            "on install). `import mikagrad` includes numpy's own import.", ""] + _table(
        ["command", "wall time", "minus `python -c pass`", "`-X importtime` cumulative"], rows)


def _check_lines(rows: list[tuple[str, str, float]]) -> list[str]:
    out = ["## Correctness check", "",
           "Two SGD steps from the same weights (and the 100-op chain's gradient on (4, 4)); the "
           "largest difference of any parameter from PyTorch's, relative to the largest "
           "parameter (float32 rounding is ~1e-7). The reference's own change from the start "
           "shows that the steps moved the weights. For the digits CNN: the losses of three "
           "SGD steps from the same weights, relative to the largest.", ""]
    bad = [f"{c}/{f}" for c, f, d in rows if "change" not in f and d > TOLERANCE]
    out += _table(["model", "framework", "max relative difference"],
                  [[c, f, f"{d:.1e}"] for c, f, d in rows])
    return out + [f"**FAILED** (above {TOLERANCE:g}): {', '.join(bad)}" if bad else
                  f"All agree within {TOLERANCE:g}.", ""]


def _us(x: float | None) -> str:
    return "—" if x is None else _sig(x * 1e6)


def _profile_lines(p: dict[str, Any], res: dict[str, Any]) -> list[str]:
    out = ["## Profile findings", "",
           "Measured by `bench/profiling.py` in the same run (MikaGrad internals such as `_arg`, "
           "`_wrap` and `Value._node` are looked up by name and left out if they change).", ""]
    sp = p.get("op_split", {})
    out += ["### One tiny op, split", "",
            "`a + b` on (1,) float32 leaves that require grad; each part timed alone.", ""]
    out += _table(["part", "µs per call"], [[k, _us(v)] for k, v in sp.items()])
    out += ["### Kernel speed against numpy", "",
            "Forward only, no graph, float32; MikaGrad time ÷ numpy time (below 1: faster).", ""]
    out += _table(["op", "shape", "MikaGrad", "numpy", "MikaGrad ÷ numpy"],
                  [[r["op"], str(tuple(r["shape"])), t(r["MikaGrad"]), t(r["numpy"]),
                    ratio(r["ratio"])] for r in p.get("kernels", [])])
    bo = p.get("backward_ops", [])
    if bo:
        out += ["### Backward alone, op by op, at the large MLP's shapes", "",
                "Batch 256, float32, with an upstream gradient of the output's shape; MikaGrad "
                "and PyTorch rerun `backward` on one recorded graph (the leaves' `.grad` reset "
                "first), numpy computes the same gradients by hand.", ""]
        out += _table(["op", "MikaGrad", "PyTorch", "numpy", "MikaGrad ÷ PyTorch",
                       "MikaGrad ÷ numpy"],
                      [[r["op"], t(r["MikaGrad"]), t(r["PyTorch"]) if "PyTorch" in r else "—",
                        t(r["numpy"]), ratio(_div(r["MikaGrad"], r.get("PyTorch"))),
                        ratio(_div(r["MikaGrad"], r["numpy"]))] for r in bo])
    gce = p.get("gc")
    if gce:
        out += ["### The garbage collector and long graphs", "",
                f"Building a {gce['n_ops']:,}-op chain (as in the scaling table) with "
                f"{gce['tracked']:,} GC-tracked objects in the process: {_us(gce['on'])} µs per "
                f"op with the collector on, {_us(gce['off'])} µs with it off.", ""]
    for case in ("moons", "digits", "large"):
        c = p.get(case)
        if not c:
            continue
        ph = c["phases"]
        fws = [f for f in ("MikaGrad", "PyTorch", "numpy") if f in ph]
        out += [f"### {CASE_NAMES[case]}: phases", "",
                "Median µs per phase over the steps (numpy: the hand-written backward; its "
                "zero_grad is nothing).", ""]
        out += _table(["phase"] + fws, [[k] + [_us(ph[f][k]) for f in fws]
                                         for k in ("forward", "zero_grad", "backward", "step",
                                                   "total")])
        g = c["graph"]
        ops = ", ".join(f"{k} {v}" for k, v in g["ops"].items())
        cp = c["cprofile"]
        share = cp["share"]
        bw = (f" Backward runs {g['backward_steps']} steps, {g['unbroadcasts']} of them summing a "
              "gradient back over broadcast axes." if "backward_steps" in g else "")
        out += [f"Graph: {g['op_nodes']} op nodes ({ops}) and {g['leaves']} leaves.{bw} cProfile: "
                f"{cp['calls']:.0f} Python-level calls per step, {cp['rust_calls']:.0f} of them "
                f"into Rust; own time {share.get('rust', 0):.0%} in Rust calls, "
                f"{share.get('mikagrad', 0):.0%} in MikaGrad's Python, "
                f"{share.get('bench', 0):.0%} in the step's own code, "
                f"{share.get('other', 0):.0%} elsewhere (a step takes "
                f"{_us(cp['wall_under_profiler'])} µs under the profiler, whose per-call cost "
                "inflates the Python share).", ""]
        out += _table(["function (own time, per step)", "kind", "calls", "own µs", "cumulative µs"],
                      [[f"`{r['name']}`", r["kind"], f"{r['calls']:.0f}", _us(r["tottime"]),
                        _us(r["cumtime"])] for r in cp["top"]])
    return out + ["### What the numbers say", ""] + findings(p, res) + [""]


def findings(p: dict[str, Any], res: dict[str, Any]) -> list[str]:
    """Bullet points computed from the profile and the results."""
    out = []
    sp = p.get("op_split", {})
    full = sp.get("a + b")
    core = next((v for k, v in sp.items() if k.startswith("Rust call")), None)
    if full and core:
        shell = max(full - core, 0.0)
        arg = next((v for k, v in sp.items() if k.startswith("_arg")), None)
        wrap = next((v for k, v in sp.items() if k.startswith("_wrap")), None)
        floor = next((v for k, v in sp.items() if k.startswith("floor")), None)
        torch = sp.get("PyTorch a + b")
        out.append(
            f"- **Per op.** `a + b` costs {_us(full)} µs"
            + (f" (PyTorch {_us(torch)} µs)" if torch else "")
            + f". The Rust call alone (`Node.binary`: operand check, kernel, node made and "
            f"freed) is {_us(core)} µs, so the Python shell is {_us(shell)} µs "
            f"({shell / full:.0%}): `_arg` {_us(arg)} µs, `_wrap` {_us(wrap)} µs, entering "
            f"`Value.__add__` about {_us(floor)} µs (a do-nothing Python `__add__`)."
            + (" The Rust side is the larger part: look there first (node allocation, "
               "the operand and dtype checks, the kernel's setup for one element)."
               if core > shell else
               " The shell is the larger part: move coercion and wrapping into Rust "
               "(`Node` methods that take a `Value` or a number and return the new `Value`)."))
    kern = p.get("kernels", [])
    slow = sorted((r for r in kern if r["ratio"] > 1.5), key=lambda r: -r["ratio"])
    if slow:
        worst = ", ".join(f"`{r['op']}` {tuple(r['shape'])} {ratio(r['ratio'])}" for r in slow[:5])
        names = {r["op"] for r in slow}
        hints = []
        if names & {"exp", "tanh"}:
            hints.append("`exp`/`tanh` want vectorised f32 approximations instead of scalar "
                         "libm calls (the softmax and cross-entropy rows lean on `exp`)")
        if names & {"sum()", "sum(axis=0)"}:
            hints.append("reductions want contiguous SIMD loops (pairwise sums keep float32 "
                         "accurate without an f64 accumulator)")
        if names - {"exp", "tanh", "sum()", "sum(axis=0)"}:
            hints.append("the other rows want contiguous fast paths without per-element index "
                         "arithmetic")
        text = "; ".join(hints)
        out.append(f"- **Kernels.** Slower than numpy by more than 1.5×: {worst}. "
                   + text[:1].upper() + text[1:] + ".")
    for case in ("moons", "digits", "large"):
        c = p.get(case)
        if not c or "MikaGrad" not in c["phases"]:
            continue
        ph = c["phases"]["MikaGrad"]
        n = c["graph"]["op_nodes"]
        np_ph = c["phases"].get("numpy")
        torch_ph = c["phases"].get("PyTorch")
        parts = sorted(((k, ph[k]) for k in ("forward", "zero_grad", "backward", "step")),
                       key=lambda kv: -kv[1])
        line = (f"- **{CASE_NAMES[case]}.** {_us(ph['total'])} µs"
                + (f" (PyTorch {_us(torch_ph['total'])}, numpy by hand {_us(np_ph['total'])})"
                   if torch_ph and np_ph else "")
                + f"; {parts[0][0]} is the largest phase ({ph[parts[0][0]] / ph['total']:.0%}). "
                f"Forward costs {_us(ph['forward'] / n)} µs and backward "
                f"{_us(ph['backward'] / n)} µs per op node ({n} op nodes)")
        if np_ph:
            line += (f"; numpy's hand-written forward is {_us(np_ph['forward'])} µs and "
                     f"backward {_us(np_ph['backward'])} µs")
            extra = [(k, ph[k] - np_ph[k]) for k in ("forward", "backward")]
            if any(d > 0 for _, d in extra):
                line += ", so MikaGrad spends " + " and ".join(
                    f"{_us(d)} µs more in {k}" for k, d in extra if d > 0)
            if any(d <= 0 for _, d in extra):
                line += ("; MikaGrad is faster than the hand-written numpy in "
                         + " and ".join(k for k, d in extra if d <= 0))
        line += "."
        top = c["cprofile"]["top"][:3]
        line += " Heaviest under cProfile: " + ", ".join(
            f"`{r['name']}` {_us(r['tottime'])} µs" for r in top) + "."
        opt = ph["zero_grad"] + ph["step"]
        if opt / ph["total"] > 0.15:
            line += (f" zero_grad + optimizer take {opt / ph['total']:.0%}: one fused call for "
                     "all parameters would remove the per-parameter Python loop.")
        if case == "moons":
            l2 = c["graph"]["ops"]
            line += (" The L2 term `sum((p * p).sum() for p in params)` alone adds 3 op nodes "
                     "per parameter (mul, sum, add), about half the graph"
                     if l2.get("sum", 0) >= 6 else "")
            line += "."
        out.append(line)
    bo = p.get("backward_ops", [])
    if bo:
        parts = ", ".join(f"`{r['op'].split(':')[0].split(',')[0]}` {t(r['MikaGrad'])} "
                          f"(numpy {t(r['numpy'])}, {ratio(_div(r['MikaGrad'], r['numpy']))})"
                          for r in bo)
        out.append(f"- **Backward by op** (large MLP shapes): {parts}. Where a matmul's "
                   "backward is several times numpy's `g.T @ x`, while the forward matmul "
                   "matches numpy (matmul table), the backward's products are not taking the "
                   "forward's path (parallel gemm on strided operands, no copies).")
    gce = p.get("gc")
    if gce and gce["on"] > 1.5 * gce["off"]:
        out.append(f"- **Long graphs.** Building a {gce['n_ops']:,}-op chain costs "
                   f"{_us(gce['on'])} µs per op with Python's garbage collector on and "
                   f"{_us(gce['off'])} µs with it off: every intermediate `Value` stays alive "
                   "(each holds its operands in `_parents` for `parents`), so the graph is "
                   "that many GC-tracked objects that each full collection walks again. "
                   "PyTorch keeps intermediates in C++, out of the collector's sight; "
                   "giving `parents` from the Rust node (no `_parents`) would do the same.")
    mm = (res.get("matmul") or {}).get("results", {})
    worst = []
    for key, row in mm.items():
        dtype, n, form = key.split("/")
        r = _div(_gflops(row.get("MikaGrad"), int(n)), _gflops(row.get("numpy"), int(n)))
        if r is not None:
            worst.append((r, f"{dtype} n={n} {form}"))
    if worst:
        worst.sort()
        out.append(f"- **Matmul.** Lowest ratio to numpy: {ratio(worst[0][0])} ({worst[0][1]}); "
                   f"highest {ratio(worst[-1][0])} ({worst[-1][1]}).")
    return out


def render(res: dict[str, Any]) -> str:
    lines = _header(res)
    tg = targets(res)
    lines += ["## Targets (issue 13)", "",
              "Each target as a ratio measured in this run (for times: MikaGrad ÷ other, lower "
              "is better; for matmul: GFLOP/s ratio, higher is better; for import: the time ÷ "
              "100 ms).", ""]
    lines += _table(["case", "target", "measured (MikaGrad vs other)", "ratio", "status"],
                    [[c, g, m, ratio(r), "—" if ok is None else ("**PASS**" if ok else "MISS")]
                     for c, g, m, r, ok in tg])
    passed = sum(1 for *_, ok in tg if ok)
    lines += [f"{passed} of {len(tg)} targets pass.", ""]
    loaded = {k: v for k, v in (res.get("section_load") or {}).items() if v > 0.25}
    if loaded:
        lines += ["**Warning:** other processes kept the CPUs busy while these sections ran: "
                  + ", ".join(f"{k} ({v:.2f} cores)" for k, v in loaded.items())
                  + ". Their multi-threaded numbers (PyTorch, OpenBLAS, MikaGrad's matmul) are "
                  "not reliable; rerun with `--wait-quiet 120` when the machine is idle.", ""]
    lines += [_HOW]
    if any(res.get(k) for k in ("tiny", "chain", "steps", "layers", "softmax", "index",
                                 "lectures", "convnets", "higher", "math",
                                 "matmul")):
        lines += ["## Results", ""]
    sections = [
        ("tiny", "### Per-op overhead (forward only)",
         "Tiny tensors; MikaGrad and PyTorch record the graph unless 'no grad' is said "
         "(micrograd always does). The issue's tiny-op target is the 'requires grad' row."),
        ("chain", "### Graph build + backward on a chain", ""),
        ("steps", "### Training steps", ""),
        ("layers", "### Linear layers", "`Linear` forward + backward, the input requiring grad "
         "too, float32 (numpy: `x @ W.T + b` and its three gradients)."),
        ("softmax", "### Softmax and cross-entropy",
         "Forward + backward on (N, C) logits, float32; softmax is given a random upstream "
         "gradient, cross-entropy has integer targets and mean reduction."),
        ("index", "### Integer-array indexing and gather",
         "makemore's bigram sizes: 228,146 int64 indices into 27 characters; `probs` is "
         "float32 and requires grad (so the graph is recorded), `eye` is float32."),
        ("lectures", "### Zero to Hero hot spots",
         "makemore part 1's bigram table filled one pair at a time in Python, and part 5's "
         "3-D input times a weight matrix, float32, with both gradients."),
    ]
    for key, title, note in sections:
        if res.get(key):
            lines += [title, ""] + ([note, ""] if note else []) + time_table(res[key])
    if res.get("convnets"):
        lines += _convnet_lines(res["convnets"])
    if res.get("higher"):
        lines += ["### Gradients of gradients", "",
                  "float64; both libraries build each Hessian row by a backward pass through the "
                  "recorded gradient (torch's default `vectorize=False`), and `hvp` by the "
                  "double-backward trick.", ""] + time_table(res["higher"])
    if res.get("math"):
        lines += ["### Transcendental kernels", "",
                  "Forward only, under no grad, on (256, 512); PyTorch on MikaGrad's thread "
                  "count. Issue 13's target is ≤ 1.0× PyTorch.", ""] + time_table(res["math"])
    if res.get("matmul"):
        lines += ["### Matmul", "",
                  "float32 and float64 products of 2n³ flops: `a @ b` and `a.T @ b` (a view) "
                  "on (n, n), and 3-D @ 2-D, (8, n/8, n) @ (n, n); "
                  "GFLOP/s from the median time (range from the fastest and slowest sample). "
                  "MikaGrad runs `x @ y` under `mikagrad.no_grad()`; numpy runs in a subprocess "
                  "without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE.", ""]
        lines += _matmul_lines(res["matmul"])
    if res.get("scaling"):
        lines += ["## Scaling", ""] + _scaling_lines(res["scaling"])
    if res.get("memory"):
        lines += ["## Peak memory", ""] + _memory_lines(res["memory"])
    if res.get("import"):
        lines += ["## Import time", ""] + _import_lines(res["import"])
    if res.get("profile"):
        lines += _profile_lines(res["profile"], res)
    if res.get("check"):
        lines += _check_lines(res["check"])
    return "\n".join(lines).rstrip() + "\n"
