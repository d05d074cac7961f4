# Copyright (c) mmbinpc contributors. All rights reserved.
"""Furthest point sampling on the CPU (mmcv ``furthest_point_sample*``)."""
import numpy as np
import torch
from torch import Tensor

from .backend import _compiled
from .checks import check_float

#: Initial value of the running minimum distance, as in mmcv's kernel.
_FAR = 1e10


def _check_num(op: str, num_points: int) -> int:
    if isinstance(num_points, bool) or not isinstance(num_points, int) \
            or num_points < 0:
        raise ValueError(f'{op}: num_points must be a non-negative int, '
                         f'got {num_points!r}')
    return num_points


def _iterate(first_row_dist, batch: int, num_points: int, size: int,
             template: Tensor) -> Tensor:
    """Run the sequential FPS loop shared by both variants.

    Args:
        first_row_dist (callable): ``f(old) -> (B, N)`` distances from the
            currently selected point (LongTensor ``old`` of shape (B,)) to
            every point.
        batch (int): Batch size B.
        num_points (int): Number of points to select.
        size (int): Number of candidate points N.
        template (Tensor): Tensor whose dtype/device the running distance
            uses.

    Returns:
        Tensor: (B, num_points) int32 indices.
    """
    out = torch.zeros(
        batch, num_points, dtype=torch.int32, device=template.device)
    if num_points <= 1 or size == 0 or batch == 0:
        return out
    temp = template.new_full((batch, size), _FAR)
    old = torch.zeros(batch, dtype=torch.long, device=template.device)
    for j in range(1, num_points):
        torch.minimum(temp, first_row_dist(old), out=temp)
        # argmax returns the first maximal index: ties go to the smallest
        # index (see docs/point_ops.md for how this relates to CUDA).
        old = temp.argmax(dim=1)
        out[:, j] = old
    return out


def furthest_point_sample(points_xyz: Tensor, num_points: int) -> Tensor:
    """Iterative furthest point sampling in Euclidean space.

    Starts at index 0; every further step takes the point whose squared
    distance to the already selected set (the running minimum over the
    selected points) is largest.

    Args:
        points_xyz (Tensor): (B, N, 3) point coordinates.
        num_points (int): Number of points to sample.

    Returns:
        Tensor: (B, num_points) int32 indices of the sampled points.
    """
    op = 'furthest_point_sample'
    check_float(op, 'points_xyz', points_xyz, 3, '(B, N, 3)', last=3)
    _check_num(op, num_points)
    batch, size = points_xyz.shape[:2]
    if _compiled(points_xyz) and num_points > 1 and size and batch:
        from mmbinpc.deploy.kernels import points as fk
        out = np.zeros((batch, num_points), np.int32)
        fk.pick(fk.FURTHEST_POINT_SAMPLE, batch * size * num_points)(
            points_xyz.detach().contiguous().numpy(), num_points, out)
        return torch.from_numpy(out)
    # Planar (3, B, N) layout: each coordinate is one contiguous plane.
    planar = points_xyz.permute(2, 0, 1).contiguous()
    rows = torch.arange(batch, device=planar.device)

    def dist_from(old: Tensor) -> Tensor:
        diff = planar - planar[:, rows, old].unsqueeze(2)
        diff.mul_(diff)
        # Same summation order as the kernel: x^2 + y^2 + z^2.
        return diff[0].add_(diff[1]).add_(diff[2])

    return _iterate(dist_from, batch, num_points, size, planar)


def furthest_point_sample_with_dist(points_dist: Tensor,
                                    num_points: int) -> Tensor:
    """Furthest point sampling on a precomputed distance matrix.

    Args:
        points_dist (Tensor): (B, N, N) distance between every point pair;
            row ``i`` is read as the distance from point ``i``.
        num_points (int): Number of points to sample.

    Returns:
        Tensor: (B, num_points) int32 indices of the sampled points.
    """
    op = 'furthest_point_sample_with_dist'
    check_float(op, 'points_dist', points_dist, 3, '(B, N, N)')
    if points_dist.shape[1] != points_dist.shape[2]:
        raise ValueError(f'{op}: points_dist must be a square (B, N, N) '
                         f'distance matrix, got {tuple(points_dist.shape)}')
    _check_num(op, num_points)
    batch, size = points_dist.shape[:2]
    dist = points_dist.contiguous()
    rows = torch.arange(batch, device=dist.device)

    def dist_from(old: Tensor) -> Tensor:
        return dist[rows, old]

    return _iterate(dist_from, batch, num_points, size, dist)
