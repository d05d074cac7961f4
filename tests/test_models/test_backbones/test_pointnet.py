# Copyright (c) mmbinpc contributors. All rights reserved.
import pytest
import torch
from mmdet3d.registry import MODELS

from mmbinpc.binary.aggregation import PointPool
from mmbinpc.models.backbones import PointNet, TNet
from mmbinpc.models.backbones.pointnet import feature_transform_regularizer


def _num_params(module):
    return sum(p.numel() for p in module.parameters())


def test_pointnet_classifier_matches_paper_param_count():
    """PointNet with both T-Nets, 40 classes: the paper's 3.48 M."""
    from mmengine.config import Config
    cfg = Config.fromfile('configs/_base_/models/pointnet.py')
    model = MODELS.build(cfg.model)
    assert _num_params(model) == 3_480_049
    assert 3.47e6 <= _num_params(model) <= 3.48e6 + 100
    # Every global pooling is a PointPool site (classifier + two T-Nets).
    pools = [n for n, m in model.named_modules() if isinstance(m, PointPool)]
    assert pools == [
        'backbone.input_tnet.pool', 'backbone.feature_tnet.pool', 'pool'
    ]


def test_pointnet_without_tnets_is_smaller_and_has_no_reg_loss():
    full = PointNet()
    plain = PointNet(input_transform=False, feature_transform=False)
    assert _num_params(plain) < _num_params(full)
    out = plain(torch.randn(2, 32, 3))
    assert out['point_feats'].shape == (2, 1024, 32)
    assert out['losses'] == {}


def test_pointnet_forward_shapes_and_regulariser():
    net = PointNet(
        in_channels=6,
        channels=(8, 8, 8, 16, 32),
        tnet_conv_channels=(8, 16),
        tnet_fc_channels=(16, ))
    out = net(torch.randn(3, 20, 6))
    assert out['point_feats'].shape == (3, 32, 20)
    loss = out['losses']['loss_feat_transform']
    # T-Nets start at the identity, so the regulariser starts at 0.
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r'\(B, N, 6\)'):
        net(torch.randn(3, 20, 3))


def test_tnet_starts_as_identity_and_pools_with_pointpool():
    tnet = TNet(
        4,
        conv_channels=(8, ),
        fc_channels=(8, ),
        pool=dict(type='PointPool', mode='max+avg'))
    assert isinstance(tnet.pool, PointPool) and tnet.pool.mode == 'max+avg'
    trans = tnet(torch.randn(2, 4, 10))
    assert torch.allclose(trans, torch.eye(4).expand(2, 4, 4))


def test_feature_transform_regularizer_values():
    eye = torch.eye(3).expand(2, 3, 3)
    assert feature_transform_regularizer(eye).item() == pytest.approx(0.0)
    scaled = 2 * eye  # A A^T - I = 3 I, Frobenius norm 3 * sqrt(3)
    assert feature_transform_regularizer(scaled).item() == pytest.approx(
        3 * 3**0.5, rel=1e-5)


def test_pointnet_rejects_bad_arguments():
    with pytest.raises(ValueError, match='xyz'):
        PointNet(in_channels=2)
    with pytest.raises(ValueError, match='feature_transform_after'):
        PointNet(feature_transform_after=5)
    with pytest.raises(TypeError, match='PointPool'):
        TNet(3, pool=dict(type='PointNet'))


def test_regulariser_is_skipped_only_at_inference():
    net = PointNet(in_channels=3, feature_transform=True)
    points = torch.randn(2, 32, 3)
    net.eval()
    with torch.no_grad():
        assert net(points)['losses'] == {}
    # eval mode with gradients (e.g. a loss() call) and train mode keep it
    assert 'loss_feat_transform' in net(points)['losses']
    net.train()
    with torch.no_grad():
        assert 'loss_feat_transform' in net(points)['losses']
