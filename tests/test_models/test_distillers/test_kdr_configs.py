# Copyright (c) mmbinpc contributors. All rights reserved.
"""The KDR configs train through mmengine's Runner on tiny generated data."""
import copy
import glob
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
from mmbinpc.models.distillers import load_model_config
from mmdet3d.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
sys.path.insert(0, osp.join(REPO, 'tools'))
from create_synthetic_s3dis import create_synthetic_s3dis  # noqa: E402


def _save_teacher(model_cfg, work_dir) -> str:
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        teacher = MODELS.build(copy.deepcopy(model_cfg))
    path = osp.join(work_dir, 'epoch_1.pth')
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, path)
    return path


def _light(cfg: Config, work_dir: str) -> None:
    cfg.work_dir = work_dir
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].num_workers = 0
        cfg[name].persistent_workers = False
        cfg[name].batch_size = 2
    cfg.log_level = 'WARNING'


def _check_run(runner: Runner, work_dir: str) -> None:
    hub = runner.message_hub
    for key in ('loss_ds', 'loss_ce', 'loss_reg', 'loss'):
        assert torch.isfinite(torch.tensor(hub.get_scalar(
            f'train/{key}').current()))
    assert hub.get_scalar('train/loss_reg').current() > 0
    assert any(k.startswith('teacher/') for k in hub.log_scalars)
    ckpts = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
             if 'teacher' not in osp.basename(p)]
    assert ckpts
    state = torch.load(ckpts[0], weights_only=False)['state_dict']
    assert not any(k.startswith('teacher.') for k in state)


def test_headline_dgcnn_kdr_config_trains(tmp_path):
    data = str(tmp_path / 'modelnet')
    write_synthetic_modelnet(data, num_classes=4, train_per_class=2,
                             test_per_class=1, num_points=64, log=None)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'dgcnn_bin_kdr.py'))
    assert cfg.model.type == 'BinaryDistiller'
    assert cfg.model.binarize == dict(
        method='lsr', aggregation='ema', dropout='remove')
    assert cfg.model.distill.temperature == 2.0
    assert cfg.model.distill.reg_norm == '1'
    assert cfg.model.teacher == 'configs/dgcnn/dgcnn_fp_modelnet40.py'
    teacher_dir = tmp_path / 'teacher'
    teacher_dir.mkdir()
    teacher_cfg, _ = load_model_config(cfg.model.teacher)
    _save_teacher(teacher_cfg, str(teacher_dir))
    cfg.model.teacher_ckpt = str(teacher_dir)  # a work dir: latest ckpt
    _light(cfg, str(tmp_path / 'work'))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = data
        cfg[name].dataset.num_points = 32
    runner = Runner.from_cfg(cfg)
    runner.train()
    _check_run(runner, str(tmp_path / 'work'))


def _shrink_dgcnn(backbone):
    backbone.num_samples = (8, 8, 8)  # fewer neighbours


def _shrink_pointnet2(backbone):
    backbone.num_points = (32, 16, 8, 4)  # few sampled centres
    backbone.num_samples = (8, 8, 8, 8)  # and neighbours


@pytest.mark.parametrize('config,shrink,first_pair,eta', [
    ('dgcnn/dgcnn_bin_kdr_s3dis-seg.py', _shrink_dgcnn,
     'backbone.GF_modules.0', 0.01),
    # the distilled pooling outputs are the set-abstraction layers' maxima
    ('pointnet2/pointnet2-ssg_bin_kdr_s3dis-seg.py', _shrink_pointnet2,
     'backbone.SA_modules.0', 0.002),
])
def test_s3dis_seg_kdr_config_trains(tmp_path, config, shrink, first_pair,
                                     eta):
    data = str(tmp_path / 's3dis')
    create_synthetic_s3dis(data, areas=(1, 5), rooms_per_area=1,
                           points_per_room=256, num_points=64)
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    assert cfg.model.type == 'BinaryDistiller'
    assert cfg.model.distill.eta == eta
    # Small teacher/student and few patch points.
    teacher_cfg, _ = load_model_config(cfg.model.teacher)
    shrink(teacher_cfg.backbone)
    teacher_cfg.test_cfg.num_points = 64
    teacher_cfg.test_cfg.batch_size = 32
    teacher_cfg.test_cfg.block_size = 2.0  # few sliding patches per room
    teacher_cfg.test_cfg.sample_rate = 1.0
    teacher_dir = tmp_path / 'teacher'
    teacher_dir.mkdir()
    _save_teacher(teacher_cfg, str(teacher_dir))
    cfg.model.teacher = teacher_cfg.to_dict()
    cfg.model.teacher_ckpt = str(teacher_dir)
    _light(cfg, str(tmp_path / 'work'))
    cfg.custom_hooks = [dict(type='TeacherValHook', max_batches=1)]
    train = cfg.train_dataloader.dataset
    train.data_root = data
    train.ann_files = ['s3dis_infos_Area_1.pkl']
    train.scene_idxs = ['seg_info/Area_1_resampled_scene_idxs.npy']
    assert train.pipeline[3].type == 'IndoorPatchPointSample'
    train.pipeline[3].num_points = 64
    for name in ('val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = data
        cfg[name].batch_size = 1
    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert model.pair_names[0].startswith(first_pair)
    assert model.student.decode_head.ignore_index == 13
    runner.train()
    _check_run(runner, str(tmp_path / 'work'))


@pytest.mark.parametrize('path', sorted(
    glob.glob(osp.join(REPO, 'configs', '*', '*_bin_*_modelnet40.py'))))
def test_every_binary_config_parses(path):
    cfg = Config.fromfile(path)
    m = cfg.model
    assert m.type == 'BinaryDistiller'
    assert m.binarize.aggregation in ('max', 'ema')
    kdr = '-kdr_' in osp.basename(path)
    assert (m.distill.lambda_ > 0 and m.distill.eta > 0) == kdr
    assert osp.isfile(osp.join(REPO, m.teacher))
