# Copyright (c) mmbinpc contributors. All rights reserved.
"""ball_query, knn and three_nn against brute-force references."""
import pytest
import torch

from mmbinpc.ops import ball_query, chunk_budget, chunking, knn, three_nn
from .refs import ball_query_ref, knn_ref, three_nn_ref


def _grid(batch=2):
    # Integer grid: exact squared distances and plenty of ties.
    g = torch.stack(
        torch.meshgrid(
            torch.arange(4.),
            torch.arange(3.),
            torch.arange(2.),
            indexing='ij'), -1)
    pts = g.reshape(-1, 3).double()
    return torch.stack([pts[torch.randperm(len(pts))] for _ in range(batch)])


@pytest.mark.parametrize('min_r,max_r,nsample', [(0., 1.5, 5), (1., 2., 8),
                                                 (0., 1.0, 3), (0.5, 1.0, 4)])
def test_ball_query_matches_reference_on_grid(min_r, max_r, nsample):
    xyz = _grid()
    center = xyz[:, ::3].contiguous()
    out = ball_query(min_r, max_r, nsample, xyz, center)
    assert out.dtype == torch.int32
    assert out.shape == (2, center.shape[1], nsample)
    assert torch.equal(out, ball_query_ref(min_r, max_r, nsample, xyz, center))


def test_ball_query_slot_rule_and_no_hit():
    xyz = torch.tensor([[[5., 0, 0], [0.1, 0, 0], [9, 9, 9], [0.2, 0, 0],
                         [0.3, 0, 0], [0.4, 0, 0]]])
    center = torch.tensor([[[0., 0, 0], [-50, 0, 0], [0.3, 0, 0]]])
    out = ball_query(0., 0.35, 4, xyz, center)
    # Hits of centre 0 in index order: 1, 3, 4 -> first hit fills slot 3.
    assert out[0, 0].tolist() == [1, 3, 4, 1]
    # No hit at all -> zeros.
    assert out[0, 1].tolist() == [0, 0, 0, 0]
    # min_r excludes the near points but d2 == 0 (the centre) is accepted.
    shell = ball_query(0.15, 0.35, 4, xyz, center)
    assert shell[0, 2].tolist() == [1, 4, 1, 1]
    assert torch.equal(shell, ball_query_ref(0.15, 0.35, 4, xyz, center))


def test_ball_query_random_float32_and_budget_chunks():
    xyz = torch.rand(3, 64, 3)
    center = torch.rand(3, 20, 3)
    ref = ball_query_ref(0.05, 0.3, 6, xyz, center)
    assert torch.equal(ball_query(0.05, 0.3, 6, xyz, center), ref)
    with chunk_budget(64 * 20):  # about one query row per block
        blocks = list(chunking.iter_blocks(3, 20, 64, 20))
        assert len(blocks) == 60
        assert torch.equal(ball_query(0.05, 0.3, 6, xyz, center), ref)


def test_iter_blocks_cover_everything_once():
    for budget in (1, 500, 5000, 10**9):
        with chunk_budget(budget):
            seen = torch.zeros(4, 11, dtype=torch.long)
            for bs, ms in chunking.iter_blocks(4, 11, 7, 10):
                seen[bs, ms] += 1
                if budget >= 7 * 10:
                    n_rows = (bs.stop - bs.start) * (ms.stop - ms.start)
                    assert n_rows * 7 * 10 <= budget
            assert (seen == 1).all()


def test_chunk_budget_setting_is_validated_and_restored():
    before = chunking.CHUNK_BYTES
    with chunk_budget(123):
        assert chunking.CHUNK_BYTES == 123
    assert chunking.CHUNK_BYTES == before
    with pytest.raises(ValueError, match='positive int'):
        chunking.set_chunk_bytes(0)


def test_ball_query_rejects_bad_input():
    xyz = torch.rand(2, 8, 3)
    with pytest.raises(ValueError, match='min_radius'):
        ball_query(0.5, 0.5, 4, xyz, xyz)
    with pytest.raises(ValueError, match='batch sizes differ'):
        ball_query(0., 0.5, 4, xyz, xyz[:1])
    with pytest.raises(ValueError, match=r'\(B, M, 3\)'):
        ball_query(0., 0.5, 4, xyz, torch.rand(2, 8, 2))


def test_knn_matches_reference_with_ties_and_k_equal_n():
    xyz = _grid()
    center = xyz[:, :7].contiguous()
    n = xyz.shape[1]
    for k in (1, 6, n):
        out = knn(k, xyz, center)
        assert out.dtype == torch.int32 and out.shape == (2, k, 7)
        assert torch.equal(out, knn_ref(k, xyz, center))


def test_knn_k_larger_than_n_pads_with_zero():
    xyz = torch.rand(2, 4, 3)
    out = knn(6, xyz, xyz)
    assert torch.equal(out, knn_ref(6, xyz, xyz))
    assert (out[:, 4:] == 0).all()


def test_knn_transposed_default_center_and_chunks():
    xyz = torch.rand(2, 30, 3)
    ref = knn_ref(5, xyz, xyz)
    assert torch.equal(knn(5, xyz), ref)
    assert torch.equal(
        knn(5,
            xyz.transpose(1, 2).contiguous(), None, True), ref)
    with chunk_budget(100):
        assert torch.equal(knn(5, xyz, xyz), ref)


def test_knn_in_feature_space():
    feats = torch.randn(2, 25, 9, dtype=torch.float64)
    out = knn(6, feats, feats)
    assert torch.equal(out, knn_ref(6, feats, feats))
    # float32: same neighbour distances as an exact float64 search.
    f32 = feats.float()
    got = knn(6, f32, f32).long()
    d = torch.cdist(feats, feats)
    ref_d = d.sort(-1).values[..., :6]
    got_d = d.gather(-1, got.transpose(1, 2))
    torch.testing.assert_close(got_d, ref_d, rtol=1e-5, atol=1e-5)


def test_knn_rejects_bad_input():
    xyz = torch.rand(2, 8, 3)
    with pytest.raises(ValueError, match='range'):
        knn(0, xyz)
    with pytest.raises(ValueError, match='range'):
        knn(100, xyz)
    with pytest.raises(ValueError, match='channels'):
        knn(2, xyz, torch.rand(2, 8, 4))
    bad = xyz.clone()
    bad[0, 1, 1] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        knn(2, bad)


def test_three_nn_matches_reference():
    target = _grid()
    source = target[:, ::2] + 0.5
    dist, idx = three_nn(target, source)
    ref_dist, ref_idx = three_nn_ref(target, source)
    assert idx.dtype == torch.int32 and dist.dtype == torch.float64
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(dist, ref_dist)
    t32, s32 = torch.rand(3, 20, 3), torch.rand(3, 9, 3)
    dist, idx = three_nn(t32, s32)
    ref_dist, ref_idx = three_nn_ref(t32, s32)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(dist, ref_dist.float())
    with chunk_budget(10):
        assert torch.equal(three_nn(t32, s32)[1], ref_idx)


def test_three_nn_with_fewer_than_three_sources():
    target = torch.rand(1, 4, 3)
    source = torch.rand(1, 2, 3)
    dist, idx = three_nn(target, source)
    assert (idx[..., 2] == 0).all()
    assert torch.isinf(dist[..., 2]).all()  # sqrt(1e40) in float32
    assert torch.equal(idx[..., :2], three_nn_ref(target, source)[1])


def test_stacked_ops_reject_mismatched_batch_counts():
    from mmbinpc.ops.gathering import stack_grouping_operation
    from mmbinpc.ops.neighbors import stack_ball_query
    xyz, centres = torch.rand(5, 3), torch.rand(3, 3)
    with pytest.raises(
            ValueError,
            match='xyz_batch_cnt has 2 items but '
            'center_xyz_batch_cnt has 1'):
        stack_ball_query(0.5, 4, xyz, centres, torch.tensor([2, 3]),
                         torch.tensor([3]))
    features = torch.rand(5, 4)
    idx = torch.zeros(3, 2, dtype=torch.int32)
    with pytest.raises(
            ValueError,
            match='features_batch_cnt has 2 items but '
            'indices_batch_cnt has 1'):
        stack_grouping_operation(features, idx, torch.tensor([2, 3]),
                                 torch.tensor([3]))
    # counts that do not add up to the stacked rows are named too
    with pytest.raises(ValueError, match='sum to the 5 stacked points'):
        stack_ball_query(0.5, 4, xyz, centres, torch.tensor([2, 2]),
                         torch.tensor([1, 2]))
