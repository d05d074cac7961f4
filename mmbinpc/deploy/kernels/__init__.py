# Copyright (c) mmbinpc contributors. All rights reserved.
"""Numba kernels of the packed runtime (NumPy and Numba only, no PyTorch).

* :mod:`.xnor`: packing, XNOR-popcount products with their fused output
  maps (float, next layer's bits, max over groups of rows) and FP32 rows;
* :mod:`.points`: the point queries (kNN in 3-D and feature space, ball
  query, furthest point sampling) with mmcv's CUDA semantics, shared with
  the training-time CPU ops of :mod:`mmbinpc.ops`.

Kernels compile on first use and are cached on disk.
"""
from .xnor import (SCALE_MEAN_ABS, SCALE_NONE, binary_pointwise,
                   binary_pointwise_maxpool, dedup_table_size, dense_rows,
                   flip_negative_channels, get_num_threads, pack_input,
                   pack_input_channels_first, pack_input_into, popcount_u64,
                   set_num_threads, transform_rows, unique_rows, warmup,
                   xnor_gemm_affine, xnor_gemm_bits, xnor_gemm_maxpool,
                   xnor_gemm_maxpool_flipped)

__all__ = [
    'SCALE_NONE', 'SCALE_MEAN_ABS', 'pack_input', 'pack_input_into',
    'pack_input_channels_first', 'xnor_gemm_affine', 'xnor_gemm_maxpool',
    'xnor_gemm_maxpool_flipped', 'xnor_gemm_bits', 'flip_negative_channels',
    'unique_rows', 'dedup_table_size', 'dense_rows', 'popcount_u64',
    'binary_pointwise', 'binary_pointwise_maxpool', 'transform_rows',
    'set_num_threads', 'get_num_threads', 'warmup'
]
