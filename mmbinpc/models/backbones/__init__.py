# Copyright (c) mmbinpc contributors. All rights reserved.
"""Backbones: PointNet; mmdet3d's PointNet++/DGCNN for classification."""
from .mmdet3d_cls import DGCNNBackboneCls, PointNet2SASSGCls
from .pointnet import PointNet, TNet, feature_transform_regularizer

__all__ = [
    'PointNet', 'TNet', 'feature_transform_regularizer', 'PointNet2SASSGCls',
    'DGCNNBackboneCls'
]
