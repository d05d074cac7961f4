# Copyright (c) mmbinpc contributors. All rights reserved.
"""The test pipeline's preprocessing, replayed on raw clouds at deployment.

A packed file records (``meta['preprocess']``) the steps of the test
pipeline that change the points, so that ``tools/deploy/predict.py`` feeds
the model clouds prepared exactly as in training and testing. Each step
here computes what its dataset transform computes.
"""
from typing import Callable, Dict, Sequence

import numpy as np


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre xyz on their mean and scale them into the unit sphere.

    The same arithmetic as the ``NormalizePointsToUnitSphere`` transform;
    other channels (normals) are kept.

    Args:
        points (np.ndarray): (N, C) float32 points, xyz first.

    Returns:
        np.ndarray: A normalised copy.
    """
    out = np.array(points, dtype=np.float32, copy=True)
    xyz = out[:, :3] - out[:, :3].mean(axis=0)
    radius = np.sqrt((xyz**2).sum(axis=1)).max()
    out[:, :3] = xyz / radius if radius > 0 else xyz
    return out


#: Step name (as stored in packed files) -> function.
STEPS: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    'normalize_unit_sphere': normalize_unit_sphere,
}


def apply_preprocess(points: np.ndarray, steps: Sequence[str]) -> np.ndarray:
    """Apply recorded steps in order.

    Args:
        points (np.ndarray): (N, C) points of one cloud.
        steps (Sequence[str]): Names from ``meta['preprocess']``.

    Returns:
        np.ndarray: The prepared cloud.

    Raises:
        ValueError: For an unknown step.
    """
    for step in steps:
        if step not in STEPS:
            raise ValueError(f'unknown preprocessing step {step!r}; known: '
                             f'{", ".join(STEPS)}')
        points = STEPS[step](points)
    return points
