# Copyright (c) mmbinpc contributors. All rights reserved.
"""Engine components (hooks) registered in mmdet3d's registries."""
from .hooks import IRNetScheduleHook, set_irnet_progress

__all__ = ['IRNetScheduleHook', 'set_irnet_progress']
