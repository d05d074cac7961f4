# Copyright (c) mmbinpc contributors. All rights reserved.
"""Complexity counts on toy models computed by hand, and on PointNet."""
import json

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


def test_fp32_pointnet_matches_paper_table7():
    from mmdet3d.registry import MODELS
    model = MODELS.build(_pointnet_cfg())
    forward, points = model_forward(model, num_points=1024)
    assert points.shape == (1, 1024, 3)
    report = count_complexity(model, forward)
    # paper Table 7: 443.38 M FLOPs/sample, 3.48 M parameters
    assert report.flops == 443_822_336
    assert report.params == 3_480_049
    assert round(report.params / 1e6, 2) == 3.48
    assert report.bops == 0
    # T-Net bmm (3x3 and 64x64 transforms, + I) listed apart; the
    # feature-transform regulariser is not computed at inference
    assert report.other_flops == 4_207_625


def test_binary_pointnet_ratios_and_json(tmp_path):
    from mmdet3d.registry import MODELS
    fp = MODELS.build(_pointnet_cfg())
    fp_report = count_complexity(fp, model_forward(fp)[0])
    model = MODELS.build(_pointnet_cfg(method='bnn', aggregation='max'))
    report = count_complexity(model, model_forward(model)[0], fp_report)
    fp_rows = {r.name for r in report.layers if r.precision == 'fp32'
               and r.type in ('Conv1d', 'Linear')}
    # first layers (raw xyz) and the classifier stay FP32
    assert fp_rows == {'backbone.input_tnet.convs.0.0', 'backbone.mlp.0.0',
                       'head.fc_cls'}
    assert report.bops == 443_822_336 - (2 * 196_608 + 10_240)
    assert report.params == fp_report.params
    assert 20 < report.compression < 30  # paper: 23x
    assert 20 < report.speedup < 60
    totals = report.totals()
    path = tmp_path / 'totals.json'
    path.write_text(json.dumps(totals))
    loaded = json.loads(path.read_text())
    for key in ('flops', 'bops', 'ops', 'params', 'storage_bytes', 'speedup',
                'compression'):
        assert key in loaded
