# Copyright (c) mmbinpc contributors. All rights reserved.
"""The teacher checkpoint must fit the teacher exactly; an unreadable file
picked from a work directory is named, with what to do."""
import copy
import re

import pytest
import torch
from distill_helpers import save_teacher, tiny_classifier
from mmdet3d.registry import MODELS

from mmbinpc.errors import CheckpointMismatchError

BIN = dict(method='xnor', aggregation='ema')


def build(teacher, ckpt):
    return MODELS.build(
        dict(
            type='BinaryDistiller',
            teacher=copy.deepcopy(teacher),
            teacher_ckpt=ckpt,
            binarize=BIN))


def _state(path):
    return torch.load(path, weights_only=True)['state_dict']


def test_student_checkpoint_as_teacher_fails_clearly(tmp_path, teacher_cfg,
                                                     teacher_ckpt):
    distiller = build(teacher_cfg, teacher_ckpt)
    student_ckpt = str(tmp_path / 'epoch_3.pth')
    torch.save({
        'meta': {},
        'state_dict': distiller.state_dict()
    }, student_ckpt)
    with pytest.raises(CheckpointMismatchError) as err:
        build(teacher_cfg, student_ckpt)
    msg = str(err.value)
    assert err.value.path == student_ckpt and student_ckpt in msg
    n = len(MODELS.build(copy.deepcopy(teacher_cfg)).state_dict())
    assert re.search(rf'\d+ of the model\'s {n} tensors are not in', msg)
    assert 'BinaryDistiller (teacher + student) checkpoint' in msg
    assert 'student.backbone' in msg  # a few unexpected names
    assert 'teacher_ckpt must be a checkpoint of the FP32 teacher' in msg


def test_missing_extra_and_reshaped_tensors_are_errors(tmp_path, teacher_cfg,
                                                       teacher_ckpt):
    state = _state(teacher_ckpt)
    name = next(k for k in state if k.endswith('.weight'))
    partial = dict(state)
    del partial[name]
    path = str(tmp_path / 'partial.pth')
    torch.save({'state_dict': partial}, path)
    with pytest.raises(
            CheckpointMismatchError,
            match=rf'1 of the model\'s \d+ tensors .*{name}'):
        build(teacher_cfg, path)

    extra = dict(state, **{'head.extra.weight': torch.zeros(2)})
    torch.save({'state_dict': extra}, path)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'1 tensor of the checkpoint is not in the model '
            r'\(head\.extra\.weight\)'):
        build(teacher_cfg, path)

    wider = save_teacher(tiny_classifier(width=24), str(tmp_path / 'w.pth'))
    with pytest.raises(
            CheckpointMismatchError,
            match=r'tensors? ha(s|ve) another shape .*'
            r'\(24, 16, 1\) in the checkpoint vs \(16, 16, 1\) '
            r'in the model'):
        build(teacher_cfg, wider)


def test_truncated_best_in_work_dir_is_named(tmp_path, teacher_cfg,
                                             teacher_ckpt):
    work = tmp_path / 'teacher_run'
    work.mkdir()
    save_teacher(teacher_cfg, str(work / 'epoch_2.pth'))
    best = work / 'best_overall_acc_epoch_2.pth'
    data = open(teacher_ckpt, 'rb').read()
    best.write_bytes(data[:len(data) // 2])  # as a killed write leaves it
    with pytest.raises(CheckpointMismatchError) as err:
        build(teacher_cfg, str(work))
    msg = str(err.value)
    assert err.value.path == str(best)
    assert 'cannot be read' in msg and 'truncated' in msg
    assert f"teacher_ckpt={str(work)!r} is a work directory" in msg
    assert 'set teacher_ckpt to another checkpoint file' in msg
    # the message's advice works
    best.unlink()
    assert build(teacher_cfg, str(work)).teacher_ckpt.endswith('epoch_2.pth')


def test_directory_and_non_checkpoint_files(tmp_path, teacher_cfg):
    junk = tmp_path / 'junk.pth'
    junk.write_text('not a checkpoint')
    with pytest.raises(
            CheckpointMismatchError, match='junk.pth: cannot be read'):
        build(teacher_cfg, str(junk))
    listed = tmp_path / 'list.pth'
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(CheckpointMismatchError, match='holds a list'):
        build(teacher_cfg, str(listed))
