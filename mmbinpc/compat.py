# Copyright (c) mmbinpc contributors. All rights reserved.
"""The one place that adapts torch / mmengine version differences.

* :func:`check_versions` warns (never asserts) when the installed OpenMMLab
  stack is outside the versions mmbinpc is tested with.
* :func:`load_checkpoint_file` loads mmengine checkpoints under torch >= 2.6,
  whose ``torch.load`` defaults to ``weights_only=True``. mmengine 0.10.7 calls
  ``torch.load`` without that argument (mmengine issue #1655), so a full
  Runner checkpoint (which holds a message hub with ``HistoryBuffer`` objects
  and numpy arrays) fails to load when resuming. Instead of turning the safety
  check off, mmbinpc keeps ``weights_only=True`` and allows exactly the extra
  types mmengine itself writes into checkpoints. :mod:`mmbinpc.runtime`
  installs it as mmengine's loader for local paths (``safe_checkpoints``), so
  ``load_from``, ``resume`` and ``mmengine.runner.load_checkpoint`` all go
  through it.
"""
import pickle
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

# package -> (minimum inclusive, maximum exclusive) tested versions.
TESTED_VERSIONS: Dict[str, Tuple[str, str]] = {
    'torch': ('2.0.0', '2.14.0'),
    'mmengine': ('0.10.0', '0.11.0'),
    'mmcv': ('2.0.0', '2.2.0'),
    'mmdet': ('3.0.0', '3.4.0'),
    'mmdet3d': ('1.1.0', '1.5.0'),
}


def _installed_version(package: str) -> Optional[str]:
    from importlib import metadata
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_versions(warn: bool = True) -> List[str]:
    """Check the OpenMMLab stack against the versions mmbinpc is tested with.

    Args:
        warn (bool): Emit a ``UserWarning`` for each problem. Defaults to True.

    Returns:
        list[str]: One human-readable line per package that is missing or
        outside its tested range (empty when everything matches).
    """
    from packaging.version import Version
    problems = []
    for package, (low, high) in TESTED_VERSIONS.items():
        found = _installed_version(package)
        if found is None:
            problems.append(f'{package} is not installed; mmbinpc needs '
                            f'{package}>={low},<{high}.')
            continue
        base = Version(Version(found).base_version)
        if not Version(low) <= base < Version(high):
            problems.append(
                f'{package} {found} is outside the versions mmbinpc is tested '
                f'with ({package}>={low},<{high}); things may break. The '
                f'tested set is pinned in requirements/constraints.txt.')
    if warn:
        for line in problems:
            warnings.warn(line, UserWarning, stacklevel=2)
    return problems


def _history_buffer_method(owner: Any, name: str) -> Any:
    """Stand-in for ``getattr`` while unpickling mmengine checkpoints.

    ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; allowing the real ``getattr`` would let
    a checkpoint reach any attribute of any allowed type, so only public
    methods of ``HistoryBuffer`` are handed out.
    """
    from mmengine.logging import HistoryBuffer
    if owner is not HistoryBuffer or name.startswith('_'):
        raise pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}) while loading a '
            f'checkpoint: only HistoryBuffer statistics methods are allowed')
    return getattr(HistoryBuffer, name)


def _mmengine_safe_globals() -> List[Any]:
    """Types that mmengine writes into its checkpoints, beyond tensors."""
    import numpy as np
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    safe: List[Any] = [
        HistoryBuffer, ConfigDict, np.ndarray, np.dtype,
        (_history_buffer_method, 'builtins.getattr')
    ]
    # numpy's pickle helpers live in numpy.core (numpy<2) or numpy._core.
    try:
        from numpy.core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - numpy>=2
        from numpy._core.multiarray import _reconstruct, scalar
    safe += [_reconstruct, scalar]
    # numpy>=1.25 pickles dtypes as instances of numpy.dtypes.*DType classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return safe


def load_checkpoint_file(filename: str,
                         map_location: Any = None) -> Dict[str, Any]:
    """Load a local mmengine checkpoint with ``weights_only=True``.

    Args:
        filename (str): Path of the checkpoint file.
        map_location: Passed to :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: If ``filename`` does not exist.
        RuntimeError: If the file holds objects outside tensors and the types
            mmengine writes itself; the message names the offending global.
    """
    import os.path as osp
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    with torch.serialization.safe_globals(_mmengine_safe_globals()):
        try:
            return torch.load(
                filename, map_location=map_location, weights_only=True)
        except Exception as err:  # torch raises UnpicklingError here
            if 'weights_only' not in str(err):
                raise
            raise RuntimeError(
                f'{filename!r} holds Python objects that are not tensors or '
                f'the types mmengine writes itself, so it is not loaded '
                f'(torch weights_only=True). If you trust the file, allow the '
                f'type named below with torch.serialization.add_safe_globals '
                f'before loading.\n{err}') from err


# The local-path loader that install_checkpoint_loader replaced.
_PREVIOUS_LOADER: List[Callable] = []


def install_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints with :func:`load_checkpoint_file`.

    Idempotent. Only the local-path scheme (prefix ``''``) is replaced; http,
    ``open-mmlab://`` and other schemes keep mmengine's loaders. Called by
    :func:`mmbinpc.runtime.setup` (``safe_checkpoints``).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    current: Optional[Callable] = CheckpointLoader._schemes.get('')
    if current is load_checkpoint_file:
        return
    if current is not None:
        _PREVIOUS_LOADER[:] = [current]
    CheckpointLoader.register_scheme(
        prefixes='', force=True)(
            load_checkpoint_file)


def uninstall_checkpoint_loader() -> None:
    """Give mmengine back the local-path loader it had before (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader
    if CheckpointLoader._schemes.get('') is not load_checkpoint_file:
        return
    if not _PREVIOUS_LOADER:  # pragma: no cover - mmengine always has one
        raise RuntimeError('mmengine had no local checkpoint loader to '
                           'restore')
    CheckpointLoader.register_scheme(
        prefixes='', force=True)(
            _PREVIOUS_LOADER[0])
