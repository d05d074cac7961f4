# Copyright (c) mmbinpc contributors. All rights reserved.
"""Evaluation metrics."""
from .cls_metric import ClsMetric, accuracy_table

__all__ = ['ClsMetric', 'accuracy_table']
