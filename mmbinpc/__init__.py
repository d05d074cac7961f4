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
from .binary.aggregation import EMAMaxPool, PointPool, ema_offset  # noqa: E402

__all__ = ['__version__', 'ema_offset', 'EMAMaxPool', 'PointPool']
