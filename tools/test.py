# Copyright (c) mmbinpc contributors. All rights reserved.
"""Evaluate a checkpoint with mmengine's Runner (test loop).

Examples::

    python tools/test.py configs/pointnet/pointnet_fp_modelnet40.py \
        work_dirs/pointnet_fp_modelnet40/best_overall_acc_epoch_200.pth
    bash tools/dist_test.sh CONFIG CHECKPOINT 2

The checkpoint must fit the config's model exactly (every parameter and
buffer loaded, no unknown key, no tensor of another shape); otherwise the
tool exits with status 1 and says what does not fit (e.g. a teacher
checkpoint given with a student config). ``--allow-partial-checkpoint``
tests whatever fits instead.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

from mmengine.config import Config, DictAction


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a point-cloud model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='test even when the checkpoint does not fit the model '
        '(parameters or buffers left unloaded, unknown keys, tensors of '
        'another shape): what fits is loaded, the rest keeps its initial '
        'values. Without it any mismatch exits with status 1')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
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


def main(argv: Optional[List[str]] = None) -> dict:
    """Test; returns the metrics dict."""
    args = parse_args(argv)
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    import mmbinpc  # noqa: F401
    from mmbinpc.apis import check_checkpoint_file, read_checkpoint
    from mmbinpc.apis.launch import setup_cpu_distributed, warn_if_synthetic
    read_checkpoint(args.checkpoint)  # a bad file fails before the build
    from mmbinpc.models.distillers import find_config_file
    cfg = Config.fromfile(find_config_file(args.config))  # mmdet3d::... too
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    from mmbinpc.binary import expand_binarize_key
    cfg.model = expand_binarize_key(cfg.model)  # binarize= -> 'Binarized'
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    warn_if_synthetic(cfg, 'test_dataloader')
    # The Runner loads non-strictly: check the fit first.
    check_checkpoint_file(
        runner.model,
        args.checkpoint,
        allow_partial=args.allow_partial_checkpoint)
    return runner.test()


if __name__ == '__main__':
    from mmbinpc.errors import MMBinPCFileError
    try:
        main()
    except MMBinPCFileError as err:
        sys.exit(f'error: {err}')
