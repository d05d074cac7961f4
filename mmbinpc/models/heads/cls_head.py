# Copyright (c) mmbinpc contributors. All rights reserved.
"""Classification head: MLP with BN, ReLU and dropout on a global feature."""
from typing import Optional, Sequence, Union

import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn


@MODELS.register_module()
class PointClsHead(BaseModule):
    """MLP head: ``[Linear -> BN -> ReLU -> Dropout] * n -> Linear``.

    Args:
        in_channels (int): Channels of the global feature.
        num_classes (int): Number of classes.
        mid_channels (Sequence[int]): Hidden widths. Defaults to (512, 256).
        dropout (float or Sequence[float]): Dropout ratio after each hidden
            layer (one value for all, or one per layer). Defaults to 0.4.
        label_smoothing (float): Label smoothing of the cross entropy.
            Defaults to 0.
        loss_weight (float): Weight of ``loss_ce``. Defaults to 1.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 mid_channels: Sequence[int] = (512, 256),
                 dropout: Union[float, Sequence[float]] = 0.4,
                 label_smoothing: float = 0.0,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError(f'num_classes must be >= 2, got {num_classes}')
        if isinstance(dropout, (int, float)):
            dropout = [float(dropout)] * len(mid_channels)
        if len(dropout) != len(mid_channels):
            raise ValueError(f'dropout needs one ratio per hidden layer '
                             f'({len(mid_channels)}), got {list(dropout)}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight
        layers = []
        prev = in_channels
        for width, ratio in zip(mid_channels, dropout):
            layers += [
                nn.Linear(prev, width),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True)
            ]
            if ratio > 0:
                layers.append(nn.Dropout(ratio))
            prev = width
        self.mlp = nn.Sequential(*layers)
        self.fc_cls = nn.Linear(prev, num_classes)

    def forward(self, feats: Tensor) -> Tensor:
        """Classify global features.

        Args:
            feats (Tensor): Global features (B, in_channels).

        Returns:
            Tensor: Logits (B, num_classes).
        """
        if feats.dim() != 2 or feats.shape[1] != self.in_channels:
            raise ValueError(
                f'PointClsHead expects features of shape (B, '
                f'{self.in_channels}), got {tuple(feats.shape)}; check that '
                f'head.in_channels matches the backbone and pool mode '
                f'(max+avg doubles the channels)')
        return self.fc_cls(self.mlp(feats))

    def loss_by_logits(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Weighted (optionally label-smoothed) cross entropy.

        Args:
            logits (Tensor): Logits (B, K).
            labels (Tensor): Class indices (B,).

        Returns:
            Tensor: The scalar ``loss_ce``.
        """
        return self.loss_weight * F.cross_entropy(
            logits, labels, label_smoothing=self.label_smoothing)
