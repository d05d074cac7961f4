# Copyright (c) mmbinpc contributors. All rights reserved.
import math

import pytest
import torch

from mmbinpc.models.losses import (REG_NORMS, PoolingNormLoss, matrix_norm,
                                   pooling_norm)
from mmdet3d.registry import MODELS

# H = [[1, -2, 0], [3, 4, -1]]: column abs sums 4, 6, 1; row abs sums 3, 8;
# entry abs sum 11; sum of squares 31; H H^T = [[5, -5], [-5, 26]].
H = torch.tensor([[1., -2., 0.], [3., 4., -1.]])
_EIG = [(31 + math.sqrt(21**2 + 4 * 25)) / 2,
        (31 - math.sqrt(21**2 + 4 * 25)) / 2]
HAND = {
    'fro': math.sqrt(31.0),
    '1': 6.0,
    'inf': 8.0,
    'l1': 11.0,
    '2': math.sqrt(_EIG[0]),
    'nuclear': math.sqrt(_EIG[0]) + math.sqrt(_EIG[1]),
}


@pytest.mark.parametrize('norm', REG_NORMS)
def test_each_norm_by_hand(norm):
    assert matrix_norm(H, norm).item() == pytest.approx(HAND[norm], rel=1e-5)


@pytest.mark.parametrize('norm', REG_NORMS)
def test_global_feature_is_one_batch_matrix_scaled(norm):
    # Global (B, C): one B x C matrix divided by B**e.
    e = {'fro': .5, '1': 1., '2': .5, 'l1': 1., 'nuclear': .5, 'inf': 0.}[norm]
    teacher = torch.randn(2, 3)
    got = pooling_norm(teacher + H, teacher, norm)
    assert got.item() == pytest.approx(HAND[norm] / 2**e, rel=1e-5)
    # B identical rows give the same value as one row (batch-size invariance)
    row = torch.tensor([[1., -2., 3.]])
    one = pooling_norm(row, torch.zeros_like(row), norm)
    many = pooling_norm(row.repeat(5, 1), torch.zeros(5, 3), norm)
    assert many.item() == pytest.approx(one.item(), rel=1e-5)
    # (B, C, 1) is treated as global too
    same = pooling_norm((teacher + H)[..., None], teacher[..., None], norm)
    assert same.item() == pytest.approx(got.item(), rel=1e-6)


@pytest.mark.parametrize('norm', REG_NORMS)
def test_local_output_is_per_sample_matrix_averaged(norm):
    # (B, C, N): one C x N matrix per sample, mean over the batch.
    diff = torch.stack([H, 2 * H])  # (2, 2, 3)
    got = pooling_norm(diff, torch.zeros_like(diff), norm)
    assert got.item() == pytest.approx(1.5 * HAND[norm], rel=1e-5)
    # trailing axes are flattened: (B, C, N, 1) == (B, C, N)
    got4 = pooling_norm(diff[..., None], torch.zeros(2, 2, 3, 1), norm)
    assert got4.item() == pytest.approx(got.item(), rel=1e-6)


@pytest.mark.parametrize('norm', REG_NORMS)
@pytest.mark.parametrize('case', ['zero', 'repeated', 'rank1'])
def test_gradients_finite_for_degenerate_inputs(norm, case):
    teacher = torch.randn(3, 4, 6)
    delta = {
        'zero': torch.zeros(3, 4, 6),
        'repeated': torch.cat([torch.eye(4), torch.zeros(4, 2)], 1).repeat(
            3, 1, 1),
        'rank1': torch.ones(3, 4, 6),
    }[case]
    student = (teacher + delta).requires_grad_()
    loss = pooling_norm(student, teacher, norm)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    glob = torch.zeros(4, 5, requires_grad=True)
    pooling_norm(glob, torch.zeros(4, 5), norm).backward()
    assert torch.isfinite(glob.grad).all()


def test_module_reduction_weight_and_errors():
    s = [torch.randn(2, 3), torch.randn(2, 3, 5)]
    t = [torch.randn(2, 3), torch.randn(2, 3, 5)]
    per = [pooling_norm(a, b, 'fro') for a, b in zip(s, t)]
    mean = MODELS.build(dict(type='PoolingNormLoss', norm='fro',
                             loss_weight=0.5))
    assert mean(s, t).item() == pytest.approx(0.5 * (per[0] + per[1]) / 2)
    total = PoolingNormLoss('fro', reduction='sum')
    assert total(s, t).item() == pytest.approx(float(per[0] + per[1]))
    with pytest.raises(ValueError, match="'fro', '1', '2', 'l1'"):
        PoolingNormLoss('frobenius')
    with pytest.raises(ValueError,
                       match="site 'a.pool'.*\\(2, 3\\).*\\(2, 4\\)"):
        mean([torch.randn(2, 3)], [torch.randn(2, 4)], names=['a.pool'])
