# Copyright (c) mmbinpc contributors. All rights reserved.
"""A tiny synthetic ModelNet-format dataset shared by the classifier tests."""
import pytest


@pytest.fixture(scope='session')
def tiny_modelnet(tmp_path_factory):
    from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
    root = tmp_path_factory.mktemp('tiny_modelnet')
    write_synthetic_modelnet(
        str(root), num_classes=3, train_per_class=3, test_per_class=1,
        num_points=160, seed=1, log=None)
    return str(root)
