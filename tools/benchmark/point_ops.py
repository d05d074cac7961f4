# Copyright (c) mmbinpc contributors. All rights reserved.
"""Time mmbinpc's CPU point ops on typical PointNet++/DGCNN sizes.

Example::

    python tools/benchmark/point_ops.py --repeat 3
    python tools/benchmark/point_ops.py --batch 4 --points 1024 \
        --centers 256 --nsample 16 --ops ball_query knn

Each op runs once as warm-up, then ``--repeat`` timed times; the table shows
the median and the fastest run. FPS and the neighbour queries (ball_query,
knn, knn_features, three_nn) run once per backend of ``mmbinpc.ops``
(``compiled`` and ``brute_force``, same results), and the 3-D ones also as
a scipy ``cKDTree`` implementation of the same op (``*_scipy``: one tree per
cloud in a Python loop), all in the same run, so the ratios compare like
with like. With ``--memory`` (default) every op also
runs once in a fresh child process that reports the peak extra resident
memory (resident-set high-water mark during the op minus the resident set
before it, inputs already allocated).
"""
import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Tuple

import torch

import mmbinpc.ops as P
from mmbinpc.analysis.host import cpu_name

OPS = ('furthest_point_sample', 'furthest_point_sample_with_dist',
       'ball_query', 'knn', 'knn_features', 'three_nn', 'gather_points',
       'grouping_operation', 'three_interpolate')
#: ops with a backend choice, and those with a scipy anchor
BACKEND_OPS = ('furthest_point_sample', 'ball_query', 'knn', 'knn_features',
               'three_nn')
SCIPY_OPS = ('ball_query', 'knn', 'three_nn')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=16, help='B')
    parser.add_argument('--points', type=int, default=4096, help='N')
    parser.add_argument(
        '--centers',
        type=int,
        default=1024,
        help='M: sampled centres / query points')
    parser.add_argument(
        '--nsample',
        type=int,
        default=32,
        help='k of knn and nsample of ball_query/grouping')
    parser.add_argument(
        '--radius',
        type=float,
        default=0.2,
        help='ball_query radius (points are uniform in the '
        'unit cube)')
    parser.add_argument(
        '--channels',
        type=int,
        default=64,
        help='feature channels of the gathering ops and '
        'knn_features')
    parser.add_argument(
        '--dist-points',
        type=int,
        default=1024,
        help='N of furthest_point_sample_with_dist (its '
        '(B, N, N) input is 1 GB at N=4096)')
    parser.add_argument(
        '--repeat', type=int, default=3, help='timed runs per op')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--ops', nargs='+', choices=OPS, default=list(OPS))
    parser.add_argument(
        '--backends',
        nargs='+',
        choices=('compiled', 'brute_force'),
        default=['compiled', 'brute_force'],
        help='neighbour-query backends to time')
    parser.add_argument(
        '--no-scipy',
        dest='scipy',
        action='store_false',
        help='skip the scipy cKDTree anchors')
    parser.add_argument(
        '--no-memory',
        dest='memory',
        action='store_false',
        help='skip the peak-memory child processes')
    parser.add_argument(
        '--json',
        default=None,
        help='also write the results (with the command, '
        'commit, machine and date) to this file')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_case(name: str, a: argparse.Namespace) -> Tuple[Callable, str]:
    """Build inputs for one op; return a zero-arg callable and a label."""
    B, N, M, K, C = a.batch, a.points, a.centers, a.nsample, a.channels
    xyz = torch.rand(B, N, 3)
    centers = xyz[:, :M].contiguous()
    if name == 'furthest_point_sample':
        return (lambda: P.furthest_point_sample(xyz, M),
                f'(B={B}, N={N}) -> {M}')
    if name == 'furthest_point_sample_with_dist':
        n = a.dist_points
        pts = torch.rand(B, n, 3)
        dist = torch.cdist(pts, pts).square()
        m = min(M, n)
        return (lambda: P.furthest_point_sample_with_dist(dist, m),
                f'(B={B}, N={n}, N) -> {m}')
    if name == 'ball_query':
        return (lambda: P.ball_query(0., a.radius, K, xyz, centers),
                f'{M} centres, N={N}, r={a.radius}, nsample={K}')
    if name == 'knn':
        return (lambda: P.knn(K, xyz, centers),
                f'{M} centres, N={N}, k={K}, xyz')
    if name == 'knn_features':
        feats = torch.randn(B, N, C)
        fcent = feats[:, :M].contiguous()
        return (lambda: P.knn(K, feats, fcent),
                f'{M} centres, N={N}, k={K}, C={C} (F-KNN)')
    if name == 'three_nn':
        return (lambda: P.three_nn(xyz, centers), f'{N} targets, {M} sources')
    if name == 'gather_points':
        feats = torch.randn(B, C, N)
        idx = torch.randint(0, N, (B, M), dtype=torch.int32)

        def run():
            out = P.gather_points(feats, idx)
            P.gather_points_backward(torch.ones_like(out), idx, N)

        return run, f'C={C}, N={N} -> {M}, fwd+bwd'
    if name == 'grouping_operation':
        feats = torch.randn(B, C, N)
        idx = torch.randint(0, N, (B, M, K), dtype=torch.int32)

        def run():
            out = P.grouping_operation(feats, idx)
            P.grouping_operation_backward(torch.ones_like(out), idx, N)

        return run, f'C={C}, N={N} -> ({M}, {K}), fwd+bwd'
    if name == 'three_interpolate':
        feats = torch.randn(B, C, M)
        idx = torch.randint(0, M, (B, N, 3), dtype=torch.int32)
        weight = torch.rand(B, N, 3)

        def run():
            out = P.three_interpolate(feats, idx, weight)
            P.three_interpolate_backward(torch.ones_like(out), idx, weight, M)

        return run, f'C={C}, {M} -> {N}, fwd+bwd'
    raise KeyError(name)


def make_scipy_case(name: str, a: argparse.Namespace) -> Callable:
    """The op with scipy's cKDTree, one tree per cloud, same outputs."""
    import numpy as np
    from scipy.spatial import cKDTree
    B, N, M, K = a.batch, a.points, a.centers, a.nsample
    xyz = torch.rand(B, N, 3).numpy()
    centers = xyz[:, :M].copy()

    def knn_run():
        return [cKDTree(xyz[b]).query(centers[b], K)[1] for b in range(B)]

    def three_nn_run():
        return [cKDTree(centers[b]).query(xyz[b], 3) for b in range(B)]

    def ball_run():
        out = np.zeros((B, M, K), np.int32)
        for b in range(B):
            hits = cKDTree(xyz[b]).query_ball_point(
                centers[b], a.radius, return_sorted=True)
            for m, h in enumerate(hits):
                if h:
                    first = h[:K]
                    out[b, m, :] = first[0]
                    out[b, m, :len(first)] = first
        return out

    return dict(knn=knn_run, three_nn=three_nn_run, ball_query=ball_run)[name]


def _status_mb(field: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def run_child(name: str, a: argparse.Namespace) -> None:
    """Child process: report the peak extra memory of one op run.

    Resets the kernel's resident-set high-water mark (``/proc/self/
    clear_refs``) after the inputs exist, so imports do not hide the op's
    peak; falls back to ``ru_maxrss`` where that is not available.
    """
    from mmbinpc.ops.neighbors import use_backend
    with use_backend(a.backends[0]):
        _measure_child(name, a)


def _measure_child(name: str, a: argparse.Namespace) -> None:
    fn, _ = make_case(name, a)
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        before = _status_mb('VmRSS')
        fn()
        peak = _status_mb('VmHWM')
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({'peak_extra_mb': peak - before}))


def peak_memory(name: str, argv, backend: str = 'compiled') -> float:
    argv = [x for x in argv]
    if '--backends' in argv:  # the child measures one backend
        i = argv.index('--backends')
        j = i + 1
        while j < len(argv) and not argv[j].startswith('--'):
            j += 1
        del argv[i:j]
    cmd = [
        sys.executable, __file__, *argv, '--backends', backend, '--child', name
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])['peak_extra_mb']


def main(argv=None) -> Dict[str, dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.child:
        run_child(a.child, a)
        return {}
    parent_argv = [x for x in argv if x != '--no-memory']
    print(f'CPU: {cpu_name()}; torch {torch.__version__}, '
          f'{torch.get_num_threads()} threads; chunk budget '
          f'{P.chunking.CHUNK_BYTES / 2**20:.0f} MiB')
    print(f'B={a.batch} N={a.points} M={a.centers} k={a.nsample} '
          f'C={a.channels} repeat={a.repeat}')
    header = f'{"op":34s} {"median ms":>10s} {"min ms":>10s} ' \
             f'{"peak MB":>8s}  sizes'
    print(header)
    print('-' * len(header))
    from mmbinpc.ops.neighbors import use_backend
    results = {}
    for name in a.ops:
        variants = ([(f'{name}[{b}]', b)
                     for b in a.backends] if name in BACKEND_OPS else [(name,
                                                                        None)])
        if a.scipy and name in SCIPY_OPS:
            variants.append((f'{name}_scipy', 'scipy'))
        for row, backend in variants:
            fn, label = make_case(name, a)
            if backend == 'scipy':
                fn = make_scipy_case(name, a)
            with use_backend(
                    backend if backend in ('compiled',
                                           'brute_force') else 'compiled'):
                fn()  # warm-up (and compilation)
                times = []
                for _ in range(max(1, a.repeat)):
                    t0 = time.perf_counter()
                    fn()
                    times.append((time.perf_counter() - t0) * 1e3)
            del fn
            mem = (
                peak_memory(name, parent_argv, backend or 'compiled')
                if a.memory and backend != 'scipy' else float('nan'))
            results[row] = dict(
                median_ms=statistics.median(times),
                min_ms=min(times),
                peak_extra_mb=mem,
                sizes=label)
            print(
                f'{row:34s} {statistics.median(times):10.1f} '
                f'{min(times):10.1f} {mem:8.0f}  {label}',
                flush=True)
    if a.json:
        import datetime

        from mmbinpc.analysis import code_version, host_info
        from mmbinpc.engine.atomic_io import atomic_write_text
        record = dict(
            command='python tools/benchmark/point_ops.py ' + ' '.join(argv),
            threads=torch.get_num_threads(),
            results={
                row: {
                    k: (None if isinstance(v, float) and v != v else v)
                    for k, v in r.items()
                }
                for row, r in results.items()
            },  # NaN: not measured
            code=code_version(),
            host=host_info(),
            date=datetime.datetime.now().isoformat(timespec='seconds'))
        atomic_write_text(json.dumps(record, indent=1), a.json)
    return results


if __name__ == '__main__':
    main()
