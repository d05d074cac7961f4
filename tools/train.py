# Copyright (c) mmbinpc contributors. All rights reserved.
"""Train a model from an mmbinpc / mmdet3d config with mmengine's Runner.

Examples::

    python tools/train.py configs/pointnet/pointnet_fp_modelnet40.py
    python tools/train.py CONFIG --epochs 5 --work-dir work_dirs/quick
    python tools/train.py CONFIG --resume                 # latest checkpoint
    bash tools/dist_train.sh CONFIG 2                     # torchrun, CPU: gloo

Checkpoints are written kill-safe (SafeCheckpointHook: temporary file, then
rename) and carry the random state (RNGStateHook), so ``--resume`` after a
crash or a SIGKILL continues the run as if it had not stopped; see
docs/security_and_reliability.md.

``--epochs N`` (or ``--cfg-options train_cfg.max_epochs=N``) sets
``train_cfg.max_epochs`` and stretches every epoch-based parameter scheduler
that ended at the old ``max_epochs`` (e.g. the cosine decay) to end at
``N``. On a machine without CUDA, ``--launcher pytorch`` runs distributed
data parallel on CPU with the gloo backend.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, DictAction

from mmbinpc.apis.allocator import keep_freed_memory
from mmbinpc.apis.launch import (set_max_epochs, setup_cpu_distributed,
                                 warn_if_synthetic)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a point-cloud model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--epochs',
        type=int,
        help='number of epochs (rescales epoch-based LR schedules too)')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest one in the '
        'work dir when no path is given. With the default runtime '
        '(RNGStateHook) and randomness.deterministic=True the resumed run '
        'ends with the same weights as an uninterrupted one')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the LR with the total batch size (auto_scale_lr)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (e.g. '
        'train_dataloader.batch_size=8 train_cfg.max_epochs=5)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_config(args: argparse.Namespace) -> Config:
    from mmbinpc.models.distillers import find_config_file
    cfg = Config.fromfile(find_config_file(args.config))  # mmdet3d::... too
    cfg.launcher = args.launcher
    old_epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    new_epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
    if args.epochs is not None:
        set_max_epochs(cfg, args.epochs, old=old_epochs)
    elif new_epochs != old_epochs and old_epochs is not None:
        # --cfg-options train_cfg.max_epochs=N: keep the schedule consistent.
        set_max_epochs(cfg, new_epochs, old=old_epochs)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr='
                               'dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    from mmbinpc.binary import expand_binarize_key
    cfg.model = expand_binarize_key(cfg.model)  # binarize= -> 'Binarized'
    return cfg


def main(argv: Optional[List[str]] = None):
    """Train; returns the Runner (handy for tests and notebooks)."""
    args = parse_args(argv)
    cfg = build_config(args)
    allocator = keep_freed_memory()  # MMBINPC_KEEP_FREED_MEMORY=0: off
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import mmbinpc  # noqa: F401  (registers everything, CPU point ops)
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    warn_if_synthetic(cfg)  # after the Runner: lands in its log file too
    runner.logger.info(f'keep freed memory: {allocator}')
    runner.train()
    return runner


if __name__ == '__main__':
    main()
