# Copyright (c) mmbinpc contributors. All rights reserved.
"""Numba kernels for XNOR + popcount inference on packed 64-bit words.

The bit encoding is the one of :mod:`mmbinpc.deploy.bitpack` (bit 1 = +1,
zero padding in both operands). A binary point-wise layer (a Conv1d with
kernel 1, a 1x1 Conv2d or a Linear) runs in two kernels
(:func:`binary_pointwise` chains them for row input):

1. :func:`pack_input` / :func:`pack_input_channels_first`: binarize every
   point's input channels (``x - threshold >= 0``), computing the optional
   per-point activation scale (XNOR-Net's β = mean |x|) on the way, and pack
   them into words;
2. :func:`xnor_gemm_affine` (or :func:`xnor_gemm_maxpool`): accumulate
   ``popcount(x_word XOR w_word)`` for every output channel - the
   loop runs with the packed input word outside and the output channels
   inside, so LLVM vectorises it with the host's ``vpopcntq`` (AVX-512
   VPOPCNTDQ) or an AVX2 popcount sequence;
3. write ``clamp((n - 2 * popcount) * out_scale * β + out_shift)``, where
   ``out_scale``/``out_shift`` hold the weight scale α, the layer bias and a
   folded BatchNorm and the clamp is a fused Hardtanh/ReLU - or, for a layer
   whose output only feeds a global max pooling, max-reduce it over the
   points on the fly instead of writing it.

Kernels are compiled on first use and cached on disk (``cache=True``). They
run on one thread unless :func:`set_num_threads` asks for more: then the
fused max-pooling layers (the 128 -> 1024 layers that dominate PointNet)
split every cloud's points, and layers without pooling their rows, over
Numba's threads. Parallel regions cost
a few microseconds each when the cores are free but can stall for
milliseconds on a machine whose other core is busy, hence the default.
"""
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

#: Activation-scale modes understood by :func:`binary_pointwise`.
SCALE_NONE = 0
SCALE_MEAN_ABS = 1

#: Reassociation lets LLVM vectorise the β sum; no NaN/inf assumptions.
_FASTMATH = {'reassoc', 'nsz', 'contract'}


@intrinsic
def popcount_u64(typingctx, x):
    """LLVM ``ctpop`` on a uint64 (one ``popcnt``/``vpopcntq``)."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


#: Points processed per weight load in the XNOR-popcount loops.
BLOCK = 4


@intrinsic
def _prefer_512bit_vectors(typingctx):
    """Let LLVM vectorise the calling kernel with 512-bit registers.

    LLVM's x86 cost model prefers 256-bit vectors on AVX-512 CPUs (to avoid
    frequency drops of older parts); the ``"prefer-vector-width"="512"``
    function attribute lifts that for the kernel that calls this, doubling
    the ``vpopcntq`` width. Harmless on CPUs without AVX-512.
    """

    def codegen(context, builder, signature, args):
        # string attributes are valid LLVM IR but not in llvmlite's list
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


def _is_c_vector(a, dtype) -> bool:
    """Whether a Numba type is a 1-D C-contiguous array of ``dtype``."""
    return (isinstance(a, types.Array) and a.ndim == 1 and a.layout == 'C'
            and a.dtype == dtype)


def _load64(context, builder, array_type, array, offset):
    """LLVM code loading ``array[offset:offset + 64]`` as one vector."""
    vec = ir.VectorType(context.get_value_type(array_type.dtype), 64)
    data = context.make_array(array_type)(context, builder, array).data
    ptr = builder.bitcast(builder.gep(data, [offset]), vec.as_pointer())
    return builder.load(ptr, align=array_type.dtype.bitwidth // 8)


@intrinsic
def _sign_bits64(typingctx, x, start, threshold):
    """uint64 whose bit ``j`` is ``x[start + j] >= threshold[start + j]``
    for ``j < 64`` (both float32, C-contiguous, in bounds: the caller
    checks). One ``<64 x float>`` compare whose ``<64 x i1>`` result is the
    word (``vcmpps`` into mask registers on AVX-512): ~5x faster than the
    shift-and-or loop. NaN gives 0, as ``>=`` does."""
    if not (_is_c_vector(x, types.float32) and _is_c_vector(
            threshold, types.float32) and isinstance(start, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        mask = builder.fcmp_ordered(
            '>=', _load64(context, builder, x, args[0], args[1]),
            _load64(context, builder, threshold, args[2], args[1]))
        return builder.bitcast(mask, ir.IntType(64))

    return types.uint64(x, start, threshold), codegen


@intrinsic
def _le_bits64_at(typingctx, d, d_start, limit, limit_start):
    """uint64 whose bit ``j`` is ``d[d_start + j] <= limit[limit_start + j]``
    for ``j < 64`` (both int64, C-contiguous, in bounds: the caller checks).
    One ``<64 x i64>`` compare whose ``<64 x i1>`` result is the word (eight
    ``vpcmpq`` into mask registers on AVX-512)."""
    if not (_is_c_vector(d, types.int64) and _is_c_vector(limit, types.int64)
            and isinstance(d_start, types.Integer)
            and isinstance(limit_start, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        mask = builder.icmp_signed(
            '<=', _load64(context, builder, d, args[0], args[1]),
            _load64(context, builder, limit, args[2], args[3]))
        return builder.bitcast(mask, ir.IntType(64))

    return types.uint64(d, d_start, limit, limit_start), codegen


@njit(cache=True)
def pack_input(x, threshold, scale_mode):
    """Binarize and pack point rows; optionally XNOR-Net's β per point.

    Args:
        x (np.ndarray): (M, C) float32 C-contiguous rows (one per point).
        threshold (np.ndarray): (C,) float32; bit = ``x >= threshold``.
        scale_mode (int): ``SCALE_MEAN_ABS`` computes β = mean |x - t|.

    Returns:
        tuple: (M, ceil(C / 64)) uint64 words and (M,) float32 β (ones
        without an activation scale).
    """
    m_total, n_in = x.shape
    words = np.empty((m_total, (n_in + 63) // 64), dtype=np.uint64)
    beta = np.empty(m_total, dtype=np.float32)
    pack_input_into(x, threshold, scale_mode, words, beta)
    return words, beta


@njit(cache=True, fastmath=_FASTMATH)
def pack_input_into(x, threshold, scale_mode, words, beta):
    """:func:`pack_input` writing into given arrays.

    Args:
        x (np.ndarray): (M, C) float32 C-contiguous rows.
        threshold (np.ndarray): (C,) float32.
        scale_mode (int): As in :func:`pack_input`.
        words (np.ndarray): (M, ceil(C / 64)) uint64, written.
        beta (np.ndarray): (M,) float32, written (ones without a scale).
    """
    m_total, n_in = x.shape
    n_words = (n_in + 63) // 64
    n_full = n_in // 64
    for m in range(m_total):
        xrow = x[m]
        for w in range(n_full):  # one vector compare -> a 64-bit mask
            words[m, w] = _sign_bits64(xrow, w * 64, threshold)
        if n_full < n_words:  # partial last word, zero padding
            base = n_full * 64
            word = np.uint64(0)
            for j in range(n_in - base):  # branch-free: LLVM vectorises it
                word |= np.uint64(xrow[base + j] >= threshold[base + j]) << \
                    np.uint64(j)
            words[m, n_full] = word
    if scale_mode == 1:
        for m in range(m_total):
            total = np.float32(0.0)
            for c in range(n_in):
                total += abs(x[m, c] - threshold[c])
            beta[m] = total / np.float32(n_in)
    else:
        beta[:] = 1


@njit(cache=True, fastmath=_FASTMATH)
def pack_input_channels_first(x, threshold, scale_mode):
    """:func:`pack_input` for channel-first input, without a transpose.

    Args:
        x (np.ndarray): (B, C, N) float32 C-contiguous.
        threshold (np.ndarray): (C,) float32.
        scale_mode (int): As in :func:`pack_input`.

    Returns:
        tuple: (B * N, W) uint64 words (row ``b * N + n``) and (B * N,) β.
    """
    _prefer_512bit_vectors()
    n_batch, n_in, n_pts = x.shape
    n_words = (n_in + 63) // 64
    words = np.empty((n_batch * n_pts, n_words), dtype=np.uint64)
    beta = np.ones(n_batch * n_pts, dtype=np.float32)
    # words are built channel-first (points contiguous, so every channel is
    # one vectorised pass) and transposed once at the end
    cf_words = np.empty((n_words, n_pts), dtype=np.uint64)
    total = np.empty(n_pts, dtype=np.float32)
    for b in range(n_batch):
        off = b * n_pts
        cf_words[:] = 0
        total[:] = 0
        for c in range(n_in):
            w = c >> 6
            bit = np.uint64(c & 63)
            t = threshold[c]
            for n in range(n_pts):
                v = x[b, c, n]
                cf_words[w, n] |= np.uint64(1 if v >= t else 0) << bit
            if scale_mode == 1:
                for n in range(n_pts):
                    total[n] += abs(x[b, c, n] - t)
        for n in range(n_pts):
            for w in range(n_words):
                words[off + n, w] = cf_words[w, n]
        if scale_mode == 1:
            for n in range(n_pts):
                beta[off + n] = total[n] / np.float32(n_in)
    return words, beta


@njit(cache=True)
def _xor_popcount_block(words, m, n_rows, w_words_t, dist):
    """``dist[i, o] = popcount(words[m + i] XOR w_o)`` for ``i < n_rows``.

    With ``n_rows == BLOCK`` and one or two words per row (the common
    widths, up to 128 channels) each weight vector is loaded once for
    ``BLOCK`` points and the popcounts stay in registers; the output
    channels are the vectorised inner loop.

    Args:
        words (np.ndarray): (M, W) uint64 packed rows.
        m (int): First row.
        n_rows (int): Rows to process (1 to ``BLOCK``).
        w_words_t (np.ndarray): (W, O) uint64 packed weights.
        dist (np.ndarray): (BLOCK, O) int64 scratch, written.
    """
    _prefer_512bit_vectors()
    n_words, n_out = w_words_t.shape
    if n_rows == 4 and n_words <= 2:
        # 2-D indexing only: row views would cost reference counting here
        a0, b0, c0, e0 = words[m, 0], words[m + 1, 0], words[m + 2, 0], \
            words[m + 3, 0]
        if n_words == 1:
            for o in range(n_out):
                x = w_words_t[0, o]
                dist[0, o] = popcount_u64(a0 ^ x)
                dist[1, o] = popcount_u64(b0 ^ x)
                dist[2, o] = popcount_u64(c0 ^ x)
                dist[3, o] = popcount_u64(e0 ^ x)
            return
        a1, b1, c1, e1 = words[m, 1], words[m + 1, 1], words[m + 2, 1], \
            words[m + 3, 1]
        for o in range(n_out):
            x = w_words_t[0, o]
            y = w_words_t[1, o]
            dist[0, o] = popcount_u64(a0 ^ x) + popcount_u64(a1 ^ y)
            dist[1, o] = popcount_u64(b0 ^ x) + popcount_u64(b1 ^ y)
            dist[2, o] = popcount_u64(c0 ^ x) + popcount_u64(c1 ^ y)
            dist[3, o] = popcount_u64(e0 ^ x) + popcount_u64(e1 ^ y)
        return
    for i in range(n_rows):  # general widths and the last rows
        for o in range(n_out):
            dist[i, o] = 0
        for w in range(n_words):
            x = words[m + i, w]
            for o in range(n_out):
                dist[i, o] += popcount_u64(x ^ w_words_t[w, o])


@njit(cache=True, fastmath=_FASTMATH)
def xnor_gemm_affine(words,
                     beta,
                     n_in,
                     w_words_t,
                     out_scale,
                     out_shift,
                     lo,
                     hi,
                     pool_group,
                     out,
                     n_threads=1):
    """XNOR-popcount of packed rows with every output channel, then the
    output affine, a clamp and optionally a max over groups of rows.

    Rows are processed ``BLOCK`` at a time (:func:`_xor_popcount_block`).

    Args:
        words (np.ndarray): (M, W) uint64 packed input rows.
        beta (np.ndarray): (M,) float32 activation scale per row.
        n_in (int): True input length C.
        w_words_t (np.ndarray): (W, O) uint64 packed weight signs,
            output channels contiguous.
        out_scale (np.ndarray): (O,) float32 multiplier of the ±1 dot.
        out_shift (np.ndarray): (O,) float32 added after it.
        lo (float): Lower clamp of the output (a fused Hardtanh/ReLU; -inf
            for none).
        hi (float): Upper clamp (+inf for none).
        pool_group (int): 0 writes one output row per input row; ``g > 0``
            max-reduces every ``g`` consecutive rows into one (a fused global
            max pooling; ``out`` must start at -inf).
        out (np.ndarray): (M, O) or (M / g, O) float32 output rows.
        n_threads (int): Without pooling, split the rows over this many
            Numba threads; 1 runs serially.
    """
    if n_threads > 1 and pool_group == 0 and words.shape[0] >= 64:
        _affine_rows_parallel(words, beta, n_in, w_words_t, out_scale,
                              out_shift, lo, hi, out, n_threads)
    else:
        _affine_rows(words, beta, n_in, w_words_t, out_scale, out_shift, lo,
                     hi, pool_group, out)


@njit(cache=True, parallel=True)
def _affine_rows_parallel(words, beta, n_in, w_words_t, out_scale, out_shift,
                          lo, hi, out, n_threads):
    """:func:`_affine_rows` without pooling, rows split into ``n_threads``
    slices run on Numba's threads."""
    m_total = words.shape[0]
    step = (m_total + n_threads - 1) // n_threads
    for c in prange(n_threads):
        m0 = min(c * step, m_total)
        m1 = min(m0 + step, m_total)
        _affine_rows(words[m0:m1], beta[m0:m1], n_in, w_words_t, out_scale,
                     out_shift, lo, hi, 0, out[m0:m1])


@njit(cache=True, fastmath=_FASTMATH)
def _affine_rows(words, beta, n_in, w_words_t, out_scale, out_shift, lo, hi,
                 pool_group, out):
    """Serial body of :func:`xnor_gemm_affine` (same arguments)."""
    _prefer_512bit_vectors()
    m_total = words.shape[0]
    n_out = w_words_t.shape[1]
    lo = np.float32(lo)
    hi = np.float32(hi)
    group = pool_group if pool_group > 0 else max(1, m_total)
    dist = np.empty((BLOCK, n_out), dtype=np.int64)
    for g0 in range(0, m_total, group):  # blocks never straddle two clouds
        g_end = min(g0 + group, m_total)
        for m in range(g0, g_end, BLOCK):
            n_rows = min(BLOCK, g_end - m)
            _xor_popcount_block(words, m, n_rows, w_words_t, dist)
            for i in range(n_rows):
                b = beta[m + i]
                if pool_group > 0:  # affine, fused clamp and max pool
                    r = m // pool_group
                    for o in range(n_out):
                        v = (
                            np.float32(n_in - 2 * dist[i, o]) * out_scale[o] *
                            b + out_shift[o])
                        v = v if v > lo else lo
                        v = v if v < hi else hi
                        out[r, o] = max(out[r, o], v)
                else:  # affine and fused clamp
                    r = m + i
                    for o in range(n_out):
                        v = (
                            np.float32(n_in - 2 * dist[i, o]) * out_scale[o] *
                            b + out_shift[o])
                        v = v if v > lo else lo
                        out[r, o] = v if v < hi else hi


@njit(cache=True, fastmath=_FASTMATH)
def _min_popcounts(words, m_start, m_end, w_words_t, dmin):
    """``dmin[o] = min over rows m_start..m_end-1 of popcount(row XOR w_o)``.

    Args:
        words (np.ndarray): (M, W) uint64 packed rows.
        m_start (int): First row.
        m_end (int): End of the rows (exclusive).
        w_words_t (np.ndarray): (W, O) uint64 packed weights.
        dmin (np.ndarray): (O,) int64, written.
    """
    _prefer_512bit_vectors()
    n_words, n_out = w_words_t.shape
    dmin[:] = 64 * n_words + 1
    m = m_start
    if n_words == 2:  # 65-128 channels: min kept in registers (1.7x faster)
        while m + 4 <= m_end:
            a0, b0, c0, e0 = words[m, 0], words[m + 1, 0], words[m + 2, 0], \
                words[m + 3, 0]
            a1, b1, c1, e1 = words[m, 1], words[m + 1, 1], words[m + 2, 1], \
                words[m + 3, 1]
            for o in range(n_out):
                x = w_words_t[0, o]
                y = w_words_t[1, o]
                da = popcount_u64(a0 ^ x) + popcount_u64(a1 ^ y)
                db = popcount_u64(b0 ^ x) + popcount_u64(b1 ^ y)
                dc = popcount_u64(c0 ^ x) + popcount_u64(c1 ^ y)
                de = popcount_u64(e0 ^ x) + popcount_u64(e1 ^ y)
                dmin[o] = min(dmin[o], np.int64(min(min(da, db), min(dc, de))))
            m += 4
    dist = np.empty((BLOCK, n_out), dtype=np.int64)
    for m in range(m, m_end, BLOCK):
        n_rows = min(BLOCK, m_end - m)
        _xor_popcount_block(words, m, n_rows, w_words_t, dist)
        if n_rows == BLOCK:
            for o in range(n_out):
                dmin[o] = min(
                    min(dmin[o], min(dist[0, o], dist[1, o])),
                    min(dist[2, o], dist[3, o]))
        else:
            for i in range(n_rows):
                for o in range(n_out):
                    dmin[o] = min(dmin[o], dist[i, o])


@njit(cache=True, parallel=True)
def _min_popcounts_parallel(words, m_start, m_end, w_words_t, part):
    """:func:`_min_popcounts` with the rows split into ``part.shape[0]``
    slices run on Numba's threads; ``part[c]`` gets the minima of slice
    ``c``."""
    n_chunks = part.shape[0]
    step = (m_end - m_start + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        _min_popcounts(words, min(m_start + c * step, m_end),
                       min(m_start + (c + 1) * step, m_end), w_words_t,
                       part[c])


@njit(cache=True, fastmath=_FASTMATH)
def xnor_gemm_maxpool(words,
                      n_in,
                      w_words_t,
                      out_scale,
                      out_shift,
                      lo,
                      hi,
                      pool_group,
                      out,
                      n_threads=1):
    """:func:`xnor_gemm_affine` followed by a global max over the points,
    for binarizers without an activation scale (β = 1).

    The output ``(n - 2 d) * s + t`` is monotonic in the popcount ``d``, so
    the max over the points of a cloud is reached at the smallest ``d`` of a
    channel when ``s > 0`` and at the largest when ``s < 0``. The kernel
    complements the valid weight bits of the channels with ``s < 0``
    (their popcount becomes ``n - d``), so that only integer minima are
    kept, and applies the affine map and the clamp once per cloud - the
    same result as computing every output first (up to the rounding of one
    fused multiply-add).

    Args:
        words (np.ndarray): (M, W) uint64 packed rows, ``pool_group`` rows
            per cloud.
        n_in (int): True input length C.
        w_words_t (np.ndarray): (W, O) uint64 packed weight signs.
        out_scale (np.ndarray): (O,) float32.
        out_shift (np.ndarray): (O,) float32.
        lo (float): Lower clamp (-inf for none).
        hi (float): Upper clamp (+inf for none).
        pool_group (int): Points per cloud (> 0).
        out (np.ndarray): (M / pool_group, O) float32 output.
        n_threads (int): Split every cloud's points over this many Numba
            threads (at most ``numba.get_num_threads()``); 1 runs serially.
    """
    flipped = flip_negative_channels(w_words_t, n_in, out_scale)
    part = np.empty((max(1, n_threads), w_words_t.shape[1]), dtype=np.int64)
    table = np.empty(dedup_table_size(pool_group), dtype=np.int32)
    uniq = np.empty((pool_group, words.shape[1]), dtype=np.uint64)
    xnor_gemm_maxpool_flipped(words, n_in, flipped, out_scale, out_shift, lo,
                              hi, pool_group, out, part, table, uniq)


@njit(cache=True)
def dedup_table_size(n_rows):
    """Slots of the hash table :func:`unique_rows` needs for ``n_rows``
    rows (a power of two, at least twice as many)."""
    size = 1
    while size < 2 * n_rows:
        size *= 2
    return size


@njit(cache=True)
def unique_rows(words, m_start, m_end, table, out):
    """Copy the distinct rows of ``words[m_start:m_end]`` to ``out``.

    Binarized point features repeat: two points whose features fall on the
    same side of every threshold have the same packed row (a third to two
    thirds of the 1024 points of a cloud at the pooled layers of our
    PointNet), and a max over the points does not change when repeated
    rows are dropped. Open addressing with linear probing on a 64-bit mix
    of the row's words; rows are compared word by word, so a hash
    collision cannot merge two different rows.

    Args:
        words (np.ndarray): (M, W) uint64 packed rows.
        m_start (int): First row.
        m_end (int): End of the rows (exclusive).
        table (np.ndarray): int32 scratch of
            :func:`dedup_table_size` (m_end - m_start) slots.
        out (np.ndarray): (>= m_end - m_start, W) uint64, written.

    Returns:
        int: The number of distinct rows (the first rows of ``out``).
    """
    n_words = words.shape[1]
    mask = np.uint64(table.shape[0] - 1)
    table[:] = -1
    count = 0
    for m in range(m_start, m_end):
        h = np.uint64(0x9E3779B97F4A7C15)
        for w in range(n_words):
            h = (h ^ words[m, w]) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(29)
        slot = np.int64(h & mask)
        while True:
            j = table[slot]
            if j < 0:  # a new row
                table[slot] = count
                for w in range(n_words):
                    out[count, w] = words[m, w]
                count += 1
                break
            same = True
            for w in range(n_words):
                if out[j, w] != words[m, w]:
                    same = False
                    break
            if same:
                break
            slot = np.int64((np.uint64(slot) + np.uint64(1)) & mask)
    return count


@njit(cache=True)
def flip_negative_channels(w_words_t, n_in, out_scale):
    """Packed weights with the valid bits of the channels whose scale is
    negative complemented (their popcount ``d`` becomes ``n_in - d``).

    Args:
        w_words_t (np.ndarray): (W, O) uint64 packed weight signs.
        n_in (int): True input length.
        out_scale (np.ndarray): (O,) float32.

    Returns:
        np.ndarray: (W, O) uint64, a new array.
    """
    n_words, n_out = w_words_t.shape
    flipped = np.empty_like(w_words_t)
    for w in range(n_words):
        valid = min(64, n_in - 64 * w)
        mask = np.uint64(-1) if valid == 64 else \
            (np.uint64(1) << np.uint64(valid)) - np.uint64(1)
        for o in range(n_out):
            flip = mask if out_scale[o] < 0 else np.uint64(0)
            flipped[w, o] = w_words_t[w, o] ^ flip
    return flipped


@njit(cache=True, fastmath=_FASTMATH)
def xnor_gemm_maxpool_flipped(words, n_in, flipped, out_scale, out_shift, lo,
                              hi, pool_group, out, part, table, uniq):
    """:func:`xnor_gemm_maxpool` with the weights already flipped by
    :func:`flip_negative_channels` and every work array given, so that
    nothing is allocated per call.

    Each cloud's rows are first reduced to its distinct rows
    (:func:`unique_rows`; the max over the points is the same).

    Args:
        words, n_in, out_scale, out_shift, lo, hi, pool_group, out: As in
            :func:`xnor_gemm_maxpool`.
        flipped (np.ndarray): (W, O) uint64 from
            :func:`flip_negative_channels`.
        part (np.ndarray): (threads, O) int64 per-thread minima; its first
            axis sets the number of Numba threads.
        table (np.ndarray): int32 hash table of
            :func:`dedup_table_size` (pool_group) slots.
        uniq (np.ndarray): (pool_group, W) uint64 distinct rows.
    """
    _prefer_512bit_vectors()
    m_total = words.shape[0]
    n_out = flipped.shape[1]
    n_threads = part.shape[0]
    lo = np.float32(lo)
    hi = np.float32(hi)
    for g in range(m_total // pool_group):
        g0 = g * pool_group
        n_rows = unique_rows(words, g0, g0 + pool_group, table, uniq)
        if n_threads > 1:
            _min_popcounts_parallel(uniq, 0, n_rows, flipped, part)
        else:
            _min_popcounts(uniq, 0, n_rows, flipped, part[0])
        orow = out[g]
        for o in range(n_out):
            dmin = part[0, o]
            for c in range(1, part.shape[0]):
                dmin = min(dmin, part[c, o])
            s = out_scale[o]
            d = dmin if s >= 0 else n_in - dmin
            v = np.float32(n_in - 2 * d) * s + out_shift[o]
            v = v if v > lo else lo
            orow[o] = v if v < hi else hi


@njit(cache=True)
def _rows_to_bits(words, w_words_t, limit, out_words):
    """Serial body of :func:`xnor_gemm_bits` (same arguments)."""
    _prefer_512bit_vectors()
    m_total = words.shape[0]
    n_out_words = out_words.shape[1]
    # popcounts of the padding channels stay 0 and their limit is -1
    width = n_out_words * 64
    dist = np.zeros((BLOCK, width), dtype=np.int64)
    flat = dist.reshape(BLOCK * width)  # one view: no per-row refcounting
    for m in range(0, m_total, BLOCK):
        n_rows = min(BLOCK, m_total - m)
        _xor_popcount_block(words, m, n_rows, w_words_t, dist)
        for i in range(n_rows):
            for ow in range(n_out_words):
                out_words[m + i, ow] = _le_bits64_at(flat, i * width + ow * 64,
                                                     limit, ow * 64)


@njit(cache=True, parallel=True)
def _rows_to_bits_parallel(words, w_words_t, limit, out_words, n_threads):
    """:func:`_rows_to_bits` with the rows split into ``n_threads`` slices
    run on Numba's threads."""
    m_total = words.shape[0]
    step = (m_total + n_threads - 1) // n_threads
    step = (step + BLOCK - 1) // BLOCK * BLOCK
    for c in prange(n_threads):
        m0 = min(c * step, m_total)
        m1 = min(m0 + step, m_total)
        _rows_to_bits(words[m0:m1], w_words_t, limit, out_words[m0:m1])


@njit(cache=True)
def xnor_gemm_bits(words, w_words_t, limit, out_words, n_threads=1):
    """XNOR-popcount of packed rows with every output channel, thresholded
    straight into the packed input of the next binary layer.

    A binary layer followed by BatchNorm, a clamp and the next layer's
    binarization ``y >= t`` computes, per output channel ``o``, a function
    of the popcount ``d`` that is monotonic: with the weight bits of the
    channels whose slope is negative complemented (their popcount becomes
    ``n - d``), the output bit is ``d <= limit[o]``. The integer limits are
    worked out once from the float affine map (see
    :func:`mmbinpc.deploy.plan.bit_limits`), so the layer writes one bit per
    output instead of a float.

    Args:
        words (np.ndarray): (M, W) uint64 packed input rows.
        w_words_t (np.ndarray): (W, O) uint64 packed weight signs (the
            complemented ones included), output channels contiguous.
        limit (np.ndarray): (64 * ceil(O / 64),) int64 per-channel limits;
            -1 for the padding channels (their bits stay 0).
        out_words (np.ndarray): (M, ceil(O / 64)) uint64, written.
        n_threads (int): Split the rows over this many Numba threads.
    """
    # below ~1e5 popcounts a parallel region costs more than it saves
    # (1024 points x 64 channels: 21 us on one thread, 24 us on two)
    if n_threads > 1 and words.shape[0] * w_words_t.size >= 100_000:
        _rows_to_bits_parallel(words, w_words_t, limit, out_words, n_threads)
    else:
        _rows_to_bits(words, w_words_t, limit, out_words)


@njit(cache=True, fastmath=_FASTMATH)
def dense_rows(x, w_t, bias, lo, hi, out):
    """An FP32 point-wise layer on rows: ``clamp(x @ w_t + bias)``.

    For the FP32 layers a binarized model keeps - the first ones, reading
    3 to 6 raw coordinates per point, and the classifier, reading one row
    per cloud - where a BLAS call costs more in set-up than in arithmetic.

    Args:
        x (np.ndarray): (M, C) float32 rows.
        w_t (np.ndarray): (C, O) float32 weights (BatchNorm folded in).
        bias (np.ndarray): (O,) float32.
        lo (float): Lower clamp (-inf for none).
        hi (float): Upper clamp (+inf for none).
        out (np.ndarray): (M, O) float32, written.
    """
    _prefer_512bit_vectors()
    m_total, n_in = x.shape
    n_out = w_t.shape[1]
    lo = np.float32(lo)
    hi = np.float32(hi)
    for m in range(m_total):
        for o in range(n_out):
            out[m, o] = bias[o]
        for c in range(n_in):
            v = x[m, c]
            for o in range(n_out):
                out[m, o] += v * w_t[c, o]
        for o in range(n_out):
            v = out[m, o]
            v = v if v > lo else lo
            out[m, o] = v if v < hi else hi


@njit(cache=True, fastmath=_FASTMATH)
def transform_rows(x, mat, out):
    """A T-Net alignment on channel-last points: ``out[b, n, :k] =
    x[b, n, :k] @ (mat[b] + I)``, the other channels copied.

    Args:
        x (np.ndarray): (B, N, C) float32 points, C >= k.
        mat (np.ndarray): (B, k, k) float32 T-Net outputs (without the
            identity).
        out (np.ndarray): (B, N, C) float32, written.
    """
    _prefer_512bit_vectors()
    batch, num, channels = x.shape
    k = mat.shape[1]
    acc = np.empty((BLOCK, k), np.float32)
    for b in range(batch):
        m = mat[b]
        for n0 in range(0, num, BLOCK):
            rows = min(BLOCK, num - n0)
            for r in range(rows):  # the identity
                for j in range(k):
                    acc[r, j] = x[b, n0 + r, j]
            for i in range(k):  # one row of the matrix for BLOCK points
                mrow = m[i]
                for r in range(rows):
                    v = x[b, n0 + r, i]
                    arow = acc[r]
                    for j in range(k):
                        arow[j] += v * mrow[j]
            for r in range(rows):
                orow = out[b, n0 + r]
                for j in range(k):
                    orow[j] = acc[r, j]
                for c in range(k, channels):
                    orow[c] = x[b, n0 + r, c]


@njit(cache=True)
def binary_pointwise(x,
                     threshold,
                     scale_mode,
                     w_words_t,
                     out_scale,
                     out_shift,
                     lo,
                     hi,
                     pool_group,
                     out,
                     n_threads=1):
    """One binary point-wise layer on (M, C) rows: :func:`pack_input` then
    :func:`xnor_gemm_affine` (see there for the arguments)."""
    words, beta = pack_input(x, threshold, scale_mode)
    xnor_gemm_affine(words, beta, x.shape[1], w_words_t, out_scale, out_shift,
                     lo, hi, pool_group, out, n_threads)


@njit(cache=True)
def binary_pointwise_maxpool(x,
                             threshold,
                             w_words_t,
                             out_scale,
                             out_shift,
                             lo,
                             hi,
                             pool_group,
                             out,
                             n_threads=1):
    """:func:`pack_input` then :func:`xnor_gemm_maxpool` (β = 1)."""
    words, _ = pack_input(x, threshold, 0)
    xnor_gemm_maxpool(words, x.shape[1], w_words_t, out_scale, out_shift, lo,
                      hi, pool_group, out, n_threads)


_num_threads = 1


def set_num_threads(n: int) -> None:
    """Threads used by the parallel kernel paths (the fused max-pooling
    layers split each cloud's points over them); 1 (the default) keeps
    every kernel serial.

    Args:
        n (int): Thread count, at most Numba's pool size
            (``NUMBA_NUM_THREADS``, the number of cores by default).
    """
    import numba
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f'packed kernel threads must be in [1, '
                         f'{numba.config.NUMBA_NUM_THREADS}], got {n}')
    global _num_threads
    numba.set_num_threads(n)
    _num_threads = n


def get_num_threads() -> int:
    """Threads set by :func:`set_num_threads`."""
    return _num_threads


def warmup() -> None:
    """Compile (or load from the on-disk cache) the kernels for the types
    the engine uses, so that the first real call is not slowed by the JIT."""
    x = np.zeros((2, 3), dtype=np.float32)
    wt = np.zeros((1, 2), dtype=np.uint64)
    f = np.ones(2, dtype=np.float32)
    out = np.empty((2, 2), dtype=np.float32)
    binary_pointwise(x, np.zeros(3, np.float32), SCALE_NONE, wt, f, f, -np.inf,
                     np.inf, 0, out, 1)
    binary_pointwise_maxpool(x, np.zeros(3, np.float32), wt, f, f, -np.inf,
                             np.inf, 2, out[:1], 1)
    words, beta = pack_input_channels_first(x[None], np.zeros(2, np.float32),
                                            SCALE_NONE)
    for threads in (1, 2):  # the serial and the parallel paths
        xnor_gemm_affine(words, beta, 2, wt, f, f, -np.inf, np.inf, 0, out[:1],
                         threads)
        xnor_gemm_maxpool(words, 2, wt, f, f, -np.inf, np.inf, 3, out[:1],
                          threads)
