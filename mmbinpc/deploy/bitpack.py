# Copyright (c) mmbinpc contributors. All rights reserved.
"""Bit packing of ±1 tensors into 64-bit words.

Encoding (shared by the exporter and the packed engine):

* bit ``1`` means ``+1`` (value ``>= 0``, so ``sign(0) = +1``), bit ``0``
  means ``-1``;
* bit ``j`` of word ``w`` holds element ``64 * w + j`` along the packed axis
  (little-endian bit order inside a word);
* the tail of the last word is padded with ``0`` bits in *both* operands, so
  ``a XOR w`` is 0 there and the padding never changes a popcount. The dot
  product of two packed vectors of true length ``n`` is therefore
  ``n - 2 * popcount(a XOR w)``.
"""
from typing import Union

import numpy as np

WORD_BITS = 64
ArrayLike = Union[np.ndarray, 'torch.Tensor']  # noqa: F821


def num_words(n: int) -> int:
    """Number of 64-bit words needed for ``n`` bits."""
    if n < 0:
        raise ValueError(f'bit count must be >= 0, got {n}')
    return (int(n) + WORD_BITS - 1) // WORD_BITS


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, 'detach'):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def pack_signs(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Pack the signs of ``x`` along ``axis`` into ``uint64`` words.

    Args:
        x (np.ndarray | torch.Tensor): Real values; ``x >= 0`` becomes bit 1.
            NaN is rejected (it has no sign).
        axis (int): Axis to pack. Defaults to -1.

    Returns:
        np.ndarray: ``uint64`` array shaped like ``x`` with ``axis`` moved to
        the end and replaced by ``num_words(x.shape[axis])`` words.

    Examples:
        >>> w = pack_signs(np.array([1., -1., 0., -2.]))
        >>> int(w[0])  # bits 0 and 2 set
        5
    """
    x = _as_numpy(x)
    if x.ndim == 0:
        raise ValueError('pack_signs needs at least a 1-D array')
    if np.issubdtype(x.dtype, np.floating) and np.isnan(x).any():
        raise ValueError('pack_signs got NaN values; they have no sign')
    bits = np.moveaxis(x >= 0, axis, -1)
    n = bits.shape[-1]
    pad = num_words(n) * WORD_BITS - n
    if pad:
        bits = np.concatenate(
            [bits, np.zeros(bits.shape[:-1] + (pad, ), dtype=bool)], axis=-1)
    packed = np.packbits(bits, axis=-1, bitorder='little')  # uint8, LE bits
    packed = np.ascontiguousarray(packed)
    return packed.view('<u8').astype(np.uint64, copy=False)


def unpack_signs(words: ArrayLike,
                 n: int,
                 axis: int = -1,
                 dtype=np.float32) -> np.ndarray:
    """Inverse of :func:`pack_signs`: ``uint64`` words back to ±1 values.

    Args:
        words (np.ndarray): Packed words, packed axis last.
        n (int): True length of the packed axis (padding bits are dropped).
        axis (int): Where to put the unpacked axis in the result.
            Defaults to -1.
        dtype: Output dtype. Defaults to float32.

    Returns:
        np.ndarray: ±1 array with ``n`` elements along ``axis``.
    """
    words = _as_numpy(words)
    if words.dtype != np.uint64:
        raise TypeError(
            f'unpack_signs expects uint64 words, got {words.dtype}')
    if words.shape[-1] != num_words(n):
        raise ValueError(f'{words.shape[-1]} words cannot hold exactly {n} '
                         f'bits (need {num_words(n)})')
    as_bytes = np.ascontiguousarray(words).astype(
        '<u8', copy=False).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder='little')[..., :n]
    out = bits.astype(dtype) * 2 - 1
    return np.moveaxis(out, -1, axis)


def popcount64(words: np.ndarray) -> np.ndarray:
    """Element-wise popcount of ``uint64`` words (NumPy reference)."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    as_bytes = words.astype('<u8', copy=False).view(np.uint8)
    bits = np.unpackbits(as_bytes.reshape(words.shape + (8, )), axis=-1)
    return bits.sum(axis=-1, dtype=np.int64)


def xnor_dot(a_words: np.ndarray, b_words: np.ndarray, n: int) -> np.ndarray:
    """±1 dot products of packed vectors (NumPy reference).

    ``a_words`` (..., W) and ``b_words`` (..., W) broadcast against each
    other; the result is ``n - 2 * popcount(a XOR b)`` summed over words,
    which equals ``sign(a) · sign(b)`` over the ``n`` true elements.

    Args:
        a_words (np.ndarray): Packed words of the first operand.
        b_words (np.ndarray): Packed words of the second operand.
        n (int): True vector length.

    Returns:
        np.ndarray: int64 dot products.
    """
    diff = popcount64(np.bitwise_xor(a_words, b_words)).sum(-1)
    return n - 2 * diff.astype(np.int64)
