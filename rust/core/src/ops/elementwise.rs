//! Elementwise ops: each forward kernel call sits beside its derivative.
use crate::error::Result;
use crate::tensor::{Binary, Tensor, Unary};
use crate::var::{Ctx, Op, Var};

struct BinaryOp(Binary);

impl Op for BinaryOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn rule(&self) -> &'static str {
        match self.0 {
            Binary::Add => "grad_a = g, grad_b = g",
            Binary::Sub => "grad_a = g, grad_b = -g",
            Binary::Mul => "grad_a = g·b, grad_b = g·a",
            Binary::Div => "grad_a = g/b, grad_b = -g·a/b²",
            Binary::Pow => "grad_a = g·b·a^(b-1), grad_b = g·a^b·ln(a)",
            Binary::Maximum => "grad_a = g where a > b, grad_b = g where b > a (ties split)",
            Binary::Minimum => "grad_a = g where a < b, grad_b = g where b < a (ties split)",
            _ => "no gradient (comparison)",
        }
    }
    fn backward(&self, c: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        let (a, b) = (c.input(0), c.input(1));
        Ok(match self.0 {
            Binary::Add => vec![Some(g.clone()), Some(g.clone())],
            Binary::Sub => vec![Some(g.clone()), c.grad_for(1, || g.neg())?],
            Binary::Mul => vec![c.grad_for(0, || g.mul(b))?, c.grad_for(1, || g.mul(a))?],
            // d(a/b)/db = -a/b^2 = -out/b
            Binary::Div => vec![
                c.grad_for(0, || g.div(b))?,
                c.grad_for(1, || g.mul(c.out)?.div(b)?.neg())?,
            ],
            // d(a^b)/da = b*a^(b-1); d(a^b)/db = a^b*ln(a)
            Binary::Pow => {
                // As PyTorch: 0 where b == 0 for a, and where a == 0 and b >= 0 for b
                // (the formulas give 0·inf there).
                let zero = Var::constant(0.0, g.dtype());
                vec![
                    c.grad_for(0, || {
                        let d = g
                            .mul(b)?
                            .mul(&a.binary(&b.add_scalar(-1.0)?, Binary::Pow)?)?;
                        Var::where_(&b.compare(&zero, Binary::Eq)?.tensor(), &zero, &d)
                    })?,
                    c.grad_for(1, || {
                        let d = g.mul(c.out)?.mul(&a.unary(Unary::Log)?)?;
                        let at0 = a
                            .compare(&zero, Binary::Eq)?
                            .mul(&b.compare(&zero, Binary::Ge)?)?;
                        Var::where_(&at0.tensor(), &zero, &d)
                    })?,
                ]
            }
            // Ties split the gradient evenly, as PyTorch does.
            Binary::Maximum | Binary::Minimum => {
                let wins = if self.0 == Binary::Maximum {
                    Binary::Gt
                } else {
                    Binary::Lt
                };
                let share = a
                    .compare(b, wins)?
                    .add(&a.compare(b, Binary::Eq)?.mul_scalar(0.5)?)?;
                vec![
                    c.grad_for(0, || g.mul(&share))?,
                    c.grad_for(1, || g.mul(&share.neg()?.add_scalar(1.0)?))?,
                ]
            }
            _ => vec![None, None],
        })
    }
}

struct UnaryOp(Unary);

impl Op for UnaryOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sqrt => "sqrt",
            Unary::Abs => "abs",
            Unary::Sin => "sin",
            Unary::Cos => "cos",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Relu => "relu",
            Unary::Recip => "reciprocal",
            Unary::Softplus => "softplus",
            Unary::Gelu => "gelu",
            Unary::LeakyRelu(_) => "leaky_relu",
            Unary::PowScalar(_) => "pow",
            Unary::AddScalar(_) => "add",
            Unary::MulScalar(_) => "mul",
            Unary::Clamp(..) => "clamp",
            _ => "unary",
        }
    }
    fn rule(&self) -> &'static str {
        match self.0 {
            Unary::Neg => "grad_x = -g",
            Unary::Exp => "grad_x = g·exp(x) = g·y",
            Unary::Log => "grad_x = g/x",
            Unary::Sqrt => "grad_x = g/(2·sqrt(x)) = g/(2y)",
            Unary::Abs => "grad_x = g·sign(x)",
            Unary::Sin => "grad_x = g·cos(x)",
            Unary::Cos => "grad_x = -g·sin(x)",
            Unary::Tanh => "grad_x = g·(1 - y²)",
            Unary::Sigmoid => "grad_x = g·y·(1 - y)",
            Unary::Relu => "grad_x = g where x > 0, else 0",
            Unary::Recip => "grad_x = -g/x² = -g·y²",
            Unary::Softplus => "grad_x = g·sigmoid(x)",
            Unary::Gelu => "grad_x = g·(Φ(x) + x·φ(x))",
            Unary::LeakyRelu(_) => "grad_x = g where x > 0, else slope·g",
            Unary::PowScalar(_) => "grad_x = g·p·x^(p-1)",
            Unary::AddScalar(_) => "grad_x = g",
            Unary::MulScalar(_) => "grad_x = g·c",
            Unary::Clamp(..) => "grad_x = g where min <= x <= max, else 0",
            _ => "no gradient (piecewise constant)",
        }
    }
    fn backward(&self, c: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        let (x, out) = (c.input(0), c.out);
        let gx = match self.0 {
            Unary::Neg => g.neg()?,
            Unary::Exp => g.mul(out)?,
            Unary::Log => g.div(x)?,
            Unary::Sqrt => g.div(&out.mul_scalar(2.0)?)?,
            Unary::Abs => g.mul(&x.unary(Unary::Sign)?)?,
            Unary::Sin => g.mul(&x.unary(Unary::Cos)?)?,
            Unary::Cos => g.mul(&x.unary(Unary::Sin)?.neg()?)?,
            Unary::Tanh => g.mul(&out.mul(out)?.neg()?.add_scalar(1.0)?)?,
            Unary::Sigmoid => g.mul(&out.mul(&out.neg()?.add_scalar(1.0)?)?)?,
            Unary::Relu => g.mul(&x.unary(Unary::Step)?)?,
            Unary::Recip => g.mul(&out.mul(out)?.neg()?)?,
            Unary::Softplus => g.mul(&x.unary(Unary::Sigmoid)?)?,
            Unary::Gelu => g.mul(&x.unary(Unary::GeluGrad)?)?,
            Unary::LeakyRelu(a) => g.mul(&x.unary(Unary::LeakyReluGrad(a))?)?,
            // p == 0: the derivative is 0 everywhere (the formula gives 0·inf at x == 0).
            Unary::PowScalar(0.0) => Var::leaf(Tensor::zeros(&x.shape(), x.dtype())?, false),
            Unary::PowScalar(p) => g.mul(&x.unary(Unary::PowScalar(p - 1.0))?.mul_scalar(p)?)?,
            Unary::AddScalar(_) => g.clone(),
            Unary::MulScalar(k) => g.mul_scalar(k)?,
            Unary::Clamp(lo, hi) => g.mul(&x.unary(Unary::InRange(lo, hi))?)?,
            // Piecewise-constant: zero gradient.
            _ => return Ok(vec![None]),
        };
        Ok(vec![Some(gx)])
    }
}

impl Var {
    pub fn binary(&self, other: &Var, op: Binary) -> Result<Var> {
        let t = self.read2(other, |a, b| a.binary(b, op))?;
        if matches!(
            op,
            Binary::Lt | Binary::Le | Binary::Gt | Binary::Ge | Binary::Eq | Binary::Ne
        ) {
            return Ok(Var::leaf(t, false));
        }
        Ok(Var::from_op(
            t,
            BinaryOp(op),
            vec![self.clone(), other.clone()],
        ))
    }
    /// An elementwise comparison: 1.0 where true, 0.0 where false, no gradient.
    pub fn compare(&self, other: &Var, op: Binary) -> Result<Var> {
        Ok(Var::leaf(self.tensor().binary(&other.tensor(), op)?, false))
    }
    pub fn unary(&self, op: Unary) -> Result<Var> {
        let t = self.read().unary(op)?;
        Ok(Var::from_op(t, UnaryOp(op), vec![self.clone()]))
    }
    pub fn add(&self, o: &Var) -> Result<Var> {
        self.binary(o, Binary::Add)
    }
    pub fn sub(&self, o: &Var) -> Result<Var> {
        self.binary(o, Binary::Sub)
    }
    pub fn mul(&self, o: &Var) -> Result<Var> {
        self.binary(o, Binary::Mul)
    }
    pub fn div(&self, o: &Var) -> Result<Var> {
        self.binary(o, Binary::Div)
    }
    pub fn neg(&self) -> Result<Var> {
        self.unary(Unary::Neg)
    }
    pub fn add_scalar(&self, c: f64) -> Result<Var> {
        self.unary(Unary::AddScalar(c))
    }
    pub fn mul_scalar(&self, c: f64) -> Result<Var> {
        self.unary(Unary::MulScalar(c))
    }
}

struct Where {
    cond: Tensor,
}

impl Op for Where {
    fn name(&self) -> &'static str {
        "where"
    }
    fn rule(&self) -> &'static str {
        "grad_a = g where cond, grad_b = g where not cond"
    }
    fn backward(&self, c: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        let zero = Var::constant(0.0, g.dtype());
        Ok(vec![
            c.grad_for(0, || Var::where_(&self.cond, g, &zero))?,
            c.grad_for(1, || Var::where_(&self.cond, &zero, g))?,
        ])
    }
}

impl Var {
    /// `cond ? a : b`; the gradient flows to the branch that was taken.
    pub fn where_(cond: &Tensor, a: &Var, b: &Var) -> Result<Var> {
        let t = Tensor::where_(cond, &a.tensor(), &b.tensor())?;
        Ok(Var::from_op(
            t,
            Where { cond: cond.clone() },
            vec![a.clone(), b.clone()],
        ))
    }
}
