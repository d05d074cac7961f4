# Copyright (c) mmbinpc contributors. All rights reserved.
"""A CheckpointHook whose directory always holds a loadable best and latest.

mmengine's ``CheckpointHook`` writes ``epoch_N.pth`` and ``best_*.pth`` in
place, deletes the previous best checkpoint *before* writing the new one,
deletes the oldest ``epoch_*.pth`` (``max_keep_ckpts``) before writing the
next, and writes the ``last_checkpoint`` pointer in place. A run killed at the
wrong moment therefore leaves a truncated checkpoint, or none at all.
:class:`SafeCheckpointHook` changes only the order and the way files are
written:

* every checkpoint goes through the ``'local_atomic'`` file backend
  (:class:`~mmbinpc.engine.atomic_io.AtomicLocalBackend`): temporary file,
  fsync, rename;
* files are deleted only after their replacement is in place (the previous
  best after the new best, the oldest epoch after the newest and after
  ``last_checkpoint`` points at it);
* ``last_checkpoint`` is written atomically;
* temporary files left by a killed run are removed when training starts.

Everything else (options, file names, what is kept) is mmengine's.
"""
import os.path as osp
from typing import Any, List, Optional

from mmdet3d.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.runner.checkpoint import find_latest_checkpoint

from ..atomic_io import atomic_write_text, remove_stale_temp_files

ATOMIC_BACKEND = dict(backend='local_atomic')


def _is_local(path: Optional[str]) -> bool:
    return path is None or '://' not in str(path)


class _DeferredRemovals:
    """A file backend stand-in that records removals instead of doing them.

    Every other attribute is the wrapped backend's.
    """

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: List[str] = []

    def remove(self, filepath: Any) -> None:
        self.pending.append(str(filepath))

    def rmtree(self, dir_path: Any) -> None:
        self.pending.append(str(dir_path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with kill-safe writes and rotations.

    Takes the arguments of :class:`mmengine.hooks.CheckpointHook`. For a local
    ``out_dir`` (the default: the work dir) and no ``backend_args`` /
    ``file_client_args`` given, ``backend_args`` defaults to
    ``dict(backend='local_atomic')``; other storage keeps its backend.

    Example::

        default_hooks = dict(checkpoint=dict(
            type='SafeCheckpointHook', interval=1, max_keep_ckpts=2,
            save_best='overall_acc', rule='greater'))
    """

    def __init__(self, *args, **kwargs) -> None:
        if (kwargs.get('backend_args') is None
                and kwargs.get('file_client_args') is None
                and _is_local(kwargs.get('out_dir'))):
            kwargs['backend_args'] = dict(ATOMIC_BACKEND)
        super().__init__(*args, **kwargs)

    @property
    def atomic(self) -> bool:
        """Whether checkpoints are written through the atomic backend."""
        return (self.backend_args or {}).get('backend') == 'local_atomic'

    def before_train(self, runner) -> None:
        """Set up as mmengine does, then clear temporary files of a kill."""
        super().before_train(runner)
        if self.atomic and is_main_process():
            for path in remove_stale_temp_files(self.out_dir):
                runner.logger.info(f'removed {path}, a checkpoint write '
                                   'that a killed run left unfinished')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check a resumed checkpoint fits; drop a ``meta['config']`` text.

        Resuming from another model's checkpoint is a
        :class:`~mmbinpc.errors.CheckpointMismatchError` naming the file
        (mmengine loads the weights non-strictly and then fails on the
        optimizer's parameter groups, or resumes a half-loaded model).

        mmengine never writes ``meta['config']`` itself (it records
        ``meta['cfg']``), but ``Runner.resume`` parses one with
        ``Config.fromstring``, which runs Python; a checkpoint is data and
        must not run code.
        """
        resuming = getattr(runner, '_resume', False)
        state = checkpoint.get('state_dict')
        if resuming and isinstance(state, dict):
            from mmbinpc.apis.checkpoint import check_state
            path = getattr(runner, '_load_from', None) or \
                find_latest_checkpoint(runner.work_dir) or runner.work_dir
            check_state(
                runner.model,
                state,
                str(path),
                checkpoint=checkpoint,
                fix='resume only from a checkpoint of this config (its work '
                'dir), or start a new run without --resume')
        meta = checkpoint.get('meta')
        if isinstance(meta, dict) and 'config' in meta:
            meta.pop('config')
            runner.logger.warning(
                "ignored meta['config'] in the loaded checkpoint: mmengine "
                'would execute it as Python while resuming')

    def _remove(self, path: str) -> None:
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved as folders
            self.file_backend.rmtree(path)

    def _current_files(self) -> set:
        """The checkpoints this hook points at now (never to be deleted)."""
        keep = {str(self.last_ckpt)} if self.last_ckpt else set()
        if getattr(self, 'best_ckpt_path', None):
            keep.add(str(self.best_ckpt_path))
        keep.update(
            str(p) for p in (
                getattr(self, 'best_ckpt_path_dict', None) or {}).values()
            if p)
        return keep

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """Save ``step``; rotate ``max_keep_ckpts`` only once it is written.

        Same files and message-hub records as mmengine; the order is: save
        the new checkpoint, point ``last_checkpoint`` at it (atomically),
        then delete the one that fell out of ``max_keep_ckpts``.
        """
        stale = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale = self.file_backend.join_path(
                    self.out_dir,
                    self.filename_tmpl.format(self.keep_ckpt_ids.popleft()))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if self.atomic:
            atomic_write_text(str(self.last_ckpt), pointer)
        else:
            with open(pointer, 'w') as f:
                f.write(str(self.last_ckpt))
        if stale is not None and str(stale) not in self._current_files():
            self._remove(stale)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """mmengine's best-checkpoint logic, deleting the old best last."""
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        if not is_main_process():
            return
        keep = self._current_files()
        for path in deferred.pending:
            if path not in keep:
                self._remove(path)


__all__ = ['SafeCheckpointHook']
