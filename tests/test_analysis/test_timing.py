# Copyright (c) mmbinpc contributors. All rights reserved.
"""Side-by-side timing orders."""
import pytest

from mmbinpc.analysis import run_rounds


def _recording_runners(log):
    return {name: (lambda x, name=name: log.append((name, x)))
            for name in ('a', 'b')}


@pytest.mark.parametrize('order,expect', [
    ('interleaved', ['a', 'b', 'a', 'b', 'a', 'b']),
    ('back to back', ['a', 'a', 'a', 'b', 'b', 'b']),
])
def test_run_rounds_orders(order, expect):
    log = []
    times = run_rounds(_recording_runners(log), 'input', 3, order)
    assert [name for name, _ in log] == expect
    assert all(x == 'input' for _, x in log)
    assert set(times) == {'a', 'b'}
    assert all(len(v) == 3 and all(t >= 0 for t in v) for v in times.values())


def test_run_rounds_errors():
    with pytest.raises(ValueError, match="unknown timing order 'random'"):
        run_rounds({'a': print}, None, 1, 'random')
    with pytest.raises(ValueError, match='rounds must be >= 1'):
        run_rounds({'a': print}, None, 0)
