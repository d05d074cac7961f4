# Copyright (c) mmbinpc contributors. All rights reserved.
"""Time one training step: FP32, plain binary student and KDR student.

Usage::

    python tools/benchmark/train_step.py                # PointNet, LSR + EMA
    python tools/benchmark/train_step.py \\
        --config-bin configs/pointnet/pointnet_bin_xnor-max_modelnet40.py \\
        --config-kdr configs/pointnet/pointnet_bin_xnor-max-kdr_modelnet40.py
    python tools/benchmark/train_step.py --profile --json step.json

The three models are built from their configs as ``tools/train.py`` builds
them (mmdet3d's registry, the config's ``optim_wrapper`` through mmengine's
``build_optim_wrapper``, custom constructors included) and each timed run is
``model.train_step(data, optim_wrapper)``: data preprocessing, forward,
losses, backward and the optimizer step, what the Runner does per iteration
(data loading, hooks and the learning-rate schedulers are left out).
The batch is a classification batch (``gt_label``), so the configs must be
point-cloud classifiers (the ModelNet40 configs), or distillers of them.

All three train on the same fixed batch of ``--batch`` random clouds of
``--points`` points (uniform in [-1, 1], labels uniform over
``--num-classes``), packed as the dataloader packs ModelNet samples
(``inputs['points']`` a list of (N, C) tensors, ``data_samples`` holding
``gt_label``). After ``--warmup`` untimed steps each, ``--rounds`` rounds
are timed interleaved (one step of each model per round,
:func:`mmbinpc.analysis.run_rounds`), so load from other processes hits
them alike. The table gives the median and fastest step and the two ratios
against the targets (binary / FP32 <= 1.3, KDR / binary <= 1.5), computed
from the medians.

The distillers need a teacher checkpoint: ``--teacher-ckpt``, or else the
freshly built FP32 model's weights are saved to a temporary checkpoint (the
distiller's teacher config is built for it instead when it differs from the
FP32 config's model).

``--cfg-options`` overrides settings of all three configs;
``--model-options`` overrides settings of the FP32 *model* config everywhere
it occurs: the FP32 config's ``model`` and the distillers' ``teacher`` (and
``student`` when they have one), e.g. narrow widths for a quick run::

    --model-options backbone.channels="(16,16,16,32,64)" head.in_channels=64

``--check-updates`` compares every trainable parameter before and after each
timed step and reports how many changed (it adds work to the timed steps;
leave it off for measurements). ``--profile`` runs ``--profile-steps``
further steps of each model under ``torch.profiler`` and prints the top ops.
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
from typing import Any, Callable, Dict, List, Optional

from mmengine.config import Config, DictAction

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

DEFAULT_CONFIGS = dict(
    fp=osp.join(REPO, 'configs/pointnet/pointnet_fp_modelnet40.py'),
    bin=osp.join(REPO, 'configs/pointnet/pointnet_bin_lsr-ema_modelnet40.py'),
    kdr=osp.join(REPO,
                 'configs/pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py'))
#: name -> (label in the table, config argument)
MODELS_TIMED = dict(
    fp32=('FP32', 'fp'),
    binary=('binary (plain)', 'bin'),
    kdr=('binary KDR', 'kdr'))
#: ratio name -> (numerator, denominator, target)
TARGETS = dict(
    binary_vs_fp32=('binary', 'fp32', 1.3),
    kdr_vs_binary=('kdr', 'binary', 1.5))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Training-step cost of FP32, binary and KDR models')
    parser.add_argument(
        '--config-fp', default=DEFAULT_CONFIGS['fp'], help='FP32 model config')
    parser.add_argument(
        '--config-bin',
        default=DEFAULT_CONFIGS['bin'],
        help='plain binary student config (a BinaryDistiller '
        'with lambda = eta = 0, or a model with binarize=)')
    parser.add_argument(
        '--config-kdr',
        default=DEFAULT_CONFIGS['kdr'],
        help='KDR student config (a BinaryDistiller)')
    parser.add_argument(
        '--teacher-ckpt',
        default=None,
        help='teacher checkpoint for the distillers (default: '
        'the freshly built FP32 weights, saved to a temp '
        'file)')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--points', type=int, default=1024)
    parser.add_argument(
        '--num-classes',
        type=int,
        default=None,
        help='label range (default: from the FP32 config)')
    parser.add_argument(
        '--point-dims',
        type=int,
        default=None,
        help='channels per point (default: the backbone\'s '
        'in_channels, else 3)')
    parser.add_argument(
        '--rounds',
        type=int,
        default=10,
        help='timed rounds (one step of each model per '
        'round)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed steps of each model first')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch intra-op threads (default: torch\'s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--keep-freed-memory',
        choices=['on', 'off'],
        default=None,
        help='glibc keeps freed activations for the next step '
        '(mmbinpc.apis.keep_freed_memory, as tools/train.py does; default: '
        'MMBINPC_KEEP_FREED_MEMORY, on when unset)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override settings of all three configs')
    parser.add_argument(
        '--model-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override settings of the FP32 model config '
        '(the FP32 model and the distillers\' teacher and '
        'student)')
    parser.add_argument(
        '--check-updates',
        action='store_true',
        help='count the parameters each timed step changed '
        '(adds work to the timed steps)')
    parser.add_argument(
        '--profile',
        action='store_true',
        help='print the top ops of each step from '
        'torch.profiler')
    parser.add_argument('--profile-steps', type=int, default=2)
    parser.add_argument('--profile-top', type=int, default=15)
    parser.add_argument('--json', default=None, help='write the figures here')
    parser.add_argument(
        '--verbose',
        action='store_true',
        help='keep mmengine\'s build-time log messages (the '
        'optimizer constructor lists every frozen teacher '
        'parameter)')
    return parser.parse_args(argv)


# ------------------------------------------------------------------ configs
def _is_distiller(model_cfg: dict) -> bool:
    return 'Distiller' in str(model_cfg.get('type', ''))


def _find_key(cfg: Any, key: str) -> Any:
    """The first value of ``key`` in a nested config (depth first)."""
    if isinstance(cfg, dict):
        if key in cfg:
            return cfg[key]
        for value in cfg.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _apply_model_options(model_cfg: Any, options: Optional[dict]) -> Any:
    """A model config dict with ``options`` (dotted keys) merged in."""
    from mmengine.config import ConfigDict
    cfg = Config(
        dict(
            model=copy.deepcopy(model_cfg.to_dict(
            ) if hasattr(model_cfg, 'to_dict') else dict(model_cfg))))
    if options:
        cfg.merge_from_dict({f'model.{k}': v for k, v in options.items()})
    return ConfigDict(cfg.model.to_dict())


def load_configs(args: argparse.Namespace) -> Dict[str, Config]:
    """The three configs with ``--cfg-options`` and ``--model-options``."""
    from mmbinpc.models.distillers.teacher_source import load_model_config
    cfgs = {}
    for name, (_, arg) in MODELS_TIMED.items():
        cfg = Config.fromfile(getattr(args, f'config_{arg}'))
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        if args.model_options:
            if _is_distiller(cfg.model):
                for role in ('teacher', 'student'):
                    if cfg.model.get(role) is None:
                        continue
                    sub, _ = load_model_config(cfg.model[role])
                    cfg.model[role] = _apply_model_options(
                        sub, args.model_options)
            else:
                cfg.model = _apply_model_options(cfg.model, args.model_options)
        cfgs[name] = cfg
    return cfgs


# ------------------------------------------------------------------- models
def build(model_cfg: dict, seed: int):
    import torch
    from mmdet3d.registry import MODELS
    from mmengine.registry import DefaultScope
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return MODELS.build(copy.deepcopy(model_cfg))


def build_wrapper(model, cfg: Config):
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))


def _plain(cfg: Any) -> dict:
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)


def set_teacher_checkpoints(cfgs: Dict[str,
                                       Config], fp_model, ckpt: Optional[str],
                            tmp_dir: str, seed: int) -> Dict[str, str]:
    """Point every distiller at a teacher checkpoint.

    Without ``ckpt``, the FP32 model's state is saved when the distiller's
    teacher config is the FP32 config's model, else a teacher is built from
    the distiller's teacher config and saved (one file per teacher config).

    Returns:
        dict: Model name -> the checkpoint its distiller loads.
    """
    import torch

    from mmbinpc.models.distillers.teacher_source import load_model_config
    used, saved = {}, {}
    fp_model_cfg = _plain(cfgs['fp32'].model)
    for name, cfg in cfgs.items():
        if name == 'fp32' or not _is_distiller(cfg.model):
            continue
        path = ckpt
        if path is None:
            teacher_cfg = _plain(load_model_config(cfg.model.teacher)[0])
            key = repr(teacher_cfg)
            if key not in saved:
                model = fp_model if teacher_cfg == fp_model_cfg else build(
                    teacher_cfg, seed)
                saved[key] = osp.join(tmp_dir, f'teacher_{len(saved)}.pth')
                torch.save({
                    'meta': {},
                    'state_dict': model.state_dict()
                }, saved[key])
            path = saved[key]
        cfg.model.teacher_ckpt = path
        used[name] = path
    return used


def make_batch(batch: int, points: int, dims: int, num_classes: int,
               seed: int) -> dict:
    """One batch as the dataloader gives it (``PackClsInputs`` + collate)."""
    import torch
    from mmdet3d.structures import Det3DDataSample
    gen = torch.Generator().manual_seed(seed)
    clouds = [
        torch.rand(points, dims, generator=gen) * 2 - 1 for _ in range(batch)
    ]
    labels = torch.randint(0, num_classes, (batch, ), generator=gen)
    samples = []
    for label in labels:
        sample = Det3DDataSample()
        sample.gt_label = label.clone()
        samples.append(sample)
    return dict(inputs=dict(points=clouds), data_samples=samples)


class StepRunner:
    """``model.train_step(data, optim_wrapper)``, optionally checking that
    the step changed the trainable parameters."""

    def __init__(self, model, wrapper, check_updates: bool = False) -> None:
        self.model = model
        self.wrapper = wrapper
        self.check_updates = check_updates
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.changed: List[int] = []
        self.last_log: Dict[str, float] = {}

    def __call__(self, data: dict) -> None:
        import torch
        before = ([p.detach().clone()
                   for p in self.params] if self.check_updates else None)
        log_vars = self.model.train_step(data, self.wrapper)
        if before is not None:
            self.changed.append(
                sum(not torch.equal(b, p.detach())
                    for b, p in zip(before, self.params)))
            self.last_log = {
                k: float(v.detach()) if hasattr(v, 'detach') else float(v)
                for k, v in log_vars.items()
            }


def profile_steps(runner: Callable, data: dict, steps: int,
                  top: int) -> Dict[str, Any]:
    """Top ops (self CPU time) of ``steps`` steps under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner(data)
    events = prof.key_averages()
    table = events.table(sort_by='self_cpu_time_total', row_limit=top)
    rows = sorted(
        events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    total = sum(e.self_cpu_time_total for e in events)
    return dict(
        table=table,
        total_self_cpu_ms_per_step=total / 1e3 / steps,
        top=[
            dict(
                name=e.key,
                calls_per_step=e.count / steps,
                self_cpu_ms_per_step=e.self_cpu_time_total / 1e3 / steps,
                cpu_total_ms_per_step=e.cpu_time_total / 1e3 / steps)
            for e in rows
        ])


# --------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    import torch
    from mmdet3d.utils import register_all_modules
    from mmengine.logging import MMLogger

    import mmbinpc  # noqa: F401  (registers everything)
    from mmbinpc.analysis import code_version, cpu_name, run_rounds
    from mmbinpc.apis import keep_freed_memory
    code = code_version()  # the code timed, not HEAD when it ends
    allocator = keep_freed_memory(None if args.keep_freed_memory is
                                  None else args.keep_freed_memory == 'on')
    register_all_modules(init_default_scope=False)
    if not args.verbose:
        MMLogger.get_instance('train_step_benchmark', log_level='ERROR')

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for key in ('batch', 'points', 'rounds'):
        if getattr(args, key) < 1:
            raise SystemExit(f'--{key} must be >= 1')
    cfgs = load_configs(args)
    num_classes = args.num_classes or _find_key(
        _plain(cfgs['fp32'].model), 'num_classes')
    if num_classes is None:
        raise SystemExit('cannot find num_classes in the FP32 config; give '
                         '--num-classes')
    backbone = _plain(cfgs['fp32'].model).get('backbone') or {}
    dims = args.point_dims or backbone.get('in_channels') or 3

    results: Dict[str, Any] = dict(
        cpu=cpu_name(),
        cpu_count=os.cpu_count(),
        torch_version=torch.__version__,
        torch_threads=torch.get_num_threads(),
        keep_freed_memory=allocator,
        batch=args.batch,
        points=args.points,
        point_dims=dims,
        num_classes=int(num_classes),
        rounds=args.rounds,
        warmup=args.warmup,
        order='interleaved',
        configs={
            name: getattr(args, f'config_{arg}')
            for name, (_, arg) in MODELS_TIMED.items()
        },
        cfg_options=args.cfg_options,
        model_options=args.model_options)

    runners: Dict[str, StepRunner] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        fp_model = build(cfgs['fp32'].model, args.seed)
        results['teacher_ckpt'] = args.teacher_ckpt or 'generated (FP32 ' \
            'model as built, saved to a temp file)'
        set_teacher_checkpoints(cfgs, fp_model, args.teacher_ckpt, tmp_dir,
                                args.seed)
        models = dict(fp32=fp_model)
        for name in ('binary', 'kdr'):
            models[name] = build(cfgs[name].model, args.seed)
    for name, model in models.items():
        model.train()
        runners[name] = StepRunner(model, build_wrapper(model, cfgs[name]),
                                   args.check_updates)
        results[f'{name}_trainable_tensors'] = len(runners[name].params)
        distill = getattr(model, 'distill_cfg', None)
        if distill is not None:
            results[f'{name}_distill'] = dict(
                lambda_=float(distill['lambda_']),
                eta=float(distill['eta']),
                pairs=list(model.pair_names))
            if getattr(model, 'binarize_report', None) is not None:
                results[f'{name}_binarize'] = \
                    model.binarize_report.summary()

    data = make_batch(args.batch, args.points, dims, int(num_classes),
                      args.seed)
    for _ in range(args.warmup):
        for runner in runners.values():
            runner(data)
    for runner in runners.values():
        runner.changed.clear()
    try:
        results['load_avg_before'] = os.getloadavg()[0]
    except OSError:
        pass
    times = run_rounds(runners, data, args.rounds, 'interleaved')
    try:
        results['load_avg_after'] = os.getloadavg()[0]
    except OSError:
        pass

    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    low = {k: min(v) * 1e3 for k, v in times.items()}
    for name in runners:
        results[f'{name}_ms'] = med[name]
        results[f'{name}_ms_min'] = low[name]
        results[f'{name}_times_ms'] = [t * 1e3 for t in times[name]]
    for ratio, (num, den, target) in TARGETS.items():
        value = med[num] / med[den]
        results[ratio] = value
        results[f'{ratio}_min'] = low[num] / low[den]
        results[f'{ratio}_target'] = target
        results[f'{ratio}_pass'] = bool(value <= target)
    if args.check_updates:
        results['updates'] = {
            name:
            dict(
                changed_per_step=list(r.changed),
                trainable=len(r.params),
                last_log=r.last_log)
            for name, r in runners.items()
        }

    if args.profile:
        results['profile'] = {}
        for name, runner in runners.items():
            runner.check_updates = False
            results['profile'][name] = profile_steps(runner, data,
                                                     args.profile_steps,
                                                     args.profile_top)

    # ------------------------------------------------------------ report
    print(f'CPU: {results["cpu"]} ({results["cpu_count"]} logical cores), '
          f'torch {results["torch_version"]} with '
          f'{results["torch_threads"]} threads; 1-min load average '
          f'{results.get("load_avg_before")} before, '
          f'{results.get("load_avg_after")} after; keep freed memory: '
          f'{allocator}')
    print(f'train_step on batch {args.batch} x {args.points} points '
          f'({dims} ch, {num_classes} classes), {args.warmup} warm-up '
          f'step(s), {args.rounds} interleaved rounds')
    print(f'{"model":<16} {"config":<44} {"median ms":>10} {"min ms":>10}')
    for name, (label, _) in MODELS_TIMED.items():
        print(f'{label:<16} {osp.basename(results["configs"][name]):<44} '
              f'{med[name]:>10.1f} {low[name]:>10.1f}')
    for ratio, (num, den, target) in TARGETS.items():
        value = results[ratio]
        verdict = 'PASS' if results[f'{ratio}_pass'] else 'FAIL'
        print(f'{MODELS_TIMED[num][0]} / {MODELS_TIMED[den][0]}: '
              f'{value:.2f}x (min {results[f"{ratio}_min"]:.2f}x), '
              f'target <= {target}x: {verdict}')
    if args.check_updates:
        for name, info in results['updates'].items():
            print(f'{name}: parameters changed per step '
                  f'{info["changed_per_step"]} of {info["trainable"]}')
    if args.profile:
        for name, prof in results['profile'].items():
            print(f'\n== {MODELS_TIMED[name][0]}: top ops by self CPU time, '
                  f'{args.profile_steps} step(s) '
                  f'({prof["total_self_cpu_ms_per_step"]:.1f} ms/step '
                  f'profiled)')
            print(prof['table'])
    if args.json:
        import datetime

        from mmbinpc.analysis import host_info
        from mmbinpc.engine.atomic_io import atomic_write_text
        dump = copy.deepcopy(results)
        for prof in dump.get('profile', {}).values():
            prof.pop('table', None)
        dump.update(
            command='python tools/benchmark/train_step.py ' + ' '.join(argv),
            code=code,
            host=host_info(),
            date=datetime.datetime.now().isoformat(timespec='seconds'))
        atomic_write_text(json.dumps(dump, indent=2), args.json)
        print(f'results written to {args.json}')
    return results


if __name__ == '__main__':
    main()
