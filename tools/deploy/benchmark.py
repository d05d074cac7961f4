# Copyright (c) mmbinpc contributors. All rights reserved.
"""Time FP32 PyTorch, fake-quantized PyTorch and the packed runtime.

Usage:
    python tools/deploy/benchmark.py CONFIG CHECKPOINT [--packed FILE]
        [--points 1024] [--batch-sizes 1 32] [--repeats 30] [--json OUT]

All three run in one process on the same random clouds, timed in two
orders:

* interleaved (the headline keys): round by round, one run of each model,
  so load from other processes hits them alike - and each model starts
  with caches the others have just filled. That costs the packed engine,
  whose whole working set (0.44 MB of weights plus its work arrays) would
  otherwise stay in the L2 cache, far more than the FP32 model, whose 14 MB
  of weights never fit;
* back to back (the ``*_warm`` keys): all rounds of one model, then the
  next - a model serving a stream of requests.

The median and the minimum of the rounds are reported (the ``*_min`` keys;
on a machine shared with other jobs the minimum is the closer estimate of
the undisturbed cost).

At batch 1 the packed model's time is split by op (``packed_op_ms_b1``,
``packed_op_share_b1``: binary layers, FP32 layers, kNN, edge features,
pooling, ...), which shows what limits each model; and the time inside its
binary layers (pack + XNOR-popcount + folded BN, clamp, fused pooling or
the next layer's bits) is set against the same FP32 PyTorch conv/linear
modules (``binary_layers_speedup``).
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Packed engine benchmark')
    parser.add_argument('config', help='config of the binary model')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='trained checkpoint (random weights if absent)')
    parser.add_argument(
        '--packed',
        default=None,
        help='packed file (default: export to a temp file)')
    parser.add_argument('--points', type=int, default=1024)
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument(
        '--repeats',
        type=int,
        default=30,
        help='timed rounds at batch 1 (fewer at larger '
        'batches)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch intra-op threads and packed-kernel '
        'threads (default: torch\'s default, all cores, '
        'against one packed-kernel thread)')
    parser.add_argument('--json', default=None, help='write results here')
    return parser.parse_args(argv)


class LayerTimer:
    """Accumulates wall time spent inside the given modules."""

    def __init__(self, modules):
        self.total = 0.0
        self.handles = []
        self._t0 = {}
        for m in modules:
            self.handles.append(m.register_forward_pre_hook(self._pre))
            self.handles.append(m.register_forward_hook(self._post))

    def _pre(self, module, args):
        self._t0[id(module)] = time.perf_counter()

    def _post(self, module, args, out):
        self.total += time.perf_counter() - self._t0.pop(id(module))

    def remove(self):
        for h in self.handles:
            h.remove()


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch
    from mmengine.config import Config

    from mmbinpc.analysis import cpu_name, run_rounds, speedup, timing_stats
    from mmbinpc.deploy.builder import (build_model, deploy_model_cfgs,
                                        load_weights, state_dict_bytes)
    from mmbinpc.deploy.converter import export_packed
    from mmbinpc.deploy.kernels import get_num_threads, set_num_threads
    from mmbinpc.deploy.kernels import warmup as jit_warmup
    from mmbinpc.deploy.runtime import PackedModel

    if args.threads is not None:
        torch.set_num_threads(args.threads)
        set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    bin_cfg, fp_cfg = deploy_model_cfgs(cfg.model)
    if 'binarize' not in bin_cfg:
        raise SystemExit(f'{args.config} is not a binary model config')
    bin_model = build_model(bin_cfg)
    load_weights(bin_model, args.checkpoint)
    fp_model = build_model(fp_cfg)
    load_weights(fp_model, args.checkpoint, strict=False)
    tmp = None
    packed_path = args.packed
    if packed_path is None:
        tmp = tempfile.TemporaryDirectory()
        packed_path = os.path.join(tmp.name, 'model.packed')
        export_packed(bin_model, packed_path, num_points=args.points)
    jit_warmup()
    packed = PackedModel.load(packed_path)
    channels = packed.in_channels

    gen = torch.Generator().manual_seed(0)
    segment = packed.task == 'segmentation'

    def torch_runner(model):
        # a segmentor's logits are (B, K, N); the runtime's (B, N, K)
        if segment:
            return lambda p: model._forward(dict(points=list(p))).transpose(
                1, 2)
        return lambda p: model._forward(dict(points=p))

    runners = {
        'fp32': torch_runner(fp_model),
        'binary_torch': torch_runner(bin_model),
        'packed': lambda p: torch.from_numpy(packed(p.numpy())),
    }
    results = dict(
        model=type(bin_model.backbone).__name__,
        task=packed.task,
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        packed_threads=get_num_threads(),
        points=args.points)
    try:
        import numba
        results['numba_version'] = numba.__version__
    except ImportError:
        pass
    try:
        results['load_avg_before'] = os.getloadavg()[0]
    except OSError:
        pass
    results['torch_version'] = torch.__version__
    lines = []
    with torch.no_grad():
        for bs in args.batch_sizes:
            points = torch.rand(
                bs, args.points, channels, generator=gen) * 2 - 1
            rounds = max(3, args.repeats // max(1, bs // 4)) if bs > 1 \
                else args.repeats
            for _ in range(args.warmup):
                for run in runners.values():
                    run(points)
            for order, suffix in (('interleaved', ''), ('back to back',
                                                        '_warm')):
                times = run_rounds(runners, points, rounds, order)
                stats = timing_stats(times)
                med, low = stats['median'], stats['min']
                for k in runners:
                    results[f'{k}_ms_b{bs}{suffix}'] = med[k]
                    results[f'{k}_ms_b{bs}{suffix}_min'] = low[k]
                results[f'speedup_b{bs}{suffix}'] = speedup(
                    med, 'fp32', 'packed')
                results[f'speedup_b{bs}{suffix}_min'] = speedup(
                    low, 'fp32', 'packed')
                results[f'speedup_vs_binary_torch_b{bs}{suffix}'] = speedup(
                    med, 'binary_torch', 'packed')
                for stat, d in (('median', med), ('min', low)):
                    lines.append(
                        f'batch {bs:>3} x {args.points} pts, {order} '
                        f'({rounds} rounds, {stat}): FP32 {d["fp32"]:.2f} ms '
                        f'| binary torch {d["binary_torch"]:.2f} ms | packed '
                        f'{d["packed"]:.2f} ms | packed vs FP32 '
                        f'{speedup(d, "fp32", "packed"):.1f}x, vs binary '
                        f'torch {speedup(d, "binary_torch", "packed"):.1f}x')
            # agreement on the same input
            ref = runners['binary_torch'](points)
            out = runners['packed'](points)
            # share of clouds (of points, for a segmentor) predicted alike
            agree = (ref.argmax(-1) == out.argmax(-1)).float().mean().item()
            results[f'pred_agreement_b{bs}'] = agree
            results[f'max_abs_logit_diff_b{bs}'] = \
                (ref - out).abs().max().item()

        # where the packed model's time goes at batch 1 (op by op), and its
        # binary layers against the same FP32 conv/linear modules
        points = torch.rand(1, args.points, channels, generator=gen) * 2 - 1
        names = [op.name for op, _ in packed.nodes if op.op == 'binary_dense']
        fp_modules = dict(fp_model.named_modules())
        fp_timer = LayerTimer([fp_modules[n] for n in names])
        fp_layer, packed_total = [], []
        packed.timing = True
        packed.op_seconds.clear()
        for _ in range(args.repeats):
            fp_timer.total = 0.0
            runners['fp32'](points)
            fp_layer.append(fp_timer.total * 1e3)
            t0 = time.perf_counter()
            runners['packed'](points)
            packed_total.append((time.perf_counter() - t0) * 1e3)
        packed.timing = False
        fp_timer.remove()
        op_ms = {
            k: v * 1e3 / args.repeats
            for k, v in sorted(
                packed.op_seconds.items(), key=lambda kv: -kv[1])
        }
        total = sum(op_ms.values())
        results['packed_op_ms_b1'] = op_ms
        results['packed_op_share_b1'] = {
            k: v / total
            for k, v in op_ms.items()
        }
        results['fp32_binary_layers_ms_b1'] = float(np.median(fp_layer))
        results['packed_binary_layers_ms_b1'] = op_ms.get('binary_dense', 0.0)
        results['binary_layers_speedup'] = (
            results['fp32_binary_layers_ms_b1'] /
            max(results['packed_binary_layers_ms_b1'], 1e-9))
        results['num_binary_layers'] = len(names)
        layer_lines = [
            'packed model at batch 1, time by op (mean of '
            f'{args.repeats} rounds): ' +
            ', '.join(f'{k} {v:.2f} ms ({v / total:.0%})'
                      for k, v in op_ms.items()),
            f'binary layers alone ({len(names)} layers, batch 1): FP32 '
            f'conv/linear {results["fp32_binary_layers_ms_b1"]:.2f} ms | '
            f'packed {results["packed_binary_layers_ms_b1"]:.2f} ms | '
            f'{results["binary_layers_speedup"]:.1f}x'
        ]

    fp_bytes = state_dict_bytes(fp_model)
    results['fp32_state_dict_bytes'] = fp_bytes
    results['packed_file_bytes'] = os.path.getsize(packed_path)
    results['size_ratio'] = fp_bytes / results['packed_file_bytes']
    if tmp is not None:
        tmp.cleanup()

    try:
        results['load_avg_after'] = os.getloadavg()[0]
    except OSError:
        pass
    print(f'CPU: {results["cpu"]} ({results["cpu_count"]} logical cores), '
          f'torch {results["torch_version"]} with {results["torch_threads"]} '
          f'threads, packed kernels: numba {results.get("numba_version")}, '
          f'{results["packed_threads"]} thread(s); 1-min load average '
          f'{results.get("load_avg_before")} before, '
          f'{results.get("load_avg_after")} after')
    for line in lines:
        print(line)
    for line in layer_lines:
        print(line)
    for bs in args.batch_sizes:
        unit = 'points' if segment else 'clouds'
        print(f'batch {bs}: packed vs binary torch predictions agree on '
              f'{results[f"pred_agreement_b{bs}"] * 100:.1f}% of {unit}, '
              f'max |logit diff| {results[f"max_abs_logit_diff_b{bs}"]:.2e}')
    print(f'size: FP32 state dict {fp_bytes:,} bytes | packed file '
          f'{results["packed_file_bytes"]:,} bytes | '
          f'{results["size_ratio"]:.1f}x smaller')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
        print(f'results written to {args.json}')
    return results


if __name__ == '__main__':
    main()
