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
import logging
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log


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
    parser.add_argument('--amp',
                        action='store_true',
                        help='automatic mixed precision')
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
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_max_epochs(cfg: Config,
                   epochs: int,
                   old: Optional[int] = None) -> None:
    """Set ``train_cfg.max_epochs`` and stretch the epoch-based schedulers
    that ended at the previous value ``old`` (default: the current one)."""
    if epochs < 1:
        raise ValueError(f'--epochs must be >= 1, got {epochs}')
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_epochs' not in train_cfg:
        raise ValueError('--epochs needs an epoch-based train_cfg with '
                         'max_epochs')
    old = train_cfg['max_epochs'] if old is None else old
    cfg.train_cfg.max_epochs = epochs
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for sched in schedulers:
        if not sched.get('by_epoch', True) or sched.get('end') != old:
            continue
        sched['end'] = epochs
        if sched.get('T_max') == old - sched.get('begin', 0):
            sched['T_max'] = epochs - sched.get('begin', 0)
    val_interval = train_cfg.get('val_interval', 1)
    if val_interval > epochs:
        cfg.train_cfg.val_interval = epochs


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Distributed data parallel without CUDA: gloo, no device ids.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its DDP
    wrapper passes ``device_ids``, both of which fail on CPU; so the process
    group is created here (the Runner then reuses it) and the wrapper gets
    ``device_ids=None``.
    """
    import torch
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(f'--launcher {launcher} needs CUDA; on CPU use '
                           f'--launcher pytorch (torchrun, gloo)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper


def warn_if_synthetic(cfg: Config, loader: str = 'train_dataloader') -> None:
    """Say loudly (in the current log) when the data is the synthetic
    stand-in written by tools/create_synthetic_modelnet.py."""
    from mmbinpc.datasets.synthetic_modelnet import BANNER, is_synthetic
    dataset = (cfg.get(loader) or {}).get('dataset') or {}
    root = dataset.get('data_root')
    if root and osp.isdir(root) and is_synthetic(root):
        print_log(f'{BANNER}\n(data_root={root})',
                  logger='current',
                  level=logging.WARNING)


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
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    import mmbinpc  # noqa: F401  (registers everything, CPU point ops)
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    warn_if_synthetic(cfg)  # after the Runner: lands in its log file too
    runner.train()
    return runner


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    main()
