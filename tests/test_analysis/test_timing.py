# Copyright (c) mmbinpc contributors. All rights reserved.
"""Side-by-side timing orders."""
import pytest

from mmbinpc.analysis import run_rounds, speedup, timing_stats


def _recording_runners(log):
    return {
        name: (lambda x, name=name: log.append((name, x)))
        for name in ('a', 'b')
    }


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


# Hand-made wall times (s): FP32 takes 10-12 ms, packed 1-2 ms.
FP32_S = [0.012, 0.010, 0.011]
PACKED_S = [0.0015, 0.001, 0.002]


def test_timing_stats_median_and_min_in_ms():
    stats = timing_stats({'fp32': FP32_S, 'packed': PACKED_S})
    assert set(stats) == {'median', 'min'}
    assert stats['median'] == pytest.approx({'fp32': 11.0, 'packed': 1.5})
    assert stats['min'] == pytest.approx({'fp32': 10.0, 'packed': 1.0})
    # even count: the mean of the two middle values; one outlier (0.1 s)
    # moves neither the median nor the minimum
    stats = timing_stats({'a': [0.004, 0.001, 0.1, 0.003]})
    assert stats['median']['a'] == pytest.approx(3.5)
    assert stats['min']['a'] == pytest.approx(1.0)
    # a single run is its own median and minimum
    assert timing_stats({'a': [0.25]}) == {
        'median': {
            'a': 250.0
        },
        'min': {
            'a': 250.0
        }
    }


def test_speedup_direction():
    stats = timing_stats({'fp32': FP32_S, 'packed': PACKED_S})
    # baseline / candidate: > 1 when the candidate (packed) is faster
    med = stats['median']
    assert speedup(med, 'fp32', 'packed') == pytest.approx(11 / 1.5)
    assert speedup(stats['min'], 'fp32', 'packed') == pytest.approx(10.0)
    assert speedup(med, 'packed', 'fp32') == pytest.approx(1.5 / 11)
    # the unit cancels: seconds give the same ratio as milliseconds
    assert speedup({'a': 0.012, 'b': 0.003}, 'a', 'b') == pytest.approx(4.0)
    assert speedup({'a': 2.0, 'b': 2.0}, 'a', 'b') == 1.0


@pytest.mark.parametrize('bad', [0.0, -0.001, float('nan'), float('inf')])
def test_bad_times_are_refused(bad):
    with pytest.raises(ValueError, match="'packed' must be finite and > 0"):
        timing_stats({'fp32': FP32_S, 'packed': [0.001, bad]})
    with pytest.raises(ValueError, match="time of 'packed'"):
        speedup({'fp32': 11.0, 'packed': bad}, 'fp32', 'packed')
    with pytest.raises(ValueError, match="time of 'fp32'"):
        speedup({'fp32': bad, 'packed': 1.5}, 'fp32', 'packed')


def test_no_times_is_refused():
    with pytest.raises(ValueError, match="no wall times for 'packed'"):
        timing_stats({'fp32': FP32_S, 'packed': []})
