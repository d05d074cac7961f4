# Copyright (c) mmbinpc contributors. All rights reserved.
"""Write a SYNTHETIC dataset in the modelnet40_normal_resampled layout.

NOT ModelNet40: procedurally generated shape families (see
mmbinpc/datasets/synthetic_modelnet.py and docs/datasets.md), for running
the pipeline without downloads. Example::

    python tools/create_synthetic_modelnet.py \
        data/modelnet40_normal_resampled --classes 10 \
        --train-per-class 40 --test-per-class 10 --points 2048
"""
import argparse
import os.path as osp
import time
from typing import List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a SYNTHETIC (not ModelNet40) dataset in the '
        'modelnet40_normal_resampled layout')
    parser.add_argument('out_dir', help='output directory')
    parser.add_argument(
        '--classes', type=int, default=10, help='number of classes (max 23)')
    parser.add_argument('--train-per-class', type=int, default=40)
    parser.add_argument('--test-per-class', type=int, default=10)
    parser.add_argument(
        '--points', type=int, default=2048, help='points per shape file')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--noise',
        type=float,
        default=0.006,
        help='std of the coordinate noise')
    parser.add_argument(
        '--partial-prob',
        type=float,
        default=0.25,
        help='probability that a shape is cut by a plane')
    parser.add_argument(
        '--force',
        action='store_true',
        help='write even if OUT_DIR holds a real (non-'
        'synthetic) dataset')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmbinpc.datasets.synthetic_modelnet import (is_synthetic,
                                                     write_synthetic_modelnet)
    names = osp.join(args.out_dir, 'modelnet40_shape_names.txt')
    if osp.isfile(names) and not is_synthetic(args.out_dir) and \
            not args.force:
        raise SystemExit(
            f'{args.out_dir} already holds a dataset that is not synthetic '
            f'(real ModelNet40?); refusing to overwrite it. Use another '
            f'directory or --force.')
    start = time.time()
    summary = write_synthetic_modelnet(
        args.out_dir,
        num_classes=args.classes,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        num_points=args.points,
        seed=args.seed,
        noise=args.noise,
        partial_prob=args.partial_prob)
    print(f'done in {time.time() - start:.1f} s')
    return summary


if __name__ == '__main__':
    main()
