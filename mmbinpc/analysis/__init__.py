# Copyright (c) mmbinpc contributors. All rights reserved.
"""Complexity analysis: FLOPs, BOPs, parameters and storage per layer."""
from .complexity import (POINT_OP_MODULES, ComplexityReport, LayerCount,
                         PointOpCount, count_complexity, is_binary_layer,
                         model_forward)
from .host import code_version, cpu_name, host_info
from .timing import ORDERS, run_rounds, speedup, timing_stats

__all__ = [
    'ComplexityReport', 'LayerCount', 'PointOpCount', 'count_complexity',
    'is_binary_layer', 'model_forward', 'POINT_OP_MODULES', 'cpu_name',
    'code_version', 'host_info', 'run_rounds', 'ORDERS', 'timing_stats',
    'speedup'
]
