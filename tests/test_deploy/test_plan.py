# Copyright (c) mmbinpc contributors. All rights reserved.
"""The lean PointNet forward pass (plan engine) and its kernels."""
import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS
from torch import nn

from mmbinpc.binary import build_binarized
from mmbinpc.deploy import (PackedBinaryLayer, PackedModel, export_packed,
                            kernels, pack_signs)
from mmbinpc.deploy.plan import PointNetPlan, bit_limits
from mmbinpc.models.backbones.pointnet import PointNet
from .test_packed_engine import NUM_POINTS, assert_equivalent, train_briefly


def unpack_rows(words: np.ndarray, n: int) -> np.ndarray:
    """(M, W) uint64 -> (M, n) 0/1 bits (the bitpack encoding)."""
    bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder='little')
    return bits[:, :n]


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------
@pytest.mark.parametrize('n_in', [5, 64, 100, 128])
@pytest.mark.parametrize('n_out', [3, 64, 70])
@pytest.mark.parametrize('clamp,threshold', [(None, False),
                                             ((-1.0, 1.0), False),
                                             ((0.0, 6.0), True)])
def test_bits_output_matches_float_output_then_packing(n_in, n_out, clamp,
                                                       threshold):
    """xnor_gemm_bits with bit_limits == the float epilogue followed by the
    next layer's binarization, for scales of both signs and zero."""
    rng = np.random.default_rng(n_in * 1000 + n_out)
    m = 37  # blocks of 4 rows plus a remainder
    x = rng.standard_normal((m, n_in)).astype(np.float32)
    words, beta = kernels.pack_input(x, np.zeros(n_in, np.float32), 0)
    scale = rng.uniform(-1, 1, n_out).astype(np.float32)
    scale[0] = 0.0
    shift = rng.uniform(-3, 3, n_out).astype(np.float32)
    layer = PackedBinaryLayer(
        'conv1d',
        n_in,
        n_out,
        pack_signs(rng.standard_normal((n_out, n_in))),
        scale,
        shift,
        clamp=clamp)
    lo, hi = layer.clamp
    next_thr = (
        rng.uniform(-0.5, 0.5, n_out).astype(np.float32)
        if threshold else np.zeros(n_out, np.float32))
    ref = np.empty((m, n_out), np.float32)
    kernels.xnor_gemm_affine(words, beta, n_in, layer.weight_words_t, scale,
                             shift, lo, hi, 0, ref)
    ref_bits = unpack_rows(kernels.pack_input(ref, next_thr, 0)[0], n_out)

    w_t, limit = bit_limits(layer, next_thr)
    assert limit.shape == ((n_out + 63) // 64 * 64, )
    assert (limit[n_out:] == -1).all()
    for threads in (1, 2):
        out = np.full((m, (n_out + 63) // 64), 7, np.uint64)
        kernels.xnor_gemm_bits(words, w_t, limit, out, threads)
        bits = unpack_rows(out, out.shape[1] * 64)
        np.testing.assert_array_equal(bits[:, :n_out], ref_bits)
        assert not bits[:, n_out:].any()  # padding bits stay 0


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
    # first occurrences, in order
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


def test_dense_rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 3)).astype(np.float32)
    w_t = rng.standard_normal((3, 20)).astype(np.float32)
    bias = rng.standard_normal(20).astype(np.float32)
    out = np.empty((9, 20), np.float32)
    kernels.dense_rows(x, w_t, bias, -0.5, np.inf, out)
    np.testing.assert_allclose(
        out, np.maximum(x @ w_t + bias, -0.5), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# whole models: plan engine == module engine == fake-quantized PyTorch
# --------------------------------------------------------------------------
def plan_cfg(method,
             aggregation='max',
             tnets=False,
             in_channels=3,
             pool=None,
             keep_fp=('first', 'last'),
             center_inputs=()):
    head_in = 64 * (2 if pool and '+' in pool else 1)
    cfg = dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet',
            in_channels=in_channels,
            channels=(16, 16, 16, 32, 64),
            input_transform=tnets,
            feature_transform=tnets,
            tnet_conv_channels=(16, 32, 64),
            tnet_fc_channels=(32, 16)),
        head=dict(
            type='PointClsHead',
            in_channels=head_in,
            num_classes=5,
            mid_channels=(32, 16),
            dropout=0.3),
        binarize=dict(
            method=method,
            aggregation=aggregation,
            keep_fp=list(keep_fp),
            center_inputs=list(center_inputs)))
    if pool:
        cfg['pool'] = dict(type='PointPool', mode=pool)
    return cfg


def export_and_load(cfg, tmp_path, in_channels=3, steps=3):
    model = build_binarized(cfg)
    if cfg['binarize']['method'] == 'react':
        for m in model.modules():
            if isinstance(getattr(m, 'threshold', None), nn.Parameter):
                m.threshold.data.uniform_(-0.3, 0.3)
    if in_channels == 3:
        train_briefly(model, steps=steps, batch=8)
    else:
        model.eval()
    path = str(tmp_path / 'model.packed')
    export_packed(model, path, cfg, num_points=NUM_POINTS)
    return (model, PackedModel.load(path),
            PackedModel.load(path, engine='modules'))


@pytest.mark.parametrize(
    'case',
    [
        dict(method='lsr', aggregation='ema', tnets=True),
        dict(method='xnor', aggregation='ema', tnets=True),
        dict(method='react', aggregation='max'),
        # centred input signs: the running centre is the packed threshold (the
        # react one adds its learned threshold; the hidden layer's centre sits
        # between two binary layers, so it is in the packed-output bounds too)
        dict(
            method='xnor',
            aggregation='max',
            center_inputs=('head.mlp.0', 'backbone.mlp.3.0')),
        dict(
            method='react', aggregation='max', center_inputs=('head.mlp.0', )),
        dict(method='bnn', aggregation='max', pool='max+avg'),
        dict(method='irnet', aggregation='ema', pool='ema+avg'),
        dict(method='bireal', aggregation='max', pool='avg'),
        dict(method='lsr', aggregation='ema', tnets=True, in_channels=6),
        # an FP32 layer inside the binary chain, with its BN folded by the plan
        dict(
            method='bnn',
            aggregation='ema',
            keep_fp=('first', 'last', 'backbone.mlp.2')),
    ])
def test_plan_matches_module_engine_and_torch(tmp_path, case):
    in_channels = case.get('in_channels', 3)
    cfg = plan_cfg(**case)
    model, plan_model, module_model = export_and_load(cfg, tmp_path,
                                                      in_channels)
    assert plan_model.engine == 'plan' and module_model.engine == 'modules'
    assert isinstance(plan_model.plan, PointNetPlan)
    assert len(plan_model.plan.binary_layers) == len(plan_model.packed_layers)
    pts = torch.rand(16, NUM_POINTS, in_channels) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=pts))
    out = plan_model(pts)
    assert out.shape == ref.shape
    assert_equivalent(ref, out)
    torch.testing.assert_close(
        out, module_model(pts), rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    # cloud sizes that leave partial blocks of 4 rows, and a single point
    for n in (37, 1):
        pts = torch.rand(3, n, in_channels) * 2 - 1
        with torch.no_grad():
            assert_equivalent(
                model._forward(dict(points=pts)), plan_model(pts))


def test_plan_writes_packed_inputs_between_binary_layers(tmp_path):
    cfg = plan_cfg('lsr', 'ema', tnets=True)
    _, packed, _ = export_and_load(cfg, tmp_path, steps=1)
    plan = packed.plan
    chain = {d.name: d for d in plan.binary_layers}
    # 16 -> 16 -> 32 -> 64 in the post-transform MLP: bits between them
    assert chain['backbone.mlp.2.0']._bits_to is not None
    assert chain['backbone.mlp.3.0']._bits_to is not None
    # the layer feeding the feature transform writes floats
    assert chain['backbone.mlp.1.0']._bits_to is None
    # the last shared layer's max pooling is done in the kernel
    assert plan.pool.fused and plan.pool.mode == 'ema'


def test_plan_buffers_are_reused_without_aliasing_results(tmp_path):
    cfg = plan_cfg('lsr', 'ema', tnets=True)
    _, packed, _ = export_and_load(cfg, tmp_path, steps=1)
    a = torch.rand(4, NUM_POINTS, 3) * 2 - 1
    b = torch.rand(2, 64, 3) * 2 - 1  # other batch and cloud sizes
    first = packed(a)
    kept = first.clone()
    other = packed(b)
    assert other.shape == (2, 5)
    torch.testing.assert_close(first, kept)  # not overwritten
    torch.testing.assert_close(packed(a), kept)
    assert packed.plan._buffers  # work arrays are kept between calls


def test_plan_times_binary_layers(tmp_path):
    cfg = plan_cfg('bnn', 'max')
    _, packed, _ = export_and_load(cfg, tmp_path, steps=1)
    plan = packed.plan
    pts = torch.rand(1, NUM_POINTS, 3)
    packed(pts)
    assert plan.binary_seconds == 0.0  # off by default
    plan.timing = True
    packed(pts)
    assert plan.binary_seconds > 0.0


def test_engine_choice_and_fallback(tmp_path):

    @MODELS.register_module(force=True)
    class PointNetWithExtras(PointNet):
        """A subclass: its forward may differ, so the plan refuses it."""

    cfg = plan_cfg('bnn', 'max')
    cfg['backbone']['type'] = 'PointNetWithExtras'
    model = build_binarized(cfg).eval()
    path = str(tmp_path / 'sub.packed')
    export_packed(model, path, cfg, num_points=NUM_POINTS)
    auto = PackedModel.load(path)
    assert auto.engine == 'modules' and auto.plan is None
    assert "engine='modules'" in repr(auto)
    pts = torch.rand(3, NUM_POINTS, 3)
    with torch.no_grad():
        assert_equivalent(model._forward(dict(points=pts)), auto(pts))
    with pytest.raises(
            ValueError,
            match='plan engine cannot run this model.*'
            'PointNet backbone'):
        PackedModel.load(path, engine='plan')
    with pytest.raises(ValueError, match="unknown packed engine 'fast'"):
        PackedModel.load(path, engine='fast')


def test_plan_input_errors(tmp_path):
    cfg = plan_cfg('bnn', 'max')
    _, packed, _ = export_and_load(cfg, tmp_path, steps=1)
    with pytest.raises(ValueError, match=r'expected points \(B, N, 3\)'):
        packed(torch.rand(2, NUM_POINTS, 4))
    with pytest.raises(ValueError, match='0 points'):
        packed(torch.rand(2, 0, 3))


def test_plan_calls_from_threads_take_turns(tmp_path):
    """The work arrays serve one call at a time: a second thread waits."""
    import threading

    cfg = plan_cfg('lsr', 'ema', tnets=True)
    _, packed, _ = export_and_load(cfg, tmp_path, steps=1)
    cloud = torch.rand(1, NUM_POINTS, 3) * 2 - 1
    expect = packed(cloud)
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=packed(cloud)))
    with packed.plan._lock:  # a call in progress
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive() and not result  # waiting for its turn
    worker.join(timeout=30)
    torch.testing.assert_close(result['out'], expect)
