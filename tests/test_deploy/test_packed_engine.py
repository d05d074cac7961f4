# Copyright (c) mmbinpc contributors. All rights reserved.
"""Export -> load -> predict equivalence of the packed engine."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmbinpc.binary import build_binarized
from mmbinpc.deploy import (NotSupportedError, PackedBinaryLayer, PackedModel,
                            check_supported, export_packed, read_meta,
                            state_dict_bytes)

NUM_POINTS = 128


def small_cfg(method, aggregation='max', num_classes=5, tnets=False):
    """A narrow PointNet; the T-Nets (fixed 64-128-1024 widths) only when
    asked, to keep the tests fast."""
    return dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet',
            channels=(16, 16, 16, 32, 64),
            input_transform=tnets,
            feature_transform=tnets),
        head=dict(
            type='PointClsHead',
            in_channels=64,
            num_classes=num_classes,
            mid_channels=(32, 16)),
        binarize=dict(method=method, aggregation=aggregation))


def train_briefly(model, steps=3, batch=8, num_classes=5):
    """A few optimisation steps on random clouds (moves weights, BN stats,
    LSR's alpha)."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if hasattr(m, 'set_progress'):  # IR-Net's EDE schedule
            m.set_progress(0.5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        pts = torch.rand(batch, NUM_POINTS, 3, generator=gen) * 2 - 1
        labels = torch.randint(num_classes, (batch, ), generator=gen)
        loss = F.cross_entropy(model._forward(dict(points=pts)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model


def assert_equivalent(ref, out):
    """Same predictions on every cloud, and every cloud's logits equal to
    1e-4 (relative, or of the largest logit) as docs/deployment.md states.

    A pre-activation within float rounding of 0 (a sign tie) could flip one
    bit and break this on some seed; none of the cases here has one, and a
    failure names how many clouds differ and by how much."""
    assert (ref.argmax(-1) == out.argmax(-1)).all()
    scale = ref.abs().max()
    close = torch.isclose(out, ref, rtol=1e-4, atol=1e-4 * scale).all(-1)
    assert close.all(), (f"{int((~close).sum())} of {close.numel()} clouds "
                         f"differ; max {(ref - out).abs().max()}")


@pytest.mark.parametrize('method,aggregation',
                         [('bnn', 'max'), ('xnor', 'ema'), ('irnet', 'max'),
                          ('lsr', 'ema'), ('bireal', 'max'), ('react', 'ema')])
def test_export_load_predict_equivalence(tmp_path, method, aggregation):
    cfg = small_cfg(method, aggregation)
    model = build_binarized(cfg)
    if method == 'react':
        for m in model.modules():
            if hasattr(m, 'threshold') and isinstance(m.threshold,
                                                      nn.Parameter):
                m.threshold.data.uniform_(-0.3, 0.3)
    train_briefly(model)
    path = str(tmp_path / 'model.packed')
    summary = export_packed(model, path, cfg, num_points=NUM_POINTS)
    binary = [
        n for n, m in model.named_modules()
        if hasattr(m, 'binarizer') and isinstance(m, (nn.Conv1d, nn.Linear))
    ]
    assert sorted(summary.binary_layers) == sorted(binary)
    # every binary conv/linear here is followed by its BatchNorm
    assert len(summary.folded_bn) >= len(binary)

    # the hidden layers' activations and the global pooling are fused
    assert summary.fused['backbone.mlp.1.2'] == 'backbone.mlp.1.0'
    assert summary.fused['pool'] == 'backbone.mlp.4.0'
    packed = PackedModel.load(path)
    assert sorted(packed.packed_layers) == sorted(binary)
    assert packed.packed_layers['backbone.mlp.4.0'].pool
    assert not any(
        isinstance(m, nn.BatchNorm1d) and n in summary.folded_bn
        for n, m in packed.model.named_modules())
    pts = torch.rand(32, NUM_POINTS, 3) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=pts))
    out = packed(pts)
    assert out.shape == ref.shape
    assert_equivalent(ref, out)
    # numpy input and a single cloud
    single = packed(pts[0].numpy())
    torch.testing.assert_close(single[0], out[0])
    assert packed.predict(pts).tolist() == out.argmax(-1).tolist()


def test_trained_model_with_tnets(tmp_path):
    cfg = small_cfg('xnor', 'ema', tnets=True)
    model = train_briefly(build_binarized(cfg), steps=2, batch=4)
    path = str(tmp_path / 'tnets.packed')
    summary = export_packed(model, path, cfg, num_points=NUM_POINTS)
    # both T-Nets' binary convs/fcs are packed; their first conv (raw xyz)
    # and the classifier stay FP32 with their BN folded into the weights
    assert 'backbone.feature_tnet.transform' in summary.binary_layers
    assert 'backbone.input_tnet.convs.0.0' not in summary.binary_layers
    assert summary.folded_bn['backbone.input_tnet.convs.0.1'] == \
        'backbone.input_tnet.convs.0.0'
    packed = PackedModel.load(path)
    pts = torch.rand(16, NUM_POINTS, 3) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=pts))
    assert_equivalent(ref, packed(pts))


def test_packed_layers_use_packed_words_only(tmp_path):
    cfg = small_cfg('xnor')
    model = build_binarized(cfg).eval()
    path = str(tmp_path / 'm.packed')
    export_packed(model, path, cfg, num_points=NUM_POINTS)
    packed = PackedModel.load(path)
    layer = packed.packed_layers['backbone.mlp.1.0']
    assert isinstance(layer, PackedBinaryLayer)
    assert layer.weight_words_t.dtype == np.uint64
    assert not list(layer.parameters())  # no FP32 weight left
    # breaking the packed bits changes the output: they are really used
    pts = torch.rand(4, NUM_POINTS, 3)
    before = packed(pts)
    layer.weight_words_t[...] = ~layer.weight_words_t
    assert not torch.allclose(packed(pts), before)


def test_full_pointnet_file_is_small_and_equivalent(tmp_path):
    cfg = dict(
        type='PointClassifier',
        backbone=dict(type='PointNet'),
        head=dict(type='PointClsHead', in_channels=1024, num_classes=40),
        binarize=dict(method='lsr', aggregation='ema'))
    model = build_binarized(cfg).eval()
    path = str(tmp_path / 'pointnet.packed')
    summary = export_packed(model, path, cfg, num_points=1024)
    fp_cfg = {k: v for k, v in cfg.items() if k != 'binarize'}
    ratio = state_dict_bytes(build_binarized(fp_cfg)) / summary.file_bytes
    assert ratio >= 15, ratio  # issue: >= 15x, paper: 23x
    meta = read_meta(path)
    assert meta['trace'] == dict(num_points=1024, in_channels=3)
    assert len(meta['binary_layers']) == 17
    packed = PackedModel.load(path)
    pts = torch.rand(2, 1024, 3) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=pts))
    assert_equivalent(ref, packed(pts))


# --------------------------------------------------------------------------
def test_unsupported_pointnet2_backbone():
    model = build_binarized(
        dict(
            type='PointClassifier',
            backbone=dict(
                type='PointNet2SASSG',
                in_channels=3,
                num_points=(32, 16),
                radius=(0.2, 0.4),
                num_samples=(8, 8),
                sa_channels=((16, 16), (32, 32)),
                fp_channels=(),
                norm_cfg=dict(type='BN2d')),
            head=dict(type='PointClsHead', in_channels=32, num_classes=5),
            binarize=dict(method='xnor', aggregation='max')))
    with pytest.raises(
            NotSupportedError,
            match=r'not supported yet: backbone \(PointNet2SASSG'):
        export_packed(model, '/nonexistent/never_written', {})


def test_unsupported_dgcnn_backbone():
    backbone = build_binarized(
        dict(
            type='DGCNNBackbone',
            in_channels=3,
            num_samples=(8, 8),
            knn_modes=('D-KNN', 'F-KNN'),
            radius=(None, None),
            gf_channels=((16, 16), (16, 16)),
            fa_channels=(32, ),
            act_cfg=dict(type='LeakyReLU', negative_slope=0.2)))
    with pytest.raises(NotSupportedError, match='not supported yet: '):
        check_supported(backbone)


def test_unsupported_layers_and_binarizers(tmp_path):
    from mmbinpc.binary.layers import BinConv1d

    cfg = small_cfg('xnor')
    model = build_binarized(cfg).eval()
    # a binarizer that declares no spec: the engine cannot know its input
    model.backbone.mlp[1][0].binarizer.spec = None
    with pytest.raises(
            NotSupportedError,
            match=r"backbone.mlp.1.0.binarizer.*'xnor'.*None"):
        export_packed(model, str(tmp_path / 'a'), cfg, NUM_POINTS)

    model = build_binarized(cfg).eval()
    model.backbone.mlp[1][0] = nn.Conv1d(16, 16, 3, padding=1)
    with pytest.raises(
            NotSupportedError,
            match=r'backbone.mlp.1.0 \(Conv1d '
            r'kernel=\(3,\)'):
        export_packed(model, str(tmp_path / 'b'), cfg, NUM_POINTS)

    model = build_binarized(cfg).eval()
    model.backbone.mlp[1][0] = BinConv1d(16, 16, 1, binarize_input=False)
    with pytest.raises(NotSupportedError, match='binarize_input=False'):
        export_packed(model, str(tmp_path / 'c'), cfg, NUM_POINTS)


def test_load_errors(tmp_path):
    from mmbinpc.errors import PackedFormatError
    with pytest.raises(
            PackedFormatError,
            match='missing.packed: does not exist.*'
            'export_packed.py'):
        PackedModel.load(str(tmp_path / 'missing.packed'))
    bogus = tmp_path / 'bogus.npz'
    np.savez(bogus, x=np.zeros(3))
    with pytest.raises(
            PackedFormatError,
            match='bogus.npz: no __meta__ entry: not an mmbinpc '
            'packed model'):
        PackedModel.load(str(bogus))


def test_fusion_only_for_exclusive_consumers():
    from mmbinpc.binary.aggregation import PointPool
    from mmbinpc.binary.layers import BinConv1d
    from mmbinpc.deploy import find_foldable_bn
    from mmbinpc.deploy.export import find_fusions

    class Branchy(nn.Module):

        def __init__(self):
            super().__init__()
            self.a = BinConv1d(8, 8, 1)
            self.bn_a = nn.BatchNorm1d(8)
            self.b = BinConv1d(8, 8, 1)
            self.bn_b = nn.BatchNorm1d(8)
            self.act = nn.Hardtanh()
            self.pool = PointPool('max')

        def forward(self, x):
            y = self.a(x)
            y = self.bn_a(y) + y  # a's output is read outside bn_a
            return self.pool(self.act(self.bn_b(self.b(y))))

    model = Branchy().eval()
    x = torch.randn(2, 8, 5)
    fusions = find_fusions(model, lambda: model(x))
    assert fusions['a'] == dict(bn=None, act=None, pool=None)
    assert fusions['b'] == dict(bn='bn_b', act='act', pool='pool')
    assert find_foldable_bn(model, lambda: model(x)) == {'b': 'bn_b'}
