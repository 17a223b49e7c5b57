//! `Node`: a tensor in the computation graph, and the backward pass over that graph.
use std::cell::{Cell, RefCell};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use smallvec::SmallVec;

use crate::dtype::DType;
use crate::error::{fmt_shape, Error, Result};
use crate::layout::Dims;
use crate::ops::elementwise::Binary;
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
    /// A view op: its output may share its input's memory (an in-place write through it
    /// changes the input).
    fn is_view(&self) -> bool {
        false
    }
    /// What the forward used besides its inputs and output shape, for exporters (ONNX):
    /// dims, strides, saved index tensors. Ops with no settings keep the default.
    fn attrs(&self) -> Vec<(&'static str, Attr)> {
        Vec::new()
    }
}

/// One setting of a recorded op, as `Op::attrs` reports it.
#[derive(Clone)]
pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f64),
    Floats(Vec<f64>),
    Tensor(Tensor),
    Tensors(Vec<Tensor>),
}

impl Attr {
    pub fn dims(dims: &[usize]) -> Attr {
        Attr::Ints(dims.iter().map(|&d| d as i64).collect())
    }
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

/// torch's options of `backward` beyond the seed.
#[derive(Default)]
pub struct BackwardOptions<'a> {
    /// Record the backward pass, so gradients can be differentiated again; a leaf's `.grad`
    /// then has a graph.
    pub create_graph: bool,
    /// Add gradients only into these nodes' `.grad` (None: every node's).
    pub inputs: Option<&'a [Node]>,
}

/// Puts the grad mode back when dropped.
struct RestoreGradMode(bool);

impl Drop for RestoreGradMode {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

/// What a node holds; `Node` is a shared handle to it.
struct NodeData {
    data: RwLock<Tensor>,
    grad: Mutex<Option<Tensor>>,
    /// With `backward(create_graph=True)`, a leaf's `.grad` has a graph of its own: this is
    /// its node (over the same memory as `grad`). It refers back to the leaf, so the cycle
    /// lives until `.grad` is reset, as torch's does.
    grad_graph: Mutex<Option<Node>>,
    requires_grad: AtomicBool,
    op: Option<Box<dyn Op>>,
    parents: Vec<Node>,
    /// micrograd's `label` ('a', 'loss'), for drawings; None until set.
    label: Mutex<Option<Box<str>>>,
    /// The parents' storage versions when this node was recorded (empty: all 0), checked
    /// when the backward rule reads them; inline for up to 2 parents (no allocation).
    versions: SmallVec<[u64; 2]>,
    /// The version of this node's own storage when its data was set.
    version: AtomicU64,
    /// Creation order of recorded nodes (0 for leaves).
    seq: u64,
    /// The `seq` from which this node's graph no longer follows its data (an in-place
    /// write went through a view of it); `u64::MAX` while it does.
    stale_at: AtomicU64,
    /// The in-place result whose write made this node stale: an `index_put` of that
    /// result back into this node (`x[i] += v`) is what brings its graph up to date.
    fixed_by: AtomicU64,
    /// False for `.data`'s node: its writes bypass the version counter, as torch's `.data`.
    tracked: bool,
    /// Which recorded backward pass made this node (see `Recorder`): 0 for the forward.
    made_by: MadeBy,
}

/// `MadeBy::op` of the sum of two gradients of one leaf's `.grad` (`create_graph` twice).
pub const ACCUMULATION: &str = "grad accumulation";

/// Where a node came from: 0 = an op of the forward pass; n > 0 = an op that the backward
/// rule of `op` recorded (`backward(create_graph=True)`), one level above the node `op`
/// belongs to. So `x.tanh()` is 0, the ops of its gradient are (1, "tanh"), and those of a
/// second derivative are 2. Drawings and explain mode show it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct MadeBy {
    pub order: u8,
    pub op: &'static str,
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

/// Set by the first in-place write; until then no version needs recording or checking.
static ANY_WRITE: AtomicBool = AtomicBool::new(false);
/// Counts recorded nodes, for `NodeData::seq`.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Records one in-place write into `t`'s storage (torch's version counter).
pub fn bump_version(t: &Tensor) {
    ANY_WRITE.store(true, Ordering::Relaxed);
    t.storage().bump_version();
}

/// A tensor an op keeps for its backward besides its inputs (an index, a mask), with its
/// version when the op was recorded: a backward that finds it overwritten fails, as torch's.
#[derive(Clone)]
pub struct SavedTensor {
    tensor: Tensor,
    version: u64,
}

impl SavedTensor {
    pub fn new(tensor: Tensor) -> SavedTensor {
        SavedTensor {
            version: tensor.version(),
            tensor,
        }
    }
    /// The tensor as it is now, whatever its version (for exporters, not for backward).
    pub fn peek(&self) -> &Tensor {
        &self.tensor
    }
    /// The tensor, if unchanged since it was saved; `what` names it for the message.
    pub fn get(&self, op: &'static str, what: &str) -> Result<&Tensor> {
        let now = self.tensor.version();
        if now != self.version {
            return Err(Error::grad(
                "backward",
                format!(
                    "the {what} that '{op}' saved was modified by an in-place operation: it \
                     is at version {now}; expected version {}. Modify a clone() of it instead",
                    self.version
                ),
            ));
        }
        Ok(&self.tensor)
    }
}

/// A value a backward rule may read: the node, the version it must still have, and its
/// role for the message (`Some(i)`: input i; None: the op's output).
struct Saved {
    id: usize,
    version: u64,
    role: Option<usize>,
}

thread_local! {
    static CHECKING: Cell<bool> = const { Cell::new(false) };
    static SAVED: RefCell<Vec<Saved>> = const { RefCell::new(Vec::new()) };
    static MODIFIED: RefCell<Option<(Option<usize>, u64, u64)>> = const { RefCell::new(None) };
}

fn check_saved(id: usize, t: &Tensor) {
    SAVED.with(|s| {
        for saved in s.borrow().iter() {
            if saved.id == id && t.version() != saved.version {
                MODIFIED.with(|m| {
                    m.borrow_mut()
                        .get_or_insert((saved.role, t.version(), saved.version));
                });
            }
        }
    });
}

/// Runs `v`'s backward rule `f`, failing if it read a value that an in-place write has
/// changed since `v` was recorded (torch's "modified by an inplace operation").
fn with_saved<R>(v: &Node, f: impl FnOnce() -> Result<R>) -> Result<R> {
    if !ANY_WRITE.load(Ordering::Relaxed) {
        return f();
    }
    SAVED.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        for (i, p) in v.parents().iter().enumerate() {
            s.push(Saved {
                id: p.id(),
                version: v.0.versions.get(i).copied().unwrap_or(0),
                role: Some(i),
            });
        }
        s.push(Saved {
            id: v.id(),
            version: v.0.version.load(Ordering::Relaxed),
            role: None,
        });
    });
    CHECKING.with(|c| c.set(true));
    let out = f();
    CHECKING.with(|c| c.set(false));
    SAVED.with(|s| s.borrow_mut().clear());
    if let Some((role, now, then)) = MODIFIED.with(|m| m.borrow_mut().take()) {
        let what = match role {
            Some(i) => format!("input {i}"),
            None => "the output".to_string(),
        };
        let node = match role {
            Some(i) => &v.parents()[i],
            None => v,
        };
        return Err(Error::grad(
            "backward",
            format!(
                "a Value needed to compute the gradient of '{}' was modified by an in-place \
                 operation: {what} of '{}' ({} of shape {}) is at version {now}; expected \
                 version {then}. Modify a clone() of it instead, or after backward()",
                v.op_name(),
                v.op_name(),
                node.dtype(),
                fmt_shape(&node.shape())
            ),
        ));
    }
    out
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
    /// What a node recorded now is made by: set while a backward rule runs with recording on.
    static MADE_BY: Cell<MadeBy> = const { Cell::new(MadeBy { order: 0, op: "" }) };
}

/// Marks the nodes recorded until dropped as made by the backward rule of `node`.
struct Recorder(MadeBy);

impl Recorder {
    fn for_rule_of(node: &Node) -> Recorder {
        let made = MadeBy {
            order: node.0.made_by.order.saturating_add(1),
            op: node.op_name(),
        };
        Recorder(MADE_BY.with(|m| m.replace(made)))
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        MADE_BY.with(|m| m.set(self.0));
    }
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
        Node::make_leaf(t, requires_grad, true)
    }

    fn make_leaf(t: Tensor, requires_grad: bool, tracked: bool) -> Node {
        LIVE_NODES.fetch_add(1, Ordering::Relaxed);
        Node(Arc::new(NodeData {
            version: AtomicU64::new(t.version()),
            data: RwLock::new(t),
            grad: Mutex::new(None),
            grad_graph: Mutex::new(None),
            requires_grad: AtomicBool::new(requires_grad),
            op: None,
            parents: Vec::new(),
            label: Mutex::new(None),
            versions: SmallVec::new(),
            seq: 0,
            stale_at: AtomicU64::new(u64::MAX),
            fixed_by: AtomicU64::new(0),
            tracked,
            made_by: MadeBy::default(),
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
        // Until the first in-place write every version is 0, and nothing is stored.
        let versions = if ANY_WRITE.load(Ordering::Relaxed) {
            parents
                .iter()
                .map(|p| p.read_unchecked().version())
                .collect()
        } else {
            SmallVec::new()
        };
        Node(Arc::new(NodeData {
            version: AtomicU64::new(t.version()),
            data: RwLock::new(t),
            grad: Mutex::new(None),
            grad_graph: Mutex::new(None),
            requires_grad: AtomicBool::new(true),
            op: Some(Box::new(op)),
            parents,
            label: Mutex::new(None),
            versions,
            seq: SEQ.fetch_add(1, Ordering::Relaxed) + 1,
            stale_at: AtomicU64::new(u64::MAX),
            fixed_by: AtomicU64::new(0),
            tracked: true,
            made_by: MADE_BY.with(Cell::get),
        }))
    }

    pub fn constant(value: f64, dtype: DType) -> Node {
        Node::leaf(Tensor::scalar(value, dtype), false)
    }

    /// A cheap handle to the data (shares storage).
    pub fn tensor(&self) -> Tensor {
        self.read().clone()
    }
    /// Borrows the data for the length of a kernel call, without cloning the handle.
    /// Inside a backward rule, a read of a value the rule saved checks its version.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, Tensor> {
        let t = self.read_unchecked();
        if CHECKING.with(Cell::get) {
            check_saved(self.id(), &t);
        }
        t
    }
    fn read_unchecked(&self) -> std::sync::RwLockReadGuard<'_, Tensor> {
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
    /// `.data = t` from Python: a leaf takes `t` as it is and may change shape or dtype
    /// (its gradient is dropped, as torch's `p.data = p.data.double()`); a computed node
    /// keeps its shape and dtype (its backward needs them), so `t` is cast.
    pub fn set_data(&self, t: Tensor) -> Result<()> {
        let (shape, dtype) = (self.shape(), self.dtype());
        let t = if self.is_leaf() {
            t
        } else {
            t.to_dtype(dtype)?
        };
        if t.dtype() != dtype {
            if self.requires_grad() && !t.dtype().is_float() {
                return Err(Error::type_(
                    "data",
                    format!("a Value that requires grad cannot hold {} data", t.dtype()),
                ));
            }
            self.set_grad(None);
        }
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
        self.take_grad_graph();
    }
    /// Drops the graph of `.grad` (see `grad_graph`), returning it.
    fn take_grad_graph(&self) -> Option<Node> {
        self.0
            .grad_graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
    /// A 2-D node whose data is a transposed row-major matrix (strides (1, rows)). Layout
    /// only, so a backward rule may ask without reading (and version-checking) the values.
    pub(crate) fn is_column_major(&self) -> bool {
        let t = self.read_unchecked();
        let l = t.layout();
        l.shape.len() == 2
            && l.shape[0] > 1
            && l.shape[1] > 1
            && l.strides[0] == 1
            && l.strides[1] == l.shape[0] as isize
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
    /// The settings of the op that made this node (empty for a leaf).
    pub fn op_attrs(&self) -> Vec<(&'static str, Attr)> {
        self.0.op.as_ref().map_or_else(Vec::new, |o| o.attrs())
    }
    pub fn op_rule(&self) -> &'static str {
        self.0.op.as_ref().map_or("", |o| o.rule())
    }
    pub fn parents(&self) -> &[Node] {
        &self.0.parents
    }
    /// Which backward pass recorded this node (order 0: the forward pass).
    pub fn made_by(&self) -> MadeBy {
        self.0.made_by
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
    /// torch's `.data`: as `detach`, but its in-place writes bypass the version counter.
    pub fn data_node(&self) -> Node {
        Node::make_leaf(self.tensor(), false, false)
    }
    /// `.grad` as a node of its own (sharing the gradient's memory).
    /// `.grad` as a node: the one recorded by `backward(create_graph=True)`, else a leaf.
    pub fn grad_node(&self) -> Option<Node> {
        let graph = self.0.grad_graph.lock().unwrap_or_else(|e| e.into_inner());
        match graph.as_ref() {
            Some(n) => Some(n.clone()),
            None => self.grad().map(|g| Node::leaf(g, false)),
        }
    }
    /// Zeros this node's own gradient in place (an optimizer's `set_to_none=False`); as
    /// torch, a gradient with a graph is detached first.
    pub fn zero_own_grad(&self) {
        self.take_grad_graph();
        let Some(g) = self.grad() else { return };
        if self.is_leaf() {
            g.fill_(0.0);
        } else {
            // An intermediate's gradient may share memory with another's: replace it.
            self.set_grad(Tensor::full(g.shape(), 0.0, g.dtype()).ok());
        }
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
        let seed = seed.map(|t| Node::leaf(t, false));
        self.backward_with(seed, &BackwardOptions::default(), None)
    }

    /// As `backward`, with torch's options; with `trace`, reports every step (explain mode).
    /// Without it, no step record is built.
    pub fn backward_with(
        &self,
        seed: Option<Node>,
        options: &BackwardOptions,
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
        let create = options.create_graph;
        let seed = match seed {
            None => Node::leaf(Tensor::full(&shape, 1.0, self.dtype())?, false),
            // Only a recorded backward can differentiate through its seed.
            Some(s) if s.shape() == shape && create => s.to_dtype(self.dtype())?,
            Some(s) if s.shape() == shape => Node::leaf(s.tensor().to_dtype(self.dtype())?, false),
            Some(s) => {
                return Err(Error::shape(
                    "backward",
                    format!(
                        "gradient has shape {} but the output has shape {}",
                        fmt_shape(&s.shape()),
                        fmt_shape(&shape)
                    ),
                ))
            }
        };
        let wanted: Option<HashSet<usize>> = match options.inputs {
            None => None,
            Some(inputs) => {
                if let Some(i) = inputs.iter().position(|x| !x.requires_grad()) {
                    return Err(Error::grad(
                        "backward",
                        format!("inputs[{i}] does not require grad, so it has no gradient"),
                    ));
                }
                Some(inputs.iter().map(Node::id).collect())
            }
        };
        let prev = set_grad_enabled(create);
        let _restore = RestoreGradMode(prev);
        let order = self.topo_order(true);
        let mut grads: IdMap<Node> = IdMap::default();
        grads.insert(self.id(), seed);
        for v in order.iter().rev() {
            let Some(g) = grads.remove(&v.id()) else {
                continue;
            };
            if v.0.op.is_some() {
                let summed = v.propagate(&g, &mut grads, trace.is_some())?;
                if let Some(t) = trace.as_mut() {
                    t(Step {
                        node: v,
                        grad: g.tensor(),
                        summed,
                    });
                }
            }
            if wanted.as_ref().is_some_and(|w| !w.contains(&v.id())) {
                continue;
            }
            if create && v.is_leaf() {
                v.accumulate_grad_graph(g)?;
                continue;
            }
            // Drop the node first: a gradient nobody else holds is kept without a copy.
            let t = g.tensor();
            drop(g);
            v.accumulate_grad(t)?;
        }
        Ok(())
    }

    /// One node's step in a backward pass: its op's rule on `g`, each parent's gradient
    /// summed back to the parent's shape (`unbroadcast`) and added into `grads`. Returns,
    /// per parent, the gradient's shape before that sum (when `shapes`) and the dims summed,
    /// for explain mode.
    #[allow(clippy::type_complexity)]
    fn propagate(
        &self,
        g: &Node,
        grads: &mut IdMap<Node>,
        shapes: bool,
    ) -> Result<Vec<Option<(Vec<usize>, Vec<usize>)>>> {
        let Some(op) = &self.0.op else {
            return Ok(Vec::new());
        };
        let _recorder = is_grad_enabled().then(|| Recorder::for_rule_of(self));
        let mut summed = Vec::new();
        for (p, gp) in self.parents().iter().zip(self.local_grads(op.as_ref(), g)?) {
            let Some(gp) = gp else {
                summed.push(None);
                continue;
            };
            let pre = if shapes {
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
        Ok(summed)
    }

    /// `torch.autograd.grad`: the gradients of `outputs`, each seeded with its `seeds` entry,
    /// for `inputs`, without touching any `.grad`. With `create_graph` the backward runs
    /// with recording on, so the gradients have graphs of their own and can be differentiated
    /// again. None for an input the outputs do not depend on.
    pub fn grad_of(
        outputs: &[Node],
        seeds: &[Node],
        inputs: &[Node],
        create_graph: bool,
    ) -> Result<Vec<Option<Node>>> {
        if outputs.is_empty() || outputs.len() != seeds.len() {
            return Err(Error::value(
                "grad",
                format!(
                    "needs one grad_output per output, got {} outputs and {} grad_outputs",
                    outputs.len(),
                    seeds.len()
                ),
            ));
        }
        if let Some(i) = inputs.iter().position(|x| !x.requires_grad()) {
            return Err(Error::grad(
                "grad",
                format!("input {i} does not require grad, so it has no gradient"),
            ));
        }
        // One root, Σ sum(output·seed), recorded whatever the grad mode: its backward hands
        // each output exactly its seed (1·seed), so the outputs share one traversal.
        let root = {
            let prev = set_grad_enabled(true);
            let built = (|| -> Result<Node> {
                let mut total: Option<Node> = None;
                for (o, s) in outputs.iter().zip(seeds) {
                    if o.shape() != s.shape() {
                        return Err(Error::shape(
                            "grad",
                            format!(
                                "grad_output of shape {} for an output of shape {}",
                                fmt_shape(&s.shape()),
                                fmt_shape(&o.shape())
                            ),
                        ));
                    }
                    if !o.requires_grad() {
                        continue;
                    }
                    let term = o.mul(s)?.sum(None, false)?;
                    total = Some(match total {
                        Some(t) => t.add(&term)?,
                        None => term,
                    });
                }
                total.ok_or_else(|| {
                    Error::grad("grad", "no output requires grad, so nothing has a gradient")
                })
            })();
            set_grad_enabled(prev);
            built?
        };
        let prev = set_grad_enabled(create_graph);
        let result = Self::grads_for(&root, inputs);
        set_grad_enabled(prev);
        result
    }

    /// The backward pass from scalar `root` (seed 1), keeping the totals that reach `inputs`.
    fn grads_for(root: &Node, inputs: &[Node]) -> Result<Vec<Option<Node>>> {
        let seed = Node::leaf(Tensor::scalar(1.0, root.dtype()), false);
        Self::grads_along(&root.topo_order(true), root, seed, inputs)
    }

    /// `torch.autograd.functional.jacobian`'s rows, here rather than in Python: d output /
    /// d input for each of `inputs`, of shape output.shape + input.shape, one backward pass
    /// per output element over one topological order. None for an input the output does not
    /// depend on; with `create_graph` the result can be differentiated again (a Hessian).
    pub fn jacobian(
        output: &Node,
        inputs: &[Node],
        create_graph: bool,
    ) -> Result<Vec<Option<Node>>> {
        if let Some(i) = inputs.iter().position(|x| !x.requires_grad()) {
            return Err(Error::grad(
                "jacobian",
                format!("input {i} does not require grad, so it has no gradient"),
            ));
        }
        if !output.requires_grad() {
            return Ok(vec![None; inputs.len()]);
        }
        let shape = output.shape();
        let n = shape.iter().product::<usize>();
        let prev = set_grad_enabled(create_graph);
        let _restore = RestoreGradMode(prev);
        let order = output.topo_order(true);
        let mut rows: Vec<Vec<Option<Node>>> = vec![Vec::with_capacity(n); inputs.len()];
        for k in 0..n {
            let mut one_hot = vec![0.0f64; n];
            one_hot[k] = 1.0;
            let seed = Tensor::from_vec(one_hot, &shape)?.to_dtype(output.dtype())?;
            let found = Self::grads_along(&order, output, Node::leaf(seed, false), inputs)?;
            for (r, g) in rows.iter_mut().zip(found) {
                r.push(g);
            }
        }
        inputs
            .iter()
            .zip(rows)
            .map(|(x, r)| {
                if r.iter().all(Option::is_none) {
                    return Ok(None);
                }
                let zeros = || Tensor::zeros(&x.shape(), x.dtype()).map(|t| Node::leaf(t, false));
                let r = r
                    .into_iter()
                    .map(|g| g.map_or_else(zeros, Ok))
                    .collect::<Result<Vec<Node>>>()?;
                let full: Vec<usize> = shape.iter().chain(x.shape().iter()).copied().collect();
                let stacked = if r.is_empty() {
                    Node::leaf(Tensor::zeros(&full, x.dtype())?, false)
                } else {
                    Node::stack(&r, 0)?.reshape(&full)?
                };
                Ok(Some(stacked))
            })
            .collect()
    }

    /// The backward pass over `order` (root's topological order) from `root` seeded with
    /// `seed`, keeping the totals that reach `inputs`.
    fn grads_along(
        order: &[Node],
        root: &Node,
        seed: Node,
        inputs: &[Node],
    ) -> Result<Vec<Option<Node>>> {
        let mut grads: IdMap<Node> = IdMap::default();
        grads.insert(root.id(), seed);
        let wanted: HashSet<usize> = inputs.iter().map(Node::id).collect();
        let mut found: IdMap<Node> = IdMap::default();
        for v in order.iter().rev() {
            let Some(g) = grads.remove(&v.id()) else {
                continue;
            };
            if wanted.contains(&v.id()) {
                found.insert(v.id(), g.clone());
            }
            v.propagate(&g, &mut grads, false)?;
        }
        Ok(inputs.iter().map(|x| found.get(&x.id()).cloned()).collect())
    }

    /// micrograd's `_backward()`: this node's local chain rule once, from its own `.grad`
    /// into its parents' `.grad` (added, as micrograd's `+=`). A leaf, or a node whose
    /// gradient is not set, does nothing.
    pub fn backward_step(&self) -> Result<()> {
        let (Some(op), Some(g)) = (&self.0.op, self.grad()) else {
            return Ok(());
        };
        let _guard = NoGradGuard::new();
        let grads = self.local_grads(op.as_ref(), &Node::leaf(g, false))?;
        for (p, gp) in self.parents().iter().zip(grads) {
            if let Some(gp) = gp {
                let (gp, _) = unbroadcast(gp, p)?;
                p.accumulate_grad(gp.tensor())?;
            }
        }
        Ok(())
    }

    /// This node's backward rule on `g`: one gradient per parent, None where the parent
    /// does not require grad.
    fn local_grads(&self, op: &dyn Op, g: &Node) -> Result<Vec<Option<Node>>> {
        let needs: Vec<bool> = self.parents().iter().map(|p| p.requires_grad()).collect();
        let ctx = Ctx {
            parents: self.parents(),
            out: self,
            needs: &needs,
        };
        self.check_not_stale()?;
        let grads = with_saved(self, || op.backward(&ctx, g))?;
        Ok(grads
            .into_iter()
            .zip(needs)
            .map(|(gp, need)| gp.filter(|_| need))
            .collect())
    }

    /// Fails if a parent was written in place through a view after it had been
    /// recorded and before this node used it: its graph would miss that write.
    fn check_not_stale(&self) -> Result<()> {
        // `x[i] += v` writes through a view of x, then hands the result back to x's graph
        // with an `index_put` of it: that is the one use of the stale x that is right.
        let fixed = |p: &Node| {
            let ps = self.parents();
            self.op_name() == "index_put"
                && p.ptr_eq(&ps[0])
                && ps.len() == 2
                && ps[1].0.seq != 0
                && p.0.fixed_by.load(Ordering::Relaxed) == ps[1].0.seq
        };
        // A view of a stale node is as stale as it (it shows the write, its graph does not).
        let stale = |p: &Node| {
            let mut v = p;
            loop {
                if v.0.stale_at.load(Ordering::Relaxed) <= self.0.seq {
                    return true;
                }
                match v.base() {
                    Some(b) => v = b,
                    None => return false,
                }
            }
        };
        for p in self.parents() {
            if !fixed(p) && stale(p) {
                return Err(Error::grad(
                    "backward",
                    format!(
                        "'{}' used a Value of shape {} after it (or the Value it views) was \
                         modified in place through another view, so its gradient would miss \
                         that change. Write through indexing on the Value itself (x[i] += v), \
                         take views again after the write, or modify a clone()",
                        self.op_name(),
                        fmt_shape(&p.shape())
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The node whose data `self` views, if `self` is a view (made by a view op, and
    /// sharing its input's buffer). An in-place result shares its input's buffer too, but
    /// it replaces that input rather than viewing it.
    pub(crate) fn base(&self) -> Option<&Node> {
        if !self.0.op.as_ref().is_some_and(|o| o.is_view()) {
            return None;
        }
        let p = self.parents().first()?;
        let shared = self
            .read_unchecked()
            .storage()
            .same_buffer(p.read_unchecked().storage());
        shared.then_some(p)
    }

    /// `self ← f(self)` in place, as torch's `add_` and `x[i] = v`: `f` computes the
    /// result from `self` (or from a copy of it when `reads_self`, so that a backward
    /// rule reading the old value still finds it), the result is written into self's
    /// memory, and the node to rebind the Value to is returned: `self` itself when
    /// nothing was recorded, else the recorded result, which now owns self's memory.
    /// `other_grad`: another input requires grad.
    pub fn inplace(
        &self,
        op: &'static str,
        other_grad: bool,
        reads_self: bool,
        f: impl FnOnce(&Node) -> Result<Node>,
    ) -> Result<Node> {
        let recording = is_grad_enabled() && (self.requires_grad() || other_grad);
        if recording {
            self.check_inplace(op)?;
        }
        let src = if recording && reads_self {
            self.clone_data()?
        } else {
            self.clone()
        };
        let r = f(&src)?;
        let t = self.tensor();
        self.write(op, &t, &r.tensor())?;
        if !(r.requires_grad() && r.0.op.is_some()) {
            if recording && self.requires_grad() {
                // A constant overwrote a Value in the graph: nothing flows back through it
                // any more, so it becomes a leaf, not a node with a stale graph. (The
                // Python methods select the constant with `where`, so they keep a graph.)
                self.mark_stale(0);
                return Ok(Node::leaf(t, false));
            }
            return Ok(self.clone());
        }
        // `r` keeps its own buffer (a backward rule reading its output finds it unchanged);
        // a node of its own holds the written memory.
        let out = Node::written(&r, t, op);
        self.mark_stale(out.0.seq);
        Ok(out)
    }

    /// Writes `value` (same shape, a dtype that casts to self's) into `t`, self's data.
    pub(crate) fn write(&self, op: &'static str, t: &Tensor, value: &Tensor) -> Result<()> {
        check_no_overlap(op, t)?;
        if value.shape() != t.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "the result has shape {} but the Value written in place has shape {}: \
                     an in-place op cannot change its shape",
                    fmt_shape(value.shape()),
                    fmt_shape(t.shape())
                ),
            ));
        }
        if !value.dtype().casts_in_place_to(t.dtype()) {
            return Err(Error::type_(
                op,
                format!(
                    "the result type {} cannot be cast to the Value's dtype {} in place",
                    value.dtype(),
                    t.dtype()
                ),
            ));
        }
        t.assign(value)?;
        self.note_write(t);
        Ok(())
    }

    /// Counts a write into `t`, this node's data, unless the node is `.data`'s.
    pub(crate) fn note_write(&self, t: &Tensor) {
        if self.0.tracked {
            bump_version(t);
        }
    }

    /// torch's rules for recorded in-place writes.
    pub(crate) fn check_inplace(&self, op: &'static str) -> Result<()> {
        if self.is_leaf() && self.requires_grad() {
            return Err(Error::grad(
                op,
                "a leaf Value that requires grad cannot be modified in place while grad \
                 mode is on: do it under no_grad() (as an optimizer step does), or on .data",
            ));
        }
        let mut v = self;
        while let Some(b) = v.base() {
            v = b;
        }
        if !v.ptr_eq(self) && v.is_leaf() && v.requires_grad() {
            return Err(Error::grad(
                op,
                "a view of a leaf Value that requires grad cannot be modified in place while \
                 grad mode is on: do it under no_grad(), or on .data",
            ));
        }
        Ok(())
    }

    /// After a recorded write into `self`: `self` and every node it views no longer
    /// follow their data, from the next recorded node on. `fixer` is the recorded node
    /// (by `seq`) that carries the write: the Values viewed hand it back with an
    /// `index_put` of it (`Value._hand_back`), the one use of them that stays right. `self`
    /// keeps a fixer it already has (the write handed back to it from a view of it).
    pub(crate) fn mark_stale(&self, fixer: u64) {
        let now = SEQ.load(Ordering::Relaxed) + 1;
        self.0.stale_at.fetch_min(now, Ordering::Relaxed);
        let _ = self
            .0
            .fixed_by
            .compare_exchange(0, fixer, Ordering::Relaxed, Ordering::Relaxed);
        let mut v = self;
        while let Some(b) = v.base() {
            b.0.stale_at.fetch_min(now, Ordering::Relaxed);
            b.0.fixed_by.store(fixer, Ordering::Relaxed);
            v = b;
        }
    }

    /// Seq of this node (0 for leaves), the handle `mark_stale` takes.
    pub(crate) fn seq(&self) -> u64 {
        self.0.seq
    }

    /// Adds `g`, recorded, into `.grad` (`backward(create_graph=True)`): torch's
    /// out-of-place `grad = grad + g`, so the old gradient's graph stays as it was.
    fn accumulate_grad_graph(&self, g: Node) -> Result<()> {
        let total = match self.grad_node() {
            Some(old) if old.shape() == g.shape() => {
                let made = MadeBy {
                    order: g.made_by().order.max(old.made_by().order).max(1),
                    op: ACCUMULATION,
                };
                let _recorder = Recorder(MADE_BY.with(|m| m.replace(made)));
                old.add(&g)?
            }
            _ => g,
        };
        if !total.requires_grad() {
            self.set_grad(None);
            return self.accumulate_grad(total.tensor());
        }
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = Some(total.tensor());
        *self.0.grad_graph.lock().unwrap_or_else(|e| e.into_inner()) = Some(total);
        Ok(())
    }

    fn accumulate_grad(&self, g: Tensor) -> Result<()> {
        if self.take_grad_graph().is_some() {
            // The old gradient belongs to a recorded graph: add out of place, as torch.
            let old = self.grad();
            let total = match old {
                Some(old) if old.shape() == g.shape() => old.binary(&g, Binary::Add)?,
                _ => g,
            };
            self.set_grad(None);
            return self.accumulate_grad(total);
        }
        // A leaf's gradient is added to in place, as torch's AccumulateGrad, so it owns its
        // buffer. An intermediate's is replaced out of place, as torch's retained grads, so
        // it keeps the gradient it was given (often shared with a parent's) without a copy.
        let leaf = self.is_leaf();
        let mut slot = self.0.grad.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(existing) if existing.shape() == g.shape() && leaf => {
                existing.add_assign(&g)?;
                // `.grad` is a Value over this memory: a graph that read it must know.
                bump_version(existing);
            }
            Some(existing) if existing.shape() == g.shape() => {
                *slot = Some(existing.binary(&g, Binary::Add)?);
            }
            _ => {
                let owned = g.storage().is_unique()
                    && g.is_contiguous()
                    && g.layout().offset == 0
                    && g.storage().len() == g.numel();
                *slot = Some(if owned || !leaf { g } else { g.copy()? });
            }
        }
        Ok(())
    }

    /// Zeros, in place, the gradient of every node behind `self`.
    pub fn zero_grad_graph(&self) {
        for v in self.topo_order(false) {
            v.zero_own_grad();
        }
    }
}

/// Refuses to write into a view whose elements share memory (an expanded one), as torch.
pub(crate) fn check_no_overlap(op: &'static str, t: &Tensor) -> Result<()> {
    let l = t.layout();
    if l.shape
        .iter()
        .zip(l.strides.iter())
        .any(|(&n, &s)| n > 1 && s == 0)
    {
        return Err(Error::value(
            op,
            format!(
                "more than one element of the written Value (shape {}) refers to one memory \
                 location (it is expanded); clone() it before writing",
                fmt_shape(t.shape())
            ),
        ));
    }
    Ok(())
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
    fn a_recorded_backward_marks_the_nodes_it_makes() {
        let x = v(&[3.], &[]);
        let y = x.mul(&x).unwrap().mul(&x).unwrap();
        assert_eq!(y.made_by(), MadeBy::default());
        let grads = Node::grad_of(
            std::slice::from_ref(&y),
            &[Node::constant(1.0, DType::F64)],
            std::slice::from_ref(&x),
            true,
        );
        let g = grads.unwrap().pop().flatten().unwrap();
        assert_eq!(
            g.made_by(),
            MadeBy {
                order: 1,
                op: "mul"
            }
        );
        let gg = Node::grad_of(
            std::slice::from_ref(&g),
            &[Node::constant(1.0, DType::F64)],
            std::slice::from_ref(&x),
            true,
        );
        let gg = gg.unwrap().pop().flatten().unwrap();
        let orders: HashSet<u8> = gg
            .topo_order(false)
            .iter()
            .map(|n| n.made_by().order)
            .collect();
        assert_eq!(orders, HashSet::from([0, 1, 2]));
        // d²(x³)/dx² = 6x
        assert_eq!(gg.tensor().to_vec_f64().unwrap(), vec![18.]);
        // Outside a backward pass, recording is back to forward ops.
        assert_eq!(x.mul(&x).unwrap().made_by(), MadeBy::default());
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
    fn inplace_write_is_recorded_and_keeps_the_memory() {
        let a = v(&[1., 2.], &[2]);
        let x = a.mul(&Node::constant(3.0, DType::F64)).unwrap();
        let before = x.tensor().storage().ptr();
        let y = x
            .inplace("add_", false, false, |s| {
                s.add(&Node::constant(1.0, DType::F64))
            })
            .unwrap();
        assert_eq!(y.tensor().storage().ptr(), before);
        assert_eq!(x.tensor().to_vec_f64().unwrap(), vec![4., 7.]);
        y.backward(None).unwrap();
        assert_eq!(a.grad().unwrap().to_vec_f64().unwrap(), vec![3., 3.]);
    }

    #[test]
    fn a_saved_output_overwritten_fails_the_backward() {
        let a = v(&[1., 2.], &[2]);
        let x = a.unary(crate::Unary::Tanh).unwrap();
        let y = x
            .inplace("add_", false, false, |s| {
                s.add(&Node::constant(1.0, DType::F64))
            })
            .unwrap();
        let e = y.backward(None).unwrap_err();
        assert!(
            e.to_string().contains("modified by an in-place operation"),
            "{e}"
        );
    }

    #[test]
    fn a_leaf_that_requires_grad_refuses_a_recorded_write() {
        let a = v(&[1.], &[1]);
        let e = a.inplace("add_", false, false, |s| {
            s.add(&Node::constant(1.0, DType::F64))
        });
        assert!(matches!(e, Err(Error::Grad { .. })));
        let _guard = NoGradGuard::new();
        let same = a
            .inplace("add_", false, false, |s| {
                s.add(&Node::constant(1.0, DType::F64))
            })
            .unwrap();
        assert!(same.ptr_eq(&a));
        assert_eq!(a.tensor().version(), 1);
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
