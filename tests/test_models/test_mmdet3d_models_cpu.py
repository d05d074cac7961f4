# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmdet3d's own point segmentation models train a step on the CPU.

Each model is built from mmdet3d's shipped config by inheritance
(``_base_ = ['mmdet3d::...']``) with smaller point/sample counts, then run
forward and ``loss()`` + backward on small random S3DIS-like inputs. This
exercises mmcv's point ops through mmbinpc's CPU dispatch.
"""
import pytest
import torch
from mmdet3d.registry import MODELS
from mmdet3d.structures import Det3DDataSample, PointData
from mmengine.config import Config

NUM_POINTS = 128
NUM_CLASSES = 13

CASES = {
    'pointnet2_ssg':
    ('pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py',
     'dict(num_points=(64, 32, 16, 8), num_samples=(8, 8, 8, 8))'),
    'pointnet2_msg': ('pointnet2/pointnet2_msg_2xb16-cosine-80e_s3dis-seg.py',
                      'dict(num_points=(64, 32, 16, 8), '
                      'num_samples=((4, 8), (4, 8), (4, 8), (4, 8)))'),
    'dgcnn': ('dgcnn/dgcnn_4xb32-cosine-100e_s3dis-seg_test-area5.py',
              'dict(num_samples=(8, 8, 8))'),
    'paconv_ssg': ('paconv/paconv_ssg_8xb8-cosine-150e_s3dis-seg.py',
                   'dict(num_points=(64, 32, 16, 8), '
                   'num_samples=(8, 8, 8, 8))'),
}


def _build(tmp_path, name):
    base, backbone = CASES[name]
    cfg_file = tmp_path / f'{name}_tiny.py'
    cfg_file.write_text(f"_base_ = ['mmdet3d::{base}']\n"
                        f'model = dict(backbone={backbone})\n')
    cfg = Config.fromfile(str(cfg_file))
    return MODELS.build(cfg.model)


def _batch(batch_size=2):
    points, samples = [], []
    for _ in range(batch_size):
        xyz = torch.rand(NUM_POINTS, 3)
        rgb = torch.rand(NUM_POINTS, 3)
        points.append(torch.cat([xyz, rgb, xyz / xyz.amax(0)], dim=1))
        sample = Det3DDataSample()
        sample.gt_pts_seg = PointData(
            pts_semantic_mask=torch.randint(0, NUM_CLASSES, (NUM_POINTS, )))
        samples.append(sample)
    return dict(inputs=dict(points=points), data_samples=samples)


@pytest.mark.parametrize('name', sorted(CASES))
def test_mmdet3d_seg_model_trains_a_step_on_cpu(tmp_path, name):
    model = _build(tmp_path, name)
    model.train()
    data = model.data_preprocessor(_batch(), training=True)
    logits = model(**data, mode='tensor')
    assert logits.shape == (2, NUM_CLASSES, NUM_POINTS)
    assert torch.isfinite(logits).all()

    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None for g in grads), 'backbone left out of backward'
    assert all(torch.isfinite(g).all() for g in grads)
    # The first layer sees the gradient through the grouping ops.
    first = next(p for p in model.backbone.parameters() if p.dim() > 1)
    assert first.grad.abs().sum() > 0
    if name == 'paconv_ssg':
        # PAConv adds its kernel-correlation regulariser to the decode loss.
        assert 'regularize.loss_regularize' in losses
