# Copyright (c) mmbinpc contributors. All rights reserved.
"""The process-wide effects of ``import mmbinpc``, in one switchable place.

Importing mmbinpc registers its components in the MMDetection3D registries;
that is what an OpenMMLab plugin import is for, and it changes nothing that
was registered before. Three further effects change how the installed stack
behaves for the whole process. Each is on by default, is switched by one
environment variable read at import, and can be switched later with
:func:`setup`:

==================== ============================ =============================
effect               environment variable         what it does
==================== ============================ =============================
``cpu_point_ops``    ``MMBINPC_CPU_POINT_OPS``    mmcv's point-op autograd
                                                  Functions run
                                                  :mod:`mmbinpc.ops` for CPU
                                                  tensors (CUDA tensors keep
                                                  mmcv's kernels)
``safe_checkpoints`` ``MMBINPC_SAFE_CHECKPOINTS`` mmengine loads local
                                                  checkpoints with
                                                  ``weights_only=True`` plus
                                                  the types mmengine writes
``version_check``    ``MMBINPC_VERSION_CHECK``    a warning when the stack is
                                                  outside the tested versions
==================== ============================ =============================

An environment variable takes ``1/0``, ``true/false``, ``on/off`` or
``yes/no``; anything else stops the import with an error that names it.
``python -m mmbinpc.info`` prints what is active.
"""
import os
from typing import Dict, Optional

EFFECTS: Dict[str, str] = {
    'cpu_point_ops': 'MMBINPC_CPU_POINT_OPS',
    'safe_checkpoints': 'MMBINPC_SAFE_CHECKPOINTS',
    'version_check': 'MMBINPC_VERSION_CHECK',
}

_TRUE = ('1', 'true', 'on', 'yes')
_FALSE = ('0', 'false', 'off', 'no')

# Whether setup() ran (the first call reads the environment) and whether the
# version check is on (it leaves no state behind to inspect).
_state = dict(configured=False, version_check=False)


def env_flag(name: str, default: bool = True) -> bool:
    """Read a boolean environment variable.

    Args:
        name (str): The variable.
        default (bool): Value when it is unset or empty. Defaults to True.

    Returns:
        bool: The flag.

    Raises:
        ValueError: If the variable holds anything but a recognised value.
    """
    raw = os.environ.get(name, '').strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(
        f'environment variable {name}={os.environ[name]!r} is not a '
        f'switch; set it to one of {", ".join(_TRUE)} (on) or '
        f'{", ".join(_FALSE)} (off), or unset it (on)')


def setup(cpu_point_ops: Optional[bool] = None,
          safe_checkpoints: Optional[bool] = None,
          version_check: Optional[bool] = None) -> Dict[str, bool]:
    """Turn the process-wide effects of mmbinpc on or off.

    ``import mmbinpc`` calls ``setup()`` once, so that each effect follows
    its environment variable (on when unset). Call it again with explicit
    values to change an effect later; an argument left ``None`` is left as
    it is after import (or read from its variable on the first call).

    Args:
        cpu_point_ops (bool, optional): Route mmcv's point ops to
            :mod:`mmbinpc.ops` for CPU tensors.
        safe_checkpoints (bool, optional): Install
            :func:`mmbinpc.compat.load_checkpoint_file` as mmengine's loader
            for local paths.
        version_check (bool, optional): Warn now about untested versions
            of the OpenMMLab stack.

    Returns:
        dict[str, bool]: :func:`active` after the change.
    """
    from . import compat
    from .ops import dispatch
    switches = dict(  # effect -> (turn on, turn off)
        cpu_point_ops=(dispatch.patch_mmcv_point_ops,
                       dispatch.unpatch_mmcv_point_ops),
        safe_checkpoints=(compat.install_checkpoint_loader,
                          compat.uninstall_checkpoint_loader),
        version_check=(lambda: compat.check_versions(warn=True), lambda: None))

    wanted = dict(
        cpu_point_ops=cpu_point_ops,
        safe_checkpoints=safe_checkpoints,
        version_check=version_check)
    if not _state['configured']:  # the environment decides what is unset
        wanted = {
            name: env_flag(EFFECTS[name]) if value is None else value
            for name, value in wanted.items()
        }
    _state['configured'] = True
    for name, value in wanted.items():
        if value is None:
            continue
        turn_on, turn_off = switches[name]
        if value:
            turn_on()
        else:
            turn_off()
        if name == 'version_check':
            _state['version_check'] = bool(value)
    return active()


def active() -> Dict[str, bool]:
    """Which process-wide effects are in place now.

    Read from the patched objects themselves (not from the last call), so a
    change made behind :func:`setup`'s back shows here.

    Returns:
        dict[str, bool]: One entry per name of :data:`EFFECTS`.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    from . import compat
    from .ops import dispatch
    return dict(
        cpu_point_ops=dispatch.is_patched(),
        safe_checkpoints=CheckpointLoader._schemes.get('')
        is compat.load_checkpoint_file,
        version_check=_state['version_check'])
