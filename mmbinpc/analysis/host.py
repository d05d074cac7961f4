# Copyright (c) mmbinpc contributors. All rights reserved.
"""Describing the machine a measurement ran on."""
import platform


def cpu_name() -> str:
    """The CPU model as the OS reports it (``/proc/cpuinfo`` on Linux).

    Returns:
        str: e.g. ``'Intel(R) Xeon(R) Processor'``, or ``'unknown CPU'``.
    """
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'
