# Copyright (c) mmbinpc contributors. All rights reserved.
"""Complexity counts on toy models computed by hand, and on PointNet."""
import json
import os.path as osp

import pytest
import torch
from torch import nn

from mmbinpc.analysis import count_complexity, model_forward
from mmbinpc.binary.aggregation import PointPool
from mmbinpc.binary.layers import BinConv1d, BinLinear

N = 10  # points


class Toy(nn.Module):
    """conv(3->8) + BN + ReLU -> conv(8->16) + BN -> max pool -> fc(16->4)."""

    def __init__(self, binarizer=None):
        super().__init__()
        self.conv1 = nn.Conv1d(3, 8, 1)
        self.bn1 = nn.BatchNorm1d(8)
        self.act = nn.ReLU()
        if binarizer is None:
            self.conv2 = nn.Conv1d(8, 16, 1)
        else:
            self.conv2 = BinConv1d(8, 16, 1, binarizer=binarizer)
        self.bn2 = nn.BatchNorm1d(16)
        self.pool = PointPool('max')
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        return self.fc(self.pool(self.bn2(self.conv2(x))))


def _count(model, reference=None):
    x = torch.randn(1, 3, N)
    return count_complexity(model, lambda: model(x), reference=reference)


def test_fp32_toy_counts_by_hand():
    report = _count(Toy())
    rows = {r.name: r for r in report.layers}
    assert rows['conv1'].macs == N * 8 * 3
    assert rows['conv2'].macs == N * 16 * 8
    assert rows['fc'].macs == 16 * 4
    assert rows['bn1'].macs == 0  # folded into conv1 at inference
    assert report.flops == N * 8 * 3 + N * 16 * 8 + 16 * 4
    assert report.bops == 0
    assert report.ops == report.flops
    params = (3 * 8 + 8) + 2 * 8 + (8 * 16 + 16) + 2 * 16 + (16 * 4 + 4)
    assert report.params == params
    assert report.storage_bytes == params * 4
    assert all(r.precision == 'fp32' for r in report.layers
               if r.name != 'pool')


@pytest.mark.parametrize('binarizer', ['bnn', 'xnor', 'lsr', 'react'])
def test_binary_toy_counts_by_hand(binarizer):
    fp = _count(Toy())
    report = _count(Toy(binarizer), reference=fp)
    row = {r.name: r for r in report.layers}['conv2']
    assert row.precision == '1-bit'
    assert row.bops == N * 16 * 8
    # output affine (alpha, bias, folded BN) per output element; XNOR's beta
    # costs one op per input element (mean |x|) and one per output element
    extra = N * 16 + (N * 8 + N * 16 if binarizer == 'xnor' else 0)
    assert row.macs == extra
    # 1 bit per weight, 32 per bias; scales: xnor one per output channel,
    # lsr one learned scalar, bnn none; react: per-channel alpha + 8 learned
    # input thresholds
    scale = {'bnn': 0, 'xnor': 16, 'lsr': 1, 'react': 16}[binarizer]
    thresholds = 8 if binarizer == 'react' else 0
    assert row.storage_bits == 16 * 8 + 32 * (16 + scale + thresholds)
    flops = N * 8 * 3 + extra + 16 * 4
    assert report.flops == flops
    assert report.ops == flops + N * 16 * 8 / 64
    assert report.speedup == pytest.approx(fp.ops / report.ops)
    assert report.compression == pytest.approx(fp.storage_bytes /
                                               report.storage_bytes)
    assert report.speedup > 1 and report.compression > 1


def test_binary_input_fp_counts_flops():
    model = Toy()
    model.conv2 = BinConv1d(8, 16, 1, binarizer='xnor', binarize_input=False)
    row = {r.name: r for r in _count(model).layers}['conv2']
    assert row.precision == '1-bit w'
    assert row.bops == 0 and row.macs == N * 16 * 8


def test_functional_ops_are_listed_not_dropped():

    class WithBmm(nn.Module):

        def __init__(self):
            super().__init__()
            self.fc = BinLinear(6, 9, binarizer='bnn')

        def forward(self, x):  # x: (B, 3, N)
            t = self.fc(x.new_ones(x.shape[0], 6)).view(-1, 3, 3)
            t = t + torch.eye(3)
            return torch.bmm(t, x)

    model = WithBmm()
    x = torch.randn(2, 3, N)
    report = count_complexity(model, lambda: model(x))
    other = {r.type: r.macs for r in report.other_ops}
    assert other['bmm'] == 2 * 3 * N * 3
    assert other['add'] == 2 * 9
    # nothing inside the binary layer leaks into the other ops
    assert set(other) == {'bmm', 'add'}
    assert report.bops == 2 * 6 * 9
    assert report.totals()['other_flops'] == 2 * 3 * N * 3 + 18


def test_point_ops_listed_separately():
    from mmcv.ops import PointsSampler

    class Sampler(nn.Module):

        def __init__(self):
            super().__init__()
            self.sampler = PointsSampler([8], ['D-FPS'])

        def forward(self, xyz):
            return self.sampler(xyz, xyz.transpose(1, 2).contiguous())

    model = Sampler()
    xyz = torch.rand(1, 32, 3)
    report = count_complexity(model, lambda: model(xyz))
    assert len(report.point_ops) == 1
    op = report.point_ops[0]
    assert op.name == 'sampler' and 'FPS' in op.op
    assert op.distance_evals == 32 * 8
    assert report.flops == 0
    assert 'point ops' in report.table()


def _pointnet_cfg(**binarize):
    cfg = dict(
        type='PointClassifier',
        backbone=dict(type='PointNet'),
        head=dict(type='PointClsHead', in_channels=1024, num_classes=40))
    if binarize:
        cfg['binarize'] = binarize
    return cfg


# PointNet with both T-Nets, 40 classes, one cloud of P = 1024 points:
# the 17 binary convs/linears as (input channels, output channels, rows),
# rows = P for a shared conv, 1 for a linear layer on the pooled feature.
P = 1024
BINARY_LAYERS = {
    'backbone.input_tnet.convs.1.0': (64, 128, P),
    'backbone.input_tnet.convs.2.0': (128, 1024, P),
    'backbone.input_tnet.fcs.0.0': (1024, 512, 1),
    'backbone.input_tnet.fcs.1.0': (512, 256, 1),
    'backbone.input_tnet.transform': (256, 9, 1),
    'backbone.mlp.1.0': (64, 64, P),
    'backbone.feature_tnet.convs.0.0': (64, 64, P),
    'backbone.feature_tnet.convs.1.0': (64, 128, P),
    'backbone.feature_tnet.convs.2.0': (128, 1024, P),
    'backbone.feature_tnet.fcs.0.0': (1024, 512, 1),
    'backbone.feature_tnet.fcs.1.0': (512, 256, 1),
    'backbone.feature_tnet.transform': (256, 4096, 1),
    'backbone.mlp.2.0': (64, 64, P),
    'backbone.mlp.3.0': (64, 128, P),
    'backbone.mlp.4.0': (128, 1024, P),
    'head.mlp.0': (1024, 512, 1),
    'head.mlp.4': (512, 256, 1),
}
# FP32 everywhere: the two convs reading raw xyz and the classifier.
FP_LAYER_MACS = 3 * 64 * P + 3 * 64 * P + 256 * 40
TRANSFORMS = ('backbone.input_tnet.transform',
              'backbone.feature_tnet.transform')
# docs/complexity.md, "FP32 PointNet" (the paper's Table 7 convention)
FP_MACS = 443_822_336
FP_PARAMS = 3_480_049
FP_BYTES = 13_920_196


def _expected_binary(xnor_layers=(), ema=False, scales=()):
    """Counts of a binary PointNet by the docs' convention, by hand.

    Args:
        xnor_layers: Layers with XNOR-Net's per-row activation scale β: one
            op per input and one per output element.
        ema: EMA pooling: one subtraction per pooled output (three sites of
            1024 channels: both T-Nets and the global feature).
        scales: Per-layer count of stored 32-bit weight scales.

    Returns:
        dict: flops, bops, ops, storage_bytes.
    """
    bops = sum(i * o * r for i, o, r in BINARY_LAYERS.values())
    weights = sum(i * o for i, o, _ in BINARY_LAYERS.values())
    flops = FP_LAYER_MACS + sum(o * r for _, o, r in BINARY_LAYERS.values())
    flops += sum(
        (BINARY_LAYERS[n][0] + BINARY_LAYERS[n][1]) * BINARY_LAYERS[n][2]
        for n in xnor_layers)
    flops += 3 * 1024 if ema else 0
    n_scales = sum(scales)
    # 1 bit per binary weight; every other parameter and each scale 32 bits
    bits = weights + 32 * (FP_PARAMS - weights + n_scales)
    assert bits % 8 == 0
    return dict(
        flops=flops, bops=bops, ops=flops + bops / 64, storage_bytes=bits // 8)


def test_hand_layout_adds_up_to_the_fp32_model():
    # the table above, checked against the documented FP32 totals
    assert FP_LAYER_MACS + sum(
        i * o * r for i, o, r in BINARY_LAYERS.values()) == FP_MACS
    assert FP_BYTES == 4 * FP_PARAMS
    # docs: "Binary MACs alone give 443.42 M"; "3.74 M" output affine
    assert sum(i * o * r for i, o, r in BINARY_LAYERS.values()) == \
        443_418_880 == FP_MACS - (2 * 196_608 + 10_240)
    assert round(sum(o * r for _, o, r in BINARY_LAYERS.values()) / 1e6,
                 2) == 3.74


def test_fp32_pointnet_matches_paper_table7():
    from mmbinpc.binary import build_binarized
    model = build_binarized(_pointnet_cfg())
    forward, points = model_forward(model, num_points=1024)
    assert points.shape == (1, 1024, 3)
    report = count_complexity(model, forward)
    # paper Table 7: 443.38 M FLOPs/sample, 3.48 M parameters
    assert report.flops == FP_MACS
    assert report.params == FP_PARAMS
    assert round(report.params / 1e6, 2) == 3.48
    assert report.storage_bytes == FP_BYTES
    assert report.bops == 0
    # T-Net bmm (3x3 and 64x64 transforms, + I) listed apart; the
    # feature-transform regulariser is not computed at inference
    assert report.other_flops == 4_207_625


def test_binary_pointnet_ratios_and_json(tmp_path):
    from mmbinpc.binary import build_binarized
    fp = build_binarized(_pointnet_cfg())
    fp_report = count_complexity(fp, model_forward(fp)[0])
    model = build_binarized(_pointnet_cfg(method='bnn', aggregation='max'))
    report = count_complexity(model, model_forward(model)[0], fp_report)
    fp_rows = {
        r.name
        for r in report.layers
        if r.precision == 'fp32' and r.type in ('Conv1d', 'Linear')
    }
    # first layers (raw xyz) and the classifier stay FP32
    assert fp_rows == {
        'backbone.input_tnet.convs.0.0', 'backbone.mlp.0.0', 'head.fc_cls'
    }
    assert {r.name
            for r in report.layers
            if r.precision == '1-bit'} == set(BINARY_LAYERS)
    want = _expected_binary()  # plain BNN: no scale, no beta
    assert report.bops == want['bops'] == FP_MACS - FP_LAYER_MACS
    assert report.flops == want['flops']
    assert report.storage_bytes == want['storage_bytes'] == 562_916  # docs
    assert report.params == fp_report.params
    assert report.speedup == FP_MACS / want['ops']
    assert report.compression == FP_BYTES / 562_916
    assert round(report.compression, 1) == 24.7  # docs; paper: 23x
    assert round(report.speedup, 1) == 40.1  # docs; paper: 53x
    totals = report.totals()
    path = tmp_path / 'totals.json'
    path.write_text(json.dumps(totals))
    loaded = json.loads(path.read_text())
    for key in ('flops', 'bops', 'ops', 'params', 'storage_bytes', 'speedup',
                'compression'):
        assert loaded[key] == totals[key]
    assert loaded['ops'] == want['ops']


_ALL_OUT = tuple(o for _, o, _ in BINARY_LAYERS.values())
DOC_BYTES = {
    'bnn-max': 583_432,
    'irnet-max': 607_240,
    'xnor-max': 607_240,
    'lsr-max': 567_080,
    'bnn-ema': 579_336,
    'xnor-ema': 603_144,
    'lsr-ema': 562_984
}
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def fp_pointnet_report():
    """Counts of the FP32 PointNet, the reference of every binary row."""
    from mmbinpc.binary import build_binarized
    model = build_binarized(_pointnet_cfg())
    return count_complexity(model, model_forward(model)[0])


_TRANSFORM_OUT = (9, 4096)

# docs/complexity.md "Binary PointNet (the paper's settings)": one row per
# config. BNN and IR-Net configs give the T-Net transform layers XNOR's
# weight (one per output channel) and activation scales (the configs'
# ``overrides={'*tnet.transform': 'xnor'}``). IR-Net stores its
# power-of-two scale per output channel of every layer. The MAX configs
# centre the head's input sign: one stored threshold per input channel of
# head.mlp.0 (1024 floats).
_CENTRE = (1024, )


@pytest.mark.parametrize('setting,xnor_layers,ema,scales,speedup,compress', [
    ('bnn-max', TRANSFORMS, False, _TRANSFORM_OUT + _CENTRE, 40.1, 23.9),
    ('irnet-max', TRANSFORMS, False, _ALL_OUT + _CENTRE, 40.1, 22.9),
    ('xnor-max', tuple(BINARY_LAYERS), False, _ALL_OUT + _CENTRE, 28.4, 22.9),
    ('lsr-max', (), False, (1, ) * 17 + _CENTRE, 40.1, 24.5),
    ('bnn-ema', TRANSFORMS, True, _TRANSFORM_OUT, 40.1, 24.0),
    ('xnor-ema', tuple(BINARY_LAYERS), True, _ALL_OUT, 28.4, 23.1),
    ('lsr-ema', (), True, (1, ) * 17, 40.1, 24.7),
])
def test_documented_pointnet_configs_pinned(fp_pointnet_report, setting,
                                            xnor_layers, ema, scales, speedup,
                                            compress):
    from mmengine.config import Config

    from mmbinpc.deploy.builder import build_model, deploy_model_cfgs
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pointnet',
                 f'pointnet_bin_{setting}-kdr_modelnet40.py'))
    bin_cfg, _ = deploy_model_cfgs(cfg.model)
    model = build_model(bin_cfg)
    report = count_complexity(model,
                              model_forward(model)[0], fp_pointnet_report)
    want = _expected_binary(xnor_layers, ema, scales)
    assert report.bops == want['bops'] == 443_418_880
    assert report.flops == want['flops']
    assert report.ops == want['ops']
    assert report.storage_bytes == want['storage_bytes']
    # LSR's alpha is one learned parameter per binary layer
    assert report.params == FP_PARAMS + (17
                                         if setting.startswith('lsr') else 0)
    assert report.speedup == FP_MACS / want['ops']
    assert report.compression == FP_BYTES / want['storage_bytes']
    # the figures as docs/complexity.md prints them
    assert round(report.flops / 1e6,
                 2) == (8.68 if 'xnor' in setting else 4.15)
    assert round(report.speedup, 1) == speedup
    assert round(report.compression, 1) == compress
    if setting in DOC_BYTES:  # the rows the docs still match
        assert report.storage_bytes == DOC_BYTES[setting]


def test_complexity_tool_json_is_the_documented_row(tmp_path):
    """The docs' command on the LSR + MAX config writes that row's counts."""
    import importlib.util
    path = osp.join(REPO, 'tools', 'analysis', 'complexity.py')
    spec = importlib.util.spec_from_file_location('complexity_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / 'lsr.json'
    tool.main([
        osp.join(REPO, 'configs', 'pointnet',
                 'pointnet_bin_lsr-max-kdr_modelnet40.py'), '--json',
        str(out), '--quiet'
    ])
    data = json.loads(out.read_text())
    want = _expected_binary(scales=(1, ) * 17 + _CENTRE)
    assert data['flops'] == want['flops'] == 4_145_417
    assert data['bops'] == 443_418_880
    assert data['ops'] == want['ops']
    assert data['storage_bytes'] == want['storage_bytes'] == 567_080
    assert data['params'] == FP_PARAMS + 17
    assert data['other_flops'] == 4_207_625
    assert data['speedup'] == pytest.approx(FP_MACS / want['ops'], rel=1e-12)
    assert data['compression'] == pytest.approx(FP_BYTES / 567_080, rel=1e-12)


def _pointcnn_cfg(**binarize):
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pointcnn', 'pointcnn_fp_modelnet40.py'))
    model = cfg.model.to_dict()
    return dict(model, binarize=binarize) if binarize else model


def test_pointcnn_counts_x_transform_and_point_ops():
    """PointCNN at the reference size, 1,024 points, batch 1.

    Expected figures from the layer list: X multiplies ``(K × K)`` by
    ``(K × C_mix)`` at every representative (``P · K · K · C_mix`` MACs,
    listed as other ops); each dilated kNN evaluates every input point for
    every representative; FPS runs only where a layer samples (1,024 →
    384 and 384 → 128; the last layer keeps its 128 points).
    """
    from mmbinpc.binary import build_binarized
    fp = build_binarized(_pointcnn_cfg())
    fp_report = count_complexity(fp, model_forward(fp)[0])
    assert fp_report.params == 599_340
    # (P, K, C_mix = lifted + input channels, N searched)
    layers = [(1024, 8, 24, 1024), (384, 12, 12 + 48, 1024),
              (128, 16, 24 + 96, 384), (128, 16, 48 + 192, 128)]
    matmuls = {
        r.name: r.macs
        for r in fp_report.other_ops if r.name.endswith('.matmul')
    }
    assert matmuls == {
        f'backbone.xconvs.{i}.matmul': p * k * k * c
        for i, (p, k, c, _) in enumerate(layers)
    }
    ops = {o.name: o.distance_evals for o in fp_report.point_ops}
    assert ops == {
        **{
            f'backbone.xconvs.{i}.knn': p * n
            for i, (p, _, _, n) in enumerate(layers)
        }, 'backbone.samplers.1': 1024 * 384,
        'backbone.samplers.2': 384 * 128
    }
    binary = build_binarized(_pointcnn_cfg(method='xnor', aggregation='max'))
    report = count_complexity(binary, model_forward(binary)[0], fp_report)
    # X's product and the point ops are the same in both models
    assert {
        r.name: r.macs
        for r in report.other_ops
    } == {
        r.name: r.macs
        for r in fp_report.other_ops
    }
    fp_rows = {
        r.name
        for r in report.layers
        if r.precision == 'fp32' and r.type in ('Conv2d', 'Linear')
    }
    assert fp_rows == {
        *(f'backbone.xconvs.{i}.{n}' for i in range(4)
          for n in ('lift.0.0', 'x_transform.0.0')),
        'backbone.xconvs.3.global_mlp.0.0', 'head.fc_cls'
    }
    # every MAC of a layer now binary became a BOP
    fp_macs = {r.name: r.macs for r in fp_report.layers}
    binary_rows = [r for r in report.layers if r.precision == '1-bit']
    assert len(binary_rows) == 23
    assert report.bops == sum(fp_macs[r.name] for r in binary_rows)
    assert report.bops > 0.9 * fp_report.flops
