# Copyright (c) mmbinpc contributors. All rights reserved.
"""A training step with the compiled point ops against the brute-force ones.

Usage::

    python tools/benchmark/point_ops_step.py \
        configs/dgcnn/dgcnn_fp_modelnet40.py \
        configs/pointnet2/pointnet2-ssg_fp_modelnet40.py \
        --batch 16 --points 1024 --rounds 3 --json OUT

For each classifier config, two copies of the model (same weights) train on
the same fixed batch (``tools/benchmark/train_step.py``'s batch and step:
``model.train_step(data, optim_wrapper)``), one with the neighbour queries
and FPS of ``mmbinpc.ops`` on the ``compiled`` backend, one on
``brute_force``; the steps are timed interleaved (one of each per round) so
load from other processes hits both alike. Prints the median step of each
and the speed-up.
"""
import argparse
import copy
import datetime
import json
import statistics
from typing import List, Optional

from mmengine.config import Config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='classifier configs')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--points', type=int, default=1024)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's)")
    parser.add_argument('--json', default=None, help='write the figures here')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    import torch

    from mmbinpc.analysis import code_version, host_info, run_rounds
    from mmbinpc.engine.atomic_io import atomic_write_text
    from mmbinpc.experiments.runner import load_tool
    from mmbinpc.ops.backend import use_backend
    step_tool = load_tool('benchmark/train_step')
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = {}
    for path in args.configs:
        cfg = Config.fromfile(path)
        model = step_tool.build(cfg.model, seed=0)
        head = cfg.model.get('head') or {}
        classes = head.get('num_classes', 40)
        dims = (cfg.model.get('backbone') or {}).get('in_channels', 3)
        data = step_tool.make_batch(args.batch, args.points, dims, classes, 0)
        runners = {}
        for backend in ('compiled', 'brute_force'):
            copy_ = copy.deepcopy(model)
            step = step_tool.StepRunner(copy_,
                                        step_tool.build_wrapper(copy_, cfg))

            def run(batch, step=step, backend=backend):
                with use_backend(backend):
                    step(batch)

            runners[backend] = run
        if args.warmup:
            run_rounds(runners, data, args.warmup)
        times = run_rounds(runners, data, args.rounds)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows[path] = dict(
            compiled_s=med['compiled'],
            brute_force_s=med['brute_force'],
            speedup=med['brute_force'] / med['compiled'],
            times=times)
        print(
            f'{path}: step {med["compiled"]:.2f} s compiled vs '
            f'{med["brute_force"]:.2f} s brute force '
            f'({rows[path]["speedup"]:.2f}x), B={args.batch}, '
            f'N={args.points}, {torch.get_num_threads()} threads',
            flush=True)
    result = dict(
        command='python tools/benchmark/point_ops_step.py ' +
        ' '.join(argv if argv is not None else __import__('sys').argv[1:]),
        batch=args.batch,
        points=args.points,
        rounds=args.rounds,
        threads=torch.get_num_threads(),
        rows=rows,
        code=code_version(),
        host=host_info(),
        date=datetime.datetime.now().isoformat(timespec='seconds'))
    if args.json:
        atomic_write_text(json.dumps(result, indent=1), args.json)
    return result


if __name__ == '__main__':
    main()
