//! MikaGrad's core: strided bool, int32, int64, float32 and float64 tensors, their kernels,
//! and reverse-mode autograd. No Python here; `rust/python` binds it.
//!
//! Layers, bottom up: `dtype` (element types, promotion) → `storage` (shared buffers) →
//! `layout` (views) → `tensor` (construction, casts) → `node` (graph and backward) → `ops`
//! (each op family: kernels, forward and backward together).
pub mod creation;
pub mod dtype;
pub mod error;
pub mod layout;
pub(crate) mod math;
pub mod node;
pub mod ops;
pub mod optim;
pub mod random;
pub mod storage;
pub mod tensor;

pub use dtype::DType;
pub use dtype::{default_float, set_default_float};
pub use error::{Error, Result};
pub use node::{
    is_grad_enabled, live_nodes, set_grad_enabled, Attr, BackwardOptions, MadeBy, NoGradGuard,
    Node, Step, ACCUMULATION,
};
pub use ops::conv::ConvSpec;
pub use ops::elementwise::{Binary, Number, Unary};
pub use ops::index::Index;
pub use ops::pool::Window;
pub use ops::reduce::Reduce;
pub use ops::shape::ViewStep;
pub use tensor::Tensor;

use std::sync::atomic::{AtomicUsize, Ordering};

static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Threads a large kernel may use (0: all cores), as `torch.set_num_threads`.
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// The thread budget of one kernel call; 0 means every core.
pub fn num_threads() -> usize {
    NUM_THREADS.load(Ordering::Relaxed)
}

/// The threads one kernel call may split over: the budget, or rayon's whole pool.
pub fn thread_budget() -> usize {
    match num_threads() {
        0 => rayon::current_num_threads(),
        n => n,
    }
}
