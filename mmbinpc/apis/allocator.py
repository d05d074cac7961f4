# Copyright (c) mmbinpc contributors. All rights reserved.
"""Keep freed tensor memory in the process (glibc ``mallopt``).

A CPU training step of a point-cloud network allocates and frees the same
large activations every step (PointNet at batch 32 and 1,024 points: many
(32, 1024, 1024) float maps of 128 MiB). glibc serves every block above its
mmap threshold (at most 32 MiB by default) with a fresh ``mmap`` and gives
it back to the kernel on ``free``, so every step page-faults and zeroes its
activations again: on the project's 2-core VM that kernel time was about
half of a step's wall time (``tools/benchmark/train_step.py --json`` records
both settings; docs/training_cost.md). Raising the mmap and trim thresholds
keeps those blocks in the heap for the next step, as jemalloc or tcmalloc
would; the heap also grows by a 256 MiB pad (measured on a loop allocating
and freeing a 128 MiB tensor, glibc 2.36: the two thresholds alone still
page-faulted 7 of 10 allocations, with the pad only the first). The
resident memory then stays at the step's peak between steps, which it
reaches every step anyway.

``tools/train.py`` and the training-step benchmark call
:func:`keep_freed_memory`; the environment variable
``MMBINPC_KEEP_FREED_MEMORY=0`` turns it off (and a ``GLIBC_TUNABLES``
setting of the malloc thresholds is left to rule). It does nothing outside
Linux/glibc, where it says so.
"""
import ctypes
import ctypes.util
import os
import platform
from typing import Optional

from mmbinpc.runtime import env_flag

ENV = 'MMBINPC_KEEP_FREED_MEMORY'
#: glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap and stay there when freed
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = 1 << 34
#: each growth of the heap asks the kernel for this much more
TOP_PAD = 1 << 28


def keep_freed_memory(enable: Optional[bool] = None) -> str:
    """Raise glibc's mmap and trim thresholds for this process.

    Args:
        enable (bool, optional): Whether to; default: the environment
            variable ``MMBINPC_KEEP_FREED_MEMORY`` (on when unset).

    Returns:
        str: What was done, for the log (``'on (...)'``, ``'off (...)'``).
    """
    if enable is None:
        enable = env_flag(ENV, default=True)
    if not enable:
        return f'off ({ENV}=0)'
    tunables = os.environ.get('GLIBC_TUNABLES', '')
    if 'mmap_threshold' in tunables or 'trim_threshold' in tunables:
        return 'off (GLIBC_TUNABLES sets the malloc thresholds)'
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return 'off (not Linux with glibc)'
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    ok = all(
        libc.mallopt(param, value) == 1
        for param, value in ((M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                             (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD,
                                                                  TOP_PAD)))
    if not ok:
        return 'off (mallopt refused the thresholds)'
    return (f'on (glibc mmap threshold {MMAP_THRESHOLD >> 20} MiB, '
            f'trim threshold {TRIM_THRESHOLD >> 30} GiB, top pad '
            f'{TOP_PAD >> 20} MiB; {ENV}=0 turns it off)')
