# Copyright (c) mmbinpc contributors. All rights reserved.
"""IRNetScheduleHook drives IR-Net's EDE from the runner's progress."""
import warnings

import pytest
import torch
from mmdet3d.registry import HOOKS
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmbinpc.binary import BinLinear
from mmbinpc.engine import IRNetScheduleHook, set_irnet_progress


class _Points(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        gen = torch.Generator().manual_seed(idx)
        return dict(
            inputs=torch.randn(4, generator=gen),
            target=torch.randn(2, generator=gen))


class _TinyBinary(BaseModel):
    """Two IR-Net layers; records (t, k) seen by every training step."""

    def __init__(self):
        super().__init__()
        self.fc1 = BinLinear(4, 8, binarizer='irnet')
        self.fc2 = BinLinear(8, 2, binarizer='irnet')
        self.seen = []

    def forward(self, inputs, target=None, mode='tensor'):
        out = self.fc2(torch.tanh(self.fc1(inputs)))
        if mode == 'loss':
            self.seen.append((self.fc1.binarizer.t, self.fc2.binarizer.t,
                              self.fc1.binarizer.k))
            return dict(loss=(out - target).pow(2).mean())
        return out


def test_hook_is_registered():
    assert HOOKS.get('IRNetScheduleHook') is IRNetScheduleHook


def test_set_irnet_progress_counts_binarizers():
    model = _TinyBinary()
    assert set_irnet_progress(model, 0.25) == 2
    assert model.fc1.binarizer.t == pytest.approx(10**-2)
    assert model.fc2.binarizer.k == pytest.approx(100.0)


def test_runner_schedule(tmp_path):
    model = _TinyBinary()
    before = model.fc1.weight.detach().clone()
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=_Points(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=100),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='IRNetScheduleHook')],
        default_hooks=dict(logger=None, checkpoint=None),
        default_scope='mmdet3d')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        runner.train()
    assert not [w for w in caught if 'EDE schedule' in str(w.message)]
    # progress = iter / max_iters = 0, 1/4, 2/4, 3/4 -> t = 10^(-3 + 4p)
    expected = [10**(-3 + 4 * i / 4) for i in range(4)]
    assert [s[0] for s in model.seen] == pytest.approx(expected)
    assert [s[1] for s in model.seen] == pytest.approx(expected)
    assert [s[2] for s in model.seen
            ] == pytest.approx([max(1 / t, 1.0) for t in expected])
    assert not torch.equal(model.fc1.weight.detach(), before)
