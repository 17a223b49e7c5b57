//! Vectorized exp, log, tanh, sigmoid, softplus and gelu, for float32 and float64.
//!
//! Each function is a branchless f64 kernel: a range reduction, a polynomial, and selects for
//! the special values, so LLVM turns a loop over a slice into SIMD code. A float32 input is
//! widened to f64, run with series and fits just long enough for float32 (`Single`), and the
//! result rounded once, so it is within an ulp of correctly rounded. `map` compiles its loop
//! for AVX-512, for AVX2 + FMA and for the baseline, and
//! picks one at run time. Every path evaluates the same fused multiply-adds, so every CPU
//! gives the same bits. Polynomials are Taylor series where those converge fast, and
//! Chebyshev fits from `scripts/fit_math.py` where not. tests/test_math_accuracy.py measures
//! the error in ulps.

use rayon::prelude::*;

use crate::error::Result;
use crate::storage::{try_alloc, Element, Storage};
use crate::tensor::Tensor;

/// 1.5·2^52: adding it rounds a float to an integer, which lands in the low mantissa bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;
/// ln 2 split so that n·LN2_HI is exact for |n| < 2^20 (fdlibm's split).
const LN2_HI: f64 = 6.931_471_803_691_238e-1;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// 2^n for an integer-valued n in [-1022, 1023].
#[inline(always)]
fn pow2(n: f64) -> f64 {
    // The low 12 bits of SHIFT + n + 1023 are the biased exponent.
    f64::from_bits((n + (SHIFT + 1023.0)).to_bits() << 52)
}

/// Estrin's scheme, lowest coefficient first: a tree of depth log2(n) instead of Horner's chain of
/// n fused multiply-adds, so more of it runs at once (exp: 15–20% faster). `c` is a constant,
/// so the loops unroll and `t` lives in registers.
#[inline(always)]
fn estrin(x: f64, c: &[f64]) -> f64 {
    let mut t = [0.0; 32];
    let mut n = c.len();
    t[..n].copy_from_slice(c);
    let mut p = x;
    while n > 1 {
        let half = n.div_ceil(2);
        for i in 0..half {
            t[i] = if 2 * i + 1 < n {
                t[2 * i + 1].mul_add(p, t[2 * i])
            } else {
                t[2 * i]
            };
        }
        n = half;
        p *= p;
    }
    t[0]
}

/// What one result precision needs: `Double` for float64 results, `Single` for float32 ones,
/// which are computed in f64 too, with series and fits just long enough for float32.
pub(crate) trait Precision {
    /// Whether results reach f64's own subnormals and overflow, which exp then scales in two
    /// steps; float32's range lies well inside.
    const WIDE: bool;
    const EXPM1_Q: &'static [f64];
    const LOG_R: &'static [f64];
    const TANH_SMALL: &'static [f64];
    const ERF_SMALL: &'static [f64];
    const ERFCX_MID: [f64; 3];
    const ERFCX_LO: [f64; 3];
    /// ERFCX[k][i]: the k-th coefficient of piece i.
    const ERFCX: &'static [[f64; 3]];
}

pub(crate) struct Double;
pub(crate) struct Single;

impl Precision for Double {
    const WIDE: bool = true;
    const EXPM1_Q: &'static [f64] = &EXPM1_Q;
    const LOG_R: &'static [f64] = &LOG_R;
    const TANH_SMALL: &'static [f64] = &TANH_SMALL;
    const ERF_SMALL: &'static [f64] = &ERF_SMALL;
    const ERFCX_MID: [f64; 3] = fit::ERFCX_MID;
    const ERFCX_LO: [f64; 3] = fit::ERFCX_LO;
    const ERFCX: &'static [[f64; 3]] = &transpose(fit::ERFCX);
}

impl Precision for Single {
    const WIDE: bool = false;
    // Terms to 1/9!: 7e-12 at |r| = ln2/2.
    const EXPM1_Q: &'static [f64] = EXPM1_Q.split_at(8).0;
    // Terms to z⁶: 1e-11 at f = 0.5.
    const LOG_R: &'static [f64] = LOG_R.split_at(6).0;
    const TANH_SMALL: &'static [f64] = &fit::TANH_SMALL_F32;
    const ERF_SMALL: &'static [f64] = &fit::ERF_SMALL_F32;
    const ERFCX_MID: [f64; 3] = fit::ERFCX_MID_F32;
    const ERFCX_LO: [f64; 3] = fit::ERFCX_LO_F32;
    const ERFCX: &'static [[f64; 3]] = &transpose(fit::ERFCX_F32);
}

const fn transpose<const N: usize>(a: [[f64; N]; 3]) -> [[f64; 3]; N] {
    let mut out = [[0.0; 3]; N];
    let mut k = 0;
    while k < N {
        out[k] = [a[0][k], a[1][k], a[2][k]];
        k += 1;
    }
    out
}

/// 1/2!, 1/3!, ..., 1/13!: e^r − 1 = r + r²·Q(r) to 1e-17 for |r| <= ln2/2.
const EXPM1_Q: [f64; 12] = [
    0.5,
    1.666_666_666_666_666_6e-1,
    4.166_666_666_666_666_4e-2,
    8.333_333_333_333_333e-3,
    1.388_888_888_888_889e-3,
    1.984_126_984_126_984e-4,
    2.480_158_730_158_73e-5,
    2.755_731_922_398_589e-6,
    2.755_731_922_398_589e-7,
    2.505_210_838_544_172e-8,
    2.087_675_698_786_81e-9,
    1.605_904_383_682_161_3e-10,
];

/// x + lo = n·ln2 + r with |r| <= ln2/2 (Cody–Waite), and e^r − 1.
#[inline(always)]
fn reduce_exp<P: Precision>(x: f64, lo: f64) -> (f64, f64) {
    let n = x.mul_add(std::f64::consts::LOG2_E, SHIFT) - SHIFT;
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x) + lo);
    (n, (r * r).mul_add(estrin(r, P::EXPM1_Q), r))
}

#[inline(always)]
pub(crate) fn exp<P: Precision>(x: f64) -> f64 {
    exp_dd::<P>(x, 0.0)
}

/// e^(x + lo) for a small lo (below x's half-ulp): the exponent as two doubles.
#[inline(always)]
fn exp_dd<P: Precision>(x: f64, lo: f64) -> f64 {
    if P::WIDE {
        // Past these, the result is inf or 0; NaN passes through.
        let x = x.clamp(-746.0, 710.0);
        let (n, em1) = reduce_exp::<P>(x, lo);
        // 2^n in two halves: each is a normal number, and the last product rounds once into
        // the subnormals, or overflows to inf.
        let n1 = (n * 0.5 + SHIFT) - SHIFT;
        (1.0 + em1) * pow2(n1) * pow2(n - n1)
    } else {
        // Past ±200, a float32 result is inf or 0 all the same.
        let (n, em1) = reduce_exp::<P>(x.clamp(-200.0, 200.0), lo);
        (1.0 + em1) * pow2(n)
    }
}

/// 2/3, 2/5, ..., 2/21: log(1 + f) = 2·atanh(s), s = f/(2 + f), whose tail s·R(s²) this is.
const LOG_R: [f64; 10] = [
    6.666_666_666_666_666e-1,
    4e-1,
    2.857_142_857_142_857e-1,
    2.222_222_222_222_222_3e-1,
    1.818_181_818_181_818_2e-1,
    1.538_461_538_461_538_5e-1,
    1.333_333_333_333_333_3e-1,
    1.176_470_588_235_294_1e-1,
    1.052_631_578_947_368_4e-1,
    9.523_809_523_809_523e-2,
];

/// log(1 + f) for f in [−0.3, 0.5], as fdlibm arranges it: f − (f²/2 − s·(f²/2 + R)), so
/// the exact f carries the result and the rounded parts are small next to it.
#[inline(always)]
fn log1p_reduced<P: Precision>(f: f64) -> f64 {
    let s = f / (2.0 + f);
    let z = s * s;
    let r = z * estrin(z, P::LOG_R);
    let hfsq = 0.5 * f * f;
    f - s.mul_add(-(hfsq + r), hfsq)
}

/// Bits of √½: x = 2^k·m with m in [√½, √2).
const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;

#[inline(always)]
pub(crate) fn log<P: Precision>(x: f64) -> f64 {
    // Subnormals are scaled into the normal range first.
    let sub = x < f64::MIN_POSITIVE;
    let xs = if sub { x * 18_014_398_509_481_984.0 } else { x }; // 2^54
    let ix = xs.to_bits();
    // k + 1023, found with unsigned shifts only (AVX2 has no 64-bit arithmetic shift).
    let kb = ix.wrapping_add(0x3ff0_0000_0000_0000 - SQRT_HALF_BITS) >> 52;
    let m = f64::from_bits(ix.wrapping_sub(kb.wrapping_sub(1023) << 52));
    // k as a float without an int-to-float conversion (AVX2 has none for 64 bits).
    let k = f64::from_bits(kb | 0x4330_0000_0000_0000)
        - (4_503_599_627_370_496.0 + 1023.0)
        - if sub { 54.0 } else { 0.0 };
    let l = k.mul_add(LN2_HI, log1p_reduced::<P>(m - 1.0) + k * LN2_LO);
    if x == f64::INFINITY {
        x
    } else if x == 0.0 {
        f64::NEG_INFINITY
    } else if x >= 0.0 {
        l
    } else {
        f64::NAN // x < 0 or NaN
    }
}

/// tanh(x) = x + x·z·P(z), z = x², for |x| <= 0.55 (scripts/fit_math.py).
const TANH_SMALL: [f64; 11] = [
    -3.333_333_333_333_333e-1,
    1.333_333_333_333_271_4e-1,
    -5.396_825_396_743_401_6e-2,
    2.186_948_849_366_694_4e-2,
    -8.863_234_397_814_355e-3,
    3.592_110_378_689_024e-3,
    -1.455_661_830_100_716e-3,
    5.889_360_520_074_057e-4,
    -2.346_347_410_887_237e-4,
    8.511_313_685_577_672e-5,
    -2.060_276_537_636_634e-5,
];

#[inline(always)]
pub(crate) fn tanh<P: Precision>(x: f64) -> f64 {
    let a = x.abs();
    let z = x * x;
    let small = (x * z).mul_add(estrin(z, P::TANH_SMALL), x);
    // 1 − 2/(e^2a + 1); past |x| = 20 that is 1 in float64.
    let e = exp::<P>(2.0 * a.min(20.0));
    let large = 1.0 - 2.0 / (e + 1.0);
    // NaN takes the polynomial, which keeps it; the sign also keeps tanh(−0) = −0.
    if a >= 0.55 { large } else { small }.copysign(x)
}

#[inline(always)]
pub(crate) fn sigmoid<P: Precision>(x: f64) -> f64 {
    // e^−|x| never overflows: 1/(1 + e) for x >= 0, e/(1 + e) below.
    let e = exp::<P>(-x.abs());
    let num = if x >= 0.0 { 1.0 } else { e };
    num / (1.0 + e)
}

#[inline(always)]
pub(crate) fn softplus<P: Precision>(x: f64) -> f64 {
    // max(x, 0) + log1p(e), e = e^−|x| in (0, 1]. Above ½, log1p(e) = ln2 + log1p((e − 1)/2),
    // whose argument is exact and inside log1p_reduced's range.
    let e = exp::<P>(-x.abs());
    let high = e > 0.5;
    let f = if high { (e - 1.0) * 0.5 } else { e };
    let (hi, lo) = if high { (LN2_HI, LN2_LO) } else { (0.0, 0.0) };
    let l = hi + (log1p_reduced::<P>(f) + lo);
    if x.is_nan() {
        x
    } else {
        x.max(0.0) + l
    }
}

/// The Chebyshev fits of scripts/fit_math.py that have no home above: erfcx(z) = e^z²·erfc(z)
/// as a polynomial in v − ERFCX_MID[i] on three pieces, erfcx(z)/2 in v = z for z in
/// [0.477, 1.25] and [1.25, 3], and z·erfcx(z)/√2 in v = 1/z² for z in [3, 27], ERFCX_LO[i]
/// being the low part of each constant term; and the shorter float32 fits (`_F32`).
#[allow(
    clippy::excessive_precision,
    clippy::unreadable_literal,
    clippy::approx_constant
)]
mod fit {
    pub const ERFCX_MID: [f64; 3] = [0.863500000000000045297, 2.125, 0.0562414266117969852132];
    pub const ERFCX_LO: [f64; 3] = [
        1.17206247164637438528e-17,
        4.42974000393145176729e-18,
        -1.64465780691235500337e-17,
    ];
    pub const ERFCX: [[f64; 19]; 3] = [
        [
            2.33984342334897565951e-1,
            -1.60098624335388156625e-1,
            9.57391802212899101221e-2,
            -5.16185614762028691094e-2,
            2.55832761932943582306e-2,
            -1.18109609933176595842e-2,
            5.12817045852173320625e-3,
            -2.10936737208928387632e-3,
            8.26682933170684629623e-4,
            -3.10117035993407146998e-4,
            1.11779374781950362346e-4,
            -3.88355436637215144734e-5,
            1.30408095973364572832e-5,
            -4.24238200990034826154e-6,
            1.33968588342716929855e-6,
            -4.10769303546908029074e-7,
            1.22880853712468657513e-7,
            -3.79825646424699079411e-8,
            1.07954623884700851621e-8,
        ],
        [
            1.21335182306327268864e-1,
            -4.8515058745865417833e-2,
            1.8240682471363359185e-2,
            -6.50240566280878892064e-3,
            2.21153521894298802156e-3,
            -7.21157329100312154135e-4,
            2.26358631607533462805e-4,
            -6.86129240176928587285e-5,
            2.01390414024586148238e-5,
            -5.73721821909814911223e-6,
            1.58949353175883323109e-6,
            -4.28992577941324611469e-7,
            1.1297183888116283825e-7,
            -2.90969671332418809929e-8,
            7.3221229762808578067e-9,
            -1.76767029971520176668e-9,
            4.27647683153294770056e-10,
            -1.2545494766916469736e-10,
            2.90021207337130605664e-11,
        ],
        [
            3.88558171279925312902e-1,
            -1.71484982183128936706e-1,
            2.08228865548965524912e-1,
            -3.90049066505933073046e-1,
            9.53721323767501849566e-1,
            -2.81231228884425732417,
            9.55471979267201021457,
            -3.63179126958851554718e+1,
            1.51337707184844589392e+2,
            -6.81248887063883898918e+2,
            3.27569025366411779032e+3,
            -1.66409309845555071661e+4,
            8.90405079974472901085e+4,
            -5.17857240375746798236e+5,
            3.04230952853783778846e+6,
            -1.25628779278452172875e+7,
            7.38897631032997071743e+7,
            -1.43844756973773574829e+9,
            9.87794601930186271667e+9,
        ],
    ];
    pub const TANH_SMALL_F32: [f64; 7] = [
        -3.33333333322261171627e-1,
        1.33333329741823686243e-1,
        -5.39680627858733774627e-2,
        2.18656478767247954009e-2,
        -8.82613539306835968856e-3,
        3.4047594268392586403e-3,
        -9.65573707084117663184e-4,
    ];
    pub const ERF_SMALL_F32: [f64; 6] = [
        1.1283791670880098934,
        -3.76126386656431277444e-1,
        1.12837794645124361859e-1,
        -2.68638716965482644838e-2,
        5.20433110934973453682e-3,
        -7.76740438492839525321e-4,
    ];
    pub const ERFCX_MID_F32: [f64; 3] = [0.863500000000000045297, 2.125, 0.0562414266117969852132];
    pub const ERFCX_LO_F32: [f64; 3] = [
        -8.74924898320713309164e-18,
        4.59964632997600655699e-18,
        -9.67382040988357479836e-18,
    ];
    pub const ERFCX_F32: [[f64; 14]; 3] = [
        [
            2.33984342334897871263e-1,
            -1.60098624335388239892e-1,
            9.57391802211030595871e-2,
            -5.16185614761456371125e-2,
            2.55832762132920769893e-2,
            -1.18109609994439136021e-2,
            5.1281696564474859093e-3,
            -2.10936712636348175712e-3,
            8.26698235579724949491e-4,
            -3.10121724463713799216e-4,
            1.11629811971876018476e-4,
            -3.87897134506042903421e-5,
            1.37620911412763731598e-5,
            -4.46345165884131324569e-6,
        ],
        [
            1.21335182306489056114e-1,
            -4.85150587459050042227e-2,
            1.82406824506640800887e-2,
            -6.50240565774220981993e-3,
            2.21153565049736532469e-3,
            -7.21157434734298846517e-4,
            2.26355265469565218464e-4,
            -6.86121001302591863348e-5,
            2.01514998224240641708e-5,
            -5.74026686165719071323e-6,
            1.56598113943036960539e-6,
            -4.23242363977051411728e-7,
            1.34619560427620893317e-7,
            -3.43807203266691934551e-8,
        ],
        [
            3.88558171279926534147e-1,
            -1.71484982183136458467e-1,
            2.08228865509040961257e-1,
            -3.90049066259580246019e-1,
            9.53721534618648059123e-1,
            -2.81231358822374311046,
            9.55430477184225601661,
            -3.63153653340710533826e+1,
            1.51723149493379111163e+2,
            -6.8359532788880062526e+2,
            3.0949723328834907079e+3,
            -1.55605305953926908842e+4,
            1.29440899555677664466e+5,
            -7.47210101540777017362e+5,
        ],
    ];
}

/// The standard normal's tail, for |x| >= 0.6745: (e, h, far) with e = e^(−x²/2) =
/// φ(x)·√(2π), and ½·erfc(|x|/√2), which is Φ(x) below zero, equal to e·h, or e·h/|x| where
/// `far` (|x| >= 3√2). x²/2 goes into exp as two doubles, since e^(−x²/2) magnifies its
/// rounding by x², and callers multiply by e last, so a subnormal e is rounded once.
#[inline(always)]
fn normal_tail<P: Precision>(x: f64) -> (f64, f64, bool) {
    // Past 40 the tail is 0 in float64; NaN stays NaN (f64::min would drop it).
    let a = if x.abs() > 40.0 { 40.0 } else { x.abs() };
    let sq = a * a;
    let e = exp_dd::<P>(-0.5 * sq, -0.5 * a.mul_add(a, -sq));
    let z = a * std::f64::consts::FRAC_1_SQRT_2;
    let far = z >= 3.0;
    let v = if far { 2.0 / sq } else { z };
    // The piece's coefficients are selected per element, so the loop stays one SIMD stream.
    let pick = |c: [f64; 3]| {
        if far {
            c[2]
        } else if z >= 1.25 {
            c[1]
        } else {
            c[0]
        }
    };
    let s = v - pick(P::ERFCX_MID);
    let c = P::ERFCX;
    let n = c.len();
    let mut acc = pick(c[n - 1]);
    for &k in c[1..n - 1].iter().rev() {
        acc = acc.mul_add(s, pick(k));
    }
    let h = acc.mul_add(s, pick(P::ERFCX_LO)) + pick(c[0]);
    (e, h, far)
}

/// ½·erfc(|x|/√2) from `normal_tail`'s parts.
#[inline(always)]
fn half_erfc(x: f64, e: f64, h: f64, far: bool) -> f64 {
    e * if far { h / x.abs() } else { h }
}

/// a·b·c rounded once (nearly): a·b is split exactly into two doubles first.
#[inline(always)]
fn mul3(a: f64, b: f64, c: f64) -> f64 {
    let p = a * b;
    p.mul_add(c, a.mul_add(b, -p) * c)
}

/// erf(z) = z·E(z²) for z <= 0.477 (scripts/fit_math.py); the first is the fitted 2/√π.
#[allow(clippy::approx_constant)]
const ERF_SMALL: [f64; 9] = [
    1.128_379_167_095_512_6,
    -3.761_263_890_318_362e-1,
    1.128_379_167_093_960_1e-1,
    -2.686_617_063_811_651_3e-2,
    5.223_977_466_547_762e-3,
    -8.548_306_782_763_292e-4,
    1.205_381_554_670_845_2e-4,
    -1.485_910_260_710_515_1e-5,
    1.487_385_495_574_006_4e-6,
];

/// Where Φ(x) is 1/4 or more and below 3/4, it is ½ + ½·erf(x/√2) from the series; the tail
/// form would lose digits there to its many roundings.
const NORMAL_CENTRE: f64 = 0.6745;

/// Φ(x) − ½ near zero.
#[inline(always)]
fn normal_centre<P: Precision>(x: f64) -> f64 {
    let w = 0.5 * x * x;
    (x * (0.5 * std::f64::consts::FRAC_1_SQRT_2)) * estrin(w, P::ERF_SMALL)
}

/// (Φ(x), e^(−x²/2)).
#[inline(always)]
fn normal<P: Precision>(x: f64) -> (f64, f64) {
    let (e, h, far) = normal_tail::<P>(x);
    let tail = half_erfc(x, e, h, far);
    let cdf = if x.abs() < NORMAL_CENTRE {
        0.5 + normal_centre::<P>(x)
    } else if x >= 0.0 {
        1.0 - tail
    } else {
        tail
    };
    (cdf, e)
}

/// x·Φ(x), the exact (erf) form.
#[inline(always)]
pub(crate) fn gelu<P: Precision>(x: f64) -> f64 {
    let (e, h, far) = normal_tail::<P>(x);
    if x.abs() < NORMAL_CENTRE {
        x.mul_add(normal_centre::<P>(x), 0.5 * x)
    } else if x >= 0.0 {
        x * (1.0 - half_erfc(x, e, h, far))
    } else if x == f64::NEG_INFINITY {
        f64::NAN // x·Φ(x) is −inf·0 there, as in torch
    } else if far {
        -(h * e) // x·e·h/|x|
    } else {
        mul3(x, h, e)
    }
}

/// d gelu/dx = Φ(x) + x·φ(x).
#[inline(always)]
pub(crate) fn gelu_grad<P: Precision>(x: f64) -> f64 {
    let (cdf, e) = normal::<P>(x);
    (x * e).mul_add(0.398_942_280_401_432_7, cdf) // 1/√(2π)
}

/// A vectorized kernel: `f` is its f64 function, `COST` what one element costs, in units of
/// about a nanosecond on one core. Kernels are types, not closures, so that `f` is inlined
/// into each instruction set's loop and compiled with its features.
pub(crate) trait Kernel {
    const COST: usize;
    fn f<P: Precision>(x: f64) -> f64;
}

/// An element type the kernels run on: f64 directly, f32 through f64.
trait Lane: Element {
    fn apply<K: Kernel>(self) -> Self;
}

impl Lane for f64 {
    #[inline(always)]
    fn apply<K: Kernel>(self) -> f64 {
        K::f::<Double>(self)
    }
}

impl Lane for f32 {
    #[inline(always)]
    fn apply<K: Kernel>(self) -> f32 {
        K::f::<Single>(self as f64) as f32
    }
}

/// Elements of work (at cost 1) below which one thread does it all: a thread's wake-up
/// costs some 15 µs.
const SPLIT_WORK: usize = 1 << 17;

/// `K` over a float tensor, into a new one of the same dtype and shape.
pub(crate) fn map<K: Kernel>(t: &Tensor) -> Result<Tensor> {
    let t = t.contiguous()?;
    match t.storage() {
        Storage::F32(_) => run::<K, f32>(&t),
        _ => run::<K, f64>(&t),
    }
}

fn run<K: Kernel, T: Lane>(t: &Tensor) -> Result<Tensor> {
    let src = t.as_slice::<T>().expect("contiguous float tensor");
    let mut out = try_alloc::<T>("math", src.len(), T::ZERO)?;
    let threads = crate::thread_budget();
    if threads > 1 && src.len() * K::COST >= SPLIT_WORK {
        let piece = src.len().div_ceil(threads).next_multiple_of(64);
        out.par_chunks_mut(piece)
            .zip(src.par_chunks(piece))
            .for_each(|(o, s)| each::<K, T>(s, o));
    } else {
        each::<K, T>(src, &mut out);
    }
    Tensor::from_vec(out, t.shape())
}

/// The loop, compiled for the best instruction set this CPU has.
fn each<K: Kernel, T: Lane>(src: &[T], dst: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features this function was compiled for.
            return unsafe { each_avx512::<K, T>(src, dst) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { each_avx2::<K, T>(src, dst) };
        }
    }
    each_plain::<K, T>(src, dst)
}

#[inline(always)]
fn each_plain<K: Kernel, T: Lane>(src: &[T], dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.apply::<K>();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn each_avx512<K: Kernel, T: Lane>(src: &[T], dst: &mut [T]) {
    each_plain::<K, T>(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn each_avx2<K: Kernel, T: Lane>(src: &[T], dst: &mut [T]) {
    each_plain::<K, T>(src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in ulps between two finite doubles of the same sign.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn kernels_match_libm_closely() {
        let mut x = -30.0;
        while x < 30.0 {
            assert!(ulps(exp::<Double>(x), x.exp()) <= 2, "exp::<Double>({x})");
            assert!(
                ulps(tanh::<Double>(x), x.tanh()) <= 2,
                "tanh::<Double>({x})"
            );
            if x > 0.0 {
                assert!(ulps(log::<Double>(x), x.ln()) <= 2, "log::<Double>({x})");
            }
            x += 0.0137;
        }
    }

    #[test]
    fn special_values() {
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        assert_eq!(exp::<Double>(inf), inf);
        assert_eq!(exp::<Double>(-inf), 0.0);
        assert_eq!(exp::<Double>(0.0), 1.0);
        assert_eq!(exp::<Double>(710.0), inf);
        assert_eq!(exp::<Double>(-746.0), 0.0);
        assert_eq!(exp::<Double>(-745.0), 5e-324);
        assert!(exp::<Double>(nan).is_nan());
        assert_eq!(log::<Double>(0.0), -inf);
        assert_eq!(log::<Double>(inf), inf);
        assert_eq!(log::<Double>(1.0), 0.0);
        assert!(log::<Double>(-1.0).is_nan() && log::<Double>(nan).is_nan());
        assert_eq!(log::<Double>(5e-324), -744.440_071_921_381_2);
        assert_eq!(tanh::<Double>(inf), 1.0);
        assert_eq!(tanh::<Double>(-inf), -1.0);
        assert!(tanh::<Double>(-0.0).is_sign_negative() && tanh::<Double>(nan).is_nan());
        assert_eq!(sigmoid::<Double>(-inf), 0.0);
        assert_eq!(sigmoid::<Double>(inf), 1.0);
        assert!(
            sigmoid::<Double>(nan).is_nan()
                && softplus::<Double>(nan).is_nan()
                && gelu::<Double>(nan).is_nan()
        );
        assert_eq!(softplus::<Double>(inf), inf);
        assert_eq!(softplus::<Double>(-inf), 0.0);
        assert_eq!(gelu::<Double>(inf), inf);
        assert!(gelu::<Double>(-inf).is_nan() && gelu_grad::<Double>(-inf).is_nan());
        assert_eq!(gelu::<Double>(-40.0), -0.0);
        assert_eq!(gelu::<Double>(0.0), 0.0);
    }
}
