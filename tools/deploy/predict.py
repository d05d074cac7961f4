# Copyright (c) mmbinpc contributors. All rights reserved.
"""Classify or segment point-cloud files with a bit-packed model.

Usage:
    python tools/deploy/predict.py PACKED FILE [FILE ...] [--points N]
        [--sample first|random|fps] [--classes NAMES] [--topk K]
        [--threads N] [--json OUT]

FILE is a ModelNet-style text file (one point per line, comma-separated
``x,y,z[,nx,ny,nz]``) or a ``.npy`` array (N, C). Each cloud is reduced to
``--points`` points (classifiers: by default the number the model was
exported with, as the dataset does at training time - EMA pooling depends
on it; segmentors keep every point unless ``--points`` is given) and the
model's input channels (xyz, or xyz + normals), then prepared by the test
pipeline's steps recorded in the packed file (e.g. centring and scaling into
the unit sphere), exactly as in testing. ``--classes`` names the outputs,
one name per line (e.g. ``modelnet40_shape_names.txt``).

A segmentation model writes one label per point next to each input:
``<name>.labels.txt`` (one integer per line) for a text cloud,
``<name>.labels.npy`` for a ``.npy`` one, and prints the share of each
class.

The tool needs only NumPy, Numba and ``mmbinpc.deploy.runtime``
(``pip install -r requirements/deploy.txt``): no PyTorch, mmcv or
mmdet3d.

Any bad input (a malformed packed file, an unreadable cloud, an invalid
option) ends with a message naming it and exit status 2.

Example::

    python tools/deploy/predict.py pointnet_lsr.packed \\
        data/modelnet40_normal_resampled/chair/chair_0001.txt \\
        --classes data/modelnet40_normal_resampled/modelnet40_shape_names.txt
"""
import argparse
import json
import os
import sys
from typing import List, Optional

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Classify point-cloud files with a packed model')
    parser.add_argument('packed', help='file written by export_packed.py')
    parser.add_argument('files', nargs='+', help='.txt or .npy clouds')
    parser.add_argument(
        '--points',
        type=int,
        default=None,
        help='points per cloud (default: the export\'s)')
    parser.add_argument(
        '--sample',
        default='first',
        choices=['first', 'random', 'fps'],
        help='how to pick them (default: the first rows, '
        'as ModelNet40Dataset does)')
    parser.add_argument(
        '--classes', default=None, help='class names, one per line')
    parser.add_argument('--topk', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, default=1, help='packed-kernel threads')
    parser.add_argument('--json', default=None, help='write results here')
    args = parser.parse_args(argv)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    if args.points is not None and args.points < 1:
        parser.error(f'--points must be >= 1, got {args.points}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


def read_cloud(path: str, channels: int) -> np.ndarray:
    """One cloud as (N, ``channels``) float32.

    Args:
        path (str): A comma-separated text file or a ``.npy`` array.
        channels (int): Input channels of the model (the first columns
            are used).

    Returns:
        np.ndarray: The points.
    """
    from mmbinpc.modelnet_io import parse_points_txt
    if os.path.isdir(path):
        raise ValueError(f'point cloud {path!r} is a directory; give the '
                         f'.txt or .npy files in it')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'point cloud {path!r} does not exist')
    if path.endswith('.npy'):
        try:
            points = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f'{path}: not a readable .npy array ({err}); '
                             f'save clouds with numpy.save') from None
        if points.ndim != 2 or points.shape[0] == 0:
            raise ValueError(f'{path}: expected an (N, C) array with N > 0, '
                             f'got shape {points.shape}')
        if points.dtype.kind not in 'fiu':
            raise ValueError(f'{path}: dtype {points.dtype} is not numeric')
        with np.errstate(over='ignore', invalid='ignore'):
            points = points.astype(np.float32)  # what the model reads
        if not np.isfinite(points).all():
            raise ValueError(f'{path}: values that are not finite in '
                             f'float32 (NaN, inf or beyond +-3.4e38)')
    else:
        with open(path) as f:
            first = next((line for line in f if line.strip()), '')
        points = parse_points_txt(path, columns=first.count(',') + 1)
    if points.shape[1] < channels:
        raise ValueError(
            f'{path}: {points.shape[1]} values per point, the model needs '
            f'{channels} (xyz{" + normals" if channels == 6 else ""})')
    return np.ascontiguousarray(points[:, :channels], dtype=np.float32)


def class_names(path: Optional[str], num_classes: int) -> List[str]:
    """Names of the model's outputs (their indices when no file is given).

    A file may name fewer classes than the model has outputs - a 10-class
    data set trained with a 40-way head: the extra outputs, never a
    target, keep their index - but not more.
    """
    from mmbinpc.modelnet_io import read_lines
    if path is None:
        return [str(i) for i in range(num_classes)]
    names = read_lines(path, 'class names file')
    if len(names) > num_classes:
        raise ValueError(f'{path} names {len(names)} classes, the model has '
                         f'only {num_classes} outputs; is it the data set '
                         f'the model was trained on?')
    if len(names) < num_classes:
        print(f'note: {path} names {len(names)} of the model\'s '
              f'{num_classes} outputs; the others are shown by index')
    return names + [str(i) for i in range(len(names), num_classes)]


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    try:
        return predict(args)
    except (ValueError, FileNotFoundError) as err:  # incl. MMBinPCFileError
        print(f'error: {err}', file=sys.stderr)
        raise SystemExit(2)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float64, stable)."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    return z / z.sum(axis=-1, keepdims=True)


def labels_path(path: str) -> str:
    """Where the per-point labels of a segmented cloud are written:
    ``<name>.labels.txt`` next to a text cloud, ``<name>.labels.npy`` next
    to a ``.npy`` one."""
    root, ext = os.path.splitext(path)
    return f'{root}.labels{".npy" if ext == ".npy" else ".txt"}'


def predict(args: argparse.Namespace) -> List[dict]:
    """Classify or segment ``args.files`` with ``args.packed`` (see the
    module doc). Imports NumPy, Numba and the packed runtime only."""
    from mmbinpc.deploy.kernels import set_num_threads
    from mmbinpc.deploy.runtime import PackedModel, apply_preprocess
    from mmbinpc.modelnet_io import sample_points

    set_num_threads(args.threads)
    model = PackedModel.load(args.packed)
    meta = model.meta
    segment = meta['task'] == 'segmentation'
    channels = meta['input']['channels']
    # classifiers: the export's cloud size by default; segmentors: every
    # point unless --points is given
    num_points = args.points
    if num_points is None and not segment:
        num_points = meta['input']['num_points']
    rng = np.random.default_rng(0)
    results = []
    names = class_names(args.classes, model.num_classes)
    for path in args.files:
        cloud = read_cloud(path, channels)
        if num_points is not None:
            cloud = sample_points(
                cloud, num_points, args.sample, source=path, rng=rng)
        scores = softmax(model(apply_preprocess(cloud, meta['preprocess'])))[0]
        if segment:  # (N, K): one label per point, written next to it
            labels = scores.argmax(axis=-1)
            out = labels_path(path)
            if out.endswith('.npy'):
                np.save(out, labels.astype(np.int64))
            else:
                np.savetxt(out, labels, fmt='%d')
            counts = np.bincount(labels, minlength=model.num_classes)
            share = {
                names[i]: round(float(c) / len(labels), 4)
                for i, c in enumerate(counts) if c
            }
            results.append(
                dict(file=path, labels=out, points=len(labels), share=share))
            print(f'{path}: {len(labels)} point labels -> {out} (' +
                  ', '.join(f'{k} {v:.1%}' for k, v in share.items()) + ')')
            continue
        order = np.argsort(-scores, kind='stable')[:args.topk]
        best = [
            dict(index=int(i), name=names[int(i)], score=float(scores[i]))
            for i in order
        ]
        results.append(dict(file=path, top=best))
        print(f'{path}: ' + ', '.join(f'{b["name"]} {b["score"]:.3f}'
                                      for b in best))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    packed=args.packed,
                    task=meta['task'],
                    points=num_points,
                    sample=args.sample,
                    results=results),
                f,
                indent=2)
        print(f'results written to {args.json}')
    return results


if __name__ == '__main__':
    main()
