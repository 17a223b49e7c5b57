"""Fits the polynomial coefficients of rust/core/src/ops/math.rs, in 60-digit arithmetic.

    pip install mpmath && python scripts/fit_math.py

Each fit is Chebyshev interpolation (close to minimax) on the interval the kernel uses. It
prints each fit's worst relative error on a dense grid, then the Rust constants.
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 60


def chebyshev_nodes(lo, hi, n):
    half = mp.mpf(1) / 2
    return [(lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (k + half) / n) for k in range(n)]


def cheb_fit(f, lo, hi, degree):
    """Chebyshev coefficients c_k of f on [lo, hi], in u = (2x - lo - hi) / (hi - lo)."""
    n = degree + 1
    xs = chebyshev_nodes(lo, hi, n)
    fs = [f(x) for x in xs]
    cs = []
    for j in range(n):
        s = mp.fsum(fs[k] * mp.cos(mp.pi * j * (k + mp.mpf(1) / 2) / n) for k in range(n))
        cs.append(2 * s / n)
    cs[0] /= 2
    return cs


def cheb_to_monomial(cs, lo, hi):
    """Monomial coefficients in x of sum c_k T_k(u), u = (2x - lo - hi) / (hi - lo)."""
    # T_k as monomials in u, then u = a·x + b substituted.
    n = len(cs)
    t_prev, t_cur = [mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]
    poly_u = [cs[0]] + [mp.mpf(0)] * (n - 1)
    for k in range(1, n):
        for i, c in enumerate(t_cur):
            poly_u[i] += cs[k] * c
        t_next = [mp.mpf(0)] * (len(t_cur) + 1)
        for i, c in enumerate(t_cur):
            t_next[i + 1] += 2 * c
        for i, c in enumerate(t_prev):
            t_next[i] -= c
        t_prev, t_cur = t_cur, t_next
    a, b = 2 / (hi - lo), -(lo + hi) / (hi - lo)
    out = [mp.mpf(0)] * n
    power = [mp.mpf(1)]  # (a·x + b)^i
    for i in range(n):
        for j, c in enumerate(power):
            out[j] += poly_u[i] * c
        nxt = [mp.mpf(0)] * (len(power) + 1)
        for j, c in enumerate(power):
            nxt[j] += b * c
            nxt[j + 1] += a * c
        power = nxt
    return out


def worst(f, approx, lo, hi, n=1500):
    w = mp.mpf(0)
    for k in range(n + 1):
        x = lo + (hi - lo) * k / n
        fx = f(x)
        if fx != 0:
            w = max(w, abs((approx(x) - fx) / fx))
    return w


def emit(name, coeffs):
    print(f"const {name}: [f64; {len(coeffs)}] = [")
    for c in coeffs:
        print(f"    {mp.nstr(c, 21, min_fixed=1, max_fixed=0)},")
    print("];")


def tanh_small(bound, suffix):
    # tanh(x) = x + x·z·P(z), z = x², for |x| <= 0.55.
    zmax = mp.mpf("0.3025")

    def p(z):
        if z == 0:
            return mp.mpf(-1) / 3
        x = mp.sqrt(z)
        return (mp.tanh(x) / x - 1) / z

    for degree in range(6, 16):
        mono = cheb_to_monomial(cheb_fit(p, mp.mpf(0), zmax, degree), mp.mpf(0), zmax)

        def tanh_approx(x, mono=mono):
            z = x * x
            return x + x * z * mp.polyval(mono[::-1], z)

        err = worst(mp.tanh, tanh_approx, mp.mpf("1e-6"), mp.sqrt(zmax))
        if err < bound:
            print(f"// tanh, |x| <= 0.55: degree {degree}, worst relative error {mp.nstr(err, 3)}")
            emit("TANH_SMALL" + suffix, [mp.mpf(float(c)) for c in mono])
            return
    raise SystemExit("tanh: no degree met the bound")


def erf_small(bound, suffix):
    # erf(z) = z·E(z²), for z <= 0.477 (where Φ(−z√2) is 1/4 or more).
    wmax = mp.mpf("0.2275")

    def e(w):
        if w == 0:
            return 2 / mp.sqrt(mp.pi)
        z = mp.sqrt(w)
        return mp.erf(z) / z

    for degree in range(4, 16):
        mono = cheb_to_monomial(cheb_fit(e, mp.mpf(0), wmax, degree), mp.mpf(0), wmax)
        # The first coefficient, 2/√π, is rounded like the others.
        err = worst(e, lambda w, mono=mono: mp.polyval([mp.mpf(float(c)) for c in mono[::-1]], w),
                    mp.mpf(0), wmax)
        if err < bound:
            print(f"// erf(z)/z in w = z², z <= 0.477: degree {degree}, worst relative error "
                  f"{mp.nstr(err, 3)}")
            emit("ERF_SMALL" + suffix, [mp.mpf(float(c)) for c in mono])
            return
    raise SystemExit("erf: no degree met the bound")


def erfcx_fit(bound, suffix):
    # erfcx(z) = e^z²·erfc(z) on three pieces, each a polynomial in v − (the piece's middle):
    # v = z for z in [0.477, 1.25] and [1.25, 3], where erfcx(z)/2 is fitted, and v = 1/z² for
    # z in [3, 27], where z·erfcx(z)/√2 is (it tends to 1/√(2π)). So ½·erfc(z) is e^−z² times
    # the fit, divided by |x| = z√2 on the far piece, with no constant factor left to round.
    # Both variables carry no more than the rounding of z, and the constant term is kept as
    # two doubles.
    def erfcx(z):
        return mp.erfc(z) * mp.exp(z * z)

    def near(z):
        return erfcx(z) / 2

    def far(v):
        return erfcx(1 / mp.sqrt(v)) / mp.sqrt(2 * v)

    pieces = [(near, mp.mpf("0.477"), mp.mpf("1.25")), (near, mp.mpf("1.25"), mp.mpf(3)),
              (far, 1 / mp.mpf(27) ** 2, mp.mpf(1) / 9)]
    for degree in range(4, 30):
        fits, errs = [], []
        for f, lo, hi in pieces:
            mid = mp.mpf(float((lo + hi) / 2))
            mono = cheb_to_monomial(cheb_fit(f, lo, hi, degree), lo - mid, hi - mid)
            c0_lo = mp.mpf(float(mono[0] - mp.mpf(float(mono[0]))))
            coeffs = [mp.mpf(float(c)) for c in mono]

            def approx(v, coeffs=coeffs, c0_lo=c0_lo, mid=mid):
                return mp.polyval(coeffs[::-1], v - mid) + c0_lo

            errs.append(worst(f, approx, lo, hi, n=500))
            fits.append((mid, coeffs, c0_lo))
        if max(errs) < bound:
            print(f"// erfcx pieces: degree {degree}, worst relative errors "
                  f"{[mp.nstr(e, 3) for e in errs]}")
            mids = ", ".join(mp.nstr(f[0], 21) for f in fits)
            los = ", ".join(mp.nstr(f[2], 21) for f in fits)
            print(f"const ERFCX_MID{suffix}: [f64; 3] = [{mids}];")
            print(f"const ERFCX_LO{suffix}: [f64; 3] = [{los}];")
            print(f"const ERFCX{suffix}: [[f64; {degree + 1}]; 3] = [")
            for _, coeffs, _ in fits:
                print("    [")
                for c in coeffs:
                    print(f"        {mp.nstr(c, 21, min_fixed=1, max_fixed=0)},")
                print("    ],")
            print("];")
            return
    raise SystemExit("erfcx: no degree met the bound")


if __name__ == "__main__":
    # float64 kernels: errors well below an ulp. float32 results go through the same f64
    # code with shorter fits: 1e-11 is under 1/5000 of a float32 ulp.
    for suffix, bounds in [("", ("1e-17", "1.2e-16", "3e-17")), ("_F32", ("1e-11",) * 3)]:
        tanh_bound, erf_bound, erfcx_bound = (mp.mpf(b) for b in bounds)
        tanh_small(tanh_bound, suffix)
        erf_small(erf_bound, suffix)
        erfcx_fit(erfcx_bound, suffix)
