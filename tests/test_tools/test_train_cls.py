# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/train.py, tools/test.py, tools/dist_train.sh and tools/dist_test.sh
on a tiny dataset."""
import glob
import os
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmbinpc.experiments.runner import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/pointnet/pointnet_fp_modelnet40.py')


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread (see tests/test_models/test_classifiers)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    from mmbinpc.datasets.synthetic_modelnet import write_synthetic_modelnet
    root = str(tmp_path_factory.mktemp('tiny_mn'))
    write_synthetic_modelnet(
        root,
        num_classes=2,
        train_per_class=5,  # 4 train + 1 val
        test_per_class=2,
        num_points=96,
        log=None)
    return root


def _small_options(root):
    opts = ['model.head.num_classes=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [
            f'{loader}.batch_size=4', f'{loader}.num_workers=0',
            f'{loader}.persistent_workers=False',
            f'{loader}.dataset.data_root={root}',
            f'{loader}.dataset.num_points=64'
        ]
    return opts


def test_set_max_epochs_rescales_the_cosine():
    train = load_tool('train')
    cfg = Config.fromfile(CONFIG)
    assert cfg.train_cfg.max_epochs == 200
    train.set_max_epochs(cfg, 3)
    assert cfg.train_cfg.max_epochs == 3
    sched = cfg.param_scheduler[0]
    assert sched['end'] == 3 and sched['T_max'] == 3
    with pytest.raises(ValueError, match='>= 1'):
        train.set_max_epochs(cfg, 0)
    # The same through --cfg-options.
    args = train.parse_args(
        [CONFIG, '--cfg-options', 'train_cfg.max_epochs=4'])
    cfg = train.build_config(args)
    assert cfg.param_scheduler[0]['end'] == 4
    assert cfg.param_scheduler[0]['T_max'] == 4


def test_train_then_test_tools(tiny_root, tmp_path, capsys):
    train, test = load_tool('train'), load_tool('test')
    work = str(tmp_path / 'work')
    runner = train.main(
        [CONFIG, '--work-dir', work, '--epochs', '1', '--cfg-options'] +
        _small_options(tiny_root))
    assert runner.train_loop.max_epochs == 1
    assert 'SYNTHETIC DATA - NOT ModelNet40' in capsys.readouterr().out
    ckpts = glob.glob(osp.join(work, '*.pth'))
    assert any('best_overall_acc' in c for c in ckpts), ckpts
    metrics = test.main([
        CONFIG,
        osp.join(work, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test'), '--cfg-options'
    ] + _small_options(tiny_root))
    assert set(metrics) == {'overall_acc', 'mean_class_acc'}
    assert 0 <= metrics['overall_acc'] <= 100
    # test.py on the validation split gives the Runner's own validation
    # metric of the same checkpoint (same model, loading and metric)
    from mmbinpc.compat import load_checkpoint_file
    best = [c for c in ckpts if 'best_overall_acc' in osp.basename(c)][0]
    runtime = load_checkpoint_file(best)['message_hub']['runtime_info']
    val_acc = runtime['best_score']  # the Runner's validation metric
    on_val = test.main([
        CONFIG,
        osp.join(work, 'epoch_1.pth'), '--work-dir',
        str(tmp_path / 'test_val'), '--cfg-options'
    ] + _small_options(tiny_root) + [
        'test_dataloader.dataset.split=val',
        'test_dataloader.dataset.val_fraction=0.1'
    ])
    assert on_val['overall_acc'] == pytest.approx(val_acc, abs=1e-6)
    # --resume picks the latest checkpoint and continues to epoch 2.
    runner = train.main([
        CONFIG, '--work-dir', work, '--epochs', '2', '--resume',
        '--cfg-options'
    ] + _small_options(tiny_root))
    assert runner.train_loop.epoch == 2
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_and_test_two_processes_gloo(tiny_root, tmp_path):
    """tools/dist_train.sh, then tools/dist_test.sh on its checkpoint: 2
    torchrun processes each on CPU (gloo)."""
    work = str(tmp_path / 'dist')
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1')
    cmd = ['bash', osp.join(REPO, 'tools/dist_train.sh'), CONFIG, '2',
           '--work-dir', work, '--epochs', '1', '--cfg-options'] + \
        _small_options(tiny_root) + ['train_dataloader.batch_size=2',
                                     'default_hooks.logger.interval=1']
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 8 training shapes (one per class held out for validation), 2 per
    # process and batch -> 2 iterations per rank.
    assert 'Epoch(train) [1][2/2]' in log, log[-4000:]
    assert 'overall_acc' in log
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))

    # dist_test.sh: each rank tests half of the 4 test shapes; the metric
    # over the gathered results equals one process testing all of them
    env['PORT'] = str(_free_port())
    ckpt = osp.join(work, 'epoch_1.pth')
    cmd = ['bash', osp.join(REPO, 'tools/dist_test.sh'), CONFIG, ckpt, '2',
           '--work-dir', str(tmp_path / 'dist_test'), '--cfg-options'] + \
        _small_options(tiny_root) + ['test_dataloader.batch_size=1']
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    # 2 iterations per rank; the metric's table counts all 4 shapes
    found = re.findall(r'Epoch\(test\) \[2/2\]\s+overall_acc: ([0-9.]+)', log)
    assert found and re.search(r'overall\s+[0-9.]+\s+4\n', log), log[-4000:]
    single = load_tool('test').main([
        CONFIG, ckpt, '--work-dir',
        str(tmp_path / 'single_test'), '--cfg-options'
    ] + _small_options(tiny_root))
    assert float(found[-1]) == pytest.approx(single['overall_acc'], abs=1e-3)
