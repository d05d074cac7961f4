# Copyright (c) mmbinpc contributors. All rights reserved.
"""Backbones: PointNet, PointCNN; mmdet3d's PointNet++ and DGCNN (cls)."""
from .mmdet3d_cls import DGCNNBackboneCls, PointNet2SASSGCls
from .pointcnn import PointCNN, XConv
from .pointnet import PointNet, TNet, feature_transform_regularizer

__all__ = [
    'PointNet', 'TNet', 'feature_transform_regularizer', 'PointNet2SASSGCls',
    'DGCNNBackboneCls', 'PointCNN', 'XConv'
]
