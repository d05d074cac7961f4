# Copyright (c) mmbinpc contributors. All rights reserved.
"""Training hooks."""
from .bn_recalibration_hook import BNRecalibrationHook, recalibrate_batchnorm
from .irnet_schedule_hook import IRNetScheduleHook, set_irnet_progress
from .rng_state_hook import BatchSeeding, RNGStateHook
from .safe_checkpoint_hook import SafeCheckpointHook
from .teacher_val_hook import TeacherValHook

__all__ = [
    'BNRecalibrationHook', 'recalibrate_batchnorm', 'IRNetScheduleHook',
    'set_irnet_progress', 'RNGStateHook', 'BatchSeeding', 'SafeCheckpointHook',
    'TeacherValHook'
]
