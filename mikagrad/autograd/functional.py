"""``torch.autograd.functional``: vjp, jvp, jacobian, hessian, vhp and hvp of a function,
with torch's signatures and return structures. Every derivative comes from the core's
backward pass (``autograd.grad`` and ``Node::jacobian``); jvp and hvp use the
double-backward trick, as torch's reverse-mode versions do.

>>> import mikagrad as mg
>>> hessian(lambda x: (x ** 3).sum(), mg.tensor([1.0, 2.0])).tolist()
[[6.0, 0.0], [0.0, 12.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _core
from ..creation import ones_like, zeros, zeros_like
from ..engine import Value, _wrap, enable_grad

__all__ = ["vjp", "jvp", "jacobian", "hessian", "vhp", "hvp"]


def _as_tuple(x: Any, what: str, fn: str) -> tuple[tuple[Value, ...], bool]:
    """``x`` as a tuple of Values, and whether it was given as a tuple (or list)."""
    is_tuple = isinstance(x, (tuple, list))
    items = tuple(x) if is_tuple else (x,)
    for i, v in enumerate(items):
        if not isinstance(v, Value):
            raise TypeError(f"{fn}: the {what} must be a Value or a tuple of Values, but the "
                            f"one at index {i} is a {type(v).__name__}")
    return items, is_tuple


def _untuple(items: Any, is_tuple: bool) -> Any:
    return tuple(items) if is_tuple else items[0]


def _prepare(inputs: tuple[Value, ...], create_graph: bool) -> tuple[Value, ...]:
    """Fresh Values to differentiate in: with ``create_graph`` an input that already has a
    graph stays on it (so an outer derivative sees through), else each is cut from its
    graph."""
    out = []
    for x in inputs:
        if create_graph and x.requires_grad:
            out.append(x.view_as(x))
        else:
            out.append(x.detach().requires_grad_(x._is_float))
    return tuple(out)


def _finish(values: Any, create_graph: bool) -> Any:
    """Results cut from their graphs, unless ``create_graph``."""
    if isinstance(values, tuple):
        return tuple(_finish(v, create_graph) for v in values)
    if values is None or create_graph:
        return values
    return values.detach()


def _check_v(v: Any, like: tuple[Value, ...], what: str, fn: str) -> tuple[Value, ...]:
    if v is None:
        if len(like) != 1 or like[0].numel() != 1:
            raise ValueError(f"{fn}: v can be omitted only when the {what} is a single "
                             "one-element Value")
        return (ones_like(like[0]),)
    vs, _ = _as_tuple(v, "v", fn)
    if len(vs) != len(like):
        raise ValueError(f"{fn}: v has {len(vs)} Values but the {what} has {len(like)}")
    for i, (a, b) in enumerate(zip(vs, like, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"{fn}: v[{i}] has shape {a.shape} but the {what} at index {i} "
                             f"has shape {b.shape}")
    return vs


def _grads(outputs: Sequence[Value | None], inputs: Sequence[Value],
           seeds: Sequence[Value | None], create_graph: bool) -> list[Value | None]:
    """The gradients of Σ <output, seed> for each input, None where it does not depend on
    it (torch's ``allow_unused=True``); None outputs are skipped."""
    pairs = [(o, s) for o, s in zip(outputs, seeds, strict=True)
             if o is not None and s is not None and o.requires_grad]
    if not pairs:
        return [None] * len(inputs)
    found = _core.Node.autograd_grad([o._node for o, _ in pairs], [s._node for _, s in pairs],
                                     [x._node for x in inputs], create_graph)
    return [None if n is None else _wrap(n) for n in found]


def _fill(grads: list[Value | None], like: tuple[Value, ...], strict: bool, fn: str,
          what: str = "input") -> tuple[Value, ...]:
    """Zeros for the Nones (torch's non-strict mode); strict mode raises instead."""
    out = []
    for i, (g, x) in enumerate(zip(grads, like, strict=True)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn}: the output of the function is independent of "
                                   f"{what} {i}, which strict mode does not allow")
            g = zeros_like(x)
        out.append(g)
    return tuple(out)


def _start(func: Callable[..., Any], inputs: Any, create_graph: bool, fn: str) -> tuple[
        tuple[Value, ...], bool, tuple[Value, ...], bool]:
    """Every transform's start: the prepared inputs and whether they were a tuple, then
    func's outputs at them and whether those were a tuple."""
    ins, in_tuple = _as_tuple(inputs, "inputs", fn)
    ins = _prepare(ins, create_graph)
    outs, out_tuple = _as_tuple(func(*ins), "outputs of the function", fn)
    return ins, in_tuple, outs, out_tuple


def _one_element(outs: tuple[Value, ...], out_tuple: bool, fn: str) -> Value:
    """The output of a function that hessian, vhp and hvp need to be a scalar."""
    if out_tuple or outs[0].numel() != 1:
        raise ValueError(f"{fn}: the function must return a single one-element Value, "
                         f"got {'a tuple' if out_tuple else f'shape {outs[0].shape}'}")
    return outs[0]


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """``(func(*inputs), vᵀ·J)``: the vector-Jacobian product of ``func`` at ``inputs``.

    >>> import mikagrad as mg
    >>> out, g = vjp(lambda x: x * x, mg.tensor([1.0, 3.0]), mg.tensor([1.0, 1.0]))
    >>> g.tolist()
    [2.0, 6.0]
    """
    with enable_grad():
        ins, in_tuple, outs, out_tuple = _start(func, inputs, create_graph, "vjp")
        vs = _check_v(v, outs, "output", "vjp")
        res = _fill(_grads(outs, ins, vs, create_graph), ins, strict, "vjp")
    return (_untuple(_finish(outs, create_graph), out_tuple),
            _untuple(_finish(res, create_graph), in_tuple))


def jvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """``(func(*inputs), J·v)``: the Jacobian-vector product, by the double-backward trick
    (the vjp is linear in its seed u, so J·v is the gradient of ⟨vjp(u), v⟩ in u).

    >>> import mikagrad as mg
    >>> out, t = jvp(lambda x: x * x, mg.tensor([1.0, 3.0]), mg.tensor([1.0, 0.0]))
    >>> t.tolist()
    [2.0, 0.0]
    """
    with enable_grad():
        ins, in_tuple, outs, out_tuple = _start(func, inputs, create_graph, "jvp")
        vs = _check_v(v, ins, "inputs", "jvp")
        us = tuple(zeros_like(o, requires_grad=o._is_float) for o in outs)
        back = _grads(outs, ins, us, create_graph=True)
        res_t = _fill(_grads(back, us, vs, create_graph), outs, strict, "jvp", what="output")
    return (_untuple(_finish(outs, create_graph), out_tuple),
            _untuple(_finish(res_t, create_graph), out_tuple))


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
             strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode") -> Any:
    """The Jacobian of ``func`` at ``inputs``: for output i and input j, a Value of shape
    ``outputs[i].shape + inputs[j].shape``, nested as torch's (a Value when both are single
    Values, else tuples). The rows come from the core, one backward pass per output
    element over one topological order; ``vectorize`` changes nothing.

    >>> import mikagrad as mg
    >>> jacobian(lambda x: x * x, mg.tensor([1.0, 3.0])).tolist()
    [[2.0, 0.0], [0.0, 6.0]]
    """
    del vectorize
    if strategy != "reverse-mode":
        raise ValueError(f"jacobian: strategy {strategy!r} is not supported; MikaGrad has "
                         "reverse mode only ('reverse-mode')")
    with enable_grad():
        ins, in_tuple, outs, out_tuple = _start(func, inputs, create_graph, "jacobian")
        rows = [_untuple(_jacobian_blocks(o, ins, create_graph, strict, "jacobian",
                                          f"output {i} of the function"), in_tuple)
                for i, o in enumerate(outs)]
    return _untuple(rows, out_tuple)


def _jacobian_blocks(out: Value, ins: tuple[Value, ...], create_graph: bool, strict: bool,
                     fn: str, what: str) -> list[Value]:
    """d out / d x for each input, from the core; zeros where out does not depend on x
    (strict mode raises instead)."""
    found = _core.Node.autograd_jacobian(out._node, [x._node for x in ins], create_graph) \
        if out.requires_grad else [None] * len(ins)
    blocks = []
    for j, (n, x) in enumerate(zip(found, ins, strict=True)):
        if n is None:
            if strict:
                raise RuntimeError(f"{fn}: {what} is independent of input {j}, which strict "
                                   "mode does not allow")
            blocks.append(zeros(*out.shape, *x.shape, dtype=x.dtype))
        else:
            blocks.append(_finish(_wrap(n), create_graph))
    return blocks


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
            strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The Hessian of ``func`` (which returns one element) at ``inputs``: a Value of shape
    ``x.shape + x.shape`` for a single input, else a tuple of tuples (block i, j is
    d²f/dxᵢdxⱼ).

    >>> import mikagrad as mg
    >>> hessian(lambda x, y: (x * y).sum(), (mg.tensor([1.0]), mg.tensor([2.0])))[0][1].tolist()
    [[1.0]]
    """
    del vectorize
    if outer_jacobian_strategy != "reverse-mode":
        raise ValueError(f"hessian: outer_jacobian_strategy {outer_jacobian_strategy!r} is not "
                         "supported; MikaGrad has reverse mode only ('reverse-mode')")
    with enable_grad():
        ins, in_tuple, outs, out_tuple = _start(func, inputs, create_graph, "hessian")
        out = _one_element(outs, out_tuple, "hessian")
        first = _fill(_grads([out], ins, (ones_like(out),), create_graph=True), ins, strict,
                      "hessian")
        rows = [_untuple(_jacobian_blocks(g, ins, create_graph, strict, "hessian",
                                          "the gradient of the function"), in_tuple)
                for g in first]
    return _untuple(rows, in_tuple)


def _first_gradient(func: Callable[..., Any], inputs: Any, v: Any, create_graph: bool,
                    fn: str) -> tuple[tuple[Value, ...], bool, Value, tuple[Value, ...],
                                      list[Value | None]]:
    """vhp's and hvp's start: the prepared inputs, whether they were a tuple, the
    one-element output, the checked v and the recorded first gradient."""
    ins, in_tuple, outs, out_tuple = _start(func, inputs, create_graph, fn)
    out = _one_element(outs, out_tuple, fn)
    vs = _check_v(v, ins, "inputs", fn)
    first = _grads([out], ins, (ones_like(out),), create_graph=True)
    return ins, in_tuple, out, vs, first


def vhp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """``(func(*inputs), vᵀ·H)``: the gradient of ⟨∇f, v⟩.

    >>> import mikagrad as mg
    >>> vhp(lambda x: (x ** 3).sum(), mg.tensor([1.0, 2.0]), mg.tensor([1.0, 1.0]))[1].tolist()
    [6.0, 12.0]
    """
    with enable_grad():
        ins, in_tuple, out, vs, first = _first_gradient(func, inputs, v, create_graph, "vhp")
        res_t = _fill(_grads(first, ins, vs, create_graph), ins, strict, "vhp")
    return _finish(out, create_graph), _untuple(_finish(res_t, create_graph), in_tuple)


def hvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """``(func(*inputs), H·v)``, by the double-backward trick, as torch: with u a zero seed
    that requires grad, H·v is the gradient in u of ⟨uᵀH, v⟩.

    >>> import mikagrad as mg
    >>> hvp(lambda x: (x ** 3).sum(), mg.tensor([1.0, 2.0]), mg.tensor([1.0, 0.0]))[1].tolist()
    [6.0, 0.0]
    """
    with enable_grad():
        ins, in_tuple, out, vs, first = _first_gradient(func, inputs, v, create_graph, "hvp")
        us = [None if g is None else zeros_like(g, requires_grad=True) for g in first]
        back = _grads(first, ins, us, create_graph=True)
        got = iter(_grads(back, [u for u in us if u is not None], vs, create_graph))
        full = [None if u is None else next(got) for u in us]
        res_t = _fill(full, ins, strict, "hvp")
    return _finish(out, create_graph), _untuple(_finish(res_t, create_graph), in_tuple)
