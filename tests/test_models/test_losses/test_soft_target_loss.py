# Copyright (c) mmbinpc contributors. All rights reserved.
import math

import pytest
import torch
from mmdet3d.registry import MODELS

from mmbinpc.models.losses import SoftTargetLoss, soft_target_loss


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_hand_computed_with_temperature():
    s = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 2.0]])
    t = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
    for temp in (1.0, 2.0, 4.0):
        expected = sum(
            _kl(
                _softmax([x / temp for x in t[i].tolist()]),
                _softmax([x / temp for x in s[i].tolist()])) for i in range(2))
        expected = temp**2 * expected / 2  # T^2 * batch mean
        got = soft_target_loss(s, t, temperature=temp)
        assert got.item() == pytest.approx(expected, rel=1e-5)


def test_zero_when_matching_and_teacher_detached():
    s = torch.randn(4, 5, requires_grad=True)
    t = s.detach().clone().requires_grad_()
    loss = soft_target_loss(s, t)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    (soft_target_loss(s, t + 1.0 * torch.arange(5.))).backward()
    assert s.grad is not None and t.grad is None


def test_gradient_scales_as_temperature_times_prob_gap():
    # d/ds [T^2 KL] = T (p_s - p_t) per sample, divided by the batch size.
    s = torch.tensor([[0.0, 1.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0]])
    temp = 3.0
    soft_target_loss(s, t, temp).backward()
    p_s = torch.softmax(s.detach() / temp, 1)
    p_t = torch.softmax(t / temp, 1)
    assert torch.allclose(s.grad, temp * (p_s - p_t), atol=1e-6)


def test_per_point_with_ignore_index():
    s = torch.randn(2, 4, 5)
    t = torch.randn(2, 4, 5)
    labels = torch.tensor([[0, 13, 2, 3, 13], [13, 1, 1, 0, 2]])
    kept = []
    for b in range(2):
        for n in range(5):
            if labels[b, n] != 13:
                kept.append(
                    _kl(
                        _softmax((t[b, :, n] / 2).tolist()),
                        _softmax((s[b, :, n] / 2).tolist())))
    expected = 4.0 * sum(kept) / len(kept)
    got = soft_target_loss(s, t, 2.0, labels=labels, ignore_index=13)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # everything ignored -> 0 with a gradient path
    s.requires_grad_()
    zero = soft_target_loss(s, t, 2.0, torch.full((2, 5), 13), 13)
    zero.backward()
    assert zero.item() == 0.0 and torch.all(s.grad == 0)


def test_module_weight_and_errors():
    loss = MODELS.build(
        dict(type='SoftTargetLoss', temperature=2.0, loss_weight=0.25))
    assert isinstance(loss, SoftTargetLoss)
    s, t = torch.randn(3, 4), torch.randn(3, 4)
    assert loss(s, t).item() == pytest.approx(
        0.25 * soft_target_loss(s, t, 2.0).item())
    with pytest.raises(ValueError, match='temperature'):
        soft_target_loss(s, t, 0.0)
    with pytest.raises(ValueError, match='differ in shape'):
        soft_target_loss(s, torch.randn(3, 5))
