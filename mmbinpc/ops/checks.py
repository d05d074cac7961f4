# Copyright (c) mmbinpc contributors. All rights reserved.
"""Input validation shared by the CPU point ops.

The CUDA kernels of mmcv trust their inputs (a wrong shape or an index out
of range reads arbitrary memory). The CPU versions check them and raise an
error that names the argument and what it should look like instead.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor


def check_float(op: str,
                name: str,
                tensor: Tensor,
                ndim: int,
                layout: str,
                last: Optional[int] = None) -> None:
    """Check that ``tensor`` is a floating tensor with ``ndim`` dimensions.

    Args:
        op (str): Name of the calling op, used in the message.
        name (str): Argument name, used in the message.
        tensor (Tensor): The argument.
        ndim (int): Required number of dimensions.
        layout (str): Human-readable expected layout, e.g. ``'(B, N, 3)'``.
        last (int, optional): Required size of the last dimension.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f'{op}: {name} must be a torch.Tensor shaped '
                        f'{layout}, got {type(tensor).__name__}')
    if tensor.dim() != ndim or (last is not None and tensor.shape[-1] != last):
        raise ValueError(f'{op}: {name} must be shaped {layout}, got '
                         f'{tuple(tensor.shape)}')
    if not tensor.is_floating_point():
        raise TypeError(f'{op}: {name} must be a floating point tensor '
                        f'(e.g. float32), got {tensor.dtype}; convert it '
                        f'with .float()')


def check_same_batch(op: str, names: Sequence[str],
                     tensors: Sequence[Tensor]) -> None:
    """Check that all tensors share the batch dimension (dim 0).

    Args:
        op (str): Name of the calling op.
        names (Sequence[str]): Argument names.
        tensors (Sequence[Tensor]): The arguments.
    """
    sizes = [t.shape[0] for t in tensors]
    if len(set(sizes)) > 1:
        listing = ', '.join(f'{n}: {s}' for n, s in zip(names, sizes))
        raise ValueError(f'{op}: batch sizes differ ({listing}); every '
                         f'input must have the same size along dim 0')


def check_finite(op: str, name: str, tensor: Tensor) -> None:
    """Reject NaN coordinates, which make a nearest-neighbour rank undefined.

    Args:
        op (str): Name of the calling op.
        name (str): Argument name.
        tensor (Tensor): The argument.
    """
    if torch.isnan(tensor).any():
        raise ValueError(f'{op}: {name} contains NaN values; nearest '
                         f'neighbours are undefined. Remove or replace them '
                         f'(e.g. torch.nan_to_num) first')


def as_index(op: str, name: str, indices: Tensor, num_points: int, ndim: int,
             layout: str) -> Tensor:
    """Validate an index tensor and return it as int64.

    Args:
        op (str): Name of the calling op.
        name (str): Argument name.
        indices (Tensor): Integer indices into a set of ``num_points``.
        num_points (int): Size of the indexed set.
        ndim (int): Required number of dimensions.
        layout (str): Human-readable expected layout.

    Returns:
        Tensor: The indices as a contiguous int64 tensor.
    """
    if not isinstance(indices, Tensor):
        raise TypeError(f'{op}: {name} must be an integer tensor shaped '
                        f'{layout}, got {type(indices).__name__}')
    if indices.dim() != ndim:
        raise ValueError(f'{op}: {name} must be shaped {layout}, got '
                         f'{tuple(indices.shape)}')
    if indices.is_floating_point() or indices.is_complex() \
            or indices.dtype == torch.bool:
        raise TypeError(f'{op}: {name} must hold integer indices (int32 as '
                        f'returned by the query ops), got {indices.dtype}')
    if indices.numel() > 0:
        low, high = int(indices.min()), int(indices.max())
        if low < 0 or high >= num_points:
            raise IndexError(
                f'{op}: {name} holds indices in [{low}, {high}] but the '
                f'indexed tensor has {num_points} points; valid indices are '
                f'0..{num_points - 1}')
    return indices.long().contiguous()


def check_counts(op: str, name: str, counts: Tensor, total: int,
                 what: str) -> List[int]:
    """Validate the per-item counts of a stacked batch.

    Args:
        op (str): Name of the calling op.
        name (str): Argument name.
        counts (Tensor): (B,) integer counts.
        total (int): Number of stacked rows they must add up to.
        what (str): What is counted, for the message.

    Returns:
        list[int]: The counts as Python ints.
    """
    if not isinstance(counts, Tensor) or counts.dim() != 1 \
            or counts.is_floating_point():
        raise TypeError(f'{op}: {name} must be a 1-D integer tensor with the '
                        f'number of {what} of every batch item')
    values = [int(v) for v in counts.tolist()]
    if any(v < 0 for v in values) or sum(values) != total:
        raise ValueError(f'{op}: {name} = {values} must be non-negative and '
                         f'sum to the {total} stacked {what}')
    return values


def check_paired_counts(
        op: str, points: Tuple[str, Tensor, int],
        centres: Tuple[str, Tensor, int]) -> Tuple[List[int], List[int]]:
    """Validate the point and centre counts of a stacked batch together.

    Args:
        op (str): Name of the calling op.
        points (tuple): ``(argument name, counts, stacked point rows)``.
        centres (tuple): ``(argument name, counts, stacked centre rows)``.

    Returns:
        tuple[list[int], list[int]]: The point and centre counts.
    """
    n_name, n_cnt, n_total = points
    m_name, m_cnt, m_total = centres
    n_counts = check_counts(op, n_name, n_cnt, n_total, 'points')
    m_counts = check_counts(op, m_name, m_cnt, m_total, 'centres')
    if len(n_counts) != len(m_counts):
        raise ValueError(f'{op}: {n_name} has {len(n_counts)} items but '
                         f'{m_name} has {len(m_counts)}')
    return n_counts, m_counts
