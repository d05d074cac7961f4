# Copyright (c) mmbinpc contributors. All rights reserved.
"""Datasets and data transforms."""
from . import transforms  # noqa: F401
from .modelnet import ModelNet40Dataset, detect_format
from .synthetic_modelnet import write_synthetic_modelnet

__all__ = ['ModelNet40Dataset', 'detect_format', 'write_synthetic_modelnet']
