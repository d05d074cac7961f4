# Copyright (c) mmbinpc contributors. All rights reserved.
"""Index-based feature gathering on the CPU, with explicit gradients.

``gather_points``, ``grouping_operation`` and ``three_interpolate`` are
written with differentiable torch ops, so calling them directly already
back-propagates. The ``*_backward`` functions give the same gradients
explicitly (a scatter-add over the indices); the mmcv autograd Functions
use them when they run on CPU tensors (see :mod:`mmbinpc.ops.dispatch`).
"""
from torch import Tensor

from .checks import as_index, check_float, check_same_batch


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
        2, idx.unsqueeze(1).expand(batch, channels, idx.shape[1]))


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
    return grad.scatter_add_(2, idx.unsqueeze(1).expand(batch, channels, num),
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
    idx = as_index(op, 'indices', indices, features.shape[2], 3,
                   '(B, M, K)')
    check_same_batch(op, ('features', 'indices'), (features, idx))
    batch, channels, _ = features.shape
    _, num, nsample = idx.shape
    flat = idx.view(batch, 1, num * nsample).expand(batch, channels, -1)
    return features.gather(2, flat).view(batch, channels, num, nsample)


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
    flat = indices.long().reshape(batch, 1, num * nsample).expand(
        batch, channels, -1)
    grad = grad_out.new_zeros(batch, channels, num_points)
    return grad.scatter_add_(
        2, flat, grad_out.reshape(batch, channels, num * nsample))


def _check_interp(op: str, features: Tensor, indices: Tensor,
                  weight: Tensor) -> Tensor:
    check_float(op, 'features', features, 3, '(B, C, M)')
    idx = as_index(op, 'indices', indices, features.shape[2], 3,
                   '(B, N, 3)')
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
