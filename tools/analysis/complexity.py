# Copyright (c) mmbinpc contributors. All rights reserved.
"""Per-layer FLOPs / BOPs / parameters / storage of a model config.

Usage:
    python tools/analysis/complexity.py CONFIG [--points N] [--json OUT]

Counts one forward pass of one cloud of N random points (per-sample
figures). ``--json`` writes a record: the totals at the top level
(``flops``, ``bops``, ``ops``, ``params``, ``storage_bytes``, ``speedup``,
``compression``, ``other_flops``; for a binary config also
``speedup_with_other_ops``, the speed-up when the forward code's other ops
are counted in both models), the per-layer, point-op and other-op rows,
the FP32 reference's totals, and the command, commit, machine and date.

For a binary config (``binarize=`` key, or a distiller whose student is
binarized) the speed-up and compression ratios are against the FP32
version of the same model (the config without ``binarize``). See
docs/complexity.md for the counting convention.
"""
import argparse
import datetime
import json
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-layer complexity (FLOPs, BOPs, params, storage)')
    parser.add_argument('config', help='model config file')
    parser.add_argument(
        '--points',
        type=int,
        default=1024,
        help='points per cloud (default 1024)')
    parser.add_argument(
        '--channels',
        type=int,
        default=None,
        help='channels per point (default: the backbone '
        'in_channels)')
    parser.add_argument(
        '--json',
        default=None,
        help='write the totals, the rows and how they were made here')
    parser.add_argument(
        '--quiet', action='store_true', help='print only the totals')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override config keys, e.g. model.head.'
        'num_classes=10 (parsed as data by mmengine\'s '
        'DictAction: numbers, booleans, lists, tuples, '
        'strings; never evaluated)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.points < 1:
        raise SystemExit(f'--points must be >= 1, got {args.points}')
    from mmengine.config import Config

    from mmbinpc.analysis import count_complexity, model_forward
    from mmbinpc.deploy.builder import build_model, deploy_model_cfgs
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'model' not in cfg:
        raise SystemExit(f'{args.config} has no model= entry')
    bin_cfg, fp_cfg = deploy_model_cfgs(cfg.model)
    if args.channels is None:  # mmdet3d backbones count xyz in in_channels
        args.channels = (bin_cfg.get('backbone') or {}).get('in_channels')
    fp_model = build_model(fp_cfg)
    forward, _ = model_forward(fp_model, args.points, args.channels)
    fp_report = count_complexity(fp_model, forward)
    report = fp_report
    if 'binarize' in bin_cfg:
        model = build_model(bin_cfg)
        forward, _ = model_forward(model, args.points, args.channels)
        report = count_complexity(model, forward, reference=fp_report)
    if args.quiet:
        print('\n'.join(report.table().split('\n\n')[-1:]))
    else:
        print(report.table())
    totals = report.totals()
    if args.json:
        from mmbinpc.analysis import code_version, host_info
        from mmbinpc.engine.atomic_io import atomic_write_text
        record = dict(
            report.to_dict(),
            config=args.config,
            points=args.points,
            channels=args.channels)
        if report is not fp_report:
            record['speedup_with_other_ops'] = (
                (fp_report.flops + fp_report.other_flops) /
                (report.ops + report.other_flops))
            record['reference'] = fp_report.totals()
        record.update(
            command='python tools/analysis/complexity.py ' +
            ' '.join(sys.argv[1:] if argv is None else argv),
            code=code_version(),
            host=host_info(),
            date=datetime.datetime.now().isoformat(timespec='seconds'))
        atomic_write_text(json.dumps(record, indent=1), args.json)
        print(f'record written to {args.json}')
    return totals


if __name__ == '__main__':
    main()
