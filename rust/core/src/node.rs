//! `Node`: a tensor in the computation graph, and the backward pass over that graph.
use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::dtype::DType;
use crate::error::{fmt_shape, Error, Result};
use crate::layout::Dims;
use crate::tensor::Tensor;

/// What an op hands its backward: its parents, its output and which parents want a gradient.
pub struct Ctx<'a> {
    pub parents: &'a [Node],
    pub out: &'a Node,
    pub needs: &'a [bool],
}

impl Ctx<'_> {
    pub fn parent(&self, i: usize) -> &Node {
        &self.parents[i]
    }
    /// `Some(f())` when input `i` wants a gradient, so unneeded work is skipped.
    pub fn grad_for(&self, i: usize, f: impl FnOnce() -> Result<Node>) -> Result<Option<Node>> {
        if self.needs[i] {
            f().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// One differentiable op. Its forward lives beside its `impl Op` in `ops/`.
pub trait Op: Send + Sync {
    fn name(&self) -> &'static str;
    /// The local derivative rule in words, for explain mode; it sits beside `backward`.
    fn rule(&self) -> &'static str;
    /// Gradient for each input, given the output's gradient `g`, written with `Node` ops
    /// (recorded only when a graph of the gradient is asked for).
    fn backward(&self, ctx: &Ctx, g: &Node) -> Result<Vec<Option<Node>>>;
}

/// One step of a backward pass, as explain mode reports it.
pub struct Step<'a> {
    pub node: &'a Node,
    /// The gradient arriving at `node`.
    pub grad: Tensor,
    /// Per input: None if it took no gradient, else the gradient's shape before it was
    /// summed back to the input's shape, and the dims summed (empty: no broadcast).
    pub summed: Vec<Option<(Vec<usize>, Vec<usize>)>>,
}

/// What a node holds; `Node` is a shared handle to it.
struct NodeData {
    data: RwLock<Tensor>,
    grad: Mutex<Option<Tensor>>,
    requires_grad: AtomicBool,
    op: Option<Box<dyn Op>>,
    parents: Vec<Node>,
    /// micrograd's `label` ('a', 'loss'), for drawings; None until set.
    label: Mutex<Option<Box<str>>>,
}

/// A node of the graph: a tensor, its gradient, and the op and parents that made it.
#[derive(Clone)]
pub struct Node(Arc<NodeData>);

/// Node ids are addresses: already unique, so hashing only needs to spread them.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_right(29);
    }
}

type IdMap<V> = HashMap<usize, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<usize, BuildHasherDefault<IdHasher>>;

/// Graph nodes alive right now: lets tests prove that graphs are freed.
static LIVE_NODES: AtomicUsize = AtomicUsize::new(0);

pub fn live_nodes() -> usize {
    LIVE_NODES.load(Ordering::Relaxed)
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Sets this thread's grad mode and returns the previous one.
pub fn set_grad_enabled(on: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(on))
}

/// Turns recording off until dropped.
pub struct NoGradGuard(bool);

impl NoGradGuard {
    pub fn new() -> Self {
        NoGradGuard(set_grad_enabled(false))
    }
}

impl Default for NoGradGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

// Dropping a long chain recursively would overflow the stack: unlink parents in a loop.
impl Drop for NodeData {
    fn drop(&mut self) {
        LIVE_NODES.fetch_sub(1, Ordering::Relaxed);
        let mut stack = std::mem::take(&mut self.parents);
        while let Some(v) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(v.0) {
                stack.append(&mut node.parents);
            }
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({:?}, op={:?})", self.tensor(), self.op_name())
    }
}

impl Node {
    pub fn leaf(t: Tensor, requires_grad: bool) -> Node {
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Node(Arc::new(NodeData {
            data: RwLock::new(t),
            grad: Mutex::new(None),
            requires_grad: AtomicBool::new(requires_grad),
            op: None,
            parents: Vec::new(),
            label: Mutex::new(None),
        }))
    }

    /// The result of `op` on `parents`; recorded only if grad mode is on, a parent requires
    /// grad and the result is a float tensor (an integer or bool result has no gradient).
    pub fn from_op(t: Tensor, op: impl Op + 'static, parents: Vec<Node>) -> Node {
        if !is_grad_enabled() || !t.dtype().is_float() || !parents.iter().any(|p| p.requires_grad())
        {
            return Node::leaf(t, false);
        }
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Node(Arc::new(NodeData {
            data: RwLock::new(t),
            grad: Mutex::new(None),
            requires_grad: AtomicBool::new(true),
            op: Some(Box::new(op)),
            parents,
            label: Mutex::new(None),
        }))
    }

    pub fn constant(value: f64, dtype: DType) -> Node {
        Node::leaf(Tensor::scalar(value, dtype), false)
    }

    /// A cheap handle to the data (shares storage).
    pub fn tensor(&self) -> Tensor {
        self.0
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Borrows the data for the length of a kernel call, without cloning the handle.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Tensor> {
        self.0.data.read().unwrap_or_else(|e| e.into_inner())
    }
    /// `f(self's data, other's data)`; one lock when both are the same node (`x * x`).
    pub fn read2<R>(&self, other: &Node, f: impl FnOnce(&Tensor, &Tensor) -> R) -> R {
        if self.ptr_eq(other) {
            let a = self.read();
            f(&a, &a)
        } else {
            let (a, b) = (self.read(), other.read());
            f(&a, &b)
        }
    }
    /// `.data = t` from Python: `t` takes this node's dtype; a leaf may change shape (its
    /// gradient is dropped, as torch), a computed node may not (its backward needs it).
    pub fn set_data(&self, t: Tensor) -> Result<()> {
        let (shape, dtype) = (self.shape(), self.dtype());
        let t = t.to_dtype(dtype)?;
        if t.shape() != shape.as_slice() {
            if !self.is_leaf() {
                return Err(Error::shape(
                    "data",
                    format!(
                        "cannot give a Value made by '{}' a new shape {} (it has {}); only leaf \
                         Values can change shape",
                        self.op_name(),
                        fmt_shape(t.shape()),
                        fmt_shape(&shape)
                    ),
                ));
            }
            self.set_grad(None);
        }
        self.set_tensor(t);
        Ok(())
    }

    /// `.grad = g` from Python: `g` takes this node's dtype and must have its shape.
    pub fn assign_grad(&self, g: Option<Tensor>) -> Result<()> {
        let g = match g {
            None => None,
            Some(g) => {
                let g = g.to_dtype(self.dtype())?;
                if g.shape() != self.shape().as_slice() {
                    return Err(Error::shape(
                        "grad",
                        format!(
                            "assigned gradient has shape {} but the Value has shape {}",
                            fmt_shape(g.shape()),
                            fmt_shape(&self.shape())
                        ),
                    ));
                }
                Some(g)
            }
        };
        self.set_grad(g);
        Ok(())
    }

    pub fn set_tensor(&self, t: Tensor) {
        *self.0.data.write().unwrap_or_else(|e| e.into_inner()) = t;
    }
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = g;
    }
    pub fn shape(&self) -> Dims {
        self.0
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .layout()
            .shape
            .clone()
    }
    pub fn ndim(&self) -> usize {
        self.0.data.read().unwrap_or_else(|e| e.into_inner()).ndim()
    }
    pub fn dtype(&self) -> DType {
        self.0
            .data
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .dtype()
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }
    /// A leaf that may require grad: only float tensors can, as in torch.
    pub fn new_leaf(t: Tensor, requires_grad: bool) -> Result<Node> {
        let v = Node::leaf(t, false);
        v.set_requires_grad(requires_grad)?;
        Ok(v)
    }
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        if on && !self.dtype().is_float() {
            return Err(Error::grad(
                "requires_grad",
                format!(
                    "only float tensors can require gradients, this one is {}",
                    self.dtype()
                ),
            ));
        }
        if !self.is_leaf() && !on {
            return Err(Error::grad(
                "requires_grad_",
                "only leaf Values can stop requiring grad; use .detach() on a computed Value",
            ));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(())
    }
    pub fn is_leaf(&self) -> bool {
        self.0.op.is_none()
    }
    pub fn label(&self) -> Option<String> {
        let l = self.0.label.lock().unwrap_or_else(|e| e.into_inner());
        l.as_deref().map(str::to_owned)
    }
    pub fn set_label(&self, label: Option<&str>) {
        *self.0.label.lock().unwrap_or_else(|e| e.into_inner()) = label.map(Box::from);
    }
    pub fn op_name(&self) -> &'static str {
        self.0.op.as_ref().map_or("", |o| o.name())
    }
    pub fn op_rule(&self) -> &'static str {
        self.0.op.as_ref().map_or("", |o| o.rule())
    }
    pub fn parents(&self) -> &[Node] {
        &self.0.parents
    }
    /// Identity of the node, stable while it lives.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
    pub fn ptr_eq(&self, other: &Node) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    /// Same data, no graph, no grad.
    pub fn detach(&self) -> Node {
        Node::leaf(self.tensor(), false)
    }

    /// Every node behind `self` (itself included), parents before children, built with an
    /// explicit stack so that graph depth is bounded by memory, not by the call stack.
    pub fn topo_order(&self, only_requiring_grad: bool) -> Vec<Node> {
        let mut order = Vec::new();
        let mut seen = IdSet::default();
        seen.insert(self.id());
        let mut stack: Vec<(Node, usize)> = vec![(self.clone(), 0)];
        while let Some(top) = stack.last_mut() {
            let (v, i) = (top.0.clone(), top.1);
            if let Some(p) = v.parents().get(i) {
                top.1 += 1;
                if (!only_requiring_grad || p.requires_grad()) && seen.insert(p.id()) {
                    stack.push((p.clone(), 0));
                }
            } else {
                stack.pop();
                order.push(v);
            }
        }
        order
    }

    /// Adds d(self)/d(node) into `.grad` of every node behind `self` that requires grad.
    /// `seed` defaults to ones, i.e. the gradient of `self.sum()`.
    pub fn backward(&self, seed: Option<Tensor>) -> Result<()> {
        self.backward_with(seed, None)
    }

    /// As `backward`; with `trace`, reports every step (explain mode). Without it, no
    /// step record is built.
    pub fn backward_with(
        &self,
        seed: Option<Tensor>,
        mut trace: Option<&mut dyn FnMut(Step)>,
    ) -> Result<()> {
        if !self.requires_grad() {
            return Err(Error::grad(
                "backward",
                "this Value does not require grad and has no grad_fn; \
                 create its inputs with requires_grad=True",
            ));
        }
        let shape = self.shape();
        let seed = match seed {
            None => Tensor::full(&shape, 1.0, self.dtype())?,
            Some(s) if s.shape() == shape.as_slice() => s.to_dtype(self.dtype())?,
            Some(s) => {
                return Err(Error::shape(
                    "backward",
                    format!(
                        "gradient has shape {} but the output has shape {}",
                        fmt_shape(s.shape()),
                        fmt_shape(&shape)
                    ),
                ))
            }
        };
        let _guard = NoGradGuard::new();
        let order = self.topo_order(true);
        let mut grads: IdMap<Node> = IdMap::default();
        grads.insert(self.id(), Node::leaf(seed, false));
        for v in order.iter().rev() {
            let Some(g) = grads.remove(&v.id()) else {
                continue;
            };
            if let Some(op) = &v.0.op {
                let needs: Vec<bool> = v.parents().iter().map(|p| p.requires_grad()).collect();
                let ctx = Ctx {
                    parents: v.parents(),
                    out: v,
                    needs: &needs,
                };
                let input_grads = op.backward(&ctx, &g)?;
                let mut summed = Vec::new();
                for ((p, gp), need) in v.parents().iter().zip(input_grads).zip(&needs) {
                    let gp = match gp {
                        Some(gp) if *need => gp,
                        _ => {
                            summed.push(None);
                            continue;
                        }
                    };
                    let pre = if trace.is_some() {
                        gp.shape().to_vec()
                    } else {
                        Vec::new()
                    };
                    let (gp, dims) = unbroadcast(gp, p)?;
                    summed.push(Some((pre, dims)));
                    match grads.entry(p.id()) {
                        Entry::Occupied(mut e) => {
                            let sum = e.get().add(&gp)?;
                            e.insert(sum);
                        }
                        Entry::Vacant(e) => {
                            e.insert(gp);
                        }
                    }
                }
                if let Some(t) = trace.as_mut() {
                    t(Step {
                        node: v,
                        grad: g.tensor(),
                        summed,
                    });
                }
            }
            // Drop the node first: a gradient nobody else holds is kept without a copy.
            let t = g.tensor();
            drop(g);
            v.accumulate_grad(t)?;
        }
        Ok(())
    }

    /// micrograd's `_backward()`: this node's local chain rule once, from its own `.grad`
    /// into its parents' `.grad` (added, as micrograd's `+=`). A leaf, or a node whose
    /// gradient is not set, does nothing.
    pub fn backward_step(&self) -> Result<()> {
        let (Some(op), Some(g)) = (&self.0.op, self.grad()) else {
            return Ok(());
        };
        let _guard = NoGradGuard::new();
        let needs: Vec<bool> = self.parents().iter().map(|p| p.requires_grad()).collect();
        let ctx = Ctx {
            parents: self.parents(),
            out: self,
            needs: &needs,
        };
        let input_grads = op.backward(&ctx, &Node::leaf(g, false))?;
        for ((p, gp), need) in self.parents().iter().zip(input_grads).zip(&needs) {
            if let (Some(gp), true) = (gp, *need) {
                let (gp, _) = unbroadcast(gp, p)?;
                p.accumulate_grad(gp.tensor())?;
            }
        }
        Ok(())
    }

    fn accumulate_grad(&self, g: Tensor) -> Result<()> {
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(existing) if existing.shape() == g.shape() => existing.add_assign(&g)?,
            _ => {
                // The stored gradient is added to in place later, so it must own its buffer.
                let owned = g.storage().is_unique()
                    && g.is_contiguous()
                    && g.layout().offset == 0
                    && g.storage().len() == g.numel();
                *slot = Some(if owned { g } else { g.copy()? });
            }
        }
        Ok(())
    }

    /// Zeros, in place, the gradient of every node behind `self`.
    pub fn zero_grad_graph(&self) {
        for v in self.topo_order(false) {
            if let Some(g) = v.grad() {
                g.fill_(0.0);
            }
        }
    }
}

/// Sums a gradient back to its input's shape and dtype: the one place that undoes
/// broadcasting. Returns the dims it summed over (in the gradient's shape).
fn unbroadcast(g: Node, input: &Node) -> Result<(Node, Vec<usize>)> {
    let target = input.shape();
    let gs = g.shape();
    let mut dims = Vec::new();
    let g = if gs != target {
        let lead = gs.len() - target.len().min(gs.len());
        dims = (0..gs.len())
            .filter(|&i| i < lead || (target[i - lead] == 1 && gs[i] != 1))
            .collect();
        g.sum(
            Some(&dims.iter().map(|&d| d as isize).collect::<Vec<_>>()),
            true,
        )?
        .reshape(&target)?
    } else {
        g
    };
    let g = if g.dtype() != input.dtype() {
        g.to_dtype(input.dtype())?
    } else {
        g
    };
    Ok((g, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[f64], shape: &[usize]) -> Node {
        Node::leaf(Tensor::from_vec(x.to_vec(), shape).unwrap(), true)
    }

    #[test]
    fn broadcast_gradient_is_summed_back() {
        let a = v(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
        let b = v(&[10., 20., 30.], &[3]);
        let c = a.mul(&b).unwrap();
        c.backward(None).unwrap();
        assert_eq!(b.grad().unwrap().to_vec_f64().unwrap(), vec![5., 7., 9.]);
        assert_eq!(
            a.grad().unwrap().to_vec_f64().unwrap(),
            vec![10., 20., 30., 10., 20., 30.]
        );
    }

    #[test]
    fn reused_node_accumulates() {
        let x = v(&[3.], &[]);
        let y = x.mul(&x).unwrap();
        y.backward(None).unwrap();
        assert_eq!(x.grad().unwrap().to_vec_f64().unwrap(), vec![6.]);
        y.backward(None).unwrap();
        assert_eq!(x.grad().unwrap().to_vec_f64().unwrap(), vec![12.]);
    }

    #[test]
    fn deep_chain_backward_and_drop() {
        let x = v(&[1.], &[]);
        let mut y = x.clone();
        for _ in 0..200_000 {
            y = y.add(&Node::constant(1.0, DType::F64)).unwrap();
        }
        y.backward(None).unwrap();
        assert_eq!(x.grad().unwrap().to_vec_f64().unwrap(), vec![1.]);
        drop(y);
    }

    #[test]
    fn backward_without_grad_is_an_error() {
        let x = Node::leaf(Tensor::scalar(1.0, DType::F64), false);
        assert!(matches!(x.backward(None), Err(Error::Grad { .. })));
    }

    #[test]
    fn seed_of_wrong_shape_is_an_error() {
        let x = v(&[1., 2.], &[2]);
        let y = x.mul(&x).unwrap();
        let e = y
            .backward(Some(Tensor::scalar(1.0, DType::F64)))
            .unwrap_err();
        assert!(e.to_string().contains("(2,)"));
    }
}
