# Copyright (c) mmbinpc contributors. All rights reserved.
"""Fault injection for the resume tests: SIGKILL the training process at a
chosen point.

Loaded by the test configs with ``custom_imports``; the point comes from the
environment variable ``MMBINPC_KILL_AT`` (unset: the hook does nothing):

* ``train_iter:E:I`` - before training iteration ``I`` of epoch ``E``
  (0-based, i.e. in the middle of the epoch);
* ``val_iter:E:I`` - before validation iteration ``I`` after training epoch
  ``E`` (1-based, as mmengine counts finished epochs);
* ``replace:NAME`` - while a checkpoint is written: the data is in the
  temporary file and the process dies before the rename to ``NAME``.
"""
import os
import os.path as osp
import signal

from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook

ENV = 'MMBINPC_KILL_AT'


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillAtHook(Hook):
    """SIGKILL this process at the point named in ``MMBINPC_KILL_AT``."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.point = os.environ.get(ENV, '').split(':')

    def before_train(self, runner) -> None:
        if self.point[0] != 'replace':
            return
        name = self.point[1]
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if osp.basename(str(dst)) == name:
                _die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace  # this process is about to die anyway

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.point[0] == 'train_iter' and [runner.epoch, batch_idx] == [
                int(self.point[1]), int(self.point[2])
        ]:
            _die()

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if self.point[0] == 'val_iter' and [runner.epoch, batch_idx] == [
                int(self.point[1]), int(self.point[2])
        ]:
            _die()
