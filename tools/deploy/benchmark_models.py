# Copyright (c) mmbinpc contributors. All rights reserved.
"""Benchmark the packed runtime on every supported model and record it.

Usage:
    python tools/deploy/benchmark_models.py [--only NAME ...] [--threads 1 2]
        [--repeats 20] [--out docs/results/deploy] [--report-only]

For each model (:data:`MODELS`) and thread count this runs
``tools/deploy/benchmark.py`` in its own process at batch 1 (FP32 PyTorch,
the fake-quantized binary PyTorch model and the packed runtime on the same
random clouds, interleaved and back to back) and keeps its JSON as
``<out>/<name>_t<threads>.json``, with the command, the commit and the
date added. ``<out>/packed_runtime.md`` is the table made from those files
(``--report-only`` remakes it without measuring): speed-up over FP32
PyTorch, the binary layers alone, the share of the packed model's time in
point ops (FPS, ball query, kNN, interpolation) and in binary layers,
agreement with the PyTorch binary model and the file-size ratio.

A model's weights are its trained checkpoint when one is given
(``--checkpoint NAME=PATH``) and random otherwise; speed does not depend on
the values except through how many packed rows repeat before a fused
pooling. Run it on an otherwise idle machine.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
from typing import Dict, List

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: name -> (label, config, points per cloud)
MODELS: Dict[str, tuple] = {
    'pointnet':
    ('PointNet (both T-Nets), LSR + EMA',
     'configs/pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py', 1024),
    'dgcnn': ('DGCNN classifier, LSR + EMA',
              'configs/dgcnn/dgcnn_bin_lsr-ema-kdr_modelnet40.py', 1024),
    'pointnet2': ('PointNet++ SSG classifier, LSR + EMA',
                  'configs/pointnet2/pointnet2-ssg_bin_lsr-ema-kdr'
                  '_modelnet40.py', 1024),
    'dgcnn_seg': ('DGCNN S3DIS segmentor, LSR + EMA',
                  'configs/dgcnn/dgcnn_bin_kdr_s3dis-seg.py', 4096),
    'pointnet2_seg':
    ('PointNet++ SSG S3DIS segmentor, LSR + EMA',
     'configs/pointnet2/pointnet2-ssg_bin_kdr_s3dis-seg.py', 4096),
}
#: ops of the packed graph counted as point ops
POINT_OPS = ('knn', 'fps', 'ball_query', 'interpolate')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', nargs='+', choices=sorted(MODELS))
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--repeats', type=int, default=20)
    parser.add_argument(
        '--checkpoint',
        action='append',
        default=[],
        metavar='NAME=PATH',
        help='trained weights of a model (random without)')
    parser.add_argument(
        '--out', default=os.path.join(REPO, 'docs', 'results', 'deploy'))
    parser.add_argument('--report-only', action='store_true')
    args = parser.parse_args(argv)
    for item in args.checkpoint:
        name, _, path = item.partition('=')
        if name not in MODELS or not path:
            parser.error(f'--checkpoint expects NAME=PATH with NAME in '
                         f'{sorted(MODELS)}, got {item!r}')
    return args


def measure(name: str, threads: int, repeats: int, checkpoint: str,
            out: str) -> dict:
    """Run benchmark.py for one model and thread count; returns its JSON."""
    _, config, points = MODELS[name]
    path = os.path.join(out, f'{name}_t{threads}.json')
    cmd = [
        sys.executable, 'tools/deploy/benchmark.py', config, '--points',
        str(points), '--batch-sizes', '1', '--repeats',
        str(repeats), '--threads',
        str(threads), '--json', path
    ]
    if checkpoint:
        cmd.insert(3, checkpoint)
    print('$ ' + ' '.join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    with open(path) as f:
        result = json.load(f)
    from mmbinpc.analysis import code_version
    result.update(
        command='python ' + ' '.join(cmd[1:]),
        checkpoint=checkpoint or None,
        code=code_version(REPO),
        host=dict(
            cpu=result['cpu'], cpu_count=result['cpu_count'], threads=threads),
        date=datetime.datetime.now(
            datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    return result


def _share(result: dict, ops) -> float:
    shares = result.get('packed_op_share_b1', {})
    return sum(v for k, v in shares.items() if k in ops)


def report(out: str) -> str:
    """The markdown table of every ``<name>_t<threads>.json`` in ``out``."""
    rows: List[str] = []
    meta = None
    for name, (label, _, points) in MODELS.items():
        for threads in (1, 2, 4, 8):
            path = os.path.join(out, f'{name}_t{threads}.json')
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                r = json.load(f)
            meta = meta or r
            rows.append(
                f'| {label} | {points} | {threads} | '
                f'{r["fp32_ms_b1"]:.1f} | {r["packed_ms_b1"]:.2f} | '
                f'**{r["speedup_b1"]:.1f}×** | {r["speedup_b1_warm"]:.1f}× | '
                f'{r["binary_layers_speedup"]:.1f}× | '
                f'{_share(r, ("binary_dense", )):.0%} | '
                f'{_share(r, POINT_OPS):.0%} | '
                f'{r["pred_agreement_b1"]:.1%} | {r["size_ratio"]:.1f}× |')
    if not rows:
        return 'No measurements yet.\n'
    head = [
        '# Packed runtime against PyTorch, every supported model',
        '',
        f'Generated by `python tools/deploy/benchmark_models.py '
        f'--report-only` from the JSON files here (one per model and '
        f'thread count; each holds its command, commit, date, CPU and load '
        f'average). Machine: {meta["cpu"]}, {meta["cpu_count"]} logical '
        f'cores; torch {meta["torch_version"]}, numba '
        f'{meta.get("numba_version")}. Batch 1, random clouds, one run per '
        f'setting (median of the rounds); "threads" is PyTorch\'s intra-op '
        f'threads and the packed kernels\' threads alike.',
        '',
        '| model | points | threads | FP32 ms | packed ms | speed-up '
        '(interleaved) | back to back | binary layers alone | time in '
        'binary layers | time in point ops | same prediction | '
        'file smaller |',
        '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ]
    return '\n'.join(head + rows) + '\n'


def main(argv=None) -> str:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    checkpoints = dict(c.split('=', 1) for c in args.checkpoint)
    if not args.report_only:
        for name in args.only or list(MODELS):
            for threads in args.threads:
                measure(name, threads, args.repeats, checkpoints.get(name, ''),
                        args.out)
    table = report(args.out)
    with open(os.path.join(args.out, 'packed_runtime.md'), 'w') as f:
        f.write(table)
    print(table)
    return table


if __name__ == '__main__':
    main()
