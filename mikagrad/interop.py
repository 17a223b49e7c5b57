"""Moving a model to PyTorch and back: ``to_torch`` and ``from_torch`` (torch is optional).

``to_torch(model)`` builds the equivalent ``torch.nn`` module with the same weights and
buffers, bit for bit and in the same dtypes; ``from_torch(torch_model)`` goes the other way.
An optimizer converts too, given the two models it pairs parameters through, so training
resumes where it stopped::

    tmodel = to_torch(model)
    topt = to_torch(opt, model, tmodel)     # SGD momentum, Adam moments and step counts
    model2 = from_torch(tmodel)
    opt2 = from_torch(topt, tmodel, model2)

Modules are matched by class: the containers (``Sequential``, ``ModuleList``,
``ModuleDict``), ``Linear``, the activations, ``Dropout``, ``LayerNorm``, ``Embedding``,
``MultiheadAttention``, and the conv, pool and norm layers. The original MikaGrad's ``MLP``
and ``Layer`` become an ``nn.Sequential`` of ``Linear`` and ``ReLU`` (their ``w`` is the
transpose of torch's ``weight``). A module of your own has no counterpart to build; copy its
state into one you built with ``into=``: ``to_torch(block, into=TorchBlock())`` pairs
tensors by torch's ``state_dict`` keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import nn, optim
from .engine import Value, no_grad

__all__ = ["from_torch", "to_torch"]


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("mikagrad.interop needs PyTorch: pip install torch") from None
    return torch


def _bool(name: str) -> Callable[[Any], bool]:
    return lambda m: getattr(m, name) is not None


# Per class: the constructor arguments both frameworks name and store alike, each read off
# the module (a callable computes one). The same table builds in both directions.
_ARGS: dict[str, dict[str, Any]] = {
    "Linear": {"in_features": None, "out_features": None, "bias": _bool("bias")},
    "ReLU": {}, "SiLU": {}, "Tanh": {}, "Sigmoid": {}, "GELU": {},
    "LeakyReLU": {"negative_slope": None},
    "Softmax": {"dim": None}, "LogSoftmax": {"dim": None},
    "Flatten": {"start_dim": None, "end_dim": None},
    "Unflatten": {"dim": None, "unflattened_size": None},
    "Dropout": {"p": None}, "Dropout1d": {"p": None}, "Dropout2d": {"p": None},
    "LayerNorm": {"normalized_shape": None, "eps": None, "elementwise_affine": None},
    "Embedding": {"num_embeddings": None, "embedding_dim": None, "padding_idx": None},
    "MultiheadAttention": {"embed_dim": None, "num_heads": None, "dropout": None,
                           "bias": _bool("in_proj_bias"), "batch_first": None},
    **{name: {"in_channels": None, "out_channels": None, "kernel_size": None,
              "stride": None, "padding": None, "dilation": None, "groups": None,
              "bias": _bool("bias"), "padding_mode": None}
       for name in ("Conv1d", "Conv2d")},
    **{name: {"in_channels": None, "out_channels": None, "kernel_size": None,
              "stride": None, "padding": None, "output_padding": None, "groups": None,
              "bias": _bool("bias"), "dilation": None}
       for name in ("ConvTranspose1d", "ConvTranspose2d")},
    **{name: {"kernel_size": None, "stride": None, "padding": None, "dilation": None,
              "return_indices": None, "ceil_mode": None}
       for name in ("MaxPool1d", "MaxPool2d")},
    "AvgPool1d": {"kernel_size": None, "stride": None, "padding": None, "ceil_mode": None,
                  "count_include_pad": None},
    "AvgPool2d": {"kernel_size": None, "stride": None, "padding": None, "ceil_mode": None,
                  "count_include_pad": None, "divisor_override": None},
    "AdaptiveAvgPool1d": {"output_size": None}, "AdaptiveAvgPool2d": {"output_size": None},
    "AdaptiveMaxPool2d": {"output_size": None, "return_indices": None},
    "Upsample": {"size": None, "scale_factor": None, "mode": None, "align_corners": None},
    **{name: {"num_features": None, "eps": None, "momentum": None, "affine": None,
              "track_running_stats": None}
       for name in ("BatchNorm1d", "BatchNorm2d", "InstanceNorm1d", "InstanceNorm2d")},
    "GroupNorm": {"num_groups": None, "num_channels": None, "eps": None, "affine": None},
}
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


def _args(m: Any, name: str) -> dict[str, Any]:
    return {k: (f(m) if f else getattr(m, k)) for k, f in _ARGS[name].items()}


def _unsupported(where: str, m: Any) -> TypeError:
    kind = f"{type(m).__module__}.{type(m).__qualname__}"
    return TypeError(
        f"{where}: {kind} has no counterpart to build; build the other framework's module "
        f"yourself and copy the state into it with into= (tensors are paired by torch's "
        f"state_dict keys)")


# ---- parameter pairing -------------------------------------------------------------------


def _key_map(module: nn.Module) -> Iterator[tuple[str, str, bool]]:
    """(MikaGrad state key, torch state key, transposed) for every leaf Value below
    ``module``: the same key, except that an ``MLP``'s layers are a flat ``Sequential``
    (``layers.1.w`` is ``2.weight``, transposed) and a ``Layer`` is a ``Sequential`` too."""
    renames: dict[str, str] = {}  # a MikaGrad key prefix -> torch's
    for name, m in module.named_modules():
        pre = f"{name}." if name else ""
        tpre = renames.get(name, name)
        tpre = f"{tpre}." if tpre else ""
        if isinstance(m, nn.MLP):
            for i in range(len(m.layers)):
                renames[f"{pre}layers.{i}"] = f"{tpre}{2 * i}"
    modules = dict(module.named_modules())
    for key, _ in module._named_leaves():
        owner, _, attr = key.rpartition(".")
        if type(modules.get(owner)) is nn.Layer and attr in ("w", "b"):
            tname = "weight" if attr == "w" else "bias"
            # An MLP's layer is a Linear of the flat Sequential; a Layer of its own is one.
            towner = renames.get(owner) or (f"{owner}.0" if owner else "0")
            yield key, f"{towner}.{tname}", attr == "w"
            continue
        tkey = key
        for pre in sorted(renames, key=len, reverse=True):
            if key.startswith(pre + "."):
                tkey = renames[pre] + key[len(pre):]
                break
        yield key, tkey, False


def _pairs(module: nn.Module, tmodule: Any) -> list[tuple[Value, Any, bool, str]]:
    """(Value, torch tensor, transposed, torch key) for every leaf Value of ``module``."""
    own = dict(module._named_leaves())
    transient = module._transient()
    # Every name of a tied tensor, so that each owner is paired.
    theirs = dict(tmodule.named_parameters(remove_duplicate=False))
    theirs.update(tmodule.named_buffers(remove_duplicate=False))
    out, missing, seen = [], [], set()
    for key, tkey, transposed in _key_map(module):
        if key in transient and tkey not in theirs:
            continue
        if tkey not in theirs:
            missing.append(tkey)
        else:
            out.append((own[key], theirs[tkey], transposed, tkey))
            seen.add(tkey)
    if missing:
        raise KeyError(f"the torch module {type(tmodule).__name__} lacks "
                       + ", ".join(map(repr, missing)))
    extra = [k for k in tmodule.state_dict() if k not in seen]
    if extra:
        raise KeyError(f"the torch module {type(tmodule).__name__} has "
                       + ", ".join(map(repr, extra))
                       + f", which the MikaGrad module {type(module).__name__} lacks")
    return out


def _check_shape(dst: Any, src: np.ndarray, key: str) -> None:
    if tuple(dst.shape) != src.shape:
        raise ValueError(f"{key!r} has shape {src.shape} here and {tuple(dst.shape)} there")


# ---- modules -----------------------------------------------------------------------------


def _build_torch(m: nn.Module, torch: Any) -> Any:
    tnn = torch.nn
    if isinstance(m, nn.MLP):
        return tnn.Sequential(*[t for layer in m.layers for t in _build_torch(layer, torch)])
    if type(m) is nn.Layer:
        linear = tnn.Linear(m.w.shape[0], m.w.shape[1])
        return tnn.Sequential(linear, tnn.ReLU()) if m.nonlin else tnn.Sequential(linear)
    name = type(m).__name__
    if type(m) is getattr(nn, name, None) and name in _CONTAINERS:
        kids = {k: _build_torch(c, torch) for k, c in m.named_children()}
        if name == "Sequential":
            from collections import OrderedDict

            return tnn.Sequential(OrderedDict(kids))
        return tnn.ModuleList(kids.values()) if name == "ModuleList" else tnn.ModuleDict(kids)
    if type(m) is not getattr(nn, name, None) or name not in _ARGS:
        raise _unsupported("to_torch", m)
    return getattr(tnn, name)(**_args(m, name))


def _module_to_torch(m: nn.Module, into: Any, torch: Any) -> Any:
    tm = _build_torch(m, torch) if into is None else into
    pairs = _pairs(m, tm)
    with torch.no_grad():
        for v, t, transposed, tkey in pairs:
            arr = v.numpy().T if transposed else v.numpy()
            _check_shape(t, arr, tkey)
            # In place: the Parameter objects (tied ones, an optimizer's) and their device
            # stay; the dtype becomes ours.
            t.data = torch.from_numpy(np.array(arr, order="C")).to(t.device)
            if isinstance(t, torch.nn.Parameter):
                t.requires_grad_(v.requires_grad)
    _copy_modes(m, tm)
    return tm


def _copy_modes(src: Any, dst: Any) -> None:
    """train/eval of every module, where both have one of that name (an MLP's layers are
    not: they behave the same in both modes)."""
    dst.train(src.training)
    for name, m in src.named_modules():
        if not name:
            continue
        try:
            dst.get_submodule(name).training = m.training
        except AttributeError:
            continue


def _build_ours(tm: Any, torch: Any) -> nn.Module:
    tnn = torch.nn
    name = type(tm).__name__
    if type(tm) is getattr(tnn, name, None) and name in _CONTAINERS:
        kids = {k: _build_ours(c, torch) for k, c in tm.named_children()}
        if name == "Sequential":
            return nn.Sequential(kids)
        return nn.ModuleList(kids.values()) if name == "ModuleList" else nn.ModuleDict(kids)
    if type(tm) is not getattr(tnn, name, None) or name not in _ARGS:
        raise _unsupported("from_torch", tm)
    if name == "GELU" and tm.approximate != "none":
        raise ValueError("from_torch: GELU(approximate='tanh') has no MikaGrad counterpart")
    if name == "LayerNorm" and tm.elementwise_affine and tm.bias is None:
        raise ValueError("from_torch: LayerNorm(bias=False) has no MikaGrad counterpart")
    if name == "MultiheadAttention" and (not tm._qkv_same_embed_dim or tm.bias_k is not None
                                         or tm.add_zero_attn):
        raise ValueError("from_torch: MultiheadAttention with kdim/vdim, add_bias_kv or "
                         "add_zero_attn has no MikaGrad counterpart")
    if name == "Embedding" and (tm.max_norm is not None or tm.scale_grad_by_freq):
        raise ValueError("from_torch: Embedding with max_norm or scale_grad_by_freq has no "
                         "MikaGrad counterpart")
    if name == "Upsample" and tm.recompute_scale_factor:
        raise ValueError("from_torch: Upsample(recompute_scale_factor=True) has no MikaGrad "
                         "counterpart")
    if name in ("Softmax", "LogSoftmax") and tm.dim is None:
        raise ValueError(f"from_torch: {name}(dim=None) picks a dim implicitly; give dim")
    return getattr(nn, name)(**_args(tm, name))


def _module_from_torch(tm: Any, into: nn.Module | None, torch: Any) -> nn.Module:
    m = _build_ours(tm, torch) if into is None else into
    pairs = _pairs(m, tm)
    with no_grad():
        for v, t, transposed, tkey in pairs:
            arr = t.detach().cpu().numpy()
            arr = arr.T if transposed else arr
            _check_shape(v, arr, tkey)
            if v.dtype != arr.dtype:
                v.data = Value(np.array(arr), requires_grad=False)
            else:
                v.data[...] = arr
            if isinstance(t, torch.nn.Parameter) and v._is_float:
                v.requires_grad_(t.requires_grad)
    _copy_modes(tm, m)
    return m


# ---- optimizers --------------------------------------------------------------------------

_OPTIMIZERS = {
    "SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "Adam": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "AdamW": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
}
_STATE = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _optimizer_class(obj: Any, where: str) -> str:
    name = type(obj).__name__
    # torch's Adam(decoupled_weight_decay=True) is AdamW.
    if name == "Adam" and any(g.get("decoupled_weight_decay") for g in obj.param_groups):
        name = "AdamW"
    if name not in _OPTIMIZERS:
        raise TypeError(f"{where}: {type(obj).__module__}.{name} has no counterpart; "
                        f"SGD, Adam and AdamW convert")
    return name


def _optimizer_to_torch(opt: optim.Optimizer, module: Any, tmodule: Any, torch: Any) -> Any:
    name = _optimizer_class(opt, "to_torch")
    index = {v._node.id: (t, transposed) for v, t, transposed, _ in _pairs(module, tmodule)}
    sd = opt.state_dict()
    groups, state, params = [], {}, opt._params()
    for g in opt.param_groups:
        tparams = []
        for p in g["params"]:
            if p._node.id not in index:
                raise KeyError(f"to_torch: the optimizer holds a parameter of shape {p.shape} "
                               f"that the module does not")
            tparams.append(index[p._node.id][0])
        groups.append({"params": tparams, **{k: g[k] for k in _OPTIMIZERS[name]}})
    topt = getattr(torch.optim, name)(groups)
    for i, s in sd["state"].items():
        transposed = index[params[i]._node.id][1]
        entry: dict[str, Any] = {}
        for k, v in s.items():
            if k in _STATE:
                entry[k] = torch.from_numpy(np.array(v.T if transposed else v, order="C"))
            elif k == "step":
                entry[k] = torch.tensor(float(v), dtype=torch.float32)
        if entry:
            state[i] = entry
    tsd = topt.state_dict()
    tsd["state"] = state
    topt.load_state_dict(tsd)
    return topt


def _optimizer_from_torch(topt: Any, tmodule: Any, module: nn.Module) -> optim.Optimizer:
    name = _optimizer_class(topt, "from_torch")
    index = {id(t): (v, transposed) for v, t, transposed, _ in _pairs(module, tmodule)}
    groups = []
    for g in topt.param_groups:
        ps = []
        for t in g["params"]:
            if id(t) not in index:
                raise KeyError(f"from_torch: the optimizer holds a parameter of shape "
                               f"{tuple(t.shape)} that the torch module does not")
            ps.append(index[id(t)][0])
        # A tensor lr (torch allows one) becomes a float, so the state dict saves.
        opts = {k: g[k] for k in _OPTIMIZERS[name]}
        if hasattr(opts["lr"], "item"):  # a tensor lr (torch allows one): a float, to save
            opts["lr"] = float(opts["lr"])
        if name != "SGD":
            opts["betas"] = tuple(opts["betas"])
        groups.append({"params": ps, **opts})
    opt = getattr(optim, name)(groups)
    tparams = [t for g in topt.param_groups for t in g["params"]]
    state: dict[int, dict[str, Any]] = {}
    for i, t in enumerate(tparams):
        s = topt.state.get(t)
        if not s:
            continue
        transposed = index[id(t)][1]
        entry: dict[str, Any] = {}
        for k, v in s.items():
            if k in _STATE and v is not None:
                arr = v.detach().cpu().numpy()
                entry[k] = arr.T if transposed else arr
            elif k == "step":
                entry[k] = int(v.item() if hasattr(v, "item") else v)
        state[i] = entry
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    return opt


# ---- the two entry points ----------------------------------------------------------------


def to_torch(obj: Any, module: nn.Module | None = None, torch_module: Any = None, *,
             into: Any = None) -> Any:
    """The PyTorch counterpart of a MikaGrad module or optimizer.

    A module gives a ``torch.nn.Module`` (or fills ``into``, a torch module you built) with
    the same weights and buffers, dtypes kept, in the same train/eval mode. An optimizer
    (SGD, Adam, AdamW) gives a ``torch.optim`` optimizer over ``torch_module``'s parameters
    with the same hyperparameters and state; ``module`` is the MikaGrad model it trains.
    Anything else is a TypeError, before torch is imported.

    >>> to_torch("model")
    Traceback (most recent call last):
    TypeError: to_torch: expected a mikagrad Module or Optimizer, got str
    """
    if not isinstance(obj, (nn.Module, optim.Optimizer)):
        raise TypeError(f"to_torch: expected a mikagrad Module or Optimizer, got "
                        f"{type(obj).__name__}")
    torch = _torch()
    if isinstance(obj, nn.Module):
        return _module_to_torch(obj, into, torch)
    if module is None or torch_module is None:
        raise TypeError("to_torch(optimizer, module, torch_module): give the MikaGrad "
                        "model it trains and the torch model to train")
    return _optimizer_to_torch(obj, module, torch_module, torch)


def from_torch(obj: Any, torch_module: Any = None, module: nn.Module | None = None, *,
               into: nn.Module | None = None) -> Any:
    """The MikaGrad counterpart of a torch module or optimizer (``to_torch`` reversed).

    A ``torch.nn.Module`` gives a MikaGrad module (or fills ``into``); a ``torch.optim``
    SGD, Adam or AdamW gives ours over ``module``'s parameters, where ``torch_module`` is the
    torch model it trains. A MikaGrad object is a TypeError, before torch is imported.

    >>> from_torch(nn.Linear(2, 2))
    Traceback (most recent call last):
    TypeError: from_torch: Linear is a MikaGrad module already; to_torch goes the other way
    """
    if isinstance(obj, (nn.Module, optim.Optimizer)):
        kind = "module" if isinstance(obj, nn.Module) else "optimizer"
        raise TypeError(f"from_torch: {type(obj).__name__} is a MikaGrad {kind} already; "
                        "to_torch goes the other way")
    torch = _torch()
    if isinstance(obj, torch.nn.Module):
        return _module_from_torch(obj, into, torch)
    if isinstance(obj, torch.optim.Optimizer):
        if module is None or torch_module is None:
            raise TypeError("from_torch(optimizer, torch_module, module): give the torch "
                            "model it trains and the MikaGrad model to train")
        return _optimizer_from_torch(obj, torch_module, module)
    raise TypeError(f"from_torch: expected a torch.nn.Module or torch.optim.Optimizer, got "
                    f"{type(obj).__name__}")
