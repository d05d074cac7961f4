# Copyright (c) mmbinpc contributors. All rights reserved.
import copy
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmdet3d.registry import MODELS

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
    opt = torch.optim.SGD([p for p in distiller.parameters()
                           if p.requires_grad], lr=0.05)
    inputs, samples = batch()
    loss = sum(v for k, v in distiller.loss(inputs, samples).items()
               if 'loss' in k)
    loss.backward()
    opt.step()
    full = tmp_path / 'epoch_1.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': distiller.state_dict()},
               full)

    out = tmp_path / 'student.pth'
    written = extract_student.extract(str(full), str(out), str(cfg_path))
    student_cfg = Config.fromfile(written['config'])
    assert student_cfg.model.type == 'PointClassifier'
    assert student_cfg.model.binarize == BIN
    assert student_cfg.custom_hooks == []
    plain = MODELS.build(copy.deepcopy(student_cfg.model))
    load_checkpoint(plain, str(out), map_location='cpu', strict=True)
    plain.eval()
    distiller.eval()
    inputs, _ = batch(3)
    expected = distiller(inputs, mode='tensor')
    assert torch.allclose(plain._forward(inputs), expected, atol=1e-5)
    saved = torch.load(out, weights_only=True)
    assert not any(k.startswith(('teacher.', 'student.'))
                   for k in saved['state_dict'])


def test_not_a_distiller_checkpoint(tmp_path):
    path = save_teacher(tiny_classifier(), str(tmp_path / 't.pth'))
    with pytest.raises(KeyError, match='no student'):
        extract_student.extract(path, str(tmp_path / 'out.pth'))
