# Copyright (c) mmbinpc contributors. All rights reserved.
"""Distillation losses: soft targets (L_DS), pooling-output norms (L_reg)."""
from .pooling_norm_loss import (BATCH_EXPONENT, REG_NORMS, PoolingNormLoss,
                                check_norm, matrix_norm, pooling_norm)
from .soft_target_loss import SoftTargetLoss, soft_target_loss

__all__ = [
    'REG_NORMS', 'BATCH_EXPONENT', 'check_norm', 'matrix_norm', 'pooling_norm',
    'PoolingNormLoss', 'SoftTargetLoss', 'soft_target_loss'
]
