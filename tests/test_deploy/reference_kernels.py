# Copyright (c) mmbinpc contributors. All rights reserved.
"""Plain reference versions of the XNOR-popcount primitives (tests only).

Straightforward loops over the packed words, kept apart from the optimised
kernels of :mod:`mmbinpc.deploy.kernels` that the engine runs; they share
only the popcount intrinsic.
"""
import numpy as np
from numba import njit

from mmbinpc.deploy.kernels import popcount_u64


@njit(cache=True)
def xnor_popcount_dot(a_words, b_words, n):
    """±1 dot product of two packed vectors of true length ``n``.

    Args:
        a_words (np.ndarray): uint64 words (W,).
        b_words (np.ndarray): uint64 words (W,).
        n (int): True length (bits beyond it are zero padding).

    Returns:
        int: ``sign(a) · sign(b)``.
    """
    diff = 0
    for w in range(a_words.shape[0]):
        diff += popcount_u64(a_words[w] ^ b_words[w])
    return n - 2 * np.int64(diff)


@njit(cache=True)
def pack_rows(x):
    """Pack the signs of a 2-D float array row by row.

    Args:
        x (np.ndarray): (M, C) float32, any strides.

    Returns:
        np.ndarray: (M, ceil(C / 64)) uint64 words.
    """
    m_total, c_total = x.shape
    n_words = (c_total + 63) // 64
    out = np.zeros((m_total, n_words), dtype=np.uint64)
    for m in range(m_total):
        for c in range(c_total):
            if x[m, c] >= 0:
                out[m, c >> 6] |= np.uint64(1) << np.uint64(c & 63)
    return out


@njit(cache=True)
def binary_gemm(x_words, w_words_t, n):
    """Integer ±1 matrix product of packed rows and packed weights.

    Args:
        x_words (np.ndarray): (M, W) uint64 packed inputs.
        w_words_t (np.ndarray): (W, O) uint64 packed weights, transposed so
            that output channels are contiguous.
        n (int): True reduction length.

    Returns:
        np.ndarray: (M, O) int32 with ``sign(x) @ sign(w).T``.
    """
    m_total = x_words.shape[0]
    n_words, n_out = w_words_t.shape
    out = np.empty((m_total, n_out), dtype=np.int32)
    acc = np.zeros(n_out, dtype=np.int64)
    for m in range(m_total):
        acc[:] = 0
        for w in range(n_words):
            xw = x_words[m, w]
            for o in range(n_out):
                acc[o] += popcount_u64(xw ^ w_words_t[w, o])
        for o in range(n_out):
            out[m, o] = n - 2 * acc[o]
    return out
