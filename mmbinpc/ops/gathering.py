# Copyright (c) mmbinpc contributors. All rights reserved.
"""Index-based feature gathering on the CPU, with explicit gradients.

``gather_points``, ``grouping_operation`` and ``three_interpolate`` are
written with differentiable torch ops, so calling them directly already
back-propagates. The ``*_backward`` functions give the same gradients
explicitly (a scatter-add over the indices); the mmcv autograd Functions
use them when they run on CPU tensors (see :mod:`mmbinpc.ops.dispatch`).
``stack_grouping_operation`` is the stacked (``*_batch_cnt``) form.
"""
import torch
from torch import Tensor

from .checks import (as_index, check_float, check_paired_counts,
                     check_same_batch)


def gather_points(features: Tensor, indices: Tensor) -> Tensor:
    """Gather feature columns: ``out[b, c, m] = features[b, c, idx[b, m]]``.

    Args:
        features (Tensor): (B, C, N) features.
        indices (Tensor): (B, M) integer indices into N.

    Returns:
        Tensor: (B, C, M) gathered features.
    """
    op = 'gather_points'
    check_float(op, 'features', features, 3, '(B, C, N)')
    idx = as_index(op, 'indices', indices, features.shape[2], 2, '(B, M)')
    check_same_batch(op, ('features', 'indices'), (features, idx))
    batch, channels, _ = features.shape
    return features.gather(
        2,
        idx.unsqueeze(1).expand(batch, channels, idx.shape[1]))


def gather_points_backward(grad_out: Tensor, indices: Tensor,
                           num_points: int) -> Tensor:
    """Gradient of :func:`gather_points` w.r.t. ``features``.

    Args:
        grad_out (Tensor): (B, C, M) gradient of the output.
        indices (Tensor): (B, M) indices used in the forward pass.
        num_points (int): N, the number of points of ``features``.

    Returns:
        Tensor: (B, C, N) gradient, summed over repeated indices.
    """
    idx = indices.long()
    batch, channels, num = grad_out.shape
    grad = grad_out.new_zeros(batch, channels, num_points)
    return grad.scatter_add_(2,
                             idx.unsqueeze(1).expand(batch, channels, num),
                             grad_out)


def grouping_operation(features: Tensor, indices: Tensor) -> Tensor:
    """Group features: ``out[b, c, m, k] = features[b, c, idx[b, m, k]]``.

    Args:
        features (Tensor): (B, C, N) features.
        indices (Tensor): (B, M, K) integer indices into N.

    Returns:
        Tensor: (B, C, M, K) grouped features.
    """
    op = 'grouping_operation'
    check_float(op, 'features', features, 3, '(B, C, N)')
    idx = as_index(op, 'indices', indices, features.shape[2], 3, '(B, M, K)')
    check_same_batch(op, ('features', 'indices'), (features, idx))
    batch, channels, _ = features.shape
    _, num, nsample = idx.shape
    flat = idx.view(batch, 1, num * nsample).expand(batch, channels, -1)
    if torch.is_grad_enabled() and features.requires_grad:
        return features.gather(2, flat).view(batch, channels, num, nsample)
    # Without autograd (e.g. inside mmcv's Function) gather straight into
    # the 4-D result so it is not a view: mmdet3d modifies grouped features
    # in place (DGCNN's D-KNN).
    out = features.new_empty(batch, channels, num, nsample)
    torch.gather(
        features, 2, flat, out=out.view(batch, channels, num * nsample))
    return out


def grouping_operation_backward(grad_out: Tensor, indices: Tensor,
                                num_points: int) -> Tensor:
    """Gradient of :func:`grouping_operation` w.r.t. ``features``.

    Args:
        grad_out (Tensor): (B, C, M, K) gradient of the output.
        indices (Tensor): (B, M, K) indices used in the forward pass.
        num_points (int): N, the number of points of ``features``.

    Returns:
        Tensor: (B, C, N) gradient, summed over every (m, k) that picked
        the point.
    """
    batch, channels, num, nsample = grad_out.shape
    flat = indices.long().reshape(batch, 1,
                                  num * nsample).expand(batch, channels, -1)
    grad = grad_out.new_zeros(batch, channels, num_points)
    return grad.scatter_add_(2, flat,
                             grad_out.reshape(batch, channels, num * nsample))


def _check_interp(op: str, features: Tensor, indices: Tensor,
                  weight: Tensor) -> Tensor:
    check_float(op, 'features', features, 3, '(B, C, M)')
    idx = as_index(op, 'indices', indices, features.shape[2], 3, '(B, N, 3)')
    check_float(op, 'weight', weight, 3, '(B, N, 3)')
    if idx.shape[2] != 3 or weight.shape != idx.shape:
        raise ValueError(f'{op}: indices and weight must both be shaped '
                         f'(B, N, 3), got {tuple(idx.shape)} and '
                         f'{tuple(weight.shape)}')
    check_same_batch(op, ('features', 'indices'), (features, idx))
    return idx


def three_interpolate(features: Tensor, indices: Tensor,
                      weight: Tensor) -> Tensor:
    """Weighted sum of three source features per target point.

    ``out[b, c, n] = sum_j weight[b, n, j] * features[b, c, idx[b, n, j]]``.

    Args:
        features (Tensor): (B, C, M) source features.
        indices (Tensor): (B, N, 3) indices of the three source points.
        weight (Tensor): (B, N, 3) interpolation weights.

    Returns:
        Tensor: (B, C, N) interpolated features.
    """
    idx = _check_interp('three_interpolate', features, indices, weight)
    batch, channels, _ = features.shape
    num = idx.shape[1]
    out = None
    for j in range(3):
        picked = features.gather(
            2, idx[:, None, :, j].expand(batch, channels, num))
        term = picked * weight[:, None, :, j]
        out = term if out is None else out + term
    return out


def three_interpolate_backward(grad_out: Tensor, indices: Tensor,
                               weight: Tensor, num_points: int) -> Tensor:
    """Gradient of :func:`three_interpolate` w.r.t. ``features``.

    Args:
        grad_out (Tensor): (B, C, N) gradient of the output.
        indices (Tensor): (B, N, 3) indices used in the forward pass.
        weight (Tensor): (B, N, 3) weights used in the forward pass.
        num_points (int): M, the number of source points.

    Returns:
        Tensor: (B, C, M) gradient of the source features.
    """
    idx = indices.long()
    batch, channels, num = grad_out.shape
    grad = grad_out.new_zeros(batch, channels, num_points)
    for j in range(3):
        grad.scatter_add_(2, idx[:, None, :, j].expand(batch, channels, num),
                          grad_out * weight[:, None, :, j])
    return grad


def _stack_global_index(op: str, features: Tensor, indices: Tensor,
                        features_batch_cnt: Tensor,
                        indices_batch_cnt: Tensor) -> Tensor:
    """Turn per-item local indices of a stacked batch into global rows.

    Returns:
        tuple[Tensor, Tensor]: (M, nsample) global row indices and a mask of
        the entries whose batch item has no points.
    """
    n_counts, m_counts = check_paired_counts(
        op, ('features_batch_cnt', features_batch_cnt, features.shape[0]),
        ('indices_batch_cnt', indices_batch_cnt, indices.shape[0]))
    if indices.dim() != 2 or indices.is_floating_point():
        raise ValueError(f'{op}: indices must be an integer tensor shaped '
                         f'(M1 + M2 ..., nsample), got {indices.dtype} '
                         f'{tuple(indices.shape)}')
    device = indices.device
    repeats = torch.tensor(m_counts, device=device)
    starts = torch.tensor([0] + n_counts[:-1], device=device).cumsum(0)
    row_start = starts.repeat_interleave(repeats)[:, None]
    row_size = torch.tensor(
        n_counts, device=device).repeat_interleave(repeats)[:, None]
    local = indices.long()
    bad = ((local < 0) | (local >= row_size)) & (row_size > 0)
    if bad.any():
        row = int(bad.any(1).nonzero()[0])
        raise IndexError(
            f'{op}: indices of centre {row} hold '
            f'{local[row].tolist()} but its batch item has '
            f'{int(row_size[row])} points (replace the -1 of empty balls '
            f'before grouping, as StackQueryAndGroup does)')
    # Centres of items without points have nothing to group: they read
    # row 0 here and are zeroed by the callers.
    empty = (row_size == 0).expand_as(local)
    return (local + row_start).masked_fill_(empty, 0), empty


def stack_grouping_operation(features: Tensor, indices: Tensor,
                             features_batch_cnt: Tensor,
                             indices_batch_cnt: Tensor) -> Tensor:
    """Group features of stacked (variable-size) batches.

    ``out[m, c, k] = features[start(b) + idx[m, k], c]`` where ``b`` is the
    batch item of centre ``m`` and ``start(b)`` its first stacked point.
    Centres of a batch item without points get zeros (mmcv's kernel reads
    a neighbouring item there; mmdet3d zeroes those rows afterwards).

    Args:
        features (Tensor): (N1 + N2 ..., C) stacked features.
        indices (Tensor): (M1 + M2 ..., nsample) indices local to each item.
        features_batch_cnt (Tensor): (B,) point counts N1, N2, ...
        indices_batch_cnt (Tensor): (B,) centre counts M1, M2, ...

    Returns:
        Tensor: (M1 + M2 ..., C, nsample) grouped features.
    """
    op = 'grouping_operation'
    check_float(op, 'features', features, 2, '(N1 + N2 ..., C)')
    rows, empty = _stack_global_index(op, features, indices,
                                      features_batch_cnt, indices_batch_cnt)
    picked = features[rows]  # (M, nsample, C)
    if empty.any():
        picked = picked.masked_fill(empty[..., None], 0)
    if torch.is_grad_enabled() and features.requires_grad:
        return picked.permute(0, 2, 1)
    # Not a view (see grouping_operation).
    return picked.permute(0, 2, 1).contiguous()


def stack_grouping_operation_backward(grad_out: Tensor, indices: Tensor,
                                      features_batch_cnt: Tensor,
                                      indices_batch_cnt: Tensor,
                                      num_points: int) -> Tensor:
    """Gradient of :func:`stack_grouping_operation` w.r.t. ``features``.

    Args:
        grad_out (Tensor): (M1 + M2 ..., C, nsample) output gradient.
        indices (Tensor): (M1 + M2 ..., nsample) local indices.
        features_batch_cnt (Tensor): (B,) point counts.
        indices_batch_cnt (Tensor): (B,) centre counts.
        num_points (int): N1 + N2 ..., the stacked point count.

    Returns:
        Tensor: (N1 + N2 ..., C) gradient, summed over repeated indices.
    """
    channels = grad_out.shape[1]
    template = grad_out.new_empty(num_points, 0)
    rows, empty = _stack_global_index('grouping_operation', template, indices,
                                      features_batch_cnt, indices_batch_cnt)
    src = grad_out.permute(0, 2, 1)
    if empty.any():
        src = src.masked_fill(empty[..., None], 0)
    grad = grad_out.new_zeros(num_points, channels)
    return grad.index_add_(0, rows.reshape(-1), src.reshape(-1, channels))
