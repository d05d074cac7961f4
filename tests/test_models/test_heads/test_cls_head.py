# Copyright (c) mmbinpc contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmbinpc.models.heads import PointClsHead


def test_head_layers_and_logits():
    head = PointClsHead(16, 5, mid_channels=(8, 4), dropout=(0.0, 0.4))
    kinds = [type(m) for m in head.mlp]
    assert kinds == [
        nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU,
        nn.Dropout
    ]
    assert head(torch.randn(3, 16)).shape == (3, 5)
    with pytest.raises(ValueError, match='max\\+avg'):
        head(torch.randn(3, 8))


def test_head_loss_label_smoothing_and_weight():
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 1])
    plain = PointClsHead(8, 3).loss_by_logits(logits, labels)
    assert plain.item() == pytest.approx(
        F.cross_entropy(logits, labels).item())
    smooth = PointClsHead(8, 3, label_smoothing=0.2, loss_weight=2.0)
    assert smooth.loss_by_logits(logits, labels).item() == pytest.approx(
        2 * F.cross_entropy(logits, labels, label_smoothing=0.2).item())


def test_head_rejects_bad_config():
    with pytest.raises(ValueError, match='one ratio per hidden layer'):
        PointClsHead(8, 3, mid_channels=(4, 4), dropout=(0.1, ))
    with pytest.raises(ValueError, match='num_classes'):
        PointClsHead(8, 1)
