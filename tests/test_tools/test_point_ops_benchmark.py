# Copyright (c) mmbinpc contributors. All rights reserved.
"""``tools/benchmark/point_ops.py`` at tiny sizes (the figures themselves
are measured by hand, docs/point_ops.md)."""
import math

from mmbinpc.experiments.runner import load_tool

TINY = [
    '--batch', '2', '--points', '64', '--centers', '16', '--nsample', '4',
    '--channels', '8', '--dist-points', '32', '--repeat', '2'
]


def test_every_op_timed(capsys):
    tool = load_tool('benchmark/point_ops')
    results = tool.main(TINY + ['--no-memory'])
    # each neighbour query once per backend, the 3-D ones also with scipy
    expected = []
    for name in tool.OPS:
        if name in tool.BACKEND_OPS:
            expected += [f'{name}[compiled]', f'{name}[brute_force]']
            if name in tool.SCIPY_OPS:
                expected.append(f'{name}_scipy')
        else:
            expected.append(name)
    assert list(results) == expected
    for name, row in results.items():
        assert 0 < row['min_ms'] <= row['median_ms'], name
        assert math.isnan(row['peak_extra_mb'])
    out = capsys.readouterr().out
    assert all(f'\n{name} ' in out for name in expected)
    assert 'B=2 N=64 M=16 k=4' in out


def test_peak_memory_from_a_child_process():
    tool = load_tool('benchmark/point_ops')
    # knn holds a (B, M, N) block of float distances while it selects:
    # 2 x 512 x 1024 x 4 bytes = 4 MiB, beyond the inputs made beforehand
    results = tool.main([
        '--batch', '2', '--points', '1024', '--centers', '512',
        '--dist-points', '1024', '--repeat', '1', '--ops', 'knn'
    ])
    assert results['knn[compiled]']['peak_extra_mb'] >= 0.0
    with_matrix = tool.main([
        '--batch', '2', '--points', '1024', '--centers', '512', '--repeat',
        '1', '--ops', 'knn', '--backends', 'brute_force', '--no-scipy'
    ])
    # the brute-force kNN holds the distance block; the compiled one not
    assert with_matrix['knn[brute_force]']['peak_extra_mb'] >= 2.0
