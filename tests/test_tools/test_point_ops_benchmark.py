# Copyright (c) mmbinpc contributors. All rights reserved.
"""``tools/benchmark/point_ops.py`` at tiny sizes (the figures themselves
are measured by hand, docs/point_ops.md)."""
import math

from mmbinpc.experiments.runner import load_tool

TINY = ['--batch', '2', '--points', '64', '--centers', '16', '--nsample', '4',
        '--channels', '8', '--dist-points', '32', '--repeat', '2']


def test_every_op_timed(capsys):
    tool = load_tool('benchmark/point_ops')
    results = tool.main(TINY + ['--no-memory'])
    assert list(results) == list(tool.OPS)
    for name, row in results.items():
        assert 0 < row['min_ms'] <= row['median_ms'], name
        assert math.isnan(row['peak_extra_mb'])
    out = capsys.readouterr().out
    assert all(f'\n{name} ' in out for name in tool.OPS)
    assert 'B=2 N=64 M=16 k=4' in out


def test_peak_memory_from_a_child_process():
    tool = load_tool('benchmark/point_ops')
    # knn holds a (B, M, N) block of float distances while it selects:
    # 2 x 512 x 1024 x 4 bytes = 4 MiB, beyond the inputs made beforehand
    results = tool.main(['--batch', '2', '--points', '1024', '--centers',
                         '512', '--dist-points', '1024', '--repeat', '1',
                         '--ops', 'knn'])
    assert results['knn']['peak_extra_mb'] >= 2.0
