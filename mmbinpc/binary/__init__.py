# Copyright (c) mmbinpc contributors. All rights reserved.
"""Binarization: binarizers, binary layers, aggregation and the converter."""
from .aggregation import (EMAMaxPool, PointPool, attach_pooling, ema_offset,
                          pooling_sites, set_pooling_mode, to_ema, to_max)
from .binarizers import (BINARIZERS, Binarizer, binarizer_names,
                         build_binarizer, hard_sign, register_binarizer)
from .convert import (BinarizeReport, LayerEntry, binarize, binarize_paconv,
                      build_binarized, expand_binarize_key)
from .layers import BinConv1d, BinConv2d, BinLinear, from_float

__all__ = [
    'EMAMaxPool', 'PointPool', 'ema_offset', 'attach_pooling', 'pooling_sites',
    'set_pooling_mode', 'to_ema', 'to_max', 'BINARIZERS', 'Binarizer',
    'binarizer_names', 'build_binarizer', 'hard_sign', 'register_binarizer',
    'BinarizeReport', 'LayerEntry', 'binarize', 'binarize_paconv',
    'build_binarized', 'expand_binarize_key', 'BinConv1d', 'BinConv2d',
    'BinLinear', 'from_float'
]
