"""``torch.autograd.grad``: gradients returned as Values, which, with ``create_graph=True``,
have graphs of their own, so they can be differentiated again (Hessians, gradient
penalties, meta-learning).

>>> import mikagrad as mg
>>> x = mg.tensor([3.0], requires_grad=True)
>>> (dx,) = grad((x ** 3).sum(), x, create_graph=True)
>>> (dxx,) = grad(dx.sum(), x)
>>> dx.tolist(), dxx.tolist()
([27.0], [18.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import _core
from ..creation import ones_like, zeros_like
from ..engine import GradError, Value, _wrap, tensor
from . import functional

__all__ = ["grad", "functional"]


def _values(x: Value | Sequence[Value], what: str) -> tuple[Value, ...]:
    items = (x,) if isinstance(x, Value) else tuple(x)
    if not items or not all(isinstance(v, Value) for v in items):
        raise TypeError(f"grad: {what} must be a Value or a non-empty sequence of Values")
    return items


def grad(outputs: Value | Sequence[Value], inputs: Value | Sequence[Value],
         grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         is_grads_batched: bool = False, materialize_grads: bool = False) -> tuple[Any, ...]:
    """The gradients of ``outputs`` (weighted by ``grad_outputs``; a one-element output may
    omit it) for each of ``inputs``, as torch's: nothing is added to any ``.grad``.

    With ``create_graph`` the backward pass is recorded, so the results can be
    differentiated again. An input the outputs do not depend on raises, unless
    ``allow_unused`` (then None) or ``materialize_grads`` (then zeros). Graphs are never
    freed by a backward pass here, so ``retain_graph`` changes nothing.

    >>> import mikagrad as mg
    >>> w = mg.tensor([1.0, 2.0], requires_grad=True)
    >>> grad((w * w).sum(), [w])[0].tolist()
    [2.0, 4.0]
    """
    del retain_graph  # graphs are kept until their last Value goes
    if is_grads_batched:
        raise ValueError("grad: is_grads_batched=True is not supported")
    outs, ins = _values(outputs, "outputs"), _values(inputs, "inputs")
    if grad_outputs is None:
        gos: list[Any] = [None] * len(outs)
    else:
        gos = [grad_outputs] if isinstance(grad_outputs, Value) or len(outs) == 1 and not \
            isinstance(grad_outputs, (list, tuple)) else list(grad_outputs)
    if len(gos) != len(outs):
        raise ValueError(f"grad: got {len(gos)} grad_outputs for {len(outs)} outputs")
    seeds = []
    for i, (o, g) in enumerate(zip(outs, gos, strict=True)):
        if g is None:
            if o.size != 1:
                raise GradError(f"grad: output {i} has shape {o.shape}: a gradient can be "
                                "implied only for one-element outputs; pass grad_outputs")
            g = ones_like(o)
        elif not isinstance(g, Value):
            g = tensor(g, dtype=o.dtype)
        seeds.append(g)
    found = _core.Node.autograd_grad([o._node for o in outs], [s._node for s in seeds],
                                     [x._node for x in ins], bool(create_graph))
    result: list[Any] = []
    for i, (x, n) in enumerate(zip(ins, found, strict=True)):
        if n is not None:
            result.append(_wrap(n))
        elif materialize_grads:
            result.append(zeros_like(x))
        elif allow_unused:
            result.append(None)
        else:
            raise GradError(f"grad: input {i} (shape {x.shape}) was not used to compute the "
                            "outputs; pass allow_unused=True to get None for it")
    return tuple(result)
