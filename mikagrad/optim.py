"""Optimizers with PyTorch's update rules; each parameter's update is one fused Rust kernel.

>>> import mikagrad as mg
>>> w = mg.Value([1.0, -2.0])
>>> opt = mg.optim.SGD([w], lr=0.1)
>>> (w * w).sum().backward(); opt.step(); w.data
Value([ 0.8, -1.6])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _core
from .engine import Value

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "StepLR", "ExponentialLR", "CosineAnnealingLR"]


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyperparameters) and per-parameter state.

    A group's own options override the defaults given to the optimizer, as in PyTorch.

    >>> w, b = Value([1.0]), Value([0.0])
    >>> opt = SGD([{"params": [w]}, {"params": [b], "lr": 0.01}], lr=0.1)
    >>> [g["lr"] for g in opt.param_groups]
    [0.1, 0.01]
    """

    defaults: dict[str, Any]

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[int, dict[str, Any]] = {}
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        ps = list(group["params"])
        for p in ps:
            if not isinstance(p, Value):
                raise TypeError(
                    f"{type(self).__name__}: parameters must be Values, got {type(p).__name__}"
                )
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown options {sorted(unknown)}")
        self.param_groups.append({**self.defaults, **group, "params": ps})

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears every parameter's gradient (to None, as PyTorch, or to zeros)."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none:
                    p.grad = None
                else:
                    p._node.zero_own_grad()

    def _params(self) -> list[Value]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """State as numpy arrays, keyed by parameter position, as PyTorch's."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {
            index[pid]: {k: (np.array(v.data()) if isinstance(v, _core.Node) else v)
                         for k, v in s.items()}
            for pid, s in self.state.items() if pid in index
        }
        groups = []
        for g in self.param_groups:
            d = {k: v for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        groups = sd.get("param_groups")
        if groups is None or "state" not in sd:
            raise KeyError("load_state_dict: expected keys 'state' and 'param_groups'")
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"load_state_dict: {len(groups)} parameter groups given, optimizer has "
                f"{len(self.param_groups)}"
            )
        params = self._params()
        for mine, theirs in zip(self.param_groups, groups):
            if len(theirs["params"]) != len(mine["params"]):
                raise ValueError("load_state_dict: a parameter group has a different size")
            mine.update({k: v for k, v in theirs.items() if k != "params"})
        self.state = {}
        for key, s in sd["state"].items():
            i = int(key)
            if not 0 <= i < len(params):
                raise KeyError(f"load_state_dict: state for parameter {i}, which does not exist")
            p = params[i]
            entry: dict[str, Any] = {}
            for k, v in s.items():
                if k in _BUFFERS:
                    a = np.asarray(v, dtype=p.dtype)
                    if a.shape != p.shape:
                        raise ValueError(
                            f"load_state_dict: state '{k}' of parameter {i} has shape {a.shape}, "
                            f"the parameter has {p.shape}"
                        )
                    # np.array, not ascontiguousarray: that one turns 0-d state into (1,).
                    entry[k] = _core.Node.from_numpy(np.array(a, order="C"))
                else:
                    entry[k] = v.item() if isinstance(v, np.ndarray) else v
            self.state[id(p)] = entry

    def step(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in g.items() if k != "params"]
        return "\n".join(lines + [")"])


_BUFFERS = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def _zeros_node(p: Value) -> _core.Node:
    return _core.full(list(p.shape), 0.0, p.dtype.name, False)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    >>> w = Value([1.0]); opt = SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2): opt.zero_grad(); (w * w).sum().backward(); opt.step()
    >>> w.tolist()  # 1 - 0.1 * 2, then 0.8 - 0.1 * (0.9 * 2 + 1.6)
    [0.46]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 maximize: bool = False) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"SGD: invalid lr={lr}, momentum={momentum} or weight_decay={weight_decay}"
            )
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def step(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                s = self.state.setdefault(id(p), {})
                buf = s.get("momentum_buffer")
                first = buf is None
                if g["momentum"] != 0 and first:
                    buf = _zeros_node(p)
                if _core.sgd_step(p._node, buf if g["momentum"] != 0 else None, first, g["lr"],
                                  g["momentum"], g["dampening"], g["nesterov"],
                                  g["weight_decay"], g["maximize"]) and g["momentum"] != 0:
                    s["momentum_buffer"] = buf


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds ``wd * p`` to the gradient.

    Parameters without a gradient are skipped. The first step moves each element by about
    ``lr``, whatever the gradient's scale:

    >>> w = Value([1.0, -100.0]); opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step(); w.tolist()
    [0.9, -99.9]
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False,
                 maximize: bool = False) -> None:
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: invalid lr={lr}, betas={betas} or eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    def step(self) -> None:
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if not p._node.has_grad:
                    continue
                s = self.state.setdefault(id(p), {})
                if not s:
                    s.update(step=0, exp_avg=_zeros_node(p), exp_avg_sq=_zeros_node(p))
                amsgrad = g.get("amsgrad", False)
                if amsgrad and "max_exp_avg_sq" not in s:
                    s["max_exp_avg_sq"] = _zeros_node(p)
                s["step"] += 1
                _core.adam_step(p._node, s["exp_avg"], s["exp_avg_sq"], s["step"], g["lr"], b1,
                                b2, g["eps"], g["weight_decay"], self._decoupled, g["maximize"],
                                s["max_exp_avg_sq"] if amsgrad else None)


class AdamW(Adam):
    """Adam with decoupled weight decay: ``p *= 1 - lr * wd`` before the Adam update.

    With a zero gradient, AdamW only shrinks ``p``, while Adam's decay passes through the
    normalised update and moves ``p`` by ``lr``:

    >>> w, v = Value([1.0]), Value([1.0]); (0 * (w + v)).sum().backward()
    >>> AdamW([w], lr=0.1, weight_decay=0.5).step(); Adam([v], lr=0.1, weight_decay=0.5).step()
    >>> w.tolist(), v.tolist()
    ([0.95], [0.9])
    """

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)


class LRScheduler:
    """Sets each group's lr from its initial lr and the epoch count, in closed form."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        self.optimizer = optimizer
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base: float, epoch: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "optimizer"}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        vars(self).update(sd)


class StepLR(LRScheduler):
    """lr = base * gamma ** (epoch // step_size).

    >>> sched = StepLR(SGD([Value([1.0])], lr=1.0), step_size=2, gamma=0.5)
    >>> for _ in range(3): sched.step()
    >>> sched.get_last_lr()  # epoch 3
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base * gamma ** epoch.

    >>> sched = ExponentialLR(SGD([Value([1.0])], lr=1.0), gamma=0.5)
    >>> for _ in range(3): sched.step()
    >>> sched.get_last_lr()  # epoch 3
    [0.125]
    """

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.

    >>> sched = CosineAnnealingLR(SGD([Value([1.0])], lr=1.0), T_max=4)
    >>> for _ in range(2): sched.step()
    >>> sched.get_last_lr()  # epoch 2, halfway down
    [0.5]
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base: float, epoch: int) -> float:
        cos = math.cos(math.pi * epoch / self.T_max)
        return self.eta_min + (base - self.eta_min) * (1 + cos) / 2
