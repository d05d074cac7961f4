# Copyright (c) mmbinpc contributors. All rights reserved.
"""Training hooks."""
from .irnet_schedule_hook import IRNetScheduleHook, set_irnet_progress

__all__ = ['IRNetScheduleHook', 'set_irnet_progress']
