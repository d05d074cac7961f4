# Copyright (c) mmbinpc contributors. All rights reserved.
import pytest
import torch
from mmdet3d.registry import METRICS
from mmdet3d.structures import Det3DDataSample
from mmengine.logging import MMLogger


def _samples(preds, gts):
    out = []
    for p, g in zip(preds, gts):
        s = Det3DDataSample()
        s.pred_label = torch.tensor(p)
        s.gt_label = torch.tensor(g)
        out.append(s.to_dict())
    return out


def test_overall_and_mean_class_accuracy(capsys):
    metric = METRICS.build(dict(type='ClsMetric'))
    metric.dataset_meta = dict(classes=('a', 'b', 'c', 'd'))
    # class a: 3/4, class b: 0/1, class c: 1/1, class d: no samples.
    metric.process({}, _samples([0, 0, 0, 1], [0, 0, 0, 0]))
    metric.process({}, _samples([2, 2], [1, 2]))
    MMLogger.get_instance('cls_metric_test', log_level='INFO')
    res = metric.evaluate(6)
    assert res['overall_acc'] == pytest.approx(100 * 4 / 6)
    assert res['mean_class_acc'] == pytest.approx(100 * (0.75 + 0 + 1) / 3)
    assert set(res) == {'overall_acc', 'mean_class_acc'}
    text = capsys.readouterr().out
    assert 'Per-class accuracy' in text and '75.00' in text and 'n/a' in text


def test_metric_without_class_names_and_errors():
    metric = METRICS.build(dict(type='ClsMetric'))
    metric.process({}, _samples([1, 1], [1, 0]))
    assert metric.evaluate(2)['overall_acc'] == pytest.approx(50.0)
    with pytest.raises(KeyError, match='pred_label'):
        metric.process({}, [dict(gt_label=torch.tensor(1))])
    metric = METRICS.build(dict(type='ClsMetric'))
    metric.dataset_meta = dict(classes=('a', ))
    metric.process({}, _samples([0], [3]))
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 1\)'):
        metric.evaluate(1)
