# Copyright (c) mmbinpc contributors. All rights reserved.
"""Layers registered in mmdet3d's registries."""
from .pooled_sa_modules import (POOLED_SA_MODULES, PooledPAConvCUDASAModule,
                                PooledPAConvCUDASAModuleMSG,
                                PooledPAConvSAModule, PooledPAConvSAModuleMSG,
                                PooledPointSAModule, PooledPointSAModuleMSG,
                                use_pooled_sa_modules)

__all__ = [
    'POOLED_SA_MODULES', 'PooledPointSAModule', 'PooledPointSAModuleMSG',
    'PooledPAConvSAModule', 'PooledPAConvSAModuleMSG',
    'PooledPAConvCUDASAModule', 'PooledPAConvCUDASAModuleMSG',
    'use_pooled_sa_modules'
]
