# Copyright (c) mmbinpc contributors. All rights reserved.
"""Classification accuracy metric."""
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet3d.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger


def _as_int(value) -> int:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'expected one label per sample, got a tensor of '
                             f'shape {tuple(value.shape)}')
        return int(value.item())
    return int(np.asarray(value).reshape(()))


def accuracy_table(preds: np.ndarray, gts: np.ndarray,
                   class_names: Sequence[str]) -> Dict[str, object]:
    """Overall and per-class accuracy (percent).

    Args:
        preds (np.ndarray): Predicted labels (S,).
        gts (np.ndarray): Ground-truth labels (S,).
        class_names (Sequence[str]): One name per class.

    Returns:
        dict: ``overall_acc``, ``mean_class_acc`` (mean over classes that
        have test samples), ``per_class`` (name -> accuracy or nan) and
        ``counts`` (name -> number of samples).
    """
    num_classes = len(class_names)
    if len(preds) == 0:
        raise ValueError('ClsMetric got no samples to evaluate')
    if gts.min() < 0 or gts.max() >= num_classes:
        raise ValueError(f'ground-truth labels must lie in [0, {num_classes})'
                         f', got range [{gts.min()}, {gts.max()}]')
    correct = preds == gts
    per_class, counts = {}, {}
    accs = []
    for c, name in enumerate(class_names):
        mask = gts == c
        counts[name] = int(mask.sum())
        if mask.any():
            acc = 100.0 * float(correct[mask].mean())
            accs.append(acc)
        else:
            acc = float('nan')
        per_class[name] = acc
    return dict(
        overall_acc=100.0 * float(correct.mean()),
        mean_class_acc=float(np.mean(accs)),
        per_class=per_class,
        counts=counts)


@METRICS.register_module()
class ClsMetric(BaseMetric):
    """Overall accuracy and mean class accuracy, in percent.

    Reads ``pred_label`` and ``gt_label`` of each data sample. At the end of
    an evaluation it logs a per-class accuracy table and returns
    ``overall_acc`` and ``mean_class_acc`` (classes without test samples are
    left out of the mean).

    Args:
        num_classes (int, optional): Used when the dataset has no
            ``classes`` meta information.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix.
    """

    default_prefix: Optional[str] = ''  # keys stay overall_acc, mean_class_acc

    def __init__(self,
                 num_classes: Optional[int] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if not isinstance(sample, dict):
                sample = sample.to_dict()
            for key in ('pred_label', 'gt_label'):
                if key not in sample:
                    raise KeyError(f'ClsMetric needs {key} in every data '
                                   f'sample; got keys {sorted(sample)}')
            self.results.append(
                (_as_int(sample['pred_label']), _as_int(sample['gt_label'])))

    def class_names(self, gts: np.ndarray) -> List[str]:
        classes = (self.dataset_meta or {}).get('classes')
        if classes:
            return list(classes)
        n = self.num_classes or int(gts.max()) + 1
        return [str(i) for i in range(n)]

    def compute_metrics(self, results: list) -> Dict[str, float]:
        preds = np.array([r[0] for r in results], dtype=np.int64)
        gts = np.array([r[1] for r in results], dtype=np.int64)
        names = self.class_names(gts)
        table = accuracy_table(preds, gts, names)
        width = max(len(n) for n in names + ['mean class'])
        lines = [f'{"class":<{width}}  {"acc (%)":>8}  {"samples":>7}']
        for name in names:
            acc = table['per_class'][name]
            acc_s = '     n/a' if np.isnan(acc) else f'{acc:8.2f}'
            lines.append(f'{name:<{width}}  {acc_s}  '
                         f'{table["counts"][name]:>7}')
        lines.append(f'{"mean class":<{width}}  '
                     f'{table["mean_class_acc"]:8.2f}  {len(gts):>7}')
        lines.append(f'{"overall":<{width}}  {table["overall_acc"]:8.2f}  '
                     f'{len(gts):>7}')
        MMLogger.get_current_instance().info('Per-class accuracy:\n' +
                                             '\n'.join(lines))
        return dict(
            overall_acc=table['overall_acc'],
            mean_class_acc=table['mean_class_acc'])
