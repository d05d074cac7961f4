# Copyright (c) mmbinpc contributors. All rights reserved.
"""Config preparation shared by ``tools/train.py`` and ``tools/test.py``:
the epoch count with its schedulers, distributed runs on CPU, and the
synthetic-data warning."""
import logging
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log


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
        print_log(
            f'{BANNER}\n(data_root={root})',
            logger='current',
            level=logging.WARNING)
