# Copyright (c) mmbinpc contributors. All rights reserved.
"""binarize() on mmdet3d's DGCNN, PointNet++ SSG and PAConv segmentors."""
import copy
import os.path as osp

import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, PointData
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch import nn

from mmbinpc.binary import (BinConv1d, BinConv2d, BinLinear, PointPool,
                            binarize, build_binarized, ema_offset,
                            expand_binarize_key)
from mmbinpc.binary.layers import BinaryMixin
from mmbinpc.engine import set_irnet_progress
from mmbinpc.models.layers import use_pooled_sa_modules

DGCNN = 'mmdet3d::dgcnn/dgcnn_4xb32-cosine-100e_s3dis-seg_test-area5.py'
POINTNET2 = 'mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py'
PACONV = 'mmdet3d::paconv/paconv_ssg_8xb8-cosine-150e_s3dis-seg.py'
N_POINTS = 32
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _model_cfg(path: str) -> dict:
    """The config's model, shrunk to few sampled points (same layers)."""
    init_default_scope('mmdet3d')
    model = get_config(path).model
    backbone = model.backbone
    if backbone.type == 'PointNet2SASSG':
        backbone.num_points = (16, 8, 4, 2)
        backbone.num_samples = (4, 4, 4, 2)
    if backbone.type == 'DGCNN':
        backbone.num_samples = (4, 4, 4)
    return model


def _build(path: str) -> nn.Module:
    """Built as mmbinpc's builders do: SA modules with their pooling site."""
    return MODELS.build(use_pooled_sa_modules(_model_cfg(path)))


def _batch(in_channels: int, num_classes: int, batch: int = 2) -> dict:
    points = [torch.rand(N_POINTS, in_channels) for _ in range(batch)]
    samples = []
    for _ in range(batch):
        sample = Det3DDataSample()
        sample.gt_pts_seg = PointData(
            pts_semantic_mask=torch.randint(0, num_classes, (N_POINTS, )))
        samples.append(sample)
    return dict(inputs=dict(points=points), data_samples=samples)


def _layers(model: nn.Module):
    return [
        m for m in model.modules()
        if type(m) in (nn.Conv1d, nn.Conv2d, nn.Linear)
    ]


# (config, binarizable layers, kept FP, pooling sites)
#   DGCNN: 5 graph-feature convs + 1 FA conv + FP conv + pre-seg + conv_seg;
#     FP: the first edge conv (9 raw channels x 2) and conv_seg.
#   PointNet++ SSG: 4 SA x 3 convs + 9 FP convs + pre-seg + conv_seg;
#     FP: the first SA conv (6 features + 3 xyz) and conv_seg.
#   PAConv: 12 PAConv weight banks + 12 ScoreNets x 4 convs + 9 FP convs +
#     pre-seg + conv_seg; FP: the first PAConv (raw input), the first conv of
#     each ScoreNet (reads coordinates) and conv_seg.
CASES = [(DGCNN, 9, 2, 4), (POINTNET2, 23, 2, 4), (PACONV, 71, 14, 4)]


@pytest.mark.parametrize('path,total,kept,sites', CASES)
def test_counts_on_mmdet3d_segmentors(path, total, kept, sites):
    model = _build(path)
    report = binarize(model, method='xnor', aggregation='ema')
    assert len(report.converted) + len(report.kept_fp) == total
    assert len(report.kept_fp) == kept
    assert not report.skipped
    assert len(report.pooling_sites) == sites
    assert set(report.pooling_modes.values()) == {'ema'}
    fp_left = {n for n, m in model.named_modules() if m in _layers(model)}
    assert fp_left <= {e.name for e in report.kept_fp}
    assert 'decode_head.conv_seg' in {e.name for e in report.kept_fp}
    binary = [m for m in model.modules() if isinstance(m, BinaryMixin)]
    assert len(binary) == len(report.converted)
    assert {m.binarizer.name for m in binary} == {'xnor'}
    text = str(report)
    assert 'decode_head.conv_seg' in text and '1-bit xnor' in text
    assert f'{len(report.converted)} binary' in text


def test_dgcnn_first_and_last_layers():
    model = _build(DGCNN)
    report = binarize(model, method='lsr')
    kept = {e.name: e.reason for e in report.kept_fp}
    assert set(kept) == {
        'backbone.GF_modules.0.mlps.0.layer0.conv', 'decode_head.conv_seg'
    }
    assert 'raw input (18 ch)' in kept[
        'backbone.GF_modules.0.mlps.0.layer0.conv']
    assert isinstance(model.backbone.FA_module.mlps.layer0.conv, BinConv1d)
    assert isinstance(model.backbone.GF_modules[0].mlps[0].layer1.conv,
                      BinConv2d)
    assert isinstance(model.backbone.FA_module.pool, PointPool)


@pytest.mark.parametrize('path,method', [(DGCNN, 'lsr'), (POINTNET2, 'xnor'),
                                         (PACONV, 'irnet')])
def test_forward_and_training_step(path, method):
    model = _build(path)
    fp_state = copy.deepcopy(model.state_dict())
    binarize(model, method=method, aggregation='ema')
    set_irnet_progress(model, 0.5)
    data = _batch(in_channels=9, num_classes=13)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    binary = {
        n: m
        for n, m in model.named_modules() if isinstance(m, BinaryMixin)
    }
    before = {n: m.latent_weight().detach().clone() for n, m in binary.items()}
    losses = model.train_step(data, optim)
    assert all(torch.isfinite(v).all() for v in losses.values())
    changed = [
        n for n, m in binary.items()
        if not torch.equal(m.latent_weight().detach(), before[n])
    ]
    assert len(changed) == len(binary)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(_batch(9, 13), False)
        logits = model(data['inputs'], data['data_samples'], mode='tensor')
    assert logits.shape == (2, 13, N_POINTS)
    assert torch.isfinite(logits).all()
    # the FP32 teacher's state dict loads (strictly) into the binary model
    model.load_state_dict(fp_state)
    for name, value in fp_state.items():
        assert torch.equal(model.state_dict()[name], value)


def test_patterns_overrides_and_skip():
    model = _build(DGCNN)
    report = binarize(
        model,
        method='bnn',
        aggregation='max',
        keep_fp=('first', 'last', 'backbone.FA_module'),
        skip='re:decode_head\\.pre_seg_conv.*',
        overrides={'backbone.GF_modules.2*': 'react'})
    kept = {e.name for e in report.kept_fp}
    assert 'backbone.FA_module.mlps.layer0.conv' in kept
    assert [e.name
            for e in report.skipped] == ['decode_head.pre_seg_conv.conv']
    react = [e.name for e in report.converted if e.binarizer == 'react']
    assert react == ['backbone.GF_modules.2.mlps.0.layer0.conv']
    assert model.backbone.GF_modules[2].mlps[0].layer0.conv.binarizer.name \
        == 'react'
    assert set(report.pooling_modes.values()) == {'max'}
    assert 'FP32 (skipped)' in str(report)


def test_keep_nothing_binarizes_everything():
    model = _build(DGCNN)
    report = binarize(model, keep_fp=None)
    assert len(report.converted) == 9 and not report.kept_fp


def test_error_cases():
    model = _build(DGCNN)
    with pytest.raises(ValueError, match='valid binarizers: .*lsr'):
        binarize(model, method='ternary')
    with pytest.raises(ValueError, match='valid: max, ema'):
        binarize(model, aggregation='avg')
    with pytest.raises(ValueError, match="keep_fp pattern 'backbone.tnet'"):
        binarize(model, keep_fp=('first', 'backbone.tnet'))
    with pytest.raises(ValueError, match="skip pattern 're:head'"):
        binarize(model, skip='re:head')
    with pytest.raises(ValueError, match="overrides pattern 'nope'"):
        binarize(model, overrides={'nope': 'xnor'})
    with pytest.raises(ValueError, match='valid binarizers'):
        binarize(model, overrides={'backbone*': 'int8'})
    with pytest.raises(ValueError, match='"type"'):
        binarize(model, method=dict(eps=1e-3))
    # nothing was changed by the failed calls
    assert not any(isinstance(m, BinaryMixin) for m in model.modules())
    with pytest.raises(ValueError, match='nothing to binarize'):
        binarize(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))
    binarize(model)
    with pytest.raises(ValueError, match='already binary'):
        binarize(model)


def test_linear_models_and_report_table():
    model = nn.Sequential(
        nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.Linear(8, 4))
    report = binarize(model, method='bireal')
    assert [e.name for e in report.kept_fp] == ['0', '3']
    assert isinstance(model[2], BinLinear)
    lines = str(report).splitlines()
    assert lines[0].startswith("binarize(method='bireal'")
    assert lines[3].startswith('| Module') or lines[2].startswith('| Module')
    assert any(
        line.startswith('| 2 ') and '1-bit bireal' in line for line in lines)


def test_binarized_factory_through_runner(tmp_path):
    inner = _model_cfg(DGCNN)
    runner = Runner(
        model=dict(
            type='Binarized', model=inner, method='lsr', aggregation='ema'),
        work_dir=str(tmp_path),
        default_scope='mmdet3d')
    model = runner.model
    # the factory returns the inner model itself: same type, same keys
    assert type(model).__name__ == inner['type']
    fp_model = MODELS.build(copy.deepcopy(inner))
    assert set(model.state_dict()) >= set(fp_model.state_dict())
    assert not any(isinstance(m, BinaryMixin) for m in fp_model.modules())
    assert isinstance(model.backbone.FA_module.mlps.layer0.conv, BinConv1d)
    assert model.backbone.FA_module.mlps.layer0.conv.binarizer.name == 'lsr'
    assert len(model.binarize_report.converted) == 7
    assert model.backbone.FA_module.pool.mode == 'ema'
    with pytest.raises(TypeError, match='needs model=dict'):
        MODELS.build(dict(type='Binarized', method='lsr'))
    with pytest.raises(ValueError, match='once'):
        MODELS.build(dict(type='Binarized', model=dict(inner, binarize={})))


def test_binarize_key_is_not_a_registry_patch():
    """``binarize=`` is read by mmbinpc's own builders, never by a registry:
    every MODELS registry keeps mmengine's build function."""
    from mmengine.registry import MODELS as root
    from mmengine.registry.build_functions import build_model_from_cfg
    stack = [root]
    while stack:
        registry = stack.pop()
        stack.extend(registry.children.values())
        assert registry.build_func is build_model_from_cfg, registry.name
    cfg = _model_cfg(DGCNN)
    with pytest.raises(TypeError, match='binarize'):
        MODELS.build(dict(cfg, binarize=dict(method='lsr')))


def test_build_binarized_and_expand_binarize_key():
    cfg = dict(
        _model_cfg(DGCNN), binarize=dict(method='lsr', aggregation='ema'))
    model = build_binarized(cfg)
    assert model.binarize_report.method == 'lsr'
    assert 'binarize' in cfg  # the caller's config is left as it was
    # the short form and its factory form build the same model
    factory = expand_binarize_key(cfg)
    assert factory['type'] == 'Binarized' and factory['method'] == 'lsr'
    assert factory['model'] == _model_cfg(DGCNN)
    again = MODELS.build(factory)
    assert sorted(again.state_dict()) == sorted(model.state_dict())
    # binarize=True uses the defaults; None is the FP32 model
    assert build_binarized(dict(cfg, binarize=True)).binarize_report.method \
        == 'xnor'
    assert expand_binarize_key(dict(cfg, binarize=None)) == _model_cfg(DGCNN)
    plain = _model_cfg(DGCNN)
    assert expand_binarize_key(plain) is plain
    with pytest.raises(TypeError, match='binarize= must be'):
        build_binarized(dict(cfg, binarize='lsr'))
    # a distiller's binarize= is its student's: left to the distiller
    distiller = dict(
        type='BinaryDistiller', teacher=plain, binarize=dict(method='lsr'))
    assert expand_binarize_key(distiller) is distiller


def test_activations_before_binary_layers_and_pools():
    model = _build(DGCNN)
    report = binarize(model, method='xnor', aggregation='ema')
    gf0 = model.backbone.GF_modules[0].mlps[0]
    assert isinstance(gf0.layer0.activate, nn.Hardtanh)
    assert isinstance(gf0.layer1.activate, nn.Identity)  # pooled by EMA
    assert isinstance(model.backbone.FA_module.mlps.layer0.activate,
                      nn.Identity)
    assert isinstance(model.decode_head.pre_seg_conv.activate, nn.Hardtanh)
    assert not any(
        isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.modules())
    assert report.activations[
        'backbone.GF_modules.0.mlps.0.layer1.activate'] == ('LeakyReLU',
                                                            'Identity')
    assert len(report.activations) == 8
    # plain max: Hardtanh everywhere; None: activations untouched
    model = _build(DGCNN)
    binarize(model, aggregation='max')
    assert isinstance(model.backbone.GF_modules[0].mlps[0].layer1.activate,
                      nn.Hardtanh)
    model = _build(DGCNN)
    assert not binarize(model, activation=None).activations
    assert isinstance(model.backbone.GF_modules[0].mlps[0].layer1.activate,
                      nn.LeakyReLU)
    with pytest.raises(ValueError, match='valid: hardtanh, identity'):
        binarize(_build(DGCNN), activation='relu')


class _ToyPointNet(nn.Module):
    """conv-bn-relu x 3 -> PointPool -> linear head (own-model layout)."""

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(3, 16, 1), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 16, 1), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 32, 1), nn.BatchNorm1d(32), nn.ReLU())
        self.pool = PointPool('max')
        self.head = nn.Sequential(
            nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 5))
        self.num_classes = 5

    def forward(self, x):
        return self.head(self.pool(self.convs(x)))


def test_own_model_layout_and_ema_entropy():
    model = _ToyPointNet()
    report = binarize(model, method='lsr', aggregation='ema')
    assert [e.name for e in report.kept_fp] == ['convs.0', 'head.2']
    assert isinstance(model.convs[8], nn.Identity)  # pooled directly
    assert isinstance(model.convs[2], nn.Hardtanh)
    assert isinstance(model.head[1], nn.Hardtanh)
    assert model.pool.mode == 'ema'
    model.train()
    x = torch.randn(64, 3, 128)
    out = model(x)
    assert torch.isfinite(out).all()
    # EMA sees the BN output (max - delta(128)); after Hardtanh (<= 1) the
    # shifted max would always be negative and its sign would carry nothing
    features = model.convs(x)
    assert features.max().item() > 1.0
    pooled = model.pool(features)
    assert torch.allclose(pooled, features.max(-1)[0] - ema_offset(128))
    positive = float((pooled >= 0).float().mean())
    assert 0.02 < positive < 0.98


def test_mmbinpc_pointnet_keeps_tnet_input_fp():
    """Our PointNet: the input T-Net's first conv also reads raw points."""
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pointnet', 'pointnet_fp_modelnet40.py'))
    model = MODELS.build(cfg.model)
    report = binarize(model, method='xnor')
    kept = {e.name: e.reason for e in report.kept_fp}
    assert set(kept) == {
        'backbone.input_tnet.convs.0.0', 'backbone.mlp.0.0', 'head.fc_cls'
    }
    assert len(report.converted) == 17 and len(report.pooling_sites) == 3
    model.eval()
    with torch.no_grad():
        logits = model._forward(
            dict(points=[torch.rand(32, 3) for _ in range(2)]))
    assert logits.shape == (2, 40) and torch.isfinite(logits).all()


def test_dropout_before_a_binary_layer_is_removed():
    """PointClsHead: Linear-BN-ReLU-Dropout-Linear-BN-ReLU-Dropout-fc_cls.

    The first dropout feeds a binary Linear (its zeros would become +1s in
    training only) and is removed; the second feeds the FP classifier and
    stays. ``dropout='keep'`` keeps both.
    """
    init_default_scope('mmdet3d')
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'pointnet', 'pointnet_fp_modelnet40.py'))
    model = MODELS.build(cfg.model)
    assert isinstance(model.head.mlp[3], nn.Dropout)
    report = binarize(model, method='lsr')
    assert list(report.removed) == ['head.mlp.3']
    assert 'head.mlp.4' in report.removed['head.mlp.3']
    assert isinstance(model.head.mlp[3], nn.Identity)
    assert isinstance(model.head.mlp[7], nn.Dropout)
    assert ('head.mlp.3', 'Dropout', '-> Identity',
            report.removed['head.mlp.3']) in report.rows()
    # in training mode the binary layer now sees as many -1s as at test time
    model.train()
    x = torch.randn(64, 512)
    assert torch.equal(model.head.mlp[3](x), x)

    kept = MODELS.build(cfg.model)
    report = binarize(kept, method='lsr', dropout='keep')
    assert report.removed == {} and isinstance(kept.head.mlp[3], nn.Dropout)
    with pytest.raises(ValueError, match='unknown dropout rule'):
        binarize(MODELS.build(cfg.model), dropout='drop')


def test_center_inputs_option():
    model = _build(DGCNN)
    report = binarize(
        model,
        method='xnor',
        aggregation='max',
        overrides={'backbone.GF_modules.2*': 'react'},
        center_inputs='backbone.GF_modules.[12].*.layer0*')
    centred = {e.name for e in report.converted if 'centred input' in e.reason}
    assert centred == {
        'backbone.GF_modules.1.mlps.0.layer0.conv',
        'backbone.GF_modules.2.mlps.0.layer0.conv'
    }
    gf = model.backbone.GF_modules
    assert gf[1].mlps[0].layer0.conv.binarizer.center_input
    # an override keeps its binarizer and gains the centre
    react = gf[2].mlps[0].layer0.conv.binarizer
    assert react.name == 'react' and react.center_input
    assert {
        n
        for n, m in model.named_modules()
        if hasattr(m, 'binarizer') and m.binarizer.center_input
    } == centred
    with pytest.raises(
            ValueError,
            match='center_inputs pattern .* matches '
            'no binarizable layer'):
        binarize(_build(DGCNN), center_inputs='nothing.here')
    with pytest.raises(ValueError, match='stay FP32'):
        binarize(_build(DGCNN), center_inputs='*GF_modules.0.mlps.0.layer0*')
