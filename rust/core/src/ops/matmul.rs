//! Matrix products with numpy's rules for 1-D operands and broadcast batch dims.
use crate::dtype::Scalar;
use crate::error::{fmt_shape, Error, Result};
use crate::layout::{broadcast_shapes, checked_numel, Layout};
use crate::node::{Ctx, Node, Op};
use crate::storage::{try_alloc, Element, Storage};
use crate::tensor::{with_dtype, Tensor};

struct MatMul;

impl Op for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn rule(&self) -> &'static str {
        "grad_a = g @ b^T, grad_b = a^T @ g"
    }
    // d(a@b)/da = g @ b^T, d(a@b)/db = a^T @ g; batch dims are summed back by the engine.
    // A column-major operand (W^T in x @ W^T) gets its gradient column-major, as the
    // transpose of the swapped product, so the transpose's backward hands W a contiguous
    // gradient that it keeps without a copy (torch's mm backward does the same).
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let (a, b) = (c.parent(0), c.parent(1));
        Ok(vec![
            c.grad_for(0, || {
                if a.shape().len() == 2 && b.shape().len() == 2 && a.is_column_major() {
                    return b.matmul(&g.transpose(0, 1)?)?.transpose(0, 1);
                }
                g.matmul(&b.transpose(-1, -2)?)
            })?,
            c.grad_for(1, || {
                let (sa, sb) = (a.shape(), b.shape());
                let (a2, g2) = if sb.len() == 2 && sa.len() > 2 {
                    // A matrix shared by a batch (x @ W with x (B, T, C)): one product over
                    // all B·T rows, not B products summed afterwards.
                    let rows = sa[..sa.len() - 1].iter().product();
                    (
                        a.reshape(&[rows, sa[sa.len() - 1]])?,
                        g.reshape(&[rows, sb[1]])?,
                    )
                } else if sb.len() == 2 && sa.len() == 2 {
                    (a.clone(), g.clone())
                } else {
                    return a.transpose(-1, -2)?.matmul(g);
                };
                if b.is_column_major() {
                    return g2.transpose(0, 1)?.matmul(&a2)?.transpose(0, 1);
                }
                a2.transpose(0, 1)?.matmul(&g2)
            })?,
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

impl Tensor {
    // ---- matmul -------------------------------------------------------------------

    /// `(..., m, k) @ (..., k, n)` with broadcast batch dims; both operands at least 2-D.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        let (a, b) = (self, other);
        if a.ndim() < 2 || b.ndim() < 2 {
            return Err(Error::shape(
                "matmul",
                "the core matmul needs 2-D or batched operands",
            ));
        }
        let (m, k) = (a.shape()[a.ndim() - 2], a.shape()[a.ndim() - 1]);
        let (k2, n) = (b.shape()[b.ndim() - 2], b.shape()[b.ndim() - 1]);
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!(
                    "inner dims differ: {} @ {} ({k} != {k2})",
                    fmt_shape(a.shape()),
                    fmt_shape(b.shape())
                ),
            ));
        }
        let batch = broadcast_shapes(
            "matmul",
            &a.shape()[..a.ndim() - 2],
            &b.shape()[..b.ndim() - 2],
        )
        .map_err(|_| {
            Error::shape(
                "matmul",
                format!(
                    "batch dims of {} and {} do not broadcast",
                    fmt_shape(a.shape()),
                    fmt_shape(b.shape())
                ),
            )
        })?;
        let dtype = a.dtype().promote(b.dtype());
        let prep = |t: &Tensor, rows: usize, cols: usize| -> Result<Tensor> {
            let mut full = batch.clone();
            full.extend([rows, cols]);
            let t = t.to_dtype(dtype)?.broadcast_to(&full)?;
            // gemm wants positive strides in the matrix dims.
            let nd = t.ndim();
            if t.layout.strides[nd - 1] <= 0 && cols > 1
                || t.layout.strides[nd - 2] <= 0 && rows > 1
            {
                let c = t.contiguous()?;
                return Ok(c);
            }
            Ok(t)
        };
        let a = prep(a, m, k)?;
        let b = prep(b, k, n)?;
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        if let Some(rows) = folds_into_rows(&a, &b, batch.len()) {
            // b is one matrix for the whole batch, and a's batch and row dims form one run
            // of rows: a single (nb·m, k) @ (k, n) product, which gemm runs far faster.
            let a2 = a.with_layout(Layout {
                shape: [rows, k].as_slice().into(),
                strides: [
                    a.layout.strides[batch.len()],
                    a.layout.strides[batch.len() + 1],
                ]
                .as_slice()
                .into(),
                offset: a.layout.offset,
            });
            let b2 = b.with_layout(Layout {
                shape: [k, n].as_slice().into(),
                strides: b.layout.strides[batch.len()..].into(),
                offset: b.layout.offset,
            });
            return a2.matmul(&b2)?.reshape(&out_shape);
        }
        let total = checked_numel("matmul", &out_shape)?;
        let nb: usize = batch.iter().product();
        let batch_layout = |t: &Tensor| Layout {
            shape: batch.as_slice().into(),
            strides: t.layout.strides[..batch.len()].into(),
            offset: t.layout.offset,
        };
        let (ao, bo) = (batch_layout(&a).offsets()?, batch_layout(&b).offsets()?);
        let nd = a.ndim();
        let (ars, acs) = (a.layout.strides[nd - 2], a.layout.strides[nd - 1]);
        let (brs, bcs) = (b.layout.strides[nd - 2], b.layout.strides[nd - 1]);
        let threads = crate::num_threads();
        let par = if m * n * k >= 96 * 96 * 96 && threads != 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        with_dtype!("matmul", &a.storage, T, abuf => {
            let bbuf = T::unwrap(&b.storage).expect("cast above");
            let mut out = try_alloc::<T>("matmul", total, T::ZERO)?;
            if k > 0 && m > 0 && n > 0 {
                for i in 0..nb {
                    // SAFETY: offsets and strides come from layouts that stay inside their
                    // buffers; `out` holds nb*m*n elements, written in disjoint m*n blocks.
                    unsafe {
                        gemm::gemm::<T>(
                            m, n, k,
                            out.as_mut_ptr().add(i * m * n), 1, n as isize, false,
                            abuf.as_ptr().add(ao[i]), acs, ars,
                            bbuf.as_ptr().add(bo[i]), bcs, brs,
                            T::ZERO, T::ONE, false, false, false, par,
                        );
                    }
                }
            }
            Tensor::from_vec(out, &out_shape)
        })
    }
}

/// For `a @ b` with `nd_batch` batch dims: the row count of a single product when b does
/// not vary over the batch (its batch strides are 0 or its batch dims have length 1) and
/// a's batch and row dims are one evenly strided run.
fn folds_into_rows(a: &Tensor, b: &Tensor, nd_batch: usize) -> Option<usize> {
    if nd_batch == 0 {
        return None;
    }
    let (sa, sb) = (a.shape(), b.shape());
    let b_shared = (0..nd_batch).all(|d| b.layout.strides[d] == 0 || sb[d] == 1);
    if !b_shared {
        return None;
    }
    // Dims of length 1 never move; the rest must nest: stride[d] = len[d+1]·stride[d+1].
    let mut stride = a.layout.strides[nd_batch];
    let mut span = sa[nd_batch] as isize;
    for d in (0..nd_batch).rev() {
        if sa[d] == 1 {
            continue;
        }
        if a.layout.strides[d] != span * stride || stride == 0 {
            return None;
        }
        stride = a.layout.strides[d];
        span = sa[d] as isize;
    }
    Some(sa[..=nd_batch].iter().product())
}
