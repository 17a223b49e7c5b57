//! Reference-counted element buffers. Views share one buffer; only `contiguous()` and
//! kernels allocate.
use std::any::Any;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dtype::{Bool8, DType, Scalar};
use crate::error::{Error, Result};

/// A fixed-size buffer whose elements may be written through shared handles.
///
/// numpy views (`Value.data`, `Value.grad`) and in-place updates (optimizer steps,
/// gradient accumulation) write into a buffer that other handles also see, exactly as
/// numpy and PyTorch tensors alias memory. The memory is either a Vec that is never
/// resized, or foreign memory (a numpy array) kept alive by `owner`; either way the
/// pointer stays valid for the buffer's lifetime.
pub struct Buffer<T> {
    ptr: *mut T,
    len: usize,
    /// torch's version counter: bumped by every in-place write that autograd must know
    /// about, so a backward rule can tell that a value it reads has changed.
    version: AtomicU64,
    _vec: UnsafeCell<Vec<T>>,
    _owner: Option<Box<dyn Any + Send + Sync>>,
}

// SAFETY: the memory is never reallocated; element writes race only if the user mutates
// one tensor from two threads at once, which the documentation rules out (as PyTorch does).
unsafe impl<T: Send> Sync for Buffer<T> {}
// SAFETY: the raw pointer is into memory owned by `_vec` or `_owner`, both Send.
unsafe impl<T: Send> Send for Buffer<T> {}

impl<T: Scalar> Buffer<T> {
    pub fn new(mut v: Vec<T>) -> Self {
        Buffer {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            version: AtomicU64::new(0),
            _vec: UnsafeCell::new(v),
            _owner: None,
        }
    }

    /// Wraps `len` elements at `ptr` that `owner` keeps alive (no copy).
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` aligned elements for as long as
    /// `owner` lives, and the memory must not be freed or moved by anyone else meanwhile.
    pub unsafe fn foreign(ptr: *mut T, len: usize, owner: Box<dyn Any + Send + Sync>) -> Self {
        Buffer {
            ptr,
            len,
            version: AtomicU64::new(0),
            _vec: UnsafeCell::new(Vec::new()),
            _owner: Some(owner),
        }
    }

    pub fn as_slice(&self) -> &[T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: see the type's comment.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    /// A mutable slice for in-place kernels.
    ///
    /// # Safety
    /// The caller must ensure no other slice of this buffer is alive during the write,
    /// other than numpy views that the Python user does not touch concurrently.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice(&self) -> &mut [T] {
        if self.len == 0 {
            return &mut [];
        }
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
    pub fn as_ptr(&self) -> *const T {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Allocates `n` elements, turning an impossible request into an error instead of an abort.
pub fn try_alloc<T: Scalar>(op: &'static str, n: usize, fill: T) -> Result<Vec<T>> {
    // SAFETY: `Scalar` is sealed to the five element types (a byte, i32, i64, f32, f64),
    // plain data without padding, so its bytes can be read.
    let zero_bits = unsafe {
        std::slice::from_raw_parts((&fill as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
    .iter()
    .all(|&b| b == 0);
    if zero_bits && n > 0 {
        return try_zeroed(op, n);
    }
    let mut v = try_with_capacity(op, n)?;
    v.resize(n, fill);
    Ok(v)
}

/// `n` zeros straight from the allocator (calloc): the OS hands out zeroed pages lazily, so
/// a large zero tensor costs no pass over its memory until it is written.
fn try_zeroed<T: Scalar>(op: &'static str, n: usize) -> Result<Vec<T>> {
    let bytes = (n as u128) * (std::mem::size_of::<T>() as u128);
    let layout = std::alloc::Layout::array::<T>(n).map_err(|_| Error::Alloc { op, bytes })?;
    // SAFETY: the layout has a nonzero size (n > 0 and no element type is zero-sized); the
    // memory is zeroed, which is a valid value of every element type; the Vec takes it over
    // with the same allocator, layout, length and capacity.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout).cast::<T>();
        if ptr.is_null() {
            return Err(Error::Alloc { op, bytes });
        }
        Ok(Vec::from_raw_parts(ptr, n, n))
    }
}

/// An empty Vec with room for `n` elements, for kernels that fill it with `extend`.
pub fn try_with_capacity<T>(op: &'static str, n: usize) -> Result<Vec<T>> {
    let bytes = (n as u128) * (std::mem::size_of::<T>() as u128);
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::Alloc { op, bytes })?;
    Ok(v)
}

/// Runs `$body` once per storage variant, with `$T` the element type and `$b` the buffer.
macro_rules! each_storage {
    ($storage:expr, $T:ident, $b:ident => $body:expr) => {
        match $storage {
            $crate::storage::Storage::Bool($b) => {
                #[allow(dead_code)]
                type $T = $crate::dtype::Bool8;
                $body
            }
            $crate::storage::Storage::I32($b) => {
                #[allow(dead_code)]
                type $T = i32;
                $body
            }
            $crate::storage::Storage::I64($b) => {
                #[allow(dead_code)]
                type $T = i64;
                $body
            }
            $crate::storage::Storage::F32($b) => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::storage::Storage::F64($b) => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use each_storage;

#[derive(Clone)]
pub enum Storage {
    Bool(Arc<Buffer<Bool8>>),
    I32(Arc<Buffer<i32>>),
    I64(Arc<Buffer<i64>>),
    F32(Arc<Buffer<f32>>),
    F64(Arc<Buffer<f64>>),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        each_storage!(self, T, _b => T::DTYPE)
    }
    pub fn len(&self) -> usize {
        each_storage!(self, T, b => b.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The address of the first element; identifies the buffer for aliasing checks.
    pub fn ptr(&self) -> usize {
        each_storage!(self, T, b => b.as_ptr() as usize)
    }
    /// True when no other tensor handle shares this buffer.
    pub fn is_unique(&self) -> bool {
        each_storage!(self, T, b => Arc::strong_count(b) == 1)
    }
    pub fn version(&self) -> u64 {
        each_storage!(self, T, b => b.version.load(Ordering::Relaxed))
    }
    pub fn set_version(&self, v: u64) {
        each_storage!(self, T, b => b.version.store(v, Ordering::Relaxed))
    }
    /// Records one in-place write.
    pub fn bump_version(&self) {
        each_storage!(self, T, b => {
            b.version.fetch_add(1, Ordering::Relaxed);
        })
    }
    pub fn same_buffer(&self, other: &Storage) -> bool {
        each_storage!(self, T, b => T::unwrap(other).is_some_and(|o| Arc::ptr_eq(b, o)))
    }
}

/// Element types that live in a `Storage` variant.
pub trait Element: Scalar {
    fn wrap(b: Arc<Buffer<Self>>) -> Storage;
    fn unwrap(s: &Storage) -> Option<&Arc<Buffer<Self>>>;
}

macro_rules! impl_element {
    ($t:ty, $v:ident) => {
        impl Element for $t {
            fn wrap(b: Arc<Buffer<$t>>) -> Storage {
                Storage::$v(b)
            }
            fn unwrap(s: &Storage) -> Option<&Arc<Buffer<$t>>> {
                match s {
                    Storage::$v(b) => Some(b),
                    _ => None,
                }
            }
        }
    };
}

impl_element!(Bool8, Bool);
impl_element!(i32, I32);
impl_element!(i64, I64);
impl_element!(f32, F32);
impl_element!(f64, F64);
