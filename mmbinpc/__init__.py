# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmbinpc: 1-bit point-cloud networks distilled from FP32 teachers.

Importing the package registers every component into the MMDetection3D
registries (``mmdet3d.registry.MODELS``, ``DATASETS``, ``TRANSFORMS``,
``METRICS``, ``HOOKS``), routes mmcv's point ops to CPU implementations for
CPU tensors, and applies the torch/mmengine compatibility fixes. Configs load
it with ``custom_imports = dict(imports=['mmbinpc'],
allow_failed_imports=False)``.
"""
from .version import __version__
from .compat import check_versions

check_versions()

from . import compat, ops  # noqa: E402,F401  (ops patches mmcv on import)
from . import binary, models, datasets, evaluation, engine  # noqa: E402,F401
from . import analysis, deploy  # noqa: E402,F401
from .binary import (BinarizeReport, BinConv1d, BinConv2d,  # noqa: E402
                     BinLinear, EMAMaxPool, PointPool, attach_pooling,
                     binarize, ema_offset, pooling_sites)
from .models import BinaryDistiller  # noqa: E402

__all__ = [
    '__version__', 'binarize', 'BinarizeReport', 'BinConv1d', 'BinConv2d',
    'BinLinear', 'ema_offset', 'EMAMaxPool', 'PointPool', 'attach_pooling',
    'pooling_sites', 'BinaryDistiller'
]
