# Copyright (c) mmbinpc contributors. All rights reserved.
"""A tiny synthetic ModelNet-format dataset shared by the classifier tests."""
import pytest


@pytest.fixture(scope='session')
def tiny_modelnet(tmp_path_factory):
    from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
    root = tmp_path_factory.mktemp('tiny_modelnet')
    write_synthetic_modelnet(
        str(root),
        num_classes=3,
        train_per_class=3,
        test_per_class=1,
        num_points=160,
        seed=1,
        log=None)
    return str(root)


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread: on a shared, loaded 2-core machine two OpenMP
    threads make small training steps tens of times slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
