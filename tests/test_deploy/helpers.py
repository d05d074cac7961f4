# Copyright (c) mmbinpc contributors. All rights reserved.
"""Small binary models for the deploy tests, trained for a few steps."""
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmbinpc.binary import build_binarized
from mmbinpc.deploy.converter import export_packed
from mmbinpc.deploy.runtime import PackedModel

NUM_POINTS = 64


def pointnet_cfg(method,
                 aggregation='max',
                 tnets=False,
                 in_channels=3,
                 pool=None,
                 keep_fp=('first', 'last'),
                 center_inputs=(),
                 num_classes=5):
    """A narrow PointNet classifier (T-Nets narrowed too)."""
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
            num_classes=num_classes,
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


def dgcnn_cfg(method,
              aggregation='max',
              knn_modes=('D-KNN', 'F-KNN', 'F-KNN'),
              num_classes=5):
    """A narrow DGCNN classifier (three EdgeConvs, k = 8)."""
    return dict(
        type='PointClassifier',
        backbone=dict(
            type='DGCNNBackboneCls',
            in_channels=3,
            num_samples=(8, 8, 8),
            knn_modes=knn_modes,
            radius=(None, None, None),
            gf_channels=((16, ), (16, ), (32, )),
            fa_channels=(64, ),
            act_cfg=dict(type='LeakyReLU', negative_slope=0.2)),
        pool=dict(type='PointPool', mode='max+avg'),
        head=dict(
            type='PointClsHead',
            in_channels=128,
            num_classes=num_classes,
            mid_channels=(32, ),
            dropout=0.5),
        binarize=dict(method=method, aggregation=aggregation))


def pointnet2_cfg(method,
                  aggregation='max',
                  in_channels=3,
                  group_all=True,
                  normalize_xyz=False,
                  num_classes=5):
    """A narrow PointNet++ SSG classifier: one ball-query SA layer (32
    centres, radius 0.3, 8 neighbours), then a group-all layer or a second
    ball-query one."""
    return dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet2SASSGCls',
            in_channels=in_channels,
            num_points=(32, None if group_all else 8),
            radius=(0.3, None if group_all else 0.6),
            num_samples=(8, None if group_all else 8),
            sa_channels=((16, 16), (32, 64)),
            norm_cfg=dict(type='BN2d'),
            sa_cfg=dict(
                type='PointSAModule',
                pool_mod='max',
                use_xyz=True,
                normalize_xyz=normalize_xyz)),
        pool=dict(type='PointPool', mode='max'),
        head=dict(
            type='PointClsHead',
            in_channels=64,
            num_classes=num_classes,
            mid_channels=(32, )),
        binarize=dict(method=method, aggregation=aggregation))


def train_briefly(model,
                  steps=3,
                  batch=8,
                  num_points=NUM_POINTS,
                  seed=1,
                  channels=None):
    """A few optimisation steps on random clouds (moves weights, BN
    statistics, LSR's α, input centres)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if hasattr(m, 'set_progress'):  # IR-Net's EDE schedule
            m.set_progress(0.5)
        if isinstance(getattr(m, 'threshold', None), nn.Parameter):
            m.threshold.data.uniform_(-0.3, 0.3, generator=gen)  # react
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    if channels is None:
        channels = getattr(model.backbone, 'in_channels', 3)
    num_classes = model.head.fc_cls.out_features
    for _ in range(steps):
        pts = torch.rand(batch, num_points, channels, generator=gen) * 2 - 1
        labels = torch.randint(num_classes, (batch, ), generator=gen)
        loss = F.cross_entropy(model._forward(dict(points=pts)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def build_trained(cfg, steps=3, seed=0):
    torch.manual_seed(seed)
    return train_briefly(
        build_binarized(cfg),
        steps=steps,
        channels=cfg['backbone'].get('in_channels', 3))


def export_and_load(model, tmp_path, name='model.packed', **kwargs):
    path = str(tmp_path / name)
    summary = export_packed(model, path, num_points=NUM_POINTS, **kwargs)
    return summary, PackedModel.load(path)


def assert_equivalent(ref, out):
    """Same prediction on every cloud, and every cloud's logits equal to
    1e-4 (relative, or of the largest logit): what docs/deployment.md
    states. A failure names how many clouds differ and by how much."""
    ref = np.asarray(ref)
    out = np.asarray(out)
    assert out.shape == ref.shape
    assert (ref.argmax(-1) == out.argmax(-1)).all()
    scale = np.abs(ref).max()
    close = np.isclose(out, ref, rtol=1e-4, atol=1e-4 * scale).all(-1)
    assert close.all(), (f'{int((~close).sum())} of {close.size} clouds '
                         f'differ; max {np.abs(ref - out).max()}')


def torch_logits(model, points):
    with torch.no_grad():
        return model._forward(dict(points=torch.as_tensor(points))).numpy()
