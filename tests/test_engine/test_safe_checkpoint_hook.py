# Copyright (c) mmbinpc contributors. All rights reserved.
"""SafeCheckpointHook in a real mmengine Runner: a failed write never costs
the previous best or latest checkpoint, and a resumed checkpoint's
``meta['config']`` is not executed."""
import os
import os.path as osp

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmbinpc.compat import load_checkpoint_file
from mmbinpc.engine.hooks import SafeCheckpointHook


class ToyRegressor(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, inputs, targets, mode='tensor'):
        pred = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((pred - torch.stack(targets))**2).mean())
        return pred


class ToyData(Dataset):

    def __init__(self, n: int = 8) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.x[i].sum(0, keepdim=True))


class RisingScore(BaseMetric):
    """``score`` = how many validations ran: every epoch is a new best."""

    calls = 0

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        RisingScore.calls += 1
        return dict(score=float(RisingScore.calls))


class FailSave(Hook):
    """Make one checkpoint write fail (an object torch cannot pickle).

    Args:
        epoch (int): ``meta['epoch']`` of the checkpoint to break.
        best (bool): Break the best checkpoint (saved without optimizer)
            rather than the epoch checkpoint.
    """

    def __init__(self, epoch: int, best: bool) -> None:
        self.epoch, self.best = epoch, best

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        is_best = 'optimizer' not in checkpoint
        if checkpoint['meta']['epoch'] == self.epoch and is_best == self.best:
            checkpoint['unpicklable'] = lambda: None


def _runner(work_dir, max_epochs=3, hooks=(), name='safe', **kwargs):
    RisingScore.calls = 0
    loader = dict(
        dataset=ToyData(),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=4)
    return Runner(
        model=ToyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=Evaluator([RisingScore()]),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(
                type='SafeCheckpointHook',
                interval=1,
                max_keep_ckpts=1,
                save_best='score',
                rule='greater'),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks),
        default_scope='mmdet3d',
        experiment_name=f'{name}_{osp.basename(str(work_dir))}',
        **kwargs)


def _files(work):
    return sorted(n for n in os.listdir(work) if n.endswith('.pth'))


def _latest(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def test_rotations_keep_mmengine_names(tmp_path):
    runner = _runner(tmp_path)
    runner.train()
    hook = [h for h in runner.hooks if isinstance(h, SafeCheckpointHook)][0]
    assert hook.atomic
    assert _files(tmp_path) == ['best_score_epoch_3.pth', 'epoch_3.pth']
    assert _latest(tmp_path) == osp.join(str(tmp_path), 'epoch_3.pth')
    state = load_checkpoint_file(str(tmp_path / 'epoch_3.pth'))
    assert state['message_hub']['runtime_info']['keep_ckpt_ids'] == [3]
    assert state['message_hub']['runtime_info']['best_ckpt'].endswith(
        'best_score_epoch_3.pth')


def test_failed_best_write_keeps_the_previous_best(tmp_path):
    runner = _runner(tmp_path, hooks=[FailSave(epoch=3, best=True)])
    with pytest.raises(Exception):
        runner.train()
    # mmengine deletes best_score_epoch_2.pth before writing the new best
    assert _files(tmp_path) == ['best_score_epoch_2.pth', 'epoch_3.pth']
    for name in _files(tmp_path):
        assert 'state_dict' in load_checkpoint_file(str(tmp_path / name))
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.part')]


def test_failed_epoch_write_keeps_the_previous_latest(tmp_path):
    runner = _runner(tmp_path, hooks=[FailSave(epoch=2, best=False)])
    with pytest.raises(Exception):
        runner.train()
    # max_keep_ckpts=1: mmengine deletes epoch_1.pth before writing epoch 2
    assert _files(tmp_path) == ['best_score_epoch_1.pth', 'epoch_1.pth']
    assert _latest(tmp_path).endswith('epoch_1.pth')
    load_checkpoint_file(_latest(tmp_path))


def test_resume_does_not_execute_meta_config(tmp_path):
    _runner(tmp_path, max_epochs=1, name='first').train()
    ckpt = tmp_path / 'epoch_1.pth'
    state = load_checkpoint_file(str(ckpt))
    marker = tmp_path / 'code_ran'
    state['meta']['config'] = f'open({str(marker)!r}, "w").write("x")\n'
    torch.save(state, ckpt)
    resumed = _runner(
        tmp_path,
        max_epochs=2,
        name='resumed',
        resume=True,
        load_from=str(ckpt))
    resumed.train()
    assert resumed.epoch == 2
    assert not marker.exists()


class WiderRegressor(ToyRegressor):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)


def test_resume_from_another_models_checkpoint_names_the_file(tmp_path):
    """--resume with a checkpoint of another architecture stops with the
    file and the mismatch, not torch's optimizer-group error."""
    from mmbinpc.errors import CheckpointMismatchError
    _runner(tmp_path, max_epochs=1, name='first').train()
    other = _runner(tmp_path, max_epochs=2, name='other', resume=True)
    other.model = WiderRegressor()
    with pytest.raises(
            CheckpointMismatchError,
            match=r'epoch_1\.pth.*another shape.*linear.weight'):
        other.train()
    same = _runner(tmp_path, max_epochs=2, name='same', resume=True)
    same.train()
    assert same.epoch == 2
