# Copyright (c) mmbinpc contributors. All rights reserved.
"""Neighbour queries on the CPU: ``ball_query``, ``knn`` and ``three_nn``.

``stack_ball_query`` covers the stacked (``*_batch_cnt``) form of mmcv's
``ball_query``.

Two implementations give the same results (:data:`BACKENDS`):

* ``'compiled'`` (default): Numba kernels
  (:mod:`mmbinpc.deploy.kernels.points`)
  that never build the distance matrix (ball query: an index-order scan;
  3-D kNN and three_nn: a grid search); feature-space kNN runs the
  fixed-order distance kernel the packed runtime shares (results differ
  from the brute-force path's only where two distances differ by rounding);
* ``'brute_force'``: PyTorch only, comparing query points with candidate
  points in memory-bounded blocks (see :mod:`mmbinpc.ops.chunking`).

Squared distances of 3-D points are computed from coordinate differences in
the kernels' order (``dx*dx + dy*dy + dz*dz``) so radius tests agree with
mmcv's CUDA kernels; feature-space kNN (C > 3) uses the
``|a|^2 - 2ab + |b|^2`` expansion. :func:`set_backend` /
:func:`use_backend` switch between them (for comparisons and tests).
"""
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from . import chunking

# isort: off
# the backend switch, importable from here too
from .backend import BACKENDS, get_backend, set_backend  # noqa: F401
from .backend import _compiled, use_backend  # noqa: F401
# isort: on
from .checks import (check_finite, check_float, check_paired_counts,
                     check_same_batch)

#: Largest k the kNN kernel of mmcv supports (its per-thread heap holds 100).
KNN_MAX_K = 100


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _knn_xyz_compiled(query: Tensor, points: Tensor,
                      k: int) -> Tuple[Tensor, Tensor]:
    """(B, M, k) int32 indices and squared distances of the k nearest
    3-D points, by the compiled grid kernel (``1 <= k <= N``)."""
    from mmbinpc.deploy.kernels import points as fk
    q, p = _numpy(query), _numpy(points)
    near = np.empty(q.shape[:2] + (k, ), np.int32)
    d2 = np.empty(q.shape[:2] + (k, ), p.dtype)
    fk.pick(fk.KNN_XYZ, q.shape[0] * q.shape[1] * p.shape[1])(q, p, k, near,
                                                              d2)
    return torch.from_numpy(near), torch.from_numpy(d2)


def _bytes_per_pair(tensor: Tensor) -> int:
    # Distances + one difference temporary (element size each), a few bool
    # masks and an int32 running count.
    return 3 * tensor.element_size() + 8


def _sq_dist(query: Tensor, points: Tensor) -> Tensor:
    """Squared distances between query points and candidate points.

    Args:
        query (Tensor): (b, m, C) query points.
        points (Tensor): (b, n, C) candidate points.

    Returns:
        Tensor: (b, m, n) squared Euclidean distances.
    """
    channels = query.shape[-1]
    if channels <= 3:
        # Channel-first copies make every broadcast operand contiguous.
        pts = points.transpose(1, 2).contiguous()  # (b, C, n)
        qry = query.transpose(1, 2).contiguous()  # (b, C, m)
        dist = qry[:, 0, :, None] - pts[:, None, 0, :]
        dist.mul_(dist)
        for c in range(1, channels):
            diff = qry[:, c, :, None] - pts[:, None, c, :]
            dist.addcmul_(diff, diff)
        return dist
    q_norm = query.pow(2).sum(-1, keepdim=True)  # (b, m, 1)
    p_norm = points.pow(2).sum(-1).unsqueeze(1)  # (b, 1, n)
    dist = torch.baddbmm(
        q_norm + p_norm, query, points.transpose(1, 2), alpha=-2)
    return dist.clamp_min_(0)


def _k_smallest_exact(dist: Tensor, k: int) -> Tensor:
    """Slow path of :func:`_k_smallest` for rows with a tie at rank k."""
    b, m, _ = dist.shape
    kth = torch.topk(
        dist, k, dim=-1, largest=False, sorted=False).values.amax(
            -1, keepdim=True)
    below = dist < kth
    need = k - below.sum(-1, keepdim=True, dtype=torch.int32)
    tied = dist == kth
    tie_rank = torch.cumsum(tied, dim=-1, dtype=torch.int32)
    tied &= tie_rank <= need
    del tie_rank
    below |= tied
    # Exactly k selected per row, listed in index order by nonzero().
    return below.nonzero(as_tuple=True)[2].view(b, m, k)


def _k_smallest(dist: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` smallest entries per row, ascending.

    Ties are broken by the smaller index, both for the order of the result
    and for which tied candidates make it into the k selected.

    Args:
        dist (Tensor): (b, m, n) distances, no NaN.
        k (int): Number of neighbours, ``1 <= k <= n``.

    Returns:
        Tensor: (b, m, k) int64 indices into the last dimension of ``dist``.
    """
    b, m, n = dist.shape
    if k < n:
        # One extra neighbour tells whether the k-th place is tied.
        vals, picked = torch.topk(
            dist, k + 1, dim=-1, largest=False, sorted=True)
        tied_rows = (vals[..., k] == vals[..., k - 1]).nonzero(as_tuple=True)
        picked = picked[..., :k]
        if tied_rows[0].numel() > 0:
            # topk may keep any of the tied candidates; keep the smallest
            # indices instead (only for the affected rows).
            rows = dist[tied_rows].unsqueeze(0)
            picked[tied_rows] = _k_smallest_exact(rows, k)[0]
    else:
        picked = torch.arange(n, device=dist.device).expand(b, m, n)
    # Order by (distance, index): sort by index, then a stable value sort.
    picked = picked.sort(dim=-1).values
    order = torch.sort(dist.gather(-1, picked), dim=-1, stable=True).indices
    return picked.gather(-1, order)


def _radius_sq(radius: float) -> float:
    # The kernel squares the radius in float32: float r2 = r * r.
    r = np.float32(radius)
    return float(r * r)


def ball_query(min_radius: float, max_radius: float, sample_num: int,
               xyz: Tensor, center_xyz: Tensor) -> Tensor:
    """Find up to ``sample_num`` points inside a ball (shell) per centre.

    Candidates are scanned in index order and accepted when their squared
    distance ``d2`` satisfies ``d2 == 0 or min_r^2 <= d2 < max_r^2``. The
    first hit fills every slot, later hits overwrite slots 1, 2, ...; the
    scan stops after ``sample_num`` hits. Centres without a hit get zeros.

    Args:
        min_radius (float): Inner radius of the shell.
        max_radius (float): Outer radius (exclusive).
        sample_num (int): Number of slots per centre.
        xyz (Tensor): (B, N, 3) candidate points.
        center_xyz (Tensor): (B, M, 3) ball centres.

    Returns:
        Tensor: (B, M, sample_num) int32 indices into ``xyz``.
    """
    op = 'ball_query'
    check_float(op, 'xyz', xyz, 3, '(B, N, 3)', last=3)
    check_float(op, 'center_xyz', center_xyz, 3, '(B, M, 3)', last=3)
    check_same_batch(op, ('xyz', 'center_xyz'), (xyz, center_xyz))
    if not min_radius < max_radius:
        raise ValueError(f'{op}: min_radius ({min_radius}) must be smaller '
                         f'than max_radius ({max_radius})')
    if isinstance(sample_num, bool) or not isinstance(sample_num, int) \
            or sample_num < 1:
        raise ValueError(f'{op}: sample_num must be a positive int, got '
                         f'{sample_num!r}')
    min_r2, max_r2 = _radius_sq(min_radius), _radius_sq(max_radius)

    def in_shell(d2: Tensor) -> Tensor:
        hit = d2 < max_r2
        hit &= d2 >= min_r2
        hit |= d2 == 0
        return hit

    in_shell.shell = (min_r2, max_r2, True)  # the same test, compiled
    return _first_hits(xyz, center_xyz, sample_num, in_shell)[0]


def _first_hits(xyz: Tensor, center_xyz: Tensor, sample_num: int,
                is_hit: Callable[[Tensor], Tensor]) -> Tuple[Tensor, Tensor]:
    """Shared ball-query scan: the first ``sample_num`` hits per centre.

    Args:
        xyz (Tensor): (B, N, 3) candidate points.
        center_xyz (Tensor): (B, M, 3) centres.
        sample_num (int): Number of slots.
        is_hit (callable): Maps (b, m, N) squared distances to a bool mask.
            If it carries ``shell = (min_r2, max_r2, zero_is_hit)`` (the
            same test as numbers), the compiled kernel runs it.

    Returns:
        tuple[Tensor, Tensor]: (B, M, sample_num) int32 indices (slots after
        the last hit repeat the first hit, rows without a hit are zeros) and
        a (B, M) bool mask of the centres that have at least one hit.
    """
    batch, size, _ = xyz.shape
    num_centres = center_xyz.shape[1]
    idx = torch.zeros(
        batch, num_centres, sample_num, dtype=torch.int32, device=xyz.device)
    any_hit = torch.zeros(
        batch, num_centres, dtype=torch.bool, device=xyz.device)
    if size == 0:
        return idx, any_hit
    shell = getattr(is_hit, 'shell', None)
    if shell is not None and _compiled(xyz, center_xyz) and \
            batch * num_centres:
        from mmbinpc.deploy.kernels import points as fk
        out = np.zeros((batch, num_centres, sample_num), np.int32)
        count = np.zeros((batch, num_centres), np.int32)
        min_r2, max_r2, zero_is_hit = shell
        fk.pick(fk.BALL_QUERY_XYZ,
                batch * num_centres * size)(_numpy(center_xyz), _numpy(xyz),
                                            min_r2, max_r2, zero_is_hit,
                                            sample_num, out, count)
        return torch.from_numpy(out), torch.from_numpy(count > 0)
    positions = torch.arange(size, dtype=torch.int32, device=xyz.device)
    take = min(sample_num, size)
    for bs, ms in chunking.iter_blocks(batch, num_centres, size,
                                       _bytes_per_pair(xyz)):
        hit = is_hit(_sq_dist(center_xyz[bs, ms], xyz[bs]))
        # Hits keep their index, misses become N; the sample_num smallest
        # keys are the first hits in scan order.
        key = torch.where(hit, positions, size)
        del hit
        first = torch.topk(
            key, take, dim=-1, largest=False, sorted=True).values
        del key
        found = first < size
        # Slots after the last hit repeat the first hit; no hit -> zeros.
        block = torch.where(found, first, first[..., :1])
        block.masked_fill_(~found[..., :1], 0)
        idx[bs, ms, :take] = block
        if take < sample_num:
            idx[bs, ms, take:] = block[..., :1]
        any_hit[bs, ms] = found[..., 0]
    return idx, any_hit


def stack_ball_query(max_radius: float, sample_num: int, xyz: Tensor,
                     center_xyz: Tensor, xyz_batch_cnt: Tensor,
                     center_xyz_batch_cnt: Tensor) -> Tensor:
    """Ball query on stacked (variable-size) batches.

    Mirrors mmcv's ``stack_ball_query`` kernel: within each batch item,
    candidates are accepted when ``d2 < max_radius^2`` (no minimum radius,
    no special case for ``d2 == 0``); slots are filled like
    :func:`ball_query`; a centre without a hit gets ``-1`` in slot 0 and
    zeros elsewhere. Indices are local to the centre's batch item.

    Args:
        max_radius (float): Ball radius (exclusive).
        sample_num (int): Number of slots per centre.
        xyz (Tensor): (N1 + N2 ..., 3) stacked points.
        center_xyz (Tensor): (M1 + M2 ..., 3) stacked centres.
        xyz_batch_cnt (Tensor): (B,) point counts N1, N2, ...
        center_xyz_batch_cnt (Tensor): (B,) centre counts M1, M2, ...

    Returns:
        Tensor: (M1 + M2 ..., sample_num) int32 indices.
    """
    op = 'ball_query'
    check_float(op, 'xyz', xyz, 2, '(N1 + N2 ..., 3)', last=3)
    check_float(op, 'center_xyz', center_xyz, 2, '(M1 + M2 ..., 3)', last=3)
    if isinstance(sample_num, bool) or not isinstance(sample_num, int) \
            or sample_num < 1:
        raise ValueError(f'{op}: sample_num must be a positive int, got '
                         f'{sample_num!r}')
    n_counts, m_counts = check_paired_counts(
        op, ('xyz_batch_cnt', xyz_batch_cnt, xyz.shape[0]),
        ('center_xyz_batch_cnt', center_xyz_batch_cnt, center_xyz.shape[0]))
    r2 = _radius_sq(max_radius)
    out = torch.zeros(
        center_xyz.shape[0], sample_num, dtype=torch.int32, device=xyz.device)

    def in_ball(d2: Tensor) -> Tensor:
        return d2 < r2

    in_ball.shell = (float('-inf'), r2, False)  # the same test, compiled
    n0 = m0 = 0
    for n, m in zip(n_counts, m_counts):
        idx, any_hit = _first_hits(xyz[None, n0:n0 + n], center_xyz[None,
                                                                    m0:m0 + m],
                                   sample_num, in_ball)
        idx[..., 0].masked_fill_(~any_hit, -1)
        out[m0:m0 + m] = idx[0]
        n0, m0 = n0 + n, m0 + m
    return out


def knn(k: int,
        xyz: Tensor,
        center_xyz: Optional[Tensor] = None,
        transposed: bool = False) -> Tensor:
    """k nearest neighbours of every centre, in the full channel space.

    Args:
        k (int): Number of neighbours, ``0 < k < 100`` (mmcv's limit).
        xyz (Tensor): (B, N, C) points, or (B, C, N) if ``transposed``.
            C is usually 3, but any C works (DGCNN's F-KNN passes features).
        center_xyz (Tensor, optional): (B, M, C) query points, or (B, C, M)
            if ``transposed``. Defaults to ``xyz``.
        transposed (bool): Whether the inputs are channel-first.

    Returns:
        Tensor: (B, k, M) int32 indices, nearest first; ties go to the
        smaller index. When ``k > N`` the missing neighbours are index 0
        (as in the CUDA kernel).
    """
    op = 'knn'
    if isinstance(k, bool) or not isinstance(k, int) \
            or not 0 < k < KNN_MAX_K:
        raise ValueError(f'{op}: k must be an int in range(1, {KNN_MAX_K}) '
                         f'(the limit of mmcv\'s CUDA kernel), got {k!r}')
    if center_xyz is None:
        center_xyz = xyz
    layout = '(B, C, N)' if transposed else '(B, N, C)'
    check_float(op, 'xyz', xyz, 3, layout)
    check_float(op, 'center_xyz', center_xyz, 3, layout.replace('N', 'M'))
    if transposed:
        xyz = xyz.transpose(1, 2)
        center_xyz = center_xyz.transpose(1, 2)
    check_same_batch(op, ('xyz', 'center_xyz'), (xyz, center_xyz))
    if xyz.shape[-1] != center_xyz.shape[-1]:
        raise ValueError(f'{op}: xyz has {xyz.shape[-1]} channels but '
                         f'center_xyz has {center_xyz.shape[-1]}; they must '
                         f'match (check the transposed flag)')
    check_finite(op, 'xyz', xyz)
    check_finite(op, 'center_xyz', center_xyz)
    batch, size, _ = xyz.shape
    num_centres = center_xyz.shape[1]
    idx = torch.zeros(
        batch, num_centres, k, dtype=torch.int32, device=xyz.device)
    found = min(k, size)
    if found > 0 and _compiled(xyz, center_xyz) and batch * num_centres:
        from mmbinpc.deploy.kernels import points as fk
        if xyz.shape[-1] == 3:
            idx[..., :found] = _knn_xyz_compiled(center_xyz, xyz, found)[0]
        else:  # one kernel shared with the packed runtime
            parallel = fk.pick(fk.KNN_FEATURES,
                               num_centres * size) is fk.KNN_FEATURES[1]
            q, p = _numpy(center_xyz), _numpy(xyz)
            for b in range(batch):
                idx[b, :, :found] = torch.from_numpy(
                    fk.knn_features(q[b], p[b], found,
                                    parallel)).to(torch.int32)
    elif found > 0:
        for bs, ms in chunking.iter_blocks(batch, num_centres, size,
                                           _bytes_per_pair(xyz)):
            d2 = _sq_dist(center_xyz[bs, ms], xyz[bs])
            idx[bs, ms, :found] = _k_smallest(d2, found).to(torch.int32)
    return idx.transpose(1, 2).contiguous()


def three_nn(target: Tensor, source: Tensor) -> Tuple[Tensor, Tensor]:
    """Three nearest source points of every target point.

    Args:
        target (Tensor): (B, N, 3) points that need neighbours.
        source (Tensor): (B, M, 3) points to search.

    Returns:
        tuple[Tensor, Tensor]: (B, N, 3) Euclidean distances (square roots
        of the squared distances), ascending, and (B, N, 3) int32 indices
        into ``source``; ties go to the smaller index. With ``M < 3`` the
        missing neighbours get index 0 and distance ``sqrt(1e40)`` in the
        input dtype (``inf`` for float32), as in the CUDA kernel.
    """
    op = 'three_nn'
    check_float(op, 'target', target, 3, '(B, N, 3)', last=3)
    check_float(op, 'source', source, 3, '(B, M, 3)', last=3)
    check_same_batch(op, ('target', 'source'), (target, source))
    check_finite(op, 'target', target)
    check_finite(op, 'source', source)
    batch, num_target, _ = target.shape
    size = source.shape[1]
    # The kernel starts from 1e40, which overflows to inf in float32.
    far = 1e40 if torch.finfo(target.dtype).max > 1e40 else float('inf')
    dist2 = torch.full((batch, num_target, 3),
                       far,
                       dtype=target.dtype,
                       device=target.device)
    idx = torch.zeros(
        batch, num_target, 3, dtype=torch.int32, device=target.device)
    found = min(3, size)
    if found > 0 and _compiled(target, source) and batch * num_target:
        idx[..., :found], dist2[..., :found] = _knn_xyz_compiled(
            target, source, found)
    elif found > 0:
        for bs, ns in chunking.iter_blocks(batch, num_target, size,
                                           _bytes_per_pair(target)):
            d2 = _sq_dist(target[bs, ns], source[bs])
            near = _k_smallest(d2, found)
            dist2[bs, ns, :found] = d2.gather(-1, near)
            idx[bs, ns, :found] = near.to(torch.int32)
    return torch.sqrt(dist2), idx
