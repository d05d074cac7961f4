# Copyright (c) mmbinpc contributors. All rights reserved.
"""Side-by-side wall-clock timing of several models on one input."""
import math
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Sequence

#: timing orders understood by :func:`run_rounds`
ORDERS = ('interleaved', 'back to back')


def run_rounds(runners: Dict[str, Callable[[Any], Any]],
               inputs: Any,
               rounds: int,
               order: str = 'interleaved') -> Dict[str, List[float]]:
    """Wall times (s) of ``rounds`` runs of each runner on ``inputs``.

    Args:
        runners (dict): Name -> callable taking ``inputs``.
        inputs: What every runner gets.
        rounds (int): Runs per runner.
        order (str): ``'interleaved'``: one run of each per round, so that
            load from other processes hits them alike and each starts with
            the caches the others just filled; ``'back to back'``: all runs
            of one runner, then the next, as when a model serves a stream
            of requests. Defaults to 'interleaved'.

    Returns:
        dict: Name -> list of seconds, in run order.
    """
    if order not in ORDERS:
        raise ValueError(f'unknown timing order {order!r}; valid: '
                         f'{", ".join(ORDERS)}')
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}')
    times: Dict[str, List[float]] = {k: [] for k in runners}

    def once(key: str) -> None:
        t0 = time.perf_counter()
        runners[key](inputs)
        times[key].append(time.perf_counter() - t0)

    if order == 'interleaved':
        for _ in range(rounds):
            for key in runners:
                once(key)
    else:
        for key in runners:
            for _ in range(rounds):
                once(key)
    return times


def timing_stats(
        times: Mapping[str, Sequence[float]]) -> Dict[str, Dict[str, float]]:
    """Median and minimum of each runner's wall times, in milliseconds.

    The median is :func:`statistics.median` (the mean of the two middle
    values for an even count); the minimum is the fastest run, the closer
    estimate of the undisturbed cost on a shared machine.

    Args:
        times (Mapping[str, Sequence[float]]): Name -> wall times in
            seconds, as :func:`run_rounds` returns them.

    Returns:
        dict: ``{'median': {name: ms}, 'min': {name: ms}}``.

    Raises:
        ValueError: If a runner has no times, or a time that is not a
            finite number > 0 (a clock or bookkeeping error, which would
            otherwise give an infinite or negative speed-up).

    Examples:
        >>> timing_stats({'a': [0.003, 0.001, 0.002, 0.1]})
        {'median': {'a': 2.5}, 'min': {'a': 1.0}}
    """
    for name, values in times.items():
        if len(values) == 0:
            raise ValueError(f'no wall times for {name!r}')
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ValueError(
                f'wall times of {name!r} must be finite and > 0 seconds, '
                f'got {bad[0]!r}')
    return dict(
        median={
            k: statistics.median(v) * 1e3
            for k, v in times.items()
        },
        min={
            k: min(v) * 1e3
            for k, v in times.items()
        })


def speedup(stat: Mapping[str, float], baseline: str, candidate: str) -> float:
    """How many times faster ``candidate`` runs than ``baseline``.

    ``stat[baseline] / stat[candidate]`` (times of one statistic, e.g. the
    medians of :func:`timing_stats`): above 1 when ``candidate`` is faster.

    Args:
        stat (Mapping[str, float]): Name -> time (any one unit).
        baseline (str): The reference, e.g. ``'fp32'``.
        candidate (str): The one compared with it, e.g. ``'packed'``.

    Returns:
        float: The speed-up.

    Raises:
        ValueError: If either time is not a finite number > 0.

    Examples:
        >>> speedup({'fp32': 12.0, 'packed': 3.0}, 'fp32', 'packed')
        4.0
    """
    for name in (baseline, candidate):
        value = stat[name]
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f'cannot compute a speed-up from the time of '
                             f'{name!r}: {value!r} (must be finite and > 0)')
    return stat[baseline] / stat[candidate]
