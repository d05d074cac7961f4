# Copyright (c) mmbinpc contributors. All rights reserved.
"""Tiny PointNet classifiers and teacher checkpoints for distiller tests."""
import copy

import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample

NUM_CLASSES = 4


def tiny_classifier(width: int = 16, tnet: bool = False) -> dict:
    """A small PointClassifier: 3 shared layers (+ input T-Net) + head."""
    return dict(
        type='PointClassifier',
        data_preprocessor=dict(type='Det3DDataPreprocessor'),
        backbone=dict(
            type='PointNet',
            in_channels=3,
            channels=(8, 16, width),
            input_transform=tnet,
            feature_transform=False,
            feature_transform_after=1),
        pool=dict(type='PointPool', mode='max'),
        head=dict(
            type='PointClsHead',
            in_channels=width,
            num_classes=NUM_CLASSES,
            mid_channels=(16, ),
            dropout=0.0))


def save_teacher(cfg: dict, path: str) -> str:
    """Build ``cfg`` and save it as an mmengine-style checkpoint."""
    model = MODELS.build(copy.deepcopy(cfg))
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


def batch(b: int = 4, n: int = 32):
    """Preprocessed-looking inputs and data samples with gt_label."""
    inputs = {'points': [torch.randn(n, 3) for _ in range(b)]}
    samples = []
    for i in range(b):
        s = Det3DDataSample()
        s.gt_label = torch.tensor(i % NUM_CLASSES)
        samples.append(s)
    return inputs, samples
