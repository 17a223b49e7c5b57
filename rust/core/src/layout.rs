//! Shape, strides (in elements, possibly negative or zero) and a start offset.
//! Every view op (transpose, expand, slice, squeeze, ...) is a change of layout only.
use smallvec::SmallVec;

use crate::error::{fmt_shape, Error, Result};

/// Dims and strides live inline for up to 6 dims: no heap allocation per tensor handle.
pub type Dims = SmallVec<[usize; 6]>;
pub type Strides = SmallVec<[isize; 6]>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub shape: Dims,
    pub strides: Strides,
    pub offset: usize,
}

pub fn contiguous_strides(shape: &[usize]) -> Strides {
    let mut strides: Strides = smallvec::smallvec![0isize; shape.len()];
    let mut acc = 1isize;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc = acc.saturating_mul(shape[i].max(1) as isize);
    }
    strides
}

/// Number of elements, or an error if the product overflows.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize / 8)
        .ok_or(Error::Alloc {
            op,
            bytes: u128::MAX,
        })
}

/// numpy's broadcasting rule: align on the right, 1 stretches.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Dims> {
    let n = a.len().max(b.len());
    let mut out: Dims = smallvec::smallvec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(Error::shape(
                op,
                format!(
                    "shapes {} and {} cannot be broadcast together",
                    fmt_shape(a),
                    fmt_shape(b)
                ),
            ));
        };
    }
    Ok(out)
}

/// Wraps a possibly negative dim into `0..ndim`.
pub fn wrap_dim(op: &'static str, dim: isize, ndim: usize) -> Result<usize> {
    let n = ndim as isize;
    let d = if dim < 0 { dim + n } else { dim };
    if d < 0 || d >= n {
        return Err(Error::index(
            op,
            format!("dim {dim} is out of range for a tensor with {ndim} dims"),
        ));
    }
    Ok(d as usize)
}

/// Wraps and de-duplicates a list of dims; `None` means every dim.
/// `torch.permute`'s dims, each of which may count from the end.
pub fn resolve_perm(dims: &[isize], ndim: usize) -> Result<Vec<usize>> {
    dims.iter().map(|&d| wrap_dim("permute", d, ndim)).collect()
}

/// `torch.expand`'s sizes: -1 keeps the size of the dim it lands on; new dims go in front.
pub fn resolve_expand(sizes: &[isize], current: &[usize]) -> Result<Vec<usize>> {
    let lead = sizes.len() as isize - current.len() as isize;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let j = i as isize - lead;
            match d {
                -1 if j >= 0 => Ok(current[j as usize]),
                d if d < 0 => Err(Error::shape(
                    "expand",
                    format!(
                        "bad target size {d} in {sizes:?} for shape {}",
                        fmt_shape(current)
                    ),
                )),
                d => Ok(d as usize),
            }
        })
        .collect()
}

pub fn wrap_dims(op: &'static str, dims: Option<&[isize]>, ndim: usize) -> Result<Vec<usize>> {
    let Some(dims) = dims else {
        return Ok((0..ndim).collect());
    };
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let w = if ndim == 0 && (d == 0 || d == -1) {
            // numpy accepts axis 0 / -1 on a 0-d array for reductions.
            continue;
        } else {
            wrap_dim(op, d, ndim)?
        };
        if out.contains(&w) {
            return Err(Error::value(op, format!("dim {d} appears more than once")));
        }
        out.push(w);
    }
    out.sort_unstable();
    Ok(out)
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.into(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Row-major with no gaps, starting anywhere. Empty tensors count as contiguous.
    pub fn is_contiguous(&self) -> bool {
        if self.shape.contains(&0) {
            return true;
        }
        let mut acc = 1isize;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i] as isize;
        }
        true
    }

    pub fn broadcast_to(&self, op: &'static str, shape: &[usize]) -> Result<Layout> {
        let err = || {
            let msg = format!(
                "cannot broadcast {} to {}",
                fmt_shape(&self.shape),
                fmt_shape(shape)
            );
            Error::shape(op, msg)
        };
        let n = shape.len();
        if self.ndim() > n {
            return Err(err());
        }
        let lead = n - self.ndim();
        let mut strides: Strides = smallvec::smallvec![0isize; n];
        for i in lead..n {
            let d = self.shape[i - lead];
            if d == shape[i] {
                strides[i] = self.strides[i - lead];
            } else if d != 1 {
                return Err(err());
            }
        }
        Ok(Layout {
            shape: shape.into(),
            strides,
            offset: self.offset,
        })
    }

    pub fn permute(&self, op: &'static str, perm: &[usize]) -> Result<Layout> {
        let n = self.ndim();
        let mut seen = vec![false; n];
        if perm.len() != n
            || perm
                .iter()
                .any(|&p| p >= n || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::value(
                op,
                format!(
                    "{perm:?} is not a permutation of the dims of {}",
                    fmt_shape(&self.shape)
                ),
            ));
        }
        Ok(Layout {
            shape: perm.iter().map(|&p| self.shape[p]).collect(),
            strides: perm.iter().map(|&p| self.strides[p]).collect(),
            offset: self.offset,
        })
    }

    pub fn transpose(&self, a: usize, b: usize) -> Layout {
        let mut l = self.clone();
        l.shape.swap(a, b);
        l.strides.swap(a, b);
        l
    }

    /// Elements `start, start+step, ...` (`len` of them) along `dim`; `step` may be negative.
    pub fn slice(&self, dim: usize, start: usize, len: usize, step: isize) -> Layout {
        let mut l = self.clone();
        if len > 0 {
            l.offset = (self.offset as isize + start as isize * self.strides[dim]) as usize;
        }
        l.shape[dim] = len;
        l.strides[dim] = self.strides[dim] * step;
        l
    }

    pub fn select(&self, dim: usize, index: usize) -> Layout {
        let mut l = self.slice(dim, index, 1, 1);
        l.shape.remove(dim);
        l.strides.remove(dim);
        l
    }

    pub fn unsqueeze(&self, dim: usize) -> Layout {
        let mut l = self.clone();
        let stride = if dim < self.ndim() {
            self.strides[dim] * self.shape[dim] as isize
        } else {
            1
        };
        l.shape.insert(dim, 1);
        l.strides.insert(dim, stride);
        l
    }

    /// A view with the new shape, if the strides allow one (as `torch.view`).
    pub fn reshape_view(&self, shape: &[usize]) -> Option<Layout> {
        if self.is_contiguous() {
            return Some(Layout {
                shape: shape.into(),
                strides: contiguous_strides(shape),
                offset: self.offset,
            });
        }
        // Merge runs of old dims that are contiguous among themselves, then split them.
        let old: Vec<(usize, isize)> = self
            .shape
            .iter()
            .zip(&self.strides)
            .filter(|(&d, _)| d != 1)
            .map(|(&d, &s)| (d, s))
            .collect();
        let mut strides: Strides = smallvec::smallvec![0isize; shape.len()];
        let (mut oi, mut ni) = (0usize, 0usize);
        while ni < shape.len() || oi < old.len() {
            // Skip new size-1 dims.
            if ni < shape.len() && shape[ni] == 1 {
                strides[ni] = 1;
                ni += 1;
                continue;
            }
            if oi >= old.len() || ni >= shape.len() {
                return None;
            }
            // Take a chunk of old dims and new dims with equal products.
            let (mut op, mut np) = (old[oi].0, shape[ni]);
            let (o0, n0) = (oi, ni);
            while op != np {
                if op < np {
                    oi += 1;
                    if oi >= old.len() {
                        return None;
                    }
                    op *= old[oi].0;
                } else {
                    ni += 1;
                    if ni >= shape.len() {
                        return None;
                    }
                    np *= shape[ni];
                }
            }
            // The old chunk must be contiguous within itself.
            for k in o0..oi {
                if old[k].1 != old[k + 1].1 * old[k + 1].0 as isize {
                    return None;
                }
            }
            let mut stride = old[oi].1;
            for k in (n0..=ni).rev() {
                strides[k] = stride;
                stride *= shape[k] as isize;
            }
            oi += 1;
            ni += 1;
        }
        Some(Layout {
            shape: shape.into(),
            strides,
            offset: self.offset,
        })
    }

    /// Calls `f(offset_a, offset_b, inner_len, inner_stride_a, inner_stride_b)` once per
    /// innermost row of a joint walk over two layouts of the same shape.
    pub fn walk2(a: &Layout, b: &Layout, mut f: impl FnMut(usize, usize, usize, isize, isize)) {
        let (shape, sa, sb) = coalesce2(&a.shape, &a.strides, &b.strides);
        if shape.contains(&0) {
            return;
        }
        let n = shape.len();
        if n == 0 {
            f(a.offset, b.offset, 1, 0, 0);
            return;
        }
        let inner = shape[n - 1];
        let (ia, ib) = (sa[n - 1], sb[n - 1]);
        let mut idx = vec![0usize; n - 1];
        let (mut oa, mut ob) = (a.offset as isize, b.offset as isize);
        loop {
            f(oa as usize, ob as usize, inner, ia, ib);
            // Odometer increment over the outer dims.
            let mut d = n - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                oa += sa[d];
                ob += sb[d];
                if idx[d] < shape[d] {
                    break;
                }
                oa -= sa[d] * shape[d] as isize;
                ob -= sb[d] * shape[d] as isize;
                idx[d] = 0;
            }
        }
    }

    /// Every element's offset, in row-major order.
    pub fn offsets(&self) -> Result<Vec<usize>> {
        let n = checked_numel("offsets", &self.shape)?;
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| Error::Alloc {
            op: "offsets",
            bytes: n as u128 * 8,
        })?;
        Layout::walk2(self, self, |o, _, n, s, _| {
            for i in 0..n {
                out.push((o as isize + i as isize * s) as usize);
            }
        });
        Ok(out)
    }
}

/// Merges adjacent dims that are contiguous in both layouts, so inner loops run long.
fn coalesce2(shape: &[usize], sa: &[isize], sb: &[isize]) -> (Vec<usize>, Vec<isize>, Vec<isize>) {
    let mut s = Vec::with_capacity(shape.len());
    let mut a = Vec::with_capacity(shape.len());
    let mut b = Vec::with_capacity(shape.len());
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if let (Some(&la), Some(&lb)) = (a.last(), b.last()) {
            if la == sa[i] * shape[i] as isize && lb == sb[i] * shape[i] as isize {
                let k = s.len() - 1;
                s[k] *= shape[i];
                a[k] = sa[i];
                b[k] = sb[i];
                continue;
            }
        }
        s.push(shape[i]);
        a.push(sa[i]);
        b.push(sb[i]);
    }
    (s, a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(
            broadcast_shapes("add", &[2, 3, 4], &[4])
                .unwrap()
                .as_slice(),
            &[2, 3, 4]
        );
        assert_eq!(
            broadcast_shapes("add", &[3, 1], &[1, 5])
                .unwrap()
                .as_slice(),
            &[3, 5]
        );
        assert_eq!(broadcast_shapes("add", &[], &[2]).unwrap().as_slice(), &[2]);
        let e = broadcast_shapes("add", &[3], &[4]).unwrap_err();
        assert!(e.to_string().contains("add") && e.to_string().contains("(3,) and (4,)"));
    }

    #[test]
    fn transpose_and_expand_are_views() {
        let l = Layout::contiguous(&[2, 3]);
        let t = l.transpose(0, 1);
        assert_eq!(t.shape.as_slice(), &[3, 2]);
        assert_eq!(t.strides.as_slice(), &[1, 3]);
        assert!(!t.is_contiguous());
        let e = Layout::contiguous(&[3])
            .broadcast_to("expand", &[2, 3])
            .unwrap();
        assert_eq!(e.strides.as_slice(), &[0, 1]);
        assert_eq!(e.offsets().unwrap(), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn negative_step_slice() {
        let l = Layout::contiguous(&[5]).slice(0, 4, 3, -2);
        assert_eq!(l.offsets().unwrap(), vec![4, 2, 0]);
    }

    #[test]
    fn reshape_view_when_possible() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(l.reshape_view(&[6, 4]).unwrap().strides.as_slice(), &[4, 1]);
        let t = l.permute("permute", &[2, 0, 1]).unwrap(); // (4,2,3) strides (1,12,4)
        let v = t.reshape_view(&[4, 6]).unwrap();
        assert_eq!(v.strides.as_slice(), &[1, 4]);
        assert!(t.reshape_view(&[24]).is_none());
        assert_eq!(t.reshape_view(&[4, 6]).unwrap().offsets().unwrap(), {
            let mut o = t.offsets().unwrap();
            o.truncate(24);
            o
        });
    }

    #[test]
    fn dims_wrap_and_reject() {
        assert_eq!(wrap_dim("sum", -1, 3).unwrap(), 2);
        assert!(wrap_dim("sum", 3, 3).is_err());
        assert_eq!(wrap_dims("sum", Some(&[-1, 0]), 3).unwrap(), vec![0, 2]);
        assert!(wrap_dims("sum", Some(&[1, -2]), 3).is_err());
    }

    #[test]
    fn numel_overflow_is_an_error() {
        assert!(checked_numel("zeros", &[1 << 40, 1 << 40]).is_err());
    }
}
