"""MikaGrad: a tensor autograd engine with a Rust core and micrograd's spirit.

>>> import mikagrad as mg
>>> x = mg.Value([[1.0, 2.0], [3.0, 4.0]])
>>> (x @ x).sum().backward()
>>> x.grad
Value([[ 7., 11.],
       [ 9., 13.]])
"""

from . import autograd, cuda, data, func, functional, nn, optim
from ._core import __version__
from .creation import (
    Generator,
    arange,
    bernoulli,
    default_generator,
    empty,
    empty_like,
    eye,
    full,
    full_like,
    initial_seed,
    linspace,
    manual_seed,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    seed,
    zeros,
    zeros_like,
)
from .engine import (
    GradError,
    ShapeError,
    Tensor,
    Value,
    bool_,
    enable_grad,
    float32,
    float64,
    from_dlpack,
    get_default_dtype,
    get_num_threads,
    inference_mode,
    int32,
    int64,
    is_grad_enabled,
    no_grad,
    set_default_dtype,
    set_num_threads,
    tensor,
)
from .explain import explain
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .ops import (
    Histogram,
    abs,
    all,
    allclose,
    amax,
    amin,
    any,
    argmax,
    argmin,
    argsort,
    cat,
    chunk,
    clamp,
    clip,
    cumsum,
    dot,
    equal,
    exp,
    histogram,
    isclose,
    log,
    log2,
    log10,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    numel,
    relu,
    sigmoid,
    softmax,
    sort,
    split,
    sqrt,
    square,
    stack,
    std,
    sum,
    tanh,
    topk,
    tril,
    triu,
    var,
    where,
)
from .serialization import SerializationError, load, save

# torch's names for the dtypes. (They shadow the builtins only inside this module.)
bool = bool_
long = int64
int = int32
float = float32
double = float64

__all__ = [
    "__version__",
    "Value", "Tensor", "tensor", "from_dlpack", "bool", "bool_", "int32", "int", "int64", "long",
    "float32", "float", "float64", "double", "set_default_dtype",
    "get_default_dtype", "no_grad", "enable_grad", "is_grad_enabled", "set_num_threads",
    "get_num_threads", "manual_seed", "Generator", "default_generator", "initial_seed", "seed",
    "randint", "randint_like", "normal", "multinomial", "bernoulli", "empty", "empty_like",
    "zeros", "ones", "full", "eye", "arange", "linspace", "rand", "randn", "randperm",
    "zeros_like", "ones_like", "full_like", "rand_like", "randn_like",
    "cat", "stack", "split", "chunk", "where", "maximum", "minimum", "matmul", "dot",
    "argmax", "argmin", "sort", "argsort", "topk", "inference_mode",
    "tanh", "exp", "log", "log10", "log2", "sqrt", "abs", "sigmoid", "relu", "square", "clamp",
    "clip", "sum", "mean", "var", "std", "max", "min", "amax", "amin", "logsumexp", "softmax",
    "log_softmax", "all", "any", "numel", "isclose", "allclose", "equal", "tril", "triu",
    "histogram", "Histogram", "cumsum", "cuda",
    "gradcheck", "gradgradcheck", "autograd", "func", "GradcheckError", "ShapeError", "GradError",
    "SerializationError",
    "save", "load", "functional", "nn", "optim", "data", "explain",
]

# Imported on first use, so `import mikagrad` stays fast: `mikagrad.onnx.export`,
# `mikagrad.interop.to_torch`.
_LAZY = ("interop", "onnx")


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
