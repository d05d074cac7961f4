# Copyright (c) mmbinpc contributors. All rights reserved.
import copy
import os.path as osp
import sys

import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, PointData
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools'))
import convert_config  # noqa: E402

SEG = 'mmdet3d::dgcnn/dgcnn_4xb32-cosine-100e_s3dis-seg_test-area5.py'


def _seg_batch(n=64, b=2):
    inputs = {'points': [torch.rand(n, 9) for _ in range(b)]}
    samples = []
    for _ in range(b):
        s = Det3DDataSample()
        s.gt_pts_seg = PointData(pts_semantic_mask=torch.randint(0, 14, (n, )))
        samples.append(s)
    return inputs, samples


def test_mmdet3d_config_to_binary_builds_and_trains(tmp_path):
    out = tmp_path / 'dgcnn_xnor.py'
    convert_config.main(
        [SEG, '-o',
         str(out), '--method', 'xnor', '--aggregation', 'ema'])
    text = out.read_text()
    assert f"_base_ = ['{SEG}']" in text and 'Binarized' in text
    cfg = Config.fromfile(str(out))
    # the inherited model, inside the factory that binarizes it
    assert cfg.model.type == 'Binarized'
    assert cfg.model.model.type == 'EncoderDecoder3D'
    assert cfg.model.model.backbone.type == 'DGCNNBackbone'
    assert (cfg.model.method, cfg.model.aggregation) == ('xnor', 'ema')
    # mmdet3d's runtime gets the kill-safe checkpoints and the RNG hook
    assert cfg.default_hooks.checkpoint.type == 'SafeCheckpointHook'
    assert cfg.default_hooks.checkpoint.interval == 2  # the rest inherited
    assert cfg.default_hooks.rng_state.type == 'RNGStateHook'
    model = MODELS.build(copy.deepcopy(cfg.model))
    assert model.binarize_report.converted
    inputs, samples = _seg_batch()
    model.train()
    losses = model.loss(inputs, samples)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    assert torch.isfinite(loss)
    with pytest.raises(SystemExit, match='exists'):
        convert_config.main(
            [SEG, '-o',
             str(out), '--method', 'xnor', '--aggregation', 'ema'])


def test_kdr_conversion_is_a_distiller_config(tmp_path):
    src = osp.join(REPO, 'configs', 'pointnet', 'pointnet_fp_modelnet40.py')
    out = tmp_path / 'sub' / 'pn_kdr.py'
    text = convert_config.render(
        src,
        str(out),
        'lsr',
        'ema',
        kdr=True,
        teacher_ckpt='work_dirs/x',
        reg_norm='fro',
        temperature=3.0)
    out.parent.mkdir()
    out.write_text(text)
    cfg = Config.fromfile(str(out))
    m = cfg.model
    assert m.type == 'BinaryDistiller'
    assert m.teacher == 'configs/pointnet/pointnet_fp_modelnet40.py'
    assert m.binarize == dict(method='lsr', aggregation='ema')
    assert m.distill.reg_norm == 'fro' and m.distill.temperature == 3.0
    assert m.distill.lambda_ > 0 and m.distill.eta > 0
    assert cfg.custom_hooks[-1].type == 'TeacherValHook'
    assert cfg.train_dataloader.batch_size == 32  # the rest is inherited
    plain = convert_config.render(
        src, str(out), 'bnn', 'max', teacher_ckpt='work_dirs/x')
    assert 'lambda_=0.0' in plain and 'eta=0.0' in plain
    with pytest.raises(ValueError, match='unknown --method'):
        convert_config.render(src, str(out), 'ternary', 'max')


def test_converted_config_carries_the_student_recipe(tmp_path):
    """The binary config keeps SRC's optimizer but adds the latent-LR
    constructor, and drops point dropout from SRC's training pipeline (the
    other transforms stay, in order)."""
    src = osp.join(REPO, 'configs', 'pointnet', 'pointnet_fp_modelnet40.py')
    out = tmp_path / 'pn_lsr.py'
    convert_config.main([
        src, '-o',
        str(out), '--method', 'lsr', '--aggregation', 'ema', '--kdr'
    ])
    cfg = Config.fromfile(str(out))
    source = Config.fromfile(src)
    assert cfg.optim_wrapper.constructor == 'BinaryOptimWrapperConstructor'
    assert cfg.optim_wrapper.optimizer == source.optim_wrapper.optimizer
    types = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    source_types = [
        t['type'] for t in source.train_dataloader.dataset.pipeline
    ]
    assert 'RandomPointDropout' in source_types
    assert types == [t for t in source_types if t != 'RandomPointDropout']
    # a source without point dropout keeps its pipeline untouched
    out2 = tmp_path / 'seg.py'
    convert_config.main(
        [SEG, '-o',
         str(out2), '--method', 'xnor', '--aggregation', 'max'])
    assert 'train_dataloader' not in out2.read_text()
    assert Config.fromfile(str(out2)).optim_wrapper.constructor == \
        'BinaryOptimWrapperConstructor'


def test_center_inputs_reach_the_built_model(tmp_path):
    src = osp.join(REPO, 'configs', 'pointnet', 'pointnet_fp_modelnet40.py')
    out = tmp_path / 'pn_xnor_max.py'
    convert_config.main([
        src, '-o',
        str(out), '--method', 'xnor', '--aggregation', 'max',
        '--center-inputs', 'head.mlp.0'
    ])
    cfg = Config.fromfile(str(out))
    assert cfg.model.center_inputs == ['head.mlp.0']
    model = MODELS.build(copy.deepcopy(cfg.model))
    centred = [
        n for n, m in model.named_modules()
        if getattr(getattr(m, 'binarizer', None), 'center_input', False)
    ]
    assert centred == ['head.mlp.0']
