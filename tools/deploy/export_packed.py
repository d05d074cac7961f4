# Copyright (c) mmbinpc contributors. All rights reserved.
"""Export a trained binary model to the bit-packed format.

Usage:
    python tools/deploy/export_packed.py CONFIG CHECKPOINT OUT [--points N]

The model becomes a graph of ops with their arrays (see
docs/deployment.md): binary weights 1 bit each (64 per uint64 word) with
per-channel output maps, BatchNorm folded, clamps, pooling and "write the
next layer's bits" fused, FP32 layers kept FP32. Load the result with
``mmbinpc.deploy.runtime.PackedModel.load(OUT)`` (NumPy and Numba only).
Supported: PointNet (with or without T-Nets), DGCNN and PointNet++ SSG
classifiers, and mmdet3d's DGCNN and PointNet++ SSG segmentors; any other
architecture stops with an error naming what is not supported.

The checkpoint must fit the binary model exactly (every parameter and buffer,
no unknown key, no tensor of another shape; a distiller checkpoint gives its
``student.*`` weights) and must come from a binary run: a checkpoint whose
recorded config trained an FP32 model (e.g. the teacher's) is refused, as is
a config whose model has no binary layer. Each is an error with exit status
1; ``--allow-partial-checkpoint`` and ``--allow-fp32-checkpoint`` export
anyway.
"""
import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Bit-packed export')
    parser.add_argument(
        'config', help='config of the binary model (or of '
        'its distiller)')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('out', help='output file')
    parser.add_argument(
        '--points',
        type=int,
        default=1024,
        help='points per cloud the model was tested with, recorded for '
        'predict.py (default 1024)')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='export even when the checkpoint does not fit the model '
        '(parameters or buffers left unloaded, unknown keys, tensors of '
        'another shape): what fits is loaded, the rest keeps its initial '
        'values. Without it any mismatch exits with status 1')
    parser.add_argument(
        '--allow-fp32-checkpoint',
        action='store_true',
        help='export a checkpoint whose recorded config trained an FP32 '
        'model (packing the signs of FP32 weights); refused by default')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from mmbinpc.apis.checkpoint import (checkpoint_state, load_state_checked,
                                         read_checkpoint, select_student,
                                         trained_binary)
    from mmbinpc.binary.layers import BinaryMixin
    from mmbinpc.deploy import (export_packed, preprocess_steps,
                                state_dict_bytes)
    from mmbinpc.deploy.builder import build_model, deploy_model_cfgs
    from mmbinpc.errors import CheckpointMismatchError
    if not os.path.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} not found; train the '
                         f'model first (tools/train.py {args.config})')
    checkpoint = read_checkpoint(args.checkpoint)
    cfg = Config.fromfile(args.config)
    bin_cfg, fp_cfg = deploy_model_cfgs(cfg.model)
    if 'binarize' not in bin_cfg:
        raise SystemExit(f"{args.config} is not a binary model (no "
                         f"type='Binarized' or binarize= key); nothing to "
                         'pack')
    if trained_binary(checkpoint) is False and not args.allow_fp32_checkpoint:
        raise CheckpointMismatchError(
            args.checkpoint, 'was written by a run whose config trains an '
            "FP32 model (no 'Binarized', binarize= or BinaryDistiller in "
            'it), so packing '
            'it would store the signs of FP32 weights, not a trained binary '
            'model', 'Export a checkpoint of the binary run (the distiller '
            "or binary config's work dir), or pass --allow-fp32-checkpoint")
    model = build_model(bin_cfg)
    if not any(isinstance(m, BinaryMixin) for m in model.modules()):
        raise SystemExit(f'{args.config}: the model has no binary layer after '
                         f'binarize={bin_cfg["binarize"]!r}; nothing to pack')
    load_state_checked(
        model,
        select_student(checkpoint_state(checkpoint, args.checkpoint)),
        args.checkpoint,
        args.allow_partial_checkpoint,
        checkpoint=checkpoint)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    pipeline = cfg.get('test_dataloader', {}).get('dataset',
                                                  {}).get('pipeline', [])
    summary = export_packed(
        model,
        args.out,
        num_points=args.points,
        preprocess=preprocess_steps(pipeline),
        source=dict(
            config=os.path.basename(args.config),
            checkpoint=os.path.basename(args.checkpoint)))
    fp_model = build_model(fp_cfg)
    fp_bytes = state_dict_bytes(fp_model)
    ops = ', '.join(f'{n} {op}' for op, n in summary.ops.items())
    print(f'wrote {summary.path}: {summary.file_bytes:,} bytes; {ops}; '
          f'{len(summary.bits_outputs)} binary layers write the next '
          f"layer's bits, {len(summary.fused_pools)} fuse their pooling")
    print(f'FP32 state dict of the same model: {fp_bytes:,} bytes -> size '
          f'ratio {fp_bytes / summary.file_bytes:.1f}x')
    return summary


if __name__ == '__main__':
    from mmbinpc.errors import MMBinPCFileError
    try:
        main()
    except MMBinPCFileError as err:
        sys.exit(f'error: {err}')
