//! The element types, torch's promotion rules, and the arithmetic kernels need from them.
use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    Bool,
    I32,
    I64,
    F32,
    F64,
}

/// The three categories of torch's promotion: a higher one wins whatever the sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Bool,
    Int,
    Float,
}

impl DType {
    pub const ALL: [DType; 5] = [DType::Bool, DType::I32, DType::I64, DType::F32, DType::F64];

    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F32 => "float32",
            DType::F64 => "float64",
        }
    }
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.name() == name)
    }
    pub fn size(self) -> usize {
        match self {
            DType::Bool => 1,
            DType::I32 | DType::F32 => 4,
            DType::I64 | DType::F64 => 8,
        }
    }
    pub fn category(self) -> Category {
        match self {
            DType::Bool => Category::Bool,
            DType::I32 | DType::I64 => Category::Int,
            DType::F32 | DType::F64 => Category::Float,
        }
    }
    pub fn is_float(self) -> bool {
        self.category() == Category::Float
    }
    /// The smallest dtype that holds both (torch's `promote_types`): the higher category
    /// wins, and within one category the larger size.
    pub fn promote(self, other: DType) -> DType {
        if self.category() != other.category() {
            return if self.category() > other.category() {
                self
            } else {
                other
            };
        }
        self.max(other)
    }
    /// torch's `can_cast`, which in-place ops obey: a result never drops to a lower
    /// category (a float result cannot go into an int Value), but may narrow within one.
    pub fn casts_in_place_to(self, to: DType) -> bool {
        self.category() <= to.category()
    }
    /// The float dtype an op on this dtype computes in: itself if float, else the default.
    pub fn to_float(self) -> DType {
        if self.is_float() {
            self
        } else {
            default_float()
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

static DEFAULT_FLOAT: AtomicU8 = AtomicU8::new(1);

/// The dtype Python floats (and int inputs of float ops) become; process-wide, as in torch.
pub fn default_float() -> DType {
    if DEFAULT_FLOAT.load(Ordering::Relaxed) == 0 {
        DType::F32
    } else {
        DType::F64
    }
}

/// Sets the default float dtype; only float32 and float64 are allowed.
pub fn set_default_float(d: DType) -> bool {
    match d {
        DType::F32 => DEFAULT_FLOAT.store(0, Ordering::Relaxed),
        DType::F64 => DEFAULT_FLOAT.store(1, Ordering::Relaxed),
        _ => return false,
    }
    true
}

/// How an operand takes part in torch's `result_type`: a tensor with dims, a 0-d tensor, or a
/// Python number ("wrapped number"). Tensors with dims decide within a category; a 0-d tensor
/// or number only matters when its category is higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Dims,
    ZeroDim,
    Number,
}

/// torch's `result_type` over operands given as (dtype, rank). A Python float operand is
/// given as the default float dtype, a Python int as int64, a bool as bool.
pub fn result_type(operands: &[(DType, Rank)]) -> DType {
    let fold = |rank: Rank| {
        operands
            .iter()
            .filter(|o| o.1 == rank)
            .map(|o| o.0)
            .reduce(DType::promote)
    };
    // torch's combine_categories: a higher category wins; otherwise the higher-priority
    // operands decide, except that bool is always promoted.
    let combine = |higher: Option<DType>, lower: Option<DType>| match (higher, lower) {
        (Some(h), Some(_)) if h.is_float() => Some(h),
        (Some(h), Some(l)) if h == DType::Bool || l.category() > h.category() => Some(h.promote(l)),
        (Some(h), _) => Some(h),
        (None, l) => l,
    };
    combine(
        fold(Rank::Dims),
        combine(fold(Rank::ZeroDim), fold(Rank::Number)),
    )
    .unwrap_or(DType::F64)
}

mod sealed {
    /// Only the five element types: storage code relies on them being plain data without
    /// padding, for which all-zero bytes are a value (`storage::try_alloc`).
    pub trait Sealed {}
    impl Sealed for super::Bool8 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// What every element type has: conversions (torch's casting rules) and constants. Sealed:
/// implemented for the five element types only.
pub trait Scalar:
    sealed::Sealed + Copy + Send + Sync + 'static + PartialOrd + PartialEq + Default + fmt::Debug
{
    const DTYPE: DType;
    const ZERO: Self;
    const ONE: Self;
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
    fn is_true(self) -> bool;
    /// Floats truncate toward zero into ints; ints wrap into smaller ints; nonzero is true.
    fn cast<S: Scalar>(s: S) -> Self;
    /// `a` where `keep` is true, else `b`, with bit masks instead of a branch, so a loop of it
    /// vectorizes (`where` with a random mask).
    fn pick(keep: Bool8, a: Self, b: Self) -> Self;
}

/// A bool element: one byte, nonzero is true. A byte rather than Rust's `bool` because numpy
/// memory we share may hold any byte, and a Rust `bool` other than 0 or 1 is undefined.
#[repr(transparent)]
#[derive(Clone, Copy, Default, Debug)]
pub struct Bool8(pub u8);

impl Bool8 {
    pub const TRUE: Bool8 = Bool8(1);
    pub const FALSE: Bool8 = Bool8(0);
    #[inline(always)]
    pub fn new(b: bool) -> Bool8 {
        Bool8(u8::from(b))
    }
}

impl PartialEq for Bool8 {
    fn eq(&self, o: &Self) -> bool {
        self.is_true() == o.is_true()
    }
}

impl PartialOrd for Bool8 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        self.is_true().partial_cmp(&o.is_true())
    }
}

impl Scalar for Bool8 {
    const DTYPE: DType = DType::Bool;
    const ZERO: Self = Bool8(0);
    const ONE: Self = Bool8(1);
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(u8::from(self.is_true()))
    }
    #[inline(always)]
    fn to_i64(self) -> i64 {
        i64::from(self.is_true())
    }
    #[inline(always)]
    fn is_true(self) -> bool {
        self.0 != 0
    }
    #[inline(always)]
    fn cast<S: Scalar>(s: S) -> Self {
        Bool8::new(s.is_true())
    }
    #[inline(always)]
    fn pick(keep: Bool8, a: Self, b: Self) -> Self {
        let k = u8::from(keep.0 != 0).wrapping_neg();
        Bool8((a.0 & k) | (b.0 & !k))
    }
}

macro_rules! impl_int {
    ($t:ty, $dt:expr) => {
        impl Scalar for $t {
            const DTYPE: DType = $dt;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn is_true(self) -> bool {
                self != 0
            }
            #[inline(always)]
            fn cast<S: Scalar>(s: S) -> Self {
                if S::DTYPE.is_float() {
                    s.to_f64() as $t // truncates toward zero (saturating past the range)
                } else {
                    s.to_i64() as $t // wraps, as a C cast
                }
            }
            #[inline(always)]
            fn pick(keep: Bool8, a: Self, b: Self) -> Self {
                let k = (<$t>::from(keep.0 != 0)).wrapping_neg();
                (a & k) | (b & !k)
            }
        }
    };
}

impl_int!(i32, DType::I32);
impl_int!(i64, DType::I64);

pub trait Float:
    Scalar
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    fn from_f64(x: f64) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn ln_1p(self) -> Self;
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn erfinv(self) -> Self;
    fn powf(self, p: Self) -> Self;
    fn is_nan(self) -> bool;
    fn max_(self, o: Self) -> Self;
    fn min_(self, o: Self) -> Self;
}

/// The inverse error function: Winitzki's closed-form estimate, then Halley steps on erf
/// (on erfc near ±1, where 1 − |y| carries the precision), so the result is as accurate as
/// libm's erf itself; ±1 give ±inf and |y| > 1 NaN, as torch.
fn erfinv_f64(y: f64) -> f64 {
    if !(-1.0..=1.0).contains(&y) {
        return f64::NAN;
    }
    let a = y.abs();
    if a == 1.0 {
        return y * f64::INFINITY;
    }
    if a == 0.0 {
        return y;
    }
    const K: f64 = 0.147;
    let l = ((1.0 - a) * (1.0 + a)).ln();
    let t = 2.0 / (std::f64::consts::PI * K) + l / 2.0;
    let mut x = ((t * t - l / K).sqrt() - t).sqrt();
    let tail = a > 0.5;
    for _ in 0..4 {
        // f(x) = erf(x) − a, f' = 2/√π·e^(−x²), f''/f' = −2x: Halley's step is
        // f / (f' + x·f).
        let f = if tail {
            (1.0 - a) - libm::erfc(x)
        } else {
            libm::erf(x) - a
        };
        let d = std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp();
        let step = f / (d + x * f);
        x -= step;
        if step.abs() <= 1e-17 * x {
            break;
        }
    }
    x.copysign(y)
}

macro_rules! impl_float {
    ($t:ty, $bits:ty, $dt:expr, $erf:path) => {
        impl Scalar for $t {
            const DTYPE: DType = $dt;
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn is_true(self) -> bool {
                self != 0.0
            }
            #[inline(always)]
            fn cast<S: Scalar>(s: S) -> Self {
                s.to_f64() as $t
            }
            #[inline(always)]
            fn pick(keep: Bool8, a: Self, b: Self) -> Self {
                let k = (<$bits>::from(keep.0 != 0)).wrapping_neg();
                <$t>::from_bits((a.to_bits() & k) | (b.to_bits() & !k))
            }
        }

        impl Float for $t {
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            fn erfinv(self) -> Self {
                erfinv_f64(self as f64) as $t
            }
            #[inline(always)]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            // NaN-propagating, as numpy's maximum/minimum.
            #[inline(always)]
            fn max_(self, o: Self) -> Self {
                if self.is_nan() || self >= o {
                    self
                } else {
                    o
                }
            }
            #[inline(always)]
            fn min_(self, o: Self) -> Self {
                if self.is_nan() || self <= o {
                    self
                } else {
                    o
                }
            }
        }
    };
}

impl_float!(f32, u32, DType::F32, libm::erff);
impl_float!(f64, u64, DType::F64, libm::erf);

/// Arithmetic that ints, floats and bools share, with torch's semantics: ints wrap on
/// overflow; floor division and remainder follow Python's signs; bool `+` is `or` and `*` is
/// `and` (the ops that are undefined on bools are refused before a kernel runs).
pub trait Num: Scalar {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn neg(self) -> Self;
    fn abs(self) -> Self;
    fn floor_div(self, o: Self) -> Self;
    fn rem(self, o: Self) -> Self;
    fn pow(self, o: Self) -> Self;
    /// NaN-propagating, as numpy's and torch's maximum/minimum.
    fn maximum(self, o: Self) -> Self;
    fn minimum(self, o: Self) -> Self;
    fn is_nan(self) -> bool;
    fn is_inf(self) -> bool;
    /// A scalar parameter (a clamp bound, a slope) in this type; ints truncate.
    fn param(x: f64) -> Self;
}

/// Bitwise ops: on bools they are the logical ones.
pub trait Bits: Scalar {
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn not(self) -> Self;
}

impl Num for Bool8 {
    fn add(self, o: Self) -> Self {
        Bool8::new(self.is_true() || o.is_true())
    }
    fn sub(self, o: Self) -> Self {
        Bool8::new(self.is_true() != o.is_true())
    }
    fn mul(self, o: Self) -> Self {
        Bool8::new(self.is_true() && o.is_true())
    }
    fn neg(self) -> Self {
        self
    }
    fn abs(self) -> Self {
        self
    }
    fn floor_div(self, o: Self) -> Self {
        self.mul(o)
    }
    fn rem(self, _: Self) -> Self {
        Bool8::FALSE
    }
    fn pow(self, o: Self) -> Self {
        Bool8::new(self.is_true() || !o.is_true())
    }
    fn maximum(self, o: Self) -> Self {
        self.add(o)
    }
    fn minimum(self, o: Self) -> Self {
        self.mul(o)
    }
    fn is_nan(self) -> bool {
        false
    }
    fn is_inf(self) -> bool {
        false
    }
    fn param(x: f64) -> Self {
        Bool8::new(x != 0.0)
    }
}

impl Bits for Bool8 {
    fn and(self, o: Self) -> Self {
        Bool8::new(self.is_true() && o.is_true())
    }
    fn or(self, o: Self) -> Self {
        Bool8::new(self.is_true() || o.is_true())
    }
    fn xor(self, o: Self) -> Self {
        Bool8::new(self.is_true() != o.is_true())
    }
    fn not(self) -> Self {
        Bool8::new(!self.is_true())
    }
}

macro_rules! impl_num_int {
    ($t:ty) => {
        impl Num for $t {
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn neg(self) -> Self {
                self.wrapping_neg()
            }
            #[inline(always)]
            fn abs(self) -> Self {
                self.wrapping_abs()
            }
            // Division by zero is refused before the kernel runs (as torch).
            #[inline(always)]
            fn floor_div(self, o: Self) -> Self {
                let q = self.wrapping_div(o);
                if (self.wrapping_rem(o) != 0) && ((self < 0) != (o < 0)) {
                    q - 1
                } else {
                    q
                }
            }
            #[inline(always)]
            fn rem(self, o: Self) -> Self {
                let r = self.wrapping_rem(o);
                if r != 0 && ((r < 0) != (o < 0)) {
                    r + o
                } else {
                    r
                }
            }
            // Negative exponents are refused before the kernel runs (as torch); any other
            // exponent wraps, by squaring (exponents past u32 included).
            #[inline(always)]
            fn pow(self, o: Self) -> Self {
                let (mut base, mut e, mut acc) = (self, (o as i64).max(0) as u64, 1 as Self);
                while e > 0 {
                    if e & 1 == 1 {
                        acc = acc.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                acc
            }
            #[inline(always)]
            fn maximum(self, o: Self) -> Self {
                self.max(o)
            }
            #[inline(always)]
            fn minimum(self, o: Self) -> Self {
                self.min(o)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                false
            }
            #[inline(always)]
            fn is_inf(self) -> bool {
                false
            }
            #[inline(always)]
            fn param(x: f64) -> Self {
                x as $t
            }
        }

        impl Bits for $t {
            #[inline(always)]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline(always)]
            fn or(self, o: Self) -> Self {
                self | o
            }
            #[inline(always)]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline(always)]
            fn not(self) -> Self {
                !self
            }
        }
    };
}

impl_num_int!(i32);
impl_num_int!(i64);

macro_rules! impl_num_float {
    ($t:ty) => {
        impl Num for $t {
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn neg(self) -> Self {
                -self
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn floor_div(self, o: Self) -> Self {
                (self / o).floor()
            }
            // Python's `%`: the sign of the divisor; x % 0 is NaN.
            #[inline(always)]
            fn rem(self, o: Self) -> Self {
                let r = self % o;
                if r != 0.0 && ((r < 0.0) != (o < 0.0)) {
                    r + o
                } else {
                    r
                }
            }
            #[inline(always)]
            fn pow(self, o: Self) -> Self {
                self.powf(o)
            }
            #[inline(always)]
            fn maximum(self, o: Self) -> Self {
                self.max_(o)
            }
            #[inline(always)]
            fn minimum(self, o: Self) -> Self {
                self.min_(o)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn is_inf(self) -> bool {
                <$t>::is_infinite(self)
            }
            #[inline(always)]
            fn param(x: f64) -> Self {
                x as $t
            }
        }
    };
}

impl_num_float!(f32);
impl_num_float!(f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_torch_result_type() {
        use DType::*;
        use Rank::*;
        let r = |ops: &[(DType, Rank)]| result_type(ops);
        assert_eq!(r(&[(I32, Dims), (I64, Dims)]), I64);
        assert_eq!(r(&[(I64, Dims), (F32, Dims)]), F32);
        assert_eq!(r(&[(I32, Dims), (I64, Number)]), I32);
        assert_eq!(
            r(&[(I64, Dims), (default_float(), Number)]),
            default_float()
        );
        assert_eq!(r(&[(F32, Dims), (F64, Number)]), F32);
        assert_eq!(r(&[(F32, Dims), (F64, ZeroDim)]), F32);
        assert_eq!(r(&[(I32, Dims), (F64, ZeroDim)]), F64);
        assert_eq!(r(&[(Bool, Dims), (I64, Number)]), I64);
        assert_eq!(r(&[(Bool, Dims), (Bool, Dims)]), Bool);
        assert_eq!(r(&[(I32, ZeroDim), (I64, ZeroDim)]), I64);
    }

    #[test]
    fn int_division_follows_python() {
        assert_eq!((-7i64).floor_div(2), -4);
        assert_eq!((-7i64).rem(2), 1);
        assert_eq!(7i64.rem(-2), -1);
        assert_eq!((-7.0f64).rem(2.0), 1.0);
        assert_eq!(Num::add(i64::MAX, 1), i64::MIN);
        assert_eq!(i32::cast(2.7f64), 2);
        assert_eq!(i32::cast(-2.7f64), -2);
        assert_eq!(i32::cast((1i64 << 32) + 5), 5);
        assert_eq!(Num::pow(3i64, 20), 3i64.pow(20));
        assert_eq!(Num::pow(-1i64, 1 << 32), 1);
        assert_eq!(Num::pow(2147483647i32, 2), 1); // wraps, as torch
    }
}
