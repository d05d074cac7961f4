# Copyright (c) mmbinpc contributors. All rights reserved.
"""Classifiers."""
from .point_classifier import PointClassifier

__all__ = ['PointClassifier']
