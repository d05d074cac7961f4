# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmcv's own point-op Functions run on CPU tensors after ``import mmbinpc``.

Everything here calls mmcv's public names (bound before or after the patch)
and checks the result against the brute-force references.
"""
import pytest
import torch
from mmcv.ops import (GroupAll, PointsSampler, QueryAndGroup, ball_query,
                      furthest_point_sample, furthest_point_sample_with_dist,
                      gather_points, grouping_operation, knn,
                      three_interpolate, three_nn)
from mmcv.ops.knn import KNN
from torch.autograd import gradcheck

import mmbinpc.ops as ops
from .refs import (ball_query_ref, fps_dist_ref, fps_ref, gather_ref,
                   group_ref, interp_ref, knn_ref, stack_ball_query_ref,
                   stack_group_ref, three_nn_ref)


def test_patch_is_installed_and_idempotent():
    assert ops.is_patched()
    forward = KNN.__dict__['forward']
    ops.patch_mmcv_point_ops()
    ops.patch_mmcv_point_ops()
    assert KNN.__dict__['forward'] is forward
    # The name mmdet3d imported is KNN.apply, which reads KNN.forward.
    assert knn.__self__ is KNN


def test_unpatch_restores_and_repatch_works():
    xyz = torch.rand(1, 10, 3)
    try:
        ops.unpatch_mmcv_point_ops()
        assert not ops.is_patched()
        with pytest.raises(Exception):  # mmcv has no CPU kernel for it
            knn(2, xyz, xyz)
    finally:
        ops.patch_mmcv_point_ops()
    assert ops.is_patched()
    assert torch.equal(knn(2, xyz, xyz), knn_ref(2, xyz, xyz))


def test_non_cpu_tensors_keep_mmcv_original_path():
    # No GPU here: 'meta' tensors stand in for CUDA ones. They must reach
    # mmcv's own code (which then fails for lack of a kernel), not ours.
    xyz = torch.rand(1, 8, 3, device='meta')
    idx = torch.zeros(1, 2, dtype=torch.int32, device='meta')
    with pytest.raises(TypeError, match='torch.cuda.IntTensor'):
        furthest_point_sample(xyz, 2)
    with pytest.raises(RuntimeError, match='gather_points_forward_impl'):
        gather_points(xyz.transpose(1, 2).contiguous(), idx)


def test_sampling_and_queries_through_mmcv():
    xyz = torch.rand(2, 48, 3)
    center = xyz[:, :12].contiguous()
    assert torch.equal(furthest_point_sample(xyz, 10), fps_ref(xyz, 10))
    dist = torch.cdist(xyz, xyz).square()
    assert torch.equal(
        furthest_point_sample_with_dist(dist, 10), fps_dist_ref(dist, 10))
    assert torch.equal(
        ball_query(0.05, 0.3, 6, xyz, center),
        ball_query_ref(0.05, 0.3, 6, xyz, center))
    out = knn(5,
              xyz.transpose(1, 2).contiguous(),
              center.transpose(1, 2).contiguous(), True)
    assert out.dtype == torch.int32
    assert torch.equal(out, knn_ref(5, xyz, center))
    dist, idx = three_nn(xyz, center)
    ref_dist, ref_idx = three_nn_ref(xyz, center)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(dist, ref_dist.float())


def test_gathering_through_mmcv_with_gradcheck():
    feats = torch.randn(2, 3, 9, dtype=torch.float64, requires_grad=True)
    idx2 = torch.randint(0, 9, (2, 5), dtype=torch.int32)
    idx3 = torch.randint(0, 9, (2, 4, 6), dtype=torch.int32)
    idx_nn = torch.randint(0, 9, (2, 7, 3), dtype=torch.int32)
    weight = torch.rand(2, 7, 3, dtype=torch.float64)
    assert torch.equal(gather_points(feats, idx2), gather_ref(feats, idx2))
    assert torch.equal(grouping_operation(feats, idx3), group_ref(feats, idx3))
    torch.testing.assert_close(
        three_interpolate(feats, idx_nn, weight),
        interp_ref(feats, idx_nn, weight))
    assert gradcheck(lambda f: gather_points(f, idx2), (feats, ))
    assert gradcheck(lambda f: grouping_operation(f, idx3), (feats, ))
    assert gradcheck(lambda f: three_interpolate(f, idx_nn, weight), (feats, ))


def test_outputs_can_be_modified_in_place_like_mmdet3d_does():
    # DGCNN's D-KNN does `grouped -= centre` on grouping_operation's output.
    feats = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    idx = torch.randint(0, 6, (2, 6, 4), dtype=torch.int32)
    grouped = grouping_operation(feats, idx)
    grouped -= feats.unsqueeze(-1)
    grouped.pow(2).sum().backward()
    expected = feats.detach().clone().requires_grad_(True)
    (group_ref(expected, idx) - expected.unsqueeze(-1)).pow(2).sum().backward()
    torch.testing.assert_close(feats.grad, expected.grad)
    # k = 1 makes the transposed knn result a view of its buffer.
    xyz = torch.rand(1, 5, 3)
    out = knn(1, xyz, xyz)
    out += 0
    assert torch.equal(out, knn_ref(1, xyz, xyz))


def test_three_interpolate_weights_get_no_gradient_like_cuda():
    feats = torch.randn(1, 2, 5, requires_grad=True)
    weight = torch.rand(1, 4, 3, requires_grad=True)
    idx = torch.randint(0, 5, (1, 4, 3), dtype=torch.int32)
    three_interpolate(feats, idx, weight).sum().backward()
    assert feats.grad is not None and weight.grad is None


def test_index_outputs_are_not_differentiable():
    xyz = torch.rand(1, 12, 3, requires_grad=True)
    center = xyz[:, :4].detach().contiguous()
    for idx in (furthest_point_sample(xyz.detach(),
                                      4), ball_query(0., 0.5, 3, xyz, center),
                knn(3, xyz, center), three_nn(xyz, center)[1]):
        assert not idx.requires_grad and idx.dtype == torch.int32


def test_stacked_ball_query_and_grouping():
    xyz_cnt = torch.tensor([7, 0, 12], dtype=torch.int32)
    ctr_cnt = torch.tensor([3, 2, 4], dtype=torch.int32)
    xyz = torch.rand(19, 3, dtype=torch.float64)
    center = torch.cat([
        xyz[:3],
        torch.rand(2, 3, dtype=torch.float64), xyz[7:9],
        torch.full((2, 3), 9., dtype=torch.float64)
    ])
    # min_radius is ignored by the stacked kernel; empty balls give -1.
    idx = ball_query(0.2, 0.45, 5, xyz, center, xyz_cnt, ctr_cnt)
    ref = stack_ball_query_ref(0.45, 5, xyz, center, xyz_cnt, ctr_cnt)
    assert idx.dtype == torch.int32 and torch.equal(idx, ref)
    assert (idx[3:5, 0] == -1).all() and (idx[7:, 0] == -1).all()
    idx[idx[:, 0] == -1] = 0
    feats = torch.randn(19, 4, dtype=torch.float64, requires_grad=True)
    grouped = grouping_operation(feats, idx, xyz_cnt, ctr_cnt)
    assert grouped.shape == (9, 4, 5)
    rows = torch.tensor([0, 1, 2, 5, 6, 7, 8])
    # Item 1 has no points: its centres group zeros.
    assert (grouped[3:5] == 0).all()
    ref_idx = torch.cat([idx[:3], idx[5:]])
    ref = stack_group_ref(feats.detach(), ref_idx, xyz_cnt[[0, 2]],
                          torch.tensor([3, 4]))
    torch.testing.assert_close(grouped[rows], ref)
    grouped.sum().backward()
    counts = torch.zeros(19, dtype=torch.float64)
    for r in rows.tolist():
        base = 0 if r < 3 else 7
        for i in idx[r].tolist():
            counts[base + i] += 1
    torch.testing.assert_close(feats.grad, counts[:, None].expand(19, 4))
    assert gradcheck(
        lambda f: grouping_operation(f, idx[rows], xyz_cnt[[0, 2]],
                                     torch.tensor([3, 4], dtype=torch.int32)),
        (feats, ))
    with pytest.raises(IndexError, match='-1 of empty balls'):
        grouping_operation(feats.detach(),
                           -torch.ones(9, 5, dtype=torch.int32), xyz_cnt,
                           ctr_cnt)
    with pytest.raises(ValueError, match='sum to'):
        ball_query(0., 0.5, 2, xyz, center, xyz_cnt + 1, ctr_cnt)


def test_mmdet3d_stack_query_and_group_on_cpu():
    from mmdet3d.models.layers.pointnet_modules.stack_point_sa_module import \
        StackQueryAndGroup
    xyz_cnt = torch.tensor([10, 14], dtype=torch.int32)
    ctr_cnt = torch.tensor([4, 3], dtype=torch.int32)
    xyz = torch.rand(24, 3)
    center = torch.cat([xyz[:4], xyz[10:13]])
    feats = torch.randn(24, 6, requires_grad=True)
    grouper = StackQueryAndGroup(0.5, 4)
    new, idx = grouper(xyz, xyz_cnt, center, ctr_cnt, feats)
    assert new.shape == (7, 3 + 6, 4)
    ref = stack_ball_query_ref(0.5, 4, xyz, center, xyz_cnt, ctr_cnt)
    torch.testing.assert_close(
        new[:, 3:], stack_group_ref(feats.detach(), ref, xyz_cnt, ctr_cnt))
    new.sum().backward()
    assert feats.grad.abs().sum() > 0


def test_query_and_group_and_group_all_on_cpu():
    xyz = torch.rand(2, 32, 3, dtype=torch.float64)
    center = xyz[:, :8].contiguous()
    feats = torch.randn(2, 4, 32, dtype=torch.float64, requires_grad=True)
    grouper = QueryAndGroup(0.4, 6, return_grouped_idx=True)
    new, idx = grouper(xyz, center, feats)
    assert new.shape == (2, 3 + 4, 8, 6)
    assert torch.equal(idx, ball_query_ref(0., 0.4, 6, xyz, center))
    centre = center.transpose(1, 2)[..., None]
    rel = group_ref(xyz.transpose(1, 2), idx) - centre
    torch.testing.assert_close(new[:, :3], rel)
    torch.testing.assert_close(new[:, 3:], group_ref(feats.detach(), idx))
    new.sum().backward()
    counts = torch.zeros(2, 32, dtype=torch.float64)
    for b in range(2):
        for i in idx[b].flatten().tolist():
            counts[b, i] += 1
    torch.testing.assert_close(feats.grad, counts[:, None].expand(2, 4, 32))
    knn_grouper = QueryAndGroup(None, 5, return_grouped_idx=True)
    _, kidx = knn_grouper(xyz, center, feats)
    assert torch.equal(kidx, knn_ref(5, xyz, center).transpose(1, 2))
    assert GroupAll()(xyz, None, feats).shape == (2, 7, 1, 32)


def test_points_sampler_d_fps_and_f_fps():
    xyz = torch.rand(2, 40, 3)
    feats = torch.randn(2, 5, 40)
    d_idx = PointsSampler([8], ['D-FPS'])(xyz, feats)
    assert torch.equal(d_idx, fps_ref(xyz, 8))
    f_idx = PointsSampler([8], ['F-FPS'])(xyz, feats)
    feat_xyz = torch.cat([xyz, feats.transpose(1, 2)], dim=2)
    fdist = torch.cdist(feat_xyz, feat_xyz).square()
    assert torch.equal(f_idx, fps_dist_ref(fdist, 8))
