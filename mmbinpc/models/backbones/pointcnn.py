# Copyright (c) mmbinpc contributors. All rights reserved.
"""PointCNN for point-cloud classification: X-Conv layers.

Source: Y. Li, R. Bu, M. Sun, W. Wu, X. Di and B. Chen, "PointCNN:
Convolution On X-Transformed Points", NeurIPS 2018, and the ModelNet40
classification setting of its reference implementation
(github.com/yangyanli/PointCNN, ``pointcnn_cls/modelnet_x3_l4.py``: width
multiplier x = 3, four X-Conv layers, ``(K, D, P, C)`` = (8, 1, all, 48),
(12, 2, 384, 96), (16, 2, 128, 192), (16, 3, 128, 384), a global-position
branch in the last layer, per-point fully connected layers 384 and 192 with
dropout 0 and 0.8). Those are this module's defaults: 599,340 parameters
with a 40-class linear classifier, the "about 0.6 M" of the paper.

What an X-Conv layer does, for each representative point ``q`` (the layer's
output points) and its ``K`` neighbours among the layer's input points,
found by a dilated kNN (the ``K · D`` nearest, every ``D``-th kept):

1. local coordinates ``p − q`` are lifted to ``C_δ`` features by two dense
   layers and concatenated with the neighbours' input features;
2. a ``K × K`` matrix **X** is learned from the local coordinates (a
   ``1 × K`` convolution, then two depthwise ``1 × K`` convolutions) and
   multiplies the ``K`` neighbour features: it weights and permutes them
   into a canonical order;
3. a depthwise-separable ``1 × K`` convolution turns the ``K`` transformed
   neighbour features into the representative's ``C`` output channels.

Every dense/convolution layer is followed by ELU and then BatchNorm (the
reference code's order), except the last X convolution, which has no
activation.

Differences from the reference code, on purpose:

* Representative points are picked by farthest point sampling by default
  (``sampling='fps'``); the reference ModelNet40 setting takes the first
  ``P`` points of a randomly shuffled cloud (``sampling='first'`` here, for
  pipelines that shuffle the points, e.g. with ``PointShuffle``).
* A layer asking for at least as many representatives as its input has
  (``P = -1``, or ``P`` larger than the input) keeps every input point, so
  the same model runs on clouds smaller than 1,024 points (the embedded
  CPU benchmark uses 128).
* The classifier averages the per-point features of the last fully
  connected layer over the representative points (an ``avg``
  :class:`~mmbinpc.binary.aggregation.PointPool` in
  :class:`~mmbinpc.models.classifiers.PointClassifier`) and classifies the
  average, in training too; the reference code trains on per-point logits
  and averages at test time only.

PointCNN aggregates neighbourhoods with X-Conv, not with max pooling, so it
has no max/EMA pooling site for the pooling regulariser; the paper
distils it with soft targets only (``+KD``).
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmcv.ops import PointsSampler, knn
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

SAMPLINGS = ('fps', 'first')


def conv_elu_bn(in_channels: int,
                out_channels: int,
                kernel_size=1,
                groups: int = 1,
                act: bool = True,
                dim: int = 2) -> nn.Sequential:
    """Convolution, ELU, then BatchNorm, as in the reference code.

    The convolution has no bias (the reference code's layers have none where
    BatchNorm follows).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int | tuple): Kernel size. Defaults to 1.
        groups (int): Convolution groups. Defaults to 1.
        act (bool): Apply ELU. Defaults to True.
        dim (int): 1 for ``Conv1d``/``BatchNorm1d`` on (B, C, N), 2 for
            ``Conv2d``/``BatchNorm2d`` on (B, C, P, K). Defaults to 2.

    Returns:
        nn.Sequential: The layer.
    """
    conv = {1: nn.Conv1d, 2: nn.Conv2d}[dim]
    norm = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dim]
    layers = [
        conv(
            in_channels, out_channels, kernel_size, groups=groups, bias=False)
    ]
    if act:
        layers.append(nn.ELU(inplace=True))
    layers.append(norm(out_channels))
    return nn.Sequential(*layers)


def gather_neighbours(values: Tensor, index: Tensor) -> Tensor:
    """Rows of ``values`` picked per batch element.

    Args:
        values (Tensor): (B, N, C) per-point values.
        index (Tensor): (B, P, K) integer indices into N.

    Returns:
        Tensor: (B, P, K, C) with ``out[b, p, k] = values[b, index[b, p,
        k]]``; differentiable with respect to ``values``.
    """
    batch = torch.arange(values.shape[0], device=values.device)
    return values[batch.view(-1, 1, 1), index.long()]


class DilatedKNN(nn.Module):
    """Dilated k-nearest neighbours: the ``k · d`` nearest, every ``d``-th.

    Runs mmcv's ``knn`` op (CUDA, or mmbinpc's CPU version). Neighbours are
    ordered nearest first; the query point itself is its own nearest
    neighbour when it is one of the points.

    Args:
        k (int): Neighbours kept per query.
        dilation (int): Keep every ``dilation``-th of the ``k · dilation``
            nearest.
    """

    def __init__(self, k: int, dilation: int = 1) -> None:
        super().__init__()
        if k < 1 or dilation < 1:
            raise ValueError(f'DilatedKNN needs k >= 1 and dilation >= 1, '
                             f'got k={k}, dilation={dilation}')
        self.k = int(k)
        self.dilation = int(dilation)

    def forward(self, points: Tensor, queries: Tensor) -> Tensor:
        """Neighbour indices.

        Args:
            points (Tensor): (B, N, 3) points to search.
            queries (Tensor): (B, P, 3) query points.

        Returns:
            Tensor: (B, P, k) long indices into N, nearest first.
        """
        span = self.k * self.dilation
        if span > points.shape[1]:
            raise ValueError(
                f'DilatedKNN: K·D = {self.k}·{self.dilation} = {span} '
                f'neighbours asked among only {points.shape[1]} points; '
                f'use more points per cloud or lower K or D of this layer')
        index = knn(span, points.contiguous(), queries.contiguous())
        return index[:, ::self.dilation].transpose(1, 2).long()

    def extra_repr(self) -> str:
        return f'k={self.k}, dilation={self.dilation}'


class XConv(BaseModule):
    """One X-Conv layer (see the module docstring).

    Args:
        in_channels (int): Channels of the input point features (0 for
            none: the first layer of an xyz-only model).
        out_channels (int): Output channels ``C``.
        lift_channels (int): ``C_δ``, channels lifted from the local
            coordinates.
        kernel_size (int): Neighbours ``K``.
        dilation (int): kNN dilation ``D``.
        depth_multiplier (int): Of the separable convolution's depthwise
            part.
        with_x_transform (bool): Learn and apply the ``K × K`` matrix X.
            Defaults to True.
        with_global (bool): Add the global-position branch (two dense
            layers on the representatives' coordinates, ``C // 4``
            channels, concatenated before the output). Defaults to False.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 lift_channels: int,
                 kernel_size: int,
                 dilation: int = 1,
                 depth_multiplier: int = 1,
                 with_x_transform: bool = True,
                 with_global: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        k = int(kernel_size)
        self.kernel_size = k
        self.in_channels = in_channels
        self.out_channels = out_channels + (
            out_channels // 4 if with_global else 0)
        self.knn = DilatedKNN(k, dilation)

        self.lift = nn.Sequential(
            conv_elu_bn(3, lift_channels),
            conv_elu_bn(lift_channels, lift_channels))
        self.x_transform = None
        if with_x_transform:
            # (B, 3, P, K) -> K·K; then (B, K, P, K) -> K·K twice, depthwise
            self.x_transform = nn.Sequential(
                conv_elu_bn(3, k * k, (1, k)),
                conv_elu_bn(k, k * k, (1, k), groups=k),
                conv_elu_bn(k, k * k, (1, k), groups=k, act=False))
        mixed = lift_channels + in_channels
        self.depthwise = nn.Conv2d(
            mixed, mixed * depth_multiplier, (1, k), groups=mixed, bias=False)
        self.pointwise = conv_elu_bn(mixed * depth_multiplier, out_channels)
        self.global_mlp = None
        if with_global:
            self.global_mlp = nn.Sequential(
                conv_elu_bn(3, out_channels // 4),
                conv_elu_bn(out_channels // 4, out_channels // 4))

    def _matrix(self, local: Tensor) -> Tensor:
        """X from local coordinates (B, 3, P, K) -> (B, P, K, K).

        Each convolution's K·K output channels are read as a K × K matrix
        (channel ``i·K + j`` is entry ``(i, j)``, as the reference code's
        reshape); the next, depthwise, convolution slides along its rows
        ``i`` with its columns ``j`` as the K channels, as TensorFlow's
        depthwise convolution does on the reference code's (P, K, K) layout.
        """
        batch, _, num, k = local.shape
        out = local
        for i, conv in enumerate(self.x_transform):
            if i > 0:  # (B, i, j, P) -> (B, j: channels, P, i: width)
                out = out.view(batch, k, k, num).permute(0, 2, 3, 1)
            out = conv(out)  # (B, K·K, P, 1)
        return out.view(batch, k, k, num).permute(0, 3, 1, 2)

    def forward(self, points: Tensor, features: Optional[Tensor],
                queries: Tensor) -> Tensor:
        """Features of the representative points.

        Args:
            points (Tensor): (B, N, 3) input points.
            features (Tensor, optional): (B, N, C_in) input features.
            queries (Tensor): (B, P, 3) representative points.

        Returns:
            Tensor: (B, P, out_channels).
        """
        index = self.knn(points, queries)  # (B, P, K)
        local = gather_neighbours(points, index) - queries.unsqueeze(2)
        local = local.permute(0, 3, 1, 2).contiguous()  # (B, 3, P, K)
        mixed = self.lift(local)
        if features is not None:
            nbr = gather_neighbours(features, index).permute(0, 3, 1, 2)
            mixed = torch.cat([mixed, nbr], dim=1)  # (B, C_mix, P, K)
        if self.x_transform is not None:
            matrix = self._matrix(local)  # (B, P, K, K)
            mixed = torch.matmul(matrix, mixed.permute(0, 2, 3, 1))
            mixed = mixed.permute(0, 3, 1, 2).contiguous()
        out = self.pointwise(self.depthwise(mixed)).squeeze(-1)  # (B, C, P)
        if self.global_mlp is not None:
            pos = queries.transpose(1, 2).unsqueeze(-1)  # (B, 3, P, 1)
            out = torch.cat([self.global_mlp(pos).squeeze(-1), out], dim=1)
        return out.transpose(1, 2)


@MODELS.register_module()
class PointCNN(BaseModule):
    """PointCNN classification backbone (Li et al., NeurIPS 2018).

    The defaults are the reference ModelNet40 setting (module docstring).
    ``forward`` returns the per-point features of the last fully connected
    layer; :class:`PointClassifier` averages them (``pool`` mode ``avg``)
    and a linear head classifies the average.

    Args:
        in_channels (int): Input channels, xyz first. Channels beyond xyz
            are lifted to ``channels[0] // 2`` by a dense layer and are the
            first layer's input features. Defaults to 3.
        num_points (Sequence[int]): Representative points per layer; -1 or
            a count at least as large as the layer's input keeps every
            input point. Defaults to (-1, 384, 128, 128).
        kernel_sizes (Sequence[int]): ``K`` per layer.
            Defaults to (8, 12, 16, 16).
        dilations (Sequence[int]): ``D`` per layer. Defaults to (1, 2, 2, 3).
        channels (Sequence[int]): ``C`` per layer.
            Defaults to (48, 96, 192, 384).
        with_global (bool): Global-position branch in the last layer.
            Defaults to True.
        with_x_transform (bool): Use X (False: the paper's "w/o X"
            ablation). Defaults to True.
        fc_channels (Sequence[int]): Per-point fully connected widths after
            the X-Conv layers. Defaults to (384, 192).
        fc_dropout (Sequence[float]): Dropout ratio after each of them.
            Defaults to (0.0, 0.8).
        sampling (str): ``'fps'`` (farthest point sampling) or ``'first'``
            (the first ``P`` points). Defaults to 'fps'.
        init_cfg (dict, optional): Initialization config.
    """

    def __init__(self,
                 in_channels: int = 3,
                 num_points: Sequence[int] = (-1, 384, 128, 128),
                 kernel_sizes: Sequence[int] = (8, 12, 16, 16),
                 dilations: Sequence[int] = (1, 2, 2, 3),
                 channels: Sequence[int] = (48, 96, 192, 384),
                 with_global: bool = True,
                 with_x_transform: bool = True,
                 fc_channels: Sequence[int] = (384, 192),
                 fc_dropout: Sequence[float] = (0.0, 0.8),
                 sampling: str = 'fps',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        lengths = {
            len(v)
            for v in (num_points, kernel_sizes, dilations, channels)
        }
        if len(lengths) != 1:
            raise ValueError(
                'PointCNN: num_points, kernel_sizes, dilations and channels '
                'need one entry per X-Conv layer; got lengths '
                f'{len(num_points)}, {len(kernel_sizes)}, {len(dilations)}, '
                f'{len(channels)}')
        if len(fc_dropout) != len(fc_channels):
            raise ValueError(f'PointCNN: fc_dropout needs one ratio per fc '
                             f'layer ({len(fc_channels)}), got '
                             f'{list(fc_dropout)}')
        if sampling not in SAMPLINGS:
            raise ValueError(f'PointCNN: sampling must be one of '
                             f'{SAMPLINGS}, got {sampling!r}')
        if in_channels < 3:
            raise ValueError(f'PointCNN needs xyz first: in_channels >= 3, '
                             f'got {in_channels}')
        self.in_channels = in_channels
        self.num_points = [int(p) for p in num_points]
        self.sampling = sampling
        # farthest point sampling (mmcv's D-FPS) for layers that sample
        self.samplers = nn.ModuleDict({
            str(i): PointsSampler([p])
            for i, p in enumerate(self.num_points)
            if p > 0 and sampling == 'fps'
        })
        self.feature_lift = None
        prev = 0
        if in_channels > 3:
            prev = channels[0] // 2
            self.feature_lift = conv_elu_bn(in_channels - 3, prev, dim=1)
        self.xconvs = nn.ModuleList()
        for i, (k, d, c) in enumerate(zip(kernel_sizes, dilations, channels)):
            if i == 0:
                lift = c // 2 if prev == 0 else c // 4
                multiplier = 4
            else:
                lift = channels[i - 1] // 4
                multiplier = math.ceil(c / channels[i - 1])
            conv = XConv(
                prev,
                c,
                lift,
                k,
                dilation=d,
                depth_multiplier=multiplier,
                with_x_transform=with_x_transform,
                with_global=with_global and i == len(channels) - 1)
            self.xconvs.append(conv)
            prev = conv.out_channels
        fcs: List[nn.Module] = []
        for width, ratio in zip(fc_channels, fc_dropout):
            fcs.append(conv_elu_bn(prev, width, dim=1))
            if ratio > 0:
                fcs.append(nn.Dropout(ratio))
            prev = width
        self.fcs = nn.Sequential(*fcs)
        self.out_channels = prev

    def _representatives(self, xyz: Tensor, layer: int) -> Tensor:
        """Indices (B, P) of a layer's representative points."""
        batch, num = xyz.shape[:2]
        count = self.num_points[layer]
        if count < 0 or count >= num:
            return torch.arange(
                num, device=xyz.device).unsqueeze(0).expand(batch, -1)
        if self.sampling == 'first':
            return torch.arange(
                count, device=xyz.device).unsqueeze(0).expand(batch, -1)
        return self.samplers[str(layer)](xyz.contiguous(), None).long()

    def forward(self, points: Tensor) -> Dict[str, object]:
        """Per-point features of the representative points.

        Args:
            points (Tensor): (B, N, in_channels), xyz first.

        Returns:
            dict: ``point_feats`` (B, C_fc, P) and ``layer_xyz`` (the input
            xyz and each layer's representatives, (B, P_i, 3)).
        """
        if points.dim() != 3 or points.shape[-1] != self.in_channels:
            raise ValueError(f'PointCNN expects points (B, N, '
                             f'{self.in_channels}), got '
                             f'{tuple(points.shape)}; check in_channels')
        xyz = points[..., :3].contiguous()
        features = None
        if self.feature_lift is not None:
            extra = points[..., 3:].transpose(1, 2).contiguous()
            features = self.feature_lift(extra).transpose(1, 2)
        layer_xyz = [xyz]
        for layer, conv in enumerate(self.xconvs):
            index = self._representatives(xyz, layer)
            queries = gather_neighbours(xyz, index.unsqueeze(-1)).squeeze(2)
            features = conv(xyz, features, queries)
            xyz = queries
            layer_xyz.append(xyz)
        feats = self.fcs(features.transpose(1, 2).contiguous())
        return dict(point_feats=feats, layer_xyz=layer_xyz)
