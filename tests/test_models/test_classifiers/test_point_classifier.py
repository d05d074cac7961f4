# Copyright (c) mmbinpc contributors. All rights reserved.
import uuid

import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample
from mmengine.runner import Runner

from mmbinpc.binary.aggregation import PointPool

HEAD = dict(
    type='PointClsHead', num_classes=3, mid_channels=(16, ), dropout=0.0)
TINY_MODELS = {
    'pointnet':
    dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet',
            channels=(16, 16, 16, 32, 64),
            tnet_conv_channels=(16, 32),
            tnet_fc_channels=(16, )),
        head=dict(HEAD, in_channels=64)),
    'pointnet2':
    dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet2SASSGCls',
            in_channels=3,
            num_points=(16, None),
            radius=(0.4, None),
            num_samples=(8, None),
            sa_channels=((16, 32), (32, 64))),
        head=dict(HEAD, in_channels=64)),
    'dgcnn':
    dict(
        type='PointClassifier',
        backbone=dict(
            type='DGCNNBackboneCls',
            in_channels=3,
            num_samples=(8, 8),
            knn_modes=('D-KNN', 'F-KNN'),
            radius=(None, None),
            gf_channels=((16, ), (16, )),
            fa_channels=(64, ),
            act_cfg=dict(type='LeakyReLU', negative_slope=0.2)),
        pool=dict(type='PointPool', mode='max+avg'),
        head=dict(HEAD, in_channels=128)),
}


def _batch(num=4, points=32, classes=3):
    inputs = dict(points=[torch.randn(points, 3) for _ in range(num)])
    samples = []
    for i in range(num):
        s = Det3DDataSample()
        s.gt_label = torch.tensor(i % classes)
        samples.append(s)
    return inputs, samples


def test_classifier_api_contract():
    model = MODELS.build(TINY_MODELS['pointnet'])
    inputs, samples = _batch()
    feat = model.extract_feat(inputs)
    assert feat.shape == (4, 64)
    logits = model._forward(inputs)
    assert logits.shape == (4, 3)
    losses, logits2 = model.loss_and_logits(inputs, samples)
    assert set(losses) == {'loss_ce', 'loss_feat_transform'}
    assert logits2.shape == (4, 3)
    assert set(model(inputs, samples, mode='loss')) == set(losses)
    model.eval()
    out = model(inputs, samples, mode='predict')
    assert out is samples
    for s in out:
        assert s.pred_label.dim() == 0 and s.pred_label.dtype == torch.long
        assert s.pred_score.shape == (3, )
        assert s.pred_score.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert s.pred_label.item() == s.pred_score.argmax().item()
    assert isinstance(model.pool, PointPool)
    assert len(model.predict(inputs)) == 4  # data samples created


def test_classifier_errors():
    model = MODELS.build(TINY_MODELS['pointnet'])
    with pytest.raises(ValueError, match='same shape'):
        model.extract_feat(dict(points=[torch.randn(5, 3), torch.randn(6, 3)]))
    inputs, samples = _batch()
    del samples[1].gt_label
    with pytest.raises(KeyError, match='gt_label'):
        model.loss(inputs, samples)
    with pytest.raises(ValueError, match='invalid mode'):
        model(inputs, mode='bogus')


def test_pool_modes_change_feature_width():
    cfg = dict(
        TINY_MODELS['pointnet'], pool=dict(type='PointPool', mode='max+avg'))
    cfg['head'] = dict(HEAD, in_channels=128)
    model = MODELS.build(cfg)
    assert model.extract_feat(_batch()[0]).shape == (4, 128)


@pytest.mark.parametrize('name', list(TINY_MODELS))
def test_runner_iterations_lower_the_loss(name, tiny_modelnet, tmp_path):
    pipeline = [
        dict(type='NormalizePointsToUnitSphere'),
        dict(type='PackClsInputs')
    ]
    runner = Runner(
        model=TINY_MODELS[name],
        work_dir=str(tmp_path),
        experiment_name=f'{name}_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dict(
                type='ModelNet40Dataset',
                data_root=tiny_modelnet,
                num_points=64,
                indices=4,
                pipeline=pipeline)),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=8),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=1e-2)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=10**6),
            logger=dict(type='LoggerHook', interval=100)),
        default_scope='mmdet3d',
        log_level='WARNING')
    model = runner.model
    batch = next(iter(runner.train_dataloader))

    def fixed_batch_loss():
        with torch.no_grad():
            data = model.data_preprocessor(batch, True)
            return model.loss(data['inputs'],
                              data['data_samples'])['loss_ce'].item()

    before = fixed_batch_loss()
    runner.train()
    after = fixed_batch_loss()
    assert after < before * 0.8, (before, after)
