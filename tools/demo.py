# Copyright (c) mmbinpc contributors. All rights reserved.
"""The main job on the embedded default data (what ``make demo`` runs).

1. data     - the embedded CPU benchmark (generated ModelNet-format shapes,
              10 classes, 500 test shapes; SYNTHETIC, not ModelNet40);
2. train    - the FP32 PointNet teacher, then the plain (L_CE) and the KDR
              (λ·L_DS + (1−λ)·L_CE + η·L_reg) binary LSR + EMA students, two
              at a time, through ``tools/experiments/run.py`` (the runs of
              Table 4 at the ``cpu`` scale, seed 0): each student's
              checkpoint is picked on the validation split carved from the
              training data and evaluated once on the test split;
3. deploy   - exports the KDR student to the bit-packed format, runs it on
              the packed XNOR-popcount engine over the test set, and times
              every model at batch 1 in the same run;
4. report   - prints accuracy, model size and CPU latency of all of them,
              with the seed spread of the committed results page.

Runs that are already done are not retrained (the experiment runner skips
them), so a second ``make demo`` only redoes the deploy step.

Examples::

    python tools/demo.py                 # about 12 min on 2 CPU cores
    python tools/demo.py --quick         # a smoke run of a minute
"""
import argparse
import csv
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional

DEFINITION = 'configs/experiments/table4_methods.py'
RUNS = ('lsr-ema', 'lsr-ema-kdr')
RESULTS_CSV = 'docs/results/cpu/table4_methods.csv'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FP32 teacher -> plain binary -> KDR binary PointNet on '
        'the embedded benchmark, with a comparison table')
    parser.add_argument('--work-dir', default='work_dirs/experiments')
    parser.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='students trained at once (default 2)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--quick',
        action='store_true',
        help='the smoke scale: checks the pipeline in about '
        'a minute, accuracy is meaningless')
    return parser.parse_args(argv)


def banner(step: str, text: str, start: float) -> None:
    minutes = (time.time() - start) / 60
    print(
        f'\n{"=" * 78}\n[demo {step} | {minutes:5.1f} min] {text}\n'
        f'{"=" * 78}',
        flush=True)


def train_runs(args: argparse.Namespace) -> Dict[str, dict]:
    """Train (or find) the teacher and both students; their result.json."""
    from mmbinpc.experiments.runner import load_tool
    run_tool = load_tool('experiments/run')
    scale = 'smoke' if args.quick else 'cpu'
    argv = [
        DEFINITION, '--scale', scale, '--seeds',
        str(args.seed), '--work-dir', args.work_dir, '--jobs',
        str(args.jobs), '--no-report'
    ]
    for name in RUNS:
        argv += ['--only', name]
    outcome = run_tool.main(argv)
    if outcome['summary'] is not None and outcome['summary'].failed:
        raise SystemExit(f'demo: training failed: {outcome["summary"].failed}')
    from mmbinpc.experiments import read_result
    plan = outcome['plan']
    results = {}
    for job in plan.jobs:
        results[job.name] = read_result(job.result_path)
    return results


def seed_spread(path: str = RESULTS_CSV) -> Dict[str, str]:
    """Mean ± std (n) of the committed results page, per run name."""
    if not osp.isfile(path):
        return {}
    values: Dict[str, List[float]] = {}
    with open(path, newline='') as f:
        for row in csv.DictReader(f):
            try:
                values.setdefault(row['run'],
                                  []).append(float(row['test_overall_acc']))
            except (KeyError, ValueError):
                continue
    out = {}
    for run, accs in values.items():
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        out[run] = f'{statistics.mean(accs):.1f} ± {std:.1f} (n={len(accs)})'
    return out


def model_size(model, num_points: int) -> Dict[str, float]:
    """Parameters and storage (1 bit per binary weight, 32 bits otherwise)."""
    from mmbinpc.analysis.complexity import count_complexity, model_forward
    forward, _ = model_forward(model, num_points=num_points)
    report = count_complexity(model, forward)
    return dict(
        params=report.params,
        storage_kb=report.storage_bytes / 1024,
        ops=report.ops)


def load_runner(result: dict, work_dir: str):
    """A Runner of a finished run with its best checkpoint loaded."""
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    from mmbinpc.models.distillers import find_config_file
    cfg = Config.fromfile(find_config_file(result['config']))
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    options = parser.parse_args(['--o', *result['options']]).o or {}
    cfg.merge_from_dict(options)
    from mmbinpc.binary import expand_binarize_key
    cfg.model = expand_binarize_key(cfg.model)
    cfg.work_dir = work_dir
    cfg.load_from = result['checkpoint']
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    return runner


def deploy(args: argparse.Namespace, runner, models: Dict[str, object],
           rows: List[dict]) -> dict:
    """Export the KDR student, evaluate the packed engine on the test set
    and time every model at batch 1 (one thread each, same run).

    Args:
        args (Namespace): The demo's arguments.
        runner (Runner): The KDR student's runner (config, data, metric).
        models (dict): Row label -> PyTorch model to time.
        rows (list[dict]): The table rows; each gets ``ms_b1``.

    Returns:
        dict: The packed engine's row plus ``agreement`` (share of test
        shapes where it predicts what the PyTorch student predicts) and the
        back-to-back latencies ``warm_fp32_ms`` / ``warm_packed_ms``.
    """
    import torch

    from mmbinpc.analysis import run_rounds
    from mmbinpc.deploy import kernels
    from mmbinpc.deploy.converter import export_packed
    from mmbinpc.deploy.runtime import PackedModel

    student = runner.model.student.eval()
    path = osp.join(args.work_dir, 'demo', 'pointnet_bin_lsr-ema-kdr.packed')
    summary = export_packed(student, path, num_points=args.points)
    kernels.warmup()
    packed = PackedModel.load(path)
    print(
        f'exported {path} ({summary.file_bytes:,} bytes, '
        f'{len(summary.binary_layers)} packed binary layers)',
        flush=True)

    evaluator, agree, total, sample = runner.test_evaluator, 0, 0, None
    with torch.no_grad():
        for batch in runner.test_dataloader:
            data = runner.model.data_preprocessor(batch, False)
            points = torch.stack(list(data['inputs']['points']))
            labels = torch.from_numpy(packed.predict(points.numpy()))
            agree += int((labels == student._forward(
                dict(points=points)).argmax(-1)).sum())
            total += len(labels)
            for data_sample, label in zip(data['data_samples'], labels):
                data_sample.pred_label = label
            evaluator.process(
                data_samples=data['data_samples'], data_batch=batch)
            sample = points[:1] if sample is None else sample
    metrics = evaluator.evaluate(len(runner.test_dataloader.dataset))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread each: a like-for-like ratio
    runners = {
        label: (lambda p, m=m: m._forward(dict(points=p)))
        for label, m in models.items()
    }
    runners['packed'] = lambda p: packed(p.numpy())
    try:
        with torch.no_grad():
            run_rounds(runners, sample, 3)  # warm-up
            times = run_rounds(runners, sample, 20, 'interleaved')
            warm = run_rounds(
                {k: runners[k]
                 for k in (rows[0]['model'], 'packed')}, sample, 20,
                'back to back')
    finally:
        torch.set_num_threads(threads)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for row in rows:
        row['ms_b1'] = ms[row['model']]
    return dict(
        model='PointNet binary KDR, packed engine',
        loss='(the KDR student, 1-bit)',
        minutes=None,
        overall_acc=metrics['overall_acc'],
        mean_class_acc=metrics['mean_class_acc'],
        params=rows[-1]['params'],
        storage_kb=summary.file_bytes / 1024,
        ms_b1=ms['packed'],
        agreement=agree / max(1, total),
        warm_fp32_ms=statistics.median(warm[rows[0]['model']]) * 1e3,
        warm_packed_ms=statistics.median(warm['packed']) * 1e3)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    start = time.time()
    banner('1/4', 'data and training: teacher, plain and KDR students', start)
    results = train_runs(args)
    teacher, plain, kdr = (results['pointnet'], results[RUNS[0]],
                           results[RUNS[1]])
    num_points = _num_points(kdr)

    banner('2/4', 'loading the best-on-validation checkpoints', start)
    runners = {}
    for key, result in (('teacher', teacher), ('plain', plain), ('kdr', kdr)):
        runners[key] = load_runner(result, osp.join(args.work_dir, 'demo',
                                                    key))
    rows = []
    for key, label, loss in (('teacher', 'PointNet FP32 (teacher)', 'L_CE'),
                             ('plain', 'PointNet binary LSR+EMA, plain',
                              'L_CE'), ('kdr', 'PointNet binary LSR+EMA, KDR',
                                        'λ·L_DS+(1−λ)·L_CE+η·L_reg')):
        result = dict(teacher=teacher, plain=plain, kdr=kdr)[key]
        model = runners[key].model
        model = model if key == 'teacher' else model.student
        rows.append(
            dict(
                model=label,
                loss=loss,
                run=result['run'],
                minutes=result['wall_minutes'],
                overall_acc=result['test_overall_acc'],
                mean_class_acc=result['test_mean_class_acc'],
                **model_size(model, num_points)))
    models = {
        rows[0]['model']: runners['teacher'].model.eval(),
        rows[1]['model']: runners['plain'].model.student.eval(),
        rows[2]['model']: runners['kdr'].model.student.eval()
    }

    banner('3/4', 'deploy: bit-packed export and the packed CPU engine', start)
    args.points = num_points
    rows.append(deploy(args, runners['kdr'], models, rows))

    banner('4/4', 'results', start)
    print_table(rows, kdr, args)
    return rows


def _num_points(result: dict) -> int:
    for option in result['options']:
        if option.startswith('test_dataloader.dataset.num_points='):
            return int(option.split('=', 1)[1])
    return 1024


def print_table(rows: List[dict], kdr: dict, args: argparse.Namespace) -> None:
    fp_storage = rows[0]['storage_kb']
    data = kdr.get('data') or {}
    kind = 'SYNTHETIC ModelNet-format' if data.get('synthetic') else 'real'
    print(f'data: {kind} data in {data.get("root")}; {args.points} points '
          f'per shape; seed {args.seed}; test split only for these figures, '
          'checkpoints picked on the validation split')
    header = (f'{"model":<34} {"loss":<26} {"OA %":>6} {"mAcc %":>7} '
              f'{"params":>9} {"size KB":>9} {"smaller":>8} {"CPU ms":>7} '
              f'{"train min":>9}')
    print(header)
    print('-' * len(header))
    for row in rows:
        minutes = '-' if row['minutes'] is None else f'{row["minutes"]:.1f}'
        print(f'{row["model"]:<34} {row["loss"]:<26} '
              f'{row["overall_acc"]:>6.2f} {row["mean_class_acc"]:>7.2f} '
              f'{row["params"]:>9,d} {row["storage_kb"]:>9.1f} '
              f'{fp_storage / row["storage_kb"]:>7.1f}x '
              f'{row["ms_b1"]:>7.2f} {minutes:>9}')
    packed = rows[-1]
    gap = rows[2]['overall_acc'] - rows[1]['overall_acc']
    verdict = ('KDR beat plain' if gap > 0 else
               'KDR did NOT beat plain' if gap < 0 else 'KDR tied plain')
    print(f'\n{verdict} in this run ({gap:+.2f} points on '
          f'{"the test split" if not args.quick else "smoke data"}).')
    spread = seed_spread()
    if spread and not args.quick:
        print('Seed spread on the committed results page '
              f'({RESULTS_CSV}, test OA %): plain '
              f'{spread.get(RUNS[0], "n/a")}, KDR '
              f'{spread.get(RUNS[1], "n/a")}; one seed differs from '
              'another by about that much.')
    print('size: 1 bit per binary weight, 32 bits for everything else '
          '(FP first/last layers, BatchNorm, scales); see '
          'tools/analysis/complexity.py for the per-layer table. The packed '
          "engine's size is its file's.")
    print(f'CPU ms: one cloud of {args.points} points, one thread each, '
          f'median of 20 runs interleaved with the other models (PyTorch '
          f'simulates the binary students in FP32, hence slower than FP32); '
          f'run back to back, FP32 {packed["warm_fp32_ms"]:.2f} ms vs packed '
          f'{packed["warm_packed_ms"]:.2f} ms '
          f'({packed["warm_fp32_ms"] / packed["warm_packed_ms"]:.1f}x). The '
          f'packed engine predicts what the PyTorch KDR student predicts on '
          f'{packed["agreement"] * 100:.1f}% of the test shapes; '
          f'tools/deploy/benchmark.py measures more.')


if __name__ == '__main__':
    main()
