# Copyright (c) mmbinpc contributors. All rights reserved.
"""BNRecalibrationHook / recalibrate_batchnorm: statistics in eval order."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from torch import nn

from mmbinpc.binary.layers import BinLinear
from mmbinpc.engine.hooks import BNRecalibrationHook, recalibrate_batchnorm
from mmbinpc.engine.hooks.bn_recalibration_hook import _merge


class _Square(nn.Module):

    def forward(self, x):
        return x * x


def test_each_layer_sees_its_eval_mode_input():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.BatchNorm1d(3), _Square(), nn.BatchNorm1d(3),
        BinLinear(3, 2, binarizer=dict(type='xnor', center_input=True)))
    net.train()
    x = torch.randn(64, 3) * 4 + 2
    count = recalibrate_batchnorm(net, lambda: net(x))
    assert count == 2 and net.training  # mode restored
    bn1, bn2, layer = net[0], net[2], net[3]
    torch.testing.assert_close(bn1.running_mean, x.mean(0))
    torch.testing.assert_close(bn1.running_var, x.var(0, unbiased=True))
    # the second BN's input: the square of the eval-mode first BN output
    h = ((x - x.mean(0)) / torch.sqrt(x.var(0) + bn1.eps))**2
    torch.testing.assert_close(bn2.running_mean, h.mean(0))
    torch.testing.assert_close(bn2.running_var, h.var(0))
    z = (h - h.mean(0)) / torch.sqrt(h.var(0) + bn2.eps)
    torch.testing.assert_close(
        layer.binarizer.input_center, z.mean(0), atol=1e-6, rtol=1e-5)
    assert bool(layer.binarizer.input_center_ready)


def test_errors_and_merge():
    with pytest.raises(RuntimeError, match='reached no BatchNorm'):
        net = nn.Linear(2, 2)
        recalibrate_batchnorm(net, lambda: net(torch.randn(3, 2)))
    with pytest.raises(ValueError, match='num_samples'):
        BNRecalibrationHook(num_samples=1)
    merged = _merge([
        dict(inputs=dict(points=[1, 2]), data_samples=['a']),
        dict(inputs=dict(points=[3]), data_samples=['b'])
    ])
    assert merged == dict(
        inputs=dict(points=[1, 2, 3]), data_samples=['a', 'b'])
    assert torch.equal(
        _merge([torch.ones(1, 2), torch.zeros(2, 2)]),
        torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]))


def test_hook_runs_before_validation(tmp_path, tiny_pointnet_config):
    cfg_file = tiny_pointnet_config(
        "train_cfg = dict(max_epochs=1, val_interval=1)\n"
        "custom_hooks = [dict(type='BNRecalibrationHook', num_samples=3)]\n")
    cfg = Config.fromfile(cfg_file)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    log = open(glob.glob(osp.join(cfg.work_dir, '*', '*.log'))[0]).read()
    bns = sum(
        isinstance(m, nn.modules.batchnorm._BatchNorm)
        for m in runner.model.modules())
    # batches of 2 until at least 3 samples: 4
    assert (f'BNRecalibrationHook: {bns} BatchNorm layers re-estimated '
            'from 4 training samples') in log
