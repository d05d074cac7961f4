# Copyright (c) mmbinpc contributors. All rights reserved.
"""Compiled (Numba) kernels of the neighbour queries: one scan per query.

The brute-force paths of :mod:`mmbinpc.ops.neighbors` build a (query x
point) distance matrix with PyTorch and select from it. These kernels never
materialise it: the ball query scans the points in index order and stops
after ``nsample`` hits, as mmcv's CUDA kernel does; the 3-D kNN (and
three_nn) visits a uniform grid of the points ring by ring around each
query, keeping the k nearest so far in a small sorted buffer; feature-space
kNN (:func:`knn_features`) computes PyTorch's distance expansion a block of
queries at a time, in a fixed order, and selects the same way. Results are
the same as the brute-force paths' (for feature-space kNN: up to the
rounding of the expansion, which PyTorch's BLAS orders differently; the
training op and the packed runtime share this kernel, so they agree bit for
bit):

* squared distances of 3-D points are computed in the input dtype in the
  kernels' order, ``dx*dx + dy*dy + dz*dz`` with ``d = query − point``,
  each ``+ d*d`` as one fused multiply-add (:func:`_fma`), which is what
  nvcc makes of mmcv's kernels by default and what PyTorch's ``addcmul``
  (the brute-force path) computes;
* ties: candidates are ranked by (distance, index), so the result is
  ordered that way and the k selected are the smallest indices among equal
  distances - the rule the brute-force paths implement;
* ball query fills slots in scan order and stops after ``nsample`` hits;
* furthest point sampling keeps the brute-force path's rounding (squares
  added one by one) and its first-index argmax.

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


@njit(cache=True, inline='always')
def _insert_lex(best_d, best_i, count, k, d, n):
    """Insert (d, n) into the buffer sorted by (distance, index); returns the
    new count. Scans in index order never meet the index tie-break."""
    if count == k:
        if not (d < best_d[k - 1] or
                (d == best_d[k - 1] and n < best_i[k - 1])):
            return count
        pos = k - 1
    else:
        pos = count
        count += 1
    while pos > 0 and (best_d[pos - 1] > d or
                       (best_d[pos - 1] == d and best_i[pos - 1] > n)):
        best_d[pos] = best_d[pos - 1]
        best_i[pos] = best_i[pos - 1]
        pos -= 1
    best_d[pos] = d
    best_i[pos] = n
    return count


#: points per grid cell the kNN grid aims at: k / 2, at least this many
#: (the k nearest then usually lie within the 27 cells around the query's)
GRID_MIN_POINTS_PER_CELL = 4.0
#: a ring search stops only when the k-th distance is below the squared
#: distance bound of the unvisited cells by this relative margin (float
#: rounding of distances and cell assignment can never reorder across it)
_BOUND_MARGIN = 1e-5


def _knn_xyz_grid(query, points, k, out_idx, out_d2):
    """k nearest 3-D points of every query point, through a grid.

    The points of each cloud are bucketed into cubic cells (about k / 2
    points each); each query visits rings of cells around its own, nearest
    first, and stops once no unvisited cell can hold a point as close as
    its k-th neighbour (with a safety margin, so float rounding cannot
    change the result). Candidates are ranked by (distance, index), the
    order of an index-order scan with strict comparisons.

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
    per_cell = max(GRID_MIN_POINTS_PER_CELL, k / 2.0)
    res = max(1, int(round((num_points / per_cell)**(1.0 / 3))))
    num_cells = res * res * res
    for b in range(batch):
        lo = np.empty(3)
        hi = np.empty(3)
        for a in range(3):
            lo[a] = np.inf
            hi[a] = -np.inf
        for n in range(num_points):
            for a in range(3):
                v = float(points[b, n, a])
                lo[a] = min(lo[a], v)
                hi[a] = max(hi[a], v)
        size = max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1e-12)
        h = size / res * (1.0 + 1e-9)
        cell_of = np.empty(num_points, np.int64)
        start = np.zeros(num_cells + 1, np.int64)
        for n in range(num_points):
            c = 0
            for a in range(3):
                c = c * res + _cell(float(points[b, n, a]), lo[a], h, res)
            cell_of[n] = c
            start[c + 1] += 1
        for c in range(num_cells):
            start[c + 1] += start[c]
        fill = start[:-1].copy()
        order = np.empty(num_points, np.int64)
        for n in range(num_points):  # index order within each cell
            order[fill[cell_of[n]]] = n
            fill[cell_of[n]] += 1
        for m in prange(num_query):
            best_d = out_d2[b, m]  # the outputs are the sorted buffers
            best_i = out_idx[b, m]
            count = 0
            worst = np.inf
            worst_i = 0
            qx, qy, qz = query[b, m, 0], query[b, m, 1], query[b, m, 2]
            fq0, fq1, fq2 = float(qx), float(qy), float(qz)
            c0 = _cell(fq0, lo[0], h, res)
            c1 = _cell(fq1, lo[1], h, res)
            c2 = _cell(fq2, lo[2], h, res)
            r = 0
            while True:
                # the cells of ring r (Chebyshev distance r from the query's)
                for ix in range(max(c0 - r, 0), min(c0 + r, res - 1) + 1):
                    for iy in range(max(c1 - r, 0), min(c1 + r, res - 1) + 1):
                        edge = abs(ix - c0) == r or abs(iy - c1) == r
                        for iz in range(
                                max(c2 - r, 0),
                                min(c2 + r, res - 1) + 1):
                            if not edge and abs(iz - c2) != r:
                                continue
                            c = (ix * res + iy) * res + iz
                            for j in range(start[c], start[c + 1]):
                                n = order[j]
                                d = _sq_dist3(qx, qy, qz, points[b, n, 0],
                                              points[b, n, 1], points[b, n, 2])
                                if count < k or d < worst or (d == worst
                                                              and n < worst_i):
                                    count = _insert_lex(
                                        best_d, best_i, count, k, d, n)
                                    if count == k:
                                        worst = best_d[k - 1]
                                        worst_i = best_i[k - 1]
                if c0 - r <= 0 and c1 - r <= 0 and c2 - r <= 0 and \
                        c0 + r >= res - 1 and c1 + r >= res - 1 and \
                        c2 + r >= res - 1:
                    break  # every cell visited
                if count == k:
                    # distance from the query to the unvisited cells
                    bound = np.inf
                    bound = _face(bound, fq0, lo[0], h, c0, r, res)
                    bound = _face(bound, fq1, lo[1], h, c1, r, res)
                    bound = _face(bound, fq2, lo[2], h, c2, r, res)
                    bound = max(bound, 0.0)
                    if float(worst) < bound * bound * (1.0 - _BOUND_MARGIN):
                        break
                r += 1


@njit(cache=True, inline='always')
def _cell(v, lo, h, res):
    """Grid cell of a coordinate, clamped to the grid (before the integer
    conversion, so far-away queries cannot overflow it)."""
    if v < lo:
        return 0
    x = (v - lo) / h
    if x >= res - 1:
        return res - 1
    return int(x)


@njit(cache=True, inline='always')
def _face(bound, v, lo, h, c, r, res):
    """``bound`` lowered to the distance from ``v`` to the faces of the
    visited block (cells ``c - r`` to ``c + r``) that have cells beyond."""
    if c - r > 0:
        bound = min(bound, v - (lo + (c - r) * h))
    if c + r < res - 1:
        bound = min(bound, lo + (c + r + 1) * h - v)
    return bound


def _furthest_point_sample(points, num, out):
    """Iterative furthest point sampling, one cloud per (parallel) step.

    Starts at index 0; each step lowers every point's running minimum
    squared distance (initially 1e10) by its distance to the last selected
    point, computed as the brute-force path does (``(x² + y²) + z²``, each
    rounded), and takes the first index of the maximum. The coordinates are
    copied to planes (x, y, z) first (contiguous loads in the update loop).

    Args:
        points (np.ndarray): (B, N, 3) float, C-contiguous.
        num (int): Points to select, ``num >= 2``.
        out (np.ndarray): (B, num) int32, zero-filled, written.
    """
    batch, size = points.shape[0], points.shape[1]
    for b in prange(batch):
        xs = np.empty(size, points.dtype)
        ys = np.empty(size, points.dtype)
        zs = np.empty(size, points.dtype)
        for n in range(size):
            xs[n] = points[b, n, 0]
            ys[n] = points[b, n, 1]
            zs[n] = points[b, n, 2]
        temp = np.full(size, 1e10, points.dtype)
        old = 0
        for j in range(1, num):
            ox, oy, oz = xs[old], ys[old], zs[old]
            best = temp.dtype.type(-np.inf)
            for n in range(size):  # running minimum, and its maximum
                dx = xs[n] - ox
                dy = ys[n] - oy
                dz = zs[n] - oz
                d = dx * dx
                d = d + dy * dy
                d = d + dz * dz
                t = min(temp[n], d)
                temp[n] = t
                best = max(best, t)
            best_i = 0
            for n in range(size):  # the first index of the maximum
                if temp[n] == best:
                    best_i = n
                    break
            old = best_i
            out[b, j] = old


def _sq_norms(x, out):
    """Squared norm of every row of ``x`` (M, C), channels summed in order
    (the order :func:`_knn_features` uses, so equal rows get equal norms)."""
    for m in prange(x.shape[0]):
        acc = x.dtype.type(0)
        for c in range(x.shape[1]):
            acc += x[m, c] * x[m, c]
        out[m] = acc


#: query rows that share one pass over the candidates in _knn_features
FEATURE_ROWS = 16
#: candidates per tile of _knn_features: the tile's (FEATURE_ROWS, tile)
#: dot products stay in the L1 cache while the channels are summed
FEATURE_TILE = 256


def _knn_features(query, points_t, q_norm, p_norm, k, out_idx):
    """k nearest candidates of every query in feature space.

    The squared distance is PyTorch's expansion ``(|q|² + |p|²) − 2 q·p``
    (clamped at 0), with ``q·p`` accumulated channel by channel in a fixed
    order and selected with the (distance, index) order. The training-time
    CPU op (:func:`mmbinpc.ops.knn`) and the packed runtime both call this
    kernel, so a model and its packed file find the same neighbours bit for
    bit; equal candidates get equal distances and tie by index.

    ``FEATURE_ROWS`` queries share each pass over the candidates, which are
    visited ``FEATURE_TILE`` at a time: a tile's dot products are summed
    over all channels (the innermost loop runs over candidates, so it is
    vectorised without reordering any sum), then its candidates enter the
    queries' selections in index order. Neither constant changes a result.

    Args:
        query (np.ndarray): (M, C) float, C-contiguous.
        points_t (np.ndarray): (C, N) candidates, channel-major, same dtype.
        q_norm (np.ndarray): (M,) from :func:`_sq_norms` of ``query``.
        p_norm (np.ndarray): (N,) from :func:`_sq_norms` of the candidates.
        k (int): ``1 <= k <= N``.
        out_idx (np.ndarray): (M, k) int64, written.
    """
    num_query, channels = query.shape
    size = points_t.shape[1]
    two = query.dtype.type(2)
    zero = query.dtype.type(0)
    for blk in prange((num_query + FEATURE_ROWS - 1) // FEATURE_ROWS):
        m0 = blk * FEATURE_ROWS
        rows = min(FEATURE_ROWS, num_query - m0)
        acc = np.empty((FEATURE_ROWS, FEATURE_TILE), query.dtype)
        best_d = np.empty((FEATURE_ROWS, k), query.dtype)
        best_i = np.empty((FEATURE_ROWS, k), np.int64)
        count = np.zeros(FEATURE_ROWS, np.int64)
        worst = np.full(FEATURE_ROWS, np.inf, query.dtype)
        for n0 in range(0, size, FEATURE_TILE):
            width = min(FEATURE_TILE, size - n0)
            acc[:, :width] = zero
            # four channels per sweep, added one after the other: the same
            # sums as one channel per sweep, with a quarter of the traffic
            quads = channels - channels % 4
            for c in range(0, quads, 4):
                p0 = points_t[c, n0:n0 + width]
                p1 = points_t[c + 1, n0:n0 + width]
                p2 = points_t[c + 2, n0:n0 + width]
                p3 = points_t[c + 3, n0:n0 + width]
                for r in range(rows):
                    q0 = query[m0 + r, c]
                    q1 = query[m0 + r, c + 1]
                    q2 = query[m0 + r, c + 2]
                    q3 = query[m0 + r, c + 3]
                    row = acc[r]
                    for t in range(width):
                        row[t] = (((row[t] + q0 * p0[t]) + q1 * p1[t]) +
                                  q2 * p2[t]) + q3 * p3[t]
            for c in range(quads, channels):
                cand = points_t[c, n0:n0 + width]
                for r in range(rows):
                    q = query[m0 + r, c]
                    row = acc[r]
                    for t in range(width):
                        row[t] += q * cand[t]
            for r in range(rows):
                qn = q_norm[m0 + r]
                row = acc[r]
                for t in range(width):  # distances, vectorised
                    d = (qn + p_norm[n0 + t]) - two * row[t]
                    row[t] = d if d > zero else zero
                row_d = best_d[r]
                row_i = best_i[r]
                have = count[r]
                bound = worst[r]
                for t in range(width):
                    d = row[t]
                    if have < k or d < bound:
                        have = _insert_lex(row_d, row_i, have, k, d, n0 + t)
                        if have == k:
                            bound = row_d[k - 1]
                count[r] = have
                worst[r] = bound
        for r in range(rows):
            for j in range(k):
                out_idx[m0 + r, j] = best_i[r, j]


def knn_features(query, points, k, parallel=False):
    """:func:`_knn_features` on (M, C) queries and (N, C) candidates
    (float32 or float64, NumPy): (M, k) int64 indices, ``1 <= k <= N``."""
    query = np.ascontiguousarray(query)
    points = np.ascontiguousarray(points, dtype=query.dtype)
    q_norm = np.empty(query.shape[0], query.dtype)
    p_norm = np.empty(points.shape[0], query.dtype)
    which = 1 if parallel else 0
    SQ_NORMS[which](query, q_norm)
    SQ_NORMS[which](points, p_norm)
    out = np.empty((query.shape[0], k), np.int64)
    KNN_FEATURES[which](query, np.ascontiguousarray(points.T), q_norm, p_norm,
                        k, out)
    return out


def _both(func):
    """(serial, parallel) compilations of one kernel (``prange`` is
    ``range`` in the serial one)."""
    return (njit(cache=True)(func), njit(cache=True, parallel=True)(func))


#: (serial, parallel) versions; call ``pick(KERNEL, pairs)(...)``
KNN_XYZ = _both(_knn_xyz_grid)
BALL_QUERY_XYZ = _both(_ball_query_xyz)
FURTHEST_POINT_SAMPLE = _both(_furthest_point_sample)
SQ_NORMS = _both(_sq_norms)
KNN_FEATURES = _both(_knn_features)
