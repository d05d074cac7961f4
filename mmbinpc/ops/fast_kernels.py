# Copyright (c) mmbinpc contributors. All rights reserved.
"""Compiled (Numba) kernels of the neighbour queries: one scan per query.

The brute-force paths of :mod:`mmbinpc.ops.neighbors` build a (query x
point) distance matrix with PyTorch and select from it. These kernels do
what mmcv's CUDA kernels do instead: every query point scans the candidate
points in index order, keeps what it needs (the k nearest so far in a small
sorted buffer, or the first ``nsample`` hits) and never materialises the
matrix. Results are the same:

* squared distances of 3-D points are computed in the input dtype in the
  kernels' order, ``dx*dx + dy*dy + dz*dz`` with ``d = query − point``,
  each ``+ d*d`` as one fused multiply-add (:func:`_fma`), which is what
  nvcc makes of mmcv's kernels by default and what PyTorch's ``addcmul``
  (the brute-force path) computes;
* ties: a candidate enters the k-buffer only if strictly closer than the
  k-th, and is placed after equal distances, so the result is ordered by
  (distance, index) and the k selected are the smallest indices among equal
  distances - the rule the brute-force paths implement;
* ball query fills slots in scan order and stops after ``nsample`` hits.

Queries are independent: each kernel exists twice, serial and with
``prange`` over (batch x query) rows on Numba's thread pool, and
:func:`pick` takes the parallel one only for large work with more than one
PyTorch intra-op thread (waking Numba's OpenMP pool next to PyTorch's costs
milliseconds, more than small queries take).
"""
import numpy as np
from numba import njit, prange
from numba.extending import intrinsic


#: (query x point) pairs below which a kernel runs serially
PARALLEL_MIN_PAIRS = 4_000_000


def pick(kernels, pairs: int):
    """The serial or the parallel version of a kernel for this much work.

    Args:
        kernels (tuple): ``(serial, parallel)`` compiled functions.
        pairs (int): Query x point pairs the call will scan.

    Returns:
        The function to call; the parallel one with Numba's thread count
        set to PyTorch's (at most Numba's pool).
    """
    import numba
    import torch
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if threads < 2 or pairs < PARALLEL_MIN_PAIRS:
        return kernels[0]
    numba.set_num_threads(threads)
    return kernels[1]


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (LLVM's fma), in the arguments' type."""
    if not (a == b == c):
        return None
    sig = a(a, b, c)

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return sig, codegen


@njit(cache=True, inline='always')
def _sq_dist3(ax, ay, az, bx, by, bz):
    """Squared distance of two 3-D points, as the CUDA kernels round it."""
    dx = ax - bx
    dy = ay - by
    dz = az - bz
    return _fma(dz, dz, _fma(dy, dy, dx * dx))


@njit(cache=True, inline='always')
def _insert(best_d, best_i, count, k, d, n):
    """Insert (d, n) into the sorted buffer; returns the new count."""
    if count == k:
        if not d < best_d[k - 1]:
            return count
        pos = k - 1
    else:
        pos = count
        count += 1
    while pos > 0 and best_d[pos - 1] > d:
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = d
    best_i[pos] = n
    return count


def _knn_xyz(query, points, k, out_idx, out_d2):
    """k nearest 3-D points of every query point.

    Args:
        query (np.ndarray): (B, M, 3) float, C-contiguous.
        points (np.ndarray): (B, N, 3) float, same dtype.
        k (int): Neighbours to keep, ``1 <= k <= N``.
        out_idx (np.ndarray): (B, M, k) int32, written.
        out_d2 (np.ndarray): (B, M, k) of the input dtype, written with the
            squared distances.
    """
    batch, num_query = query.shape[0], query.shape[1]
    num_points = points.shape[1]
    for row in prange(batch * num_query):
        b = row // num_query
        m = row - b * num_query
        best_d = np.empty(k, query.dtype)
        best_i = np.empty(k, np.int32)
        count = 0
        qx, qy, qz = query[b, m, 0], query[b, m, 1], query[b, m, 2]
        worst = np.inf
        for n in range(num_points):
            d = _sq_dist3(qx, qy, qz, points[b, n, 0], points[b, n, 1],
                          points[b, n, 2])
            if count < k or d < worst:  # the rare path: a new neighbour
                count = _insert(best_d, best_i, count, k, d, n)
                if count == k:
                    worst = best_d[k - 1]
        for j in range(k):
            out_idx[b, m, j] = best_i[j]
            out_d2[b, m, j] = best_d[j]


def _k_smallest_rows(dist, k, out_idx):
    """Indices of the k smallest entries of every row, (value, index) order.

    Args:
        dist (np.ndarray): (R, N) distances, no NaN.
        k (int): ``1 <= k <= N``.
        out_idx (np.ndarray): (R, k) int64, written.
    """
    rows, size = dist.shape
    for r in prange(rows):
        best_d = np.empty(k, dist.dtype)
        best_i = np.empty(k, np.int64)
        count = 0
        worst = np.inf
        for n in range(size):
            d = dist[r, n]
            if count < k or d < worst:  # the rare path: a new neighbour
                count = _insert(best_d, best_i, count, k, d, n)
                if count == k:
                    worst = best_d[k - 1]
        for j in range(k):
            out_idx[r, j] = best_i[j]


def _ball_query_xyz(centers, points, min_r2, max_r2, zero_is_hit, nsample,
                    out_idx, out_count):
    """The first ``nsample`` points inside a ball (shell) of every centre.

    A point is a hit when ``min_r2 <= d2 < max_r2``, or when ``d2 == 0`` if
    ``zero_is_hit``. The first hit fills every slot, later hits overwrite
    slots 1, 2, ...; rows without a hit are left as they are (zeros).

    Args:
        centers (np.ndarray): (B, M, 3) float.
        points (np.ndarray): (B, N, 3) float, same dtype.
        min_r2 (float): Inner radius squared (as the caller rounded it).
        max_r2 (float): Outer radius squared.
        zero_is_hit (bool): Count coincident points as hits.
        nsample (int): Slots per centre.
        out_idx (np.ndarray): (B, M, nsample) int32, zero-filled, written.
        out_count (np.ndarray): (B, M) int32, written with the hit counts
            (at most ``nsample``).
    """
    batch, num_centers = centers.shape[0], centers.shape[1]
    num_points = points.shape[1]
    lo = centers.dtype.type(min_r2)
    hi = centers.dtype.type(max_r2)
    for row in prange(batch * num_centers):
        b = row // num_centers
        m = row - b * num_centers
        cx, cy, cz = centers[b, m, 0], centers[b, m, 1], centers[b, m, 2]
        count = 0
        for n in range(num_points):
            d = _sq_dist3(cx, cy, cz, points[b, n, 0], points[b, n, 1],
                          points[b, n, 2])
            if (zero_is_hit and d == 0) or (d >= lo and d < hi):
                if count == 0:
                    for j in range(nsample):
                        out_idx[b, m, j] = n
                out_idx[b, m, count] = n
                count += 1
                if count >= nsample:
                    break
        out_count[b, m] = count


def _both(func):
    """(serial, parallel) compilations of one kernel (``prange`` is
    ``range`` in the serial one)."""
    return (njit(cache=True)(func), njit(cache=True, parallel=True)(func))


#: (serial, parallel) versions; call ``pick(KERNEL, pairs)(...)``
KNN_XYZ = _both(_knn_xyz)
K_SMALLEST_ROWS = _both(_k_smallest_rows)
BALL_QUERY_XYZ = _both(_ball_query_xyz)
