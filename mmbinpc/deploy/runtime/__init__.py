# Copyright (c) mmbinpc contributors. All rights reserved.
"""The packed runtime: load a packed file and run it (NumPy + Numba only).

Nothing here imports PyTorch, mmcv, mmengine or mmdet3d, so a device
installs ``requirements/deploy.txt`` and this package alone::

    from mmbinpc.deploy.runtime import PackedModel
    model = PackedModel.load('pointnet.packed')
    logits = model(points)          # (B, N, C) float32 -> (B, K)
"""
from .graph import FORMAT_NAME, FORMAT_VERSION, read_graph, write_graph
from .model import PackedModel
from .ops import OPS, Bits, ValueInfo
from .preprocess import STEPS, apply_preprocess

__all__ = [
    'PackedModel', 'read_graph', 'write_graph', 'FORMAT_NAME',
    'FORMAT_VERSION', 'OPS', 'Bits', 'ValueInfo', 'STEPS', 'apply_preprocess'
]
