# Copyright (c) mmbinpc contributors. All rights reserved.
"""The runtime's ops and kernels against independent references."""
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmbinpc.binary.aggregation import PointPool
from mmbinpc.deploy import kernels, pack_signs
from mmbinpc.deploy.converter import bit_limits
from mmbinpc.deploy.runtime import OPS, Bits
from mmbinpc.ops import knn as torch_knn
from .helpers import build_trained, export_and_load, pointnet_cfg


def unpack_rows(words: np.ndarray, n: int) -> np.ndarray:
    """(M, W) uint64 -> (M, n) 0/1 bits (the bitpack encoding)."""
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder='little')
    return bits[:, :n]


def op(name, attrs, arrays=None):
    cls = OPS[name]
    cls.check_attrs(attrs)
    return cls('t', attrs, arrays or {})


# --------------------------------------------------------------------------
# binary layers writing the next layer's bits
# --------------------------------------------------------------------------
@pytest.mark.parametrize('n_in', [5, 64, 100, 128])
@pytest.mark.parametrize('n_out', [3, 64, 70])
@pytest.mark.parametrize('clamp,threshold', [((-np.inf, np.inf), False),
                                             ((-1.0, 1.0), False),
                                             ((0.0, 6.0), True)])
def test_bits_output_matches_float_output_then_packing(n_in, n_out, clamp,
                                                       threshold):
    """A binary_dense writing bits (limits from the converter's bit_limits)
    == the float epilogue followed by the next layer's binarization, for
    scales of both signs and zero."""
    rng = np.random.default_rng(n_in * 1000 + n_out)
    m = 37  # blocks of 4 rows plus a remainder
    x = rng.standard_normal((m, n_in)).astype(np.float32)
    weights = rng.standard_normal((n_out, n_in))
    scale = rng.uniform(-1, 1, n_out)
    scale[0] = 0.0
    shift = rng.uniform(-3, 3, n_out)
    next_thr = (
        rng.uniform(-0.5, 0.5, n_out).astype(np.float32)
        if threshold else np.zeros(n_out, np.float32))
    lo, hi = clamp
    attrs = dict(
        in_channels=n_in,
        out_channels=n_out,
        input='float',
        scale_mode='none',
        clamp=[None if lo == -np.inf else lo, None if hi == np.inf else hi])
    arrays = dict(
        weight_bits=pack_signs(weights), threshold=np.zeros(n_in, np.float32))
    floats = op(
        'binary_dense', dict(attrs, output='float'),
        dict(
            arrays,
            out_scale=scale.astype(np.float32),
            out_shift=shift.astype(np.float32)))(
                x)
    ref_bits = unpack_rows(kernels.pack_input(floats, next_thr, 0)[0], n_out)

    layer = SimpleNamespace(
        name='t',
        in_channels=n_in,
        scale=scale,
        shift=shift,
        clamp=clamp,
        bits=weights >= 0)
    bits, limit = bit_limits(layer, next_thr)
    assert limit.shape == (n_out, ) and limit.dtype == np.int64
    for threads in (1, 2):
        kernels.set_num_threads(threads)
        try:
            out = op(
                'binary_dense', dict(attrs, output='bits'),
                dict(
                    arrays,
                    weight_bits=pack_signs(np.where(bits, 1.0, -1.0)),
                    limit=limit))(
                        x)
        finally:
            kernels.set_num_threads(1)
        assert isinstance(out, Bits) and out.shape == (m, n_out)
        got = unpack_rows(out.words, out.words.shape[1] * 64)
        np.testing.assert_array_equal(got[:, :n_out], ref_bits)
        assert not got[:, n_out:].any()  # padding bits stay 0


def test_bits_output_parallel_matches_serial():
    rng = np.random.default_rng(3)
    m, n_in, n_out = 1101, 128, 70  # enough work for the parallel path
    words = rng.integers(0, 2**63, size=(m, 2), dtype=np.uint64)
    w_t = rng.integers(0, 2**63, size=(2, n_out), dtype=np.uint64)
    assert words.shape[0] * w_t.size >= 100_000
    limit = np.full(128, -1, np.int64)
    limit[:n_out] = rng.integers(0, n_in + 1, n_out)
    serial = np.empty((m, 2), np.uint64)
    kernels.xnor_gemm_bits(words, w_t, limit, serial, 1)
    parallel = np.empty((m, 2), np.uint64)
    kernels.xnor_gemm_bits(words, w_t, limit, parallel, 2)
    np.testing.assert_array_equal(parallel, serial)
    dist = (unpack_rows(words, 128)[:, None, :]
            != unpack_rows(np.ascontiguousarray(w_t.T), 128)[None]).sum(-1)
    np.testing.assert_array_equal(
        unpack_rows(serial, 128)[:, :n_out], dist <= limit[None, :n_out])


@pytest.mark.parametrize('n_words', [1, 2, 3])
def test_unique_rows(n_words):
    rng = np.random.default_rng(n_words)
    pool = rng.integers(0, 2**63, size=(50, n_words), dtype=np.uint64)
    rows = pool[rng.integers(0, 50, size=300)]  # many repeats
    rows[:5] = pool[0]
    table = np.empty(kernels.dedup_table_size(250), np.int32)
    assert table.shape[0] >= 500 and table.shape[0] & (table.shape[0] - 1) \
        == 0
    out = np.empty((250, n_words), np.uint64)
    count = kernels.unique_rows(rows, 50, 300, table, out)
    expect = np.unique(rows[50:300], axis=0)
    assert count == len(expect)
    np.testing.assert_array_equal(np.unique(out[:count], axis=0), expect)
    first = [tuple(r) for r in rows[50:300]]
    order = sorted(
        {
            r: i
            for i, r in reversed(list(enumerate(first)))
        }.items(),
        key=lambda kv: kv[1])
    assert [tuple(r) for r in out[:count]] == [r for r, _ in order]


@pytest.mark.parametrize('threads', [1, 2])
def test_fused_max_with_repeated_points(threads):
    """Dropping repeated rows before the integer max gives the max over all
    points (the float path computes every point)."""
    rng = np.random.default_rng(5)
    group, c, o = 40, 128, 33
    distinct = rng.standard_normal((6, c)).astype(np.float32)
    x = distinct[rng.integers(0, 6, size=3 * group)]
    wt = np.ascontiguousarray(pack_signs(rng.standard_normal((o, c))).T)
    scale = rng.uniform(-1, 1, o).astype(np.float32)
    shift = rng.standard_normal(o).astype(np.float32)
    thr = np.zeros(c, np.float32)
    ref = np.full((3, o), -np.inf, np.float32)
    kernels.binary_pointwise(x, thr, kernels.SCALE_NONE, wt, scale, shift,
                             -1.0, 1.0, group, ref)
    words, _ = kernels.pack_input(x, thr, 0)
    flipped = kernels.flip_negative_channels(wt, c, scale)
    out = np.empty_like(ref)
    kernels.xnor_gemm_maxpool_flipped(
        words, c, flipped, scale, shift, -1.0, 1.0, group, out,
        np.empty((threads, o), np.int64),
        np.empty(kernels.dedup_table_size(group), np.int32),
        np.empty((group, words.shape[1]), np.uint64))
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('c,o', [(3, 20), (64, 128)])
def test_dense(c, o):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, c)).astype(np.float32)
    w = rng.standard_normal((o, c)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    out = op('dense', dict(in_channels=c, out_channels=o, clamp=[-0.5, None]),
             dict(weight=w, bias=bias))(
                 x)
    np.testing.assert_allclose(
        out, np.maximum(x @ w.T + bias, -0.5), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# point ops
# --------------------------------------------------------------------------
@pytest.mark.parametrize('space,channels', [('xyz', 3), ('xyz', 6),
                                            ('features', 16)])
@pytest.mark.parametrize('n,k', [(50, 8), (5, 8)])
def test_knn_matches_mmcv_semantics(space, channels, n, k):
    """Same neighbours in the same order as mmbinpc.ops.knn (mmcv's CUDA
    semantics: nearest first, ties to the smaller index, index 0 padding
    when k > N), with repeated points to create ties."""
    rng = np.random.default_rng(n + channels)
    x = rng.standard_normal((2, n, channels)).astype(np.float32)
    x[:, n // 2] = x[:, 0]  # a duplicate point: an exact tie
    out = op('knn', dict(k=k, space=space))(x)
    sub = x[..., -3:] if space == 'xyz' else x
    t = torch.from_numpy(np.ascontiguousarray(sub))
    ref = torch_knn(k, t, t, False).transpose(1, 2).numpy()
    np.testing.assert_array_equal(out, ref)


def test_edge_features_and_local_pool_match_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 10, 4)).astype(np.float32)
    idx = rng.integers(0, 10, (2, 10, 3)).astype(np.int32)
    e = op('edge_features', dict(channels=4))(x, idx)
    xt = torch.from_numpy(x)
    nb = xt[torch.arange(2)[:, None, None], torch.from_numpy(idx).long()]
    ref = torch.cat([nb - xt[:, :, None], xt[:, :, None].expand_as(nb)], -1)
    np.testing.assert_array_equal(e, ref.numpy())
    for mode in ('max', 'ema', 'avg', 'max+avg', 'ema+avg'):
        got = op('pool', dict(mode=mode, channels=8))(e)
        want = PointPool(
            mode, dim=-1)(ref.permute(0, 3, 1, 2)).permute(0, 2, 1)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6, atol=1e-6)


def test_transform_concat_slice():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 5)).astype(np.float32)
    t = rng.standard_normal((2, 9)).astype(np.float32)
    out = op('transform', dict(k=3))(x, t)
    mat = t.reshape(2, 3, 3) + np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(out[..., :3], x[..., :3] @ mat, rtol=1e-6)
    np.testing.assert_array_equal(out[..., 3:], x[..., 3:])
    cat = op('concat', dict(channels=10))(x, out)
    np.testing.assert_array_equal(cat, np.concatenate([x, out], -1))
    np.testing.assert_array_equal(
        op('slice', dict(start=1, stop=4))(x), x[..., 1:4])


# --------------------------------------------------------------------------
# the model object
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def packed(tmp_path_factory):
    model = build_trained(pointnet_cfg('lsr', 'ema', tnets=True), steps=1)
    return export_and_load(model, tmp_path_factory.mktemp('rt'))[1]


def test_results_are_not_overwritten_by_the_next_call(packed):
    a = np.random.default_rng(0).uniform(-1, 1, (4, 64, 3))
    b = np.random.default_rng(1).uniform(-1, 1, (2, 40, 3))
    first = packed(a)
    kept = first.copy()
    assert packed(b).shape == (2, 5)  # other batch and cloud sizes
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_array_equal(packed(a), kept)
    single = packed(a[0])  # one (N, C) cloud
    np.testing.assert_allclose(single[0], kept[0], rtol=1e-6)


def test_timing_by_op(packed):
    pts = np.zeros((1, 64, 3), np.float32)
    packed(pts)
    assert packed.op_seconds == {}  # off by default
    packed.timing = True
    try:
        packed(pts)
    finally:
        packed.timing = False
    assert set(packed.op_seconds) == {
        'dense', 'binary_dense', 'transform'
    } and all(v > 0 for v in packed.op_seconds.values())


def test_input_errors(packed):
    with pytest.raises(ValueError, match=r'points must be \(B, N, 3\)'):
        packed(np.zeros((2, 64, 4)))
    with pytest.raises(ValueError, match='0 points'):
        packed(np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match='NaN or infinite'):
        packed(np.full((1, 5, 3), np.nan))


def test_calls_from_threads_take_turns(packed):
    """The work arrays serve one call at a time: a second thread waits."""
    cloud = np.random.default_rng(3).uniform(-1, 1, (1, 64, 3))
    expect = packed(cloud)
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=packed(cloud)))
    with packed._lock:  # a call in progress
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not result  # waiting for its turn
    worker.join(timeout=30)
    np.testing.assert_array_equal(result['out'], expect)


def test_feature_knn_is_the_training_ops_bit_for_bit():
    """Large, offset features (the distance expansion loses digits to
    cancellation, so two formulations order near-ties differently): the
    runtime's kNN is the training-time op's, order included."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1500, 64, generator=gen) * 3 + 10
    ref = torch_knn(20, x, x, False).transpose(1, 2).numpy()
    out = op('knn', dict(k=20, space='features'))(x.numpy())
    np.testing.assert_array_equal(out, ref)
