# Copyright (c) mmbinpc contributors. All rights reserved.
"""The KDR configs train through mmengine's Runner on tiny generated data."""
import copy
import glob
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
from mmbinpc.models.distillers import load_model_config
from mmbinpc.models.losses import PoolingNormLoss

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
sys.path.insert(0, osp.join(REPO, 'tools'))
from create_synthetic_s3dis import create_synthetic_s3dis  # noqa: E402
from distill_helpers import batch  # noqa: E402


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
        assert torch.isfinite(
            torch.tensor(hub.get_scalar(f'train/{key}').current()))
    assert hub.get_scalar('train/loss_reg').current() > 0
    assert any(k.startswith('teacher/') for k in hub.log_scalars)
    ckpts = [
        p for p in glob.glob(osp.join(work_dir, '*.pth'))
        if 'teacher' not in osp.basename(p)
    ]
    assert ckpts
    state = torch.load(ckpts[0], weights_only=False)['state_dict']
    assert not any(k.startswith('teacher.') for k in state)


def test_headline_dgcnn_kdr_config_trains(tmp_path):
    data = str(tmp_path / 'modelnet')
    write_synthetic_modelnet(
        data,
        num_classes=4,
        train_per_class=2,
        test_per_class=1,
        num_points=64,
        log=None)
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


@pytest.mark.parametrize(
    'config,shrink,first_pair,eta',
    [
        ('dgcnn/dgcnn_bin_kdr_s3dis-seg.py', _shrink_dgcnn,
         'backbone.GF_modules.0', 0.01),
        # the distilled pooling outputs are the set-abstraction layers' maxima
        ('pointnet2/pointnet2-ssg_bin_kdr_s3dis-seg.py', _shrink_pointnet2,
         'backbone.SA_modules.0', 0.002),
    ])
def test_s3dis_seg_kdr_config_trains(tmp_path, config, shrink, first_pair,
                                     eta):
    data = str(tmp_path / 's3dis')
    create_synthetic_s3dis(
        data,
        areas=(1, 5),
        rooms_per_area=1,
        points_per_room=256,
        num_points=64)
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


@pytest.mark.parametrize(
    'path',
    sorted(glob.glob(osp.join(REPO, 'configs', '*', '*_bin_*_modelnet40.py'))))
def test_every_binary_config_parses(path):
    cfg = Config.fromfile(path)
    m = cfg.model
    assert m.type == 'BinaryDistiller'
    assert m.binarize.aggregation in ('max', 'ema')
    kdr = '-kdr_' in osp.basename(path)
    kd_only = '-kd_' in osp.basename(path)  # PointCNN: soft targets only
    assert (m.distill.lambda_ > 0 and m.distill.eta > 0) == kdr
    assert (m.distill.lambda_ > 0 and m.distill.eta == 0) == kd_only
    assert osp.isfile(osp.join(REPO, m.teacher))


def _shrink_pointcnn(backbone) -> None:
    """A small PointCNN for 32-point clouds (same layer kinds)."""
    backbone.update(
        num_points=(-1, 16, 8, 8),
        kernel_sizes=(4, 4, 4, 4),
        dilations=(1, 2, 2, 2),
        channels=(8, 16, 24, 32),
        fc_channels=(24, 12))


def test_pointcnn_fp_and_lsr_kd_configs_train(tmp_path):
    """The FP32 teacher config trains; the LSR + KD student learns from it.

    The student's logged ``loss_ds`` is λ = 0.5 of the soft-target term and
    ``loss_reg`` stays 0 (η = 0); asking for η > 0 stops with an error
    that says what to set instead.
    """
    data = str(tmp_path / 'modelnet')
    write_synthetic_modelnet(
        data,
        num_classes=4,
        train_per_class=4,
        test_per_class=2,
        num_points=64,
        log=None)
    teacher = Config.fromfile(
        osp.join(REPO, 'configs', 'pointcnn', 'pointcnn_fp_modelnet40.py'))
    assert teacher.model.backbone.type == 'PointCNN'
    _shrink_pointcnn(teacher.model.backbone)
    teacher.model.head.in_channels = 12
    student = Config.fromfile(
        osp.join(REPO, 'configs', 'pointcnn',
                 'pointcnn_bin_lsr-kd_modelnet40.py'))
    assert student.model.binarize.method == 'lsr'
    assert student.model.distill.lambda_ == 0.5
    assert student.model.distill.eta == 0
    for cfg, name in ((teacher, 'teacher'), (student, 'student')):
        _light(cfg, str(tmp_path / name))
        cfg.train_dataloader.batch_size = 4
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            cfg[loader].dataset.data_root = data
            cfg[loader].dataset.num_points = 32
    Runner.from_cfg(teacher).train()
    student.model.teacher = teacher.model.to_dict()
    student.model.teacher_ckpt = str(tmp_path / 'teacher')
    runner = Runner.from_cfg(student)
    assert runner.model.pair_names == []  # the avg site is not paired
    runner.train()
    hub = runner.message_hub
    assert hub.get_scalar('train/loss_ds').current() > 0
    assert hub.get_scalar('train/loss_reg').current() == 0
    assert any(k.startswith('teacher/') for k in hub.log_scalars)

    wrong = copy.deepcopy(student.model.to_dict())
    wrong['distill']['eta'] = 0.1
    with DefaultScope.overwrite_default_scope('mmdet3d'), pytest.raises(
            ValueError,
            match=r'no max/EMA pooling site.*pool \(avg\).*'
            r'Set distill.eta=0'):
        MODELS.build(wrong)


def _unshifted_pool(site: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A pooling site's output before EMA's shift, recomputed from its input.

    L_reg compares the students's and teacher's pooled values before EMA
    subtracts δ*(n) (docs/method.md): the plain max (and, for the
    concatenating modes, the average) of the site's input.
    """
    top = x.amax(dim=site.dim, keepdim=site.keepdim)
    if site.mode in ('max', 'ema'):
        return top
    assert site.mode in ('max+avg', 'ema+avg'), site.mode
    avg = x.mean(dim=site.dim, keepdim=site.keepdim)
    return torch.cat([top, avg], dim=site.cat_dim)


@pytest.mark.parametrize(
    'config,override',
    [
        # the configured values, then a second (λ, η, T) and another norm
        ('dgcnn_bin_kdr.py', None),
        ('dgcnn_bin_kdr.py', dict(lambda_=0.2, eta=0.3, temperature=4.0)),
        ('pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py', None),
        ('pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py',
         dict(lambda_=0.9, eta=0.05, temperature=1.5, reg_norm='fro')),
    ])
def test_configured_weights_reach_logged_terms(tmp_path, config, override):
    """λ, η, T (and the norm) of a KDR config weight the logged terms.

    The three terms are recomputed from the logits and pooling inputs the
    student and teacher produced in the same ``train_step`` (captured by
    hooks): ``loss_ce = (1 − λ)·CE``, ``loss_ds = λ·T²·KL(p_t‖p_s)`` at
    temperature ``T`` and ``loss_reg = η·PoolingNormLoss`` over the paired
    sites, each site compared before EMA's shift.
    """
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    distill = dict(cfg.model.distill)
    distill.update(override or {})
    lam, eta = float(distill['lambda_']), float(distill['eta'])
    temp, norm = float(distill['temperature']), distill['reg_norm']
    assert 0 < lam < 1 and eta > 0  # a KDR setting: every term is on
    teacher_cfg, _ = load_model_config(cfg.model.teacher)
    if teacher_cfg.backbone.type == 'DGCNNBackboneCls':
        teacher_cfg.backbone.num_samples = (8, 8, 8, 8)  # fewer neighbours
    teacher_dir = tmp_path / 'teacher'
    teacher_dir.mkdir()
    model_cfg = cfg.model.to_dict()
    model_cfg.update(
        teacher=teacher_cfg.to_dict(),
        distill=distill,
        teacher_ckpt=_save_teacher(teacher_cfg, str(teacher_dir)))
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        model = MODELS.build(model_cfg)
    model.train()

    seen = {'s': {}, 't': {}}

    def keep(role, key):

        def hook(module, inputs, output):
            seen[role].setdefault(key, []).append(
                (module, inputs[0].detach(), output.detach()))

        return hook

    handles = []
    for role, net in (('s', model.student), ('t', model.teacher)):
        handles.append(net.head.register_forward_hook(keep(role, 'logits')))
        sites = dict(net.named_modules())
        for name in model.pair_names:
            handles.append(sites[name].register_forward_hook(keep(role, name)))
    inputs, samples = batch(b=4, n=32)
    optim = OptimWrapper(
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                        lr=0.01))
    log = model.train_step(dict(inputs=inputs, data_samples=samples), optim)
    for h in handles:
        h.remove()

    s_logits = seen['s']['logits'][0][2]
    t_logits = seen['t']['logits'][0][2]
    head = teacher_cfg.head
    labels = torch.stack([s.gt_label for s in samples])
    ce = head.get('loss_weight', 1.0) * F.cross_entropy(
        s_logits, labels, label_smoothing=head.get('label_smoothing', 0.0))
    log_p_t = F.log_softmax(t_logits / temp, dim=1)
    log_p_s = F.log_softmax(s_logits / temp, dim=1)
    kd = temp**2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(1).mean()
    s_outs, t_outs = [], []
    for name in model.pair_names:
        assert len(seen['s'][name]) == len(seen['t'][name]) >= 1
        for (s_site, s_x, _), (t_site, t_x, _) in zip(seen['s'][name],
                                                      seen['t'][name]):
            s_outs.append(_unshifted_pool(s_site, s_x))
            t_outs.append(_unshifted_pool(t_site, t_x))
    # EMA student against a max teacher: the shift is really removed
    last = model.pair_names[-1]
    assert {site.mode for site, _, _ in seen['s'][last]} <= {'ema', 'ema+avg'}
    assert {site.mode for site, _, _ in seen['t'][last]} <= {'max', 'max+avg'}
    reg = PoolingNormLoss(norm)(s_outs, t_outs)

    logged = {k: float(torch.as_tensor(v).detach()) for k, v in log.items()}
    assert logged['loss_ce'] == pytest.approx((1 - lam) * float(ce), rel=1e-5)
    assert logged['loss_ds'] == pytest.approx(lam * float(kd), rel=1e-4)
    assert logged['loss_reg'] == pytest.approx(eta * float(reg), rel=1e-5)
    assert float(kd) > 0 and float(reg) > 0  # the terms are not vacuous
    terms = [v for k, v in logged.items() if k.startswith('loss_')]
    assert logged['loss'] == pytest.approx(sum(terms), rel=1e-5)
