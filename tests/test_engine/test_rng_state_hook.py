# Copyright (c) mmbinpc contributors. All rights reserved.
"""RNGStateHook's pieces: derived seeds, generator states, per-batch seeding
of dataloader workers, and what a checkpoint stores.

The end-to-end check (SIGKILL, ``--resume``, identical weights) is
tests/test_engine/test_resume_reproduces.py."""
import random

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmbinpc.compat import load_checkpoint_file
from mmbinpc.engine.hooks.rng_state_hook import (RNG_STATE_KEY, BatchSeeding,
                                                 derive_seed, get_rng_state,
                                                 set_rng_state)


class Augmented(Dataset):
    """Each item draws from NumPy, Python and torch, as transforms do."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i):
        return torch.tensor([
            float(i),
            np.random.rand(),
            random.random(),
            torch.rand(()).item()
        ])


def _epochs(num_workers, persistent, epochs=2):
    """All batches of ``epochs`` epochs, seeded per batch."""
    epoch = torch.zeros((), dtype=torch.int64).share_memory_()
    seeding = BatchSeeding(seed=5, epoch=epoch)
    loader = DataLoader(
        Augmented(),
        batch_size=4,
        shuffle=False,
        num_workers=num_workers,
        worker_init_fn=seeding,
        persistent_workers=persistent)
    if num_workers == 0:
        seeding.install(loader.dataset)
    out = []
    for e in range(epochs):
        epoch.fill_(e)
        np.random.seed(e + 100)  # the main process' state must not matter
        out.append(torch.cat(list(loader)))
    return out


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    seeds = {
        derive_seed(s, k, e)
        for s in (0, 1)
        for k in (1, 2)
        for e in (0, 1, 2)
    }
    assert len(seeds) == 12
    assert 0 <= derive_seed(-3, 1) < 2**64


def test_generator_states_round_trip():
    state = get_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_batches_do_not_depend_on_workers_or_persistence():
    reference = _epochs(0, False)
    assert not torch.equal(reference[0][:, 1:], reference[1][:, 1:])
    for workers, persistent in ((2, True), (2, False), (1, True)):
        got = _epochs(workers, persistent)
        for e in range(2):
            assert torch.equal(got[e], reference[e]), (workers, persistent)


class Dropper(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        self.drop = nn.Dropout(0.5)

    def forward(self, inputs, mode='tensor'):
        x = self.drop(self.linear(torch.stack(inputs)[:, 1:2]))
        return dict(loss=x.mean()) if mode == 'loss' else x


def _collate(batch):
    return dict(inputs=list(batch))


def _runner(work_dir, max_epochs, seed, name, hook=None, **kwargs):
    return Runner(
        model=Dropper(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Augmented(),
            batch_size=4,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=_collate),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            rng_state=hook or dict(type='RNGStateHook'),
            checkpoint=dict(type='SafeCheckpointHook')),
        randomness=kwargs.pop('randomness', dict(seed=seed)),
        default_scope='mmdet3d',
        experiment_name=f'{name}_{work_dir.name}',
        **kwargs)


def test_checkpoint_stores_seeds_and_states(tmp_path):
    _runner(tmp_path, 1, 11, 'rng').train()
    saved = load_checkpoint_file(str(tmp_path / 'epoch_1.pth'))
    rng = saved[RNG_STATE_KEY]
    assert rng['seed'] == 11 and rng['sampler_seed'] == 11
    assert set(rng['state']) >= {'python', 'numpy', 'torch'}
    set_rng_state(rng['state'])  # loads back from a weights_only file


def test_resume_gives_back_a_random_sampler_seed(tmp_path):
    # seed=None: mmengine draws one; the resumed Runner draws another and
    # builds its sampler with it before it reads the checkpoint
    _runner(tmp_path, 1, None, 'first').train()
    ckpt = str(tmp_path / 'epoch_1.pth')
    saved = load_checkpoint_file(ckpt)[RNG_STATE_KEY]['sampler_seed']
    resumed = _runner(
        tmp_path, 2, None, 'resumed', resume=True, load_from=ckpt)
    resumed.train()
    assert resumed.train_loop.dataloader.sampler.seed == saved
    assert resumed.seed == saved  # mmengine restores the run's seed itself


def _weight(work_dir, **kwargs):
    torch.manual_seed(0)  # the model is built before the runner seeds
    runner = _runner(work_dir, 2, 3, 'streams', **kwargs)
    runner.train()
    return runner.model.linear.weight.detach().clone()


def test_reseeds_only_deterministic_runs_by_default(tmp_path):
    """A default run keeps mmengine's random streams (results trained
    before the hook existed reproduce); a deterministic one is reseeded."""
    plain = _weight(tmp_path / 'a')
    kept = _weight(
        tmp_path / 'b', hook=dict(type='RNGStateHook', reseed=False))
    forced = _weight(
        tmp_path / 'c', hook=dict(type='RNGStateHook', reseed=True))
    assert torch.equal(plain, kept)
    assert not torch.equal(plain, forced)
    det = dict(seed=3, deterministic=True)
    assert torch.equal(
        _weight(tmp_path / 'd', randomness=det),
        _weight(
            tmp_path / 'e',
            randomness=det,
            hook=dict(type='RNGStateHook', reseed=True)))
