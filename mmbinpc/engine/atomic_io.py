# Copyright (c) mmbinpc contributors. All rights reserved.
"""Writes that survive a kill: temporary file, fsync, rename.

A file written in place is truncated for as long as the write lasts; a run
killed then (SIGKILL, out of memory, a pre-empted job) leaves a file that
cannot be loaded under the final name. Every function here writes to a
temporary file in the same directory (``.<name>.<pid>.<random>.part``),
flushes and fsyncs it, renames it over the final name with
:func:`os.replace` (atomic on POSIX and Windows) and fsyncs the directory. At
any instant the final name holds either the old complete file or the new
complete file.

:class:`AtomicLocalBackend` makes mmengine's own checkpoint writes go this
way: it is a local file backend registered in mmengine's file-backend
registry as ``'local_atomic'``, selected with
``backend_args=dict(backend='local_atomic')`` (what
:class:`~mmbinpc.engine.hooks.SafeCheckpointHook` does by default).
"""
import io
import os
import os.path as osp
import re
import secrets
from pathlib import Path
from typing import Any, List, Union

from mmengine.fileio import LocalBackend, register_backend

PathLike = Union[str, Path]
TEMP_SUFFIX = '.part'
_TEMP_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}' +
                        re.escape(TEMP_SUFFIX) + '$')


def temp_path(path: PathLike) -> str:
    """A fresh temporary name next to ``path`` (hidden, never ``*.pth``)."""
    path = str(path)
    folder, name = osp.split(path)
    return osp.join(
        folder, f'.{name}.{os.getpid()}.{secrets.token_hex(4)}'
        f'{TEMP_SUFFIX}')


def _fsync_dir(folder: str) -> None:
    """Make a rename in ``folder`` durable (no-op where unsupported)."""
    if os.name != 'posix':  # pragma: no cover - Windows has no dir fsync
        return
    fd = os.open(folder or '.', os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(data: bytes, path: PathLike) -> None:
    """Write ``data`` to ``path`` so that a kill never leaves it partial.

    Args:
        data (bytes): The content.
        path (str | Path): The final file; its directory is created.
    """
    path = str(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_text(text: str,
                      path: PathLike,
                      encoding: str = 'utf-8') -> None:
    """:func:`atomic_write_bytes` for text."""
    atomic_write_bytes(text.encode(encoding), path)


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save(obj, path)``, written atomically."""
    import torch
    with io.BytesIO() as buf:
        torch.save(obj, buf)
        atomic_write_bytes(buf.getvalue(), path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def remove_stale_temp_files(folder: PathLike) -> List[str]:
    """Delete the temporary files that killed writers left in ``folder``.

    Only names this module makes are touched, and only when the process
    that made them is gone.

    Returns:
        list[str]: The removed paths.
    """
    folder = str(folder)
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in os.listdir(folder):
        found = _TEMP_NAME.match(name)
        if found and not _alive(int(found.group('pid'))):
            path = osp.join(folder, name)
            try:
                os.remove(path)
                removed.append(path)
            except OSError:  # pragma: no cover - raced with another cleaner
                pass
    return removed


@register_backend('local_atomic')
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, with atomic ``put`` and ``put_text``.

    Reads, listing, joining and removal are those of
    :class:`mmengine.fileio.LocalBackend`.
    """

    def put(self, obj: bytes, filepath: PathLike) -> None:
        """Write bytes to ``filepath`` atomically (temp file + rename)."""
        atomic_write_bytes(obj, filepath)

    def put_text(self,
                 obj: str,
                 filepath: PathLike,
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (temp file + rename)."""
        atomic_write_text(obj, filepath, encoding)


__all__ = [
    'AtomicLocalBackend', 'atomic_write_bytes', 'atomic_write_text',
    'atomic_torch_save', 'remove_stale_temp_files', 'temp_path'
]
