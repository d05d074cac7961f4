# Copyright (c) mmbinpc contributors. All rights reserved.
"""Numba XNOR-popcount kernels against sign(a) · sign(w) computed densely."""
import numpy as np
import pytest
import torch

from mmbinpc.deploy import kernels, pack_signs
from mmbinpc.deploy.runtime import OPS
from .reference_kernels import binary_gemm, pack_rows, xnor_popcount_dot


def _signs(x):
    return np.where(x >= 0, 1.0, -1.0).astype(np.float32)


@pytest.mark.parametrize('n', [1, 64, 100, 128, 200, 1024])
def test_dot_and_gemm(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((5, n)).astype(np.float32)
    w = rng.standard_normal((9, n)).astype(np.float32)
    aw, ww = pack_signs(a), pack_signs(w)
    dense = _signs(a) @ _signs(w).T
    assert xnor_popcount_dot(aw[1], ww[2], n) == dense[1, 2]
    gemm = binary_gemm(aw, np.ascontiguousarray(ww.T), n)
    np.testing.assert_array_equal(gemm, dense)
    np.testing.assert_array_equal(pack_rows(a), aw)


# widths cover the 1-word, 2-word and general (odd and even word count) paths
@pytest.mark.parametrize('c', [3, 64, 100, 128, 130, 300])
@pytest.mark.parametrize('mode', ['none', 'mean_abs'])
@pytest.mark.parametrize('epilogue', ['plain', 'clamp', 'pool'])
def test_binary_pointwise_matches_dense(c, mode, epilogue):
    rng = np.random.default_rng(c)
    m, o = 36, 45
    x = rng.standard_normal((m, c)).astype(np.float32)
    x[0, :3] = 0.0  # exact zeros: sign(0) = +1
    w = rng.standard_normal((o, c)).astype(np.float32)
    thr = (0.3 * rng.standard_normal(c)).astype(np.float32)
    scale = rng.uniform(-2, 2, o).astype(np.float32)
    shift = rng.standard_normal(o).astype(np.float32)
    lo, hi = (-1.0, 1.5) if epilogue != 'plain' else (-np.inf, np.inf)
    group = 9 if epilogue == 'pool' else 0  # 4 clouds of 9 points
    out = np.full((m // group if group else m, o), -np.inf, np.float32)
    code = kernels.SCALE_MEAN_ABS if mode == 'mean_abs' else kernels.SCALE_NONE
    kernels.binary_pointwise(x, thr, code,
                             np.ascontiguousarray(pack_signs(w).T), scale,
                             shift, lo, hi, group, out)
    shifted = x - thr
    beta = np.abs(shifted).mean(1, keepdims=True) if mode == 'mean_abs' \
        else 1.0
    ref = (_signs(shifted) @ _signs(w).T) * scale * beta + shift
    ref = np.clip(ref, lo, hi)
    if group:
        ref = ref.reshape(-1, group, o).max(1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def binary_dense(c, o, w, output='float', clamp=None):
    """A BinaryDense op with unit scale and zero shift."""
    return OPS['binary_dense']('toy',
                               dict(
                                   in_channels=c,
                                   out_channels=o,
                                   input='float',
                                   scale_mode='none',
                                   clamp=clamp,
                                   output=output),
                               dict(
                                   weight_bits=pack_signs(w),
                                   out_scale=np.ones(o, np.float32),
                                   out_shift=np.zeros(o, np.float32),
                                   threshold=np.zeros(c, np.float32)))


@pytest.mark.parametrize('lead', [(2, 11), (2, 3, 4), (5, )])
def test_binary_dense_on_any_leading_shape(lead):
    """Channel-last rows of any leading shape (clouds, neighbourhoods, one
    row per cloud) give the ±1 matrix product, pooled over the
    second-to-last axis when asked."""
    c, o = 70, 33
    w = torch.randn(o, c)
    x = torch.randn(*lead, c)
    ref = torch.where(x >= 0, 1.0, -1.0) @ torch.where(w >= 0, 1.0, -1.0).T
    out = binary_dense(c, o, w)(x.numpy())
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out, ref.numpy())
    if len(lead) > 1:
        for clamp in ([-3, 5], [None, 5], [-3, None]):
            lo, hi = (-np.inf if clamp[0] is None else clamp[0],
                      np.inf if clamp[1] is None else clamp[1])
            pooled = binary_dense(c, o, w, 'max', clamp)(x.numpy())
            np.testing.assert_allclose(pooled,
                                       ref.clamp(lo, hi).amax(-2).numpy())


@pytest.mark.parametrize('c', [50, 64, 128, 200])
@pytest.mark.parametrize('group', [20, 7])  # 7: blocks of 4 points + rest
def test_integer_maxpool_matches_float_path(c, group):
    rng = np.random.default_rng(c)
    m, o = 2 * group, 33
    x = rng.standard_normal((m, c)).astype(np.float32)
    wt = np.ascontiguousarray(pack_signs(rng.standard_normal((o, c))).T)
    thr = np.zeros(c, np.float32)
    scale = rng.uniform(-1, 1, o).astype(np.float32)  # both signs
    scale[0] = 0.0
    shift = rng.standard_normal(o).astype(np.float32)
    ref = np.full((m // group, o), -np.inf, np.float32)
    kernels.binary_pointwise(x, thr, kernels.SCALE_NONE, wt, scale, shift,
                             -0.5, 2.0, group, ref)
    out = np.empty_like(ref)
    kernels.binary_pointwise_maxpool(x, thr, wt, scale, shift, -0.5, 2.0,
                                     group, out)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('c', [3, 64, 130])
@pytest.mark.parametrize('mode', ['none', 'mean_abs'])
def test_channel_first_packing_matches_rows(c, mode):
    rng = np.random.default_rng(c)
    x = rng.standard_normal((2, c, 7)).astype(np.float32)
    x[0, 0, 0] = 0.0
    thr = (0.2 * rng.standard_normal(c)).astype(np.float32)
    code = kernels.SCALE_MEAN_ABS if mode == 'mean_abs' else kernels.SCALE_NONE
    words_cf, beta_cf = kernels.pack_input_channels_first(x, thr, code)
    rows = np.ascontiguousarray(x.transpose(0, 2, 1).reshape(-1, c))
    words, beta = kernels.pack_input(rows, thr, code)
    np.testing.assert_array_equal(words_cf, words)
    np.testing.assert_array_equal(words, pack_signs(rows - thr))
    np.testing.assert_allclose(beta_cf, beta, rtol=1e-6)
    expect = np.abs(rows - thr).mean(1) if mode == 'mean_abs' else 1.0
    np.testing.assert_allclose(
        beta, np.broadcast_to(expect, beta.shape), rtol=1e-5)


@pytest.mark.parametrize('group', [7, 64])
def test_parallel_maxpool_matches_serial(group):
    """Splitting each cloud's points over 2 threads gives the same maxima.

    With ``threads=2`` the kernel cuts each cloud into 2 chunks and merges
    their maxima; this checks that split and merge. That Numba really runs
    the chunks on 2 threads is checked by
    ``test_prange_chunks_run_on_two_threads``."""
    rng = np.random.default_rng(group)
    c, o = 128, 40
    x = rng.standard_normal((3 * group, c)).astype(np.float32)
    words, _ = kernels.pack_input(x, np.zeros(c, np.float32),
                                  kernels.SCALE_NONE)
    wt = np.ascontiguousarray(pack_signs(rng.standard_normal((o, c))).T)
    scale = rng.uniform(-1, 1, o).astype(np.float32)
    shift = rng.standard_normal(o).astype(np.float32)
    outs = []
    for threads in (1, 2):
        out = np.empty((3, o), np.float32)
        kernels.xnor_gemm_maxpool(words, c, wt, scale, shift, -np.inf, np.inf,
                                  group, out, threads)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    with pytest.raises(ValueError, match='threads'):
        kernels.set_num_threads(0)


@pytest.mark.parametrize('mode', ['none', 'mean_abs'])
def test_parallel_rows_match_serial(mode):
    """Layers without pooling give the same rows on 1 and 2 threads."""
    rng = np.random.default_rng(1)
    m, c, o = 130, 100, 24
    x = rng.standard_normal((m, c)).astype(np.float32)
    wt = np.ascontiguousarray(pack_signs(rng.standard_normal((o, c))).T)
    scale = rng.uniform(-1, 1, o).astype(np.float32)
    shift = rng.standard_normal(o).astype(np.float32)
    code = kernels.SCALE_MEAN_ABS if mode == 'mean_abs' else kernels.SCALE_NONE
    outs = []
    for threads in (1, 2):
        out = np.empty((m, o), np.float32)
        kernels.binary_pointwise(x, np.zeros(c, np.float32), code, wt, scale,
                                 shift, -1.0, 1.0, 0, out, threads)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_prange_chunks_run_on_two_threads():
    """The kernels' parallel paths are ``prange`` loops over one chunk per
    thread; with 2 threads set, Numba runs the 2 chunks on 2 threads."""
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip('Numba has one thread here: nothing can run in parallel')

    @numba.njit(parallel=True)
    def chunk_threads(n_chunks):
        out = np.empty(n_chunks, np.int64)
        for c in numba.prange(n_chunks):
            out[c] = numba.get_thread_id()
        return out

    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(2)
        assert sorted(chunk_threads(2)) == [0, 1]
        kernels.set_num_threads(1)
        assert list(chunk_threads(2)) == [0, 0]
    finally:
        kernels.set_num_threads(before)
