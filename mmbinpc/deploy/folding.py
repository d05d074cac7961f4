# Copyright (c) mmbinpc contributors. All rights reserved.
"""Folding an eval-mode BatchNorm into the layer before it.

One formula for the exporter and the plan engine. It is computed in float64
(torch's ``fuse_conv_bn_weights`` works in the weights' dtype), so folded
FP32 layers and the integer thresholds derived from them match the PyTorch
model's eval-mode arithmetic as closely as float32 allows.
"""
from typing import Tuple

import torch
from torch import Tensor, nn


def bn_affine(bn: nn.Module) -> Tuple[Tensor, Tensor]:
    """Eval-mode BatchNorm as ``y = x * scale + shift`` per channel (float64).

    Args:
        bn (nn.Module): A BatchNorm with running statistics.

    Returns:
        tuple[Tensor, Tensor]: ``(scale, shift)``, each (C,) float64.

    Raises:
        ValueError: If the BatchNorm keeps no running statistics.
    """
    if not bn.track_running_stats or bn.running_mean is None:
        raise ValueError(f'{type(bn).__name__} without running statistics '
                         'cannot be folded; train it with '
                         'track_running_stats=True')
    scale = torch.rsqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def fold_bn(weight: Tensor,
            bias: Tensor,
            bn: nn.Module,
            out_dim: int = 0) -> Tuple[Tensor, Tensor]:
    """Weight and bias of a layer followed by ``bn``, as one layer.

    Args:
        weight (Tensor): The layer's weight; its output channels along
            ``out_dim``.
        bias (Tensor): Its bias (C,) (zeros for a layer without one).
        bn (nn.Module): The BatchNorm after it.
        out_dim (int): Axis of ``weight`` holding the output channels
            (0 for torch layouts, 1 for a transposed ``(C_in, C_out)``).

    Returns:
        tuple[Tensor, Tensor]: Folded ``(weight, bias)`` in float64.
    """
    scale, shift = bn_affine(bn)
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    folded = weight.detach().double() * scale.reshape(shape)
    return folded, bias.detach().double() * scale + shift
