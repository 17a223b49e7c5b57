"""One adapter per library, so that an edge case or a property is written once and runs on
MikaGrad and on PyTorch alike (tests/test_edges.py, tests/test_edge_properties.py)."""

import numpy as np

import mikagrad as mg
import mikagrad.functional as F
from mikagrad.engine import Value


class MG:
    """The adapter's MikaGrad side."""

    name = "mikagrad"
    F = F

    @staticmethod
    def leaf(x, dt):
        return Value(np.array(x, dtype=dt))

    @staticmethod
    def const(x, dt):
        return Value(np.array(x, dtype=dt), requires_grad=False)

    maximum = staticmethod(mg.maximum)
    minimum = staticmethod(mg.minimum)
    where = staticmethod(mg.where)

    @staticmethod
    def index(x):
        return mg.tensor(x)

    @staticmethod
    def backward(y, g=None):
        """``y.backward()``, or with the upstream gradient ``g`` (a number or an array)."""
        if g is None:
            y.backward()
        else:
            y.backward(np.broadcast_to(np.asarray(g, dtype=y.dtype), y.shape).copy())

    @staticmethod
    def np(v):
        return None if v is None else np.asarray(v.numpy() if isinstance(v, Value) else v)

    @staticmethod
    def grad(v):
        return v.grad


class Torch:
    """The adapter's PyTorch side (built only when torch is installed)."""

    name = "torch"

    def __init__(self, torch):
        import torch.nn.functional as TF

        self.t, self.F = torch, TF
        self.maximum, self.minimum, self.where = torch.maximum, torch.minimum, torch.where

    def leaf(self, x, dt):
        return self.t.tensor(x, dtype=getattr(self.t, dt), requires_grad=True)

    def const(self, x, dt):
        return self.t.tensor(x, dtype=getattr(self.t, dt))

    def index(self, x):
        return self.t.tensor(x)

    def backward(self, y, g=None):
        if g is None:
            y.backward()
        else:
            a = np.broadcast_to(np.asarray(g, dtype=self.np(y).dtype), tuple(y.shape)).copy()
            y.backward(self.t.from_numpy(a))

    @staticmethod
    def np(v):
        return None if v is None else v.detach().numpy()

    @staticmethod
    def grad(v):
        return None if v.grad is None else v.grad.numpy()
