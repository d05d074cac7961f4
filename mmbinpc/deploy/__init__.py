# Copyright (c) mmbinpc contributors. All rights reserved.
"""Bit-packed export and the packed XNOR-popcount CPU inference engine.

The Numba kernels (:mod:`mmbinpc.deploy.kernels`) are imported on first use,
so importing this package does not JIT-compile anything.
"""
from .bitpack import (WORD_BITS, num_words, pack_signs, popcount64,
                      unpack_signs, xnor_dot)
from .export import (ExportSummary, export_packed, find_foldable_bn,
                     preprocess_steps, state_dict_bytes)
from .format import PackedFormatError, read_meta, read_packed
from .packed_layers import PackedBinaryLayer
from .packed_model import PackedModel
from .support import (ENGINE_INPUT_SCALES, NotSupportedError, check_supported,
                      packed_input_scale)

__all__ = [
    'WORD_BITS', 'num_words', 'pack_signs', 'unpack_signs', 'popcount64',
    'xnor_dot', 'export_packed', 'ExportSummary', 'find_foldable_bn',
    'read_meta', 'read_packed', 'PackedFormatError', 'preprocess_steps',
    'state_dict_bytes', 'PackedBinaryLayer', 'PackedModel',
    'ENGINE_INPUT_SCALES', 'NotSupportedError', 'check_supported',
    'packed_input_scale'
]
