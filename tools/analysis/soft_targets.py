# Copyright (c) mmbinpc contributors. All rights reserved.
"""What a trained classifier's soft targets hold, per temperature.

Usage:
    python tools/analysis/soft_targets.py CONFIG CHECKPOINT \
        [--split train] [--temperatures 1 2 4] [--json OUT] \
        [--cfg-options KEY=VALUE ...]

Runs the model (normally the FP32 teacher) in eval mode over a split of its
config's data and reports, for each temperature T, the mean and median
probability ``softmax(z / T)`` gives the true label, the mean entropy (nats)
and the mass on classes that never occur as a label in that split (e.g. the
30 unused outputs of a 40-way head on a 10-class data set). That is what
KD's ``L_DS`` asks a student to copy besides the label.
"""
import argparse
import datetime
import json
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='soft-target statistics of a classifier per temperature')
    parser.add_argument('config', help='config of the (teacher) model')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument(
        '--split',
        choices=('train', 'val', 'test'),
        default='train',
        help='which loader of the config '
        '(default: train, what KD sees; its augmentation '
        'is kept)')
    parser.add_argument(
        '--temperatures',
        type=float,
        nargs='+',
        default=[1.0, 2.0, 4.0],
        help='default: 1 2 4')
    parser.add_argument('--json', default=None, help='write the result here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override config keys (data, '
        'never evaluated)')
    return parser.parse_args(argv)


def soft_target_stats(logits, labels, temperature: float) -> dict:
    """Statistics of ``softmax(logits / T)`` against the labels.

    Args:
        logits (Tensor): ``(N, K)`` class scores.
        labels (Tensor): ``(N,)`` true classes.
        temperature (float): ``T > 0``.

    Returns:
        dict: ``p_label_mean``, ``p_label_median``, ``entropy_mean`` (nats)
        and ``absent_mass_mean`` (mass on classes not in ``labels``).
    """
    import torch
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    p = torch.softmax(logits.double() / temperature, dim=1)
    p_label = p.gather(1, labels.view(-1, 1)).squeeze(1)
    entropy = -(p * p.clamp_min(1e-300).log()).sum(1)
    present = torch.zeros(p.shape[1], dtype=torch.bool)
    present[labels.unique()] = True
    return dict(
        p_label_mean=float(p_label.mean()),
        p_label_median=float(p_label.median()),
        entropy_mean=float(entropy.mean()),
        absent_mass_mean=float(p[:, ~present].sum(1).mean()))


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from mmengine.runner import Runner

    from mmbinpc.analysis import code_version, host_info
    from mmbinpc.apis import build_from_checkpoint
    from mmbinpc.engine.atomic_io import atomic_write_text
    cfg, model = build_from_checkpoint(args.config, args.checkpoint,
                                       args.cfg_options)
    model.eval()
    loader_cfg = cfg[f'{args.split}_dataloader']
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader = Runner.build_dataloader(loader_cfg)
    all_logits, all_labels = [], []
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            all_logits.append(
                model._forward(data['inputs'], data['data_samples']))
            all_labels.append(
                torch.stack([
                    torch.as_tensor(s.gt_label).reshape(())
                    for s in data['data_samples']
                ]))
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        split=args.split,
        command='python tools/analysis/soft_targets.py ' +
        ' '.join(sys.argv[1:] if argv is None else argv),
        shapes=int(labels.numel()),
        classes=int(logits.shape[1]),
        labels_seen=int(labels.unique().numel()),
        accuracy=float((logits.argmax(1) == labels).double().mean()),
        temperatures={
            f'{t:g}': soft_target_stats(logits, labels, t)
            for t in args.temperatures
        },
        code=code_version(),
        host=host_info(),
        date=datetime.datetime.now().isoformat(timespec='seconds'))
    print(f'{result["shapes"]} shapes of the {args.split} split, '
          f'{result["labels_seen"]} of {result["classes"]} classes occur; '
          f'accuracy {100 * result["accuracy"]:.1f} %')
    for t, s in result['temperatures'].items():
        print(f'T = {t}: p(label) mean {s["p_label_mean"]:.3f}, median '
              f'{s["p_label_median"]:.3f}; entropy {s["entropy_mean"]:.3f} '
              f'nats; mass on absent classes {s["absent_mass_mean"]:.3f}')
    if args.json:
        atomic_write_text(json.dumps(result, indent=1), args.json)
    return result


if __name__ == '__main__':
    main()
