//! Reductions, the ones that return indices (max/min over a dim, sort, topk), and the fused,
//! numerically stable softmax family.
use std::cmp::Ordering;

use crate::dtype::{DType, Float, Num, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::layout::{wrap_dim, wrap_dims};
use crate::node::{Attr, Ctx, Node, Op};
use crate::ops::elementwise::{Binary, Unary};
use crate::storage::{each_storage, try_alloc};

use crate::layout::{Dims, Layout};
use crate::ops::shape::ViewStep;
use crate::storage::Storage;
use crate::tensor::{with_dtype, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
    Min,
}

impl Tensor {
    // ---- reductions ---------------------------------------------------------------

    /// Reduces over `dims` (sorted, unique, in range).
    pub fn reduce(&self, op: Reduce, dims: &[usize], keepdim: bool) -> Result<Tensor> {
        let name = match op {
            Reduce::Sum => "sum",
            Reduce::Max => "max",
            Reduce::Min => "min",
        };
        if !self.dtype().is_float() {
            return self.reduce_exact(op, dims, keepdim);
        }
        let nd = self.ndim();
        // Summing leading dims of contiguous data (bias gradients): add whole rows, in order.
        let k = dims.len();
        if op == Reduce::Sum && k > 0 && k < nd && dims.iter().enumerate().all(|(i, &d)| i == d) {
            if let Some(out) = self.sum_leading_rows(k, keepdim)? {
                return Ok(out);
            }
        }
        let mut kept = Layout {
            shape: Default::default(),
            strides: Default::default(),
            offset: self.layout.offset,
        };
        let mut red = Layout {
            shape: Default::default(),
            strides: Default::default(),
            offset: 0,
        };
        let mut out_shape = Vec::with_capacity(nd);
        for d in 0..nd {
            if dims.contains(&d) {
                red.shape.push(self.shape()[d]);
                red.strides.push(self.layout.strides[d]);
                if keepdim {
                    out_shape.push(1);
                }
            } else {
                kept.shape.push(self.shape()[d]);
                kept.strides.push(self.layout.strides[d]);
                out_shape.push(self.shape()[d]);
            }
        }
        if red.numel() == 0 && op != Reduce::Sum {
            return Err(Error::value(
                name,
                format!(
                    "cannot take the {name} over a zero-size dim of shape {}",
                    fmt_shape(self.shape())
                ),
            ));
        }
        // A reduced block that is one contiguous run needs no offset table. Otherwise its
        // trailing contiguous dims (the H·W of a bias gradient's (0, 2, 3)) are summed as runs
        // of `inner`, and only the outer dims get offsets.
        let n_red = red.numel();
        let run = red.is_contiguous();
        let inner = if run { n_red } else { contiguous_tail(&red) };
        // A broadcast value (a summed gradient) repeats along every reduced dim.
        let repeated = !run && n_red > 0 && red.strides.iter().all(|&st| st == 0);
        let roffs = if run {
            (0..n_red.min(1)).collect()
        } else {
            let k = red.shape.len() - red_tail_dims(&red);
            Layout {
                shape: red.shape[..k].into(),
                strides: red.strides[..k].into(),
                offset: 0,
            }
            .offsets()?
        };
        with_dtype!(name, &self.storage, T, buf => {
            let s = buf.as_slice();
            let mut out: Vec<T> = Vec::new();
            out.try_reserve_exact(kept.numel()).map_err(|_| Error::Alloc { op: name, bytes: kept.numel() as u128 * 8 })?;
            Layout::walk2(&kept, &kept, |o, _, n, st, _| {
                for i in 0..n {
                    let base = (o as isize + i as isize * st) as usize;
                    let v = match op {
                        // Accumulate in f64 so float32 sums stay accurate.
                        Reduce::Sum if roffs.is_empty() => T::ZERO,
                        Reduce::Sum if repeated => T::from_f64(s[base].to_f64() * n_red as f64),
                        Reduce::Max | Reduce::Min if repeated => s[base],
                        Reduce::Sum => {
                            let acc: f64 = if run {
                                sum_f64(&s[base..base + n_red])
                            } else if inner > 1 {
                                roffs.iter().map(|&r| sum_f64(&s[base + r..base + r + inner])).sum()
                            } else {
                                roffs.iter().map(|&r| s[base + r].to_f64()).sum()
                            };
                            T::from_f64(acc)
                        }
                        Reduce::Max if run => s[base..base + n_red].iter().fold(s[base], |m, &x| m.max_(x)),
                        Reduce::Min if run => s[base..base + n_red].iter().fold(s[base], |m, &x| m.min_(x)),
                        Reduce::Max => roffs.iter().fold(s[base + roffs[0]], |m, &r| {
                            s[base + r..base + r + inner].iter().fold(m, |m, &x| m.max_(x))
                        }),
                        Reduce::Min => roffs.iter().fold(s[base + roffs[0]], |m, &r| {
                            s[base + r..base + r + inner].iter().fold(m, |m, &x| m.min_(x))
                        }),
                    };
                    out.push(v);
                }
            });
            Tensor::from_vec(out, &out_shape)
        })
    }

    /// `reduce` for bool and int tensors: sums in int64 (as torch), max and min in the
    /// tensor's own dtype (on bools they are any and all).
    fn reduce_exact(&self, op: Reduce, dims: &[usize], keepdim: bool) -> Result<Tensor> {
        let name = match op {
            Reduce::Sum => "sum",
            Reduce::Max => "max",
            Reduce::Min => "min",
        };
        let nd = self.ndim();
        let kept: Vec<usize> = (0..nd).filter(|d| !dims.contains(d)).collect();
        let perm: Vec<usize> = kept.iter().chain(dims).copied().collect();
        let src = match op {
            Reduce::Sum => self.to_dtype(DType::I64)?,
            _ => self.clone(),
        };
        let p = src.permute(&perm)?.contiguous()?;
        let len: usize = dims.iter().map(|&d| self.shape()[d]).product();
        let n_out: usize = kept.iter().map(|&d| self.shape()[d]).product();
        if len == 0 && op != Reduce::Sum {
            return Err(Error::value(
                name,
                format!(
                    "cannot take the {name} over a zero-size dim of shape {}",
                    fmt_shape(self.shape())
                ),
            ));
        }
        let out_shape: Vec<usize> = (0..nd)
            .filter_map(|d| match (dims.contains(&d), keepdim) {
                (true, true) => Some(1),
                (true, false) => None,
                (false, _) => Some(self.shape()[d]),
            })
            .collect();
        each_storage!(p.storage(), T, _b => {
            let s = p.as_slice::<T>().expect("contiguous");
            let out: Vec<T> = if len == 0 {
                try_alloc(name, n_out, T::ZERO)?
            } else {
                s.chunks(len)
                    .map(|row| match op {
                        Reduce::Sum => row.iter().fold(T::ZERO, |a, &x| Num::add(a, x)),
                        Reduce::Max => row.iter().fold(row[0], |m, &x| Num::maximum(m, x)),
                        Reduce::Min => row.iter().fold(row[0], |m, &x| Num::minimum(m, x)),
                    })
                    .collect()
            };
            Tensor::from_vec(out, &out_shape)
        })
    }

    /// The sum over the first `k` dims of a contiguous tensor, row by row (None: not contiguous).
    fn sum_leading_rows(&self, k: usize, keepdim: bool) -> Result<Option<Tensor>> {
        let rows: usize = self.shape()[..k].iter().product();
        let width: usize = self.shape()[k..].iter().product();
        let mut shape: Dims = if keepdim {
            smallvec::smallvec![1; k]
        } else {
            Dims::new()
        };
        shape.extend_from_slice(&self.shape()[k..]);
        with_dtype!("sum", &self.storage, T, _b => {
            let Some(s) = self.as_slice::<T>() else { return Ok(None) };
            let mut acc = try_alloc::<f64>("sum", width, 0.0)?;
            for row in s.chunks_exact(width.max(1)).take(rows) {
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += x.to_f64();
                }
            }
            let out: Vec<T> = acc.into_iter().map(T::from_f64).collect();
            Tensor::from_vec(out, &shape).map(Some)
        })
    }

    /// Index of the largest (or smallest) element along `dim`, or over the flattened
    /// tensor when `dim` is None. Ties pick the first, NaN wins, as numpy.
    pub fn arg_extreme(
        &self,
        largest: bool,
        dim: Option<isize>,
        keepdim: bool,
    ) -> Result<(Vec<f64>, Vec<usize>)> {
        let name = if largest { "argmax" } else { "argmin" };
        let t = match dim {
            None => self.reshape(&[self.numel()])?,
            Some(_) => self.clone(),
        };
        let d = match dim {
            None => 0,
            Some(d) => wrap_dim(name, d, t.ndim().max(1))?,
        };
        if t.ndim() == 0 {
            return Ok((vec![0.0], vec![]));
        }
        if t.shape()[d] == 0 {
            return Err(Error::value(
                name,
                format!(
                    "cannot take the {name} over a zero-size dim of shape {}",
                    fmt_shape(self.shape())
                ),
            ));
        }
        let moved: Vec<usize> = (0..t.ndim()).filter(|&i| i != d).chain([d]).collect();
        let p = t.permute(&moved)?.contiguous()?;
        let len = t.shape()[d];
        // Compared in the element type: int64 beyond 2**53 stays exact.
        let out: Vec<f64> = each_storage!(p.storage(), T, _b => {
            let s = p.as_slice::<T>().expect("contiguous");
            s.chunks(len)
                .map(|row| {
                    let mut best = 0usize;
                    for (i, &x) in row.iter().enumerate() {
                        if row[best].is_nan() {
                            break;
                        }
                        if x.is_nan() || (largest && x > row[best]) || (!largest && x < row[best]) {
                            best = i;
                        }
                    }
                    best as f64
                })
                .collect()
        });
        let mut shape: Vec<usize> = t.shape().to_vec();
        match (dim, keepdim) {
            (None, true) => shape = vec![1; self.ndim()],
            (None, false) => shape = vec![],
            (Some(_), true) => shape[d] = 1,
            (Some(_), false) => {
                shape.remove(d);
            }
        }
        Ok((out, shape))
    }
}

/// Sum in f64 with eight independent accumulators, so the loop vectorizes and float32
/// input keeps its accuracy.
fn sum_f64<T: Float>(xs: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|x| x.to_f64()).sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x.to_f64();
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The input shape with reduced dims set to 1: where a reduced gradient broadcasts back.
fn kept_shape(shape: &[usize], dims: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if dims.contains(&i) { 1 } else { d })
        .collect()
}

struct Sum {
    dims: Vec<usize>,
}

impl Op for Sum {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dims", Attr::dims(&self.dims))]
    }
    fn name(&self) -> &'static str {
        "sum"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g broadcast back over the summed dims"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let shape = c.parent(0).shape();
        Ok(vec![Some(
            g.reshape(&kept_shape(&shape, &self.dims))?.expand(&shape)?,
        )])
    }
}

struct Extreme {
    name: &'static str,
    dims: Vec<usize>,
    /// torch's `max()`/`min()` of the whole tensor: the (evenly split) gradient is selected
    /// into the chosen positions, NaN ones when the result is NaN. `amax`/`amin` multiply by
    /// the mask instead, as torch, so an inf g gives NaN elsewhere there.
    select: bool,
}

impl Op for Extreme {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dims", Attr::dims(&self.dims))]
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn rule(&self) -> &'static str {
        "grad_x = g at the chosen (extreme) positions, split evenly among ties; 0 elsewhere"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let x = c.parent(0);
        let kept = kept_shape(&x.shape(), &self.dims);
        let (t, out) = (x.tensor(), c.out.tensor().reshape(&kept)?);
        let mut hit = t.binary(&out, Binary::Eq)?;
        if self.select {
            let both_nan = t
                .unary(Unary::IsNan)?
                .binary(&out.unary(Unary::IsNan)?, Binary::And)?;
            hit = hit.binary(&both_nan, Binary::Or)?;
        }
        let count = hit
            .to_dtype(g.dtype())?
            .reduce(Reduce::Sum, &self.dims, true)?;
        let share = g.reshape(&kept)?.div(&Node::leaf(count, false))?;
        Ok(vec![Some(if self.select {
            share.masked(&hit)?
        } else {
            share.mul(&Node::leaf(hit, false))?
        })])
    }
}

fn to_isize(d: &[usize]) -> Vec<isize> {
    d.iter().map(|&x| x as isize).collect()
}

impl Node {
    /// Sum over `dims` (None: all), as `torch.sum(dim, keepdim)`.
    pub fn sum(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Node> {
        let t = self.tensor();
        let dims = wrap_dims("sum", dims, t.ndim())?;
        let out = t.reduce(Reduce::Sum, &dims, keepdim)?;
        Ok(Node::from_op(out, Sum { dims }, vec![self.clone()]))
    }

    /// `amax`: the largest values over `dims` (None: all).
    pub fn max(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Node> {
        self.extreme(Reduce::Max, dims, keepdim, false)
    }

    /// `amin`.
    pub fn min(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Node> {
        self.extreme(Reduce::Min, dims, keepdim, false)
    }

    /// torch's `max()` or `min()` of the whole tensor, a 0-d result.
    pub fn extreme_all(&self, largest: bool) -> Result<Node> {
        let op = if largest { Reduce::Max } else { Reduce::Min };
        self.extreme(op, None, false, true)
    }

    fn extreme(
        &self,
        op: Reduce,
        dims: Option<&[isize]>,
        keepdim: bool,
        select: bool,
    ) -> Result<Node> {
        let t = self.tensor();
        let name = if op == Reduce::Max { "max" } else { "min" };
        let dims = wrap_dims(name, dims, t.ndim())?;
        let out = t.reduce(op, &dims, keepdim)?;
        Ok(Node::from_op(
            out,
            Extreme { name, dims, select },
            vec![self.clone()],
        ))
    }

    fn count(&self, op: &'static str, dims: Option<&[isize]>) -> Result<usize> {
        let shape = self.shape();
        Ok(wrap_dims(op, dims, shape.len())?
            .iter()
            .map(|&d| shape[d])
            .product())
    }

    pub fn mean(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Node> {
        if !self.dtype().is_float() {
            return Err(Error::type_(
                "mean",
                format!(
                    "needs a float tensor, got {} (use .float() first)",
                    self.dtype()
                ),
            ));
        }
        let n = self.count("mean", dims)?;
        self.sum(dims, keepdim)?.mul_scalar(1.0 / n as f64)
    }

    /// Variance with `correction` subtracted from the count (1: unbiased, as PyTorch).
    pub fn var(&self, dims: Option<&[isize]>, correction: f64, keepdim: bool) -> Result<Node> {
        self.moment(dims, correction, keepdim, false)
    }

    pub fn std(&self, dims: Option<&[isize]>, correction: f64, keepdim: bool) -> Result<Node> {
        self.moment(dims, correction, keepdim, true)
    }

    fn moment(
        &self,
        dims: Option<&[isize]>,
        correction: f64,
        keepdim: bool,
        std: bool,
    ) -> Result<Node> {
        let name = if std { "std" } else { "var" };
        let t = self.tensor();
        if !t.dtype().is_float() {
            return Err(Error::type_(
                name,
                format!(
                    "needs a float tensor, got {} (use .float() first)",
                    t.dtype()
                ),
            ));
        }
        let all = dims.is_none() || t.ndim() == 0;
        let dims = wrap_dims(name, dims, t.ndim())?;
        let n = dims.iter().map(|&d| t.shape()[d]).product::<usize>() as f64;
        // float32 is computed in float64 (as torch accumulates): squares of tiny values
        // would underflow to a zero std.
        let x = t.to_dtype(DType::F64)?;
        let mean = x
            .reduce(Reduce::Sum, &dims, true)?
            .binary(&Tensor::scalar(n, DType::F64), Binary::Div)?;
        let d = x.binary(&mean, Binary::Sub)?;
        // torch's divisor: max(0, n - correction), so too few elements give NaN (0/0).
        let var = d
            .binary(&d, Binary::Mul)?
            .reduce(Reduce::Sum, &dims, keepdim)?
            .binary(
                &Tensor::scalar((n - correction).max(0.0), DType::F64),
                Binary::Div,
            )?;
        let out = if std { var.unary(Unary::Sqrt)? } else { var };
        Ok(Node::from_op(
            out.to_dtype(t.dtype())?,
            Moment {
                name,
                dims,
                correction,
                std,
                all,
            },
            vec![self.clone()],
        ))
    }
}

/// `var` and `std`, with torch's backward: `var` gives `g·2(x - mean)/(n - correction)`
/// (the formula as it stands, also where the divisor is 0 or negative), and `std` first
/// turns g into `g/(2·std)`, 0 where std is 0 (a constant input has zero gradient, not NaN).
struct Moment {
    name: &'static str,
    dims: Vec<usize>,
    correction: f64,
    std: bool,
    /// Over the whole tensor (no dim given): torch spells out the 0-divisor case there.
    all: bool,
}

impl Op for Moment {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("dims", Attr::dims(&self.dims)),
            ("correction", Attr::Float(self.correction)),
        ]
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn rule(&self) -> &'static str {
        if self.std {
            "grad_x = g·(x - mean)/((n - correction)·y), 0 where y = 0"
        } else {
            "grad_x = g·2(x - mean)/(n - correction)"
        }
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let x = c.parent(0);
        let shape = x.shape();
        let kept = kept_shape(&shape, &self.dims);
        let n = self.dims.iter().map(|&d| shape[d]).product::<usize>() as f64;
        let mut g = g.reshape(&kept)?;
        if self.std {
            let y = c.out.reshape(&kept)?;
            let zero = y.tensor().compare_scalar(0.0, Binary::Eq)?;
            g = g.div(&y.mul_scalar(2.0)?)?.zeroed(&zero)?;
        }
        let d = to_isize(&self.dims);
        let mean = x.mean(Some(&d), true)?;
        if self.all && n - self.correction <= 0.0 {
            // As torch: 2/(n - correction) is inf, so NaN where x equals the mean (inf·0)
            // and +inf elsewhere.
            let at_mean = x.tensor().binary(&mean.tensor(), Binary::Eq)?;
            let dt = g.dtype();
            let nan_or_inf = Tensor::where_(
                &at_mean,
                &Tensor::scalar(f64::NAN, dt),
                &Tensor::scalar(f64::INFINITY, dt),
            )?;
            return Ok(vec![Some(g.mul(&Node::leaf(nan_or_inf, false))?)]);
        }
        let centered = x.sub(&mean)?;
        Ok(vec![Some(
            g.mul(&centered)?.mul_scalar(2.0 / (n - self.correction))?,
        )])
    }
}

/// The max over `dims` (keepdim): the shift that keeps exp finite. softmax and log_softmax
/// use it as it is, so a row holding +inf is NaN, as in torch.
fn row_max(t: &Tensor, dims: &[usize]) -> Result<Tensor> {
    if dims.iter().any(|&d| t.shape()[d] == 0) {
        // Nothing to shift: an empty reduction gives sum 0, so logsumexp is -inf.
        return Tensor::zeros(&kept_shape(t.shape(), dims), t.dtype());
    }
    t.reduce(Reduce::Max, dims, true)
}

/// The max over `dims` with non-finite values replaced by 0, as torch's logsumexp: a row of
/// -inf gives -inf and a row holding +inf gives +inf (not NaN).
fn stable_shift(t: &Tensor, dims: &[usize]) -> Result<Tensor> {
    let m = row_max(t, dims)?;
    let finite = m
        .unary(Unary::Abs)?
        .binary(&Tensor::scalar(f64::INFINITY, m.dtype()), Binary::Lt)?;
    Tensor::where_(&finite, &m, &Tensor::scalar(0.0, m.dtype()))
}

/// `x - m` and `log(sum(exp(x - m)))` over `dims` (keepdim), with `m` the shift:
/// log_softmax is their difference, which keeps small terms that `x - logsumexp` loses.
fn shifted_lse(t: &Tensor, dims: &[usize], m: Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let shifted = t.binary(&m, Binary::Sub)?;
    let lse = shifted
        .unary(Unary::Exp)?
        .reduce(Reduce::Sum, dims, true)?
        .unary(Unary::Log)?;
    Ok((shifted, lse, m))
}

struct LogSumExp {
    dims: Vec<usize>,
}

impl Op for LogSumExp {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dims", Attr::dims(&self.dims))]
    }
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g · softmax(x)"
    }
    // d/dx logsumexp(x) = softmax(x) = exp(s - log(sum(exp(s)))) with s = x - m, the
    // stable shift: as accurate as log_softmax for large |x|, and NaN only at a +inf (as
    // torch's exp(x - y)).
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let x = c.parent(0);
        let kept = kept_shape(&x.shape(), &self.dims);
        let m = Node::leaf(stable_shift(&x.tensor(), &self.dims)?, false);
        let s = x.sub(&m)?;
        let d = to_isize(&self.dims);
        let lse = s
            .unary(Unary::Exp)?
            .sum(Some(&d), true)?
            .unary(Unary::Log)?;
        let p = s.sub(&lse)?.unary(Unary::Exp)?;
        Ok(vec![Some(g.reshape(&kept)?.mul(&p)?)])
    }
}

struct Softmax {
    dim: usize,
}

impl Op for Softmax {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dim", Attr::Int(self.dim as i64))]
    }
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn rule(&self) -> &'static str {
        "grad_x = y · (g - sum(g · y))"
    }
    // dx = y * (g - sum(g * y))
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let y = c.out;
        let d = [self.dim as isize];
        Ok(vec![Some(y.mul(&g.sub(&g.mul(y)?.sum(Some(&d), true)?)?)?)])
    }
}

struct LogSoftmax {
    dim: usize,
}

impl Op for LogSoftmax {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dim", Attr::Int(self.dim as i64))]
    }
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g - softmax(x) · sum(g)"
    }
    // dx = g - softmax * sum(g)
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let p = c.out.unary(Unary::Exp)?;
        let d = [self.dim as isize];
        Ok(vec![Some(g.sub(&p.mul(&g.sum(Some(&d), true)?)?)?)])
    }
}

impl Node {
    pub fn logsumexp(&self, dims: Option<&[isize]>, keepdim: bool) -> Result<Node> {
        let t = self.tensor();
        let dims = wrap_dims("logsumexp", dims, t.ndim())?;
        let (_, lse, m) = shifted_lse(&t, &dims, stable_shift(&t, &dims)?)?;
        let mut out = lse.binary(&m, Binary::Add)?;
        if !keepdim {
            let shape: Vec<usize> = (0..t.ndim())
                .filter(|d| !dims.contains(d))
                .map(|d| t.shape()[d])
                .collect();
            out = out.reshape(&shape)?;
        }
        Ok(Node::from_op(out, LogSumExp { dims }, vec![self.clone()]))
    }

    pub fn softmax(&self, dim: isize) -> Result<Node> {
        let t = self.tensor();
        let dims = wrap_dims("softmax", Some(&[dim]), t.ndim())?;
        let e = t
            .binary(&row_max(&t, &dims)?, Binary::Sub)?
            .unary(Unary::Exp)?;
        let out = e.binary(&e.reduce(Reduce::Sum, &dims, true)?, Binary::Div)?;
        Ok(Node::from_op(
            out,
            Softmax {
                dim: dims.first().copied().unwrap_or(0),
            },
            vec![self.clone()],
        ))
    }

    pub fn log_softmax(&self, dim: isize) -> Result<Node> {
        let t = self.tensor();
        let dims = wrap_dims("log_softmax", Some(&[dim]), t.ndim())?;
        let (shifted, lse, _) = shifted_lse(&t, &dims, row_max(&t, &dims)?)?;
        let out = shifted.binary(&lse, Binary::Sub)?;
        Ok(Node::from_op(
            out,
            LogSoftmax {
                dim: dims.first().copied().unwrap_or(0),
            },
            vec![self.clone()],
        ))
    }
}

// ---- reductions that return indices ------------------------------------------------------

/// Ascending order with NaN after everything (torch's order for sorting).
fn nan_last<T: Num>(a: T, b: T) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

impl Tensor {
    /// The int64 indices that sort each row along `dim` (stable; NaN counts as the largest).
    pub fn argsort(&self, dim: usize, descending: bool) -> Result<Tensor> {
        let nd = self.ndim();
        let moved: Vec<usize> = (0..nd).filter(|&i| i != dim).chain([dim]).collect();
        let p = self.permute(&moved)?.contiguous()?;
        let len = self.shape()[dim];
        let mut out: Vec<i64> = try_alloc("argsort", p.numel(), 0)?;
        if len > 0 {
            each_storage!(p.storage(), T, _b => {
                let s = p.as_slice::<T>().expect("contiguous");
                for (row, o) in s.chunks(len).zip(out.chunks_mut(len)) {
                    let mut order: Vec<usize> = (0..len).collect();
                    if descending {
                        order.sort_by(|&i, &j| nan_last(row[j], row[i]));
                    } else {
                        order.sort_by(|&i, &j| nan_last(row[i], row[j]));
                    }
                    for (dst, &i) in o.iter_mut().zip(&order) {
                        *dst = i as i64;
                    }
                }
            });
        }
        let sorted = Tensor::from_vec(out, p.shape())?;
        let mut back = vec![0; nd];
        for (i, &m) in moved.iter().enumerate() {
            back[m] = i;
        }
        sorted.permute(&back)?.contiguous()
    }
}

impl Node {
    /// torch's `max(dim)` / `min(dim)`: the values and their int64 indices (the first of
    /// ties). The values are gathered at the indices, so their gradient goes there alone.
    pub fn extreme_at(&self, largest: bool, dim: isize, keepdim: bool) -> Result<(Node, Node)> {
        let name = if largest { "max" } else { "min" };
        if self.ndim() == 0 {
            wrap_dim(name, dim, 1)?;
            return Ok((
                self.clone(),
                Node::leaf(Tensor::zeros(&[], DType::I64)?, false),
            ));
        }
        let d = wrap_dim(name, dim, self.ndim())?;
        let (idx, shape) = self.tensor().arg_extreme(largest, Some(d as isize), true)?;
        let idx: Vec<i64> = idx.into_iter().map(|i| i as i64).collect();
        let idx = Tensor::from_vec(idx, &shape)?;
        let values = self.gather(d as isize, &idx)?;
        let indices = Node::leaf(idx, false);
        if keepdim {
            return Ok((values, indices));
        }
        let dims = [d as isize];
        Ok((values.squeeze(Some(&dims))?, indices.squeeze(Some(&dims))?))
    }

    /// torch's `sort(dim, descending)`: the sorted values (gathered, so their gradient flows
    /// back to where each came from) and the int64 order.
    pub fn sort(&self, dim: isize, descending: bool) -> Result<(Node, Node)> {
        if self.ndim() == 0 {
            wrap_dim("sort", dim, 1)?;
            return Ok((
                self.clone(),
                Node::leaf(Tensor::zeros(&[], DType::I64)?, false),
            ));
        }
        let d = wrap_dim("sort", dim, self.ndim())?;
        let order = self.tensor().argsort(d, descending)?;
        Ok((self.gather(d as isize, &order)?, Node::leaf(order, false)))
    }

    /// torch's `topk`: the `k` largest (or smallest) along `dim`, in order, with indices.
    pub fn topk(&self, k: usize, dim: isize, largest: bool) -> Result<(Node, Node)> {
        let shape = self.shape();
        let d = wrap_dim("topk", dim, shape.len().max(1))?;
        let n = shape.get(d).copied().unwrap_or(1);
        if k > n {
            return Err(Error::index(
                "topk",
                format!(
                    "k ({k}) is larger than dim {d} of size {n} in shape {}",
                    fmt_shape(&shape)
                ),
            ));
        }
        if shape.is_empty() {
            return self.sort(dim, largest);
        }
        let order = self
            .tensor()
            .argsort(d, largest)?
            .slice(d, 0, k, 1)
            .contiguous()?;
        Ok((self.gather(d as isize, &order)?, Node::leaf(order, false)))
    }
}

/// torch's `cumsum`: running sums along one dim.
struct CumSum {
    dim: usize,
}

impl Op for CumSum {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dim", Attr::Int(self.dim as i64))]
    }
    fn name(&self) -> &'static str {
        "cumsum"
    }
    fn rule(&self) -> &'static str {
        "grad_x = running sums of g from the end of the dim backwards"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let d = self.dim as isize;
        Ok(vec![Some(g.flip(self.dim)?.cumsum(d)?.flip(self.dim)?)])
    }
}

impl Node {
    /// torch's `cumsum(dim)`: bools and ints give int64 (torch's rule), floats keep their
    /// dtype and add in it, left to right, as torch's CPU kernel does.
    pub fn cumsum(&self, dim: isize) -> Result<Node> {
        let shape = self.shape();
        let d = wrap_dim("cumsum", dim, shape.len().max(1))?;
        let t = self.tensor();
        let t = if t.dtype().is_float() {
            t.contiguous()?
        } else {
            t.to_dtype(DType::I64)?.contiguous()?
        };
        let n = shape.get(d).copied().unwrap_or(1);
        let inner: usize = shape.iter().skip(d + 1).product();
        let out = each_storage!(t.storage(), T, _b => {
            let x = t.as_slice::<T>().expect("contiguous");
            let mut y = try_alloc("cumsum", x.len(), T::ZERO)?;
            // `max(1)`: an empty tensor has no rows (and chunks of 0 are not allowed).
            for (row, out) in x.chunks((n * inner).max(1)).zip(y.chunks_mut((n * inner).max(1))) {
                out[..inner.min(row.len())].copy_from_slice(&row[..inner.min(row.len())]);
                for i in inner..row.len() {
                    out[i] = Num::add(out[i - inner], row[i]);
                }
            }
            Tensor::from_vec(y, &shape)
        })?;
        Ok(Node::from_op(out, CumSum { dim: d }, vec![self.clone()]))
    }

    /// The elements in reverse order along `dim`, as a view.
    pub fn flip(&self, dim: usize) -> Result<Node> {
        let n = self.shape().get(dim).copied().unwrap_or(1);
        if n <= 1 {
            return Ok(self.clone());
        }
        self.view(&[ViewStep::Slice {
            dim,
            start: n - 1,
            len: n,
            step: -1,
        }])
    }
}

/// How many trailing dims of `l` form one contiguous run (stride 1, each nesting the next).
fn red_tail_dims(l: &Layout) -> usize {
    let mut span = 1isize;
    let mut n = 0;
    for d in (0..l.shape.len()).rev() {
        if l.strides[d] != span {
            break;
        }
        span *= l.shape[d] as isize;
        n += 1;
    }
    n
}

/// The element count of `l`'s trailing contiguous run (1 if there is none).
fn contiguous_tail(l: &Layout) -> usize {
    let k = l.shape.len() - red_tail_dims(l);
    l.shape[k..].iter().product()
}
