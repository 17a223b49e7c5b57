"""Type stub for ``mikagrad._core``, the PyO3 binding built from ``rust/python/src/lib.rs``.

Hand-written: keep it in step with the ``#[pymodule]``, ``#[pyclass]`` and ``#[pyfunction]``
items there. ``tests/test_packaging.py`` checks that this file and the built module list the
same names and the same parameters.

``_core`` is private; users work with ``mikagrad.Value``. Dtypes cross the seam as the names
``"float32"`` and ``"float64"``; op codes index the ``UNARY`` and ``BINARY`` tables.
"""

from collections.abc import Callable, Sequence
from typing import Any, Literal, final

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating[Any]]
_DTypeName = Literal["float32", "float64"]

__version__: str
# A node's ``made_by`` op when a create_graph pass summed two gradients into one ``.grad``.
ACCUMULATION: str
__all__ = [
    "__version__",
    "ACCUMULATION",
    "ShapeError",
    "GradError",
    "Node",
    "BufferOwner",
    "full",
    "rand",
    "randn",
    "arange",
    "arange_int",
    "linspace",
    "eye",
    "randperm",
    "randint",
    "exponential",
    "bernoulli",
    "multinomial",
    "Generator",
    "sgd_step",
    "adam_step",
    "set_grad_enabled",
    "is_grad_enabled",
    "live_nodes",
    "set_num_threads",
    "get_num_threads",
    "set_default_dtype",
    "get_default_dtype",
    "elementwise_ops",
]

class ShapeError(ValueError):
    """Shapes that do not fit an op."""

class GradError(RuntimeError):
    """Autograd misuse, such as backward on a Value without grad."""

@final
class BufferOwner:
    """Keeps a buffer alive for the numpy arrays that view it (their ``.base``)."""

@final
class Node:
    """One graph node: a tensor, its accumulated gradient and the op that made it."""

    @staticmethod
    def from_numpy(array: _Array, requires_grad: bool = False, share: bool = True) -> Node:
        """A leaf over a float32/float64 array: its own memory when ``share`` and the array is
        C-contiguous, aligned and writeable, else a copy."""
    @staticmethod
    def scalar(value: float, dtype: str, requires_grad: bool = False) -> Node: ...

    # ---- metadata
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> _DTypeName: ...
    @property
    def requires_grad(self) -> bool: ...
    def set_requires_grad(self, on: bool) -> None: ...
    @property
    def is_leaf(self) -> bool: ...
    def backward_step(self) -> None: ...
    @property
    def label(self) -> str | None: ...
    def set_label(self, label: str | None = None) -> None: ...
    @property
    def op(self) -> str:
        """The op's name, ``''`` for a leaf."""
    @property
    def parents(self) -> list[Node]: ...
    @property
    def made_by(self) -> tuple[int, str] | None:
        """None for a node of the forward pass; else ``(order, op)``: recorded by the
        backward rule of ``op`` in a ``create_graph`` pass, ``order`` levels up."""
    @property
    def id(self) -> int:
        """An identity-based id, the same for every handle to this node."""
    @property
    def attrs(self) -> dict[str, Any]:
        """The settings of the op that made this node, for exporters (``mikagrad.onnx``):
        ints, floats, lists of them, and numpy views of the tensors it saved."""

    # ---- data and grad as numpy views
    def data(self) -> _Array:
        """A numpy array over the tensor's own memory (no copy)."""
    def set_data(self, array: _Array) -> None:
        """Replaces the data, unless ``array`` already is a view of it."""
    def grad(self) -> _Array | None: ...
    def set_grad(self, array: _Array | None = None) -> None: ...
    def item(self) -> float | int | bool: ...

    # ---- autograd
    def backward(
        self, gradient: Node | _Array | None = None, explain: bool = False,
        create_graph: bool = False, inputs: list[Node] | None = None,
    ) -> list[dict[str, Any]]:
        """Runs backward; with ``explain``, returns one record per step (else ``[]``)."""
    def stats(self, of_grad: bool = False) -> dict[str, float] | None:
        """norm, mean, min, max, zeros and nonfinite of the data (or of the gradient)."""
    def zero_grad(self) -> None: ...
    def detach(self) -> Node: ...
    def data_node(self) -> Node:
        """torch's ``.data``: the same memory, no graph, writes not counted."""
    def set_data_node(self, value: Node) -> None: ...
    @property
    def has_grad(self) -> bool: ...
    def grad_node(self) -> Node | None: ...
    def set_grad_node(self, value: Node | None = None) -> None: ...
    def zero_own_grad(self) -> None: ...
    def clone_data(self) -> Node: ...
    @property
    def version(self) -> int:
        """torch's ``_version``: in-place writes into this memory so far."""
    def inplace(
        self, op: str, other_grad: bool, reads_self: bool, f: Callable[[Node], Node]
    ) -> Node:
        """Writes ``f(src)`` into this node's memory; returns the node the Value now holds."""

    # ---- elementwise
    def binary(self, other: Node | float | int | bool, op: str, reflected: bool) -> Node: ...
    def unary(self, op: str, *params: float) -> Node: ...
    @staticmethod
    def where_(cond: Node, a: Node, b: Node) -> Node: ...
    def to_dtype(self, dtype: str) -> Node: ...

    # ---- reductions
    def sum(self, dims: Sequence[int] | None = None, keepdim: bool = False) -> Node: ...
    def mean(self, dims: Sequence[int] | None = None, keepdim: bool = False) -> Node: ...
    def max(self, dims: Sequence[int] | None = None, keepdim: bool = False) -> Node: ...
    def min(self, dims: Sequence[int] | None = None, keepdim: bool = False) -> Node: ...
    def var(
        self, dims: Sequence[int] | None = None, correction: float = 1.0, keepdim: bool = False
    ) -> Node: ...
    def std(
        self, dims: Sequence[int] | None = None, correction: float = 1.0, keepdim: bool = False
    ) -> Node: ...
    def logsumexp(self, dims: Sequence[int] | None = None, keepdim: bool = False) -> Node: ...
    def arg_extreme(self, largest: bool, dim: int | None = None, keepdim: bool = False) -> Node:
        """Indices, as a float tensor without grad."""
    def extreme_all(self, largest: bool) -> Node: ...
    def extreme_at(self, largest: bool, dim: int, keepdim: bool) -> tuple[Node, Node]: ...
    def sort(self, dim: int, descending: bool) -> tuple[Node, Node]: ...
    def topk(self, k: int, dim: int, largest: bool) -> tuple[Node, Node]: ...
    def softmax(self, dim: int) -> Node: ...
    def log_softmax(self, dim: int) -> Node: ...

    # ---- shape
    def reshape(self, shape: Sequence[int]) -> Node: ...
    def permute(self, perm: Sequence[int]) -> Node: ...
    def transpose(self, a: int, b: int) -> Node: ...
    def expand(self, shape: Sequence[int]) -> Node:
        """-1 keeps a dim's size, as ``torch.expand``."""
    def squeeze(self, dims: Sequence[int] | None = None) -> Node: ...
    def unsqueeze(self, dim: int) -> Node: ...
    def flatten(self, start: int, end: int) -> Node: ...
    def split_sizes(self, sizes: Sequence[int], dim: int) -> list[Node]: ...
    @staticmethod
    def autograd_grad(outputs: list[Node], grad_outputs: list[Node], inputs: list[Node],
                      create_graph: bool) -> list[Node | None]: ...
    @staticmethod
    def autograd_jacobian(output: Node, inputs: list[Node],
                          create_graph: bool) -> list[Node | None]: ...
    @staticmethod
    def cat(parts: Sequence[Node], dim: int) -> Node: ...
    @staticmethod
    def stack(parts: Sequence[Node], dim: int) -> Node: ...
    def getitem(self, key: Any) -> Node:
        """numpy-style indexing: ints, slices, None, Ellipsis, integer or bool arrays."""
    def setitem(self, key: Any, value: Node | float | int | bool) -> Node:
        """``x[key] = value`` in place; returns the node the Value now holds."""
    def gather(self, dim: int, index: Any) -> Node:
        """``index``: an int32/int64 Node, Value, numpy array or list."""
    def index_select(self, dim: int, index: Any) -> Node: ...
    def cumsum(self, dim: int) -> Node: ...

    # ---- products
    def conv(self, weight: Node, bias: Node | None, stride: list[int], pad_lo: list[int],
             pad_hi: list[int], dilation: list[int], groups: int) -> Node: ...
    def conv_input(self, weight: Node, out_shape: list[int], stride: list[int],
                   pad_lo: list[int], pad_hi: list[int], dilation: list[int],
                   groups: int) -> Node: ...
    def conv_weight(self, grad_output: Node, weight_shape: list[int], stride: list[int],
                    pad_lo: list[int], pad_hi: list[int], dilation: list[int],
                    groups: int) -> Node: ...
    def unfold(self, kernel: list[int], stride: list[int], padding: list[int],
               dilation: list[int]) -> Node: ...
    def fold(self, output_size: list[int], kernel: list[int], stride: list[int],
             padding: list[int], dilation: list[int]) -> Node: ...
    def max_pool(self, kernel: list[int], stride: list[int], padding: list[int],
                 dilation: list[int], ceil_mode: bool) -> tuple[Node, Node]: ...
    def adaptive_max_pool(self, output_size: list[int]) -> tuple[Node, Node]: ...
    def avg_pool(self, kernel: list[int], stride: list[int], padding: list[int],
                 ceil_mode: bool, count_include_pad: bool,
                 divisor_override: int | None) -> Node: ...
    def adaptive_avg_pool(self, output_size: list[int]) -> Node: ...
    def batch_norm(self, weight: Node | None, bias: Node | None, running_mean: Node | None,
                   running_var: Node | None, eps: float) -> tuple[Node, Node, Node]: ...
    def pad(self, pads: list[int], mode: str, value: float) -> Node: ...
    def interpolate(self, size: list[int], mode: str, align_corners: bool,
                    scales: list[float] | None) -> Node: ...
    def matmul(self, other: Node | float, reflected: bool) -> Node: ...
    def dot(self, other: Node) -> Node: ...

# ---- creation (leaves)
def full(
    shape: Sequence[int], value: float | int | bool, dtype: str, requires_grad: bool
) -> Node: ...
def rand(
    shape: Sequence[int],
    low: float,
    high: float,
    dtype: str,
    requires_grad: bool,
    generator: Generator | None = None,
) -> Node: ...
def randn(
    shape: Sequence[int],
    mean: float,
    std: float,
    dtype: str,
    requires_grad: bool,
    generator: Generator | None = None,
) -> Node: ...
def arange(start: float, end: float, step: float, dtype: str, requires_grad: bool) -> Node: ...
def arange_int(start: int, end: int, step: int, dtype: str) -> Node: ...
def linspace(start: float, end: float, steps: int, dtype: str, requires_grad: bool) -> Node: ...
def eye(n: int, m: int, dtype: str, requires_grad: bool) -> Node: ...
def randperm(n: int, generator: Generator | None = None) -> Node: ...
def randint(
    low: int, high: int, shape: Sequence[int], dtype: str, generator: Generator | None = None
) -> Node: ...
def exponential(
    shape: Sequence[int], lambd: float, dtype: str, generator: Generator | None = None
) -> Node: ...
def bernoulli(p: Node, generator: Generator | None = None) -> Node: ...
def multinomial(
    probs: Node, num_samples: int, replacement: bool, generator: Generator | None = None
) -> Node: ...

@final
class Generator:
    """torch's CPU generator (MT19937 and its seed)."""

    def __new__(cls, seed: int) -> Generator: ...
    @staticmethod
    def default() -> Generator:
        """The process-wide generator."""
    def manual_seed(self, seed: int) -> None: ...
    def initial_seed(self) -> int: ...
    def get_state(self) -> list[int]: ...
    def set_state(self, state: Sequence[int]) -> None: ...

# ---- optimizer kernels (in place; False when the parameter has no gradient)
def sgd_step(
    param: Node,
    buf: Node | None,
    first: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
) -> bool: ...
def adam_step(
    param: Node,
    m: Node,
    v: Node,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    maximize: bool,
    max_exp_avg_sq: Node | None = None,
) -> bool: ...

# ---- grad mode and diagnostics
def set_grad_enabled(on: bool) -> bool:
    """Sets grad mode for this thread; returns the previous mode."""
def is_grad_enabled() -> bool: ...
def set_default_dtype(dtype: str) -> None: ...
def get_default_dtype() -> str: ...
def elementwise_ops() -> list[tuple[str, str, str]]: ...
def live_nodes() -> int:
    """Graph nodes alive in this process (for leak tests)."""
def set_num_threads(n: int) -> None:
    """Threads one large kernel (matmul) may use; 0 means every core."""
def get_num_threads() -> int: ...
