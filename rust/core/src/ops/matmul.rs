//! Matrix products with numpy's rules for 1-D operands and broadcast batch dims.
use crate::error::{fmt_shape, Error, Result};
use crate::node::{Ctx, Node, Op};

struct MatMul;

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn rule(&self) -> &'static str {
        "grad_a = g @ b^T, grad_b = a^T @ g"
    }
    // d(a@b)/da = g @ b^T, d(a@b)/db = a^T @ g; batch dims are summed back by the engine.
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let (a, b) = (c.parent(0), c.parent(1));
        Ok(vec![
            c.grad_for(0, || g.matmul(&b.transpose(-1, -2)?))?,
            c.grad_for(1, || a.transpose(-1, -2)?.matmul(g))?,
        ])
    }
}

impl Node {
    /// `numpy.matmul`: 1-D operands are promoted to matrices, then the added dim is removed.
    pub fn matmul(&self, other: &Node) -> Result<Node> {
        let (sa, sb) = (self.shape(), other.shape());
        if sa.is_empty() || sb.is_empty() {
            return Err(Error::shape(
                "matmul",
                format!(
                    "both operands need at least 1 dim, got {} @ {}",
                    fmt_shape(&sa),
                    fmt_shape(&sb)
                ),
            ));
        }
        let a = if sa.len() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if sb.len() == 1 {
            other.unsqueeze(-1)?
        } else {
            other.clone()
        };
        let t = a.tensor().matmul(&b.tensor()).map_err(|e| match e {
            Error::Shape { op, .. } => Error::shape(
                op,
                format!(
                    "cannot multiply {} @ {}: inner dims {} and {} differ or batch dims do not broadcast",
                    fmt_shape(&sa),
                    fmt_shape(&sb),
                    sa[sa.len() - 1],
                    sb[if sb.len() == 1 { 0 } else { sb.len() - 2 }]
                ),
            ),
            e => e,
        })?;
        let mut out = Node::from_op(t, MatMul, vec![a, b]);
        if sb.len() == 1 {
            out = out.squeeze(Some(&[-1]))?;
        }
        if sa.len() == 1 {
            let n = out.ndim() as isize;
            out = out.squeeze(Some(&[if sb.len() == 1 { n - 1 } else { n - 2 }]))?;
        }
        Ok(out)
    }

    /// `numpy.dot` for up to 2-D operands: a product with a 0-d operand, else `matmul`.
    pub fn dot(&self, other: &Node) -> Result<Node> {
        let (sa, sb) = (self.shape(), other.shape());
        if sa.is_empty() || sb.is_empty() {
            return self.mul(other);
        }
        if sa.len() > 2 || sb.len() > 2 {
            return Err(Error::shape(
                "dot",
                format!(
                    "dot takes operands of at most 2 dims, got {} and {}; use matmul",
                    fmt_shape(&sa),
                    fmt_shape(&sb)
                ),
            ));
        }
        self.matmul(other)
    }
}
