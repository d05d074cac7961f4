# Copyright (c) mmbinpc contributors. All rights reserved.
"""CPU implementations of mmcv's point ops and the dispatch patch.

:func:`patch_mmcv_point_ops` patches mmcv's point-op autograd Functions so
CPU tensors run the versions below (CUDA tensors keep mmcv's kernels);
``import mmbinpc`` does it unless turned off (:mod:`mmbinpc.runtime`,
``cpu_point_ops``). FPS and the neighbour queries run compiled Numba
kernels or PyTorch-only brute force with the same results
(:func:`set_backend`). See docs/point_ops.md for the semantics and measured
speed.
"""
from . import chunking
from .backend import BACKENDS, get_backend, set_backend, use_backend
from .chunking import chunk_budget, set_chunk_bytes
from .dispatch import is_patched, patch_mmcv_point_ops, unpatch_mmcv_point_ops
from .gathering import (gather_points, gather_points_backward,
                        grouping_operation, grouping_operation_backward,
                        stack_grouping_operation,
                        stack_grouping_operation_backward, three_interpolate,
                        three_interpolate_backward)
from .neighbors import ball_query, knn, stack_ball_query, three_nn
from .sampling import furthest_point_sample, furthest_point_sample_with_dist

__all__ = [
    'BACKENDS', 'get_backend', 'set_backend', 'use_backend', 'ball_query',
    'chunk_budget', 'chunking', 'furthest_point_sample',
    'furthest_point_sample_with_dist', 'gather_points',
    'gather_points_backward', 'grouping_operation',
    'grouping_operation_backward', 'is_patched', 'knn', 'patch_mmcv_point_ops',
    'set_chunk_bytes', 'stack_ball_query', 'stack_grouping_operation',
    'stack_grouping_operation_backward', 'three_interpolate',
    'three_interpolate_backward', 'three_nn', 'unpatch_mmcv_point_ops'
]
