# Copyright (c) mmbinpc contributors. All rights reserved.
"""Export a trained binary model to the bit-packed format.

Usage:
    python tools/deploy/export_packed.py CONFIG CHECKPOINT OUT [--points N]

Binary weights are stored 1 bit each (64 per uint64 word) with per-channel
scales, BatchNorm is folded where it directly follows a layer, FP32 layers
stay FP32, and the model config is stored as the architecture description.
Load the result with ``mmbinpc.deploy.PackedModel.load(OUT)``.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..'))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Bit-packed export')
    parser.add_argument('config', help='config of the binary model (or of '
                        'its distiller)')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('out', help='output file')
    parser.add_argument('--points', type=int, default=1024,
                        help='points of the tracing input (default 1024)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from mmbinpc.deploy import export_packed, state_dict_bytes
    from mmbinpc.deploy.builder import (build_model, deploy_model_cfgs,
                                        load_weights)
    if not os.path.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} not found; train the '
                         f'model first (tools/train.py {args.config})')
    cfg = Config.fromfile(args.config)
    bin_cfg, fp_cfg = deploy_model_cfgs(cfg.model)
    if 'binarize' not in bin_cfg:
        raise SystemExit(f'{args.config} is not a binary model (no binarize= '
                         f'key); nothing to pack')
    model = build_model(bin_cfg)
    load_weights(model, args.checkpoint)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    summary = export_packed(model, args.out, bin_cfg, num_points=args.points)
    fp_model = build_model(fp_cfg)
    fp_bytes = state_dict_bytes(fp_model)
    print(f'wrote {summary.path}: {summary.file_bytes:,} bytes, '
          f'{len(summary.binary_layers)} packed binary layers, '
          f'{len(summary.folded_bn)} BatchNorms folded, '
          f'{summary.fp_tensors} FP32 tensors')
    print(f'FP32 state dict of the same model: {fp_bytes:,} bytes -> size '
          f'ratio {fp_bytes / summary.file_bytes:.1f}x')
    return summary


if __name__ == '__main__':
    main()
