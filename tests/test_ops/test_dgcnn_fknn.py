# Copyright (c) mmbinpc contributors. All rights reserved.
"""DGCNN's F-KNN groups true nearest neighbours in feature space on CPU.

mmcv's CUDA kNN kernel reads every point as 3 floats, so for C-channel
features it searches a wrong, stride-3 view of the data; the CPU version
searches the full C-dimensional space (see docs/point_ops.md).
"""
import torch
from mmdet3d.models.layers import DGCNNGFModule

from .refs import knn_ref


def test_dgcnn_f_knn_neighbours_match_feature_space_bruteforce():
    torch.manual_seed(1)
    batch, num, channels, k = 2, 24, 6, 5
    feats = torch.randn(batch, num, channels, dtype=torch.float64)
    module = DGCNNGFModule(
        mlp_channels=[2 * channels, 8], num_sample=k,
        knn_mode='F-KNN').double().eval()
    # The neighbours the grouper picks ...
    grouped = module.groupers[0](feats, feats)  # (B, C, N, k): nbr - centre
    ref_idx = knn_ref(k, feats, feats).transpose(1, 2).long()  # (B, N, k)
    expected = torch.stack([feats[b][ref_idx[b]] for b in range(batch)])
    expected = (expected - feats[:, :, None]).permute(0, 3, 1, 2)
    torch.testing.assert_close(grouped, expected)
    # ... and the whole edge-conv output built from brute-force neighbours.
    centre = feats.transpose(1, 2)[..., None].expand(-1, -1, -1, k)
    edge = torch.cat([expected, centre], dim=1)
    ref_out = module.mlps[0](edge).amax(dim=-1).transpose(1, 2)
    torch.testing.assert_close(module(feats), ref_out)


def test_f_knn_differs_from_a_stride_3_reading():
    # What a stride-3 kernel would compare: the first 3 channels of point i
    # are the flat buffer's floats 3i..3i+2, not point i's features.
    feats = torch.randn(1, 16, 6, dtype=torch.float64)
    strided = feats.reshape(1, -1, 3)[:, :16]
    from mmcv.ops import knn
    true_idx = knn(4, feats, feats)
    assert torch.equal(true_idx, knn_ref(4, feats, feats))
    assert not torch.equal(true_idx, knn_ref(4, strided, strided))
