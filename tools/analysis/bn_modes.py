# Copyright (c) mmbinpc contributors. All rights reserved.
"""Does a classifier fail because of its BatchNorm running statistics?

Usage:
    python tools/analysis/bn_modes.py CONFIG CHECKPOINT \
        [--split val] [--batch-size 32] [--json OUT] \
        [--cfg-options KEY=VALUE ...]

Evaluates one checkpoint (a BinaryDistiller's student, or the model itself)
on a split of its config's data, in shuffled batches, with BatchNorm
statistics taken four (or five) ways:

* ``eval``: as tools/test.py does (running statistics);
* ``batch``: every BatchNorm normalises with the statistics of its batch
  (training-mode BN, no other module in training mode);
* ``recalibrated``: running statistics re-estimated as the cumulative
  average over those same batches (all layers at once, in training mode),
  then eval mode;
* ``sequential``: running statistics re-estimated layer by layer in eval
  mode (``mmbinpc.engine.hooks.recalibrate_batchnorm``) on those batches
  merged into one;
* ``sequential_train`` (with ``--train-samples N``): the same from N
  samples of the training loader, as ``BNRecalibrationHook`` does before
  each validation.

A model that is good with ``batch`` and bad with ``eval`` and
``recalibrated`` depends on per-batch normalisation that no running
statistics reproduce (docs/recipe.md, "Left open"). The checkpoint on disk
is not changed.
"""
import argparse
import copy
import datetime
import json
import sys
from typing import Callable, Dict, List, Sequence

from mmengine.config import DictAction

MODES = ('eval', 'batch', 'recalibrated', 'sequential')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='accuracy with running, batch and re-estimated BN '
        'statistics')
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument(
        '--split',
        choices=('train', 'val', 'test'),
        default='val',
        help='which loader of the config '
        '(default: val)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=32,
        help='clouds per batch (default 32)')
    parser.add_argument(
        '--train-samples',
        type=int,
        default=0,
        help='also report sequential_train: statistics '
        're-estimated from this many training samples')
    parser.add_argument('--json', default=None, help='write the result here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override config keys')
    return parser.parse_args(argv)


def _batchnorms(net):
    from torch.nn.modules.batchnorm import _BatchNorm
    return [m for m in net.modules() if isinstance(m, _BatchNorm)]


def bn_mode_accuracies(net,
                       batches: Sequence,
                       forward: Callable,
                       labels: Sequence,
                       train_batch=None) -> Dict[str, float]:
    """Accuracy (%) of ``net`` in each of :data:`MODES`.

    Args:
        net (nn.Module): The classifier; left unchanged (a copy is used).
        batches (Sequence): Inputs, one item per batch, for ``forward``.
        forward (Callable): ``forward(net, batch) -> (B, K)`` logits.
        labels (Sequence[Tensor]): ``(B,)`` true classes per batch.
        train_batch (optional): One merged batch of training data for the
            ``sequential_train`` mode. Defaults to None (mode left out).

    Returns:
        dict: ``{mode: accuracy %}``.

    Raises:
        ValueError: If ``net`` has no BatchNorm or there are no batches.
    """
    import torch
    if not batches:
        raise ValueError('no batches to evaluate')
    if not _batchnorms(net):
        raise ValueError(f'{type(net).__name__} has no BatchNorm layer: '
                         'its eval and batch modes are the same')
    net = copy.deepcopy(net)

    def accuracy(bn_training: bool) -> float:
        net.eval()
        for bn in _batchnorms(net):
            bn.train(bn_training)
        state = copy.deepcopy(net.state_dict())  # batch mode updates stats
        right = total = 0
        with torch.no_grad():
            for batch, label in zip(batches, labels):
                pred = forward(net, batch).argmax(1)
                right += int((pred == label).sum())
                total += int(label.numel())
        net.load_state_dict(state)
        return 100.0 * right / total

    result = dict(eval=accuracy(False), batch=accuracy(True))
    for bn in _batchnorms(net):
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
        bn.train()
    with torch.no_grad():
        for batch in batches:
            forward(net, batch)
    result['recalibrated'] = accuracy(False)
    from mmbinpc.engine.hooks.bn_recalibration_hook import (
        _merge, recalibrate_batchnorm)
    merged = _merge(list(batches))
    recalibrate_batchnorm(net, lambda: forward(net, merged))
    result['sequential'] = accuracy(False)
    if train_batch is not None:
        recalibrate_batchnorm(net, lambda: forward(net, train_batch))
        result['sequential_train'] = accuracy(False)
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from mmengine.runner import Runner

    from mmbinpc.analysis import code_version, host_info
    from mmbinpc.apis import build_from_checkpoint
    from mmbinpc.engine.atomic_io import atomic_write_text
    from mmbinpc.engine.hooks.bn_recalibration_hook import take_samples
    cfg, model = build_from_checkpoint(args.config, args.checkpoint,
                                       args.cfg_options)
    net = getattr(model, 'student', model)
    loader_cfg = cfg[f'{args.split}_dataloader']
    loader_cfg.update(
        num_workers=0,
        persistent_workers=False,
        batch_size=args.batch_size,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=0))
    batches: List = []
    labels: List = []
    for batch in Runner.build_dataloader(loader_cfg):
        data = model.data_preprocessor(batch, False)
        batches.append(data)
        labels.append(
            torch.stack([
                torch.as_tensor(s.gt_label).reshape(())
                for s in data['data_samples']
            ]))
    train_batch = None
    if args.train_samples:
        raw, _ = take_samples(
            Runner.build_dataloader(cfg.train_dataloader), args.train_samples)
        train_batch = model.data_preprocessor(raw, False)
    accuracies = bn_mode_accuracies(
        net, batches, lambda m, d: m._forward(d['inputs'], d['data_samples']),
        labels, train_batch)
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        split=args.split,
        batch_size=args.batch_size,
        command='python tools/analysis/bn_modes.py ' +
        ' '.join(sys.argv[1:] if argv is None else argv),
        shapes=int(sum(len(x) for x in labels)),
        accuracy=accuracies,
        code=code_version(),
        host=host_info(),
        date=datetime.datetime.now().isoformat(timespec='seconds'))
    print(f'{result["shapes"]} shapes of the {args.split} split in shuffled '
          f'batches of {args.batch_size}:')
    for mode, acc in accuracies.items():
        print(f'  {mode:16s} {acc:5.1f} %')
    if args.json:
        atomic_write_text(json.dumps(result, indent=1), args.json)
    return result


if __name__ == '__main__':
    main()
