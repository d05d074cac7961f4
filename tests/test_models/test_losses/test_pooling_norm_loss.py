# Copyright (c) mmbinpc contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch
from mmdet3d.registry import MODELS

from mmbinpc.models.losses import (REG_NORMS, PoolingNormLoss, matrix_norm,
                                   pooling_norm)

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


# --- gradients ---------------------------------------------------------
# References below use NumPy in float64 and the textbook formulas; none calls
# matrix_norm or pooling_norm.


def _np_norm(h: np.ndarray, norm: str) -> float:
    """Table 1 norm of one matrix, computed with NumPy."""
    a = np.abs(h)
    if norm == 'fro':
        return float(np.sqrt((h * h).sum()))
    if norm == '1':
        return float(a.sum(axis=0).max())
    if norm == 'inf':
        return float(a.sum(axis=1).max())
    if norm == 'l1':
        return float(a.sum())
    sv = np.linalg.svd(h, compute_uv=False)
    return float(sv[0] if norm == '2' else sv.sum())


def _np_dual_norm(g: np.ndarray, norm: str) -> float:
    """Dual norm ``sup{<G, H> : ||H|| <= 1}`` of the Table 1 norm.

    The unit ball of the max-column-sum norm is a product of per-column l1
    balls, so its dual is the sum over columns of the column's largest
    ``|g_ij|`` (rows for 'inf'); l1 and max-abs are dual; the spectral and
    nuclear norms are dual; the Frobenius norm is self-dual.
    """
    a = np.abs(g)
    if norm == 'fro':
        return float(np.sqrt((g * g).sum()))
    if norm == '1':
        return float(a.max(axis=0).sum())
    if norm == 'inf':
        return float(a.max(axis=1).sum())
    if norm == 'l1':
        return float(a.max())
    sv = np.linalg.svd(g, compute_uv=False)
    return float(sv.sum() if norm == '2' else sv[0])


def _assert_subgradient(g: np.ndarray, h: np.ndarray, norm: str) -> None:
    """Assert ``G`` lies in the subdifferential of the norm at ``H``.

    ``G`` is a subgradient of a norm at ``H`` iff ``<G, H> = ||H||`` and the
    dual norm of ``G`` is at most 1. At ``H != 0`` a zero or sign-flipped
    ``G`` gives ``<G, H> <= 0 < ||H||`` and fails.
    """
    assert float((g * h).sum()) == pytest.approx(_np_norm(h, norm), abs=1e-9)
    assert _np_dual_norm(g, norm) <= 1 + 1e-9


def _np_smooth_gradient(h: np.ndarray, norm: str) -> np.ndarray:
    """Gradient of the norm at a point where it is differentiable."""
    sign = np.sign(h)
    if norm == 'fro':
        return h / np.sqrt((h * h).sum())
    if norm == 'l1':
        return sign
    if norm == '1':
        mask = np.zeros_like(h)
        mask[:, np.abs(h).sum(axis=0).argmax()] = 1
        return sign * mask
    if norm == 'inf':
        mask = np.zeros_like(h)
        mask[np.abs(h).sum(axis=1).argmax(), :] = 1
        return sign * mask
    u, _, vt = np.linalg.svd(h, full_matrices=False)
    if norm == '2':
        return np.outer(u[:, 0], vt[0])
    return u @ vt  # nuclear


def _student_grad(student: torch.Tensor, teacher: torch.Tensor,
                  norm: str) -> np.ndarray:
    """Gradient of ``pooling_norm`` w.r.t. the student; checks the teacher
    gets none."""
    student = student.clone().requires_grad_()
    teacher = teacher.clone().requires_grad_()
    loss = pooling_norm(student, teacher, norm)
    loss.backward()
    assert teacher.grad is None
    assert torch.isfinite(student.grad).all()
    return student.grad.numpy()


# Global shape (B, C) and local shapes (B, C, N) with C < N and C > N.
GRAD_SHAPES = [(4, 5), (3, 4, 6), (2, 5, 3)]


@pytest.mark.parametrize('norm', REG_NORMS)
@pytest.mark.parametrize('shape', GRAD_SHAPES)
def test_gradcheck_generic_inputs(norm, shape):
    # Generic random inputs: no ties, no zero entries, distinct singular
    # values, so every norm is differentiable and central differences apply.
    teacher = torch.randn(shape, dtype=torch.float64)
    student = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda s: pooling_norm(s, teacher, norm), (student, ),
        eps=1e-6,
        atol=1e-7,
        rtol=1e-5)


@pytest.mark.parametrize('norm', REG_NORMS)
@pytest.mark.parametrize('shape', GRAD_SHAPES)
def test_gradient_matches_closed_form(norm, shape):
    teacher = torch.randn(shape, dtype=torch.float64)
    student = torch.randn(shape, dtype=torch.float64)
    grad = _student_grad(student, teacher, norm)
    diff = (student - teacher).numpy()
    b = shape[0]
    if len(shape) == 2:  # one B x C matrix divided by B**e
        e = {
            'fro': .5,
            '1': 1.,
            '2': .5,
            'l1': 1.,
            'nuclear': .5,
            'inf': 0.
        }[norm]
        want = _np_smooth_gradient(diff, norm) / b**e
        _assert_subgradient(grad * b**e, diff, norm)
    else:  # one C x N matrix per sample, batch mean
        want = np.stack([_np_smooth_gradient(d, norm) for d in diff]) / b
        for g, d in zip(grad, diff):
            _assert_subgradient(g * b, d, norm)
    np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-12)


# Degenerate differences H (student - teacher), with the subgradient the
# code returns derived by hand (module docstring, "Gradients and
# subgradients"). Entries are small integers so that teacher + H - teacher
# is exact in float64 and the ties survive.
#
# TIE: abs column sums 3, 3, 3, 2 (three tied columns, column 2 holds two
# zeros); abs row sums 3, 4, 4 (two tied rows); sum of squares 21.
TIE = np.array([[2., -1., 0., 0.], [-1., 2., 0., 1.], [0., 0., -3., 1.]])
REPEATED = np.hstack([np.eye(4), np.zeros((4, 2))])  # sigma = 1, 1, 1, 1
RANK1 = np.ones((4, 6))  # sigma = sqrt(24), 0, 0, 0
CASES = {
    'zero': np.zeros((3, 5)),
    'tie': TIE,
    'repeated': REPEATED,
    'rank1': RANK1
}


def _hand_subgradient(case: str, norm: str) -> np.ndarray:
    """The subgradient the code returns where it is unique or pinned by the
    tie rule (``None`` where it depends on LAPACK's choice of basis)."""
    h = CASES[case]
    if case == 'zero':
        return None if norm in ('2', 'nuclear') else np.zeros_like(h)
    if case == 'tie':
        tie = {
            # columns 0-2 tie: sign / 3 there, column 3 gets nothing
            '1': np.array([[1, -1, 0, 0], [-1, 1, 0, 0], [0, 0, -1, 0]]) / 3,
            # rows 1 and 2 tie: sign / 2 there, row 0 gets nothing
            'inf': np.array([[0, 0, 0, 0], [-1, 1, 0, 1], [0, 0, -1, 1]]) / 2,
            'l1': np.array([[1, -1, 0, 0], [-1, 1, 0, 1], [0, 0, -1, 1]]),
            'fro': TIE / np.sqrt(21.),
        }
        return tie.get(norm)  # '2'/'nuclear': distinct sigma, smooth point
    if case == 'repeated':
        return {
            'fro': REPEATED / 2.,  # ||H||_F = 2
            '1': REPEATED / 4.,  # four tied unit columns, two zero columns
            'inf': REPEATED / 4.,  # four tied unit rows
            'l1': REPEATED,
            'nuclear': REPEATED,  # full rank 4: U V^T = [I 0] is unique
            '2': None,  # any [S 0], S >= 0, tr S = 1
        }[norm]
    # rank1: u = 1/2, v = 1/sqrt(6); sigma_1 = sqrt(24)
    return {
        'fro': RANK1 / np.sqrt(24.),
        '1': RANK1 / 6.,  # six tied columns
        'inf': RANK1 / 4.,  # four tied rows
        'l1': RANK1,
        '2': RANK1 / np.sqrt(24.),  # sigma_1 is simple: u v^T is unique
        'nuclear': None,  # u v^T + W, W arbitrary off the range
    }[norm]


def _check_degenerate(g: np.ndarray, case: str, norm: str) -> None:
    """Check one matrix's (unscaled) gradient against the hand value."""
    h = CASES[case]
    _assert_subgradient(g, h, norm)
    want = _hand_subgradient(case, norm)
    if want is not None:
        np.testing.assert_allclose(g, want, atol=1e-12)
    if case == 'tie' and norm in ('2', 'nuclear'):
        # distinct non-zero singular values (3.2531, 3, 1.1906): smooth
        u, _, vt = np.linalg.svd(h, full_matrices=False)
        want = np.outer(u[:, 0], vt[0]) if norm == '2' else u @ vt
        np.testing.assert_allclose(g, want, atol=1e-9)
    sv = np.linalg.svd(g, compute_uv=False)
    if case == 'zero' and norm == '2':
        # u1 v1^T for LAPACK's bases: rank one with unit singular value
        np.testing.assert_allclose(sv, [1] + [0] * (len(sv) - 1), atol=1e-9)
    if case == 'zero' and norm == 'nuclear':
        # U V^T for LAPACK's bases: a partial isometry of full rank
        np.testing.assert_allclose(sv, np.ones_like(sv), atol=1e-9)
    if case == 'repeated' and norm == '2':
        s = g[:, :4]
        np.testing.assert_allclose(g[:, 4:], 0, atol=1e-12)
        np.testing.assert_allclose(s, s.T, atol=1e-9)
        assert np.trace(s) == pytest.approx(1.0)
        assert np.linalg.eigvalsh((s + s.T) / 2).min() >= -1e-9
    if case == 'rank1' and norm == 'nuclear':
        u = np.full(4, .5)
        v = np.full(6, 1 / np.sqrt(6.))
        np.testing.assert_allclose(g @ v, u, atol=1e-9)  # G v = u
        np.testing.assert_allclose(u @ g, v, atol=1e-9)  # u^T G = v^T
        w = g - np.outer(u, v)  # the part off the range of H
        assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(1.0)


@pytest.mark.parametrize('norm', REG_NORMS)
@pytest.mark.parametrize('case', list(CASES))
def test_subgradient_at_degenerate_inputs(norm, case):
    h = CASES[case]
    # local (B, C, N): every sample's C x N difference is H, batch mean /B
    teacher = torch.randint(-8, 8, (2, ) + h.shape).double() / 4
    student = teacher + torch.from_numpy(h)
    if case == 'zero':
        teacher = torch.randn(2, *h.shape, dtype=torch.float64)
        student = teacher.clone()  # student == teacher exactly
    want_diff = torch.from_numpy(h).expand(2, -1, -1)
    assert torch.equal(student - teacher, want_diff)
    grad = _student_grad(student, teacher, norm)
    for g in grad:
        _check_degenerate(g * 2, case, norm)
    # global (B, C): H is the B x C matrix itself, divided by B**e
    e = {'fro': .5, '1': 1., '2': .5, 'l1': 1., 'nuclear': .5, 'inf': 0.}[norm]
    teacher = torch.randint(-8, 8, h.shape).double() / 4
    grad = _student_grad(teacher + torch.from_numpy(h), teacher, norm)
    _check_degenerate(grad * h.shape[0]**e, case, norm)


def test_module_reduction_weight_and_errors():
    s = [torch.randn(2, 3), torch.randn(2, 3, 5)]
    t = [torch.randn(2, 3), torch.randn(2, 3, 5)]
    per = [pooling_norm(a, b, 'fro') for a, b in zip(s, t)]
    mean = MODELS.build(
        dict(type='PoolingNormLoss', norm='fro', loss_weight=0.5))
    assert mean(s, t).item() == pytest.approx(0.5 * (per[0] + per[1]) / 2)
    total = PoolingNormLoss('fro', reduction='sum')
    assert total(s, t).item() == pytest.approx(float(per[0] + per[1]))
    with pytest.raises(ValueError, match="'fro', '1', '2', 'l1'"):
        PoolingNormLoss('frobenius')
    with pytest.raises(
            ValueError, match="site 'a.pool'.*\\(2, 3\\).*\\(2, 4\\)"):
        mean([torch.randn(2, 3)], [torch.randn(2, 4)], names=['a.pool'])
