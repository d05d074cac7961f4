# Copyright (c) mmbinpc contributors. All rights reserved.
"""Complexity analysis: FLOPs, BOPs, parameters and storage per layer."""
from .complexity import (POINT_OP_MODULES, ComplexityReport, LayerCount,
                         PointOpCount, count_complexity, is_binary_layer,
                         model_forward)
from .host import cpu_name
from .timing import ORDERS, run_rounds, speedup, timing_stats

__all__ = [
    'ComplexityReport', 'LayerCount', 'PointOpCount', 'count_complexity',
    'is_binary_layer', 'model_forward', 'POINT_OP_MODULES', 'cpu_name',
    'run_rounds', 'ORDERS', 'timing_stats', 'speedup'
]
