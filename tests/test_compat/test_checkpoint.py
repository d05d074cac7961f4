# Copyright (c) mmbinpc contributors. All rights reserved.
"""Full mmengine Runner checkpoints save and resume under torch's
``weights_only=True`` default (mmengine issue #1655)."""
import pickle

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn
from torch.utils.data import Dataset

from mmbinpc.compat import load_checkpoint_file


class ToyRegressor(BaseModel):
    """y = w·x + b fitted with an MSE loss."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, inputs, targets, mode='tensor'):
        pred = self.linear(
            torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            target = torch.stack(targets) if isinstance(targets, list) \
                else targets
            return dict(loss=((pred - target)**2).mean())
        return pred


class ToyData(Dataset):

    def __init__(self, n: int = 16) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, generator=gen)
        self.y = self.x.sum(dim=1, keepdim=True)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


def _runner(work_dir, max_epochs, **kwargs) -> Runner:
    return Runner(
        model=ToyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        default_scope='mmdet3d',  # what mmbinpc configs use; the global
        # current scope outlives the test, so keep it the project's own
        experiment_name=f'ckpt_{max_epochs}_{len(kwargs)}',
        **kwargs)


def test_full_runner_checkpoint_resumes(tmp_path):
    first = _runner(tmp_path, max_epochs=1)
    first.train()
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()
    # The checkpoint really holds non-tensor objects that plain
    # weights_only loading (without mmbinpc's allowlist) refuses.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)

    resumed = _runner(tmp_path, max_epochs=2, resume=True, load_from=str(ckpt))
    resumed.train()
    assert resumed.epoch == 2
    assert resumed.iter == 8  # 4 iterations restored + 4 new
    state = load_checkpoint_file(str(tmp_path / 'epoch_2.pth'))
    assert state['meta']['epoch'] == 2
    assert 'message_hub' in state


def test_load_checkpoint_into_model(tmp_path):
    model = ToyRegressor()
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'epoch': 3}}, path)
    other = ToyRegressor()
    load_checkpoint(other, str(path), map_location='cpu')
    assert torch.equal(other.linear.weight, model.linear.weight)


def test_missing_checkpoint_names_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(str(tmp_path / 'nope.pth'))


def test_untrusted_object_is_refused_with_clear_error(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': ToyData(2)}, path)
    with pytest.raises(RuntimeError, match='add_safe_globals'):
        load_checkpoint_file(str(path))


class _SneakyGetattr:
    """Pickles as ``getattr(OrderedDict, 'fromkeys')``: a getattr on an
    allowed type that is not a HistoryBuffer statistics method."""

    def __reduce__(self):
        from collections import OrderedDict
        return getattr, (OrderedDict, 'fromkeys')


def test_getattr_is_only_allowed_for_history_buffer(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save({'x': _SneakyGetattr()}, path)
    with pytest.raises(RuntimeError, match='only HistoryBuffer statistics'):
        load_checkpoint_file(str(path))


def test_config_dict_in_meta_loads(tmp_path):
    """mmdet3d configs put ConfigDicts into ``meta.dataset_meta`` and the
    message hub's runtime info; such checkpoints must load."""
    from mmengine.config import ConfigDict
    meta = ConfigDict(
        classes=('ceiling', 'floor'),
        seg_label_mapping=dict(a=1, b=ConfigDict(c=[1, 2])))
    path = tmp_path / 'seg.pth'
    torch.save({'meta': {'dataset_meta': meta}, 'state_dict': {}}, path)
    loaded = load_checkpoint_file(str(path))['meta']['dataset_meta']
    assert isinstance(loaded, ConfigDict)
    assert loaded.to_dict() == meta.to_dict()
