# Copyright (c) mmbinpc contributors. All rights reserved.
"""The compiled neighbour queries give exactly the brute-force results at
sizes the reference tests do not reach, ties included."""
import pytest
import torch

from mmbinpc.ops import ball_query, knn, three_nn
from mmbinpc.ops.neighbors import (get_backend, set_backend, stack_ball_query,
                                   use_backend)


def _both(fn):
    with use_backend('brute_force'):
        ref = fn()
    with use_backend('compiled'):
        got = fn()
    return ref, got


def _clouds(batch, size, quantised, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    xyz = torch.rand(batch, size, 3, generator=gen, dtype=dtype)
    if quantised:  # a coarse grid: many exactly equal distances and points
        xyz = torch.round(xyz * 8) / 8
    return xyz


@pytest.mark.parametrize('quantised', [False, True])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_xyz_queries_agree(quantised, dtype):
    xyz = _clouds(2, 1500, quantised, 1, dtype)
    centers = xyz[:, ::3].contiguous()
    for k in (1, 16, 40):
        ref, got = _both(lambda: knn(k, xyz, centers))
        assert torch.equal(ref, got), k
    ref, got = _both(lambda: three_nn(xyz, centers))
    assert torch.equal(ref[1], got[1]) and torch.equal(ref[0], got[0])
    for lo, hi, n in ((0.0, 0.1, 8), (0.05, 0.3, 32), (0.0, 2.0, 64)):
        ref, got = _both(lambda: ball_query(lo, hi, n, xyz, centers))
        assert torch.equal(ref, got), (lo, hi, n)


def test_far_and_degenerate_queries_agree():
    xyz = _clouds(2, 600, False, 7)
    far = torch.tensor([[1e20, -1e20, 3.0],
                        [-5e3, 2.0, 7e3]]).expand(2, 2, 3).contiguous()
    ref, got = _both(lambda: knn(9, xyz, far))
    assert torch.equal(ref, got)
    ref, got = _both(lambda: three_nn(far, xyz))
    assert torch.equal(ref[1], got[1]) and torch.equal(ref[0], got[0])
    same = torch.full((1, 50, 3), 0.25)  # every point at one place
    ref, got = _both(lambda: knn(12, same, same[:, :5].contiguous()))
    assert torch.equal(ref, got)
    assert got[0, :, 0].tolist() == list(range(12))  # ties: smallest index


def test_feature_knn_agrees_with_ties():
    gen = torch.Generator().manual_seed(2)
    feats = torch.randint(-2, 3, (2, 64, 700), generator=gen).float()
    for k in (1, 20, 99):
        ref, got = _both(lambda: knn(k, feats, transposed=True))
        assert torch.equal(ref, got), k


def test_more_neighbours_than_points_and_empty_queries():
    xyz = _clouds(2, 5, False, 3)
    ref, got = _both(lambda: knn(8, xyz))
    assert torch.equal(ref, got) and (got[:, 5:] == 0).all()
    ref, got = _both(lambda: three_nn(xyz, xyz[:, :2].contiguous()))
    assert torch.equal(ref[1], got[1])
    assert torch.isinf(got[0][..., 2]).all()
    empty = xyz[:, :0]
    ref, got = _both(lambda: ball_query(0, 0.5, 4, xyz, empty))
    assert got.shape == (2, 0, 4) and torch.equal(ref, got)


def test_stacked_ball_query_agrees():
    xyz = _clouds(1, 900, True, 4)[0]
    counts = torch.tensor([400, 500], dtype=torch.int32)
    centers = torch.cat([xyz[:400:7], xyz[400::5], torch.full((3, 3), 9.0)])
    center_counts = torch.tensor([58, 100 + 3], dtype=torch.int32)
    ref, got = _both(
        lambda: stack_ball_query(0.2, 16, xyz, centers, counts, center_counts))
    assert torch.equal(ref, got)
    assert (got[-3:, 0] == -1).all()  # centres far from every point


def test_backend_switch():
    assert get_backend() in ('compiled', 'brute_force')
    previous = set_backend('brute_force')
    try:
        with use_backend('compiled'):
            assert get_backend() == 'compiled'
        assert get_backend() == 'brute_force'
        with pytest.raises(ValueError, match='valid: compiled, brute_force'):
            set_backend('cuda')
    finally:
        set_backend(previous)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_furthest_point_sample_agrees(dtype):
    from mmbinpc.ops import furthest_point_sample
    for quantised in (False, True):  # a coarse grid: many equal maxima
        xyz = _clouds(3, 2000, quantised, 5, dtype)
        ref, got = _both(lambda: furthest_point_sample(xyz, 300))
        assert torch.equal(ref, got), quantised
    xyz = _clouds(2, 10, False, 6, dtype)  # more samples than points
    ref, got = _both(lambda: furthest_point_sample(xyz, 16))
    assert torch.equal(ref, got)
