# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/test.py refuses a checkpoint that does not fit the config's model
(a teacher checkpoint for a student config and the reverse) instead of
reporting the accuracy of an unloaded model with exit 0."""
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config

from mmbinpc.errors import CheckpointMismatchError
from mmbinpc.experiments.runner import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TEACHER = """
_base_ = [{base!r}]
model = dict(
    backbone=dict(channels=(8, 8, 8, 16, 32), input_transform=False,
                  feature_transform=False),
    head=dict(in_channels=32, num_classes=2, mid_channels=(16, 8)))
_data = dict(data_root={root!r}, num_points=32)
test_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                       dataset=_data)
"""
STUDENT = """
_base_ = [{teacher!r}]
model = dict(_delete_=True, type='BinaryDistiller', teacher={teacher!r},
             teacher_ckpt={ckpt!r},
             binarize=dict(method='lsr', aggregation='ema'))
"""


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Teacher and student configs with a checkpoint of each model."""
    from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
    tmp = tmp_path_factory.mktemp('test_ckpt')
    root = str(tmp / 'data')
    write_synthetic_modelnet(
        root,
        num_classes=2,
        train_per_class=2,
        test_per_class=2,
        num_points=64,
        log=None)
    teacher_cfg = tmp / 'teacher.py'
    teacher_cfg.write_text(
        TEACHER.format(
            base=osp.join(REPO, 'configs/pointnet/pointnet_fp_modelnet40.py'),
            root=root))
    teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
    teacher_ckpt = str(tmp / 'teacher_epoch_1.pth')
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, teacher_ckpt)
    student_cfg = tmp / 'student.py'
    student_cfg.write_text(
        STUDENT.format(teacher=str(teacher_cfg), ckpt=teacher_ckpt))
    student = MODELS.build(
        copy.deepcopy(Config.fromfile(str(student_cfg)).model))
    student_ckpt = str(tmp / 'student_epoch_1.pth')
    torch.save(
        {
            'meta': {
                'experiment_name': 'student_run'
            },
            'state_dict': student.state_dict()
        }, student_ckpt)
    return dict(
        tmp=tmp,
        teacher_cfg=str(teacher_cfg),
        teacher_ckpt=teacher_ckpt,
        student_cfg=str(student_cfg),
        student_ckpt=student_ckpt)


def _test(runs, cfg, ckpt, *extra):
    return load_tool('test').main([
        runs[cfg], runs[ckpt], '--work-dir',
        str(runs['tmp'] / 'work'), *extra
    ])


def test_matching_checkpoints_test(runs):
    for cfg, ckpt in (('teacher_cfg', 'teacher_ckpt'), ('student_cfg',
                                                        'student_ckpt')):
        metrics = _test(runs, cfg, ckpt)
        assert 0 <= metrics['overall_acc'] <= 100


def test_teacher_checkpoint_for_student_config(runs):
    with pytest.raises(CheckpointMismatchError) as err:
        _test(runs, 'student_cfg', 'teacher_ckpt')
    msg = str(err.value)
    assert err.value.path == runs['teacher_ckpt']
    assert 'does not fit the BinaryDistiller model' in msg
    assert 'plain model checkpoint' in msg
    assert 'student.backbone' in msg and '--allow-partial-checkpoint' in msg


def test_student_checkpoint_for_teacher_config(runs):
    with pytest.raises(CheckpointMismatchError) as err:
        _test(runs, 'teacher_cfg', 'student_ckpt')
    msg = str(err.value)
    assert 'does not fit the PointClassifier model' in msg
    assert 'BinaryDistiller (teacher + student) checkpoint' in msg
    assert "written by the run 'student_run'" in msg
    assert 'tools/extract_student.py' in msg


def test_allow_partial_checkpoint_tests_anyway(runs):
    metrics = _test(runs, 'teacher_cfg', 'student_ckpt',
                    '--allow-partial-checkpoint')
    assert 0 <= metrics['overall_acc'] <= 100


def test_exit_status_and_message(runs):
    bad = runs['tmp'] / 'truncated.pth'
    data = open(runs['teacher_ckpt'], 'rb').read()
    bad.write_bytes(data[:100])
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/test.py'), runs['teacher_cfg'],
        str(bad)
    ],
                          capture_output=True,
                          text=True,
                          cwd=REPO,
                          timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f'error: checkpoint {bad}: cannot be read' in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert '--allow-partial-checkpoint' in subprocess.run(
        [sys.executable,
         osp.join(REPO, 'tools/test.py'), '--help'],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120).stdout
