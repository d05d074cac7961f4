# Copyright (c) mmbinpc contributors. All rights reserved.
"""Side-by-side wall-clock timing of several models on one input."""
import time
from typing import Any, Callable, Dict, List

#: timing orders understood by :func:`run_rounds`
ORDERS = ('interleaved', 'back to back')


def run_rounds(runners: Dict[str, Callable[[Any], Any]], inputs: Any,
               rounds: int, order: str = 'interleaved'
               ) -> Dict[str, List[float]]:
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
