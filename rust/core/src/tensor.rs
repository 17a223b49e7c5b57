//! `Tensor`: a storage plus a layout; construction, casts, views and (for now) the reduction
//! and matmul kernels. Indexing kernels live in `ops/index.rs`. No autograd here (`var.rs`).
use std::sync::Arc;

use crate::dtype::{Bool8, DType, Num, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::layout::{checked_numel, Layout};
use crate::ops::elementwise::map;
use crate::storage::{each_storage, try_alloc, Buffer, Element, Storage};

#[derive(Clone)]
pub struct Tensor {
    // Crate-visible so that each op family's kernels (ops/*.rs) read them directly.
    pub(crate) storage: Storage,
    pub(crate) layout: Layout,
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
pub(crate) use with_dtype;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub norm: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub zeros: f64,
    pub nonfinite: usize,
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
        self.write_from(other, true)
    }

    /// `self[...] = other` in place: `other` cast to self's dtype and broadcast to its
    /// shape. `self` may be any view that does not overlap itself.
    pub fn assign(&self, other: &Tensor) -> Result<()> {
        self.write_from(other, false)
    }

    fn write_from(&self, other: &Tensor, add: bool) -> Result<()> {
        let mut other = other.to_dtype(self.dtype())?.broadcast_to(self.shape())?;
        if other.storage.same_buffer(&self.storage) {
            // Reading the buffer being written: read a copy.
            other = other.copy()?;
        }
        each_storage!(&self.storage, T, dst => {
            let src = T::unwrap(&other.storage).expect("cast above");
            let s = src.as_slice();
            // SAFETY: `self` is a gradient, parameter or in-place target written only here
            // and by the user's numpy views, which do not run concurrently with this call.
            let d = unsafe { dst.as_mut_slice() };
            Layout::walk2(&self.layout, &other.layout, |oa, ob, n, sa, sb| {
                let (mut i, mut j) = (oa as isize, ob as isize);
                for _ in 0..n {
                    let v = s[j as usize];
                    d[i as usize] = if add { Num::add(d[i as usize], v) } else { v };
                    i += sa;
                    j += sb;
                }
            });
            Ok(())
        })
    }

    /// Writes `other`'s elements, in row-major order, at the storage offsets `positions`
    /// (one per element): a later repeat wins, as numpy's and torch's `x[idx] = v`.
    pub fn assign_at(&self, positions: &[usize], other: &Tensor) -> Result<()> {
        debug_assert_eq!(positions.len(), other.numel());
        let other = other.to_dtype(self.dtype())?;
        // Read a copy of the buffer being written; else any contiguous form will do.
        let other = if other.storage.same_buffer(&self.storage) {
            other.copy()?
        } else {
            other.contiguous()?
        };
        each_storage!(&self.storage, T, dst => {
            let s = other.as_slice::<T>().expect("contiguous, cast above");
            // SAFETY: as in `write_from`; `other` is contiguous and not self's buffer.
            let d = unsafe { dst.as_mut_slice() };
            for (&p, &v) in positions.iter().zip(s) {
                d[p] = v;
            }
            Ok(())
        })
    }

    pub fn version(&self) -> u64 {
        self.storage.version()
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::elementwise::Binary;
    use crate::ops::reduce::Reduce;

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
