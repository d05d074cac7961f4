# Copyright (c) mmbinpc contributors. All rights reserved.
"""gather_points, grouping_operation, three_interpolate and their grads."""
import pytest
import torch
from torch.autograd import gradcheck

from mmbinpc.ops import (gather_points, gather_points_backward,
                         grouping_operation, grouping_operation_backward,
                         three_interpolate, three_interpolate_backward)
from .refs import gather_ref, group_ref, interp_ref


def _vjp(fn, inp, grad_out):
    inp = inp.detach().requires_grad_(True)
    fn(inp).backward(grad_out)
    return inp.grad


def test_gather_points_forward_and_backward():
    feats = torch.randn(2, 4, 9, dtype=torch.float64)
    idx = torch.tensor([[0, 3, 3, 8, 3], [1, 1, 2, 0, 7]], dtype=torch.int32)
    out = gather_points(feats, idx)
    assert torch.equal(out, gather_ref(feats, idx))
    grad_out = torch.randn_like(out)
    expected = _vjp(lambda f: gather_ref(f, idx), feats, grad_out)
    torch.testing.assert_close(
        gather_points_backward(grad_out, idx, 9), expected)
    # Repeated index 3 accumulates three gradient columns.
    torch.testing.assert_close(
        expected[0, :, 3],
        grad_out[0, :, 1] + grad_out[0, :, 2] + grad_out[0, :, 4])
    assert gradcheck(lambda f: gather_points(f, idx),
                     (feats.requires_grad_(), ))


def test_grouping_operation_forward_and_scatter_add_backward():
    feats = torch.randn(2, 3, 7, dtype=torch.float64)
    idx = torch.randint(0, 7, (2, 5, 4), dtype=torch.int32)
    idx[0, 0] = 2  # heavy repetition, as ball_query padding produces
    out = grouping_operation(feats, idx)
    assert out.shape == (2, 3, 5, 4)
    assert torch.equal(out, group_ref(feats, idx))
    grad_out = torch.randn_like(out)
    expected = _vjp(lambda f: group_ref(f, idx), feats, grad_out)
    torch.testing.assert_close(
        grouping_operation_backward(grad_out, idx, 7), expected)
    assert gradcheck(lambda f: grouping_operation(f, idx),
                     (feats.requires_grad_(), ))


def test_three_interpolate_forward_and_backward():
    feats = torch.randn(2, 5, 6, dtype=torch.float64)
    idx = torch.randint(0, 6, (2, 8, 3), dtype=torch.int32)
    idx[1, 0] = 4  # the same source three times
    weight = torch.rand(2, 8, 3, dtype=torch.float64)
    out = three_interpolate(feats, idx, weight)
    torch.testing.assert_close(out, interp_ref(feats, idx, weight))
    grad_out = torch.randn_like(out)
    expected = _vjp(lambda f: interp_ref(f, idx, weight), feats, grad_out)
    torch.testing.assert_close(
        three_interpolate_backward(grad_out, idx, weight, 6), expected)
    assert gradcheck(lambda f: three_interpolate(f, idx, weight),
                     (feats.requires_grad_(), ))


def test_index_errors_are_clear():
    feats = torch.randn(2, 3, 5)
    with pytest.raises(IndexError, match=r'0\.\.4'):
        gather_points(feats, torch.tensor([[0, 5], [1, 2]]))
    with pytest.raises(IndexError, match='indices'):
        grouping_operation(feats, -torch.ones(2, 1, 1, dtype=torch.int32))
    with pytest.raises(TypeError, match='integer'):
        gather_points(feats, torch.zeros(2, 2))
    with pytest.raises(ValueError, match='batch sizes differ'):
        grouping_operation(feats, torch.zeros(3, 1, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match=r'\(B, N, 3\)'):
        three_interpolate(feats, torch.zeros(2, 4, 2, dtype=torch.int32),
                          torch.rand(2, 4, 2))
