# Copyright (c) mmbinpc contributors. All rights reserved.
"""A plain model config with ``binarize=`` (the short spelling, no
distiller) still trains and tests through tools/train.py and tools/test.py,
which rewrite it into the ``Binarized`` factory; no registry reads it."""
from mmbinpc.binary.layers import BinaryMixin
from mmbinpc.experiments.runner import load_tool


def test_short_binarize_key_through_the_tools(tmp_path, tiny_pointnet_config):
    cfg = tiny_pointnet_config(
        "model.update(binarize=dict(method='xnor', aggregation='ema'))\n")
    work = str(tmp_path / 'work')
    runner = load_tool('train').main(
        [cfg, '--work-dir', work, '--epochs', '1'])
    assert runner.cfg.model.type == 'Binarized'
    assert runner.cfg.model.model.type == 'PointClassifier'
    binary = [m for m in runner.model.modules() if isinstance(m, BinaryMixin)]
    assert binary and all(m.binarizer.name == 'xnor' for m in binary)
    assert runner.model.binarize_report.pooling_modes['pool'] == 'ema'
    # the checkpoint holds the inner model's keys and tools/test.py reads it
    metrics = load_tool('test').main(
        [cfg, f'{work}/epoch_1.pth', '--work-dir',
         str(tmp_path / 'test')])
    assert set(metrics) == {'overall_acc', 'mean_class_acc'}
