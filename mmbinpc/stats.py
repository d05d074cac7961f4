# Copyright (c) mmbinpc contributors. All rights reserved.
"""Statistics shared by training and the packed runtime (no PyTorch)."""
import functools
import math
from statistics import NormalDist


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
    return _ema_offset(int(n))


@functools.lru_cache(maxsize=None)
def _ema_offset(n: int) -> float:
    """δ*(n), cached: every EMA site (and the distiller's L_reg alignment)
    asks for it on every forward, almost always with the same few ``n``."""
    if n == 1:
        return 0.0
    upper_tail = -math.expm1(-math.log(2.0) / n)  # 1 - 2^(-1/n), exactly
    return -NormalDist().inv_cdf(upper_tail)
