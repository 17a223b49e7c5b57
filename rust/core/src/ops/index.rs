//! Indexing: basic (views), advanced (integer arrays and masks), gather.
use std::sync::Arc;

use crate::error::{fmt_shape, Error, Result};
use crate::layout::{broadcast_shapes, wrap_dim};
use crate::ops::shape::ViewStep;
use crate::tensor::Tensor;
use crate::var::{Ctx, Op, Var};

/// One item of a Python index, already decoded by the binding.
#[derive(Debug, Clone)]
pub enum Index {
    Int(i64),
    /// `start, start+step, ...`, `len` elements; computed with `slice.indices`.
    Slice {
        start: usize,
        len: usize,
        step: isize,
    },
    NewAxis,
    Ellipsis,
    /// Integer indices (possibly negative) with their shape.
    Array {
        idx: Vec<i64>,
        shape: Vec<usize>,
    },
    /// A boolean mask covering `shape.len()` dims.
    Mask {
        mask: Vec<bool>,
        shape: Vec<usize>,
    },
}

struct IndexSelect {
    dim: usize,
    idx: Arc<Vec<usize>>,
}

impl Op for IndexSelect {
    fn name(&self) -> &'static str {
        "index"
    }
    fn rule(&self) -> &'static str {
        "grad_x = zeros with g added at the selected indices (repeats add up)"
    }
    fn backward(&self, c: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.index_add(
            self.dim,
            &self.idx,
            &c.input(0).shape(),
        )?)])
    }
}

struct IndexAdd {
    dim: usize,
    idx: Arc<Vec<usize>>,
}

impl Op for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn rule(&self) -> &'static str {
        "grad_src = g at the indices"
    }
    fn backward(&self, _: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.index_select(self.dim, self.idx.clone())?)])
    }
}

struct Gather {
    dim: usize,
    index: Arc<Vec<usize>>,
}

impl Op for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn rule(&self) -> &'static str {
        "grad_x = zeros with g scattered (added) back at index"
    }
    fn backward(&self, c: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.scatter_add(
            self.dim,
            self.index.clone(),
            &c.input(0).shape(),
        )?)])
    }
}

struct ScatterAdd {
    dim: usize,
    index: Arc<Vec<usize>>,
}

impl Op for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn rule(&self) -> &'static str {
        "grad_src = g gathered at index"
    }
    fn backward(&self, c: &Ctx, g: &Var) -> Result<Vec<Option<Var>>> {
        Ok(vec![Some(g.gather_at(
            self.dim,
            self.index.clone(),
            &c.input(0).shape(),
        )?)])
    }
}

fn wrap_index(op: &'static str, i: i64, size: usize, dim: usize) -> Result<usize> {
    let w = if i < 0 { i + size as i64 } else { i };
    if w < 0 || w >= size as i64 {
        return Err(Error::index(
            op,
            format!("index {i} is out of bounds for dim {dim} with size {size}"),
        ));
    }
    Ok(w as usize)
}

impl Var {
    /// Slices `idx` (in range) along `dim`; repeated indices are allowed.
    pub fn index_select(&self, dim: usize, idx: Arc<Vec<usize>>) -> Result<Var> {
        let t = self.tensor().index_select(dim, &idx)?;
        Ok(Var::from_op(
            t,
            IndexSelect { dim, idx },
            vec![self.clone()],
        ))
    }

    fn index_add(&self, dim: usize, idx: &Arc<Vec<usize>>, shape: &[usize]) -> Result<Var> {
        let t = Tensor::index_add(shape, dim, idx, &self.tensor())?;
        Ok(Var::from_op(
            t,
            IndexAdd {
                dim,
                idx: idx.clone(),
            },
            vec![self.clone()],
        ))
    }

    /// `torch.gather`: `out[i][j] = self[i][index[i][j]]` for `dim = 1`.
    pub fn gather(&self, dim: isize, index: &[i64], index_shape: &[usize]) -> Result<Var> {
        let shape = self.shape();
        let d = wrap_dim("gather", dim, shape.len())?;
        let fits = index_shape.len() == shape.len()
            && (0..shape.len()).all(|i| i == d || index_shape[i] == shape[i]);
        if !fits {
            return Err(Error::shape(
                "gather",
                format!(
                    "index of shape {} does not fit input of shape {} outside dim {d}",
                    fmt_shape(index_shape),
                    fmt_shape(&shape)
                ),
            ));
        }
        let idx: Vec<usize> = index
            .iter()
            .map(|&i| wrap_index("gather", i, shape[d], d))
            .collect::<Result<_>>()?;
        self.gather_at(d, Arc::new(idx), index_shape)
    }

    fn gather_at(&self, dim: usize, index: Arc<Vec<usize>>, index_shape: &[usize]) -> Result<Var> {
        let t = self.tensor().gather(dim, &index, index_shape)?;
        Ok(Var::from_op(t, Gather { dim, index }, vec![self.clone()]))
    }

    fn scatter_add(&self, dim: usize, index: Arc<Vec<usize>>, shape: &[usize]) -> Result<Var> {
        let t = Tensor::scatter_add(shape, dim, &index, &self.tensor())?;
        Ok(Var::from_op(
            t,
            ScatterAdd { dim, index },
            vec![self.clone()],
        ))
    }

    /// numpy indexing: ints, slices, None, Ellipsis, integer arrays and boolean masks.
    pub fn index(&self, items: &[Index]) -> Result<Var> {
        let shape = self.shape();
        let has_array = items
            .iter()
            .any(|i| matches!(i, Index::Array { .. } | Index::Mask { .. }));
        // With arrays present, ints are advanced indices too (numpy's rule).
        let items: Vec<Index> = items
            .iter()
            .map(|i| match i {
                Index::Int(k) if has_array => Index::Array {
                    idx: vec![*k],
                    shape: vec![],
                },
                other => other.clone(),
            })
            .collect();
        let consumed: usize = items
            .iter()
            .map(|i| match i {
                Index::Int(_) | Index::Slice { .. } | Index::Array { .. } => 1,
                Index::Mask { shape, .. } => shape.len(),
                Index::NewAxis | Index::Ellipsis => 0,
            })
            .sum();
        if items
            .iter()
            .filter(|i| matches!(i, Index::Ellipsis))
            .count()
            > 1
        {
            return Err(Error::index(
                "index",
                "an index can only have a single ellipsis",
            ));
        }
        if consumed > shape.len() {
            return Err(Error::index(
                "index",
                format!(
                    "too many indices for a Value of shape {}: {consumed} were given",
                    fmt_shape(&shape)
                ),
            ));
        }
        // Basic pass: views; advanced dims are kept whole and remembered.
        let mut steps = Vec::new();
        let mut adv: Vec<(usize, Vec<i64>, Vec<usize>)> = Vec::new(); // (dim in view, idx, shape)
        let (mut src, mut out) = (0usize, 0usize); // dim in the input, dim in the view
        for item in &items {
            match item {
                Index::Int(k) => {
                    let i = wrap_index("index", *k, shape[src], src)?;
                    steps.push(ViewStep::Select { dim: out, index: i });
                    src += 1;
                }
                Index::Slice { start, len, step } => {
                    steps.push(ViewStep::Slice {
                        dim: out,
                        start: *start,
                        len: *len,
                        step: *step,
                    });
                    src += 1;
                    out += 1;
                }
                Index::NewAxis => {
                    steps.push(ViewStep::Unsqueeze { dim: out });
                    out += 1;
                }
                Index::Ellipsis => {
                    let skip = shape.len() - consumed;
                    src += skip;
                    out += skip;
                }
                Index::Array { idx, shape: ishape } => {
                    let i = idx
                        .iter()
                        .map(|&k| wrap_index("index", k, shape[src], src).map(|w| w as i64))
                        .collect::<Result<Vec<_>>>()?;
                    adv.push((out, i, ishape.clone()));
                    src += 1;
                    out += 1;
                }
                Index::Mask {
                    mask,
                    shape: mshape,
                } => {
                    if mshape.is_empty() {
                        // A scalar bool adds a dim of length 1 (True) or 0 (False).
                        steps.push(ViewStep::Unsqueeze { dim: out });
                        adv.push((
                            out,
                            if mask[0] { vec![0] } else { vec![] },
                            vec![usize::from(mask[0])],
                        ));
                        out += 1;
                        continue;
                    }
                    let covered = &shape[src..src + mshape.len()];
                    if covered != mshape.as_slice() {
                        return Err(Error::index(
                            "index",
                            format!(
                                "boolean mask of shape {} does not match the indexed dims {} of shape {}",
                                fmt_shape(mshape),
                                fmt_shape(covered),
                                fmt_shape(&shape)
                            ),
                        ));
                    }
                    // nonzero(): one integer array per masked dim.
                    let hits: Vec<usize> = (0..mask.len()).filter(|&k| mask[k]).collect();
                    let mut rem = vec![0i64; hits.len()];
                    let mut per_dim = vec![vec![0i64; hits.len()]; mshape.len()];
                    for (j, &h) in hits.iter().enumerate() {
                        rem[j] = h as i64;
                    }
                    for d in (0..mshape.len()).rev() {
                        for j in 0..hits.len() {
                            per_dim[d][j] = rem[j] % mshape[d] as i64;
                            rem[j] /= mshape[d] as i64;
                        }
                    }
                    for idx in per_dim {
                        adv.push((out, idx, vec![hits.len()]));
                        src += 1;
                        out += 1;
                    }
                }
            }
        }
        let viewed = if steps.is_empty() {
            self.clone()
        } else {
            self.view(&steps)?
        };
        if adv.is_empty() {
            return Ok(viewed);
        }
        self.advanced(viewed, adv)
    }

    fn advanced(&self, viewed: Var, adv: Vec<(usize, Vec<i64>, Vec<usize>)>) -> Result<Var> {
        let vshape = viewed.shape();
        let mut bshape = crate::layout::Dims::new();
        for (_, _, s) in &adv {
            bshape = broadcast_shapes("index", &bshape, s).map_err(|_| {
                Error::index(
                    "index",
                    "index arrays could not be broadcast together".to_string(),
                )
            })?;
        }
        let positions: Vec<usize> = adv.iter().map(|a| a.0).collect();
        let adjacent = positions.windows(2).all(|w| w[1] == w[0] + 1);
        let rest: Vec<usize> = (0..vshape.len())
            .filter(|d| !positions.contains(d))
            .collect();
        // Advanced dims first, merged into one, then one index_select on that dim.
        let perm: Vec<usize> = positions.iter().chain(&rest).copied().collect();
        let sizes: Vec<usize> = positions.iter().map(|&p| vshape[p]).collect();
        let merged: usize = sizes.iter().product();
        let mut mshape = vec![merged];
        mshape.extend(rest.iter().map(|&d| vshape[d]));
        let flat_src = viewed.permute(&perm)?.reshape(&mshape)?;
        let n: usize = bshape.iter().product();
        let mut flat = vec![0usize; n];
        for (k, (_, idx, s)) in adv.iter().enumerate() {
            let b = Tensor::from_vec(idx.iter().map(|&i| i as f64).collect(), s)?
                .broadcast_to(&bshape)?
                .to_vec_f64()?;
            let stride: usize = sizes[k + 1..].iter().product();
            for (f, &i) in flat.iter_mut().zip(&b) {
                *f += i as usize * stride;
            }
        }
        let picked = flat_src.index_select(0, Arc::new(flat))?;
        let mut oshape = bshape.clone();
        oshape.extend(rest.iter().map(|&d| vshape[d]));
        let out = picked.reshape(&oshape)?;
        if !adjacent || positions[0] == 0 {
            return Ok(out);
        }
        // Adjacent advanced dims stay where they were (numpy's rule).
        let nb = bshape.len();
        let before = positions[0];
        let order: Vec<usize> = (nb..nb + before)
            .chain(0..nb)
            .chain(nb + before..oshape.len())
            .collect();
        out.permute(&order)
    }
}
