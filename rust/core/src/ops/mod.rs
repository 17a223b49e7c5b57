//! Every differentiable op: its forward (a kernel call on `Tensor`) and its backward
//! (written with `Node` ops) side by side. To add an op, add it to one of these files.
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;
