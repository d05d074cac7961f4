# Copyright (c) mmbinpc contributors. All rights reserved.
"""Pack a classification sample into model inputs and a Det3DDataSample."""
from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import Det3DDataSample
from mmdet3d.structures.points import BasePoints


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Pack ``points`` and ``gt_label`` for :class:`PointClassifier`.

    Output: ``inputs['points']`` a float tensor (N, C), and ``data_samples``
    a ``Det3DDataSample`` with ``gt_label`` (0-dim long tensor) when the
    results have one, and the ``meta_keys`` found in the results as
    metainfo.

    Args:
        meta_keys (Sequence[str]): Keys copied to the metainfo.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('shape_id', 'sample_idx', 'num_pts_feats',
                                    'pcd_rotation_angle', 'pcd_scale_factor',
                                    'pcd_trans')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        if 'points' not in results:
            raise KeyError('PackClsInputs needs results["points"]')
        points = results['points']
        if isinstance(points, BasePoints):
            points = points.tensor
        points = torch.as_tensor(np.asarray(points, dtype=np.float32)) \
            if not isinstance(points, torch.Tensor) else points.float()
        sample = Det3DDataSample()
        if 'gt_label' in results:
            sample.gt_label = torch.as_tensor(
                int(results['gt_label']), dtype=torch.long)
        sample.set_metainfo(
            {k: results[k]
             for k in self.meta_keys if k in results})
        return dict(
            inputs=dict(points=points.contiguous()), data_samples=sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
