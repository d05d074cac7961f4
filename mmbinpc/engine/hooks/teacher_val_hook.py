# Copyright (c) mmbinpc contributors. All rights reserved.
"""Log the frozen teacher's validation metrics once, before training."""
from typing import Dict, Optional

import torch
from mmdet3d.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class TeacherValHook(Hook):
    """Evaluate a :class:`BinaryDistiller`'s teacher on the validation set.

    Runs once in ``before_train`` and logs every metric as
    ``teacher/<metric>`` (logger, message hub and visualizer backends), so
    the student's numbers can be read against the FP32 reference. Does
    nothing for models that are not distillers or when there is no
    validation loop.

    Args:
        max_batches (int, optional): Evaluate on the first batches only.
            Defaults to None (the whole validation set).
    """

    priority = 'LOW'

    def __init__(self, max_batches: Optional[int] = None) -> None:
        self.max_batches = max_batches
        self.metrics: Dict[str, float] = {}

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'eval_teacher'):
            runner.logger.info('TeacherValHook: the model is not a '
                               'BinaryDistiller; nothing to evaluate')
            return
        loop = getattr(runner, 'val_loop', None)
        if loop is None:
            return
        dataloader, evaluator = loop.dataloader, loop.evaluator
        was_training = model.training
        model.eval()
        model.eval_teacher = True
        try:
            with torch.no_grad():
                seen = 0
                for idx, data_batch in enumerate(dataloader):
                    if (self.max_batches is not None
                            and idx >= self.max_batches):
                        break
                    outputs = runner.model.val_step(data_batch)
                    evaluator.process(
                        data_samples=outputs, data_batch=data_batch)
                    seen += len(outputs)
            size = len(dataloader.dataset) if self.max_batches is None \
                else seen
            metrics = evaluator.evaluate(size)
        finally:
            model.eval_teacher = False
            model.train(was_training)
        self.metrics = {f'teacher/{k}': v for k, v in metrics.items()}
        scalars = {
            k: float(v)
            for k, v in self.metrics.items() if isinstance(v, (int, float))
        }
        for key, value in scalars.items():
            runner.message_hub.update_scalar(key, value)
        if scalars:
            runner.visualizer.add_scalars(scalars, step=runner.iter)
        text = '  '.join(
            f'{k}: {v:.4f}' if isinstance(v, float) else f'{k}: {v}'
            for k, v in self.metrics.items())
        runner.logger.info(f'FP32 teacher on the validation set: {text}')
