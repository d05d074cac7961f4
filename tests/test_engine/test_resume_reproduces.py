# Copyright (c) mmbinpc contributors. All rights reserved.
"""SIGKILL a short training at three points, resume each time with
``tools/train.py --resume``, and get the uninterrupted run's weights bit for
bit (RNGStateHook + SafeCheckpointHook, on by default)."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
WORKERS = [
    'train_dataloader.num_workers=2',
    'train_dataloader.persistent_workers=True'
]

CONFIG = """
_base_ = [{base!r}]
custom_imports = dict(imports=['mmbinpc', 'resume_faults'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='KillAtHook')]
randomness = dict(seed=7, deterministic=True)
# A small PointNet; the head keeps its dropout (torch RNG) and the train
# pipeline its point dropout, scaling, shift and shuffle (NumPy RNG).
model = dict(
    backbone=dict(channels=(8, 8, 8, 16, 32), input_transform=False,
                  feature_transform=False),
    head=dict(in_channels=32, num_classes=2, mid_channels=(16, 8)))
_data = dict(data_root={root!r}, num_points=32)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=_data)
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=_data)
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=1))
"""


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
    tmp = tmp_path_factory.mktemp('resume')
    root = str(tmp / 'data')
    # 2 classes x 9 shapes: 16 train (4 iterations of 4), 2 validation
    write_synthetic_modelnet(
        root,
        num_classes=2,
        train_per_class=9,
        test_per_class=1,
        num_points=64,
        log=None)
    cfg = tmp / 'tiny_pointnet.py'
    cfg.write_text(
        CONFIG.format(
            base=osp.join(REPO, 'configs/pointnet/pointnet_fp_modelnet40.py'),
            root=root))
    return tmp, str(cfg)


def _train(cfg, work, kill_at='', resume=False, options=(), wait=True):
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        MMBINPC_KILL_AT=kill_at,
        PYTHONPATH=os.pathsep.join(
            [HERE, REPO, os.environ.get('PYTHONPATH', '')]))
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools/train.py'), cfg, '--work-dir', work, '--epochs',
        '3'
    ]
    cmd += ['--resume'] if resume else []
    cmd += ['--cfg-options', *options] if options else []
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True)
    return _finish(proc) if wait else proc


def _finish(proc):
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _weights(path):
    return torch.load(
        path, map_location='cpu', weights_only=False)['state_dict']


def _latest(work):
    with open(osp.join(work, 'last_checkpoint')) as f:
        return f.read().strip()


def test_killed_three_times_resumes_to_identical_weights(setup):
    tmp, cfg = setup
    ref_work, work = str(tmp / 'uninterrupted'), str(tmp / 'killed')
    # The reference loads data in the main process, the killed chain with 2
    # persistent workers: the batches are seeded the same either way.
    reference = _train(cfg, ref_work, wait=False)

    # 1. mid-epoch: before iteration 2 of the second epoch
    rc, log = _train(cfg, work, 'train_iter:1:2', options=WORKERS)
    assert rc == -9, log[-3000:]
    assert _latest(work).endswith('epoch_1.pth')
    # 2. during validation after epoch 2 (resumed from epoch_1.pth)
    rc, log = _train(cfg, work, 'val_iter:2:0', True, WORKERS)
    assert rc == -9 and 'resumed epoch: 1' in log, log[-3000:]
    assert _latest(work).endswith('epoch_2.pth')
    # 3. while epoch_3.pth is written: data in the temp file, not renamed
    rc, log = _train(cfg, work, 'replace:epoch_3.pth', True, WORKERS)
    assert rc == -9 and 'resumed epoch: 2' in log, log[-3000:]
    assert not osp.exists(osp.join(work, 'epoch_3.pth'))
    assert any(n.startswith('.epoch_3.pth.') for n in os.listdir(work))
    assert _latest(work).endswith('epoch_2.pth')
    _weights(_latest(work))  # what resume will load is complete
    # 4. resumed from epoch_2.pth to the end
    rc, log = _train(cfg, work, '', True, WORKERS)
    assert rc == 0 and 'resumed epoch: 2' in log, log[-3000:]
    assert not any(n.endswith('.part') for n in os.listdir(work))

    rc, ref_log = _finish(reference)
    assert rc == 0, ref_log[-3000:]
    expected = _weights(osp.join(ref_work, 'epoch_3.pth'))
    got = _weights(osp.join(work, 'epoch_3.pth'))
    assert list(got) == list(expected)
    differ = [k for k in expected if not torch.equal(got[k], expected[k])]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    # and the run did train (epoch 3 differs from the start of epoch 3)
    start = _weights(osp.join(work, 'epoch_2.pth'))
    assert any(not torch.equal(start[k], got[k]) for k in got
               if got[k].is_floating_point())
