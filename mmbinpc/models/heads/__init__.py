# Copyright (c) mmbinpc contributors. All rights reserved.
"""Classification heads."""
from .cls_head import PointClsHead

__all__ = ['PointClsHead']
