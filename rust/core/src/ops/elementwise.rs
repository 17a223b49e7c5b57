//! Elementwise ops. Each op is one entry of `unary_ops!` or `binary_ops!` below: its name,
//! the dtypes it takes, its kernel, its derivative rule in words (explain mode) and its
//! backward, side by side. The loops that run the kernels are at the end of the file.
use std::borrow::Cow;

use crate::dtype::{default_float, result_type, Bits, Bool8, DType, Float, Num, Rank, Scalar};
use crate::error::{Error, Result};
use crate::layout::{broadcast_shapes, checked_numel, Layout};
use crate::node::{Attr, Ctx, Node, Op, SavedTensor};
use crate::storage::{each_storage, try_alloc, Element, Storage};
use crate::tensor::Tensor;

/// Runs `$body` with `$T` the element type of `$t`, for the listed storage variants; any
/// other dtype is a TypeError naming `$op`.
macro_rules! dispatch {
    ($op:expr, $t:expr, $T:ident => $body:expr; $($V:ident: $ty:ty),*) => {
        match $t.storage() {
            $(Storage::$V(_) => {
                type $T = $ty;
                $body
            })*
            #[allow(unreachable_patterns)]
            _ => Err(Error::type_($op, format!("is not defined for {} tensors", $t.dtype()))),
        }
    };
}

macro_rules! with_float {
    ($op:expr, $t:expr, $T:ident => $body:expr) => {
        dispatch!($op, $t, $T => $body; F32: f32, F64: f64)
    };
}

/// Ints and floats.
macro_rules! with_num {
    ($op:expr, $t:expr, $T:ident => $body:expr) => {
        dispatch!($op, $t, $T => $body; I32: i32, I64: i64, F32: f32, F64: f64)
    };
}

macro_rules! with_any {
    ($t:expr, $T:ident => $body:expr) => {
        dispatch!("", $t, $T => $body; Bool: Bool8, I32: i32, I64: i64, F32: f32, F64: f64)
    };
}

/// Bools and ints (the bitwise ops).
macro_rules! with_bits {
    ($op:expr, $t:expr, $T:ident => $body:expr) => {
        dispatch!($op, $t, $T => $body; Bool: Bool8, I32: i32, I64: i64)
    };
}

// ---- unary ops -------------------------------------------------------------------------

/// Declares the unary ops. Each entry is
/// `Variant(params) = "name", kind, |x| kernel, "rule", |x, out, g| backward;` where kind is
/// `float` (int and bool inputs compute in the default float dtype, as torch), `num` (ints and
/// floats keep their dtype), `pred` (any dtype in, bool out) or `bits` (bool and ints only).
/// Params are f64s; a kernel converts them with `T::param`. A backward gives the input's
/// gradient, or None where it is zero. A `float` kernel written `simd(cost) |x| k` is an f64
/// kernel from `crate::math`, generic over the result precision `P` (`math::Precision`), run
/// vectorized (float32 through f64) and split over threads by its cost per element.
macro_rules! unary_ops {
    (@f64 $p:ident) => { f64 };
    (@run float [], $name:expr, $t:expr, |$x:ident| $k:expr) => {{
        let t = $t.cast_cow($t.dtype().to_float())?;
        with_float!($name, t, T => map::<T, T>(&t, |$x: T| -> T { $k }))
    }};
    (@run float [$cost:literal], $name:expr, $t:expr, |$x:ident| $k:expr) => {{
        struct K;
        impl crate::math::Kernel for K {
            const COST: usize = $cost;
            #[inline(always)]
            fn f<P: crate::math::Precision>($x: f64) -> f64 {
                $k
            }
        }
        let t = $t.cast_cow($t.dtype().to_float())?;
        crate::math::map::<K>(&t)
    }};
    (@run num [], $name:expr, $t:expr, |$x:ident| $k:expr) => {
        with_num!($name, $t, T => map::<T, T>($t, |$x: T| -> T { $k }))
    };
    (@run pred [], $name:expr, $t:expr, |$x:ident| $k:expr) => {
        with_any!($t, T => map::<T, Bool8>($t, |$x: T| Bool8::new($k)))
    };
    (@run bits [], $name:expr, $t:expr, |$x:ident| $k:expr) => {
        with_bits!($name, $t, T => map::<T, T>($t, |$x: T| -> T { $k }))
    };
    ($(
        $(#[$doc:meta])*
        $V:ident $(($($p:ident),+))? = $name:literal, $kind:ident,
        $(simd($cost:literal))? |$x:ident| $kernel:expr,
        $rule:literal,
        |$bx:ident, $bout:ident, $bg:ident| $backward:expr;
    )*) => {
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Unary {
            $($(#[$doc])* $V $(($(unary_ops!(@f64 $p)),+))?,)*
        }

        impl Unary {
            pub fn name(self) -> &'static str {
                match self {
                    $(Unary::$V { .. } => $name,)*
                }
            }
            /// The op's scalar parameters (a slope, an exponent, bounds), as declared.
            pub fn params(self) -> Vec<f64> {
                match self {
                    $(Unary::$V $(($($p),+))? => vec![$($($p),+)?],)*
                }
            }
            /// The op called `name` with `params`, if there is one of that arity.
            pub fn from_name(name: &str, params: &[f64]) -> Option<Unary> {
                $(
                    if name == $name {
                        #[allow(unused_mut, unused_variables)]
                        let mut it = params.iter().copied();
                        let op = Unary::$V $(($({
                            let $p = it.next()?;
                            $p
                        }),+))?;
                        if it.next().is_none() {
                            return Some(op);
                        }
                    }
                )*
                None
            }
            pub fn rule(self) -> &'static str {
                match self {
                    $(Unary::$V { .. } => $rule,)*
                }
            }
            /// Every unary op as (name, dtype kind); names starting with `_` are the
            /// derivatives that backward rules use, not ops of their own.
            pub fn catalog() -> Vec<(&'static str, &'static str)> {
                vec![$(($name, stringify!($kind)),)*]
            }
            fn kernel(self, t: &Tensor) -> Result<Tensor> {
                match self {
                    $(
                        #[allow(unused_variables)]
                        Unary::$V $(($($p),+))? => unary_ops!(@run $kind [$($cost)?], $name, t, |$x| $kernel),
                    )*
                }
            }
            #[allow(unused_variables)]
            fn grad(self, x_: &Node, out_: &Node, g_: &Node) -> Result<Option<Node>> {
                match self {
                    $(Unary::$V $(($($p),+))? => {
                        let ($bx, $bout, $bg) = (x_, out_, g_);
                        $backward
                    })*
                }
            }
        }
    };
}

fn some(v: Result<Node>) -> Result<Option<Node>> {
    v.map(Some)
}

unary_ops! {
    Neg = "neg", num, |x| x.neg(),
        "grad_x = -g", |x, out, g| some(g.neg());
    Abs = "abs", num, |x| Num::abs(x),
        "grad_x = g·sign(x)", |x, out, g| some(g.mul(&x.unary(Unary::Sign)?));
    /// -1, 0 or 1; 0 at NaN, as torch.
    Sign = "sign", num,
        |x| if x > T::ZERO { T::ONE } else if x < T::ZERO { T::ZERO.sub(T::ONE) } else { T::ZERO },
        "no gradient (piecewise constant)", |x, out, g| Ok(None);
    Exp = "exp", float, simd(2) |x| crate::math::exp::<P>(x),
        "grad_x = g·exp(x) = g·y", |x, out, g| some(g.mul(out));
    Log = "log", float, simd(2) |x| crate::math::log::<P>(x),
        "grad_x = g/x", |x, out, g| some(g.div(x));
    /// log(1 + x), exact for tiny x.
    Log1p = "log1p", float, |x| x.ln_1p(),
        "grad_x = g/(1 + x)", |x, out, g| some(g.div(&x.add_scalar(1.0)?));
    Sqrt = "sqrt", float, |x| x.sqrt(),
        "grad_x = g/(2·sqrt(x)) = g/(2y)", |x, out, g| some(g.div(&out.mul_scalar(2.0)?));
    Sin = "sin", float, |x| x.sin(),
        "grad_x = g·cos(x)", |x, out, g| some(g.mul(&x.unary(Unary::Cos)?));
    Cos = "cos", float, |x| x.cos(),
        "grad_x = -g·sin(x)", |x, out, g| some(g.mul(&x.unary(Unary::Sin)?.neg()?));
    Tanh = "tanh", float, simd(4) |x| crate::math::tanh::<P>(x),
        "grad_x = g·(1 - y²)", |x, out, g| some(g.mul(&out.mul(out)?.neg()?.add_scalar(1.0)?));
    /// 1/(1 + e^−x), from e^−|x| so it never overflows (math.rs).
    Sigmoid = "sigmoid", float, simd(3) |x| crate::math::sigmoid::<P>(x),
        "grad_x = g·y·(1 - y)", |x, out, g| some(g.mul(&out.mul(&out.neg()?.add_scalar(1.0)?)?));
    Relu = "relu", num, |x| if x > T::ZERO || Num::is_nan(x) { x } else { T::ZERO },
        // Selected, not multiplied by a 0/1 mask: an inf or NaN g must not leak through a zero.
        // As torch's threshold_backward: 0 where y <= 0, so a NaN input passes g on.
        "grad_x = g where y > 0, else 0", |x, out, g| some(g.zeroed(&out.read().compare_scalar(0.0, Binary::Le)?));
    Recip = "reciprocal", float, |x| T::ONE / x,
        "grad_x = -g/x² = -g·y²", |x, out, g| some(g.mul(&out.mul(out)?.neg()?));
    /// max(x, 0) + log1p(exp(-|x|)): finite for any finite x.
    Softplus = "softplus", float, simd(4) |x| crate::math::softplus::<P>(x),
        "grad_x = g·sigmoid(x)", |x, out, g| some(g.mul(&x.unary(Unary::Sigmoid)?));
    /// The inverse of erf on (-1, 1).
    Erfinv = "erfinv", float, |x| Float::erfinv(x),
        "grad_x = g·(√π/2)·exp(y²)", |x, out, g| some(g.mul(&out.mul(out)?.unary(Unary::Exp)?.mul_scalar(0.886_226_925_452_758)?));
    /// x·Φ(x), the exact erf form (PyTorch's default).
    Gelu = "gelu", float, simd(8) |x| crate::math::gelu::<P>(x),
        "grad_x = g·(Φ(x) + x·φ(x))", |x, out, g| some(g.mul(&x.unary(Unary::GeluGrad)?));
    /// d gelu / dx.
    GeluGrad = "_gelu_grad", float, simd(8) |x| crate::math::gelu_grad::<P>(x),
        "grad_x = g·φ(x)·(2 - x²)",
        |x, out, g| {
            let x2 = x.mul(x)?;
            let pdf = x2.mul_scalar(-0.5)?.unary(Unary::Exp)?.mul_scalar(0.398_942_280_401_432_7)?;
            some(g.mul(&pdf.mul(&x2.neg()?.add_scalar(2.0)?)?))
        };
    LeakyRelu(slope) = "leaky_relu", float, |x| if x > T::ZERO { x } else { x * T::param(slope) },
        "grad_x = g where x > 0, else slope·g",
        |x, out, g| some(g.mul(&x.unary(Unary::LeakyReluGrad(slope))?));
    /// 1 where x > 0, else the slope.
    LeakyReluGrad(slope) = "_leaky_relu_grad", float,
        |x| if x > T::ZERO { T::ONE } else { T::param(slope) },
        "no gradient (piecewise constant)", |x, out, g| Ok(None);
    PowScalar(p) = "pow", float,
        // torch's special exponents, so results match it bit for bit (rsqrt(-0) is -inf).
        |x| if p == 2.0 {
            x * x
        } else if p == 1.0 {
            x
        } else if p == 0.5 {
            x.sqrt() // sqrt(-inf) is nan, as numpy; C's pow gives +inf
        } else if p == -0.5 {
            T::ONE / x.sqrt()
        } else if p == -1.0 {
            T::ONE / x
        } else if p == 3.0 {
            x * x * x
        } else if p == -2.0 {
            T::ONE / (x * x)
        } else {
            x.powf(T::param(p))
        },
        "grad_x = g·p·x^(p-1)",
        // p == 0: the derivative is 0 everywhere (the formula gives 0·inf at x == 0).
        |x, out, g| if p == 0.0 {
            some(Ok(Node::leaf(Tensor::zeros(&x.shape(), x.dtype())?, false)))
        } else {
            some(g.mul(&x.unary(Unary::PowScalar(p - 1.0))?.mul_scalar(p)?))
        };
    AddScalar(c) = "add", num, |x| x.add(T::param(c)),
        "grad_x = g", |x, out, g| Ok(Some(g.clone()));
    MulScalar(c) = "mul", num, |x| x.mul(T::param(c)),
        "grad_x = g·c", |x, out, g| some(g.mul_scalar(c));
    Clamp(lo, hi) = "clamp", num,
        |x| if Num::is_nan(x) { x } else { Num::minimum(Num::maximum(x, T::param(lo)), T::param(hi)) },
        "grad_x = g where min <= x <= max, else 0",
        |x, out, g| some(g.masked(&x.read().unary(Unary::InRange(lo, hi))?));
    /// lo <= x <= hi, as a bool: where clamp passes its gradient on (false at NaN).
    InRange(lo, hi) = "_in_range", pred, |x| x.to_f64() >= lo && x.to_f64() <= hi,
        "no gradient (bool result)", |x, out, g| Ok(None);
    IsNan = "isnan", pred, |x| Num::is_nan(x),
        "no gradient (bool result)", |x, out, g| Ok(None);
    IsInf = "isinf", pred, |x| x.is_inf(),
        "no gradient (bool result)", |x, out, g| Ok(None);
    IsFinite = "isfinite", pred, |x| !Num::is_nan(x) && !x.is_inf(),
        "no gradient (bool result)", |x, out, g| Ok(None);
    /// `~`: logical not on bools, bitwise not on ints.
    Not = "bitwise_not", bits, |x| x.not(),
        "no gradient (bool or integer result)", |x, out, g| Ok(None);
}

struct UnaryOp(Unary);

impl Op for UnaryOp {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("params", Attr::Floats(self.0.params()))]
    }
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn rule(&self) -> &'static str {
        self.0.rule()
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![self.0.grad(c.parent(0), c.out, g)?])
    }
}

impl Tensor {
    pub fn unary(&self, op: Unary) -> Result<Tensor> {
        op.kernel(self)
    }
}

// ---- binary ops ------------------------------------------------------------------------

/// How a binary op picks its dtypes, from torch: the operands meet in `result_type`, then
/// `arith` computes there (bool allowed: `+` is or, `*` is and), `no_bool` refuses bools,
/// `int_div` also refuses an integer zero divisor, `int_pow` a negative integer exponent,
/// `true_div` computes in a float dtype, `compare` gives bools and `bits` takes only bools
/// and ints.
macro_rules! binary_ops {
    (@run arith, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {
        with_any!($a, T => zip::<T, T>($a, $b, $shape, |$x: T, $y: T| -> T { $k }))
    };
    (@run no_bool, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {
        with_num!($name, $a, T => zip::<T, T>($a, $b, $shape, |$x: T, $y: T| -> T { $k }))
    };
    (@run int_div, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {{
        if !$b.dtype().is_float() && $b.any_zero() {
            return Err(Error::value($name, "integer division by zero"));
        }
        with_num!($name, $a, T => zip::<T, T>($a, $b, $shape, |$x: T, $y: T| -> T { $k }))
    }};
    (@run int_pow, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {{
        if !$b.dtype().is_float() && $b.any_negative() {
            return Err(Error::value($name, "integers to negative integer powers are not allowed"));
        }
        with_num!($name, $a, T => zip::<T, T>($a, $b, $shape, |$x: T, $y: T| -> T { $k }))
    }};
    (@run true_div, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {
        with_float!($name, $a, T => zip::<T, T>($a, $b, $shape, |$x: T, $y: T| -> T { $k }))
    };
    (@run compare, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {
        with_any!($a, T => zip::<T, Bool8>($a, $b, $shape, |$x: T, $y: T| Bool8::new($k)))
    };
    (@run bits, $name:expr, $a:expr, $b:expr, $shape:expr, |$x:ident, $y:ident| $k:expr) => {
        with_bits!($name, $a, T => zip::<T, T>($a, $b, $shape, |$x: T, $y: T| -> T { $k }))
    };
    (@check no_bool, $name:expr, $a:expr, $b:expr) => {{
        if $a == DType::Bool || $b == DType::Bool {
            return Err(Error::type_(
                $name,
                "is not defined for bool operands (to invert a mask, use ~), as in torch",
            ));
        }
    }};
    (@check $kind:ident, $name:expr, $a:expr, $b:expr) => {{}};
    (@dtype true_div, $d:expr) => { $d.to_float() };
    (@dtype $kind:ident, $d:expr) => { $d };
    ($(
        $(#[$doc:meta])*
        $V:ident = $name:literal, $kind:ident,
        |$x:ident, $y:ident| $kernel:expr,
        $rule:literal,
        |$ba:ident, $bb:ident, $bout:ident, $bg:ident, $bc:ident| $backward:expr;
    )*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Binary {
            $($(#[$doc])* $V,)*
        }

        impl Binary {
            pub fn name(self) -> &'static str {
                match self {
                    $(Binary::$V => $name,)*
                }
            }
            pub fn from_name(name: &str) -> Option<Binary> {
                match name {
                    $($name => Some(Binary::$V),)*
                    _ => None,
                }
            }
            pub fn rule(self) -> &'static str {
                match self {
                    $(Binary::$V => $rule,)*
                }
            }
            /// Every binary op as (name, dtype kind).
            pub fn catalog() -> Vec<(&'static str, &'static str)> {
                vec![$(($name, stringify!($kind)),)*]
            }
            /// Refuses operand dtypes the op's kind does not take (before promotion).
            fn check_operands(self, a: DType, b: DType) -> Result<()> {
                match self {
                    $(Binary::$V => binary_ops!(@check $kind, $name, a, b),)*
                }
                Ok(())
            }
            /// The dtype the operands are cast to before the kernel runs.
            fn compute_dtype(self, promoted: DType) -> DType {
                match self {
                    $(Binary::$V => binary_ops!(@dtype $kind, promoted),)*
                }
            }
            fn kernel(self, a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Tensor> {
                match self {
                    $(Binary::$V => binary_ops!(@run $kind, $name, a, b, shape, |$x, $y| $kernel),)*
                }
            }
            /// Gradients for (a, b); `$bc` says which inputs want one.
            #[allow(unused_variables)]
            fn grad(self, a_: &Node, b_: &Node, out_: &Node, g_: &Node, c_: &Ctx)
                -> Result<Vec<Option<Node>>> {
                match self {
                    $(Binary::$V => {
                        let ($ba, $bb, $bout, $bg, $bc) = (a_, b_, out_, g_, c_);
                        $backward
                    })*
                }
            }
        }
    };
}

binary_ops! {
    Add = "add", arith, |x, y| x.add(y),
        "grad_a = g, grad_b = g", |a, b, out, g, c| Ok(vec![Some(g.clone()), Some(g.clone())]);
    Sub = "sub", no_bool, |x, y| x.sub(y),
        "grad_a = g, grad_b = -g", |a, b, out, g, c| Ok(vec![Some(g.clone()), c.grad_for(1, || g.neg())?]);
    Mul = "mul", arith, |x, y| x.mul(y),
        "grad_a = g·b, grad_b = g·a",
        |a, b, out, g, c| Ok(vec![c.grad_for(0, || g.mul(b))?, c.grad_for(1, || g.mul(a))?]);
    /// True division: ints divide as floats, as torch.
    Div = "div", true_div, |x, y| x / y,
        "grad_a = g/b, grad_b = -g·a/b²",
        // d(a/b)/db = -a/b^2 = -out/b, grouped as torch's -g·(out/b) so that overflow and
        // 0·inf give the same results.
        |a, b, out, g, c| Ok(vec![
            c.grad_for(0, || g.div(b))?,
            c.grad_for(1, || g.mul(&out.div(b)?)?.neg())?,
        ]);
    /// `//`: rounds toward minus infinity, as Python and torch.
    FloorDiv = "floor_divide", int_div, |x, y| x.floor_div(y),
        "no gradient (piecewise constant)", |a, b, out, g, c| Ok(vec![None, None]);
    /// `%`: the remainder takes the divisor's sign, as Python and torch.
    Rem = "remainder", int_div, |x, y| x.rem(y),
        "grad_a = g, grad_b = -g·floor(a/b)",
        |a, b, out, g, c| Ok(vec![
            Some(g.clone()),
            c.grad_for(1, || g.mul(&a.tensor_op(b, Binary::FloorDiv)?)?.neg())?,
        ]);
    Pow = "pow", int_pow, |x, y| Num::pow(x, y),
        "grad_a = g·b·a^(b-1), grad_b = g·a^b·ln(a)",
        // As PyTorch: 0 where b == 0 for a, and where a == 0 and b >= 0 for b (the
        // formulas give 0·inf there). torch selects g·d for a, but multiplies g by the
        // selected derivative for b, so an inf g gives NaN there; so do we. Computed in the
        // result's dtype, as torch (a float32 log would round a float64 gradient).
        |a, b, out, g, c| {
            let (a, b) = (&a.to_dtype(out.dtype())?, &b.to_dtype(out.dtype())?);
            let zero = Node::constant(0.0, g.dtype());
            Ok(vec![
                c.grad_for(0, || {
                    let d = g.mul(b)?.mul(&a.binary(&b.add_scalar(-1.0)?, Binary::Pow)?)?;
                    Node::where_(&b.compare(&zero, Binary::Eq)?.tensor(), &zero, &d)
                })?,
                c.grad_for(1, || {
                    let d = out.mul(&a.unary(Unary::Log)?)?;
                    let at0 = a.compare(&zero, Binary::Eq)?.tensor()
                        .binary(&b.compare(&zero, Binary::Ge)?.tensor(), Binary::And)?;
                    g.mul(&Node::where_(&at0, &zero, &d)?)
                })?,
            ])
        };
    Maximum = "maximum", arith, |x, y| Num::maximum(x, y),
        "grad_a = g where a > b, grad_b = g where b > a (ties split)",
        |a, b, out, g, c| extreme_grads(a, b, g, c, Binary::Gt);
    Minimum = "minimum", arith, |x, y| Num::minimum(x, y),
        "grad_a = g where a < b, grad_b = g where b < a (ties split)",
        |a, b, out, g, c| extreme_grads(a, b, g, c, Binary::Lt);
    /// torch's binary_cross_entropy of a probability a and a target b, each log clamped at
    /// -100. Fused so the derivative stays finite where a rounds to 0 or 1.
    Bce = "binary_cross_entropy", true_div,
        |x, y| {
            let lo = T::from_f64(-100.0);
            -(y * x.ln().max_(lo) + (T::ONE - y) * (-x).ln_1p().max_(lo))
        },
        "grad_a = g·(a - b)/max(a(1 - a), ε), grad_b = g·(log(1 - a) - log(a))",
        |a, b, out, g, c| {
          let (a, b) = (&a.to_dtype(out.dtype())?, &b.to_dtype(out.dtype())?);
          Ok(vec![
            c.grad_for(0, || {
                // torch's EPSILON is the float 1e-12, in every dtype.
                let eps = f64::from(1e-12f32);
                let spread = a.mul(&a.neg()?.add_scalar(1.0)?)?.unary(Unary::Clamp(eps, f64::INFINITY))?;
                g.mul(&a.sub(b)?)?.div(&spread)
            })?,
            c.grad_for(1, || g.mul(&a.neg()?.add_scalar(1.0)?.unary(Unary::Log)?.sub(&a.unary(Unary::Log)?)?))?,
          ])
        };
    Lt = "lt", compare, |x, y| x < y, "no gradient (bool result)", |a, b, out, g, c| Ok(vec![None, None]);
    Le = "le", compare, |x, y| x <= y, "no gradient (bool result)", |a, b, out, g, c| Ok(vec![None, None]);
    Gt = "gt", compare, |x, y| x > y, "no gradient (bool result)", |a, b, out, g, c| Ok(vec![None, None]);
    Ge = "ge", compare, |x, y| x >= y, "no gradient (bool result)", |a, b, out, g, c| Ok(vec![None, None]);
    Eq = "eq", compare, |x, y| x == y, "no gradient (bool result)", |a, b, out, g, c| Ok(vec![None, None]);
    Ne = "ne", compare, |x, y| x != y, "no gradient (bool result)", |a, b, out, g, c| Ok(vec![None, None]);
    /// `&`, `|`, `^`: logical on bools, bitwise on ints.
    And = "bitwise_and", bits, |x, y| x.and(y),
        "no gradient (bool or integer result)", |a, b, out, g, c| Ok(vec![None, None]);
    Or = "bitwise_or", bits, |x, y| x.or(y),
        "no gradient (bool or integer result)", |a, b, out, g, c| Ok(vec![None, None]);
    Xor = "bitwise_xor", bits, |x, y| x.xor(y),
        "no gradient (bool or integer result)", |a, b, out, g, c| Ok(vec![None, None]);
}

/// maximum/minimum, as PyTorch: the loser gets 0 (selected, so an inf or NaN g does not leak
/// through), a tie gives each side half, and a NaN operand passes g to both sides.
fn extreme_grads(a: &Node, b: &Node, g: &Node, c: &Ctx, wins: Binary) -> Result<Vec<Option<Node>>> {
    let loses = if wins == Binary::Gt {
        Binary::Lt
    } else {
        Binary::Gt
    };
    let (ta, tb) = (a.tensor(), b.tensor());
    let half = Node::where_(&ta.binary(&tb, Binary::Eq)?, &g.mul_scalar(0.5)?, g)?;
    let zero = Node::constant(0.0, g.dtype());
    Ok(vec![
        c.grad_for(0, || Node::where_(&ta.binary(&tb, loses)?, &zero, &half))?,
        c.grad_for(1, || Node::where_(&ta.binary(&tb, wins)?, &zero, &half))?,
    ])
}

struct BinaryOp(Binary);

impl Op for BinaryOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn rule(&self) -> &'static str {
        self.0.rule()
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        self.0.grad(c.parent(0), c.parent(1), c.out, g, c)
    }
}

fn rank(t: &Tensor) -> Rank {
    if t.ndim() == 0 {
        Rank::ZeroDim
    } else {
        Rank::Dims
    }
}

impl Tensor {
    /// `self op other` with broadcasting, in the dtype torch's `result_type` picks.
    pub fn binary(&self, other: &Tensor, op: Binary) -> Result<Tensor> {
        let (a, b) = (self.dtype(), other.dtype());
        op.check_operands(a, b)?;
        // Equal dtypes promote to themselves: the common case skips the table.
        let promoted = if a == b {
            a
        } else {
            result_type(&[(a, rank(self)), (b, rank(other))])
        };
        self.binary_in(other, op, promoted)
    }

    /// `self op other` with both operands first cast to `promoted`'s compute dtype.
    fn binary_in(&self, other: &Tensor, op: Binary, promoted: DType) -> Result<Tensor> {
        let shape = broadcast_shapes(op.name(), self.shape(), other.shape())?;
        let dtype = op.compute_dtype(promoted);
        let a = self.cast_cow(dtype)?;
        let b = other.cast_cow(dtype)?;
        op.kernel(&a, &b, &shape)
    }

    /// `self` in `dtype`, borrowed when it already is (the common case: no copy).
    pub fn cast_cow(&self, dtype: DType) -> Result<Cow<'_, Tensor>> {
        if dtype == self.dtype() {
            Ok(Cow::Borrowed(self))
        } else {
            Ok(Cow::Owned(self.to_dtype(dtype)?))
        }
    }

    /// `self op c` elementwise for a float tensor `self` and a number `c` (cast to `self`'s
    /// dtype): a bool tensor.
    pub fn compare_scalar(&self, c: f64, op: Binary) -> Result<Tensor> {
        self.binary(&Tensor::scalar(c, self.dtype()), op)
    }

    fn any_zero(&self) -> bool {
        self.any_element(|x, zero| x == zero)
    }

    fn any_negative(&self) -> bool {
        self.any_element(|x, zero| x < zero)
    }

    /// Whether `pred(x, 0)` holds for an element of the view, walked in place (no copy,
    /// no allocation: a failed check must never let a kernel divide by zero).
    fn any_element(&self, pred: impl Fn(f64, f64) -> bool) -> bool {
        let mut hit = false;
        each_storage!(self.storage(), T, b => {
            let s = b.as_slice();
            Layout::walk2(self.layout(), self.layout(), |o, _, len, st, _| {
                let mut i = o as isize;
                for _ in 0..len {
                    hit |= pred(s[i as usize].to_f64(), 0.0);
                    i += st;
                }
            });
        });
        hit
    }

    /// `cond ? a : b`, elementwise with broadcasting; `cond` is true where nonzero. One
    /// pass: a single element, or a contiguous operand of the result's shape, is read in
    /// place (any other operand is first copied out to the result's shape).
    pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let shape = broadcast_shapes("where", cond.shape(), a.shape())?;
        let shape = broadcast_shapes("where", &shape, b.shape())?;
        let dtype = result_type(&[(a.dtype(), rank(a)), (b.dtype(), rank(b))]);
        let mask = cond.cast_cow(DType::Bool)?;
        let mask = dense(&mask, &shape)?;
        let m = mask.as_slice::<Bool8>().expect("dense bool");
        let (a, b) = (a.cast_cow(dtype)?, b.cast_cow(dtype)?);
        with_any!(a, T => {
            let (a, b) = (Operand::<T>::new(&a, &shape)?, Operand::<T>::new(&b, &shape)?);
            let mut out = try_alloc::<T>("where", m.len(), T::ZERO)?;
            match (a.read(), b.read()) {
                (Read::All(x), Read::One(y)) => pick(&mut out, m, x, &[y], 0),
                (Read::One(x), Read::All(y)) => pick(&mut out, m, &[x], y, 1),
                (Read::All(x), Read::All(y)) => pick(&mut out, m, x, y, 2),
                (Read::One(x), Read::One(y)) => pick(&mut out, m, &[x], &[y], 3),
            }
            Tensor::from_vec(out, &shape)
        })
    }
}

/// `out[i] = m[i] ? x[i] : y[i]`, where a one-element `x` or `y` stands for every `i`
/// (`form` says which: 0 x full, 1 y full, 2 both, 3 neither). Each form is a plain indexed
/// loop of branch-free `Scalar::pick` over equal-length slices, so it vectorizes: a random
/// mask must not cost a mispredicted branch per element.
fn pick<T: Element>(out: &mut [T], m: &[Bool8], x: &[T], y: &[T], form: u8) {
    let n = out.len();
    let m = &m[..n];
    match form {
        0 => {
            let (x, y) = (&x[..n], y[0]);
            for i in 0..n {
                out[i] = T::pick(m[i], x[i], y);
            }
        }
        1 => {
            let (x, y) = (x[0], &y[..n]);
            for i in 0..n {
                out[i] = T::pick(m[i], x, y[i]);
            }
        }
        2 => {
            let (x, y) = (&x[..n], &y[..n]);
            for i in 0..n {
                out[i] = T::pick(m[i], x[i], y[i]);
            }
        }
        _ => {
            let (x, y) = (x[0], y[0]);
            for i in 0..n {
                out[i] = T::pick(m[i], x, y);
            }
        }
    }
}

/// `t` broadcast to `shape` as one row-major block: `t` itself when it already is one.
fn dense(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape() == shape && t.is_contiguous() {
        return Ok(t.clone());
    }
    t.broadcast_to(shape)?.copy()
}

/// A `where` operand: one element, or every element of the result's shape in order.
enum Operand<T> {
    One(T),
    All(Tensor),
}

enum Read<'a, T> {
    One(T),
    All(&'a [T]),
}

impl<T: Element> Operand<T> {
    fn new(t: &Tensor, shape: &[usize]) -> Result<Operand<T>> {
        if t.numel() == 1 {
            let s = T::unwrap(t.storage()).expect("dtype cast above").as_slice();
            return Ok(Operand::One(s[t.layout().offset]));
        }
        Ok(Operand::All(dense(t, shape)?))
    }
    fn read(&self) -> Read<'_, T> {
        match self {
            Operand::One(x) => Read::One(*x),
            Operand::All(t) => Read::All(t.as_slice::<T>().expect("dense")),
        }
    }
}

/// A Python number as an operand: it takes part in `result_type` as a "wrapped number", so
/// an int32 tensor plus 2 stays int32 and an int tensor times 0.5 becomes the default float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Number {
    fn dtype(self) -> DType {
        match self {
            Number::Bool(_) => DType::Bool,
            Number::Int(_) => DType::I64,
            Number::Float(_) => default_float(),
        }
    }
    /// The number as a 0-d tensor of `dtype`; an integer that does not fit is an error.
    pub fn tensor(self, op: &'static str, dtype: DType) -> Result<Tensor> {
        let t = match self {
            Number::Bool(b) => Tensor::from_vec(vec![Bool8::new(b)], &[])?,
            Number::Int(i) => Tensor::from_vec(vec![i], &[])?,
            Number::Float(f) => Tensor::from_vec(vec![f], &[])?,
        };
        let out = t.to_dtype(dtype)?;
        if let (Number::Int(i), DType::I32) = (self, dtype) {
            if i32::try_from(i).is_err() {
                return Err(Error::value(op, format!("{i} does not fit in int32")));
            }
        }
        if let Number::Float(f) = self {
            // As torch: NaN, inf or an out-of-range float never becomes an integer silently.
            let fits = match dtype {
                DType::I32 => f.is_finite() && f >= i32::MIN as f64 && f <= i32::MAX as f64,
                DType::I64 => f.is_finite() && f >= -(2f64.powi(63)) && f < 2f64.powi(63),
                _ => true,
            };
            if !fits {
                return Err(Error::value(
                    op,
                    format!("{f} cannot be converted to {dtype} without overflow"),
                ));
            }
        }
        Ok(out)
    }
}

impl Tensor {
    /// `shape` filled with the number `n` in `dtype`, exactly (no round trip through f64).
    pub fn full_number(shape: &[usize], n: Number, dtype: DType) -> Result<Tensor> {
        let one = n.tensor("full", dtype)?;
        let count = checked_numel("full", shape)?;
        with_any!(one, T => {
            let v = one.as_slice::<T>().map_or(T::ZERO, |s| s[0]);
            Tensor::from_vec(try_alloc("full", count, v)?, shape)
        })
    }
}

impl Node {
    pub fn binary(&self, other: &Node, op: Binary) -> Result<Node> {
        let t = self.read2(other, |a, b| a.binary(b, op))?;
        Ok(Node::from_op(
            t,
            BinaryOp(op),
            vec![self.clone(), other.clone()],
        ))
    }
    /// `self op number` (or `number op self` when `reflected`), with torch's promotion.
    pub fn binary_number(&self, n: Number, op: Binary, reflected: bool) -> Result<Node> {
        op.check_operands(self.dtype(), n.dtype())?;
        let promoted = {
            let t = self.read();
            result_type(&[(t.dtype(), rank(&t)), (n.dtype(), Rank::Number)])
        };
        let c = Node::leaf(n.tensor(op.name(), promoted)?, false);
        let (a, b) = if reflected { (&c, self) } else { (self, &c) };
        let t = a.read2(b, |x, y| x.binary_in(y, op, promoted))?;
        Ok(Node::from_op(t, BinaryOp(op), vec![a.clone(), b.clone()]))
    }
    /// A comparison or other op on the data alone, recorded nowhere (for backward rules).
    fn tensor_op(&self, other: &Node, op: Binary) -> Result<Node> {
        Ok(Node::leaf(
            self.read2(other, |a, b| a.binary(b, op))?,
            false,
        ))
    }
    /// An elementwise comparison: a bool tensor, no gradient.
    pub fn compare(&self, other: &Node, op: Binary) -> Result<Node> {
        self.tensor_op(other, op)
    }
    /// `self` where `keep`, else 0: how a masked backward rule passes its gradient on.
    pub fn masked(&self, keep: &Tensor) -> Result<Node> {
        Node::where_(keep, self, &Node::constant(0.0, self.dtype()))
    }
    /// 0 where `drop`, else `self`.
    pub fn zeroed(&self, drop: &Tensor) -> Result<Node> {
        Node::where_(drop, &Node::constant(0.0, self.dtype()), self)
    }
    pub fn unary(&self, op: Unary) -> Result<Node> {
        let t = self.read().unary(op)?;
        Ok(Node::from_op(t, UnaryOp(op), vec![self.clone()]))
    }
    pub fn add(&self, o: &Node) -> Result<Node> {
        self.binary(o, Binary::Add)
    }
    pub fn sub(&self, o: &Node) -> Result<Node> {
        self.binary(o, Binary::Sub)
    }
    pub fn mul(&self, o: &Node) -> Result<Node> {
        self.binary(o, Binary::Mul)
    }
    pub fn div(&self, o: &Node) -> Result<Node> {
        self.binary(o, Binary::Div)
    }
    pub fn neg(&self) -> Result<Node> {
        self.unary(Unary::Neg)
    }
    pub fn add_scalar(&self, c: f64) -> Result<Node> {
        self.unary(Unary::AddScalar(c))
    }
    pub fn mul_scalar(&self, c: f64) -> Result<Node> {
        self.unary(Unary::MulScalar(c))
    }
}

struct Where {
    cond: SavedTensor,
}

impl Op for Where {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("cond", Attr::Tensor(self.cond.peek().clone()))]
    }
    fn name(&self) -> &'static str {
        "where"
    }
    fn rule(&self) -> &'static str {
        "grad_a = g where cond, grad_b = g where not cond"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let zero = Node::constant(0.0, g.dtype());
        let cond = self.cond.get("where", "condition")?;
        Ok(vec![
            c.grad_for(0, || Node::where_(cond, g, &zero))?,
            c.grad_for(1, || Node::where_(cond, &zero, g))?,
        ])
    }
}

impl Node {
    /// `cond ? a : b`; the gradient flows to the branch that was taken.
    pub fn where_(cond: &Tensor, a: &Node, b: &Node) -> Result<Node> {
        let t = Tensor::where_(cond, &a.tensor(), &b.tensor())?;
        Ok(Node::from_op(
            t,
            Where {
                cond: SavedTensor::new(cond.clone()),
            },
            vec![a.clone(), b.clone()],
        ))
    }
}

// ---- the loops -------------------------------------------------------------------------

/// `f` over every element of a tensor of element type `T`, into a new row-major tensor.
pub(crate) fn map<T: Element, U: Element>(t: &Tensor, f: impl Fn(T) -> U) -> Result<Tensor> {
    let n = checked_numel("map", t.shape())?;
    let out: Vec<U> = if let Some(s) = t.as_slice::<T>() {
        s.iter().map(|&x| f(x)).collect()
    } else {
        let src = T::unwrap(t.storage())
            .expect("dtype checked by caller")
            .as_slice();
        let mut out = try_alloc::<U>("map", 0, U::ZERO)?;
        out.try_reserve_exact(n).map_err(|_| Error::Alloc {
            op: "map",
            bytes: (n * U::DTYPE.size()) as u128,
        })?;
        Layout::walk2(t.layout(), t.layout(), |o, _, len, st, _| match st {
            // A broadcast row (an expanded gradient) is one value repeated; a dense one a run.
            0 => out.extend(std::iter::repeat_n(f(src[o]), len)),
            1 => out.extend(src[o..o + len].iter().map(|&x| f(x))),
            _ => {
                let mut i = o as isize;
                for _ in 0..len {
                    out.push(f(src[i as usize]));
                    i += st;
                }
            }
        });
        out
    };
    Tensor::from_vec(out, t.shape())
}

/// `f` over two tensors of element type `T`, broadcast to `shape`, into a new tensor.
fn zip<T: Element, U: Element>(
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    f: impl Fn(T, T) -> U,
) -> Result<Tensor> {
    let n = checked_numel("broadcast", shape)?;
    let (sa, sb) = (
        T::unwrap(a.storage()).expect("same dtype").as_slice(),
        T::unwrap(b.storage()).expect("same dtype").as_slice(),
    );
    // Fast paths: same-shape contiguous, and tensor-with-scalar.
    if a.shape() == shape && b.shape() == shape {
        if let (Some(x), Some(y)) = (a.as_slice::<T>(), b.as_slice::<T>()) {
            return Tensor::from_vec(x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect(), shape);
        }
    }
    if a.shape() == shape && b.numel() == 1 {
        if let Some(x) = a.as_slice::<T>() {
            let q = sb[b.layout().offset];
            return Tensor::from_vec(x.iter().map(|&p| f(p, q)).collect(), shape);
        }
    }
    if b.shape() == shape && a.numel() == 1 {
        if let Some(y) = b.as_slice::<T>() {
            let p = sa[a.layout().offset];
            return Tensor::from_vec(y.iter().map(|&q| f(p, q)).collect(), shape);
        }
    }
    let la = a.layout().broadcast_to("broadcast", shape)?;
    let lb = b.layout().broadcast_to("broadcast", shape)?;
    let mut out = try_alloc::<U>("broadcast", 0, U::ZERO)?;
    out.try_reserve_exact(n).map_err(|_| Error::Alloc {
        op: "broadcast",
        bytes: (n * U::DTYPE.size()) as u128,
    })?;
    Layout::walk2(&la, &lb, |oa, ob, len, ia, ib| {
        // Unit-stride and row-broadcast inner loops run over slices, so they vectorize.
        match (ia, ib) {
            (1, 1) => out.extend(
                sa[oa..oa + len]
                    .iter()
                    .zip(&sb[ob..ob + len])
                    .map(|(&p, &q)| f(p, q)),
            ),
            (1, 0) => out.extend(sa[oa..oa + len].iter().map(|&p| f(p, sb[ob]))),
            (0, 1) => out.extend(sb[ob..ob + len].iter().map(|&q| f(sa[oa], q))),
            // Both broadcast (a summed gradient times a number): one value, repeated.
            (0, 0) => out.extend(std::iter::repeat_n(f(sa[oa], sb[ob]), len)),
            _ => {
                let (mut i, mut j) = (oa as isize, ob as isize);
                for _ in 0..len {
                    out.push(f(sa[i as usize], sb[j as usize]));
                    i += ia;
                    j += ib;
                }
            }
        }
    });
    Tensor::from_vec(out, shape)
}
