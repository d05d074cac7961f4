# Copyright (c) mmbinpc contributors. All rights reserved.
"""Binarization: binarizers, binary layers, aggregation and the converter."""
from .aggregation import EMAMaxPool, PointPool, ema_offset  # noqa: F401
