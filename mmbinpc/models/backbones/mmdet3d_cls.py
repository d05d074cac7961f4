# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmdet3d's PointNet++ (SSG) and DGCNN backbones, set up for classification.

Both subclasses keep mmdet3d's layers (and so their pooling sites, which
:func:`mmbinpc.binary.convert.binarize` adapts) and change only what
classification needs:

* :class:`PointNet2SASSGCls` accepts a group-all SA layer (``num_points``
  entry ``None``) as the last layer; mmdet3d 1.4's ``PointNet2SASSG.forward``
  fails on it because a group-all layer returns no sampled indices.
* :class:`DGCNNBackboneCls` returns the per-point features of the FA MLP
  (B, C, N) so the classifier can pool them globally with max + avg, as in
  the DGCNN paper. mmdet3d's ``DGCNNFAModule`` keeps only their max, so this
  backbone keeps the FA MLP (``fa_mlps``) and has no ``FA_module``.
"""
from typing import Dict, List, Optional

import torch
from mmdet3d.models.backbones import DGCNNBackbone, PointNet2SASSG
from mmdet3d.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class PointNet2SASSGCls(PointNet2SASSG):
    """PointNet++ SSG backbone whose last SA layer may group all points.

    Takes the arguments of mmdet3d's ``PointNet2SASSG``; use ``None`` in
    ``num_points``, ``radius`` and ``num_samples`` for a group-all layer and
    ``fp_channels=()``. The classifier reads ``sa_features[-1]`` (B, C, 1).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault('fp_channels', ())
        super().__init__(*args, **kwargs)
        group_all = [m.num_point is None for m in self.SA_modules]
        if any(group_all[:-1]):
            raise ValueError('only the last SA layer of PointNet2SASSGCls may '
                             'group all points (num_points=None)')
        if group_all[-1] and self.num_fp:
            raise ValueError('a group-all last SA layer leaves one point, so '
                             'FP layers cannot follow it; set fp_channels=()')

    def forward(self, points: Tensor) -> Dict[str, List[Optional[Tensor]]]:
        """Run the SA layers.

        Args:
            points (Tensor): Points (B, N, 3 + C) with xyz first.

        Returns:
            dict: ``sa_xyz``, ``sa_features`` (each SA level, the input
            first; a group-all level has xyz at the origin, shape (B, 1, 3))
            and ``sa_indices`` (None for a group-all level).
        """
        if self.num_fp:
            return super().forward(points)
        xyz, features = self._split_point_feats(points)
        batch, num_points = xyz.shape[:2]
        indices = torch.arange(
            num_points, device=xyz.device).unsqueeze(0).repeat(batch, 1)
        sa_xyz, sa_features, sa_indices = [xyz], [features], [indices]
        for module in self.SA_modules:
            new_xyz, new_features, new_indices = module(
                sa_xyz[-1], sa_features[-1])
            if new_xyz is None:  # group-all
                new_xyz = xyz.new_zeros(batch, 1, 3)
                sa_indices.append(None)
            else:
                sa_indices.append(
                    torch.gather(sa_indices[-1], 1, new_indices.long()))
            sa_xyz.append(new_xyz)
            sa_features.append(new_features)
        return dict(
            sa_xyz=sa_xyz, sa_features=sa_features, sa_indices=sa_indices)


@MODELS.register_module()
class DGCNNBackboneCls(DGCNNBackbone):
    """DGCNN backbone returning per-point features for global pooling.

    Takes the arguments of mmdet3d's ``DGCNNBackbone``. The EdgeConv (GF)
    outputs are concatenated and passed through the FA MLP (``fa_mlps``,
    mmdet3d's ``DGCNNFAModule.mlps``); the classifier pools the result.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fa_mlps = self.FA_module.mlps
        del self.FA_module
        self.out_channels = self.fa_mlps[-1].conv.out_channels

    def forward(self, points: Tensor) -> Dict[str, object]:
        """Compute per-point features.

        Args:
            points (Tensor): Points (B, N, C); the D-KNN layer groups on the
                last three channels (xyz for xyz-only input).

        Returns:
            dict: ``point_feats`` (B, C_out, N) and ``gf_points`` (the
            input and each EdgeConv output, (B, N, C_i)).
        """
        gf_points = [points]
        for module in self.GF_modules:
            gf_points.append(module(gf_points[-1]))
        feats = torch.cat(gf_points[1:], dim=-1).transpose(1, 2).contiguous()
        return dict(point_feats=self.fa_mlps(feats), gf_points=gf_points)
