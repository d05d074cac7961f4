# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/deploy/export_packed.py packs only a checkpoint that fits the
binary model and comes from a binary run."""
import copy
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmbinpc.binary import build_binarized
from mmbinpc.errors import CheckpointMismatchError

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FP = dict(
    type='PointClassifier',
    backbone=dict(
        type='PointNet',
        channels=(16, 16, 16, 32, 64),
        input_transform=False,
        feature_transform=False),
    head=dict(
        type='PointClsHead',
        in_channels=64,
        num_classes=4,
        mid_channels=(32, 16)))
BIN = dict(method='xnor', aggregation='ema')


def _tool():
    path = os.path.join(ROOT, 'tools/deploy/export_packed.py')
    spec = importlib.util.spec_from_file_location('tool_export_ckpt', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_cfg(path, model):
    path.write_text(f'model = {model!r}\n')
    return str(path)


def _save(model_cfg, path, cfg_text=None):
    """A checkpoint of ``model_cfg``, with mmengine's recorded config."""
    model = build_binarized(copy.deepcopy(model_cfg))
    meta = {} if cfg_text is None else {'cfg': cfg_text}
    torch.save({'meta': meta, 'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture
def cfgs(tmp_path):
    fp = _write_cfg(tmp_path / 'fp.py', FP)
    binary = _write_cfg(tmp_path / 'bin.py', dict(FP, binarize=BIN))
    return tmp_path, fp, binary


def test_fp32_checkpoint_is_refused(cfgs):
    tmp, fp, binary = cfgs
    # XNOR layers keep the FP32 parameter names: the keys fit, the run
    # that wrote the checkpoint (its recorded config) says FP32
    ckpt = _save(FP, tmp / 'teacher.pth', Config.fromfile(fp).pretty_text)
    out = str(tmp / 'm.packed')
    with pytest.raises(CheckpointMismatchError) as err:
        _tool().main([binary, ckpt, out, '--points', '32'])
    assert err.value.path == ckpt and 'trains an FP32 model' in str(err.value)
    assert not os.path.exists(out)
    _tool().main(
        [binary, ckpt, out, '--points', '32', '--allow-fp32-checkpoint'])
    assert os.path.getsize(out) > 0


def test_binary_and_distiller_checkpoints_export(cfgs):
    tmp, _, binary = cfgs
    text = Config.fromfile(binary).pretty_text
    ckpt = _save(dict(FP, binarize=BIN), tmp / 'bin.pth', text)
    _tool().main([binary, ckpt, str(tmp / 'a.packed'), '--points', '32'])
    state = torch.load(ckpt, weights_only=True)['state_dict']
    distilled = str(tmp / 'kdr.pth')
    torch.save({'state_dict': {
        f'student.{k}': v
        for k, v in state.items()
    }}, distilled)
    _tool().main([binary, distilled, str(tmp / 'b.packed'), '--points', '32'])


def test_mismatch_is_an_error_unless_allowed(cfgs):
    tmp, _, binary = cfgs
    other = dict(FP, head=dict(FP['head'], num_classes=7), binarize=BIN)
    ckpt = _save(other, tmp / 'other.pth')
    out = str(tmp / 'm.packed')
    with pytest.raises(
            CheckpointMismatchError,
            match=r'other\.pth: does not fit the PointClassifier '
            r'model: .*\(7, 16\) in the checkpoint vs \(4, 16\)'):
        _tool().main([binary, ckpt, out, '--points', '32'])
    assert not os.path.exists(out)
    _tool().main(
        [binary, ckpt, out, '--points', '32', '--allow-partial-checkpoint'])
    assert os.path.exists(out)


def test_no_binary_layer_and_exit_status(cfgs):
    tmp, fp, binary = cfgs
    ckpt = _save(FP, tmp / 'fp.pth')
    with pytest.raises(SystemExit, match='not a binary model'):
        _tool().main([fp, ckpt, str(tmp / 'x.packed')])
    proc = subprocess.run([
        sys.executable,
        os.path.join(ROOT, 'tools/deploy/export_packed.py'), binary,
        str(tmp / 'fp.py'),
        str(tmp / 'x.packed')
    ],
                          capture_output=True,
                          text=True,
                          cwd=ROOT,
                          timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1
    assert f"error: checkpoint {tmp / 'fp.py'}: cannot be read" in \
        proc.stderr
    assert 'Traceback' not in proc.stderr
