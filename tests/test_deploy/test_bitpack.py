# Copyright (c) mmbinpc contributors. All rights reserved.
"""Bit packing round trips, padding, and XNOR-popcount dot products."""
import numpy as np
import pytest
import torch

from mmbinpc.binary.binarizers import hard_sign
from mmbinpc.deploy import (num_words, pack_signs, popcount64, unpack_signs,
                            xnor_dot)

LENGTHS = [1, 3, 63, 64, 65, 127, 130, 1024]


def _signs(x):
    return np.where(x >= 0, 1, -1)


@pytest.mark.parametrize('n', LENGTHS)
def test_round_trip(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, 5, n)).astype(np.float32)
    x[0, 0, 0] = 0.0  # sign(0) = +1
    words = pack_signs(x)
    assert words.dtype == np.uint64
    assert words.shape == (3, 5, num_words(n))
    back = unpack_signs(words, n)
    assert back.shape == x.shape
    np.testing.assert_array_equal(back, _signs(x))
    assert back[0, 0, 0] == 1


def test_pack_other_axis_and_torch_input():
    x = torch.randn(70, 4)
    words = pack_signs(x, axis=0)  # packed axis moves last
    assert words.shape == (4, 2)
    np.testing.assert_array_equal(
        unpack_signs(words, 70, axis=0), _signs(x.numpy()))


@pytest.mark.parametrize('n', [1, 63, 65, 130])
def test_padding_bits_are_zero_and_do_not_change_popcount(n):
    # all +1: every real bit set, padding bits must stay 0
    words = pack_signs(np.ones(n))
    assert int(popcount64(words).sum()) == n
    pad = num_words(n) * 64 - n
    if pad:
        last = int(words[-1])
        assert last >> (64 - pad) == 0
    # all -1 against all +1: XOR popcount counts exactly n disagreements
    neg = pack_signs(-np.ones(n))
    assert int(popcount64(words ^ neg).sum()) == n
    assert xnor_dot(words, neg, n) == -n
    assert xnor_dot(words, words, n) == n


@pytest.mark.parametrize('n', LENGTHS)
def test_xnor_dot_equals_sign_dot(n):
    rng = np.random.default_rng(100 + n)
    a = rng.standard_normal((6, n))
    w = rng.standard_normal((7, n))
    got = xnor_dot(pack_signs(a)[:, None], pack_signs(w)[None], n)
    np.testing.assert_array_equal(got, _signs(a) @ _signs(w).T)


def test_bit_order_is_little_endian():
    words = pack_signs(np.array([1.0, -1.0, 0.0, -2.0]))
    assert words.tolist() == [0b0101]
    words = pack_signs(np.r_[-np.ones(64), 1.0])
    assert words.tolist() == [0, 1]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_signed_zero_and_tiny_values_per_bit(dtype):
    # The packed engine must binarize like training's hard_sign: -0.0 and
    # 0.0 are +1 (bit 1), -1e-9 is -1 (bit 0). Bits are little-endian, so
    # element i is bit i: 1, 1, 0, 1, 0, 1 -> 0b101011.
    x = np.array([-0.0, 0.0, -1e-9, 1e-9, -np.inf, np.inf], dtype=dtype)
    assert np.signbit(x[0]) and x[2] < 0  # the inputs are what they claim
    words = pack_signs(x)
    assert words.tolist() == [0b101011]
    back = unpack_signs(words, len(x))
    assert back.tolist() == [1.0, 1.0, -1.0, 1.0, -1.0, 1.0]
    assert back.tolist() == hard_sign(torch.from_numpy(x)).tolist()


def test_bad_input():
    with pytest.raises(ValueError, match='NaN'):
        pack_signs(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match='words cannot hold'):
        unpack_signs(pack_signs(np.ones(70)), 200)
    with pytest.raises(TypeError, match='uint64'):
        unpack_signs(np.zeros(2, np.int32), 64)
