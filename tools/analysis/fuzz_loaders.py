# Copyright (c) mmbinpc contributors. All rights reserved.
"""Fuzz the loaders of the files mmbinpc reads: packed models and shape files.

Usage:
    python tools/analysis/fuzz_loaders.py [--packed N] [--data N] [--seed S]
        [--work-dir DIR]

Writes a small trained-shape packed model and a small ModelNet-format data
set, then loads ``N`` mutated copies of each (truncations, byte flips,
edits of the JSON description, arrays of the wrong dtype / shape / length
or with NaN, extra or missing members; for shape files: bad bytes, bad
numbers, wrong column counts, huge values, empty files, duplicate class
names). Every mutant must either load and run (giving finite outputs) or
raise the project's error for that file kind naming the file
(:class:`~mmbinpc.errors.PackedFormatError`,
:class:`~mmbinpc.errors.DatasetFormatError`, or ``ValueError`` /
``FileNotFoundError`` from the shape readers, which name the file too).
Any other exception, a message that does not name the file, or a side
effect of loading (a file created, a module imported because the file
named it) is a failure. Exit status 1 if there was any.

The test suite runs a few dozen mutants of each kind; the figures in
docs/security_and_reliability.md come from ``--packed 1000 --data 200``.
"""
import argparse
import json
import os
import random
import sys
import tempfile
import zipfile
from collections import Counter
from typing import Callable, Dict, List, Tuple

import numpy as np

#: A module name that must never be imported because a file named it.
SENTINEL = 'mmbinpc_fuzz_sentinel'
#: Small binary PointNet with T-Nets off (fast to build and run).
MODEL_CFG = dict(
    type='Binarized',
    model=dict(
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
            mid_channels=(32, 16))),
    method='lsr',
    aggregation='ema')
VALUES = [
    None, -1, 0, 1, 3, 2**40, 1e30, -0.5,
    float('inf'), 'x', '', 'os.system', f'{SENTINEL}.Thing', 'mmdet.Foo', [],
    {}, [1, 2], True, 'PointNet', 'linear', 'conv2d', 'max', 'mean_abs'
]


# ------------------------------------------------------------- packed files
def write_packed_model(path: str) -> None:
    """Export a small binary PointNet with non-trivial statistics."""
    import torch
    from mmdet3d.registry import MODELS

    import mmbinpc  # noqa: F401
    from mmbinpc.deploy.converter import export_packed
    torch.manual_seed(0)
    model = MODELS.build(MODEL_CFG)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    export_packed(
        model.eval(),
        path,
        num_points=64,
        preprocess=['normalize_unit_sphere'])


def _read_members(data: bytes) -> Tuple[Dict, Dict[str, np.ndarray]]:
    import io
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop('__meta__').tobytes())
    return meta, arrays


def _write_members(meta: object, arrays: Dict[str, np.ndarray]) -> bytes:
    import io
    buf = io.BytesIO()
    payload = dict(arrays)
    payload['__meta__'] = np.frombuffer(
        json.dumps(meta).encode('utf-8'), np.uint8)
    np.savez(buf, **payload)
    return buf.getvalue()


def _paths(obj, prefix=()) -> List[Tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k, ))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i, ))
    return out


def _edit_meta(meta: Dict, rng: random.Random) -> object:
    path = rng.choice(_paths(meta)[1:])
    parent = meta
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    action = rng.random()
    if action < 0.25 and isinstance(parent, dict):
        del parent[last]
    elif action < 0.35 and isinstance(parent, list):
        parent.append(parent[last])
    elif action < 0.45 and isinstance(parent, dict):
        parent['custom_imports'] = dict(imports=[SENTINEL])
    elif action < 0.55 and isinstance(parent[last], (int, float)) and \
            not isinstance(parent[last], bool):
        parent[last] = parent[last] * rng.choice([-1, 2, 1000, 10**9])
    else:
        parent[last] = rng.choice(VALUES)
    return meta


def _edit_array(arrays: Dict[str, np.ndarray], rng: random.Random) -> None:
    key = rng.choice(sorted(arrays))
    value = arrays[key]
    action = rng.randrange(7)
    if action == 0:
        del arrays[key]
    elif action == 1 and value.size > 1:
        arrays[key] = value.reshape(-1)[:-1]
    elif action == 2:
        arrays[key] = value.astype(
            rng.choice([np.float64, np.int32, np.uint8, np.float16]))
    elif action == 3 and value.ndim == 2:
        arrays[key] = np.ascontiguousarray(value.T)
    elif action == 4 and value.dtype.kind == 'f' and value.size:
        value = value.copy()
        value.reshape(-1)[rng.randrange(value.size)] = rng.choice(
            [np.nan, np.inf])
        arrays[key] = value
    elif action == 5:
        arrays['extra/' + key] = value
    else:
        arrays[key] = np.concatenate([value.reshape(-1)] * 2)


def mutate_packed(data: bytes, rng: random.Random) -> Tuple[str, bytes]:
    """One mutant of a packed file: (kind, bytes)."""
    kind = rng.choice(
        ['truncate', 'flip', 'meta', 'array', 'member', 'garbage'])
    if kind == 'truncate':
        return kind, data[:rng.randrange(len(data))]
    if kind == 'flip':
        out = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            out[rng.randrange(len(out))] ^= rng.randint(1, 255)
        return kind, bytes(out)
    if kind == 'garbage':
        return kind, bytes(
            rng.randrange(256) for _ in range(rng.randint(0, 2048)))
    meta, arrays = _read_members(data)
    if kind == 'meta':
        for _ in range(rng.randint(1, 3)):
            meta = _edit_meta(meta, rng) if isinstance(meta, dict) else meta
        return kind, _write_members(meta, arrays)
    if kind == 'array':
        _edit_array(arrays, rng)
        return kind, _write_members(meta, arrays)
    # member: a non-array entry in the archive, or raw bytes as __meta__
    import io
    import warnings
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, 'a') as zf, warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # duplicate name
        if rng.random() < 0.5:
            zf.writestr('payload.pkl', b'\x80\x04N.')
        else:
            zf.writestr('__meta__.npy', b'not an array')
    return kind, buf.getvalue()


def check_packed(path: str, points: np.ndarray) -> str:
    """'ok' or 'rejected'; raises AssertionError for a failure."""
    from mmbinpc.deploy.runtime import PackedModel
    from mmbinpc.errors import PackedFormatError
    try:
        model = PackedModel.load(path)
    except PackedFormatError as err:
        assert err.path == path and path in str(err), str(err)
        return 'rejected'
    out = model(points)
    assert np.isfinite(out).all(), 'non-finite logits'
    return 'ok'


# -------------------------------------------------------------- data files
def write_shape_set(root: str) -> None:
    """A two-class ModelNet-format set (text files)."""
    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    ids = []
    for cls in ('cup', 'lamp'):
        os.makedirs(os.path.join(root, cls), exist_ok=True)
        for k in (1, 2):
            sid = f'{cls}_{k:04d}'
            np.savetxt(
                os.path.join(root, cls, sid + '.txt'),
                rng.normal(size=(16, 6)),
                fmt='%.6f',
                delimiter=',')
            ids.append(sid)
    with open(os.path.join(root, 'modelnet40_shape_names.txt'), 'w') as f:
        f.write('cup\nlamp\n')
    for split in ('train', 'test'):
        with open(os.path.join(root, f'modelnet40_{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')


def mutate_text(data: bytes, rng: random.Random) -> Tuple[str, bytes]:
    kind = rng.choice(
        ['truncate', 'flip', 'token', 'line', 'empty', 'duplicate'])
    if kind == 'truncate':
        return kind, data[:rng.randrange(len(data) + 1)]
    if kind == 'flip':
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return kind, bytes(out)
    if kind == 'empty':
        return kind, b'\n' * rng.randint(0, 3)
    lines = data.decode('utf-8', 'replace').splitlines()
    i = rng.randrange(len(lines))
    if kind == 'duplicate':
        lines.append(lines[i])
    elif kind == 'line':
        lines[i] = rng.choice([
            '', ',,,', '1,2', '1,2,3,4,5,6,7', 'nan', '\xe9\xe8',
            lines[i] + ','
        ])
    else:
        fields = lines[i].split(',')
        j = rng.randrange(len(fields))
        fields[j] = rng.choice(
            ['1e39', '-1e400', 'nan', 'inf', 'x', '', '0x10', '1_0', ' 2 '])
        lines[i] = ','.join(fields)
    return kind, ('\n'.join(lines) + '\n').encode('utf-8', 'surrogateescape')


def check_dataset(root: str, target: str) -> str:
    """Build the data set; 'ok' (finite points, labels in range) or
    'rejected' (an error naming ``target``)."""
    from mmbinpc.datasets import ModelNet40Dataset
    from mmbinpc.errors import DatasetFormatError
    try:
        ds = ModelNet40Dataset(root, split='test', num_points=8, cache=False)
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            assert np.isfinite(info['points'].tensor.numpy()).all()
            assert 0 <= info['gt_label'] < len(ds.metainfo['classes'])
    except (DatasetFormatError, ValueError, FileNotFoundError) as err:
        assert os.path.basename(target) in str(err), str(err)
        return 'rejected'
    return 'ok'


# --------------------------------------------------------------------- run
def fuzz(kind: str,
         count: int,
         seed: int,
         work_dir: str,
         log: Callable[[str], None] = print) -> Counter:
    """Run ``count`` mutants of ``kind`` ('packed' or 'data').

    Returns:
        Counter: Outcomes ('ok', 'rejected', 'FAIL ...').
    """
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    marker_dir = os.path.join(work_dir, 'markers')
    os.makedirs(marker_dir, exist_ok=True)
    if kind == 'packed':
        import torch
        good = os.path.join(work_dir, 'good.packed')
        write_packed_model(good)
        data = open(good, 'rb').read()
        points = torch.rand(2, 64, 3) * 2 - 1
    else:
        root = os.path.join(work_dir, 'shapes')
        write_shape_set(root)
        targets = [
            os.path.join(root, 'cup', 'cup_0001.txt'),
            os.path.join(root, 'modelnet40_shape_names.txt'),
            os.path.join(root, 'modelnet40_test.txt')
        ]
        originals = {t: open(t, 'rb').read() for t in targets}
    for i in range(count):
        if kind == 'packed':
            how, mutant = mutate_packed(data, rng)
            target = os.path.join(work_dir, f'mutant_{i}.packed')
            with open(target, 'wb') as f:
                f.write(mutant)
        else:
            target = rng.choice(targets)
            how, mutant = mutate_text(originals[target], rng)
            with open(target, 'wb') as f:
                f.write(mutant)
        try:
            if kind == 'packed':
                result = check_packed(target, points)
            else:
                result = check_dataset(root, target)
        except Exception as err:  # noqa: BLE001  (any other is a failure)
            result = f'FAIL {how}: {type(err).__name__}: {err}'[:300]
        if SENTINEL in sys.modules or os.listdir(marker_dir):
            result = f'FAIL {how}: side effect of loading'
        outcomes[result if result.startswith('FAIL'
                                             ) else f'{result} ({how})'] += 1
        if result.startswith('FAIL'):
            log(f'mutant {i} ({target}): {result}')
        if kind == 'packed':
            os.remove(target)
        else:
            with open(target, 'wb') as f:
                f.write(originals[target])
    return outcomes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Fuzz the packed-model and data-set loaders')
    parser.add_argument(
        '--packed',
        type=int,
        default=1000,
        help='mutated packed files (default 1000)')
    parser.add_argument(
        '--data',
        type=int,
        default=200,
        help='mutated data files (default 200)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--work-dir',
        default=None,
        help='scratch directory (default: a temporary one)')
    args = parser.parse_args(argv)
    if args.packed < 0 or args.data < 0:
        parser.error('counts must be >= 0')
    return args


def main(argv=None) -> Dict[str, Counter]:
    args = parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or tmp
        for kind, count in (('packed', args.packed), ('data', args.data)):
            if count:
                sub = os.path.join(work, kind)
                os.makedirs(sub, exist_ok=True)
                results[kind] = fuzz(kind, count, args.seed, sub)
    failed = 0
    for kind, outcomes in results.items():
        total = sum(outcomes.values())
        bad = sum(v for k, v in outcomes.items() if k.startswith('FAIL'))
        failed += bad
        print(f'{kind}: {total} mutants, {bad} failures')
        for key, value in sorted(outcomes.items()):
            print(f'  {value:5d}  {key}')
    if failed:
        raise SystemExit(1)
    return results


if __name__ == '__main__':
    main()
