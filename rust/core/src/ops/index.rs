//! Indexing: basic (views), advanced (integer arrays and masks), index_select, gather, and
//! their kernels (`impl Tensor` at the end). Index tensors go from their buffer straight
//! to a `Vec<usize>` of checked positions; no float round trip.
use std::sync::Arc;

use crate::dtype::{Bool8, DType, Num, Scalar};
use crate::error::{fmt_shape, Error, Result};
use crate::layout::{broadcast_shapes, checked_numel, wrap_dim, Dims, Layout};
use crate::node::{
    check_no_overlap, is_grad_enabled, Attr, Ctx, NoGradGuard, Node, Op, SavedTensor,
};
use crate::ops::shape::ViewStep;
use crate::storage::{each_storage, try_alloc, try_with_capacity, Storage};
use crate::tensor::Tensor;

/// One item of a Python index as the binding found it; `Node::index` resolves it.
#[derive(Debug, Clone)]
pub enum Index {
    Int(i64),
    /// `slice(start, stop, step)`, resolved against its dim as Python's `slice.indices`.
    Slice {
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    },
    NewAxis,
    Ellipsis,
    /// A bool tensor is a mask, an int32/int64 tensor an integer array (a 0-d one an int).
    Tensor(Tensor),
}

/// An index item whose kind is known, before it meets its dims.
enum Item {
    Int(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    NewAxis,
    Ellipsis,
    Array(Tensor),
    Mask(Tensor),
}

impl Item {
    /// How many of the input's dims this item uses up.
    fn consumes(&self) -> usize {
        match self {
            Item::Int(_) | Item::Slice(..) | Item::Array(_) => 1,
            Item::Mask(m) => m.ndim(),
            Item::NewAxis | Item::Ellipsis => 0,
        }
    }
}

/// An advanced index on dim `pos` of the view: checked positions and their shape.
struct Advanced {
    pos: usize,
    idx: Entries,
    shape: Vec<usize>,
}

/// An advanced index's entries: a checked int tensor, read in place (negatives wrap
/// against `size`), or positions a mask produced.
enum Entries {
    Ints { t: Tensor, size: usize },
    Positions(Vec<usize>),
}

fn classify(item: &Index) -> Result<Item> {
    Ok(match item {
        // An int (or a 0-d int tensor) selects first, even beside arrays: torch's rule, so
        // `x[1, :, idx]` keeps idx's dim in place (numpy would move it to the front).
        Index::Int(k) => Item::Int(*k),
        Index::Slice { start, stop, step } => Item::Slice(*start, *stop, *step),
        Index::NewAxis => Item::NewAxis,
        Index::Ellipsis => Item::Ellipsis,
        Index::Tensor(t) => match t.dtype() {
            DType::Bool => Item::Mask(t.contiguous()?),
            DType::I32 | DType::I64 if t.ndim() == 0 => Item::Int(scalar_i64(t)),
            DType::I32 | DType::I64 => Item::Array(t.clone()),
            d => {
                return Err(Error::index(
                    "index",
                    format!(
                        "tensors used as indices must hold integers or booleans \
                         (bool, int32 or int64), got {d}"
                    ),
                ))
            }
        },
    })
}

fn is_array(item: &Index) -> bool {
    matches!(item, Index::Tensor(t) if t.dtype() == DType::Bool || t.ndim() > 0)
}

fn scalar_i64(t: &Tensor) -> i64 {
    each_storage!(t.storage(), T, b => b.as_slice()[t.layout().offset].to_i64())
}

/// Python's `slice.indices(size)` as (start, length, step).
fn resolve_slice(
    start: Option<i64>,
    stop: Option<i64>,
    step: Option<i64>,
    size: usize,
) -> Result<(usize, usize, isize)> {
    // i64::MIN has no negation; no dim is long enough to tell it from -i64::MAX.
    let step = step.unwrap_or(1).max(-i64::MAX);
    if step == 0 {
        return Err(Error::value("index", "slice step cannot be zero"));
    }
    let n = size as i64;
    let (lo, hi) = if step < 0 { (-1, n - 1) } else { (0, n) };
    let clamp = |v: Option<i64>, default: i64| match v {
        None => default,
        Some(v) if v < 0 => v.saturating_add(n).max(lo),
        Some(v) => v.min(hi),
    };
    let (start, stop) = if step < 0 {
        (clamp(start, hi), clamp(stop, lo))
    } else {
        (clamp(start, lo), clamp(stop, hi))
    };
    let len = if step > 0 && stop > start {
        (stop - start - 1) / step + 1
    } else if step < 0 && start > stop {
        (start - stop - 1) / -step + 1
    } else {
        0
    };
    Ok((start.max(0) as usize, len as usize, step as isize))
}

/// An index entry read where it lies: an int32/int64 entry, already checked in range,
/// negatives counted from the end of a dim of `n`.
trait Pos: Copy + Send + Sync + Into<i64> {
    fn at(self, n: usize) -> usize;
}

impl Pos for i64 {
    fn at(self, n: usize) -> usize {
        (if self < 0 { self + n as i64 } else { self }) as usize
    }
}

impl Pos for i32 {
    fn at(self, n: usize) -> usize {
        i64::from(self).at(n)
    }
}

/// Runs `$body` with `$ix` the entries of a contiguous int32/int64 tensor, as `&[i32]` or
/// `&[i64]`; any other dtype is a TypeError naming `$op`.
macro_rules! with_index {
    ($op:expr, $t:expr, $ix:ident => $body:expr) => {
        match $t.storage() {
            Storage::I64(_) => {
                let $ix = $t.as_slice::<i64>().expect("contiguous");
                $body
            }
            Storage::I32(_) => {
                let $ix = $t.as_slice::<i32>().expect("contiguous");
                $body
            }
            s => Err(Error::type_(
                $op,
                format!(
                    "index must be an int32 or int64 tensor, got {} of shape {}",
                    s.dtype(),
                    fmt_shape($t.shape())
                ),
            )),
        }
    };
}

/// `t` as a contiguous int32/int64 tensor whose entries all fit a dim of `size` (negatives
/// from the end): kernels then read its buffer as it is, with no copy.
fn checked_index(op: &'static str, t: &Tensor, size: usize, dim: usize) -> Result<Tensor> {
    let t = t.contiguous()?;
    with_index!(op, t, ix => check_all(op, ix, size, dim))?;
    Ok(t)
}

/// The entries of an int32 or int64 tensor in row-major order as positions in `0..size`.
fn indices(op: &'static str, t: &Tensor, size: usize, dim: usize) -> Result<Vec<usize>> {
    let t = checked_index(op, t, size, dim)?;
    with_index!(op, t, ix => {
        let mut out = try_with_capacity(op, ix.len())?;
        out.extend(ix.iter().map(|&i| i.at(size)));
        Ok(out)
    })
}

fn check_all<I: Pos>(op: &'static str, s: &[I], size: usize, dim: usize) -> Result<()> {
    let bad = |i: I| (i.at(size) as u64) >= size as u64;
    // A branch-free pass; only the error path looks for the culprit.
    if !s.iter().fold(false, |any, &i| any | bad(i)) {
        return Ok(());
    }
    let culprit: i64 = s.iter().find(|&&i| bad(i)).map_or(0, |&i| i.into());
    Err(Error::index(
        op,
        format!("index {culprit} is out of bounds for dim {dim} with size {size}"),
    ))
}

/// The piece length that splits `n` elements of a memory-bound loop over the threads
/// `set_num_threads` allows, or None to stay on this thread (small inputs, one thread).
fn split_len(n: usize) -> Option<usize> {
    let threads = crate::thread_budget();
    (n >= 1 << 16 && threads > 1).then(|| n.div_ceil(threads))
}

struct IndexSelect {
    dim: usize,
    idx: Arc<Vec<usize>>,
    merged: Vec<usize>,
    /// The user's index tensor, when `idx` is one int array read as it is (for exporters,
    /// which turn it back into an input).
    source: Option<Tensor>,
}

impl Op for IndexSelect {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let idx = self.idx.iter().map(|&i| i as i64).collect();
        let mut out = vec![
            ("dim", Attr::Int(self.dim as i64)),
            ("merged", Attr::dims(&self.merged)),
        ];
        out.extend(
            Tensor::from_vec::<i64>(idx, &[self.idx.len()])
                .ok()
                .map(|t| ("index", Attr::Tensor(t))),
        );
        out.extend(self.source.clone().map(|t| ("source", Attr::Tensor(t))));
        out
    }
    fn name(&self) -> &'static str {
        "index"
    }
    fn rule(&self) -> &'static str {
        "grad_x = zeros with g added at the selected indices (repeats add up)"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let mut picked = self.merged.clone();
        picked[self.dim] = self.idx.len();
        let summed = g
            .reshape(&picked)?
            .index_add(self.dim, &self.idx, &self.merged)?;
        Ok(vec![Some(summed.reshape(&c.parent(0).shape())?)])
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
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.select_at(self.dim, self.idx.clone(), None)?)])
    }
}

/// `index` is a checked contiguous int tensor (the user's own buffer, no copy).
struct Gather {
    dim: usize,
    index: SavedTensor,
}

impl Op for Gather {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![
            ("dim", Attr::Int(self.dim as i64)),
            ("index", Attr::Tensor(self.index.peek().clone())),
        ]
    }
    fn name(&self) -> &'static str {
        "gather"
    }
    fn rule(&self) -> &'static str {
        "grad_x = zeros with g scattered (added) back at index"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.scatter_add(
            self.dim,
            self.index.get("gather", "index")?.clone(),
            &c.parent(0).shape(),
        )?)])
    }
}

struct ScatterAdd {
    dim: usize,
    index: SavedTensor,
}

impl Op for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn rule(&self) -> &'static str {
        "grad_src = g gathered at index"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let index = self.index.get("scatter_add", "index")?.clone();
        Ok(vec![Some(g.gather_at(self.dim, index)?)])
    }
}

/// `x[items] = value`; `items` as the binding gave them, with the versions of their index
/// tensors when recorded.
struct IndexPut {
    items: Vec<Index>,
    saved: Vec<SavedTensor>,
    value_shape: Vec<usize>,
}

impl IndexPut {
    fn new(items: &[Index], value: &Node) -> IndexPut {
        let saved = items
            .iter()
            .filter_map(|it| match it {
                Index::Tensor(t) => Some(SavedTensor::new(t.clone())),
                _ => None,
            })
            .collect();
        IndexPut {
            items: items.to_vec(),
            saved,
            value_shape: value.shape().to_vec(),
        }
    }
}

impl Op for IndexPut {
    fn name(&self) -> &'static str {
        "index_put"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g with the written positions zeroed; grad_value = g at those positions"
    }
    fn backward(&self, c: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        for s in &self.saved {
            s.get("index_put", "index")?;
        }
        let zero = Node::constant(0.0, g.dtype());
        Ok(vec![
            c.grad_for(0, || g.index_put(&self.items, &zero))?,
            c.grad_for(1, || {
                let gv = g.index(&self.items)?;
                // A value given with extra leading 1s ((1, 3) into a row) gets them back.
                let extra = self.value_shape.len().saturating_sub(gv.ndim());
                if extra == 0 {
                    return Ok(gv);
                }
                let mut shape = vec![1; extra];
                shape.extend(gv.shape().iter());
                gv.reshape(&shape)
            })?,
        ])
    }
}

/// Writes `value` into the elements of `t` that `items` select: through a view for basic
/// indexing, else at the storage offsets the same index picks from a tensor of offsets.
fn write_region(t: &Tensor, items: &[Index], value: &Tensor) -> Result<()> {
    let _guard = NoGradGuard::new();
    let fit = |value: &Tensor, region: &[usize]| -> Result<Tensor> {
        // torch drops a value's leading 1s (a (1, 3) row into a (3,) row).
        let mut shape = value.shape();
        while shape.len() > region.len() && shape[0] == 1 {
            shape = &shape[1..];
        }
        let v = value.reshape(shape)?;
        match broadcast_shapes("index_put", shape, region) {
            Ok(b) if b.as_slice() == region => v.broadcast_to(region),
            _ => Err(Error::shape(
                "index_put",
                format!(
                    "value of shape {} cannot be broadcast to the indexed part of shape {}",
                    fmt_shape(value.shape()),
                    fmt_shape(region)
                ),
            )),
        }
    };
    if !items.iter().any(is_array) {
        let region = Node::leaf(t.clone(), false).index(items)?.tensor();
        return region.assign(&fit(value, region.shape())?);
    }
    let offsets: Vec<i64> = t
        .layout()
        .offsets()?
        .into_iter()
        .map(|o| o as i64)
        .collect();
    let picked = Node::leaf(Tensor::from_vec(offsets, t.shape())?, false)
        .index(items)?
        .tensor()
        .contiguous()?;
    let positions: Vec<usize> = picked
        .as_slice::<i64>()
        .expect("contiguous int64")
        .iter()
        .map(|&o| o as usize)
        .collect();
    t.assign_at(&positions, &fit(value, picked.shape())?)
}

impl Node {
    /// `x[items] = value` as a new Value (x is copied), recorded as `index_put`.
    pub fn index_put(&self, items: &[Index], value: &Node) -> Result<Node> {
        let t = self.tensor().copy()?;
        write_region(&t, items, &value.tensor())?;
        let op = IndexPut::new(items, value);
        Ok(Node::from_op(t, op, vec![self.clone(), value.clone()]))
    }

    /// `x[items] = value` in place (`Value.__setitem__`); returns the node to rebind the
    /// Value to, as `Node::inplace`. Only the written part is touched.
    pub fn index_put_(&self, items: &[Index], value: &Node) -> Result<Node> {
        let recording = is_grad_enabled() && (self.requires_grad() || value.requires_grad());
        if recording {
            self.check_inplace("index_put_")?;
        }
        let t = self.tensor();
        check_no_overlap("index_put_", &t)?;
        write_region(&t, items, &value.tensor())?;
        self.note_write(&t);
        if !recording || !t.dtype().is_float() {
            return Ok(self.clone());
        }
        let op = IndexPut::new(items, value);
        let r = Node::from_op(t, op, vec![self.clone(), value.clone()]);
        // Views taken of self before, and the Values self views, miss this write until it
        // is handed back to them (`Value.__setitem__` does, for views made by indexing).
        self.mark_stale(r.seq());
        Ok(r)
    }

    /// `torch.index_select`: the slices at `index` (a 0-d or 1-D int32/int64 tensor,
    /// negatives from the end, repeats allowed) along `dim`.
    pub fn index_select(&self, dim: isize, index: &Tensor) -> Result<Node> {
        let shape = self.shape();
        if index.ndim() > 1 {
            return Err(Error::index(
                "index_select",
                format!(
                    "index must be 0-d or 1-D, got shape {}",
                    fmt_shape(index.shape())
                ),
            ));
        }
        if shape.is_empty() {
            // A 0-d input acts as one of length 1, as torch.
            let out = self.reshape(&[1])?.index_select(dim, index)?;
            return out.reshape(index.shape());
        }
        let d = wrap_dim("index_select", dim, shape.len())?;
        let idx = indices("index_select", index, shape[d], d)?;
        let source = (index.ndim() == 1).then(|| index.clone());
        self.select_at(d, Arc::new(idx), source)
    }

    /// Slices `idx` (in range) along `dim`; repeated indices are allowed. `source` is the
    /// user's index tensor they came from, if any (for exporters).
    fn select_at(&self, dim: usize, idx: Arc<Vec<usize>>, source: Option<Tensor>) -> Result<Node> {
        let shape = self.shape().to_vec();
        let mut out = shape.clone();
        out[dim] = idx.len();
        self.select_merged(&shape, dim, idx, &out, source)
    }

    /// `select_at` on the input reshaped to `merged`, the result reshaped to `out`.
    fn select_merged(
        &self,
        merged: &[usize],
        dim: usize,
        idx: Arc<Vec<usize>>,
        out: &[usize],
        source: Option<Tensor>,
    ) -> Result<Node> {
        let t = self
            .tensor()
            .reshape(merged)?
            .index_select(dim, &idx)?
            .reshape(out)?;
        let op = IndexSelect {
            dim,
            idx,
            merged: merged.to_vec(),
            source,
        };
        Ok(Node::from_op(t, op, vec![self.clone()]))
    }

    fn index_add(&self, dim: usize, idx: &Arc<Vec<usize>>, shape: &[usize]) -> Result<Node> {
        let t = Tensor::index_add(shape, dim, idx, &self.tensor())?;
        Ok(Node::from_op(
            t,
            IndexAdd {
                dim,
                idx: idx.clone(),
            },
            vec![self.clone()],
        ))
    }

    /// `torch.gather`: `out[i][j] = self[i][index[i][j]]` for `dim = 1`; `index` is an
    /// int32/int64 tensor with the input's number of dims and no larger outside `dim`.
    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Node> {
        let shape = self.shape();
        let d = wrap_dim("gather", dim, shape.len())?;
        let index_shape = index.shape();
        let fits = index_shape.len() == shape.len()
            && (0..shape.len()).all(|i| i == d || index_shape[i] <= shape[i]);
        if !fits {
            return Err(Error::shape(
                "gather",
                format!(
                    "index of shape {} does not fit input of shape {} outside dim {d} (it must \
                     have as many dims and be no larger)",
                    fmt_shape(index_shape),
                    fmt_shape(&shape)
                ),
            ));
        }
        let index = checked_index("gather", index, shape[d], d)?;
        // A smaller index reads only the leading part of the other dims, as torch.
        let steps: Vec<ViewStep> = (0..shape.len())
            .filter(|&i| i != d && index_shape[i] < shape[i])
            .map(|i| ViewStep::Slice {
                dim: i,
                start: 0,
                len: index_shape[i],
                step: 1,
            })
            .collect();
        if steps.is_empty() {
            self.gather_at(d, index)
        } else {
            self.view(&steps)?.gather_at(d, index)
        }
    }

    fn gather_at(&self, dim: usize, index: Tensor) -> Result<Node> {
        let t = self.tensor().gather(dim, &index)?;
        let index = SavedTensor::new(index);
        Ok(Node::from_op(t, Gather { dim, index }, vec![self.clone()]))
    }

    pub(crate) fn scatter_add(&self, dim: usize, index: Tensor, shape: &[usize]) -> Result<Node> {
        let t = Tensor::scatter_add(shape, dim, &index, &self.tensor())?;
        Ok(Node::from_op(
            t,
            ScatterAdd {
                dim,
                index: SavedTensor::new(index),
            },
            vec![self.clone()],
        ))
    }

    /// numpy indexing: ints, slices, None, Ellipsis, integer arrays and boolean masks.
    pub fn index(&self, items: &[Index]) -> Result<Node> {
        let shape = self.shape();
        let has_array = items.iter().any(is_array);
        let items: Vec<Item> = items.iter().map(classify).collect::<Result<_>>()?;
        let consumed: usize = items.iter().map(Item::consumes).sum();
        if items.iter().filter(|i| matches!(i, Item::Ellipsis)).count() > 1 {
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
        let mut adv: Vec<Advanced> = Vec::new();
        let (mut src, mut out) = (0usize, 0usize); // dim in the input, dim in the view
        for item in &items {
            match item {
                Item::Int(k) => {
                    check_all("index", &[*k], shape[src], src)?;
                    let i = k.at(shape[src]);
                    steps.push(ViewStep::Select { dim: out, index: i });
                    src += 1;
                }
                Item::Slice(start, stop, step) => {
                    let (start, len, step) = resolve_slice(*start, *stop, *step, shape[src])?;
                    // Beside arrays, a whole dim needs no view node (whose kept gradient
                    // would cost a copy); alone, `x[:]` is still a new view as in torch.
                    if !(has_array && (start, len, step) == (0, shape[src], 1)) {
                        steps.push(ViewStep::Slice {
                            dim: out,
                            start,
                            len,
                            step,
                        });
                    }
                    src += 1;
                    out += 1;
                }
                Item::NewAxis => {
                    steps.push(ViewStep::Unsqueeze { dim: out });
                    out += 1;
                }
                Item::Ellipsis => {
                    let skip = shape.len() - consumed;
                    src += skip;
                    out += skip;
                }
                Item::Array(t) => {
                    adv.push(Advanced {
                        pos: out,
                        idx: Entries::Ints {
                            t: checked_index("index", t, shape[src], src)?,
                            size: shape[src],
                        },
                        shape: t.shape().to_vec(),
                    });
                    src += 1;
                    out += 1;
                }
                Item::Mask(m) => {
                    let mask = m.as_slice::<Bool8>().expect("contiguous");
                    if m.ndim() == 0 {
                        // A scalar bool adds a dim of length 1 (True) or 0 (False).
                        let hit = mask[0].is_true();
                        steps.push(ViewStep::Unsqueeze { dim: out });
                        adv.push(Advanced {
                            pos: out,
                            idx: Entries::Positions(if hit { vec![0] } else { vec![] }),
                            shape: vec![usize::from(hit)],
                        });
                        out += 1;
                        continue;
                    }
                    let mshape = m.shape();
                    let covered = &shape[src..src + mshape.len()];
                    if covered != mshape {
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
                    let hits: Vec<usize> = (0..mask.len()).filter(|&k| mask[k].is_true()).collect();
                    let mut rem = hits.clone();
                    let mut per_dim = vec![Vec::new(); mshape.len()];
                    for d in (0..mshape.len()).rev() {
                        per_dim[d] = rem.iter().map(|&r| r % mshape[d]).collect();
                        rem.iter_mut().for_each(|r| *r /= mshape[d]);
                    }
                    for idx in per_dim {
                        adv.push(Advanced {
                            pos: out,
                            idx: Entries::Positions(idx),
                            shape: vec![hits.len()],
                        });
                        src += 1;
                        out += 1;
                    }
                }
            }
        }
        // `x[...]` and `x[()]` still make a view with its own node, as torch.
        let viewed = if steps.is_empty() && !adv.is_empty() {
            self.clone()
        } else {
            self.view(&steps)?
        };
        if adv.is_empty() {
            return Ok(viewed);
        }
        advanced(viewed, adv)
    }
}

/// The advanced part of an index: the arrays broadcast together, their dims merged into
/// one, and one `index_select` on it.
fn advanced(viewed: Node, adv: Vec<Advanced>) -> Result<Node> {
    let mut bshape = Dims::new();
    for a in &adv {
        bshape = broadcast_shapes("index", &bshape, &a.shape).map_err(|_| {
            let shapes: Vec<String> = adv.iter().map(|a| fmt_shape(&a.shape)).collect();
            Error::index(
                "index",
                format!(
                    "index arrays could not be broadcast together with shapes {}",
                    shapes.join(", ")
                ),
            )
        })?;
    }
    let positions: Vec<usize> = adv.iter().map(|a| a.pos).collect();
    let adjacent = positions.windows(2).all(|w| w[1] == w[0] + 1);
    // Adjacent advanced dims stay where they are; separated ones go first (numpy's and
    // torch's rule; ints were applied as selects before, so they separate nothing).
    let (src, first) = if adjacent {
        (viewed, positions[0])
    } else {
        let rest = (0..viewed.ndim()).filter(|d| !positions.contains(d));
        let perm: Vec<usize> = positions.iter().copied().chain(rest).collect();
        (viewed.permute(&perm)?, 0)
    };
    let sshape = src.shape();
    let k = adv.len();
    let sizes = &sshape[first..first + k];
    let n = checked_numel("index", &bshape)?;
    // Row-major position in the merged dim: sum of index * stride over the arrays, read
    // from each array's buffer in one pass (one allocation: the positions kept for backward).
    let mut flat: Vec<usize> = try_with_capacity("index", n)?;
    for (j, a) in adv.iter().enumerate() {
        let stride: usize = sizes[j + 1..].iter().product();
        let offs = if a.shape.as_slice() == bshape.as_slice() {
            None
        } else {
            let l = Layout::contiguous(&a.shape).broadcast_to("index", &bshape)?;
            Some(l.offsets()?)
        };
        let offs = offs.as_deref();
        match &a.idx {
            Entries::Ints { t, size } => with_index!("index", t, ix => {
                accumulate(&mut flat, ix, offs, |i| i.at(*size) * stride);
                Ok(())
            })?,
            Entries::Positions(p) => accumulate(&mut flat, p, offs, |i| i * stride),
        }
    }
    debug_assert_eq!(flat.len(), n);
    let merged: usize = sizes.iter().product();
    let outer = &sshape[..first];
    let inner = &sshape[first + k..];
    let mshape: Vec<usize> = outer
        .iter()
        .chain([&merged])
        .chain(inner)
        .copied()
        .collect();
    let oshape: Vec<usize> = outer.iter().chain(&bshape).chain(inner).copied().collect();
    let source = match adv.as_slice() {
        [Advanced {
            idx: Entries::Ints { t, .. },
            ..
        }] => Some(t.clone()),
        _ => None,
    };
    src.select_merged(&mshape, first, Arc::new(flat), &oshape, source)
}

/// Adds `term` of each entry of `src` (through the broadcast offsets `offs`, if any) into
/// `flat`; the first array fills it.
fn accumulate<E: Copy>(
    flat: &mut Vec<usize>,
    src: &[E],
    offs: Option<&[usize]>,
    term: impl Fn(E) -> usize,
) {
    match (flat.is_empty(), offs) {
        (true, None) => flat.extend(src.iter().map(|&e| term(e))),
        (true, Some(o)) => flat.extend(o.iter().map(|&k| term(src[k]))),
        (false, None) => flat.iter_mut().zip(src).for_each(|(f, &e)| *f += term(e)),
        (false, Some(o)) => flat
            .iter_mut()
            .zip(o)
            .for_each(|(f, &k)| *f += term(src[k])),
    }
}

/// Sizes before `dim` and after it, for kernels over contiguous data.
fn geometry(shape: &[usize], dim: usize) -> (usize, usize) {
    (
        shape[..dim].iter().product(),
        shape[dim + 1..].iter().product(),
    )
}

/// The start, in the other tensor, of the block each element of a gather/scatter index
/// falls in: it moves by `stride` every `len` elements.
struct RowStarts {
    len: usize,
    stride: usize,
    left: usize,
    start: usize,
}

impl RowStarts {
    fn new(len: usize, stride: usize) -> Self {
        RowStarts {
            len,
            stride,
            left: len,
            start: 0,
        }
    }

    fn next(&mut self) -> usize {
        let start = self.start;
        self.left -= 1;
        if self.left == 0 {
            self.left = self.len;
            self.start += self.stride;
        }
        start
    }
}

/// Gather along the last dim of contiguous data: block `b` of `index` (`w_idx` long) picks
/// from block `b` of `s` (`w_src` long). Memory-bound on large inputs (each pick touches a
/// new cache line), so those are split over the threads `set_num_threads` allows.
fn gather_rows<T: Scalar, I: Pos>(
    s: &[T],
    index: &[I],
    w_src: usize,
    w_idx: usize,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    let mut out = try_alloc("gather", index.len(), T::ZERO)?;
    let fill = |out: &mut [T], index: &[I], s: &[T]| {
        // One flat pass, no per-block setup: blocks are often one index long. (With one
        // element per row, `w_src` is also the length of the gathered dim.)
        let mut rows = RowStarts::new(w_idx, w_src);
        for (o, &i) in out.iter_mut().zip(index) {
            *o = s[rows.next() + i.at(w_src)];
        }
    };
    let Some(piece) = split_len(index.len()) else {
        fill(&mut out, index, s);
        return Ok(out);
    };
    let blocks = piece.div_ceil(w_idx);
    out.par_chunks_mut(blocks * w_idx)
        .zip(index.par_chunks(blocks * w_idx))
        .zip(s.par_chunks(blocks * w_src))
        .for_each(|((out, index), s)| fill(out, index, s));
    Ok(out)
}

impl Tensor {
    /// Picks the slices `idx` along `dim` (indices already in range): whole rows copied.
    pub fn index_select(&self, dim: usize, idx: &[usize]) -> Result<Tensor> {
        let mut shape = self.shape().to_vec();
        let inner = geometry(&shape, dim).1;
        let n_src = shape[dim];
        shape[dim] = idx.len();
        let n = checked_numel("index", &shape)?;
        if n == 0 {
            return Tensor::zeros(&shape, self.dtype());
        }
        let src = self.contiguous()?;
        each_storage!(src.storage(), T, _b => {
            let s = src.as_slice::<T>().expect("contiguous");
            // One element per index from one block (advanced indexing's merged positions):
            // memory-bound, so large ones are split over the threads.
            if inner == 1 && s.len() == n_src {
                if let Some(len) = split_len(n) {
                    use rayon::prelude::*;
                    let mut out = try_alloc::<T>("index", n, T::ZERO)?;
                    out.par_chunks_mut(len).zip(idx.par_chunks(len)).for_each(|(o, ix)| {
                        for (d, &i) in o.iter_mut().zip(ix) {
                            *d = s[i];
                        }
                    });
                    return Tensor::from_vec(out, &shape);
                }
            }
            let mut out = try_with_capacity::<T>("index", n)?;
            for block in s.chunks_exact(n_src * inner) {
                if inner == 1 {
                    out.extend(idx.iter().map(|&i| block[i]));
                } else {
                    for &i in idx {
                        out.extend_from_slice(&block[i * inner..(i + 1) * inner]);
                    }
                }
            }
            Tensor::from_vec(out, &shape)
        })
    }

    /// Zeros of `shape`, with `src`'s slices added at `idx` along `dim`; repeats add up.
    pub fn index_add(shape: &[usize], dim: usize, idx: &[usize], src: &Tensor) -> Result<Tensor> {
        let inner = geometry(shape, dim).1;
        let (w_src, w_dst) = (idx.len() * inner, shape[dim] * inner);
        let src = src.contiguous()?;
        each_storage!(src.storage(), T, _b => {
            let s = src.as_slice::<T>().expect("contiguous");
            let n = checked_numel("index_add", shape)?;
            let mut out = try_alloc::<T>("index_add", n, T::ZERO)?;
            if w_src > 0 && w_dst > 0 {
                for (block, dst) in s.chunks_exact(w_src).zip(out.chunks_exact_mut(w_dst)) {
                    for (row, &i) in block.chunks_exact(inner).zip(idx) {
                        let to = &mut dst[i * inner..(i + 1) * inner];
                        for (d, &x) in to.iter_mut().zip(row) {
                            *d = Num::add(*d, x);
                        }
                    }
                }
            }
            Tensor::from_vec(out, shape)
        })
    }

    /// `out[i][j] = self[i][index[i][j]]` along `dim`, as `torch.gather`. `index` is a
    /// contiguous int32/int64 tensor, in range, of the input's shape outside `dim`.
    pub fn gather(&self, dim: usize, index: &Tensor) -> Result<Tensor> {
        let shape = index.shape();
        if index.numel() == 0 {
            return Tensor::zeros(shape, self.dtype());
        }
        let n = self.shape()[dim];
        let inner = geometry(shape, dim).1;
        let (w_src, w_idx) = (n * inner, shape[dim] * inner);
        let src = self.contiguous()?;
        each_storage!(src.storage(), T, _b => {
            let s = src.as_slice::<T>().expect("contiguous");
            with_index!("gather", index, ix => {
                if inner == 1 {
                    return Tensor::from_vec(gather_rows(s, ix, w_src, w_idx)?, shape);
                }
                let mut out = try_with_capacity::<T>("gather", ix.len())?;
                for (block, rows) in s.chunks_exact(w_src).zip(ix.chunks_exact(w_idx)) {
                    for row in rows.chunks_exact(inner) {
                        out.extend(row.iter().enumerate().map(|(k, &i)| block[i.at(n) * inner + k]));
                    }
                }
                Tensor::from_vec(out, shape)
            })
        })
    }

    /// Zeros of `shape` with `src` added at `index` (as in `gather`) along `dim`; the
    /// inverse of gather.
    pub fn scatter_add(
        shape: &[usize],
        dim: usize,
        index: &Tensor,
        src: &Tensor,
    ) -> Result<Tensor> {
        let n = shape[dim];
        let inner = geometry(shape, dim).1;
        let (w_idx, w_dst) = (src.shape()[dim] * inner, n * inner);
        let src = src.contiguous()?;
        each_storage!(src.storage(), T, _b => {
            let s = src.as_slice::<T>().expect("contiguous");
            let mut out = try_alloc::<T>("scatter_add", checked_numel("scatter_add", shape)?, T::ZERO)?;
            with_index!("scatter_add", index, ix => {
                if inner == 1 && w_idx > 0 {
                    let mut rows = RowStarts::new(w_idx, w_dst);
                    for (&x, &i) in s.iter().zip(ix) {
                        let at = rows.next() + i.at(n);
                        out[at] = Num::add(out[at], x);
                    }
                } else if w_idx > 0 && w_dst > 0 {
                    let blocks = s.chunks_exact(w_idx).zip(ix.chunks_exact(w_idx));
                    for ((block, rows), dst) in blocks.zip(out.chunks_exact_mut(w_dst)) {
                        for (xs, row) in block.chunks_exact(inner).zip(rows.chunks_exact(inner)) {
                            for (k, (&x, &i)) in xs.iter().zip(row).enumerate() {
                                let at = i.at(n) * inner + k;
                                dst[at] = Num::add(dst[at], x);
                            }
                        }
                    }
                }
                Ok(())
            })?;
            Tensor::from_vec(out, shape)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape).unwrap()
    }

    #[test]
    fn gather_and_scatter_are_inverse() {
        let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let idx = Tensor::from_vec(vec![2i64, -3], &[2, 1]).unwrap();
        let g = a.gather(1, &idx).unwrap();
        assert_eq!(g.to_vec_f64().unwrap(), vec![3., 4.]);
        let s = Tensor::scatter_add(&[2, 3], 1, &idx, &g).unwrap();
        assert_eq!(s.to_vec_f64().unwrap(), vec![0., 0., 3., 4., 0., 0.]);
        let rows = Tensor::from_vec(vec![1i32, 0, 1], &[1, 3]).unwrap();
        let g0 = a.gather(0, &rows).unwrap();
        assert_eq!(g0.to_vec_f64().unwrap(), vec![4., 2., 6.]);
    }

    #[test]
    fn index_select_copies_rows_of_any_dtype() {
        let a = Tensor::from_vec(vec![1i32, 2, 3, 4, 5, 6], &[3, 2]).unwrap();
        let r = a.index_select(0, &[2, 2, 0]).unwrap();
        assert_eq!(r.as_slice::<i32>().unwrap(), &[5, 6, 5, 6, 1, 2]);
        let c = a.transpose(0, 1).index_select(1, &[1]).unwrap();
        assert_eq!(c.shape(), &[2, 1]);
        assert_eq!(c.as_slice::<i32>().unwrap(), &[3, 4]);
    }

    #[test]
    fn index_add_accumulates_repeats() {
        let src = t(&[1., 2., 3.], &[3]);
        let out = Tensor::index_add(&[2], 0, &[1, 1, 0], &src).unwrap();
        assert_eq!(out.to_vec_f64().unwrap(), vec![3., 3.]);
        let rows = t(&[1., 2., 3., 4.], &[2, 2]);
        let out = Tensor::index_add(&[2, 3], 1, &[2, 2], &rows).unwrap();
        assert_eq!(out.to_vec_f64().unwrap(), vec![0., 0., 3., 0., 0., 7.]);
    }

    #[test]
    fn slices_resolve_as_python() {
        // slice(start, stop, step) over `size`: (start, length, step), as slice.indices.
        type Case = (
            Option<i64>,
            Option<i64>,
            Option<i64>,
            usize,
            (usize, usize, isize),
        );
        let big = (Some(i64::MIN), Some(i64::MAX), Some(i64::MIN));
        let cases: &[Case] = &[
            (None, None, None, 5, (0, 5, 1)),
            (None, None, Some(-1), 5, (4, 5, -1)),
            (Some(-2), None, None, 5, (3, 2, 1)),
            (Some(10), Some(-10), Some(-2), 5, (4, 3, -2)),
            (Some(1), Some(1), None, 5, (1, 0, 1)),
            (None, None, Some(-1), 0, (0, 0, -1)),
            (big.0, big.1, big.2, 3, (0, 0, -i64::MAX as isize)),
        ];
        for &(a, b, c, n, want) in cases {
            assert_eq!(
                resolve_slice(a, b, c, n).unwrap(),
                want,
                "{a:?}:{b:?}:{c:?} of {n}"
            );
        }
        assert!(resolve_slice(None, None, Some(0), 3).is_err());
    }

    #[test]
    fn out_of_range_names_the_index() {
        let e = check_all("gather", &[0i32, 5, 1], 3, 1).unwrap_err();
        assert!(e
            .to_string()
            .contains("index 5 is out of bounds for dim 1 with size 3"));
        assert!(check_all("gather", &[-4i64], 3, 0).is_err());
        let t = Tensor::from_vec(vec![-1i64, -3], &[2]).unwrap();
        assert_eq!(indices("index", &t, 3, 0).unwrap(), vec![2, 0]);
    }
}
