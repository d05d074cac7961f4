# Copyright (c) mmbinpc contributors. All rights reserved.
"""Describing the machine and the code a measurement ran on."""
import os
import os.path as osp
import platform
import subprocess
from typing import Dict, Optional, Union


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


def code_version(
        path: Optional[str] = None) -> Dict[str, Union[str, bool, None]]:
    """The git commit of the checkout holding ``path`` and whether it has
    uncommitted changes.

    Args:
        path (str, optional): A file or directory inside the checkout.
            Defaults to the mmbinpc package itself.

    Returns:
        dict: ``commit`` (full hash, or None outside a git checkout or
        without git) and ``dirty`` (True when tracked files differ from the
        commit; None when unknown).
    """
    if path is None:
        path = osp.dirname(osp.abspath(__file__))
    where = path if osp.isdir(path) else osp.dirname(path)

    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(['git', '-C', where, *args],
                                  capture_output=True,
                                  text=True,
                                  timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git('rev-parse', 'HEAD')
    if commit is None:
        return dict(commit=None, dirty=None)
    status = git('status', '--porcelain', '--untracked-files=no')
    return dict(commit=commit, dirty=None if status is None else bool(status))


def host_info() -> Dict[str, Union[str, int, None]]:
    """The CPU model, its logical core count and torch's thread count.

    Returns:
        dict: ``cpu``, ``cpu_count`` and ``torch_threads``.
    """
    import torch
    return dict(
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads())
