# Copyright (c) mmbinpc contributors. All rights reserved.
"""The main job on the embedded default data (what ``make demo`` runs).

1. data     - uses ``data/modelnet40_normal_resampled`` when a ModelNet40 is
              there, else generates the SYNTHETIC ModelNet-format stand-in;
2. teacher  - trains the FP32 PointNet teacher (with both T-Nets);
3. plain    - trains the binary student (LSR + EMA) with L_CE only;
4. KDR      - trains the binary student (LSR + EMA) with the paper's
              L = λ·L_DS + (1−λ)·L_CE + η·L_reg, guided by the teacher;
5. deploy   - exports the KDR student to the bit-packed format, runs it on
              the packed XNOR-popcount engine over the test set, and times
              every model at batch 1 in the same run;
6. report   - prints accuracy, model size and CPU latency of all of them.

Every stage uses the repository's configs through mmengine's Runner, exactly
as ``tools/train.py`` does, with a short schedule set on the command line.

Examples::

    python tools/demo.py                       # about 11 min on 2 CPU cores
    python tools/demo.py --teacher-epochs 40 --student-epochs 40
    python tools/demo.py --quick               # a smoke run of a minute
"""
import argparse
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))

TEACHER_CFG = 'configs/pointnet/pointnet_fp_modelnet40.py'
PLAIN_CFG = 'configs/pointnet/pointnet_bin_lsr-ema_modelnet40.py'
KDR_CFG = 'configs/pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py'
DATA_ROOT = 'data/modelnet40_normal_resampled'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='FP32 teacher -> plain binary -> KDR binary PointNet on '
        'the embedded default data, with a comparison table')
    parser.add_argument('--data-root', default=DATA_ROOT)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--teacher-epochs', type=int, default=5)
    parser.add_argument('--student-epochs', type=int, default=8)
    parser.add_argument('--points', type=int, default=512,
                        help='points per shape for training and testing')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--classes', type=int, default=10,
                        help='classes of the generated data set')
    parser.add_argument('--train-per-class', type=int, default=40)
    parser.add_argument('--test-per-class', type=int, default=10)
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes: checks the pipeline in about a '
                        'minute, accuracy is meaningless')
    args = parser.parse_args(argv)
    if args.quick:
        args.teacher_epochs = args.student_epochs = 1
        args.points, args.batch_size = 128, 8
        args.classes, args.train_per_class, args.test_per_class = 4, 8, 4
    return args


def banner(step: str, text: str, start: float) -> None:
    minutes = (time.time() - start) / 60
    print(f'\n{"=" * 78}\n[demo {step} | {minutes:5.1f} min] {text}\n'
          f'{"=" * 78}', flush=True)


def prepare_data(args: argparse.Namespace) -> str:
    """Return a description of the data, generating it if needed."""
    from mmbinpc.datasets.synthetic_modelnet import BANNER, is_synthetic
    names = osp.join(args.data_root, 'modelnet40_shape_names.txt')
    if osp.isfile(names) and not is_synthetic(args.data_root):
        return f'real ModelNet data in {args.data_root}'
    if not osp.isfile(names):
        import create_synthetic_modelnet
        create_synthetic_modelnet.main([
            args.data_root, '--classes', str(args.classes),
            '--train-per-class', str(args.train_per_class),
            '--test-per-class', str(args.test_per_class), '--points', '2048'
        ])
    print(BANNER, flush=True)
    return f'SYNTHETIC ModelNet-format data in {args.data_root}'


def common_options(args: argparse.Namespace) -> List[str]:
    opts = [
        f'train_dataloader.dataset.data_root={args.data_root}',
        f'val_dataloader.dataset.data_root={args.data_root}',
        f'test_dataloader.dataset.data_root={args.data_root}',
        f'train_dataloader.dataset.num_points={args.points}',
        f'val_dataloader.dataset.num_points={args.points}',
        f'test_dataloader.dataset.num_points={args.points}',
        f'train_dataloader.batch_size={args.batch_size}',
        f'val_dataloader.batch_size={args.batch_size}',
        'default_hooks.logger.interval=10',
        'default_hooks.checkpoint.max_keep_ckpts=1',
    ]
    return opts


def train(config: str, work_dir: str, epochs: int, options: List[str]):
    """Train ``config`` like ``tools/train.py`` and return the Runner."""
    import train as train_tool
    argv = [config, '--work-dir', work_dir, '--epochs', str(epochs),
            '--cfg-options', *options]
    return train_tool.main(argv)


def evaluate(runner) -> Dict[str, float]:
    """The metrics of the validation run after the last training epoch."""
    hub = runner.message_hub
    return {
        key: float(hub.get_scalar(f'val/{key}').current())
        for key in ('overall_acc', 'mean_class_acc')
    }


def model_size(model, num_points: int) -> Dict[str, float]:
    """Parameters and storage (1 bit per binary weight, 32 bits otherwise)."""
    from mmbinpc.analysis.complexity import count_complexity, model_forward
    forward, _ = model_forward(model, num_points=num_points)
    report = count_complexity(model, forward)
    return dict(params=report.params, storage_kb=report.storage_bytes / 1024,
                ops=report.ops)


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
    import statistics

    import torch

    from mmbinpc.analysis import run_rounds
    from mmbinpc.deploy import PackedModel, export_packed, kernels
    from mmbinpc.deploy.builder import deploy_model_cfgs

    student = runner.model.student.eval()
    path = osp.join(args.work_dir, 'pointnet_bin_lsr-ema-kdr.packed')
    bin_cfg, _ = deploy_model_cfgs(runner.cfg.model)
    summary = export_packed(student, path, bin_cfg, num_points=args.points)
    kernels.warmup()
    packed = PackedModel.load(path)
    print(f'exported {path} ({summary.file_bytes:,} bytes, '
          f'{len(summary.binary_layers)} packed binary layers); engine: '
          f'{packed.engine}', flush=True)

    evaluator, agree, total, sample = runner.val_evaluator, 0, 0, None
    with torch.no_grad():
        for batch in runner.val_dataloader:
            data = runner.model.data_preprocessor(batch, False)
            points = torch.stack(list(data['inputs']['points']))
            labels = packed.predict(points)
            agree += int((labels == student._forward(
                dict(points=points)).argmax(-1)).sum())
            total += len(labels)
            for data_sample, label in zip(data['data_samples'], labels):
                data_sample.pred_label = label
            evaluator.process(data_samples=data['data_samples'],
                              data_batch=batch)
            sample = points[:1] if sample is None else sample
    metrics = evaluator.evaluate(len(runner.val_dataloader.dataset))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread each: a like-for-like ratio
    runners = {label: (lambda p, m=m: m._forward(dict(points=p)))
               for label, m in models.items()}
    runners['packed'] = packed
    try:
        with torch.no_grad():
            run_rounds(runners, sample, 3)  # warm-up
            times = run_rounds(runners, sample, 20, 'interleaved')
            warm = run_rounds(
                {k: runners[k] for k in (rows[0]['model'], 'packed')},
                sample, 20, 'back to back')
    finally:
        torch.set_num_threads(threads)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for row in rows:
        row['ms_b1'] = ms[row['model']]
    return dict(model='PointNet binary KDR, packed engine',
                loss='(the KDR student, 1-bit)', minutes=None,
                overall_acc=metrics['overall_acc'],
                mean_class_acc=metrics['mean_class_acc'],
                params=rows[-1]['params'],
                storage_kb=summary.file_bytes / 1024, ms_b1=ms['packed'],
                agreement=agree / max(1, total),
                warm_fp32_ms=statistics.median(warm[rows[0]['model']]) * 1e3,
                warm_packed_ms=statistics.median(warm['packed']) * 1e3)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    start = time.time()
    banner('1/6', 'data', start)
    data = prepare_data(args)
    print(f'using {data}', flush=True)

    options = common_options(args)
    teacher_dir = osp.join(args.work_dir, 'pointnet_fp')
    rows = []

    banner('2/6', f'FP32 PointNet teacher, {args.teacher_epochs} epochs '
           f'({TEACHER_CFG})', start)
    t0 = time.time()
    runner = train(TEACHER_CFG, teacher_dir, args.teacher_epochs, options)
    rows.append(dict(model='PointNet FP32 (teacher)', loss='L_CE',
                     minutes=(time.time() - t0) / 60,
                     **evaluate(runner), **model_size(runner.model,
                                                      args.points)))
    models = {rows[-1]['model']: runner.model.eval()}

    student_options = options + [f'model.teacher_ckpt={teacher_dir}']
    for step, label, loss, config in (
            ('3/6', 'binary LSR+EMA, plain', 'L_CE', PLAIN_CFG),
            ('4/6', 'binary LSR+EMA, KDR', 'λ·L_DS+(1−λ)·L_CE+η·L_reg',
             KDR_CFG)):
        banner(step, f'{label} student, {args.student_epochs} epochs '
               f'({config})', start)
        t0 = time.time()
        work_dir = osp.join(args.work_dir,
                            osp.splitext(osp.basename(config))[0])
        runner = train(config, work_dir, args.student_epochs,
                       student_options)
        student = runner.model.student
        rows.append(dict(model=f'PointNet {label}', loss=loss,
                         minutes=(time.time() - t0) / 60, **evaluate(runner),
                         **model_size(student, args.points)))
        models[rows[-1]['model']] = student.eval()

    banner('5/6', 'deploy: bit-packed export and the packed CPU engine',
           start)
    packed_row = deploy(args, runner, models, rows)
    rows.append(packed_row)

    banner('6/6', 'results', start)
    print_table(rows, data, args)
    return rows


def print_table(rows: List[dict], data: str, args: argparse.Namespace) -> None:
    fp_storage = rows[0]['storage_kb']
    header = (f'{"model":<34} {"loss":<26} {"OA %":>6} {"mAcc %":>7} '
              f'{"params":>9} {"size KB":>9} {"smaller":>8} {"CPU ms":>7} '
              f'{"train min":>9}')
    print(f'data: {data}; {args.points} points per shape; teacher '
          f'{args.teacher_epochs} epochs, students {args.student_epochs} '
          f'epochs')
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
