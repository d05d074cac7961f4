# Copyright (c) mmbinpc contributors. All rights reserved.
"""Which implementation the CPU point ops use: compiled or brute force.

``'compiled'`` (default) runs the Numba kernels of
:mod:`mmbinpc.deploy.kernels.points`; ``'brute_force'`` the PyTorch-only paths.
Both give the same results; the switch exists for comparisons and tests.
"""
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

#: The implementations of the point ops (see the module doc).
BACKENDS = ('compiled', 'brute_force')
_backend = ['compiled']
_COMPILED_DTYPES = (torch.float32, torch.float64)


def set_backend(name: str) -> str:
    """Choose the implementation of the neighbour queries and FPS.

    Args:
        name (str): One of :data:`BACKENDS`.

    Returns:
        str: The previous backend, to restore it.
    """
    if name not in BACKENDS:
        raise ValueError(f'unknown point-op backend {name!r}; valid: '
                         f'{", ".join(BACKENDS)}')
    previous = _backend[0]
    _backend[0] = name
    return previous


def get_backend() -> str:
    """The implementation in use (see :func:`set_backend`)."""
    return _backend[0]


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run a block with another backend, then restore the previous one."""
    previous = set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def _compiled(*tensors: Tensor) -> bool:
    """Whether the compiled kernels take these (CPU float32/64) inputs."""
    return _backend[0] == 'compiled' and all(
        t.device.type == 'cpu' and t.dtype in _COMPILED_DTYPES
        and t.dtype == tensors[0].dtype for t in tensors)
