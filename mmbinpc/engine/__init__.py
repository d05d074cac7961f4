# Copyright (c) mmbinpc contributors. All rights reserved.
"""Engine components (hooks, optimizer constructors, atomic file writes)
registered in mmdet3d's and mmengine's registries."""
from .atomic_io import (AtomicLocalBackend, atomic_torch_save,
                        atomic_write_bytes, atomic_write_text)
from .hooks import (IRNetScheduleHook, RNGStateHook, SafeCheckpointHook,
                    set_irnet_progress)
from .optimizers import BinaryOptimWrapperConstructor, latent_lr_multipliers

__all__ = [
    'IRNetScheduleHook', 'set_irnet_progress', 'RNGStateHook',
    'SafeCheckpointHook', 'AtomicLocalBackend', 'atomic_torch_save',
    'atomic_write_bytes', 'atomic_write_text', 'BinaryOptimWrapperConstructor',
    'latent_lr_multipliers'
]
