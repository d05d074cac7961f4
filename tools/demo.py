# Copyright (c) mmbinpc contributors. All rights reserved.
"""The main job on the embedded default data (what ``make demo`` runs).

1. data     - uses ``data/modelnet40_normal_resampled`` when a ModelNet40 is
              there, else generates the SYNTHETIC ModelNet-format stand-in;
2. teacher  - trains the FP32 PointNet teacher (with both T-Nets);
3. plain    - trains the binary student (LSR + EMA) with L_CE only;
4. KDR      - trains the binary student (LSR + EMA) with the paper's
              L = λ·L_DS + (1−λ)·L_CE + η·L_reg, guided by the teacher;
5. report   - evaluates all three and prints accuracy and model size.

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


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    start = time.time()
    banner('1/5', 'data', start)
    data = prepare_data(args)
    print(f'using {data}', flush=True)

    options = common_options(args)
    teacher_dir = osp.join(args.work_dir, 'pointnet_fp')
    rows = []

    banner('2/5', f'FP32 PointNet teacher, {args.teacher_epochs} epochs '
           f'({TEACHER_CFG})', start)
    t0 = time.time()
    runner = train(TEACHER_CFG, teacher_dir, args.teacher_epochs, options)
    rows.append(dict(model='PointNet FP32 (teacher)', loss='L_CE',
                     minutes=(time.time() - t0) / 60,
                     **evaluate(runner), **model_size(runner.model,
                                                      args.points)))

    student_options = options + [f'model.teacher_ckpt={teacher_dir}']
    for step, label, loss, config in (
            ('3/5', 'binary LSR+EMA, plain', 'L_CE', PLAIN_CFG),
            ('4/5', 'binary LSR+EMA, KDR', 'λ·L_DS+(1−λ)·L_CE+η·L_reg',
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

    banner('5/5', 'results', start)
    print_table(rows, data, args)
    return rows


def print_table(rows: List[dict], data: str, args: argparse.Namespace) -> None:
    fp_storage = rows[0]['storage_kb']
    header = (f'{"model":<32} {"loss":<26} {"OA %":>6} {"mAcc %":>7} '
              f'{"params":>9} {"size KB":>9} {"smaller":>8} {"train min":>9}')
    print(f'data: {data}; {args.points} points per shape; teacher '
          f'{args.teacher_epochs} epochs, students {args.student_epochs} '
          f'epochs')
    print(header)
    print('-' * len(header))
    for row in rows:
        print(f'{row["model"]:<32} {row["loss"]:<26} '
              f'{row["overall_acc"]:>6.2f} {row["mean_class_acc"]:>7.2f} '
              f'{row["params"]:>9,d} {row["storage_kb"]:>9.1f} '
              f'{fp_storage / row["storage_kb"]:>7.1f}x '
              f'{row["minutes"]:>9.1f}')
    print('size: 1 bit per binary weight, 32 bits for everything else '
          '(FP first/last layers, BatchNorm, scales); see '
          'tools/analysis/complexity.py for the per-layer table.')


if __name__ == '__main__':
    main()
