# Copyright (c) mmbinpc contributors. All rights reserved.
import copy
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmbinpc.errors import CheckpointMismatchError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, osp.join(REPO, 'tests', 'test_models', 'test_distillers'))
import extract_student  # noqa: E402
from distill_helpers import batch, save_teacher, tiny_classifier  # noqa

BIN = dict(method='lsr', aggregation='ema')


def test_round_trip_into_plain_binary_config(tmp_path):
    teacher = tiny_classifier()
    ckpt = save_teacher(teacher, str(tmp_path / 'teacher.pth'))
    cfg_path = tmp_path / 'kdr.py'
    cfg_path.write_text(
        "custom_imports = dict(imports=['mmbinpc'])\n"
        f'model = dict(type="BinaryDistiller", teacher={teacher!r}, '
        f'teacher_ckpt={ckpt!r}, binarize={BIN!r})\n'
        "custom_hooks = [dict(type='TeacherValHook')]\n")
    cfg = Config.fromfile(str(cfg_path))
    distiller = MODELS.build(copy.deepcopy(cfg.model))
    # one training step so the student differs from the teacher
    distiller.train()
    opt = torch.optim.SGD(
        [p for p in distiller.parameters() if p.requires_grad], lr=0.05)
    inputs, samples = batch()
    loss = sum(v for k, v in distiller.loss(inputs, samples).items()
               if 'loss' in k)
    loss.backward()
    opt.step()
    full = tmp_path / 'epoch_1.pth'
    torch.save({
        'meta': {
            'epoch': 1
        },
        'state_dict': distiller.state_dict()
    }, full)

    out = tmp_path / 'student.pth'
    written = extract_student.extract(str(full), str(out), str(cfg_path))
    student_cfg = Config.fromfile(written['config'])
    # the 'Binarized' factory around the plain student model
    assert student_cfg.model.type == 'Binarized'
    assert student_cfg.model.model.type == 'PointClassifier'
    assert {
        k: v
        for k, v in student_cfg.model.items() if k not in ('type', 'model')
    } == BIN
    assert student_cfg.custom_hooks == []
    plain = MODELS.build(copy.deepcopy(student_cfg.model))
    load_checkpoint(plain, str(out), map_location='cpu', strict=True)
    plain.eval()
    distiller.eval()
    inputs, _ = batch(3)
    expected = distiller(inputs, mode='tensor')
    assert torch.allclose(plain._forward(inputs), expected, atol=1e-5)
    saved = torch.load(out, weights_only=True)
    assert not any(
        k.startswith(('teacher.', 'student.')) for k in saved['state_dict'])


def test_not_a_distiller_checkpoint(tmp_path):
    path = save_teacher(tiny_classifier(), str(tmp_path / 't.pth'))
    with pytest.raises(
            CheckpointMismatchError,
            match=r't\.pth: holds no student\.\* weights'):
        extract_student.extract(path, str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()


def _distiller_run(tmp_path, student_width=16):
    """A checkpoint of a distiller whose student has width 16, and a
    distiller config whose student has ``student_width``."""
    teacher = tiny_classifier()
    ckpt = save_teacher(teacher, str(tmp_path / 'teacher.pth'))
    model = dict(
        type='BinaryDistiller',
        teacher=teacher,
        teacher_ckpt=ckpt,
        binarize=BIN)
    distiller = MODELS.build(copy.deepcopy(model))
    full = str(tmp_path / 'epoch_1.pth')
    torch.save({
        'meta': {
            'epoch': 1
        },
        'state_dict': distiller.state_dict()
    }, full)
    cfg_path = tmp_path / f'kdr_{student_width}.py'
    model['student'] = tiny_classifier(width=student_width)
    cfg_path.write_text("custom_imports = dict(imports=['mmbinpc'])\n"
                        f'model = {model!r}\n')
    return full, str(cfg_path)


def test_weights_must_fit_the_configs_student(tmp_path):
    full, cfg_path = _distiller_run(tmp_path, student_width=24)
    out = str(tmp_path / 'student.pth')
    with pytest.raises(CheckpointMismatchError) as err:
        extract_student.main([full, out, '--config', cfg_path])
    msg = str(err.value)
    assert err.value.path == full and 'another shape' in msg
    assert '(16, 16, 1) in the checkpoint vs (24, 16, 1)' in msg
    assert '--allow-partial-checkpoint' in msg
    assert not osp.exists(out)
    written = extract_student.main(
        [full, out, '--config', cfg_path, '--allow-partial-checkpoint'])
    assert torch.load(written['checkpoint'], weights_only=True)['state_dict']
    # the matching config passes the check
    ok = tmp_path / 'ok'
    ok.mkdir()
    full, cfg_path = _distiller_run(ok)
    extract_student.main([full, out, '--config', cfg_path])


def test_tool_exits_1_with_the_message(tmp_path):
    path = save_teacher(tiny_classifier(), str(tmp_path / 't.pth'))
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'extract_student.py'), path,
        str(tmp_path / 'out.pth')
    ],
                          capture_output=True,
                          text=True,
                          cwd=REPO,
                          env=dict(os.environ, OMP_NUM_THREADS='1'),
                          timeout=120)
    assert proc.returncode == 1
    assert f'error: checkpoint {path}: holds no student' in proc.stderr
    assert 'Traceback' not in proc.stderr
