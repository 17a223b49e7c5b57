"""Function transforms in the style of ``torch.func`` and JAX: ``grad(f)`` is a function
that returns f's gradient, and transforms compose, so ``grad(grad(f))`` is the second
derivative.

Each transform runs f on fresh Values that require grad and differentiates with the core's
backward pass. An argument that already has a graph (because an outer transform, or plain
autograd, is differentiating through it) stays on it and the backward pass is recorded, so
the outer derivative sees through the inner one.

>>> import mikagrad as mg
>>> d2 = grad(grad(lambda x: x ** 3))
>>> d2(mg.tensor(2.0)).item()
12.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .autograd.functional import _grads, _jacobian_blocks
from .creation import ones_like, zeros_like
from .engine import Value, enable_grad, tensor

__all__ = ["grad", "grad_and_value", "vjp", "jacrev", "hessian"]


def _argnums(argnums: int | tuple[int, ...], n: int, fn: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    if not nums or not all(isinstance(i, int) for i in nums):
        raise TypeError(f"{fn}: argnums must be an int or a non-empty tuple of ints, "
                        f"got {argnums!r}")
    out = []
    for i in nums:
        if not -n <= i < n:
            raise ValueError(f"{fn}: argnums {i} is out of range for {n} positional "
                             "arguments")
        out.append(i % n)
    return tuple(out)


def _track(args: tuple[Any, ...], nums: tuple[int, ...], fn: str) -> tuple[
        list[Any], list[Value], bool]:
    """The arguments with those at ``nums`` replaced by Values to differentiate in, and
    whether any of them already had a graph (then the backward pass must be recorded)."""
    args_l = list(args)
    xs, outer = [], False
    for i in nums:
        a = args_l[i]
        if not isinstance(a, Value):
            a = tensor(a)
        if not a._is_float:
            raise TypeError(f"{fn}: argument {i} has dtype {a.dtype}; only float Values "
                            "can be differentiated")
        if a.requires_grad:
            # An outer transform, or plain autograd (a leaf's .grad), differentiates
            # through a: stay on its graph, as torch.func composes with torch.autograd.
            x, outer = a.view_as(a), True
        else:
            x = a.detach().requires_grad_()
        args_l[i] = x
        xs.append(x)
    return args_l, xs, outer


def _split_aux(out: Any, has_aux: bool, fn: str) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"{fn}: with has_aux=True the function must return a pair "
                        "(output, aux)")
    return out


def _cut(v: Any, keep: bool) -> Any:
    return v if keep or not isinstance(v, Value) else v.detach()


def grad_and_value(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
                   has_aux: bool = False) -> Callable[..., Any]:
    """A function returning ``(gradient, value)`` of ``func``, which must return one
    element; the gradient is a tuple when ``argnums`` is. With ``has_aux``, ``func``
    returns ``(output, aux)`` and the value is ``(output, aux)``.

    >>> import mikagrad as mg
    >>> g, v = grad_and_value(lambda x: (x * x).sum())(mg.tensor([1.0, 2.0]))
    >>> g.tolist(), v.item()
    ([2.0, 4.0], 5.0)
    """
    def wrapper(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
        nums = _argnums(argnums, len(args), "grad")
        with enable_grad():
            args_l, xs, outer = _track(args, nums, "grad")
            out, aux = _split_aux(func(*args_l, **kwargs), has_aux, "grad")
            if not isinstance(out, Value) or out.numel() != 1:
                shape = out.shape if isinstance(out, Value) else type(out).__name__
                raise ValueError(f"grad: the function must return a one-element Value, "
                                 f"got {shape}")
            gs = [zeros_like(x) if g is None else g
                  for g, x in zip(_grads([out], xs, [ones_like(out)], outer), xs, strict=True)]
        g = tuple(_cut(v, outer) for v in gs) if isinstance(argnums, tuple) \
            else _cut(gs[0], outer)
        value = _cut(out, outer)
        return g, ((value, aux) if has_aux else value)

    return wrapper


def grad(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
         has_aux: bool = False) -> Callable[..., Any]:
    """A function returning the gradient of ``func`` (one-element output) in its
    ``argnums`` arguments; ``(gradient, aux)`` with ``has_aux``.

    >>> import mikagrad as mg
    >>> grad(lambda x, y: (x * y).sum(), argnums=1)(mg.tensor([3.0]), mg.tensor([4.0])).tolist()
    [3.0]
    """
    inner = grad_and_value(func, argnums, has_aux)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g, value = inner(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def vjp(func: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """``(func(*primals), vjp_fn)``, and ``aux`` last with ``has_aux``; ``vjp_fn(ct)``
    returns the tuple of vector-Jacobian products with cotangent ``ct``, one per primal.

    >>> import mikagrad as mg
    >>> out, fn = vjp(lambda x: x * x, mg.tensor([1.0, 3.0]))
    >>> fn(mg.tensor([1.0, 1.0]))[0].tolist()
    [2.0, 6.0]
    """
    nums = tuple(range(len(primals)))
    with enable_grad():
        args_l, xs, outer = _track(primals, nums, "vjp")
        out, aux = _split_aux(func(*args_l), has_aux, "vjp")
    outs = out if isinstance(out, tuple) else (out,)
    if not all(isinstance(o, Value) for o in outs):
        raise TypeError("vjp: the function must return a Value or a tuple of Values")

    def vjp_fn(cotangents: Any) -> tuple[Value, ...]:
        cts = cotangents if isinstance(out, tuple) else (cotangents,)
        if len(cts) != len(outs):
            raise ValueError(f"vjp: got {len(cts)} cotangents for {len(outs)} outputs")
        cts = tuple(c if isinstance(c, Value) else tensor(c, dtype=o.dtype)
                    for c, o in zip(cts, outs, strict=True))
        for i, (c, o) in enumerate(zip(cts, outs, strict=True)):
            if c.shape != o.shape:
                raise ValueError(f"vjp: cotangent {i} has shape {c.shape} but the output "
                                 f"has shape {o.shape}")
        create = outer or any(c.requires_grad for c in cts)
        with enable_grad():
            found = _grads(outs, xs, cts, create)
        return tuple(zeros_like(x) if g is None else _cut(g, create)
                     for g, x in zip(found, xs, strict=True))

    value = tuple(_cut(o, outer) for o in outs) if isinstance(out, tuple) else _cut(out, outer)
    return (value, vjp_fn, aux) if has_aux else (value, vjp_fn)


def jacrev(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0,
           has_aux: bool = False) -> Callable[..., Any]:
    """A function returning the Jacobian of ``func`` (one Value output) in its ``argnums``
    arguments, of shape ``output.shape + input.shape``, by reverse mode (the rows come from
    the core).

    >>> import mikagrad as mg
    >>> jacrev(lambda x: x.sin())(mg.tensor([0.0, 0.0])).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nums = _argnums(argnums, len(args), "jacrev")
        with enable_grad():
            args_l, xs, outer = _track(args, nums, "jacrev")
            out, aux = _split_aux(func(*args_l, **kwargs), has_aux, "jacrev")
            if not isinstance(out, Value):
                raise TypeError("jacrev: the function must return a Value")
            jac = [_cut(j, outer) for j in
                   _jacobian_blocks(out, tuple(xs), outer, False, "jacrev", "the output")]
        result = tuple(jac) if isinstance(argnums, tuple) else jac[0]
        return (result, aux) if has_aux else result

    return wrapper


def hessian(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """``jacrev(jacrev(func))``: the Hessian, of shape ``x.shape + x.shape``.

    >>> import mikagrad as mg
    >>> hessian(lambda x: (x ** 2).sum())(mg.tensor([1.0, 2.0])).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    return jacrev(jacrev(func, argnums), argnums)
