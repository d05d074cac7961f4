# Copyright (c) mmbinpc contributors. All rights reserved.
"""PointNet backbone with the input (3x3) and feature (64x64) T-Nets."""
from typing import Dict, Optional, Sequence

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmbinpc.binary.aggregation import PointPool

DEFAULT_POOL = dict(type='PointPool', mode='max')


def _conv_bn_relu(in_channels: int,
                  out_channels: int,
                  act: bool = True) -> nn.Sequential:
    """Shared per-point fully connected layer: Conv1d(k=1), BN (, ReLU)."""
    layers = [
        nn.Conv1d(in_channels, out_channels, kernel_size=1),
        nn.BatchNorm1d(out_channels)
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _linear_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_channels, out_channels), nn.BatchNorm1d(out_channels),
        nn.ReLU(inplace=True))


def build_pool(cfg: Optional[dict]) -> PointPool:
    """Build a pooling site from a config (``None`` means global max)."""
    cfg = dict(DEFAULT_POOL if cfg is None else cfg)
    pool = MODELS.build(cfg)
    if not isinstance(pool, PointPool):
        raise TypeError(f'a pooling site must be a PointPool module, got '
                        f'{type(pool).__name__} from {cfg}')
    return pool


@MODELS.register_module()
class TNet(BaseModule):
    """PointNet's transform network: predicts a ``k x k`` alignment matrix.

    Shared MLP ``conv_channels`` on every point, a global pooling site
    (:class:`~mmbinpc.binary.aggregation.PointPool`), fully connected layers
    ``fc_channels`` and a final linear layer to ``k * k`` values, added to
    the identity. The final layer starts at zero so the transform starts as
    the identity.

    Args:
        k (int): Size of the predicted matrix.
        in_channels (int): Channels of the input features. Defaults to ``k``.
        conv_channels (Sequence[int]): Shared MLP widths.
            Defaults to (64, 128, 1024).
        fc_channels (Sequence[int]): Hidden fully connected widths.
            Defaults to (512, 256).
        pool (dict, optional): PointPool config of the global pooling.
            Defaults to max pooling.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 k: int,
                 in_channels: Optional[int] = None,
                 conv_channels: Sequence[int] = (64, 128, 1024),
                 fc_channels: Sequence[int] = (512, 256),
                 pool: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.k = k
        in_channels = k if in_channels is None else in_channels
        convs = []
        for out_channels in conv_channels:
            convs.append(_conv_bn_relu(in_channels, out_channels))
            in_channels = out_channels
        self.convs = nn.Sequential(*convs)
        self.pool = build_pool(pool)
        in_channels = in_channels * (2 if '+' in self.pool.mode else 1)
        fcs = []
        for out_channels in fc_channels:
            fcs.append(_linear_bn_relu(in_channels, out_channels))
            in_channels = out_channels
        self.fcs = nn.Sequential(*fcs)
        self.transform = nn.Linear(in_channels, k * k)
        nn.init.zeros_(self.transform.weight)
        nn.init.zeros_(self.transform.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Predict the transform.

        Args:
            x (Tensor): Point features (B, C, N).

        Returns:
            Tensor: Transform matrices (B, k, k).
        """
        x = self.pool(self.convs(x))
        x = self.transform(self.fcs(x))
        identity = torch.eye(self.k, dtype=x.dtype, device=x.device)
        return x.view(-1, self.k, self.k) + identity


def feature_transform_regularizer(trans: Tensor) -> Tensor:
    """PointNet's orthogonality regulariser of a feature transform.

    As in the reference implementations: the batch mean of the Frobenius norm
    ``||A A^T - I||_F``.

    Args:
        trans (Tensor): Transform matrices (B, k, k).

    Returns:
        Tensor: A scalar.
    """
    k = trans.shape[1]
    identity = torch.eye(k, dtype=trans.dtype, device=trans.device)
    diff = torch.bmm(trans, trans.transpose(1, 2)) - identity
    return torch.linalg.matrix_norm(diff).mean()


@MODELS.register_module()
class PointNet(BaseModule):
    """PointNet classification backbone (Qi et al., CVPR 2017).

    Input T-Net on xyz, shared MLP ``channels`` on every point with the
    feature T-Net inserted after the first ``feature_transform_after``
    layers. Returns per-point features; the classifier does the global
    pooling. With the defaults and both T-Nets, a 40-class
    :class:`~mmbinpc.models.classifiers.PointClassifier` has 3,480,049
    parameters (the paper's 3.48 M) and about 443 M multiply-accumulates for
    1024 points.

    Args:
        in_channels (int): Channels per input point (3 for xyz, 6 with
            normals). Only xyz goes through the input transform.
            Defaults to 3.
        channels (Sequence[int]): Shared MLP widths.
            Defaults to (64, 64, 64, 128, 1024).
        input_transform (bool): Use the 3x3 input T-Net. Defaults to True.
        feature_transform (bool): Use the feature T-Net. Defaults to True.
        feature_transform_after (int): Number of shared layers before the
            feature T-Net. Defaults to 2.
        feat_transform_loss_weight (float): Weight of the orthogonality
            regulariser of the feature transform (``loss_feat_transform``).
            Defaults to 0.001.
        last_act (bool): ReLU after the last shared layer. Defaults to False
            (as BiPointNet's PointNet: the pooled features are then signed,
            which is what a sign-based binary network needs).
        tnet_pool (dict, optional): PointPool config for the T-Nets' global
            pooling. Defaults to max pooling.
        tnet_conv_channels (Sequence[int]): T-Net shared MLP widths.
            Defaults to (64, 128, 1024).
        tnet_fc_channels (Sequence[int]): T-Net hidden fully connected
            widths. Defaults to (512, 256).
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 3,
                 channels: Sequence[int] = (64, 64, 64, 128, 1024),
                 input_transform: bool = True,
                 feature_transform: bool = True,
                 feature_transform_after: int = 2,
                 feat_transform_loss_weight: float = 0.001,
                 last_act: bool = False,
                 tnet_pool: Optional[dict] = None,
                 tnet_conv_channels: Sequence[int] = (64, 128, 1024),
                 tnet_fc_channels: Sequence[int] = (512, 256),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels < 3:
            raise ValueError(f'PointNet needs xyz in the first 3 input '
                             f'channels, got in_channels={in_channels}')
        if not 0 < feature_transform_after < len(channels):
            raise ValueError(
                f'feature_transform_after must lie in [1, {len(channels) - 1}]'
                f', got {feature_transform_after}')
        self.in_channels = in_channels
        self.out_channels = channels[-1]
        self.feature_transform_after = feature_transform_after
        self.feat_transform_loss_weight = feat_transform_loss_weight
        tnet_cfg = dict(
            conv_channels=tnet_conv_channels,
            fc_channels=tnet_fc_channels,
            pool=tnet_pool)
        self.input_tnet = TNet(3, **tnet_cfg) if input_transform else None
        layers = []
        prev = in_channels
        for i, out_channels in enumerate(channels):
            is_last = i == len(channels) - 1
            layers.append(
                _conv_bn_relu(prev, out_channels, act=last_act or not is_last))
            prev = out_channels
        self.mlp = nn.ModuleList(layers)
        ft_channels = channels[feature_transform_after - 1]
        self.feature_tnet = TNet(ft_channels, **
                                 tnet_cfg) if feature_transform else None

    def forward(self, points: Tensor) -> Dict[str, object]:
        """Compute per-point features.

        Args:
            points (Tensor): Points (B, N, C) with xyz first.

        Returns:
            dict: ``point_feats`` (B, C_out, N); ``losses``, a dict holding
            ``loss_feat_transform`` when the feature T-Net is used (already
            weighted; not computed in eval mode under ``torch.no_grad``).
        """
        if points.dim() != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(
                f'PointNet expects points of shape (B, N, {self.in_channels})'
                f', got {tuple(points.shape)}')
        x = points.transpose(1, 2)  # (B, C, N)
        if self.input_tnet is not None:
            trans = self.input_tnet(x[:, :3])
            xyz = torch.bmm(trans.transpose(1, 2), x[:, :3])
            x = torch.cat([xyz, x[:, 3:]], dim=1)
        losses = {}
        # The regulariser is only wanted for a loss; skip it at inference.
        want_loss = self.training or torch.is_grad_enabled()
        for i, layer in enumerate(self.mlp):
            if i == self.feature_transform_after and \
                    self.feature_tnet is not None:
                trans_feat = self.feature_tnet(x)
                x = torch.bmm(trans_feat.transpose(1, 2), x)
                if want_loss:
                    losses['loss_feat_transform'] = \
                        self.feat_transform_loss_weight * \
                        feature_transform_regularizer(trans_feat)
            x = layer(x)
        return dict(point_feats=x, losses=losses)
