//! `Tensor`: a storage plus a layout; construction, casts, views and (for now) the reduction
//! and matmul kernels. Indexing kernels live in `ops/index.rs`. No autograd here (`var.rs`).
use std::sync::Arc;

use crate::dtype::{Bool8, DType, Float, Num, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::layout::{broadcast_shapes, checked_numel, wrap_dim, Dims, Layout};
use crate::ops::elementwise::map;
use crate::storage::{each_storage, try_alloc, Buffer, Element, Storage};

#[derive(Clone)]
pub struct Tensor {
    storage: Storage,
    layout: Layout,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {})", fmt_shape(self.shape()), self.dtype())
    }
}

/// Runs `$body` with `$T` the element type of a float tensor, `$b` its buffer.
macro_rules! with_dtype {
    ($op:expr, $storage:expr, $T:ident, $b:ident => $body:expr) => {
        match $storage {
            Storage::F32($b) => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            Storage::F64($b) => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            s => Err(Error::type_(
                $op,
                format!("needs a float tensor, got {}", s.dtype()),
            )),
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub norm: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub zeros: f64,
    pub nonfinite: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
    Min,
}

impl Tensor {
    // ---- construction -------------------------------------------------------------

    pub fn from_vec<T: Element>(data: Vec<T>, shape: &[usize]) -> Result<Tensor> {
        let n = checked_numel("tensor", shape)?;
        if n != data.len() {
            return Err(Error::shape(
                "tensor",
                format!(
                    "{} elements cannot take the shape {}",
                    data.len(),
                    fmt_shape(shape)
                ),
            ));
        }
        Ok(Tensor {
            storage: T::wrap(Arc::new(Buffer::new(data))),
            layout: Layout::contiguous(shape),
        })
    }

    /// A contiguous tensor over memory that `owner` keeps alive (zero-copy import).
    ///
    /// # Safety
    /// As `Buffer::foreign`; `len` must equal the product of `shape`.
    pub unsafe fn from_foreign<T: Element>(
        ptr: *mut T,
        shape: &[usize],
        owner: Box<dyn std::any::Any + Send + Sync>,
    ) -> Result<Tensor> {
        let n = checked_numel("tensor", shape)?;
        let buf = unsafe { Buffer::foreign(ptr, n, owner) };
        Ok(Tensor {
            storage: T::wrap(Arc::new(buf)),
            layout: Layout::contiguous(shape),
        })
    }

    pub fn full(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        fn fill<T: Element>(shape: &[usize], n: usize, v: T) -> Result<Tensor> {
            Tensor::from_vec(try_alloc("full", n, v)?, shape)
        }
        let n = checked_numel("full", shape)?;
        match dtype {
            DType::Bool => fill(shape, n, Bool8::cast(value)),
            DType::I32 => fill(shape, n, i32::cast(value)),
            DType::I64 => fill(shape, n, i64::cast(value)),
            DType::F32 => fill(shape, n, value as f32),
            DType::F64 => fill(shape, n, value),
        }
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Tensor> {
        Tensor::full(shape, 0.0, dtype)
    }

    pub fn scalar(value: f64, dtype: DType) -> Tensor {
        Tensor::from_vec(vec![value], &[])
            .and_then(|t| t.to_dtype(dtype))
            .expect("a 0-d tensor always fits")
    }

    // ---- metadata -----------------------------------------------------------------

    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }
    /// A view of the same storage with another layout. The caller keeps it in bounds.
    pub(crate) fn with_layout(&self, layout: Layout) -> Tensor {
        Tensor {
            storage: self.storage.clone(),
            layout,
        }
    }

    /// The elements in row-major order, as f64.
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        let offsets = self.layout.offsets()?;
        each_storage!(&self.storage, T, b => {
            let s = b.as_slice();
            Ok(offsets.into_iter().map(|o| s[o].to_f64()).collect())
        })
    }

    /// The contiguous elements of a contiguous tensor.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        if !self.is_contiguous() {
            return None;
        }
        let b = T::unwrap(&self.storage)?;
        if self.numel() == 0 {
            return Some(&[]);
        }
        Some(&b.as_slice()[self.layout.offset..self.layout.offset + self.numel()])
    }

    /// Summary statistics (norm, mean, min, max, fraction of exact zeros, count of NaN or
    /// Inf), for explain mode and graph drawings. Empty tensors give zeros.
    pub fn stats(&self) -> Stats {
        let mut st = Stats {
            norm: 0.0,
            mean: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zeros: 0.0,
            nonfinite: 0,
        };
        let n = self.numel();
        if n == 0 {
            return Stats {
                min: 0.0,
                max: 0.0,
                ..st
            };
        }
        let (mut sum, mut sq, mut zeros) = (0.0f64, 0.0f64, 0usize);
        each_storage!(&self.storage, T, b => {
            let s = b.as_slice();
            Layout::walk2(&self.layout, &self.layout, |o, _, len, stride, _| {
                for i in 0..len {
                    let x = s[(o as isize + i as isize * stride) as usize].to_f64();
                    if !x.is_finite() {
                        st.nonfinite += 1;
                    }
                    zeros += usize::from(x == 0.0);
                    sum += x;
                    sq += x * x;
                    st.min = st.min.min(x);
                    st.max = st.max.max(x);
                }
            });
        });
        st.norm = sq.sqrt();
        st.mean = sum / n as f64;
        st.zeros = zeros as f64 / n as f64;
        st
    }

    // ---- copies and casts ---------------------------------------------------------

    /// The one copy: a row-major tensor, or `self` if it already is one.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.copy()
    }

    /// A fresh row-major copy that owns its buffer.
    pub fn copy(&self) -> Result<Tensor> {
        each_storage!(&self.storage, T, _b => map::<T, T>(self, |x| x))
    }

    /// A copy in `dtype` with torch's casting rules (floats truncate into ints, ints wrap
    /// into smaller ints, nonzero is true), or `self` if it already has that dtype.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        fn into<S: Element>(t: &Tensor, dtype: DType) -> Result<Tensor> {
            match dtype {
                DType::Bool => map::<S, Bool8>(t, Bool8::cast),
                DType::I32 => map::<S, i32>(t, i32::cast),
                DType::I64 => map::<S, i64>(t, i64::cast),
                DType::F32 => map::<S, f32>(t, f32::cast),
                DType::F64 => map::<S, f64>(t, f64::cast),
            }
        }
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        each_storage!(&self.storage, T, _b => into::<T>(self, dtype))
    }

    /// `self += other` in place, broadcasting `other`. `self` must own a contiguous buffer.
    pub fn add_assign(&self, other: &Tensor) -> Result<()> {
        let mut other = other.to_dtype(self.dtype())?.broadcast_to(self.shape())?;
        if other.storage.ptr() == self.storage.ptr() {
            // Adding a tensor to itself: read a copy.
            other = other.copy()?;
        }
        each_storage!(&self.storage, T, dst => {
            let src = T::unwrap(&other.storage).expect("cast above");
            let s = src.as_slice();
            // SAFETY: `self` is a gradient or parameter buffer written only here and by
            // the user's numpy views, which do not run concurrently with this call.
            let d = unsafe { dst.as_mut_slice() };
            Layout::walk2(&self.layout, &other.layout, |oa, ob, n, sa, sb| {
                let (mut i, mut j) = (oa as isize, ob as isize);
                for _ in 0..n {
                    d[i as usize] = Num::add(d[i as usize], s[j as usize]);
                    i += sa;
                    j += sb;
                }
            });
            Ok(())
        })
    }

    /// Sets every element to `value`, in place.
    pub fn fill_(&self, value: f64) {
        each_storage!(&self.storage, T, dst => {
            // SAFETY: as in `add_assign`.
            let d = unsafe { dst.as_mut_slice() };
            Layout::walk2(&self.layout, &self.layout, |o, _, n, st, _| {
                for i in 0..n {
                    d[(o as isize + i as isize * st) as usize] = T::cast(value);
                }
            });
        })
    }

    // ---- views --------------------------------------------------------------------

    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        Ok(self.with_layout(self.layout.broadcast_to("expand", shape)?))
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        Ok(self.with_layout(self.layout.permute("permute", perm)?))
    }

    pub fn transpose(&self, a: usize, b: usize) -> Tensor {
        self.with_layout(self.layout.transpose(a, b))
    }

    /// A view when the strides allow it, else a copy, as `torch.reshape`.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let n = checked_numel("reshape", shape)?;
        if n != self.numel() {
            return Err(Error::shape(
                "reshape",
                format!(
                    "cannot reshape a tensor of shape {} ({} elements) into {}",
                    fmt_shape(self.shape()),
                    self.numel(),
                    fmt_shape(shape)
                ),
            ));
        }
        match self.layout.reshape_view(shape) {
            Some(l) => Ok(self.with_layout(l)),
            None => Ok(self.contiguous()?.with_layout(Layout {
                shape: shape.into(),
                strides: crate::layout::contiguous_strides(shape),
                offset: 0,
            })),
        }
    }

    /// `dim` narrowed to `start, start+step, ...` (`len` elements), as a view.
    pub fn slice(&self, dim: usize, start: usize, len: usize, step: isize) -> Tensor {
        self.with_layout(self.layout.slice(dim, start, len, step))
    }

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
        // A reduced block that is one contiguous run needs no offset table.
        let n_red = red.numel();
        let run = red.is_contiguous();
        let roffs = if run {
            (0..n_red.min(1)).collect()
        } else {
            red.offsets()?
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
                        Reduce::Sum => {
                            let acc: f64 = if run {
                                sum_f64(&s[base..base + n_red])
                            } else {
                                roffs.iter().map(|&r| s[base + r].to_f64()).sum()
                            };
                            T::from_f64(acc)
                        }
                        Reduce::Max if run => s[base..base + n_red].iter().fold(s[base], |m, &x| m.max_(x)),
                        Reduce::Min if run => s[base..base + n_red].iter().fold(s[base], |m, &x| m.min_(x)),
                        Reduce::Max => roffs.iter().fold(s[base + roffs[0]], |m, &r| m.max_(s[base + r])),
                        Reduce::Min => roffs.iter().fold(s[base + roffs[0]], |m, &r| m.min_(s[base + r])),
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
        let p = t.permute(&moved)?.contiguous()?.to_vec_f64()?;
        let len = t.shape()[d];
        let out: Vec<f64> = p
            .chunks(len)
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
            .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::elementwise::Binary;

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape).unwrap()
    }

    #[test]
    fn broadcast_add_over_strided_input() {
        let a = t(&[0., 1., 2., 3., 4., 5.], &[2, 3]).transpose(0, 1); // (3,2)
        let b = t(&[10., 20.], &[2]);
        let c = a.binary(&b, Binary::Add).unwrap();
        assert_eq!(c.shape(), &[3, 2]);
        assert_eq!(c.to_vec_f64().unwrap(), vec![10., 23., 11., 24., 12., 25.]);
    }

    #[test]
    fn mixed_dtypes_promote() {
        let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
        let b = t(&[0.5], &[]);
        let c = a.binary(&b, Binary::Mul).unwrap();
        assert_eq!(c.dtype(), DType::F32); // a 0-d operand does not promote (torch's rule)
        assert_eq!(c.to_vec_f64().unwrap(), vec![0.5, 1.0]);
        let d = a.binary(&t(&[0.5], &[1]), Binary::Mul).unwrap();
        assert_eq!(d.dtype(), DType::F64);
        let i = Tensor::from_vec(vec![7i64, -7], &[2]).unwrap();
        let q = i.binary(
            &Tensor::from_vec(vec![2i32], &[1]).unwrap(),
            Binary::FloorDiv,
        );
        assert_eq!(q.unwrap().to_vec_f64().unwrap(), vec![3., -4.]);
        let lt = i.binary(&b, Binary::Lt).unwrap();
        assert_eq!(lt.dtype(), DType::Bool);
    }

    #[test]
    fn reductions_over_any_axes() {
        let a = t(&(0..24).map(|x| x as f64).collect::<Vec<_>>(), &[2, 3, 4]);
        let s = a.reduce(Reduce::Sum, &[0, 2], false).unwrap();
        assert_eq!(s.shape(), &[3]);
        assert_eq!(s.to_vec_f64().unwrap(), vec![60., 92., 124.]);
        let m = a.reduce(Reduce::Max, &[1], true).unwrap();
        assert_eq!(m.shape(), &[2, 1, 4]);
        assert_eq!(
            m.to_vec_f64().unwrap(),
            vec![8., 9., 10., 11., 20., 21., 22., 23.]
        );
        assert!(t(&[], &[0]).reduce(Reduce::Max, &[0], false).is_err());
    }

    #[test]
    fn matmul_with_transposed_operand() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = t(&[1., 0., 0., 1., 1., 1.], &[2, 3]).transpose(0, 1); // (3,2)
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.to_vec_f64().unwrap(), vec![1., 6., 4., 15.]);
        let e = a.matmul(&a).unwrap_err();
        assert!(e.to_string().contains("(2, 3) @ (2, 3)"));
    }

    #[test]
    fn reshape_copies_only_when_needed() {
        let a = t(&[0., 1., 2., 3., 4., 5.], &[2, 3]);
        let v = a.reshape(&[3, 2]).unwrap();
        assert!(v.storage().same_buffer(a.storage()));
        let tr = a.transpose(0, 1).reshape(&[6]).unwrap();
        assert!(!tr.storage().same_buffer(a.storage()));
        assert_eq!(tr.to_vec_f64().unwrap(), vec![0., 3., 1., 4., 2., 5.]);
        assert!(a.reshape(&[4]).is_err());
    }

    #[test]
    fn huge_allocation_is_an_error() {
        assert!(matches!(
            Tensor::zeros(&[1 << 40], DType::F64),
            Err(Error::Alloc { .. })
        ));
    }
}
