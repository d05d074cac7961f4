# Copyright (c) mmbinpc contributors. All rights reserved.
"""Run a grid of trainings for one of the paper's comparisons, then report.

Every run goes through ``tools/train.py`` and ``tools/test.py`` (their
``main`` in this process) with the repository's configs; the FP32 teacher
of each backbone is trained once per scale and shared. See
docs/experiments.md.

Examples::

    python tools/experiments/run.py configs/experiments/table4_methods.py \
        --scale cpu
    python tools/experiments/run.py configs/experiments/table4_methods.py \
        --scale cpu --seeds 0 1 2 --only 'lsr-ema*'
    python tools/experiments/run.py configs/experiments/table4_methods.py \
        --scale cpu --dry-run          # list runs, status and commands
    python tools/experiments/run.py configs/experiments/table4_methods.py \
        --scale cpu --report-only      # CSV, markdown, PNGs from results
"""
import argparse
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
from typing import Any, Dict, List, Optional

DEFAULT_WORK_DIR = osp.join('work_dirs', 'experiments')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a grid of runs x seeds (teachers cached per '
        'scale), evaluate each best-on-validation checkpoint on the test '
        'split, and write a CSV / markdown / PNG report beside the '
        "paper's figures")
    parser.add_argument(
        'definition',
        help='experiment definition, e.g. '
        'configs/experiments/table4_methods.py')
    parser.add_argument(
        '--scale',
        default='cpu',
        help='a scale of configs/experiments/scales.py '
        '(smoke, cpu, paper); default: cpu')
    parser.add_argument('--scales', default=None, help='another scales file')
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        help="student seeds (default: the scale's)")
    parser.add_argument(
        '--only',
        action='append',
        metavar='PATTERN',
        help='run only runs whose name matches (fnmatch; '
        'repeatable)')
    parser.add_argument(
        '--work-dir',
        default=DEFAULT_WORK_DIR,
        help='root of the work dirs (default: '
        f'{DEFAULT_WORK_DIR}); runs go to '
        '<work-dir>/<scale>/...')
    parser.add_argument(
        '--out',
        default=None,
        help='report directory (default: '
        'docs/results/<scale>)')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        '--dry-run',
        action='store_true',
        help='list the runs, whether each is done / partial '
        '/ pending, and their commands; train nothing')
    mode.add_argument(
        '--report-only',
        action='store_true',
        help='only regenerate the report from result.json '
        'files')
    parser.add_argument(
        '--force',
        action='store_true',
        help='delete the selected runs\' work dirs and '
        'retrain them (teachers are kept)')
    parser.add_argument(
        '--keep-going',
        action='store_true',
        help='after a failed run, go on with the next')
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='students trained at once, each in its own '
        'process with cores/jobs threads (on 2 cores, '
        '--jobs 2 trains about twice as many runs per hour '
        'as one 2-thread run at a time); default 1')
    parser.add_argument(
        '--no-report', action='store_true',
        help=argparse.SUPPRESS)  # child processes of --jobs
    return parser.parse_args(argv)


def report_command(args: argparse.Namespace) -> str:
    """The command line that produces this grid (without mode flags)."""
    parts = [args.definition, '--scale', args.scale]
    if args.scales:
        parts += ['--scales', args.scales]
    if args.seeds:
        parts += ['--seeds', *map(str, args.seeds)]
    for pattern in args.only or []:
        parts += ['--only', pattern]
    if args.work_dir != DEFAULT_WORK_DIR:
        parts += ['--work-dir', args.work_dir]
    if args.out:
        parts += ['--out', args.out]
    return 'python tools/experiments/run.py ' + shlex.join(parts)


def _fnmatch_literal(name: str) -> str:
    """An fnmatch pattern matching exactly ``name``."""
    return re.sub(r'([*?\[])', r'[\1]', name)


def make_launcher(args: argparse.Namespace):
    """Start one student in a child process of this tool (``--jobs``)."""
    threads = max(1, (os.cpu_count() or 1) // args.jobs)

    def launch(job):
        cmd = [
            sys.executable,
            osp.abspath(__file__), args.definition, '--scale', args.scale,
            '--only',
            _fnmatch_literal(job.name), '--seeds',
            str(job.seed), '--work-dir', args.work_dir, '--no-report'
        ]
        if args.scales:
            cmd += ['--scales', args.scales]
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads))
        os.makedirs(job.work_dir, exist_ok=True)
        with open(osp.join(job.work_dir, 'runner.log'), 'a') as log:
            return subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    return launch


def _data(check_data, scale, work_root: str):
    """The scale's data, or None (saying why) when it is not usable yet."""
    from mmbinpc.experiments import ExperimentError
    try:
        return check_data(scale, work_root, create=False)
    except ExperimentError as err:
        print(f'data: PROBLEM: {err}')
        return None


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run (or list, or report) a grid.

    Returns:
        dict: ``plan``, ``summary`` (None for --dry-run / --report-only),
        ``report`` (None for --dry-run) and ``statuses`` (for --dry-run).

    Raises:
        mmbinpc.experiments.ExperimentError: Bad input; the message names
        the file, the problem and the fix.
    """
    args = parse_args(argv)
    from mmbinpc.experiments import (check_data, execute, expand, get_scale,
                                     job_status, load_experiment, make_report)
    experiment = load_experiment(args.definition)
    scale = get_scale(args.scale, args.scales)
    plan = expand(experiment, scale, args.work_dir, args.seeds, args.only)
    out = args.out or osp.join('docs', 'results', scale.name)
    command = report_command(args)
    print(
        f'experiment {experiment.name} ({experiment.path}): '
        f'{len(plan.students) // len(plan.seeds)} of '
        f'{len(experiment.runs)} runs x seeds '
        f'{list(plan.seeds)} + {len(plan.teachers)} teacher(s), scale '
        f'{scale.name!r}, work dir {plan.work_root}',
        flush=True)
    result: Dict[str, Any] = dict(
        plan=plan, summary=None, report=None, statuses=None)
    if args.dry_run:
        data = _data(check_data, scale, plan.work_root)
        print(f'data: {data.description if data else "see the error above"}')
        statuses = {}
        for job in plan.jobs:
            status = job_status(job)
            statuses[job.key] = status
            print(f'[{status.state:7s}] {job.key}: {status.detail}')
            if status.problem:
                print(f'          warning: {status.problem}')
            print(f'          {job.train_command(status.resume_from)}')
        counts = {
            s: sum(st.state == s for st in statuses.values())
            for s in ('done', 'partial', 'pending')
        }
        print(f'{counts["done"]} done, {counts["partial"]} partial, '
              f'{counts["pending"]} pending; the report would go to {out}/')
        result['statuses'] = statuses
        return result
    if args.report_only:
        data = _data(check_data, scale, plan.work_root)
    else:
        summary = execute(
            plan,
            force=args.force,
            keep_going=args.keep_going,
            jobs=args.jobs,
            launch=make_launcher(args) if args.jobs > 1 else None)
        result['summary'] = summary
        data = _data(check_data, scale, plan.work_root)
        print(f'ran {len(summary.ran)} (resumed {len(summary.resumed)}), '
              f'skipped {len(summary.skipped)} already done, failed '
              f'{len(summary.failed)}')
        for key, err in summary.failed:
            print(f'  FAILED {key}: {err}')
    if args.no_report:
        return result
    report = make_report(
        experiment, scale, plan.work_root, out, command, data=data)
    result['report'] = report
    print(f'report: {report["rows"]} result rows')
    print(f'  wrote {report["csv"]}')
    print(f'  wrote {report["markdown"]}')
    for path in report['plots']:
        print(f'  wrote {path}')
    if report['missing']:
        print(f'  not run yet: {", ".join(report["missing"])}')
    for problem in report['problems']:
        print(f'  left out: {problem}')
    return result


if __name__ == '__main__':
    from mmbinpc.experiments import ExperimentError
    try:
        outcome = main()
    except ExperimentError as err:
        sys.exit(f'error: {err}')
    summary = outcome['summary']
    sys.exit(1 if summary is not None and summary.failed else 0)
