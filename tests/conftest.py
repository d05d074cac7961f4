# Copyright (c) mmbinpc contributors. All rights reserved.
"""Shared pytest fixtures. Importing mmbinpc registers everything."""
import random

import numpy as np
import pytest
import torch

import mmbinpc  # noqa: F401


@pytest.fixture(autouse=True)
def _seed_everything():
    """Make every test deterministic."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


# The suite runs on 2-core machines, often beside other work: one intra-op
# thread avoids oversubscription (tests use tiny tensors anyway).
torch.set_num_threads(1)


@pytest.fixture
def tiny_pointnet_config(tmp_path):
    """A small FP32 PointNet config on generated data (2 classes, 4
    training and 3 test shapes per class, 32 points).

    Returns a function ``(extra: str = '') -> str`` that writes the config,
    with ``extra`` appended, and returns its path.
    """
    import os.path as osp

    from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    root = str(tmp_path / 'data')
    write_synthetic_modelnet(
        root,
        num_classes=2,
        train_per_class=4,
        test_per_class=3,
        num_points=64,
        log=None)
    base = osp.join(repo, 'configs/pointnet/pointnet_fp_modelnet40.py')

    def write(extra: str = '') -> str:
        path = tmp_path / 'tiny_pointnet.py'
        path.write_text(f"""
_base_ = [{base!r}]
model = dict(
    backbone=dict(channels=(8, 8, 8, 16, 32), input_transform=False,
                  feature_transform=False),
    head=dict(in_channels=32, num_classes=2, mid_channels=(16, 8)))
_data = dict(data_root={root!r}, num_points=32)
_loader = dict(batch_size=2, num_workers=0, persistent_workers=False,
               dataset=_data)
train_dataloader = _loader
val_dataloader = _loader
test_dataloader = _loader
""" + extra)
        return str(path)

    return write
