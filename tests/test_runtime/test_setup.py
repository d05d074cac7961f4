# Copyright (c) mmbinpc contributors. All rights reserved.
import json
import os
import subprocess
import sys

import pytest
import torch
from mmengine.runner.checkpoint import CheckpointLoader

import mmbinpc
from mmbinpc import compat, runtime
from mmbinpc.info import collect, format_text, main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.fixture
def restore_effects():
    before = runtime.active()
    yield
    runtime.setup(**{k: v for k, v in before.items() if k != 'version_check'})


def test_import_turns_every_effect_on():
    assert runtime.active() == dict(
        cpu_point_ops=True, safe_checkpoints=True, version_check=True)
    assert mmbinpc.setup is runtime.setup


def test_cpu_point_ops_switch(restore_effects):
    from mmcv.ops import knn
    xyz = torch.rand(1, 16, 3)
    runtime.setup(cpu_point_ops=False)
    assert runtime.active()['cpu_point_ops'] is False
    # mmcv's own knn needs CUDA: torch raises AssertionError on a CPU build
    with pytest.raises((RuntimeError, AssertionError)):
        knn(4, xyz, xyz)
    runtime.setup(cpu_point_ops=True)
    assert runtime.active()['cpu_point_ops'] is True
    assert knn(4, xyz, xyz).shape == (1, 4, 16)


def test_safe_checkpoints_switch(restore_effects):
    runtime.setup(safe_checkpoints=False)
    loader = CheckpointLoader._schemes['']
    assert loader is not compat.load_checkpoint_file
    assert runtime.active()['safe_checkpoints'] is False
    runtime.setup(safe_checkpoints=True)
    assert CheckpointLoader._schemes[''] is compat.load_checkpoint_file
    # and off again restores the same mmengine loader, not a copy
    runtime.setup(safe_checkpoints=False)
    assert CheckpointLoader._schemes[''] is loader


@pytest.mark.parametrize('value,expected', [('0', False), ('off', False),
                                            ('No', False), ('1', True),
                                            ('TRUE', True), ('', True)])
def test_env_flag_values(monkeypatch, value, expected):
    monkeypatch.setenv('MMBINPC_TEST_FLAG', value)
    assert runtime.env_flag('MMBINPC_TEST_FLAG') is expected


def test_env_flag_rejects_other_values(monkeypatch):
    monkeypatch.setenv('MMBINPC_SAFE_CHECKPOINTS', 'maybe')
    with pytest.raises(
            ValueError,
            match="MMBINPC_SAFE_CHECKPOINTS='maybe' is not a "
            'switch; set it to one of 1'):
        runtime.env_flag('MMBINPC_SAFE_CHECKPOINTS')


def test_environment_turns_effects_off_at_import():
    env = dict(
        os.environ,
        MMBINPC_CPU_POINT_OPS='0',
        MMBINPC_SAFE_CHECKPOINTS='off',
        PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-m', 'mmbinpc.info', '--json'],
                         env=env,
                         capture_output=True,
                         text=True,
                         check=True,
                         cwd=REPO).stdout
    effects = json.loads(out)['effects']
    assert {
        k: v['active']
        for k, v in effects.items()
    } == dict(
        cpu_point_ops=False, safe_checkpoints=False, version_check=True)
    assert effects['cpu_point_ops']['env'] == 'MMBINPC_CPU_POINT_OPS'


def test_info_reports_the_live_state(restore_effects, capsys):
    from importlib import metadata
    info = collect()
    assert info['versions']['mmdet3d'] == metadata.version('mmdet3d')
    assert {'BinaryDistiller',
            'Binarized'} <= set(info['registered']['MODELS'])
    assert 'ClsMetric' in info['registered']['METRICS']
    assert set(info['registered']['binarizers (mmbinpc)']) >= {
        'bnn', 'xnor', 'irnet', 'lsr'
    }
    # mmdet3d's own types are not listed as mmbinpc's
    assert 'PointNet2SASSG' not in info['registered']['MODELS']
    runtime.setup(cpu_point_ops=False)
    assert main([]) == 0
    text = capsys.readouterr().out
    assert 'off cpu_point_ops' in text and 'on  safe_checkpoints' in text
    assert format_text(collect()) in text
