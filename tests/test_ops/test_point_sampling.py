# Copyright (c) mmbinpc contributors. All rights reserved.
"""furthest_point_sample(_with_dist) against a brute-force reference."""
import pytest
import torch

from mmbinpc.ops import furthest_point_sample, furthest_point_sample_with_dist
from .refs import fps_dist_ref, fps_ref


def test_fps_matches_reference_batched():
    xyz = torch.rand(3, 40, 3)
    out = furthest_point_sample(xyz, 12)
    assert out.dtype == torch.int32 and out.shape == (3, 12)
    assert torch.equal(out, fps_ref(xyz, 12))
    assert (out[:, 0] == 0).all()
    # Every pick is distinct while there are distinct points left.
    assert all(len(set(row.tolist())) == 12 for row in out)


def test_fps_ties_take_the_smallest_index():
    # Unit square corners plus duplicates: many equal distances.
    pts = torch.tensor([[0., 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0],
                        [0, 0, 0], [0.5, 0.5, 0]])
    xyz = torch.stack([pts, pts.flip(0)])
    out = furthest_point_sample(xyz, 6)
    assert torch.equal(out, fps_ref(xyz, 6))
    assert out[0].tolist()[:4] == [0, 3, 1, 2]


def test_fps_more_samples_than_distinct_points():
    xyz = torch.zeros(1, 5, 3)
    xyz[0, 2] = 1.0
    out = furthest_point_sample(xyz, 5)
    # After both distinct points are taken every distance is 0 -> index 0.
    assert out.tolist() == [[0, 2, 0, 0, 0]]
    assert torch.equal(out, fps_ref(xyz, 5))


def test_fps_edge_sizes():
    xyz = torch.rand(2, 6, 3)
    assert furthest_point_sample(xyz, 0).shape == (2, 0)
    assert furthest_point_sample(xyz, 1).tolist() == [[0], [0]]
    full = furthest_point_sample(xyz, 6)
    assert sorted(full[0].tolist()) == list(range(6))


def test_fps_with_dist_matches_reference_and_fps():
    xyz = torch.rand(2, 30, 3, dtype=torch.float64)
    dist = ((xyz[:, :, None] - xyz[:, None]).pow(2)).sum(-1)
    out = furthest_point_sample_with_dist(dist, 10)
    assert out.dtype == torch.int32
    assert torch.equal(out, fps_dist_ref(dist, 10))
    assert torch.equal(out, furthest_point_sample(xyz, 10))
    # Feature-space distances (what F-FPS passes) work the same way.
    feats = torch.rand(2, 30, 7)
    fdist = torch.cdist(feats, feats).square()
    assert torch.equal(
        furthest_point_sample_with_dist(fdist, 9), fps_dist_ref(fdist, 9))


def test_fps_rejects_bad_input():
    with pytest.raises(ValueError, match=r'\(B, N, 3\)'):
        furthest_point_sample(torch.rand(2, 5, 4), 2)
    with pytest.raises(TypeError, match='floating'):
        furthest_point_sample(torch.ones(2, 5, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match='non-negative'):
        furthest_point_sample(torch.rand(2, 5, 3), -1)
    with pytest.raises(ValueError, match='square'):
        furthest_point_sample_with_dist(torch.rand(2, 5, 4), 2)
