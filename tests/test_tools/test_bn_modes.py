# Copyright (c) mmbinpc contributors. All rights reserved.
import json

import pytest
import torch
from mmdet3d.registry import MODELS
from mmengine.config import Config
from torch import nn

from mmbinpc.experiments.runner import load_tool


class _SignClassifier(nn.Module):
    """Logits (−z, z) of the batch-normalised input z."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1, affine=False)

    def forward(self, x):
        z = self.bn(x)
        return torch.cat([-z, z], dim=1)


def test_modes_by_hand():
    tool = load_tool('analysis/bn_modes')
    net = _SignClassifier()
    # in each batch the larger value is class 1, but the batches sit at
    # +11 and −11: only per-batch normalisation separates them
    batches = [
        torch.tensor([[10.0], [12.0]]),
        torch.tensor([[-12.0], [-10.0]])
    ]
    labels = [torch.tensor([0, 1]), torch.tensor([0, 1])]
    got = tool.bn_mode_accuracies(net, batches, lambda m, x: m(x), labels)
    # eval: running mean 0, var 1 -> each batch all one class (50 %);
    # recalibrated: mean (11 − 11) / 2 = 0 again, var 2 -> 50 %;
    # sequential: the merged batch has mean 0 too -> 50 %
    assert got == dict(
        eval=50.0, batch=100.0, recalibrated=50.0, sequential=50.0)
    # sequential from a training batch that sits at +11: batch A's values
    # are split around 11, batch B's all below it
    got = tool.bn_mode_accuracies(net, batches, lambda m, x: m(x), labels,
                                  torch.tensor([[10.0], [12.0]]))
    assert got['sequential_train'] == 75.0
    # the caller's model is untouched
    assert net.bn.running_mean.tolist() == [0.0]
    assert net.bn.momentum == 0.1 and net.training
    with pytest.raises(ValueError, match='no BatchNorm'):
        tool.bn_mode_accuracies(
            nn.Linear(1, 2), batches, lambda m, x: m(x), labels)


def test_main_on_a_checkpoint(tmp_path, tiny_pointnet_config):
    cfg_file = tiny_pointnet_config()
    model = MODELS.build(Config.fromfile(cfg_file).model)
    ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    out = tmp_path / 'bn.json'
    result = load_tool('analysis/bn_modes').main([
        cfg_file, ckpt, '--split', 'test', '--batch-size', '4', '--json',
        str(out)
    ])
    assert result['shapes'] == 6
    assert set(
        result['accuracy']) == {'eval', 'batch', 'recalibrated', 'sequential'}
    # 6 shapes: every accuracy is a multiple of 100 / 6
    for acc in result['accuracy'].values():
        assert round(acc * 6 / 100, 6) == round(acc * 6 / 100)
    assert json.loads(out.read_text())['accuracy'] == result['accuracy']
    # the checkpoint on disk is unchanged
    again = torch.load(ckpt, weights_only=True)['state_dict']
    for k, v in model.state_dict().items():
        assert torch.equal(again[k], v)
