"""``torch.cuda``'s questions, answered for a CPU-only engine, so that device-picking code
(``'cuda' if torch.cuda.is_available() else 'cpu'``) runs unchanged.

>>> from mikagrad import cuda
>>> cuda.is_available(), cuda.device_count()
(False, 0)
"""

__all__ = ["is_available", "device_count"]


def is_available() -> bool:
    """False: MikaGrad has no GPU backend.

    >>> is_available()
    False
    """
    return False


def device_count() -> int:
    """0 GPUs.

    >>> device_count()
    0
    """
    return 0
