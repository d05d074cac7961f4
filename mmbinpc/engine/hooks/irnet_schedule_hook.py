# Copyright (c) mmbinpc contributors. All rights reserved.
"""The IR-Net Error Decay Estimator schedule as an mmengine hook."""
from typing import Optional

from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook
from torch import nn

from mmbinpc.binary.binarizers import IRNetBinarizer


def set_irnet_progress(model: nn.Module, progress: float) -> int:
    """Set the training progress of every IR-Net binarizer in ``model``.

    Args:
        model (nn.Module): Model (possibly wrapped, e.g. by DDP).
        progress (float): Fraction of training done, in [0, 1].

    Returns:
        int: Number of IR-Net binarizers updated.
    """
    count = 0
    for module in model.modules():
        if isinstance(module, IRNetBinarizer):
            module.set_progress(progress)
            count += 1
    return count


@HOOKS.register_module()
class IRNetScheduleHook(Hook):
    """Drive IR-Net's EDE: ``t = 10^(−3 + 4 · iter / max_iters)``.

    Before every training iteration the hook sets ``progress =
    runner.iter / runner.max_iters`` on all IR-Net binarizers of the model,
    which gives ``t`` from 10⁻³ to 10 and ``k = max(1 / t, 1)``. Add it with
    ``custom_hooks = [dict(type='IRNetScheduleHook')]``.

    Args:
        log_interval (int, optional): Log ``t`` every this many iterations;
            None (default) logs only at the start of training.
    """

    priority = 'NORMAL'

    def __init__(self, log_interval: Optional[int] = None) -> None:
        self.log_interval = log_interval

    def _update(self, runner) -> float:
        max_iters = max(int(runner.max_iters), 1)
        progress = min(runner.iter / max_iters, 1.0)
        count = set_irnet_progress(runner.model, progress)
        return progress if count else -1.0

    def before_train(self, runner) -> None:
        progress = self._update(runner)
        if progress < 0:
            runner.logger.warning(
                'IRNetScheduleHook: the model has no IR-Net binarizer; the '
                'hook does nothing.')
        else:
            runner.logger.info(f'IRNetScheduleHook: progress {progress:.3f} '
                               f'at iter {runner.iter}/{runner.max_iters}')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        progress = self._update(runner)
        if (self.log_interval and progress >= 0
                and runner.iter % self.log_interval == 0):
            for module in runner.model.modules():
                if isinstance(module, IRNetBinarizer):
                    runner.logger.info(f'IR-Net EDE: t={module.t:.4g} '
                                       f'k={module.k:.4g}')
                    break
