# Copyright (c) mmbinpc contributors. All rights reserved.
import pytest
import torch

from mmbinpc.models.backbones import DGCNNBackboneCls, PointNet2SASSGCls


def test_pointnet2_group_all_last_layer():
    net = PointNet2SASSGCls(
        in_channels=3,
        num_points=(16, None),
        radius=(0.4, None),
        num_samples=(8, None),
        sa_channels=((8, 16), (16, 32)))
    out = net(torch.rand(2, 64, 3))
    assert out['sa_features'][-1].shape == (2, 32, 1)
    assert out['sa_features'][1].shape == (2, 16, 16)
    assert out['sa_xyz'][-1].shape == (2, 1, 3)
    assert out['sa_indices'][-1] is None
    assert out['sa_indices'][1].shape == (2, 16)


def test_pointnet2_group_all_only_last():
    with pytest.raises(ValueError, match='only the last SA layer'):
        PointNet2SASSGCls(
            in_channels=3,
            num_points=(None, 8),
            radius=(None, 0.4),
            num_samples=(None, 8),
            sa_channels=((8, ), (8, )))


def test_dgcnn_cls_returns_per_point_features():
    net = DGCNNBackboneCls(
        in_channels=3,
        num_samples=(6, 6),
        knn_modes=('D-KNN', 'F-KNN'),
        radius=(None, None),
        gf_channels=((8, ), (16, )),
        fa_channels=(32, ))
    assert not hasattr(net, 'FA_module') and net.out_channels == 32
    out = net(torch.rand(2, 40, 3))
    assert out['point_feats'].shape == (2, 32, 40)
    assert [g.shape[-1] for g in out['gf_points']] == [3, 8, 16]
