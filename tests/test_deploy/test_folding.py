# Copyright (c) mmbinpc contributors. All rights reserved.
"""BatchNorm folding gives the eval-mode output of layer + BatchNorm."""
import pytest
import torch
from torch import nn

from mmbinpc.deploy.folding import bn_affine, fold_bn


def _bn(channels, affine=True):
    bn = nn.BatchNorm1d(channels, affine=affine).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    if affine:
        bn.weight.data.uniform_(-2, 2)
        bn.bias.data.uniform_(-1, 1)
    return bn


@pytest.mark.parametrize('affine', [True, False])
def test_folded_conv_equals_conv_then_bn(affine):
    conv = nn.Conv1d(5, 4, 1).double()
    bn = _bn(4, affine).double()
    x = torch.randn(3, 5, 7, dtype=torch.float64)
    weight, bias = fold_bn(conv.weight, conv.bias, bn)
    torch.testing.assert_close(
        nn.functional.conv1d(x, weight, bias), bn(conv(x)))
    # the same with the weight transposed (C_in, C_out), as the plan holds it
    weight_t, bias_t = fold_bn(conv.weight[..., 0].t(), conv.bias, bn, 1)
    torch.testing.assert_close(weight_t, weight[..., 0].t())
    torch.testing.assert_close(bias_t, bias)


def test_affine_and_missing_statistics():
    bn = _bn(3)
    scale, shift = bn_affine(bn)
    x = torch.randn(6, 3)
    torch.testing.assert_close((x.double() * scale + shift).float(), bn(x))
    with pytest.raises(ValueError, match='running statistics'):
        bn_affine(nn.BatchNorm1d(3, track_running_stats=False))
