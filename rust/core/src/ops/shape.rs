//! Shape ops. Most are views (no copy); their backward undoes the view.
use crate::dtype::DType;
use crate::error::{fmt_shape, Error, Result};
use crate::layout::{wrap_dim, Dims, Layout};
use crate::node::{Attr, Ctx, Node, Op};
use crate::tensor::Tensor;

struct Reshape {
    from: Dims,
}

impl Op for Reshape {
    fn is_view(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g reshaped back to x's shape"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.reshape(&self.from)?)])
    }
}

struct Permute {
    perm: Vec<usize>,
}

impl Op for Permute {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("perm", Attr::dims(&self.perm))]
    }
    fn is_view(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "permute"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g with the inverse permutation"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let mut inv = vec![0; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inv[p] = i;
        }
        Ok(vec![Some(g.permute(&inv)?)])
    }
}

struct Expand;

impl Op for Expand {
    fn is_view(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "expand"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g summed over the expanded dims"
    }
    // The backward pass sums the gradient back to the input's shape in one shared place.
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.clone())])
    }
}

struct Clone;

impl Op for Clone {
    fn name(&self) -> &'static str {
        "clone"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.clone())])
    }
}

/// An in-place op's result written into the Value's memory (`x.add_(y)` records `add`,
/// then this): the op's own output stays unchanged for its backward.
struct Written {
    name: &'static str,
}

impl Op for Written {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("written", Attr::Int(1))]
    }
    fn name(&self) -> &'static str {
        self.name
    }
    fn rule(&self) -> &'static str {
        "grad = g (the result, written into the Value's memory in place)"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.clone())])
    }
}

struct Cast {
    from: DType,
}

impl Op for Cast {
    fn name(&self) -> &'static str {
        "to"
    }
    fn rule(&self) -> &'static str {
        "grad_x = g cast back to x's dtype"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.to_dtype(self.from)?)])
    }
}

impl Node {
    /// `result`, now held in `memory` (the written Value's data), as a node of its own.
    pub(crate) fn written(result: &Node, memory: Tensor, name: &'static str) -> Node {
        Node::from_op(memory, Written { name }, vec![result.clone()])
    }

    /// torch's `clone()`: a copy in memory of its own that stays in the graph.
    pub fn clone_data(&self) -> Result<Node> {
        Ok(Node::from_op(
            self.tensor().copy()?,
            Clone,
            vec![self.clone()],
        ))
    }

    /// `shape` may hold one -1, inferred from the element count.
    pub fn reshape_infer(&self, shape: &[isize]) -> Result<Node> {
        let from = self.shape();
        let n: usize = from.iter().product();
        let known: usize = shape
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let holes = shape.iter().filter(|&&d| d == -1).count();
        let bad = || {
            Error::shape(
                "reshape",
                format!(
                    "cannot reshape a tensor of shape {} ({n} elements) into {shape:?}",
                    fmt_shape(&from)
                ),
            )
        };
        if holes > 1 || shape.iter().any(|&d| d < -1) {
            return Err(bad());
        }
        let target: Vec<usize> = if holes == 1 {
            if known == 0 || !n.is_multiple_of(known) {
                return Err(bad());
            }
            shape
                .iter()
                .map(|&d| if d == -1 { n / known } else { d as usize })
                .collect()
        } else {
            shape.iter().map(|&d| d as usize).collect()
        };
        self.reshape(&target)
    }

    /// A view in `shape`; a new node even when the shape is unchanged, as torch (the result
    /// has its own gradient and is not a leaf).
    pub fn reshape(&self, shape: &[usize]) -> Result<Node> {
        let from = self.shape();
        let t = self.tensor().reshape(shape)?;
        Ok(Node::from_op(t, Reshape { from }, vec![self.clone()]))
    }

    pub fn permute(&self, perm: &[usize]) -> Result<Node> {
        let t = self.tensor().permute(perm)?;
        Ok(Node::from_op(
            t,
            Permute {
                perm: perm.to_vec(),
            },
            vec![self.clone()],
        ))
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Node> {
        let n = self.ndim();
        let (a, b) = (wrap_dim("transpose", a, n)?, wrap_dim("transpose", b, n)?);
        let mut perm: Vec<usize> = (0..n).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// A broadcast view; a new node even when nothing is expanded (see `reshape`).
    pub fn expand(&self, shape: &[usize]) -> Result<Node> {
        let t = self.tensor().broadcast_to(shape)?;
        Ok(Node::from_op(t, Expand, vec![self.clone()]))
    }

    pub fn to_dtype(&self, dtype: DType) -> Result<Node> {
        let from = self.dtype();
        if from == dtype {
            return Ok(self.clone());
        }
        Ok(Node::from_op(
            self.tensor().to_dtype(dtype)?,
            Cast { from },
            vec![self.clone()],
        ))
    }

    pub fn unsqueeze(&self, dim: isize) -> Result<Node> {
        let mut shape = self.shape();
        let d = wrap_dim("unsqueeze", dim, shape.len() + 1)?;
        shape.insert(d, 1);
        self.reshape(&shape)
    }

    /// Drops the given size-1 dims (all size-1 dims when `dims` is None).
    pub fn squeeze(&self, dims: Option<&[isize]>) -> Result<Node> {
        let shape = self.shape();
        let drop: Vec<usize> = match dims {
            None => (0..shape.len()).filter(|&d| shape[d] == 1).collect(),
            Some(ds) => {
                let mut out = Vec::new();
                for &d in ds {
                    let w = wrap_dim("squeeze", d, shape.len().max(1))?;
                    if shape.get(w).copied().unwrap_or(1) == 1 {
                        out.push(w);
                    }
                }
                out
            }
        };
        let kept: Vec<usize> = (0..shape.len())
            .filter(|d| !drop.contains(d))
            .map(|d| shape[d])
            .collect();
        self.reshape(&kept)
    }

    pub fn flatten(&self, start: isize, end: isize) -> Result<Node> {
        let shape = self.shape();
        if shape.is_empty() {
            return self.reshape(&[1]);
        }
        let (s, e) = (
            wrap_dim("flatten", start, shape.len())?,
            wrap_dim("flatten", end, shape.len())?,
        );
        if s > e {
            return Err(Error::value(
                "flatten",
                format!("start dim {start} comes after end dim {end}"),
            ));
        }
        let mut out: Vec<usize> = shape[..s].to_vec();
        out.push(shape[s..=e].iter().product());
        out.extend_from_slice(&shape[e + 1..]);
        self.reshape(&out)
    }
}

/// One step of a basic-indexing view, applied to the dims as they stand after the
/// previous steps.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewStep {
    Slice {
        dim: usize,
        start: usize,
        len: usize,
        step: isize,
    },
    Select {
        dim: usize,
        index: usize,
    },
    Unsqueeze {
        dim: usize,
    },
}

fn apply_steps(layout: &Layout, steps: &[ViewStep]) -> Layout {
    steps.iter().fold(layout.clone(), |l, s| match *s {
        ViewStep::Slice {
            dim,
            start,
            len,
            step,
        } => l.slice(dim, start, len, step),
        ViewStep::Select { dim, index } => l.select(dim, index),
        ViewStep::Unsqueeze { dim } => l.unsqueeze(dim),
    })
}

struct View {
    steps: Vec<ViewStep>,
    from: Vec<usize>,
}

impl Op for View {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        // Five ints per step: kind (0 slice, 1 select, 2 unsqueeze), then its numbers.
        let mut flat = Vec::with_capacity(5 * self.steps.len());
        for s in &self.steps {
            flat.extend(match *s {
                ViewStep::Slice {
                    dim,
                    start,
                    len,
                    step,
                } => [0, dim as i64, start as i64, len as i64, step as i64],
                ViewStep::Select { dim, index } => [1, dim as i64, index as i64, 0, 0],
                ViewStep::Unsqueeze { dim } => [2, dim as i64, 0, 0, 0],
            });
        }
        vec![("steps", Attr::Ints(flat))]
    }
    fn is_view(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "getitem"
    }
    fn rule(&self) -> &'static str {
        "grad_x = zeros of x's shape with g written through the same view"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.view_scatter(&self.steps, &self.from)?)])
    }
}

/// The adjoint of `View`: zeros of the source shape with `g` written through the view.
struct ViewScatter {
    steps: Vec<ViewStep>,
}

impl Op for ViewScatter {
    fn name(&self) -> &'static str {
        "view_scatter"
    }
    fn rule(&self) -> &'static str {
        "grad_g = the same view of the incoming gradient"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        Ok(vec![Some(g.view(&self.steps)?)])
    }
}

impl Node {
    /// A zero-copy view; steps were validated by the caller (`index`, `narrow`).
    pub fn view(&self, steps: &[ViewStep]) -> Result<Node> {
        let t = self.tensor();
        let layout = apply_steps(t.layout(), steps);
        let from = t.shape().to_vec();
        Ok(Node::from_op(
            t.with_layout(layout),
            View {
                steps: steps.to_vec(),
                from,
            },
            vec![self.clone()],
        ))
    }

    pub fn view_scatter(&self, steps: &[ViewStep], shape: &[usize]) -> Result<Node> {
        let z = Tensor::zeros(shape, self.dtype())?;
        let target = z.with_layout(apply_steps(z.layout(), steps));
        target.add_assign(&self.tensor())?;
        Ok(Node::from_op(
            z,
            ViewScatter {
                steps: steps.to_vec(),
            },
            vec![self.clone()],
        ))
    }

    /// `len` elements of `dim` from `start`, as a view.
    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Node> {
        let shape = self.shape();
        let d = wrap_dim("narrow", dim, shape.len())?;
        if start + len > shape[d] {
            return Err(Error::index(
                "narrow",
                format!(
                    "{start}..{} is out of range for dim {d} of shape {}",
                    start + len,
                    fmt_shape(&shape)
                ),
            ));
        }
        self.view(&[ViewStep::Slice {
            dim: d,
            start,
            len,
            step: 1,
        }])
    }
}

impl Tensor {
    /// Joins tensors of one dtype along `dim`; shapes agree elsewhere (checked by caller).
    pub fn cat(parts: &[Tensor], dim: usize) -> Result<Tensor> {
        let mut shape = parts[0].shape().to_vec();
        shape[dim] = parts.iter().map(|p| p.shape()[dim]).sum();
        let dtype = parts
            .iter()
            .fold(parts[0].dtype(), |d, p| d.promote(p.dtype()));
        let out = Tensor::zeros(&shape, dtype)?;
        let mut at = 0;
        for p in parts {
            let len = p.shape()[dim];
            out.slice(dim, at, len, 1).add_assign(p)?;
            at += len;
        }
        Ok(out)
    }
}

struct Cat {
    dim: usize,
    sizes: Vec<usize>,
}

impl Op for Cat {
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        vec![("dim", Attr::Int(self.dim as i64))]
    }
    fn name(&self) -> &'static str {
        "cat"
    }
    fn rule(&self) -> &'static str {
        "grad of each input = its slice of g along the joined dim"
    }
    fn backward(&self, _: &Ctx, g: &Node) -> Result<Vec<Option<Node>>> {
        let mut at = 0;
        let mut out = Vec::with_capacity(self.sizes.len());
        for &n in &self.sizes {
            out.push(Some(g.narrow(self.dim as isize, at, n)?));
            at += n;
        }
        Ok(out)
    }
}

impl Node {
    pub fn cat(parts: &[Node], dim: isize) -> Result<Node> {
        let Some(first) = parts.first() else {
            return Err(Error::value("cat", "expected a non-empty list of Values"));
        };
        let shape0 = first.shape();
        if shape0.is_empty() {
            return Err(Error::shape(
                "cat",
                "zero-dimensional Values cannot be concatenated",
            ));
        }
        let d = wrap_dim("cat", dim, shape0.len())?;
        let tensors: Vec<Tensor> = parts.iter().map(|p| p.tensor()).collect();
        for t in &tensors {
            let s = t.shape();
            let same = s.len() == shape0.len() && (0..s.len()).all(|i| i == d || s[i] == shape0[i]);
            if !same {
                return Err(Error::shape(
                    "cat",
                    format!(
                        "shapes {} and {} differ outside dim {d}",
                        fmt_shape(&shape0),
                        fmt_shape(s)
                    ),
                ));
            }
        }
        let sizes = tensors.iter().map(|t| t.shape()[d]).collect();
        let out = Tensor::cat(&tensors, d)?;
        Ok(Node::from_op(out, Cat { dim: d, sizes }, parts.to_vec()))
    }

    pub fn stack(parts: &[Node], dim: isize) -> Result<Node> {
        let Some(first) = parts.first() else {
            return Err(Error::value("stack", "expected a non-empty list of Values"));
        };
        let shape0 = first.shape();
        if let Some(p) = parts.iter().find(|p| p.shape() != shape0) {
            return Err(Error::shape(
                "stack",
                format!(
                    "all Values must have one shape, got {} and {}",
                    fmt_shape(&shape0),
                    fmt_shape(&p.shape())
                ),
            ));
        }
        let d = wrap_dim("stack", dim, shape0.len() + 1)?;
        let parts: Vec<Node> = parts
            .iter()
            .map(|p| p.unsqueeze(d as isize))
            .collect::<Result<_>>()?;
        Node::cat(&parts, d as isize)
    }

    /// Pieces of `sizes` along `dim`, as views.
    pub fn split_sizes(&self, sizes: &[usize], dim: isize) -> Result<Vec<Node>> {
        let shape = self.shape();
        let d = wrap_dim("split", dim, shape.len())?;
        if sizes.iter().sum::<usize>() != shape[d] {
            return Err(Error::shape(
                "split",
                format!(
                    "sizes {sizes:?} do not add up to dim {d} of shape {}",
                    fmt_shape(&shape)
                ),
            ));
        }
        let mut at = 0;
        sizes
            .iter()
            .map(|&n| {
                let v = self.narrow(d as isize, at, n);
                at += n;
                v
            })
            .collect()
    }
}
