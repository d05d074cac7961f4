# Copyright (c) mmbinpc contributors. All rights reserved.
import math

import pytest
import torch

from mmbinpc.experiments.runner import load_tool


def test_soft_target_stats_by_hand():
    stats = load_tool('analysis/soft_targets').soft_target_stats
    # two clouds, three classes, class 2 never a label
    logits = torch.tensor([[0.0, math.log(3.0), 0.0],
                           [math.log(2.0), 0.0, 0.0]])
    labels = torch.tensor([1, 0])
    got = stats(logits, labels, 1.0)
    # cloud 0: p = (1, 3, 1) / 5; cloud 1: p = (2, 1, 1) / 4
    assert got['p_label_mean'] == pytest.approx((0.6 + 0.5) / 2)
    h0 = -(2 * 0.2 * math.log(0.2) + 0.6 * math.log(0.6))
    h1 = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert got['entropy_mean'] == pytest.approx((h0 + h1) / 2)
    assert got['absent_mass_mean'] == pytest.approx((0.2 + 0.25) / 2)
    # T = 2 halves the logits: cloud 0 becomes (1, sqrt 3, 1) / (2 + sqrt 3)
    got = stats(logits, labels, 2.0)
    p0 = math.sqrt(3.0) / (2 + math.sqrt(3.0))
    p1 = math.sqrt(2.0) / (2 + math.sqrt(2.0))
    assert got['p_label_mean'] == pytest.approx((p0 + p1) / 2)
    with pytest.raises(ValueError, match='temperature must be > 0'):
        stats(logits, labels, 0.0)
