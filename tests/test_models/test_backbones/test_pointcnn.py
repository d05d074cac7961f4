# Copyright (c) mmbinpc contributors. All rights reserved.
"""PointCNN: X-Conv layers, the reference size, binarization."""
import math

import pytest
import torch
from mmdet3d.registry import MODELS

import mmbinpc.models.backbones.pointcnn as pointcnn_module
from mmbinpc.binary import binarize
from mmbinpc.models.backbones import PointCNN
from mmbinpc.models.backbones.pointcnn import DilatedKNN, gather_neighbours

SMALL = dict(
    num_points=(-1, 16, 8, 8),
    kernel_sizes=(4, 4, 4, 4),
    dilations=(1, 2, 2, 2),
    channels=(8, 16, 24, 32),
    fc_channels=(24, 12),
    fc_dropout=(0.0, 0.5))


def _reference_params(x: int = 3, classes: int = 40) -> int:
    """Parameters of the reference ModelNet40 setting, layer by layer.

    Counted from the reference code's layer list (no bias where BatchNorm
    follows; BatchNorm has a scale and a shift per channel; the depthwise
    part of the separable convolution has no bias).
    """
    layers = [(8, 16 * x), (12, 32 * x), (16, 64 * x), (16, 128 * x)]
    total, prev_c, fts = 0, None, 0
    for i, (k, c) in enumerate(layers):
        lift = c // 2 if i == 0 else prev_c // 4
        mult = 4 if i == 0 else math.ceil(c / prev_c)
        dense = lambda cin, cout: cin * cout + 2 * cout  # noqa: E731
        total += dense(3, lift) + dense(lift, lift)  # lifting MLP
        total += dense(3 * k, k * k) + 2 * dense(k, k * k)  # X
        mixed = lift + fts
        total += mixed * k * mult + dense(mixed * mult, c)  # separable
        fts = c
        if i == len(layers) - 1:  # global-position branch
            total += dense(3, c // 4) + dense(c // 4, c // 4)
            fts = c + c // 4
        prev_c = c
    total += fts * 128 * x + 2 * 128 * x  # fc 384
    total += 128 * x * 64 * x + 2 * 64 * x  # fc 192
    return total + 64 * x * classes + classes  # linear classifier


def _classifier(backbone: dict, features: int, classes: int):
    """PointCNN classifier as the configs build it (average, linear head)."""
    return MODELS.build(
        dict(
            type='PointClassifier',
            backbone=dict(type='PointCNN', **backbone),
            pool=dict(type='PointPool', mode='avg'),
            head=dict(
                type='PointClsHead',
                in_channels=features,
                num_classes=classes,
                mid_channels=())))


def test_reference_size_matches_the_documented_count():
    model = _classifier(dict(), features=192, classes=40)
    count = sum(p.numel() for p in model.parameters())
    assert count == _reference_params() == 599_340
    assert '599,340 parameters' in pointcnn_module.__doc__


def test_reference_size_runs_on_1024_points():
    net = PointCNN().eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1024, 3))
    assert out['point_feats'].shape == (1, 192, 128)
    assert [x.shape[1]
            for x in out['layer_xyz']] == [1024, 1024, 384, 128, 128]


def test_dilated_knn_keeps_every_dth_of_the_nearest():
    points = torch.rand(2, 40, 3)
    queries = points[:, :5]
    index = DilatedKNN(4, dilation=3)(points, queries)
    assert index.shape == (2, 5, 4) and index.dtype == torch.long
    order = torch.cdist(queries, points).argsort(dim=-1)
    assert torch.equal(index, order[..., :12:3])
    assert torch.equal(index[..., 0], torch.arange(5).expand(2, 5))


def test_dilated_knn_needs_enough_points():
    with pytest.raises(ValueError, match=r'K·D = 8·3 = 24 .* 20 points'):
        DilatedKNN(8, dilation=3)(torch.rand(1, 20, 3), torch.rand(1, 4, 3))


def test_gather_neighbours_per_cloud():
    values = torch.arange(24.).view(2, 4, 3)
    index = torch.tensor([[[3, 0]], [[1, 1]]])
    out = gather_neighbours(values, index)
    assert out.shape == (2, 1, 2, 3)
    assert torch.equal(out[0, 0, 0], values[0, 3])
    assert torch.equal(out[1, 0, 1], values[1, 1])


def test_output_follows_a_permutation_of_the_input_points():
    # every layer keeps all points (P = -1): each output point's features
    # depend on its neighbourhood only, so permuting the input permutes the
    # output the same way (ties in the kNN are unlikely with random data)
    net = PointCNN(**dict(SMALL, num_points=(-1, -1, -1, -1))).eval()
    points = torch.rand(2, 24, 3, dtype=torch.float64)
    net = net.double()
    perm = torch.randperm(24)
    with torch.no_grad():
        out = net(points)['point_feats']
        permuted = net(points[:, perm])['point_feats']
    torch.testing.assert_close(permuted, out[..., perm])


def test_clouds_of_a_batch_do_not_mix():
    net = PointCNN(**SMALL).eval()
    points = torch.rand(3, 32, 3)
    changed = points.clone()
    changed[1] = torch.rand(32, 3)
    with torch.no_grad():
        out = net(points)['point_feats']
        out2 = net(changed)['point_feats']
    torch.testing.assert_close(out2[[0, 2]], out[[0, 2]])
    assert not torch.allclose(out2[1], out[1])


def test_x_transform_changes_the_output_and_can_be_off():
    points = torch.rand(2, 32, 3)
    torch.manual_seed(1)
    with_x = PointCNN(**SMALL).eval()
    torch.manual_seed(1)
    without = PointCNN(**SMALL, with_x_transform=False).eval()
    assert all(c.x_transform is None for c in without.xconvs)
    assert sum(p.numel() for p in with_x.parameters()) > sum(
        p.numel() for p in without.parameters())
    with torch.no_grad():
        assert with_x(points)['point_feats'].shape == without(
            points)['point_feats'].shape


def test_representatives_fps_first_and_all():
    points = torch.rand(2, 32, 3)
    fps = PointCNN(**SMALL).eval()
    first = PointCNN(**SMALL, sampling='first').eval()
    with torch.no_grad():
        xyz_fps = fps(points)['layer_xyz']
        xyz_first = first(points)['layer_xyz']
    # layer 2 picks 16 of 32: the first 16, or spread out by FPS
    assert torch.equal(xyz_first[2], points[:, :16])
    assert not torch.equal(xyz_fps[2], points[:, :16])
    assert torch.equal(xyz_fps[2][:, 0], points[:, 0])  # FPS starts at 0
    # the last layer asks for 8 of 8: every point is kept
    assert torch.equal(xyz_fps[4], xyz_fps[3])


def test_extra_input_channels_are_lifted():
    net = PointCNN(in_channels=6, **SMALL).eval()
    assert net.feature_lift is not None
    assert net.xconvs[0].lift[0][0].in_channels == 3
    points = torch.rand(2, 32, 6)
    with torch.no_grad():
        out = net(points)['point_feats']
        changed = points.clone()
        changed[..., 3:] = torch.rand(2, 32, 3)
        assert not torch.allclose(net(changed)['point_feats'], out)
    with pytest.raises(ValueError, match=r'expects points \(B, N, 6\)'):
        net(torch.rand(2, 32, 3))


def test_every_parameter_gets_a_gradient():
    net = PointCNN(**SMALL).train()
    net(torch.rand(4, 32, 3))['point_feats'].square().mean().backward()
    missing = [
        n for n, p in net.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_bad_arguments():
    with pytest.raises(ValueError, match='one entry per X-Conv layer'):
        PointCNN(num_points=(-1, 8), kernel_sizes=(4, ))
    with pytest.raises(ValueError, match='sampling'):
        PointCNN(sampling='random')
    with pytest.raises(ValueError, match='fc_dropout'):
        PointCNN(fc_channels=(8, ), fc_dropout=(0.1, 0.2))


def test_binarize_keeps_coordinate_readers_and_classifier_fp():
    model = _classifier(SMALL, features=12, classes=5)
    report = binarize(model, method='lsr', aggregation='ema')
    kept = {e.name for e in report.kept_fp}
    binary = {e.name for e in report.converted}
    for i in range(4):
        assert f'backbone.xconvs.{i}.lift.0.0' in kept
        assert f'backbone.xconvs.{i}.x_transform.0.0' in kept
        for name in ('lift.1.0', 'x_transform.1.0', 'x_transform.2.0',
                     'depthwise', 'pointwise.0'):
            assert f'backbone.xconvs.{i}.{name}' in binary
    assert 'backbone.xconvs.3.global_mlp.0.0' in kept
    assert 'backbone.xconvs.3.global_mlp.1.0' in binary
    assert {'backbone.fcs.0.0', 'backbone.fcs.1.0'} <= binary
    assert 'head.fc_cls' in kept
    # the average over the representatives is not switched to EMA
    assert report.pooling_modes == {'pool': 'avg'}
    logits = model.head(model.extract_feat(dict(points=torch.rand(2, 32, 3))))
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()


def test_x_matrix_follows_the_reference_layout():
    """X by the reference code's layout, written with einsum on the weights.

    Conv outputs of K·K channels are K × K matrices with channel ``i·K + j``
    at ``(i, j)``; a depthwise step has the columns ``j`` as channels and
    slides along the rows ``i`` (TensorFlow's depthwise convolution on
    (P, K, K)); channel ``j`` feeds outputs ``j·K + m``.
    """
    from mmbinpc.models.backbones.pointcnn import XConv
    k = 3
    conv = XConv(0, 8, 4, k).eval()
    for module in conv.x_transform.modules():  # non-trivial BatchNorms
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2)
    local = torch.randn(2, 3, 5, k)
    first, second, third = conv.x_transform

    def post(layer, x):  # ELU / BatchNorm: per channel, layout-free
        for module in list(layer)[1:]:
            x = module(x)
        return x

    w0 = first[0].weight[:, :, 0, :]  # (K·K, 3, K)
    out = post(first, torch.einsum('cdw,bdpw->bcp', w0, local)[..., None])
    matrix = out[..., 0].reshape(2, k, k, 5).permute(0, 3, 1, 2)  # b p i j
    for layer in (second, third):
        w = layer[0].weight[:, 0, 0, :].reshape(k, k, k)  # (j, m, i)
        out = torch.einsum('jmi,bpij->bjmp', w, matrix).reshape(2, k * k, 5)
        out = post(layer, out[..., None])
        matrix = out[..., 0].reshape(2, k, k, 5).permute(0, 3, 1, 2)
    with torch.no_grad():
        torch.testing.assert_close(conv._matrix(local), matrix)
