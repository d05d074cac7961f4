# Copyright (c) mmbinpc contributors. All rights reserved.
"""Export -> load -> run: the packed runtime equals the PyTorch model."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from mmbinpc.binary import build_binarized
from mmbinpc.deploy.builder import state_dict_bytes
from mmbinpc.deploy.converter import NotSupportedError, export_packed
from mmbinpc.deploy.runtime import PackedModel
from .helpers import (NUM_POINTS, assert_equivalent, build_trained, dgcnn_cfg,
                      export_and_load, pointnet2_cfg, pointnet_cfg,
                      torch_logits)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
BINARIZERS = ['bnn', 'xnor', 'irnet', 'lsr', 'bireal', 'react']


def random_clouds(batch, points=NUM_POINTS, channels=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, points, channels, generator=gen) * 2 - 1).numpy()


@pytest.mark.parametrize('method', BINARIZERS)
@pytest.mark.parametrize('aggregation', ['max', 'ema'])
def test_pointnet_every_binarizer_and_aggregation(tmp_path, method,
                                                  aggregation):
    model = build_trained(pointnet_cfg(method, aggregation))
    summary, packed = export_and_load(model, tmp_path)
    binary = sorted(n for n, m in model.named_modules()
                    if hasattr(m, 'binarizer') and isinstance(m, nn.Conv1d)
                    or hasattr(m, 'binarizer') and isinstance(m, nn.Linear))
    assert sorted(summary.binary_layers) == binary
    # the last shared layer runs the global max/EMA in its kernel
    assert summary.fused_pools == ['backbone.mlp.4.0']
    pts = random_clouds(32)
    assert_equivalent(torch_logits(model, pts), packed(pts))
    np.testing.assert_array_equal(packed.predict(pts), packed(pts).argmax(-1))


@pytest.mark.parametrize('case', [
    dict(method='lsr', aggregation='ema', tnets=True),
    dict(method='xnor', aggregation='ema', tnets=True),
    dict(method='lsr', aggregation='ema', tnets=True, in_channels=6),
    dict(
        method='xnor',
        aggregation='max',
        center_inputs=('head.mlp.0', 'backbone.mlp.3.0')),
    dict(method='react', aggregation='max', center_inputs=('head.mlp.0', )),
    dict(method='bnn', aggregation='max', pool='max+avg'),
    dict(method='irnet', aggregation='ema', pool='ema+avg'),
    dict(method='bireal', aggregation='max', pool='avg'),
    dict(
        method='bnn',
        aggregation='ema',
        keep_fp=('first', 'last', 'backbone.mlp.2')),
])
def test_pointnet_variants(tmp_path, case):
    """T-Nets (and xyz + normals, where the input T-Net reads a slice),
    centred input signs (the running centre becomes the packed threshold,
    between two binary layers part of the bit limits), non-fused pooling
    modes and an FP32 layer inside the binary chain."""
    in_channels = case.get('in_channels', 3)
    model = build_trained(pointnet_cfg(**case))
    _, packed = export_and_load(model, tmp_path)
    pts = random_clouds(16, channels=in_channels)
    assert_equivalent(torch_logits(model, pts), packed(pts))
    # clouds that leave partial blocks of rows, and a single point
    for n in (37, 1):
        pts = random_clouds(3, n, in_channels, seed=n)
        assert_equivalent(torch_logits(model, pts), packed(pts))


@pytest.mark.parametrize('method', BINARIZERS)
@pytest.mark.parametrize('aggregation', ['max', 'ema'])
def test_dgcnn_every_binarizer_and_aggregation(tmp_path, method, aggregation):
    """kNN in xyz and in feature space, edge features, binary EdgeConvs
    with their max/EMA over the neighbours fused, max + avg pooling.

    The edge features ``x_j − x_i`` are binarized, so two points whose
    features are equal must give a difference of exactly 0 in both: the
    binary layers' integer sums are exact in PyTorch too (scales applied
    after the sum), which is what makes every cloud agree here."""
    model = build_trained(dgcnn_cfg(method, aggregation))
    summary, packed = export_and_load(model, tmp_path)
    assert summary.ops['knn'] == 3 and summary.ops['edge_features'] == 3
    # the binary EdgeConvs pool over the neighbours inside their kernel
    assert summary.fused_pools == [
        'backbone.GF_modules.1.mlps.0.layer0.conv',
        'backbone.GF_modules.2.mlps.0.layer0.conv'
    ]
    pts = random_clouds(24)
    assert_equivalent(torch_logits(model, pts), packed(pts))


def test_dgcnn_all_xyz_knn_and_other_cloud_sizes(tmp_path):
    model = build_trained(
        dgcnn_cfg('lsr', 'ema', knn_modes=('D-KNN', 'D-KNN', 'F-KNN')))
    _, packed = export_and_load(model, tmp_path)
    # fewer points than neighbours: mmcv pads the missing ones with index 0
    for n in (NUM_POINTS, 20, 5):
        pts = random_clouds(4, n, seed=n)
        assert_equivalent(torch_logits(model, pts), packed(pts))


@pytest.mark.parametrize('method', BINARIZERS)
@pytest.mark.parametrize('aggregation', ['max', 'ema'])
def test_pointnet2_every_binarizer_and_aggregation(tmp_path, method,
                                                   aggregation):
    """Furthest point sampling, ball query, grouping with relative xyz, the
    binary shared MLPs with their local max/EMA fused, a group-all layer."""
    model = build_trained(pointnet2_cfg(method, aggregation))
    summary, packed = export_and_load(model, tmp_path)
    assert summary.ops['fps'] == summary.ops['ball_query'] == 1
    assert summary.ops['group_all'] == 1
    assert summary.fused_pools == [
        'backbone.SA_modules.0.mlps.0.layer1.conv',
        'backbone.SA_modules.1.mlps.0.layer1.conv'
    ]
    pts = random_clouds(16)
    assert_equivalent(torch_logits(model, pts), packed(pts))


@pytest.mark.parametrize('case', [
    dict(in_channels=6, normalize_xyz=True),
    dict(group_all=False),
])
def test_pointnet2_variants(tmp_path, case):
    """Normals as features (the input is split into xyz and features),
    normalised offsets, two ball-query layers; clouds with fewer points
    than centres (FPS repeats points) or than neighbours."""
    in_channels = case.get('in_channels', 3)
    model = build_trained(pointnet2_cfg('lsr', 'ema', **case))
    _, packed = export_and_load(model, tmp_path)
    for n in (NUM_POINTS, 20, 3):
        pts = random_clouds(4, n, in_channels, seed=n)
        assert_equivalent(torch_logits(model, pts), packed(pts))


def s3dis_segmentor(config, shrink, method, aggregation):
    """A KDR S3DIS config's binary student (9 input channels), shrunk, with
    random BatchNorm statistics (no training needed to move them)."""
    from mmengine.config import Config

    from mmbinpc.deploy.builder import build_model, deploy_model_cfgs
    cfg = Config.fromfile(os.path.join(REPO, 'configs', config))
    binary, _ = deploy_model_cfgs(cfg.model)
    binary['backbone'].update(shrink)
    binary['binarize'].update(method=method, aggregation=aggregation)
    torch.manual_seed(0)
    model = build_model(binary).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize('config,shrink,ops', [
    ('dgcnn/dgcnn_bin_kdr_s3dis-seg.py', dict(num_samples=(8, 8, 8)),
     dict(knn=3, expand=1)),
    ('pointnet2/pointnet2-ssg_bin_kdr_s3dis-seg.py',
     dict(num_points=(32, 16, 8, 4),
          num_samples=(8, 8, 8, 8)), dict(fps=4, interpolate=4)),
])
@pytest.mark.parametrize('method,aggregation', [('lsr', 'ema'),
                                                ('xnor', 'max')])
def test_segmentors_of_the_kdr_configs(tmp_path, config, shrink, ops, method,
                                       aggregation):
    """mmdet3d's DGCNN and PointNet++ SSG segmentors as the S3DIS KDR
    configs binarize them: per-point logits equal to the PyTorch model's
    (feature propagation by three-nearest-neighbour interpolation, DGCNN's
    global feature repeated at every point)."""
    model = s3dis_segmentor(config, shrink, method, aggregation)
    summary, packed = export_and_load(model, tmp_path)
    assert packed.task == 'segmentation' and packed.num_classes == 13
    for op, count in ops.items():
        assert summary.ops[op] == count
    pts = torch.rand(
        3, NUM_POINTS, 9, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model._forward(dict(points=list(pts))).transpose(1, 2).numpy()
    out = packed(pts.numpy())
    assert out.shape == (3, NUM_POINTS, 13)
    assert_equivalent(ref.reshape(-1, 13), out.reshape(-1, 13))


def test_binary_layers_write_the_next_layers_bits(tmp_path):
    """Consecutive binary layers without an activation scale pass packed
    bits; a layer whose output feeds the feature T-Net writes floats."""
    model = build_trained(pointnet_cfg('lsr', 'ema', tnets=True), steps=1)
    summary, packed = export_and_load(model, tmp_path)
    assert 'backbone.mlp.2.0' in summary.bits_outputs
    assert 'backbone.mlp.3.0' in summary.bits_outputs
    assert 'backbone.mlp.1.0' not in summary.bits_outputs
    nodes = {n['name']: n for n in packed.meta['nodes']}
    assert nodes['backbone.mlp.3.0']['attrs']['input'] == 'bits'
    assert 'threshold' not in packed.node_arrays('backbone.mlp.3.0')
    assert 'limit' in packed.node_arrays('backbone.mlp.2.0')
    # XNOR's activation scale needs float inputs: no bits anywhere
    xnor = build_trained(pointnet_cfg('xnor', 'ema'), steps=1)
    summary, _ = export_and_load(xnor, tmp_path, 'xnor.packed')
    assert summary.bits_outputs == []


def test_packed_bits_are_really_used(tmp_path):
    model = build_trained(pointnet_cfg('xnor'), steps=1)
    _, packed = export_and_load(model, tmp_path)
    pts = random_clouds(4)
    before = packed(pts)
    op = next(op for op, _ in packed.nodes if op.name == 'backbone.mlp.1.0')
    assert op.weight_t.dtype == np.uint64
    op.weight_t[...] = ~op.weight_t
    assert not np.allclose(packed(pts), before)


@pytest.mark.parametrize('base,binarize,points', [
    ('pointnet', dict(method='lsr', aggregation='ema'), 1024),
    ('dgcnn', dict(method='xnor', aggregation='max'), 256),
    ('pointnet2_ssg', dict(method='lsr', aggregation='ema'), 1024),
])
def test_full_size_files_are_small_and_equivalent(tmp_path, base, binarize,
                                                  points):
    """The paper's PointNet, DGCNN and PointNet++ SSG (the model configs
    under configs/_base_/models): >= 20x smaller than the FP32 state dict
    (issue 13), same predictions."""
    from mmengine.config import Config
    cfg = Config.fromfile(
        os.path.join(REPO, 'configs', '_base_', 'models',
                     f'{base}.py')).model.to_dict()
    cfg.pop('data_preprocessor')
    torch.manual_seed(0)
    model = build_binarized(dict(cfg, binarize=binarize)).eval()
    path = str(tmp_path / 'full.packed')
    summary = export_packed(model, path, num_points=points)
    assert state_dict_bytes(build_binarized(cfg)) / summary.file_bytes >= 20
    packed = PackedModel.load(path)
    pts = random_clouds(2, points)
    assert_equivalent(torch_logits(model, pts), packed(pts))


# --------------------------------------------------------------------------
def test_unsupported_architectures_are_named():
    cfg = pointnet2_cfg('xnor', group_all=False)
    cfg['backbone']['fp_channels'] = ((32, ), )
    model = build_binarized(cfg).eval()
    with pytest.raises(
            NotSupportedError,
            match='PointNet2SASSGCls with feature propagation'):
        export_packed(model, '/nonexistent/never_written')
    model = build_binarized(pointnet_cfg('xnor')).eval()
    model.backbone = nn.Identity()
    with pytest.raises(
            NotSupportedError,
            match=r'PointClassifier with a Identity backbone.*'
            r'converts PointClassifier\(PointNet'):
        export_packed(model, '/nonexistent/never_written')


def test_unsupported_layers_and_binarizers(tmp_path):
    from mmbinpc.binary.layers import BinConv1d

    cfg = pointnet_cfg('xnor')
    model = build_binarized(cfg).eval()
    # a binarizer that declares no spec: its input rule is unknown
    model.backbone.mlp[1][0].binarizer.spec = None
    with pytest.raises(
            NotSupportedError,
            match=r"backbone.mlp.1.0 \(binarizer 'xnor', input scale None"):
        export_packed(model, str(tmp_path / 'a'))

    model = build_binarized(cfg).eval()
    model.backbone.mlp[1][0] = nn.Conv1d(16, 16, 3, padding=1)
    with pytest.raises(
            NotSupportedError,
            match=r'backbone.mlp.1.0 \(Conv1d kernel=\(3,\)'):
        export_packed(model, str(tmp_path / 'b'))

    model = build_binarized(cfg).eval()
    model.backbone.mlp[1][0] = BinConv1d(16, 16, 1, binarize_input=False)
    with pytest.raises(NotSupportedError, match='binarize_input=False'):
        export_packed(model, str(tmp_path / 'c'))

    model = build_binarized(cfg).eval()
    model.backbone.mlp[1][2] = nn.Tanh()
    with pytest.raises(NotSupportedError, match=r'backbone.mlp.1.2 \(Tanh\)'):
        export_packed(model, str(tmp_path / 'd'))
    assert not list(tmp_path.iterdir())  # nothing written
