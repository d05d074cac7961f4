# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmbinpc: 1-bit point-cloud networks distilled from FP32 teachers.

Importing the package registers every component into the MMDetection3D
registries (``mmdet3d.registry.MODELS``, ``DATASETS``, ``TRANSFORMS``,
``METRICS``, ``HOOKS``) and then calls :func:`mmbinpc.runtime.setup`, which
turns on the process-wide effects (CPU point ops for mmcv, the safe
checkpoint loader, the version check), each switchable by an environment
variable; ``python -m mmbinpc.info`` prints them. Configs load the
package with ``custom_imports = dict(imports=['mmbinpc'],
allow_failed_imports=False)``.

Without PyTorch installed (a device that only runs packed models) the
package imports nothing of this, and ``mmbinpc.deploy.runtime`` works.
"""
from importlib.util import find_spec

from .version import __version__

#: False on a deploy-only install (``requirements/deploy.txt``: NumPy and
#: Numba, no PyTorch): then only :mod:`mmbinpc.deploy.runtime` and the
#: modules it uses are importable, and nothing is registered.
FULL_INSTALL = find_spec('torch') is not None

__all__ = ['__version__', 'FULL_INSTALL']

if FULL_INSTALL:
    # isort: off
    # importing the subpackages registers their types
    from . import analysis, binary, compat, datasets, deploy  # noqa: F401
    from . import engine, evaluation, models, ops, runtime  # noqa: F401
    # isort: on
    from .binary import (BinarizeReport, BinConv1d, BinConv2d, BinLinear,
                         EMAMaxPool, PointPool, attach_pooling, binarize,
                         ema_offset, pooling_sites)
    from .models import BinaryDistiller
    from .runtime import setup

    setup()

    __all__ += [
        'binarize', 'BinarizeReport', 'BinConv1d', 'BinConv2d', 'BinLinear',
        'ema_offset', 'EMAMaxPool', 'PointPool', 'attach_pooling',
        'pooling_sites', 'BinaryDistiller', 'setup'
    ]
