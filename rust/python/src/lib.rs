//! `mikagrad._core`: converts between Python and the core, and nothing else.
use mikagrad_core as core;
use mikagrad_core::dtype::Bool8;
use mikagrad_core::storage::Storage;
use mikagrad_core::{creation, optim, random};
use mikagrad_core::{BackwardOptions, Binary, DType, Error, Index, Number, Tensor, Unary};
use numpy::npyffi::{self, npy_intp, NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE, PY_ARRAY_API};
use numpy::{
    Element, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyIndexError, PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyEllipsis, PyFloat, PyInt, PyList, PyRange, PySlice, PyTuple};

create_exception!(
    mikagrad._core,
    ShapeError,
    PyValueError,
    "Shapes that do not fit an op."
);
create_exception!(
    mikagrad._core,
    GradError,
    PyRuntimeError,
    "Autograd misuse, such as backward on a Value without grad."
);

/// Maps each core error to its Python class; the message already names op and shapes.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Shape { .. } => ShapeError::new_err(msg),
        Error::Index { .. } => PyIndexError::new_err(msg),
        Error::Value { .. } => PyValueError::new_err(msg),
        Error::Type { .. } => PyTypeError::new_err(msg),
        Error::Alloc { .. } => PyMemoryError::new_err(msg),
        Error::Grad { .. } => GradError::new_err(msg),
    }
}

trait OrPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> OrPy<T> for mikagrad_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

fn parse_dtype(name: &str) -> PyResult<DType> {
    DType::from_name(name).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "dtype must be bool, int32, int64, float32 or float64, got {name}"
        ))
    })
}

/// Runs `f` with the GIL released, so other Python threads go on meanwhile. The one place
/// that releases it: long kernels (backward, large products) call this.
fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce() -> T + Send) -> T {
    py.detach(f)
}

/// Keeps a buffer alive for the numpy arrays that view it.
#[pyclass(frozen, module = "mikagrad._core")]
struct BufferOwner {
    _storage: Storage,
}

/// A numpy array over the tensor's own memory (no copy).
fn numpy_view<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    fn build<'py, T: Element>(
        py: Python<'py>,
        t: &Tensor,
        ptr: *const T,
    ) -> PyResult<Bound<'py, PyAny>> {
        let l = t.layout();
        let size = std::mem::size_of::<T>() as isize;
        let mut dims: Vec<npy_intp> = l.shape.iter().map(|&d| d as npy_intp).collect();
        let mut strides: Vec<npy_intp> =
            l.strides.iter().map(|&s| (s * size) as npy_intp).collect();
        let owner = Bound::new(
            py,
            BufferOwner {
                _storage: t.storage().clone(),
            },
        )?;
        // SAFETY: `ptr + offset` and the strides stay inside the buffer (the layout's
        // invariant); the owner set as base keeps the buffer alive as long as the array.
        unsafe {
            let data = ptr.add(if t.numel() == 0 { 0 } else { l.offset });
            let arr = PY_ARRAY_API.PyArray_NewFromDescr(
                py,
                npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
                T::get_dtype(py).into_dtype_ptr(),
                dims.len() as i32,
                dims.as_mut_ptr(),
                strides.as_mut_ptr(),
                data as *mut std::ffi::c_void,
                NPY_ARRAY_WRITEABLE,
                std::ptr::null_mut(),
            );
            if arr.is_null() {
                return Err(PyErr::fetch(py));
            }
            let arr = Bound::from_owned_ptr(py, arr);
            if PY_ARRAY_API.PyArray_SetBaseObject(
                py,
                arr.as_ptr() as *mut npyffi::PyArrayObject,
                owner.into_ptr(),
            ) != 0
            {
                return Err(PyErr::fetch(py));
            }
            Ok(arr)
        }
    }
    match t.storage() {
        // numpy reads the bytes as its bool dtype; Rust never reads them as `bool`.
        Storage::Bool(b) => build::<bool>(py, t, b.as_ptr() as *const bool),
        Storage::I32(b) => build::<i32>(py, t, b.as_ptr()),
        Storage::I64(b) => build::<i64>(py, t, b.as_ptr()),
        Storage::F32(b) => build::<f32>(py, t, b.as_ptr()),
        Storage::F64(b) => build::<f64>(py, t, b.as_ptr()),
    }
}

/// True when `a` is exactly the numpy view `numpy_view` would make of `t`.
fn is_view_of(a: &Bound<'_, PyUntypedArray>, t: &Tensor) -> bool {
    let size = t.dtype().size() as isize;
    let l = t.layout();
    // SAFETY: reading the data pointer field of a live numpy array object.
    let data = unsafe { (*a.as_array_ptr()).fields.data as usize };
    let ours = t.storage().ptr()
        + if t.numel() == 0 {
            0
        } else {
            l.offset * size as usize
        };
    data == ours
        && a.shape() == l.shape.as_slice()
        && a.strides()
            .iter()
            .zip(&l.strides)
            .all(|(&x, &s)| x == s * size)
        && a.dtype().itemsize() == size as usize
}

/// A tensor over a numpy array's own memory, when it is C-contiguous, aligned and writeable
/// bool, int32, int64, float32 or float64 (else None: the caller copies).
fn share_numpy(obj: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
    macro_rules! try_share {
        ($T:ty) => {
            try_share!($T, $T)
        };
        ($T:ty, $E:ty) => {
            if let Ok(a) = obj.cast::<PyArrayDyn<$T>>() {
                // SAFETY: reading the flags field of a live numpy array object.
                let flags = unsafe { (*a.as_array_ptr()).fields.flags };
                let usable = flags & NPY_ARRAY_WRITEABLE != 0 && flags & NPY_ARRAY_ALIGNED != 0;
                if !usable || !a.is_c_contiguous() {
                    return Ok(None);
                }
                let shape = a.shape().to_vec();
                let owner: Py<PyAny> = a.clone().into_any().unbind();
                // SAFETY: the array object (kept in the buffer as its owner) keeps its memory
                // alive and in place; numpy cannot resize an array that is referenced.
                let ptr = a.data() as *mut $E;
                let t = unsafe { Tensor::from_foreign(ptr, &shape, Box::new(owner)) };
                return t.py().map(Some);
            }
        };
    }
    try_share!(f64);
    try_share!(f32);
    try_share!(i64);
    try_share!(i32);
    // A numpy bool is one byte, as `Bool8` (which reads any nonzero byte as true).
    try_share!(bool, Bool8);
    Ok(None)
}

/// Copies a bool, int32, int64, float32 or float64 numpy array into a new tensor.
fn tensor_from_numpy(obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    macro_rules! try_copy {
        ($T:ty, $E:ty, $conv:expr) => {
            if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<$T>>() {
                // as_slice also accepts Fortran order, so check for C order first.
                let v: Vec<$E> = match a.as_slice() {
                    Ok(s) if a.is_c_contiguous() => s.iter().map($conv).collect(),
                    _ => a.as_array().iter().map($conv).collect(),
                };
                return Tensor::from_vec(v, a.shape()).py();
            }
        };
    }
    try_copy!(f64, f64, |&x| x);
    try_copy!(f32, f32, |&x| x);
    try_copy!(i64, i64, |&x| x);
    try_copy!(i32, i32, |&x| x);
    if obj.cast::<PyArrayDyn<bool>>().is_ok() {
        // Read as bytes: numpy bool memory may hold any byte, and a Rust `bool` other than
        // 0 or 1 is undefined.
        let bytes = obj.call_method1("view", ("uint8",))?;
        let a = bytes.extract::<PyReadonlyArrayDyn<u8>>()?;
        let v: Vec<Bool8> = a.as_array().iter().map(|&x| Bool8::new(x != 0)).collect();
        return Tensor::from_vec(v, a.shape()).py();
    }
    Err(PyTypeError::new_err(format!(
        "expected a bool, int32, int64, float32 or float64 numpy array, got {}",
        obj.get_type().name()?
    )))
}

/// The Python face of a graph node (`mikagrad._core.Node`); `Value` holds one as `_node`.
#[pyclass(frozen, module = "mikagrad._core")]
struct Node {
    node: core::Node,
}

/// A convolution's settings from per-dim lists (one or two spatial dims).
fn conv_spec(
    stride: &[usize],
    pad_lo: &[usize],
    pad_hi: &[usize],
    dilation: &[usize],
    groups: usize,
) -> PyResult<core::ConvSpec> {
    let op = if stride.len() == 1 {
        "conv1d"
    } else {
        "conv2d"
    };
    core::ConvSpec::new(op, stride, pad_lo, pad_hi, dilation, groups).py()
}

/// Pooling windows from per-dim lists of one length.
fn windows(
    kernel: &[usize],
    stride: &[usize],
    padding: &[usize],
    dilation: &[usize],
    ceil_mode: bool,
) -> PyResult<Vec<core::Window>> {
    let n = kernel.len();
    if [stride.len(), padding.len(), dilation.len()] != [n; 3] {
        return Err(PyValueError::new_err(
            "pool: kernel_size, stride, padding and dilation need one entry per spatial dim",
        ));
    }
    Ok((0..n)
        .map(|d| core::Window {
            kernel: kernel[d],
            stride: stride[d],
            padding: padding[d],
            dilation: dilation[d],
            ceil_mode,
        })
        .collect())
}

fn node(node: core::Node) -> Node {
    Node { node }
}

/// An operand of a binary op: another Value's node, or a Python number.
enum Operand {
    Node(core::Node),
    Number(Number),
}

fn operand(obj: &Bound<'_, PyAny>) -> PyResult<Operand> {
    if let Ok(n) = obj.cast::<Node>() {
        return Ok(Operand::Node(n.get().node.clone()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Operand::Number(Number::Bool(obj.extract()?)));
    }
    if obj.is_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(i) => Ok(Operand::Number(Number::Int(i))),
            Err(_) => Err(PyValueError::new_err(format!(
                "integer {obj} does not fit in int64"
            ))),
        };
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Operand::Number(Number::Float(obj.extract()?)));
    }
    if let Ok(n) = obj.getattr("_node") {
        if let Ok(n) = n.cast::<Node>() {
            return Ok(Operand::Node(n.get().node.clone()));
        }
    }
    Err(PyTypeError::new_err(format!(
        "unsupported operand type {} for a Value",
        obj.get_type().name()?
    )))
}

/// The operand as a node; a number becomes a constant in `like`'s dtype.
fn operand_node(obj: &Bound<'_, PyAny>, like: &core::Node) -> PyResult<core::Node> {
    match operand(obj)? {
        Operand::Node(v) => Ok(v),
        Operand::Number(n) => Ok(core::Node::leaf(
            n.tensor("operand", like.dtype()).py()?,
            false,
        )),
    }
}

/// The tensor of a Value (or its node), if `obj` is one.
fn value_tensor(obj: &Bound<'_, PyAny>) -> Option<Tensor> {
    if let Ok(n) = obj.cast::<Node>() {
        return Some(n.get().node.tensor());
    }
    let n = obj.getattr("_node").ok()?;
    n.cast::<Node>().ok().map(|n| n.get().node.tensor())
}

/// A Python index (one item or a tuple of them) as the core's items.
fn index_items(key: &Bound<'_, PyAny>) -> PyResult<Vec<Index>> {
    match key.cast::<PyTuple>() {
        Ok(t) => t.iter().map(|it| index_item(&it)).collect(),
        Err(_) => Ok(vec![index_item(key)?]),
    }
}

/// The in-place methods by name, for error messages (the core's op names are static).
const INPLACE_OPS: &[&str] = &[
    "add_",
    "sub_",
    "mul_",
    "div_",
    "pow_",
    "neg_",
    "exp_",
    "log_",
    "tanh_",
    "sigmoid_",
    "relu_",
    "sqrt_",
    "abs_",
    "clamp_",
    "zero_",
    "fill_",
    "copy_",
    "masked_fill_",
];

/// One item of a Python index, handed to the core as it is; the core resolves slices,
/// ellipsis and arrays against the dims.
fn index_item(it: &Bound<'_, PyAny>) -> PyResult<Index> {
    if it.is_none() {
        return Ok(Index::NewAxis);
    }
    if it.is_instance_of::<PyEllipsis>() {
        return Ok(Index::Ellipsis);
    }
    if it.is_instance_of::<PyBool>() {
        let b = Bool8::new(it.extract()?);
        return Ok(Index::Tensor(Tensor::from_vec(vec![b], &[]).py()?));
    }
    if it.is_instance_of::<PyInt>() {
        return it
            .extract::<i64>()
            .map(Index::Int)
            .map_err(|_| PyIndexError::new_err(format!("index: integer index {it} is too large")));
    }
    if let Ok(s) = it.cast::<PySlice>() {
        return Ok(Index::Slice {
            start: slice_bound(&s.getattr("start")?)?,
            stop: slice_bound(&s.getattr("stop")?)?,
            step: slice_bound(&s.getattr("step")?)?,
        });
    }
    if let Some(t) = value_tensor(it) {
        return Ok(Index::Tensor(t));
    }
    if it.is_instance_of::<PyList>()
        || it.is_instance_of::<PyRange>()
        || it.is_instance_of::<PyUntypedArray>()
        || it.hasattr("dtype")?
    {
        // Lists, arrays and numpy scalars (np.int64(2), np.bool_(True)).
        return index_array("index", it).map(Index::Tensor);
    }
    Err(PyTypeError::new_err(format!(
        "index: unsupported index type {}",
        it.get_type().name()?
    )))
}

/// A slice bound as an i64; ints past int64 clamp, which `slice.indices` would do too.
fn slice_bound(v: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(i) = v.extract::<i64>() {
        return Ok(Some(i));
    }
    match v.call_method0("__index__") {
        Ok(big) => Ok(Some(if big.gt(0)? { i64::MAX } else { i64::MIN })),
        Err(_) => Err(PyTypeError::new_err(format!(
            "index: slice indices must be integers or None, got {}",
            v.get_type().name()?
        ))),
    }
}

/// An index given as a Value (its tensor, no copy), a numpy array (shared when it can be)
/// or a list; integer dtypes other than int32/int64 become int64. The core checks dtypes.
fn index_array(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    if let Some(t) = value_tensor(obj) {
        return Ok(t);
    }
    let np = obj.py().import("numpy")?;
    let mut arr = np.getattr("asarray")?.call1((obj,))?;
    let dtype = arr.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    let name: String = dtype.getattr("name")?.extract()?;
    let size: usize = arr.getattr("size")?.extract()?;
    let widen = match kind.as_str() {
        "i" | "u" => name != "int32" && name != "int64",
        // An empty list has float dtype in numpy; it selects nothing.
        "f" => size == 0,
        "b" => false,
        _ => {
            return Err(PyIndexError::new_err(format!(
                "{op}: arrays used as indices must hold integers or booleans, got dtype {name}"
            )))
        }
    };
    if name == "uint64" && size > 0 {
        let top: u64 = arr.call_method0("max")?.extract()?;
        if top > i64::MAX as u64 {
            return Err(PyIndexError::new_err(format!(
                "{op}: index {top} is out of bounds"
            )));
        }
    }
    if widen {
        arr = arr.call_method1("astype", ("int64",))?;
    }
    match share_numpy(&arr)? {
        Some(t) => Ok(t),
        None => tensor_from_numpy(&arr),
    }
}

#[pymethods]
impl Node {
    /// A leaf over the array's memory when it can be shared (see `share_numpy`), else a copy.
    #[staticmethod]
    #[pyo3(signature = (array, requires_grad=false, share=true))]
    fn from_numpy(array: &Bound<'_, PyAny>, requires_grad: bool, share: bool) -> PyResult<Node> {
        let shared = if share { share_numpy(array)? } else { None };
        let t = match shared {
            Some(t) => t,
            None => tensor_from_numpy(array)?,
        };
        Ok(node(core::Node::new_leaf(t, requires_grad).py()?))
    }

    #[staticmethod]
    #[pyo3(signature = (value, dtype, requires_grad=false))]
    fn scalar(value: f64, dtype: &str, requires_grad: bool) -> PyResult<Node> {
        Ok(node(
            core::Node::new_leaf(Tensor::scalar(value, parse_dtype(dtype)?), requires_grad).py()?,
        ))
    }

    // ---- metadata -----------------------------------------------------------------

    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.node.shape())
    }
    #[getter]
    fn dtype(&self) -> &'static str {
        self.node.dtype().name()
    }
    #[getter]
    fn requires_grad(&self) -> bool {
        self.node.requires_grad()
    }
    fn set_requires_grad(&self, on: bool) -> PyResult<()> {
        self.node.set_requires_grad(on).py()
    }
    #[getter]
    fn is_leaf(&self) -> bool {
        self.node.is_leaf()
    }
    #[getter]
    fn op(&self) -> &'static str {
        self.node.op_name()
    }
    /// micrograd's `_backward()`: one node's chain rule, into its parents' grads.
    fn backward_step(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.node.clone();
        without_gil(py, move || n.backward_step()).py()
    }
    #[getter]
    fn label(&self) -> Option<String> {
        self.node.label()
    }
    #[pyo3(signature = (label=None))]
    fn set_label(&self, label: Option<&str>) {
        self.node.set_label(label);
    }
    #[getter]
    fn parents(&self) -> Vec<Node> {
        self.node.parents().iter().cloned().map(node).collect()
    }
    /// None for a node of the forward pass; else (order, op): recorded by the backward rule
    /// of `op` in a `create_graph` pass, `order` levels of differentiation up.
    #[getter]
    fn made_by(&self) -> Option<(u8, &'static str)> {
        made_by(&self.node)
    }
    #[getter]
    fn id(&self) -> usize {
        self.node.id()
    }
    /// The settings of the op that made this node, for exporters: ints, floats, lists of
    /// them, and numpy views of the tensors it saved (an index, a mask).
    #[getter]
    fn attrs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, attr) in self.node.op_attrs() {
            match attr {
                core::Attr::Int(v) => d.set_item(name, v)?,
                core::Attr::Ints(v) => d.set_item(name, v)?,
                core::Attr::Float(v) => d.set_item(name, v)?,
                core::Attr::Floats(v) => d.set_item(name, v)?,
                core::Attr::Tensor(t) => d.set_item(name, numpy_view(py, &t)?)?,
                core::Attr::Tensors(ts) => {
                    let views = ts
                        .iter()
                        .map(|t| numpy_view(py, t))
                        .collect::<PyResult<Vec<_>>>()?;
                    d.set_item(name, views)?
                }
            }
        }
        Ok(d)
    }

    // ---- data and grad as numpy views ---------------------------------------------

    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        numpy_view(py, &self.node.tensor())
    }

    /// Replaces the data, unless `array` already is a view of it (`p.data -= ...`).
    fn set_data(&self, array: &Bound<'_, PyAny>) -> PyResult<()> {
        let t = self.node.tensor();
        if let Ok(a) = array.cast::<PyUntypedArray>() {
            if is_view_of(a, &t) {
                return Ok(());
            }
        }
        self.node.set_data(tensor_from_numpy(array)?).py()
    }

    fn grad<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.node.grad().map(|g| numpy_view(py, &g)).transpose()
    }

    #[pyo3(signature = (array=None))]
    fn set_grad(&self, array: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let g = array.map(tensor_from_numpy).transpose()?;
        self.node.assign_grad(g).py()
    }

    /// The one element as a Python bool, int or float, by dtype.
    fn item<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let t = self.node.tensor();
        if t.numel() != 1 {
            return Err(PyValueError::new_err(format!(
                "item: only one-element Values convert to a Python number, this one has shape {:?}",
                t.shape()
            )));
        }
        let one = t.contiguous().py()?;
        Ok(match one.storage() {
            Storage::Bool(_) => {
                let b = one.as_slice::<Bool8>().is_some_and(|s| s[0].0 != 0);
                PyBool::new(py, b).to_owned().into_any()
            }
            Storage::I32(_) => one
                .as_slice::<i32>()
                .map_or(0, |s| s[0])
                .into_pyobject(py)?
                .into_any(),
            Storage::I64(_) => one
                .as_slice::<i64>()
                .map_or(0, |s| s[0])
                .into_pyobject(py)?
                .into_any(),
            _ => one.to_vec_f64().py()?[0].into_pyobject(py)?.into_any(),
        })
    }

    // ---- autograd -----------------------------------------------------------------

    /// Runs backward; with `explain`, returns one record per step (else an empty list).
    #[pyo3(signature = (gradient=None, explain=false, create_graph=false, inputs=None))]
    fn backward<'py>(
        &self,
        py: Python<'py>,
        gradient: Option<&Bound<'py, PyAny>>,
        explain: bool,
        create_graph: bool,
        inputs: Option<Vec<PyRef<'py, Node>>>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let seed = match gradient {
            None => None,
            Some(g) => Some(match g.cast::<Node>() {
                Ok(n) => n.get().node.clone(),
                Err(_) => mikagrad_core::Node::leaf(tensor_from_numpy(g)?, false),
            }),
        };
        let inputs: Option<Vec<mikagrad_core::Node>> =
            inputs.map(|xs| xs.iter().map(|x| x.node.clone()).collect());
        let v = self.node.clone();
        let options = BackwardOptions {
            create_graph,
            inputs: inputs.as_deref(),
        };
        if !explain {
            // Long passes run without the GIL so other Python threads can go on (on this
            // thread, so its grad mode holds).
            without_gil(py, || v.backward_with(seed, &options, None)).py()?;
            return Ok(Vec::new());
        }
        let mut steps = Vec::new();
        let mut err = None;
        let mut record = |s: mikagrad_core::Step| {
            if let Err(e) = explain_step(py, &s).map(|d| steps.push(d)) {
                err.get_or_insert(e);
            }
        };
        v.backward_with(seed, &options, Some(&mut record)).py()?;
        match err {
            Some(e) => Err(e),
            None => Ok(steps),
        }
    }

    /// Statistics of the data (or the gradient): norm, mean, min, max, zeros, nonfinite.
    #[pyo3(signature = (of_grad=false))]
    fn stats<'py>(&self, py: Python<'py>, of_grad: bool) -> PyResult<Option<Bound<'py, PyDict>>> {
        let t = if of_grad {
            self.node.grad()
        } else {
            Some(self.node.tensor())
        };
        t.map(|t| stats_dict(py, &t)).transpose()
    }

    fn zero_grad(&self) {
        self.node.zero_grad_graph();
    }

    fn detach(&self) -> Node {
        node(self.node.detach())
    }

    /// torch's `.data`: the same memory, no graph, writes not counted.
    fn data_node(&self) -> Node {
        node(self.node.data_node())
    }
    #[getter]
    fn has_grad(&self) -> bool {
        self.node.grad().is_some()
    }
    fn grad_node(&self) -> Option<Node> {
        self.node.grad_node().map(node)
    }
    fn set_data_node(&self, value: &Node) -> PyResult<()> {
        self.node.set_data(value.node.tensor()).py()
    }
    #[pyo3(signature = (value=None))]
    fn set_grad_node(&self, value: Option<&Node>) -> PyResult<()> {
        self.node.assign_grad(value.map(|v| v.node.tensor())).py()
    }
    fn zero_own_grad(&self) {
        self.node.zero_own_grad();
    }
    fn clone_data(&self) -> PyResult<Node> {
        Ok(node(self.node.clone_data().py()?))
    }
    /// torch's `_version`: in-place writes into this memory so far.
    #[getter]
    fn version(&self) -> u64 {
        self.node.tensor().version()
    }

    /// The in-place op `op` (`"add_"`, ...): `f(src)` computes the result out of place
    /// from `src` (this node, or a copy the backward can read); it is written into this
    /// node's memory, and the node the Value now holds is returned.
    fn inplace(
        &self,
        op: &str,
        other_grad: bool,
        reads_self: bool,
        f: &Bound<'_, PyAny>,
    ) -> PyResult<Node> {
        let op = INPLACE_OPS
            .iter()
            .find(|&&n| n == op)
            .copied()
            .unwrap_or("in-place");
        let mut failure = None;
        let out = self.node.inplace(op, other_grad, reads_self, |src| {
            let r = f
                .call1((node(src.clone()),))
                .and_then(|r| Ok(r.cast::<Node>()?.get().node.clone()));
            r.map_err(|e| {
                failure = Some(e);
                Error::value(op, "")
            })
        });
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(node(out.py()?))
    }

    // ---- elementwise --------------------------------------------------------------

    /// The binary op called `op` (`"add"`, `"lt"`, ...); `reflected` swaps the operands.
    fn binary(&self, other: &Bound<'_, PyAny>, op: &str, reflected: bool) -> PyResult<Node> {
        let op = Binary::from_name(op)
            .ok_or_else(|| PyValueError::new_err(format!("binary: unknown op {op:?}")))?;
        let out = match operand(other)? {
            Operand::Number(n) => self.node.binary_number(n, op, reflected),
            Operand::Node(o) if reflected => o.binary(&self.node, op),
            Operand::Node(o) => self.node.binary(&o, op),
        };
        Ok(node(out.py()?))
    }

    /// The unary op called `op` (`"exp"`, `"clamp"`, ...) with its float parameters.
    #[pyo3(signature = (op, *params))]
    fn unary(&self, op: &str, params: Vec<f64>) -> PyResult<Node> {
        let op = Unary::from_name(op, &params).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unary: no op {op:?} with {} parameters",
                params.len()
            ))
        })?;
        Ok(node(self.node.unary(op).py()?))
    }

    #[staticmethod]
    fn where_(cond: &Node, a: &Node, b: &Node) -> PyResult<Node> {
        Ok(node(
            core::Node::where_(&cond.node.tensor(), &a.node, &b.node).py()?,
        ))
    }

    fn to_dtype(&self, dtype: &str) -> PyResult<Node> {
        Ok(node(self.node.to_dtype(parse_dtype(dtype)?).py()?))
    }

    // ---- reductions ---------------------------------------------------------------

    #[pyo3(signature = (dims=None, keepdim=false))]
    fn sum(&self, dims: Option<Vec<isize>>, keepdim: bool) -> PyResult<Node> {
        Ok(node(self.node.sum(dims.as_deref(), keepdim).py()?))
    }
    #[pyo3(signature = (dims=None, keepdim=false))]
    fn mean(&self, dims: Option<Vec<isize>>, keepdim: bool) -> PyResult<Node> {
        Ok(node(self.node.mean(dims.as_deref(), keepdim).py()?))
    }
    #[pyo3(signature = (dims=None, keepdim=false))]
    fn max(&self, dims: Option<Vec<isize>>, keepdim: bool) -> PyResult<Node> {
        Ok(node(self.node.max(dims.as_deref(), keepdim).py()?))
    }
    #[pyo3(signature = (dims=None, keepdim=false))]
    fn min(&self, dims: Option<Vec<isize>>, keepdim: bool) -> PyResult<Node> {
        Ok(node(self.node.min(dims.as_deref(), keepdim).py()?))
    }
    #[pyo3(signature = (dims=None, correction=1.0, keepdim=false))]
    fn var(&self, dims: Option<Vec<isize>>, correction: f64, keepdim: bool) -> PyResult<Node> {
        Ok(node(
            self.node.var(dims.as_deref(), correction, keepdim).py()?,
        ))
    }
    #[pyo3(signature = (dims=None, correction=1.0, keepdim=false))]
    fn std(&self, dims: Option<Vec<isize>>, correction: f64, keepdim: bool) -> PyResult<Node> {
        Ok(node(
            self.node.std(dims.as_deref(), correction, keepdim).py()?,
        ))
    }
    #[pyo3(signature = (dims=None, keepdim=false))]
    fn logsumexp(&self, dims: Option<Vec<isize>>, keepdim: bool) -> PyResult<Node> {
        Ok(node(self.node.logsumexp(dims.as_deref(), keepdim).py()?))
    }
    /// Indices as an int64 tensor, as torch.
    #[pyo3(signature = (largest, dim=None, keepdim=false))]
    fn arg_extreme(&self, largest: bool, dim: Option<isize>, keepdim: bool) -> PyResult<Node> {
        let (v, shape) = self.node.tensor().arg_extreme(largest, dim, keepdim).py()?;
        let idx: Vec<i64> = v.into_iter().map(|i| i as i64).collect();
        Ok(node(core::Node::leaf(
            Tensor::from_vec(idx, &shape).py()?,
            false,
        )))
    }
    /// torch's `max()` / `min()` of the whole tensor (the gradient is selected, NaN-aware).
    fn extreme_all(&self, largest: bool) -> PyResult<Node> {
        Ok(node(self.node.extreme_all(largest).py()?))
    }
    /// torch's `max(dim)` / `min(dim)`: (values, int64 indices).
    fn extreme_at(&self, largest: bool, dim: isize, keepdim: bool) -> PyResult<(Node, Node)> {
        let (v, i) = self.node.extreme_at(largest, dim, keepdim).py()?;
        Ok((node(v), node(i)))
    }
    fn sort(&self, dim: isize, descending: bool) -> PyResult<(Node, Node)> {
        let (v, i) = self.node.sort(dim, descending).py()?;
        Ok((node(v), node(i)))
    }
    fn topk(&self, k: usize, dim: isize, largest: bool) -> PyResult<(Node, Node)> {
        let (v, i) = self.node.topk(k, dim, largest).py()?;
        Ok((node(v), node(i)))
    }
    fn softmax(&self, dim: isize) -> PyResult<Node> {
        Ok(node(self.node.softmax(dim).py()?))
    }
    fn log_softmax(&self, dim: isize) -> PyResult<Node> {
        Ok(node(self.node.log_softmax(dim).py()?))
    }

    // ---- shape --------------------------------------------------------------------

    fn reshape(&self, shape: Vec<isize>) -> PyResult<Node> {
        Ok(node(self.node.reshape_infer(&shape).py()?))
    }
    fn permute(&self, perm: Vec<isize>) -> PyResult<Node> {
        let perm = mikagrad_core::layout::resolve_perm(&perm, self.node.ndim()).py()?;
        Ok(node(self.node.permute(&perm).py()?))
    }
    fn transpose(&self, a: isize, b: isize) -> PyResult<Node> {
        Ok(node(self.node.transpose(a, b).py()?))
    }
    /// -1 keeps a dim's size, as `torch.expand`.
    fn expand(&self, shape: Vec<isize>) -> PyResult<Node> {
        let target = mikagrad_core::layout::resolve_expand(&shape, &self.node.shape()).py()?;
        Ok(node(self.node.expand(&target).py()?))
    }
    #[pyo3(signature = (dims=None))]
    fn squeeze(&self, dims: Option<Vec<isize>>) -> PyResult<Node> {
        Ok(node(self.node.squeeze(dims.as_deref()).py()?))
    }
    fn unsqueeze(&self, dim: isize) -> PyResult<Node> {
        Ok(node(self.node.unsqueeze(dim).py()?))
    }
    fn flatten(&self, start: isize, end: isize) -> PyResult<Node> {
        Ok(node(self.node.flatten(start, end).py()?))
    }
    fn split_sizes(&self, sizes: Vec<usize>, dim: isize) -> PyResult<Vec<Node>> {
        Ok(self
            .node
            .split_sizes(&sizes, dim)
            .py()?
            .into_iter()
            .map(node)
            .collect())
    }
    /// `torch.autograd.grad` (see `core::Node::grad_of`).
    #[staticmethod]
    fn autograd_grad(
        py: Python<'_>,
        outputs: Vec<PyRef<'_, Node>>,
        grad_outputs: Vec<PyRef<'_, Node>>,
        inputs: Vec<PyRef<'_, Node>>,
        create_graph: bool,
    ) -> PyResult<Vec<Option<Node>>> {
        let outs: Vec<core::Node> = outputs.iter().map(|n| n.node.clone()).collect();
        let seeds: Vec<core::Node> = grad_outputs.iter().map(|n| n.node.clone()).collect();
        let ins: Vec<core::Node> = inputs.iter().map(|n| n.node.clone()).collect();
        let grads = without_gil(py, move || {
            core::Node::grad_of(&outs, &seeds, &ins, create_graph)
        })
        .py()?;
        Ok(grads.into_iter().map(|g| g.map(node)).collect())
    }
    /// `torch.autograd.functional.jacobian`'s rows (see `core::Node::jacobian`).
    #[staticmethod]
    fn autograd_jacobian(
        py: Python<'_>,
        output: PyRef<'_, Node>,
        inputs: Vec<PyRef<'_, Node>>,
        create_graph: bool,
    ) -> PyResult<Vec<Option<Node>>> {
        let out = output.node.clone();
        let ins: Vec<core::Node> = inputs.iter().map(|n| n.node.clone()).collect();
        let jac = without_gil(py, move || core::Node::jacobian(&out, &ins, create_graph)).py()?;
        Ok(jac.into_iter().map(|g| g.map(node)).collect())
    }
    #[staticmethod]
    fn cat(parts: Vec<PyRef<'_, Node>>, dim: isize) -> PyResult<Node> {
        let vs: Vec<core::Node> = parts.iter().map(|p| p.node.clone()).collect();
        Ok(node(core::Node::cat(&vs, dim).py()?))
    }
    #[staticmethod]
    fn stack(parts: Vec<PyRef<'_, Node>>, dim: isize) -> PyResult<Node> {
        let vs: Vec<core::Node> = parts.iter().map(|p| p.node.clone()).collect();
        Ok(node(core::Node::stack(&vs, dim).py()?))
    }
    fn getitem(&self, key: &Bound<'_, PyAny>) -> PyResult<Node> {
        Ok(node(self.node.index(&index_items(key)?).py()?))
    }
    /// `x[key] = value` in place; returns the node the Value now holds.
    fn setitem(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<Node> {
        let items = index_items(key)?;
        let value = operand_node(value, &self.node)?;
        Ok(node(self.node.index_put_(&items, &value).py()?))
    }
    fn gather(&self, dim: isize, index: &Bound<'_, PyAny>) -> PyResult<Node> {
        let index = index_array("gather", index)?;
        Ok(node(self.node.gather(dim, &index).py()?))
    }
    fn cumsum(&self, dim: isize) -> PyResult<Node> {
        Ok(node(self.node.cumsum(dim).py()?))
    }
    fn index_select(&self, dim: isize, index: &Bound<'_, PyAny>) -> PyResult<Node> {
        let index = index_array("index_select", index)?;
        Ok(node(self.node.index_select(dim, &index).py()?))
    }

    // ---- convolution and pooling ------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        weight: PyRef<'_, Node>,
        bias: Option<PyRef<'_, Node>>,
        stride: Vec<usize>,
        pad_lo: Vec<usize>,
        pad_hi: Vec<usize>,
        dilation: Vec<usize>,
        groups: usize,
    ) -> PyResult<Node> {
        let spec = conv_spec(&stride, &pad_lo, &pad_hi, &dilation, groups)?;
        let b = bias.as_ref().map(|b| &b.node);
        Ok(node(self.node.conv(&weight.node, b, &spec).py()?))
    }
    /// The transposed convolution giving a tensor of `out_shape`.
    #[allow(clippy::too_many_arguments)]
    fn conv_input(
        &self,
        weight: PyRef<'_, Node>,
        out_shape: Vec<usize>,
        stride: Vec<usize>,
        pad_lo: Vec<usize>,
        pad_hi: Vec<usize>,
        dilation: Vec<usize>,
        groups: usize,
    ) -> PyResult<Node> {
        let spec = conv_spec(&stride, &pad_lo, &pad_hi, &dilation, groups)?;
        Ok(node(
            self.node.conv_input(&weight.node, &spec, &out_shape).py()?,
        ))
    }
    #[allow(clippy::too_many_arguments)]
    fn conv_weight(
        &self,
        grad_output: PyRef<'_, Node>,
        weight_shape: Vec<usize>,
        stride: Vec<usize>,
        pad_lo: Vec<usize>,
        pad_hi: Vec<usize>,
        dilation: Vec<usize>,
        groups: usize,
    ) -> PyResult<Node> {
        let spec = conv_spec(&stride, &pad_lo, &pad_hi, &dilation, groups)?;
        Ok(node(
            self.node
                .conv_weight(&grad_output.node, &spec, &weight_shape)
                .py()?,
        ))
    }
    fn unfold(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> PyResult<Node> {
        let spec = conv_spec(&stride, &padding, &padding, &dilation, 1)?;
        Ok(node(self.node.unfold(kernel, &spec).py()?))
    }
    fn fold(
        &self,
        output_size: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> PyResult<Node> {
        let spec = conv_spec(&stride, &padding, &padding, &dilation, 1)?;
        Ok(node(self.node.fold(output_size, kernel, &spec).py()?))
    }
    fn max_pool(
        &self,
        kernel: Vec<usize>,
        stride: Vec<usize>,
        padding: Vec<usize>,
        dilation: Vec<usize>,
        ceil_mode: bool,
    ) -> PyResult<(Node, Node)> {
        let windows = windows(&kernel, &stride, &padding, &dilation, ceil_mode)?;
        let (v, i) = self.node.max_pool(&windows).py()?;
        Ok((node(v), node(core::Node::leaf(i, false))))
    }
    fn adaptive_max_pool(&self, output_size: Vec<usize>) -> PyResult<(Node, Node)> {
        let (v, i) = self.node.adaptive_max_pool(&output_size).py()?;
        Ok((node(v), node(core::Node::leaf(i, false))))
    }
    #[allow(clippy::too_many_arguments)]
    fn avg_pool(
        &self,
        kernel: Vec<usize>,
        stride: Vec<usize>,
        padding: Vec<usize>,
        ceil_mode: bool,
        count_include_pad: bool,
        divisor_override: Option<i64>,
    ) -> PyResult<Node> {
        let ones = vec![1; kernel.len()];
        let windows = windows(&kernel, &stride, &padding, &ones, ceil_mode)?;
        Ok(node(
            self.node
                .avg_pool(&windows, count_include_pad, divisor_override)
                .py()?,
        ))
    }
    fn adaptive_avg_pool(&self, output_size: Vec<usize>) -> PyResult<Node> {
        Ok(node(self.node.adaptive_avg_pool(&output_size).py()?))
    }
    /// torch's `batch_norm`; returns (output, the mean and biased variance it used).
    fn batch_norm(
        &self,
        weight: Option<PyRef<'_, Node>>,
        bias: Option<PyRef<'_, Node>>,
        running_mean: Option<PyRef<'_, Node>>,
        running_var: Option<PyRef<'_, Node>>,
        eps: f64,
    ) -> PyResult<(Node, Node, Node)> {
        let stats = match (&running_mean, &running_var) {
            (Some(m), Some(v)) => Some((&m.node, &v.node)),
            _ => None,
        };
        let (y, m, v) = self
            .node
            .batch_norm(
                weight.as_ref().map(|w| &w.node),
                bias.as_ref().map(|b| &b.node),
                stats,
                eps,
            )
            .py()?;
        Ok((
            node(y),
            node(core::Node::leaf(m, false)),
            node(core::Node::leaf(v, false)),
        ))
    }
    fn pad(&self, pads: Vec<i64>, mode: &str, value: f64) -> PyResult<Node> {
        Ok(node(self.node.pad(&pads, mode, value).py()?))
    }
    fn interpolate(
        &self,
        size: Vec<usize>,
        mode: &str,
        align_corners: bool,
        scales: Option<Vec<f64>>,
    ) -> PyResult<Node> {
        Ok(node(
            self.node
                .interpolate(&size, mode, align_corners, scales.as_deref())
                .py()?,
        ))
    }

    // ---- products -----------------------------------------------------------------

    fn matmul(&self, other: &Bound<'_, PyAny>, reflected: bool) -> PyResult<Node> {
        let o = operand_node(other, &self.node)?;
        let (a, b) = if reflected {
            (&o, &self.node)
        } else {
            (&self.node, &o)
        };
        let (a, b) = (a.clone(), b.clone());
        // Large products release the GIL; tiny ones keep it (detaching costs more).
        let big =
            a.shape().iter().product::<usize>() * b.shape().last().copied().unwrap_or(1) > 1 << 18;
        if big {
            Ok(node(without_gil(other.py(), move || a.matmul(&b)).py()?))
        } else {
            Ok(node(a.matmul(&b).py()?))
        }
    }
    fn dot(&self, other: &Node) -> PyResult<Node> {
        Ok(node(self.node.dot(&other.node).py()?))
    }
}

fn stats_dict<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyDict>> {
    let st = t.stats();
    let d = PyDict::new(py);
    d.set_item("norm", st.norm)?;
    d.set_item("mean", st.mean)?;
    d.set_item("min", st.min)?;
    d.set_item("max", st.max)?;
    d.set_item("zeros", st.zeros)?;
    d.set_item("nonfinite", st.nonfinite)?;
    Ok(d)
}

fn made_by(n: &core::Node) -> Option<(u8, &'static str)> {
    let m = n.made_by();
    (m.order > 0).then_some((m.order, m.op))
}

/// One explain-mode record: the op, its rule, shapes, incoming-gradient statistics and the
/// broadcasts that were undone.
fn explain_step<'py>(py: Python<'py>, s: &mikagrad_core::Step) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("op", s.node.op_name())?;
    d.set_item("rule", s.node.op_rule())?;
    d.set_item("made_by", made_by(s.node))?;
    d.set_item("shape", PyTuple::new(py, s.node.shape())?)?;
    d.set_item("dtype", s.node.dtype().name())?;
    let parents: Vec<Bound<'py, PyTuple>> = s
        .node
        .parents()
        .iter()
        .map(|p| PyTuple::new(py, p.shape()))
        .collect::<PyResult<_>>()?;
    d.set_item("parents", parents)?;
    d.set_item("grad", stats_dict(py, &s.grad)?)?;
    let broadcasts = PyList::empty(py);
    for (i, (p, summed)) in s.node.parents().iter().zip(&s.summed).enumerate() {
        if let Some((from, dims)) = summed {
            if !dims.is_empty() {
                broadcasts.append((
                    i,
                    PyTuple::new(py, p.shape())?,
                    PyTuple::new(py, from)?,
                    dims.clone(),
                ))?;
            }
        }
    }
    d.set_item("broadcasts", broadcasts)?;
    Ok(d)
}

// ---- creation -----------------------------------------------------------------------

fn leaf(t: mikagrad_core::Result<Tensor>, requires_grad: bool) -> PyResult<Node> {
    Ok(node(core::Node::new_leaf(t.py()?, requires_grad).py()?))
}

/// `shape` filled with a Python bool, int or float, exactly (an int64 fill keeps all 64 bits).
#[pyfunction]
fn full(
    shape: Vec<usize>,
    value: &Bound<'_, PyAny>,
    dtype: &str,
    requires_grad: bool,
) -> PyResult<Node> {
    let n = match operand(value)? {
        Operand::Number(n) => n,
        Operand::Node(_) => {
            return Err(PyTypeError::new_err(
                "full: the fill value must be a number",
            ))
        }
    };
    leaf(
        Tensor::full_number(&shape, n, parse_dtype(dtype)?),
        requires_grad,
    )
}

/// torch's CPU generator (`mikagrad.Generator` wraps one); shared by its Python handles.
#[pyclass(frozen, module = "mikagrad._core")]
struct Generator {
    inner: random::SharedGenerator,
}

#[pymethods]
impl Generator {
    #[new]
    fn new(seed: u64) -> Generator {
        Generator {
            inner: std::sync::Arc::new(std::sync::Mutex::new(random::Generator::new(seed))),
        }
    }
    /// The process-wide generator behind `manual_seed` and every draw without `generator=`.
    #[staticmethod]
    fn default() -> Generator {
        Generator {
            inner: random::default_generator(),
        }
    }
    fn manual_seed(&self, seed: u64) {
        random::lock(Some(&self.inner)).manual_seed(seed);
    }
    fn initial_seed(&self) -> u64 {
        random::lock(Some(&self.inner)).initial_seed()
    }
    fn get_state(&self) -> Vec<u64> {
        random::lock(Some(&self.inner)).state()
    }
    fn set_state(&self, state: Vec<u64>) -> PyResult<()> {
        random::lock(Some(&self.inner)).set_state(&state).py()
    }
}

fn generator(g: Option<&Generator>) -> Option<&random::SharedGenerator> {
    g.map(|g| &g.inner)
}

#[pyfunction]
#[pyo3(signature = (shape, low, high, dtype, requires_grad, generator=None))]
fn rand(
    shape: Vec<usize>,
    low: f64,
    high: f64,
    dtype: &str,
    requires_grad: bool,
    generator: Option<&Generator>,
) -> PyResult<Node> {
    let dtype = parse_dtype(dtype)?;
    let t = random::rand(
        &mut random::lock(self::generator(generator)),
        &shape,
        low,
        high,
        dtype,
    );
    leaf(t, requires_grad)
}

#[pyfunction]
#[pyo3(signature = (shape, mean, std, dtype, requires_grad, generator=None))]
fn randn(
    shape: Vec<usize>,
    mean: f64,
    std: f64,
    dtype: &str,
    requires_grad: bool,
    generator: Option<&Generator>,
) -> PyResult<Node> {
    let dtype = parse_dtype(dtype)?;
    let t = random::randn(
        &mut random::lock(self::generator(generator)),
        &shape,
        mean,
        std,
        dtype,
    );
    leaf(t, requires_grad)
}

#[pyfunction]
#[pyo3(signature = (low, high, shape, dtype, generator=None))]
fn randint(
    low: i64,
    high: i64,
    shape: Vec<usize>,
    dtype: &str,
    generator: Option<&Generator>,
) -> PyResult<Node> {
    let dtype = parse_dtype(dtype)?;
    let t = random::randint(
        &mut random::lock(self::generator(generator)),
        low,
        high,
        &shape,
        dtype,
    );
    leaf(t, false)
}

#[pyfunction]
#[pyo3(signature = (n, generator=None))]
fn randperm(n: usize, generator: Option<&Generator>) -> PyResult<Node> {
    leaf(
        random::randperm(&mut random::lock(self::generator(generator)), n),
        false,
    )
}

#[pyfunction]
#[pyo3(signature = (shape, lambd, dtype, generator=None))]
fn exponential(
    shape: Vec<usize>,
    lambd: f64,
    dtype: &str,
    generator: Option<&Generator>,
) -> PyResult<Node> {
    let dtype = parse_dtype(dtype)?;
    let t = random::exponential(
        &mut random::lock(self::generator(generator)),
        &shape,
        lambd,
        dtype,
    );
    leaf(t, false)
}

#[pyfunction]
#[pyo3(signature = (p, generator=None))]
fn bernoulli(p: &Node, generator: Option<&Generator>) -> PyResult<Node> {
    let t = random::bernoulli(
        &mut random::lock(self::generator(generator)),
        &p.node.tensor(),
    );
    leaf(t, false)
}

#[pyfunction]
#[pyo3(signature = (probs, num_samples, replacement, generator=None))]
fn multinomial(
    probs: &Node,
    num_samples: usize,
    replacement: bool,
    generator: Option<&Generator>,
) -> PyResult<Node> {
    let mut g = random::lock(self::generator(generator));
    leaf(
        random::multinomial(&mut g, &probs.node.tensor(), num_samples, replacement),
        false,
    )
}

#[pyfunction]
fn arange(start: f64, end: f64, step: f64, dtype: &str, requires_grad: bool) -> PyResult<Node> {
    leaf(
        creation::arange(start, end, step, parse_dtype(dtype)?),
        requires_grad,
    )
}

#[pyfunction]
fn arange_int(start: i64, end: i64, step: i64, dtype: &str) -> PyResult<Node> {
    leaf(
        creation::arange_int(start, end, step, parse_dtype(dtype)?),
        false,
    )
}

#[pyfunction]
fn linspace(
    start: f64,
    end: f64,
    steps: usize,
    dtype: &str,
    requires_grad: bool,
) -> PyResult<Node> {
    leaf(
        creation::linspace(start, end, steps, parse_dtype(dtype)?),
        requires_grad,
    )
}

#[pyfunction]
fn eye(n: usize, m: usize, dtype: &str, requires_grad: bool) -> PyResult<Node> {
    leaf(creation::eye(n, m, parse_dtype(dtype)?), requires_grad)
}

// ---- optimizer kernels ---------------------------------------------------------------

/// One fused SGD update of `param` in place; returns False if it has no gradient.
#[pyfunction]
#[pyo3(signature = (param, buf, first, lr, momentum, dampening, nesterov, weight_decay, maximize))]
#[allow(clippy::too_many_arguments)]
fn sgd_step(
    param: &Node,
    buf: Option<&Node>,
    first: bool,
    lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    weight_decay: f64,
    maximize: bool,
) -> PyResult<bool> {
    let Some(g) = param.node.grad() else {
        return Ok(false);
    };
    let h = optim::Sgd {
        lr,
        momentum,
        dampening,
        nesterov,
        weight_decay,
        maximize,
    };
    let buf = buf.map(|b| b.node.tensor());
    optim::sgd_step(&param.node.tensor(), &g, buf.as_ref(), first, &h).py()?;
    Ok(true)
}

/// One fused Adam (or AdamW, `decoupled`) update in place; False if no gradient.
#[pyfunction]
#[pyo3(signature = (param, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, max_exp_avg_sq=None))]
#[allow(clippy::too_many_arguments)]
fn adam_step(
    param: &Node,
    m: &Node,
    v: &Node,
    step: u64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    decoupled: bool,
    maximize: bool,
    max_exp_avg_sq: Option<&Node>,
) -> PyResult<bool> {
    let Some(g) = param.node.grad() else {
        return Ok(false);
    };
    let h = optim::Adam {
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        decoupled,
        maximize,
    };
    optim::adam_step(
        &param.node.tensor(),
        &g,
        &m.node.tensor(),
        &v.node.tensor(),
        max_exp_avg_sq.map(|n| n.node.tensor()).as_ref(),
        step,
        &h,
    )
    .py()?;
    Ok(true)
}

#[pyfunction]
fn set_grad_enabled(on: bool) -> bool {
    mikagrad_core::set_grad_enabled(on)
}

/// Threads one large kernel (matmul) may use; 0 means every core.
#[pyfunction]
fn set_num_threads(n: usize) {
    mikagrad_core::set_num_threads(n);
}

#[pyfunction]
fn get_num_threads() -> usize {
    mikagrad_core::thread_budget()
}

/// Graph nodes alive in this process (for leak tests).
#[pyfunction]
fn live_nodes() -> usize {
    mikagrad_core::live_nodes()
}

/// The dtype Python floats become (float32 or float64), kept in the core.
#[pyfunction]
fn set_default_dtype(dtype: &str) -> PyResult<()> {
    if mikagrad_core::set_default_float(parse_dtype(dtype)?) {
        Ok(())
    } else {
        Err(PyTypeError::new_err(format!(
            "the default dtype must be float32 or float64, got {dtype}"
        )))
    }
}

/// The elementwise ops the core declares, as (family, name, dtype kind).
#[pyfunction]
fn elementwise_ops() -> Vec<(&'static str, &'static str, &'static str)> {
    let unary = Unary::catalog().into_iter().map(|(n, k)| ("unary", n, k));
    let binary = Binary::catalog().into_iter().map(|(n, k)| ("binary", n, k));
    unary.chain(binary).collect()
}

#[pyfunction]
fn get_default_dtype() -> &'static str {
    mikagrad_core::default_float().name()
}

#[pyfunction]
fn is_grad_enabled() -> bool {
    mikagrad_core::is_grad_enabled()
}

/// glibc serves blocks above 128 KB-32 MB with fresh mmaps and hands the top of its heap
/// back to the OS, so each training step page-faults its tensors in again (a 32→64 conv on
/// 32×32 images: 21 ms a step instead of 14). Blocks up to 32 MB now come from the heap and
/// freed memory is kept for reuse up to 256 MB; larger requests still map (and fail
/// cleanly when memory is short).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes thresholds; it is called once, before our allocations.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_freed_memory();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ACCUMULATION", core::ACCUMULATION)?;
    m.add("ShapeError", m.py().get_type::<ShapeError>())?;
    m.add("GradError", m.py().get_type::<GradError>())?;
    m.add_class::<Node>()?;
    m.add_class::<Generator>()?;
    m.add_class::<BufferOwner>()?;
    m.add_function(wrap_pyfunction!(full, m)?)?;
    m.add_function(wrap_pyfunction!(rand, m)?)?;
    m.add_function(wrap_pyfunction!(randn, m)?)?;
    m.add_function(wrap_pyfunction!(arange, m)?)?;
    m.add_function(wrap_pyfunction!(arange_int, m)?)?;
    m.add_function(wrap_pyfunction!(linspace, m)?)?;
    m.add_function(wrap_pyfunction!(eye, m)?)?;
    m.add_function(wrap_pyfunction!(randperm, m)?)?;
    m.add_function(wrap_pyfunction!(randint, m)?)?;
    m.add_function(wrap_pyfunction!(exponential, m)?)?;
    m.add_function(wrap_pyfunction!(bernoulli, m)?)?;
    m.add_function(wrap_pyfunction!(multinomial, m)?)?;
    m.add_function(wrap_pyfunction!(sgd_step, m)?)?;
    m.add_function(wrap_pyfunction!(adam_step, m)?)?;
    m.add_function(wrap_pyfunction!(set_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(is_grad_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(set_default_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(get_default_dtype, m)?)?;
    m.add_function(wrap_pyfunction!(elementwise_ops, m)?)?;
    m.add_function(wrap_pyfunction!(live_nodes, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    Ok(())
}
