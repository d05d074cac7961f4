# Copyright (c) mmbinpc contributors. All rights reserved.
"""Classification transforms (registered in mmdet3d's TRANSFORMS)."""
from .cls_transforms import (NormalizePointsToUnitSphere,
                             RandomAnisotropicScale, RandomPointDropout,
                             RandomRotateUpAxis, RandomShift, get_points_array,
                             set_points_array)
from .formatting import PackClsInputs

__all__ = [
    'NormalizePointsToUnitSphere', 'RandomAnisotropicScale',
    'RandomPointDropout', 'RandomRotateUpAxis', 'RandomShift', 'PackClsInputs',
    'get_points_array', 'set_points_array'
]
