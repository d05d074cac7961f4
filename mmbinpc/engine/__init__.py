# Copyright (c) mmbinpc contributors. All rights reserved.
"""Engine components (hooks, optimizer constructors) registered in mmdet3d's
registries."""
from .hooks import IRNetScheduleHook, set_irnet_progress
from .optimizers import BinaryOptimWrapperConstructor, latent_lr_multipliers

__all__ = [
    'IRNetScheduleHook', 'set_irnet_progress',
    'BinaryOptimWrapperConstructor', 'latent_lr_multipliers'
]
