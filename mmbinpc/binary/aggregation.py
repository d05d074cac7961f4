# Copyright (c) mmbinpc contributors. All rights reserved.
"""Point aggregation (pooling) modules, including entropy-maximizing EMA.

Every pooling site of a point model that mmbinpc knows about is a
:class:`PointPool` module (our own models use it directly; mmdet3d's pooling
sites get one attached by :func:`mmbinpc.binary.convert.binarize`). That makes
the sites switchable between ``max`` and ``ema`` and gives the distiller one
module per site whose forward output is the pooled tensor.
"""
import math
from statistics import NormalDist
from typing import Union

import torch
from torch import Tensor, nn

from mmdet3d.registry import MODELS

POOL_MODES = ('max', 'ema', 'avg', 'max+avg', 'ema+avg')


def ema_offset(n: int) -> float:
    """Entropy-maximizing shift δ*(n) = Φ⁻¹(2^(−1/n)).

    Subtracting δ*(n) from the max over ``n`` i.i.d. standard-normal values
    makes the result positive with probability 1/2, so its sign carries one
    full bit (BiPointNet's EMA). Computed for any ``n`` through the upper tail,
    ``δ = −Φ⁻¹(1 − 2^(−1/n))``, which stays accurate for large ``n``.

    Args:
        n (int): Number of pooled elements (>= 1).

    Returns:
        float: The offset; 0 for ``n == 1``.

    Examples:
        >>> round(ema_offset(1024), 4)
        3.2044
    """
    if int(n) != n or n < 1:
        raise ValueError(f'ema_offset needs a pooled size n >= 1, got {n!r}')
    if n == 1:
        return 0.0
    upper_tail = -math.expm1(-math.log(2.0) / n)  # 1 - 2^(-1/n), exactly
    return -NormalDist().inv_cdf(upper_tail)


@MODELS.register_module()
class PointPool(nn.Module):
    """Reduce point features over one axis (a pooling site).

    Args:
        mode (str): One of ``'max'``, ``'ema'`` (max − δ*(n), with n the pooled
            size at run time), ``'avg'``, ``'max+avg'`` and ``'ema+avg'`` (the
            two reductions concatenated along ``cat_dim``). Defaults to 'max'.
        dim (int): Axis to reduce. Defaults to -1.
        keepdim (bool): Keep the reduced axis with size 1. Defaults to False.
        cat_dim (int): Channel axis for the concatenating modes. Defaults to 1.
    """

    def __init__(self,
                 mode: str = 'max',
                 dim: int = -1,
                 keepdim: bool = False,
                 cat_dim: int = 1) -> None:
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f'unknown aggregation mode {mode!r}; valid modes: '
                             f'{", ".join(POOL_MODES)}')
        self.mode = mode
        self.dim = dim
        self.keepdim = keepdim
        self.cat_dim = cat_dim

    def _max(self, x: Tensor, ema: bool) -> Tensor:
        out = x.max(dim=self.dim, keepdim=self.keepdim)[0]
        if ema:
            out = out - ema_offset(x.shape[self.dim])
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` over ``self.dim``.

        Args:
            x (Tensor): Features, e.g. (B, C, N) or (B, C, M, K).

        Returns:
            Tensor: The pooled features.
        """
        mode = self.mode
        if mode in ('max', 'ema'):
            return self._max(x, ema=mode == 'ema')
        avg = x.mean(dim=self.dim, keepdim=self.keepdim)
        if mode == 'avg':
            return avg
        return torch.cat([self._max(x, ema=mode == 'ema+avg'), avg],
                         dim=self.cat_dim)

    def extra_repr(self) -> str:
        return f'mode={self.mode!r}, dim={self.dim}'


@MODELS.register_module()
class EMAMaxPool(PointPool):
    """Entropy-maximizing max pooling: ``max(x, dim) − δ*(n)``.

    Args:
        dim (int): Axis to reduce. Defaults to -1.
        keepdim (bool): Keep the reduced axis. Defaults to False.
    """

    def __init__(self, dim: int = -1, keepdim: bool = False) -> None:
        super().__init__(mode='ema', dim=dim, keepdim=keepdim)


def to_ema(mode: str) -> str:
    """The EMA counterpart of a pooling mode (``'max'`` → ``'ema'``)."""
    return {'max': 'ema', 'max+avg': 'ema+avg'}.get(mode, mode)


def to_max(mode: str) -> str:
    """The plain-max counterpart of a pooling mode (``'ema'`` → ``'max'``)."""
    return {'ema': 'max', 'ema+avg': 'max+avg'}.get(mode, mode)


PoolLike = Union[PointPool, nn.Module]
