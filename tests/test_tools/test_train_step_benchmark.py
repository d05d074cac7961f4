# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/benchmark/train_step.py on a tiny PointNet: the arithmetic of its
report, its JSON and that every timed step updated the model (no timing
thresholds: the figures depend on the machine)."""
import json
import os.path as osp
import statistics

import pytest

from mmbinpc.experiments.runner import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NARROW = [
    '--model-options', 'backbone.channels=(8,8,8,16,32)',
    'backbone.tnet_conv_channels=(8,16,32)',
    'backbone.tnet_fc_channels=(16,8)', 'head.in_channels=32',
    'head.mid_channels=(16,8)'
]
MODELS = ('fp32', 'binary', 'kdr')
ROUNDS = 2


@pytest.fixture(autouse=True)
def _single_thread():
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    tool = load_tool('benchmark/train_step')
    out = tmp_path_factory.mktemp('train_step') / 'step.json'
    results = tool.main([
        '--batch', '4', '--points', '32', '--rounds',
        str(ROUNDS), '--warmup', '1', '--check-updates', '--profile',
        '--profile-steps', '1', '--profile-top', '5', '--json',
        str(out)
    ] + NARROW)
    return tool, results, out


def test_ratios_are_the_reported_medians(run):
    tool, results, _ = run
    for name in MODELS:
        times = results[f'{name}_times_ms']
        assert len(times) == ROUNDS
        assert results[f'{name}_ms'] == pytest.approx(statistics.median(times))
        assert results[f'{name}_ms_min'] == pytest.approx(min(times))
    for ratio, (num, den, target) in tool.TARGETS.items():
        assert results[ratio] == pytest.approx(results[f'{num}_ms'] /
                                               results[f'{den}_ms'])
        assert results[f'{ratio}_min'] == pytest.approx(
            results[f'{num}_ms_min'] / results[f'{den}_ms_min'])
        assert results[f'{ratio}_target'] == target
        assert results[f'{ratio}_pass'] == (results[ratio] <= target)
    assert tool.TARGETS['binary_vs_fp32'][2] == 1.3
    assert tool.TARGETS['kdr_vs_binary'][2] == 1.5


def test_json_holds_the_figures(run):
    _, results, path = run
    with open(path) as f:
        saved = json.load(f)
    expected = {
        'cpu', 'torch_threads', 'batch', 'points', 'rounds', 'warmup', 'order',
        'configs', 'teacher_ckpt', 'binary_vs_fp32', 'kdr_vs_binary',
        'binary_vs_fp32_target', 'kdr_vs_binary_target', 'binary_vs_fp32_pass',
        'kdr_vs_binary_pass', 'updates', 'profile', 'command', 'code', 'host',
        'date'
    }
    for name in MODELS:
        expected |= {f'{name}_ms', f'{name}_ms_min', f'{name}_times_ms'}
    assert expected <= set(saved)
    assert saved['batch'] == 4 and saved['points'] == 32
    assert saved['num_classes'] == 40  # from the FP32 config's head
    assert saved['order'] == 'interleaved'
    assert saved['command'].startswith('python tools/benchmark/train_step.py ')
    assert '--json' in saved['command'] and 'commit' in saved['code']
    for key in ('binary_vs_fp32', 'kdr_vs_binary', 'fp32_ms', 'kdr_ms'):
        assert saved[key] == pytest.approx(results[key])
    for name in MODELS:
        assert saved['profile'][name]['top']
        assert 'table' not in saved['profile'][name]  # printed, not saved
    # the configs as users train them: the plain student distils nothing,
    # the KDR student uses the teacher's soft targets and pooling outputs
    assert saved['binary_distill']['lambda_'] == 0.0
    assert saved['binary_distill']['eta'] == 0.0
    assert saved['kdr_distill']['lambda_'] > 0
    assert saved['kdr_distill']['eta'] > 0
    assert saved['kdr_distill']['pairs']


def test_every_timed_step_updates_the_parameters(run):
    _, results, _ = run
    for name in MODELS:
        info = results['updates'][name]
        assert info['trainable'] == results[f'{name}_trainable_tensors'] > 0
        changed = info['changed_per_step']
        assert len(changed) == ROUNDS  # the timed steps, not the warm-up
        # Adam moves every parameter that got a gradient; a step that
        # skipped the update (or the backward pass) changes none
        assert all(n >= 0.9 * info['trainable'] for n in changed), changed
        assert all(v == v for v in info['last_log'].values())  # not NaN
    # the frozen teacher is not among the KDR student's trainable tensors
    assert results['updates']['kdr']['trainable'] == \
        results['updates']['binary']['trainable']


def test_training_fast_paths_match_the_reference_formulas():
    """The per-step binarization shortcuts give the reference values bit for
    bit (see docs/training_cost.md)."""
    import math
    from statistics import NormalDist

    import torch

    from mmbinpc.binary.aggregation import ema_offset
    from mmbinpc.binary.binarizers import (SignApproxSTE, SignClippedSTE,
                                           SignEDE, XNORBinarizer,
                                           build_binarizer, hard_sign)
    special = torch.tensor([
        0.0, -0.0,
        float('nan'),
        float('inf'), -float('inf'), 1e-45, -1e-45, 1.0, -1.0, -2.0
    ])
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        x = special.to(dtype)
        got = hard_sign(x)
        assert got.dtype == dtype
        assert torch.equal(got, torch.where(x >= 0, 1.0, -1.0).to(dtype))
        assert not torch.signbit(got[got > 0]).any()  # +1, never -0 tricks
    assert torch.equal(
        hard_sign(special[:4].reshape(2, 2).t()),
        torch.tensor([[1.0, -1.0], [1.0, 1.0]]))

    torch.manual_seed(0)
    x = torch.randn(4, 8, 16) * 1.5
    x.view(-1)[:4] = torch.tensor([0.0, -0.0, 1.0, -1.0])
    grad = torch.randn_like(x)
    refs = (
        (SignClippedSTE, (), grad * (x.abs() <= 1).to(grad.dtype)),
        (SignApproxSTE, (), grad * 2.0 * (1.0 - x.abs()).clamp(min=0.0)),
        (SignEDE, (0.3, 3.3),
         grad * (3.3 * 0.3) * (1.0 - torch.tanh(0.3 * x).pow(2))),
    )
    for fn, extra, expected in refs:
        leaf = x.clone().requires_grad_(True)
        fn.apply(leaf, *extra).backward(grad)
        assert torch.equal(leaf.grad, expected), fn.__name__

    # XNOR / IR-Net take their scale from the sign input they already
    # computed; a subclass with its own weight_scale keeps it
    class HalfXNOR(XNORBinarizer):

        def weight_scale(self, weight):
            return super().weight_scale(weight) / 2

    w = torch.randn(6, 5, 1)
    for binarizer in (build_binarizer('xnor'), build_binarizer('irnet'),
                      HalfXNOR()):
        sign, scale = binarizer.weight_parts(w)
        assert torch.equal(
            binarizer.forward_weight(w), sign * scale.reshape(-1, 1, 1))
    assert torch.equal(HalfXNOR().forward_weight(w) * 2,
                       build_binarizer('xnor').forward_weight(w))

    # the cached EMA offset is the formula's value; bad sizes still raise
    n = 1024
    assert ema_offset(n) == ema_offset(
        float(n)) == -NormalDist().inv_cdf(-math.expm1(-math.log(2.0) / n))
    assert ema_offset(1) == 0.0
    for bad in (0, 2.5):
        with pytest.raises(ValueError):
            ema_offset(bad)
