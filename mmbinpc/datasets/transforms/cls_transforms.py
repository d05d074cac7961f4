# Copyright (c) mmbinpc contributors. All rights reserved.
"""Point-cloud augmentations for whole-shape classification.

They act on ``results['points']`` (an mmdet3d ``BasePoints`` or an (N, C)
array) with xyz in channels 0-2 and, when there are at least 6 channels,
unit normals in channels 3-5, which stay consistent with the geometry
(rotated with it, re-normalised under anisotropic scaling). Shuffling and
per-point jitter are mmdet3d's ``PointShuffle`` and ``RandomJitterPoints``.
"""
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures.points import BasePoints


def get_points_array(results: dict) -> np.ndarray:
    """A float32 copy of ``results['points']`` as an (N, C) array."""
    if 'points' not in results:
        raise KeyError('the transform needs results["points"]')
    points = results['points']
    if isinstance(points, BasePoints):
        return points.tensor.numpy().astype(np.float32, copy=True)
    return np.array(points, dtype=np.float32)


def set_points_array(results: dict, array: np.ndarray) -> None:
    """Store ``array`` back, keeping the points type of ``results``."""
    points = results['points']
    if isinstance(points, BasePoints):
        results['points'] = type(points)(
            array,
            points_dim=array.shape[1],
            attribute_dims=points.attribute_dims)
    else:
        results['points'] = array


def _has_normals(array: np.ndarray, with_normals: Optional[bool]) -> bool:
    if with_normals is None:
        return array.shape[1] >= 6
    if with_normals and array.shape[1] < 6:
        raise ValueError(f'with_normals=True but the points have only '
                         f'{array.shape[1]} channels')
    return with_normals


@TRANSFORMS.register_module()
class NormalizePointsToUnitSphere(BaseTransform):
    """Centre xyz at the centroid and scale them into the unit sphere."""

    def transform(self, results: dict) -> dict:
        array = get_points_array(results)
        xyz = array[:, :3] - array[:, :3].mean(axis=0)
        radius = np.sqrt((xyz**2).sum(axis=1)).max()
        array[:, :3] = xyz / radius if radius > 0 else xyz
        set_points_array(results, array)
        return results


@TRANSFORMS.register_module()
class RandomAnisotropicScale(BaseTransform):
    """Scale each axis by its own factor drawn from ``scale_range``.

    Normals are transformed by the inverse scale and re-normalised.

    Args:
        scale_range (tuple[float]): Low and high factor.
            Defaults to (0.8, 1.25).
        with_normals (bool, optional): Channels 3-5 are normals; None:
            when there are >= 6 channels. Defaults to None.
    """

    def __init__(self,
                 scale_range: Tuple[float, float] = (0.8, 1.25),
                 with_normals: Optional[bool] = None) -> None:
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f'scale_range must be 0 < low <= high, got '
                             f'{scale_range}')
        self.scale_range = tuple(scale_range)
        self.with_normals = with_normals

    def transform(self, results: dict) -> dict:
        array = get_points_array(results)
        scale = np.random.uniform(*self.scale_range, size=3)
        array[:, :3] *= scale
        if _has_normals(array, self.with_normals):
            normals = array[:, 3:6] / scale
            norm = np.linalg.norm(normals, axis=1, keepdims=True)
            array[:, 3:6] = normals / np.maximum(norm, 1e-12)
        results['pcd_scale_factor'] = scale
        set_points_array(results, array)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(scale_range={self.scale_range})'


@TRANSFORMS.register_module()
class RandomShift(BaseTransform):
    """Translate xyz by a vector drawn uniformly from ±``shift_range``.

    Args:
        shift_range (float): Maximum shift per axis. Defaults to 0.1.
    """

    def __init__(self, shift_range: float = 0.1) -> None:
        self.shift_range = shift_range

    def transform(self, results: dict) -> dict:
        array = get_points_array(results)
        shift = np.random.uniform(-self.shift_range, self.shift_range, 3)
        array[:, :3] += shift
        results['pcd_trans'] = shift
        set_points_array(results, array)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(shift_range={self.shift_range})'


@TRANSFORMS.register_module()
class RandomPointDropout(BaseTransform):
    """Drop a random fraction of points, replacing them by the first point.

    As PointNet++: the ratio is drawn from ``[0, max_dropout_ratio)`` per
    sample, every point is dropped with that probability, and dropped points
    become copies of point 0, so the number of points does not change.

    Args:
        max_dropout_ratio (float): Defaults to 0.875.
    """

    def __init__(self, max_dropout_ratio: float = 0.875) -> None:
        if not 0 <= max_dropout_ratio < 1:
            raise ValueError(f'max_dropout_ratio must be in [0, 1), got '
                             f'{max_dropout_ratio}')
        self.max_dropout_ratio = max_dropout_ratio

    def transform(self, results: dict) -> dict:
        array = get_points_array(results)
        ratio = np.random.random() * self.max_dropout_ratio
        dropped = np.random.random(array.shape[0]) <= ratio
        dropped[0] = False
        array[dropped] = array[0]
        set_points_array(results, array)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(max_dropout_ratio='
                f'{self.max_dropout_ratio})')


@TRANSFORMS.register_module()
class RandomRotateUpAxis(BaseTransform):
    """Rotate xyz (and normals) about the up axis by a random angle.

    Args:
        angle_range (tuple[float]): Angle range in radians.
            Defaults to (-pi, pi).
        axis (int): The up axis: 1 (y, ModelNet's convention) or 2 (z).
            Defaults to 1.
        with_normals (bool, optional): See :class:`RandomAnisotropicScale`.
    """

    def __init__(self,
                 angle_range: Sequence[float] = (-math.pi, math.pi),
                 axis: int = 1,
                 with_normals: Optional[bool] = None) -> None:
        if axis not in (0, 1, 2):
            raise ValueError(f'axis must be 0, 1 or 2, got {axis}')
        self.angle_range = tuple(angle_range)
        self.axis = axis
        self.with_normals = with_normals

    def rotation(self, angle: float) -> np.ndarray:
        """The 3x3 rotation (applied as ``x @ R.T``)."""
        c, s = math.cos(angle), math.sin(angle)
        i, j = [a for a in range(3) if a != self.axis]
        rot = np.eye(3, dtype=np.float32)
        rot[i, i], rot[i, j], rot[j, i], rot[j, j] = c, -s, s, c
        return rot

    def transform(self, results: dict) -> dict:
        array = get_points_array(results)
        angle = float(np.random.uniform(*self.angle_range))
        rot = self.rotation(angle)
        array[:, :3] = array[:, :3] @ rot.T
        if _has_normals(array, self.with_normals):
            array[:, 3:6] = array[:, 3:6] @ rot.T
        results['pcd_rotation_angle'] = angle
        set_points_array(results, array)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(angle_range={self.angle_range}, '
                f'axis={self.axis})')
