# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmbinpc.apis.checkpoint: reading checkpoint files and the exact-fit
check shared by the tools and the distiller."""
import os.path as osp
import sys

import pytest
import torch
from mmdet3d.registry import MODELS
from torch import nn

from mmbinpc.apis import (check_state, checkpoint_state,
                          load_checkpoint_checked, match_state,
                          read_checkpoint, select_student, trained_binary)
from mmbinpc.errors import CheckpointMismatchError

sys.path.insert(
    0,
    osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'test_models',
        'test_distillers'))
from distill_helpers import save_teacher, tiny_classifier  # noqa: E402


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_read_errors_name_the_file(tmp_path):
    cases = {'missing.pth': 'does not exist', '.': 'is a directory'}
    (tmp_path / 'empty.pth').write_bytes(b'')
    cases['empty.pth'] = r'cannot be read.*\(the file is empty\)'
    torch.save({'state_dict': {'w': torch.ones(50)}}, tmp_path / 'full.pth')
    data = (tmp_path / 'full.pth').read_bytes()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    cases['cut.pth'] = 'cannot be read: it is truncated'
    torch.save({'state_dict': {}, 'obj': nn.ReLU()}, tmp_path / 'obj.pth')
    cases['obj.pth'] = r'holds a Python object \(torch\.nn\.modules'
    torch.save(torch.zeros(2), tmp_path / 'tensor.pth')
    cases['tensor.pth'] = 'holds a Tensor, not a checkpoint dict'
    for name, problem in cases.items():
        path = str(tmp_path / name)
        with pytest.raises(CheckpointMismatchError, match=problem) as err:
            read_checkpoint(path)
        assert err.value.path == osp.expanduser(path)
        assert str(err.value).startswith(f'checkpoint {err.value.path}: ')
    assert read_checkpoint(str(tmp_path / 'full.pth'))['state_dict']


def test_state_of_a_checkpoint(tmp_path):
    state = checkpoint_state(
        {'state_dict': {
            'module.a': torch.ones(1),
            'b': torch.zeros(1)
        }})
    assert list(state) == ['a', 'b']
    assert list(checkpoint_state({'x': torch.ones(1)})) == ['x']
    with pytest.raises(CheckpointMismatchError, match='no model weights'):
        checkpoint_state({'state_dict': {}}, 'f.pth')
    with pytest.raises(CheckpointMismatchError, match="entry 'n' is a int"):
        checkpoint_state({'state_dict': {'n': 3}}, 'f.pth')
    mixed = {'student.a': torch.ones(1), 'teacher.a': torch.ones(1)}
    assert list(select_student(mixed)) == ['a']
    assert list(select_student({'a': torch.ones(1)})) == ['a']


def test_match_counts_missing_unexpected_and_reshaped():
    net = _net()
    state = dict(net.state_dict())
    assert match_state(net, state).ok
    # BatchNorm's batch counter may be absent (older torch wrote none)
    del state['1.num_batches_tracked']
    assert match_state(net, state).ok
    del state['0.bias']
    state['extra'] = torch.ones(1)
    state['2.weight'] = torch.ones(5, 4)
    match = match_state(net, state)
    assert match.missing == ['0.bias'] and match.unexpected == ['extra']
    assert match.mismatched == [('2.weight', (5, 4), (2, 4))]
    assert match.expected == len(net.state_dict()) and not match.ok
    text = match.describe()
    assert "1 of the model's 9 tensors is not in the checkpoint (0.bias)" \
        in text
    assert '2.weight (5, 4) in the checkpoint vs (2, 4) in the model' in text
    with pytest.raises(
            CheckpointMismatchError,
            match='f.pth: does not fit '
            'the Sequential model: 1 of'):
        check_state(net, state, 'f.pth')
    assert not check_state(net, state, 'f.pth', allow_partial=True).ok


def test_long_lists_are_shortened():
    net = nn.Sequential(*[nn.Linear(1, 1) for _ in range(6)])
    text = match_state(net, {}).describe()
    assert '12 of the model\'s 12 tensors' in text
    assert '0.weight, 0.bias, 1.weight, 1.bias, ... (8 more)' in text


def test_partial_load_skips_reshaped_tensors(tmp_path):
    net, other = _net(), _net()
    state = dict(other.state_dict())
    state['2.weight'] = torch.ones(7, 4)
    path = str(tmp_path / 'p.pth')
    torch.save({'state_dict': state}, path)
    before = net[2].weight.clone()
    with pytest.raises(CheckpointMismatchError):
        load_checkpoint_checked(net, path)
    match = load_checkpoint_checked(net, path, allow_partial=True)
    assert [k for k, _, _ in match.mismatched] == ['2.weight']
    assert torch.equal(net[0].weight, other[0].weight)
    assert torch.equal(net[2].weight, before)


def test_distiller_may_load_its_teacher_keys(tmp_path):
    teacher = tiny_classifier()
    ckpt = save_teacher(teacher, str(tmp_path / 't.pth'))
    distiller = MODELS.build(
        dict(
            type='BinaryDistiller',
            teacher=teacher,
            teacher_ckpt=ckpt,
            binarize=dict(method='xnor')))
    state = distiller.state_dict()  # the teacher is left out ...
    assert not any(k.startswith('teacher.') for k in state)
    assert match_state(distiller, state).ok
    full = dict(state)  # ... but a checkpoint with it (save_teacher) loads
    full.update({
        f'teacher.{k}': v
        for k, v in distiller.teacher.state_dict().items()
    })
    assert match_state(distiller, full).ok
    assert trained_binary({'state_dict': full}) is True
    assert trained_binary({'meta': {'cfg': "model = dict(type='X')"}}) is \
        False
    assert trained_binary({'meta': {'cfg': 'model = dict(binarize=dict())'}})
    assert trained_binary({'state_dict': {'a': torch.ones(1)}}) is None
