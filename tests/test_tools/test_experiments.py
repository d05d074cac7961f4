# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/experiments/run.py and mmbinpc.experiments.

The smoke grid trains for real (mmengine Runner through tools/train.py and
tools/test.py, tiny generated data, a shrunken PointNet); only the report
arithmetic test uses fabricated result.json files, as its docstring says.
"""
import csv
import glob
import json
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess

import pytest

from mmbinpc.experiments import (ExperimentError, expand, get_scale,
                                 job_status, load_experiment, make_report)
from mmbinpc.experiments.runner import (SCHEMA, check_data, load_tool,
                                        write_json_atomic)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFINITIONS = sorted(
    p for p in glob.glob(osp.join(REPO, 'configs', 'experiments', '*.py'))
    if osp.basename(p) != 'scales.py')
PAPER_CSV = osp.join(REPO, 'configs', 'experiments', 'paper_tables.csv')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
RESULT_KEYS = {
    'test_overall_acc', 'test_mean_class_acc', 'best_val_acc',
    'best_val_epoch', 'final_val_acc', 'val_acc_curve', 'train_loss_curve',
    'wall_minutes', 'command', 'config', 'cfg_options', 'scale', 'seed',
    'checkpoint', 'test_command', 'resumed_from'
}

CLI = load_tool('experiments/run')


@pytest.fixture(autouse=True)
def _single_thread():
    """One intra-op thread (the suite shares 2 cores)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_TEACHER = """
_base_ = [{base!r}]
# a PointNet small enough for a smoke test: no T-Nets, narrow layers
model = dict(
    backbone=dict(channels=(16, 16, 16, 16, 32), input_transform=False,
                  feature_transform=False),
    head=dict(in_channels=32, mid_channels=(16, ), num_classes=4))
"""

TINY_DEFINITION = """
title = 'tiny smoke grid'
paper_csv = {paper_csv!r}
teachers = dict(pointnet=dict(
    config={teacher!r}, label='FP32 tiny PointNet (teacher)',
    paper=dict(table='T4', backbone='PointNet', method='FP32', setting=''),
    tags=dict(method='FP32', loss='L_CE')))
runs = [
    dict(name='lsr-ema',
         config='configs/pointnet/pointnet_bin_lsr-ema_modelnet40.py',
         teacher='pointnet', label='LSR + EMA',
         paper=dict(table='T4', backbone='PointNet', method='LSR+EMA',
                    setting=''),
         tags=dict(method='LSR+EMA', loss='plain', lam=0.0)),
    dict(name='lsr-ema-kdr',
         config='configs/pointnet/pointnet_bin_lsr-ema-kdr_modelnet40.py',
         teacher='pointnet', label='LSR + EMA + KDR',
         cfg_options={{'model.distill.reg_norm': 'fro'}},
         paper=dict(table='T4', backbone='PointNet', method='LSR+EMA+KDR',
                    setting=''),
         tags=dict(method='LSR+EMA', loss='KDR', lam=0.5)),
]
plots = [
    dict(type='bars'),
    dict(type='curves', name='val_error', curve='val_error', panel='method',
         series='loss', teacher=True),
    dict(type='curves', name='train_loss', curve='train_loss',
         panel='method', series='loss', teacher=False),
    dict(type='xy', name='lambda', x='lam', series='method'),
]
"""


def _write_definition(root, name='tiny.py', text=None):
    teacher = osp.join(root, 'tiny_pointnet_fp.py')
    with open(teacher, 'w') as f:
        f.write(
            TINY_TEACHER.format(
                base=osp.join(REPO,
                              'configs/pointnet/pointnet_fp_modelnet40.py')))
    path = osp.join(root, name)
    with open(path, 'w') as f:
        f.write(
            text if text is not None else TINY_DEFINITION.
            format(paper_csv=PAPER_CSV, teacher=teacher))
    return path


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    """The smoke grid, run once: a teacher + 2 students x 2 seeds."""
    root = str(tmp_path_factory.mktemp('exp'))
    definition = _write_definition(root)
    work, out = osp.join(root, 'work'), osp.join(root, 'out')
    argv = [definition, '--scale', 'smoke', '--work-dir', work, '--out', out]
    outcome = CLI.main(argv)
    return dict(
        root=root,
        definition=definition,
        work=work,
        out=out,
        argv=argv,
        outcome=outcome)


def _csv_rows(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def test_smoke_grid_end_to_end(smoke):
    plan, summary = smoke['outcome']['plan'], smoke['outcome']['summary']
    assert len(plan.students) == 4 and len(plan.teachers) == 1
    assert len(summary.ran) == 5 and not summary.failed
    assert not summary.skipped and not summary.resumed
    for job in plan.jobs:
        with open(job.result_path) as f:
            result = json.load(f)
        assert RESULT_KEYS <= set(result), RESULT_KEYS - set(result)
        assert result['seed'] == job.seed and result['scale'] == 'smoke'
        epochs = 1 if job.role == 'teacher' else 2
        assert len(result['val_acc_curve']) == epochs
        assert len(result['train_loss_curve']) == epochs
        assert all(v is not None for v in result['val_acc_curve'])
        assert all(v is not None and v > 0 for v in result['train_loss_curve'])
        # the checkpoint evaluated on test is the best one on val
        assert osp.basename(result['checkpoint']).startswith('best_')
        assert result['best_val_acc'] == max(result['val_acc_curve'])
        assert result['final_val_acc'] == result['val_acc_curve'][-1]
        assert 0 <= result['test_overall_acc'] <= 100
        assert result['command'].startswith('python tools/train.py ')
        # the code and machine it ran on
        head = subprocess.run(['git', '-C', REPO, 'rev-parse', 'HEAD'],
                              capture_output=True,
                              text=True).stdout.strip()
        assert result['code']['commit'] == (head or None)
        assert result['host']['torch_threads'] >= 1
        assert result['host']['cpu_count'] == os.cpu_count()
        assert f'randomness.seed={job.seed}' in result['command']
        if job.role == 'student':
            assert f'model.teacher_ckpt={plan.teachers[0].work_dir}' in \
                result['command']
            # the loss weights reached the model: L_reg only for KDR
            reg = result['train_loss_curves']['loss_reg']
            if job.name == 'lsr-ema-kdr':
                assert result['cfg_options'] == {
                    'model.distill.reg_norm': 'fro'
                }
                assert all(v > 0 for v in reg)
            else:
                assert reg == [0.0, 0.0]
    # the teacher is cached per scale, students per run and seed
    assert plan.teachers[0].work_dir == osp.join(smoke['work'], 'smoke',
                                                 'teachers', 'pointnet')
    assert osp.isdir(
        osp.join(smoke['work'], 'smoke', 'tiny', 'lsr-ema', 'seed1'))

    report = smoke['outcome']['report']
    rows = _csv_rows(report['csv'])
    students = [r for r in rows if r['role'] == 'student']
    assert len(students) == 2 * 2  # runs x seeds
    assert [r['role'] for r in rows].count('teacher') == 1
    with open(report['markdown']) as f:
        md = f.read()
    assert 'paper OA %' in md and 'SYNTHETIC' in md
    for label, paper in (('LSR + EMA', '86.1'), ('LSR + EMA + KDR', '87.1'),
                         ('FP32 tiny PointNet (teacher)', '88.2')):
        line = next(ln for ln in md.splitlines()
                    if ln.startswith(f'| {label} |'))
        assert f'| {paper} |' in line, line
    assert 'tools/experiments/run.py' in md
    # mean ± std in the markdown == what the CSV gives (2 seeds)
    for run in ('lsr-ema', 'lsr-ema-kdr'):
        accs = [
            float(r['test_overall_acc']) for r in students if r['run'] == run
        ]
        want = f'{statistics.fmean(accs):.2f} ± {statistics.stdev(accs):.2f}'
        line = next(ln for ln in md.splitlines() if f'| `{run}` |' in ln)
        assert f'| 2 | {want} |' in line, (line, want)
    assert len(report['plots']) == 4
    for path in report['plots']:
        assert osp.basename(path).startswith('tiny_')
        with open(path, 'rb') as f:
            assert f.read(8) == PNG_MAGIC


def test_rerun_skips_finished_runs(smoke, capsys):
    plan = smoke['outcome']['plan']
    mtimes = {j.key: os.stat(j.result_path).st_mtime_ns for j in plan.jobs}
    capsys.readouterr()
    outcome = CLI.main(smoke['argv'])
    out = capsys.readouterr().out
    assert outcome['summary'].ran == []
    assert sorted(outcome['summary'].skipped) == sorted(mtimes)
    for key in mtimes:
        assert f'[skip]  {key}: done' in out
    assert {
        j.key: os.stat(j.result_path).st_mtime_ns
        for j in plan.jobs
    } == mtimes
    # --dry-run says the same without training
    outcome = CLI.main(smoke['argv'] + ['--dry-run'])
    assert {k: s.state for k, s in outcome['statuses'].items()} == \
        {k: 'done' for k in mtimes}


def test_interrupted_run_resumes_from_its_checkpoint(smoke, monkeypatch):
    """Simulate a run killed during epoch 2: result.json, epoch_2.pth and
    the epoch-2 best checkpoint gone, last_checkpoint at epoch 1. A commit
    made while it trains does not become its recorded code: ``code`` is
    the state it started from, ``code_at_finish`` the later one."""
    states = iter([
        dict(commit='a' * 40, dirty=False),
        dict(commit='b' * 40, dirty=True)
    ])
    monkeypatch.setattr('mmbinpc.experiments.runner.code_version',
                        lambda: next(states))
    job = next(j for j in smoke['outcome']['plan'].students
               if j.key == 'lsr-ema-kdr/seed1')
    wd = job.work_dir
    os.remove(job.result_path)
    for path in glob.glob(osp.join(wd, '*epoch_2.pth')):
        os.remove(path)
    epoch1 = osp.join(wd, 'epoch_1.pth')
    with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
        f.write(epoch1)
    if not glob.glob(osp.join(wd, 'best_*.pth')):  # epoch 2 was the best
        import shutil
        shutil.copy(epoch1, osp.join(wd, 'best_overall_acc_epoch_1.pth'))
    epoch1_mtime = os.stat(epoch1).st_mtime_ns
    logs_before = set(os.listdir(wd))
    status = job_status(job)
    assert status.state == 'partial' and status.resume_from == epoch1

    outcome = CLI.main(smoke['argv'] +
                       ['--only', 'lsr-ema-kdr', '--seeds', '1'])
    summary = outcome['summary']
    assert summary.resumed == ['lsr-ema-kdr/seed1']
    assert summary.ran == ['lsr-ema-kdr/seed1']
    assert set(summary.skipped) == {'teacher:pointnet'}
    with open(job.result_path) as f:
        result = json.load(f)
    assert result['resumed_from'] == epoch1
    assert result['code'] == dict(commit='a' * 40, dirty=False)
    assert result['code_at_finish'] == dict(commit='b' * 40, dirty=True)
    assert os.stat(epoch1).st_mtime_ns == epoch1_mtime  # not retrained
    assert osp.isfile(osp.join(wd, 'epoch_2.pth'))
    # the resumed attempt logged epoch 2 only; the curves join both logs
    new_logs = [
        d for d in set(os.listdir(wd)) - logs_before
        if re.match(r'^\d{8}_\d{6}$', d)
    ]
    assert len(new_logs) == 1
    with open(osp.join(wd, new_logs[0], 'vis_data', 'scalars.json')) as f:
        epochs = {json.loads(ln).get('epoch') for ln in f if '"loss"' in ln}
    assert epochs == {2}
    assert all(v is not None for v in result['val_acc_curve'])
    assert all(v is not None for v in result['train_loss_curve'])
    # the report still covers every seed
    rows = _csv_rows(outcome['report']['csv'])
    assert sum(r['role'] == 'student' for r in rows) == 4


def test_force_retrains_and_a_stale_teacher_stops_the_grid(smoke):
    plan = smoke['outcome']['plan']
    job = next(j for j in plan.students if j.key == 'lsr-ema/seed0')
    before = os.stat(job.result_path).st_mtime_ns
    outcome = CLI.main(smoke['argv'] +
                       ['--only', 'lsr-ema', '--seeds', '0', '--force'])
    assert outcome['summary'].ran == ['lsr-ema/seed0']
    assert outcome['summary'].resumed == []
    assert os.stat(job.result_path).st_mtime_ns != before
    with open(job.result_path) as f:
        assert json.load(f)['resumed_from'] is None
    # a teacher trained with another command is not silently reused
    teacher = plan.teachers[0]
    with open(teacher.result_path) as f:
        original = f.read()
    result = json.loads(original)
    result['train_argv'][-1] = 'randomness.seed=7'
    write_json_atomic(teacher.result_path, result)
    try:
        with pytest.raises(ExperimentError, match='teacher is stale'):
            CLI.main(smoke['argv'])
    finally:
        with open(teacher.result_path, 'w') as f:
            f.write(original)


def test_jobs_trains_students_in_child_processes(smoke):
    """--jobs 2 retrains both seeds of one run in two child processes;
    each writes its own result.json and log, and the parent reports them."""
    plan = smoke['outcome']['plan']
    jobs = [j for j in plan.students if j.name == 'lsr-ema-kdr']
    before = {j.key: os.stat(j.result_path).st_mtime_ns for j in jobs}
    outcome = CLI.main(smoke['argv'] +
                       ['--only', 'lsr-ema-kdr', '--force', '--jobs', '2'])
    assert sorted(outcome['summary'].ran) == sorted(before)
    for job in jobs:
        assert os.stat(job.result_path).st_mtime_ns != before[job.key]
        with open(osp.join(job.work_dir, 'runner.log')) as f:
            log = f.read()
        assert f'[done]  {job.key}' in log  # the child trained this one only
        other = next(j for j in jobs if j is not job)
        assert f'[train] {other.key}' not in log
    with pytest.raises(ExperimentError, match='jobs must be >= 1'):
        CLI.main(smoke['argv'] + ['--jobs', '0'])


def test_synthetic_data_of_other_arguments_is_refused(smoke, tmp_path):
    scales = tmp_path / 'scales.py'
    scales.write_text(
        "smoke = dict(data=dict(root='{scale_dir}/data', kind='synthetic', "
        'generator=dict(num_classes=5, train_per_class=8, test_per_class=4, '
        'num_points=64)), num_points=64, batch_size=8, teacher_epochs=1, '
        'student_epochs=1, seeds=(0, ), log_interval=1)\n')
    scale = get_scale('smoke', str(scales))
    with pytest.raises(
            ExperimentError, match='other arguments.*classes 4 '
            'vs 5'):
        check_data(scale, osp.join(smoke['work'], 'smoke'))


def _fake_result(path, run, seed, acc, role='student', code=None):
    os.makedirs(osp.dirname(path), exist_ok=True)
    write_json_atomic(
        path,
        dict(
            code=code,
            schema=SCHEMA,
            experiment='tiny',
            run=run,
            role=role,
            label=run,
            seed=seed,
            scale='smoke',
            config='c.py',
            cfg_options={},
            options=[],
            train_argv=[],
            command=f'python tools/train.py {run}',
            test_overall_acc=acc,
            test_mean_class_acc=acc - 1,
            best_val_acc=acc + 1,
            best_val_epoch=2,
            final_val_acc=acc,
            val_acc_curve=[acc - 5, acc + 1],
            train_loss_curve=[2.0, 1.0],
            wall_minutes=0.5,
            checkpoint='best.pth',
            paper=None,
            tags={}))


def _fake_grid(tmp_path, accs, code_of=lambda run, seed: None):
    """A definition, a FABRICATED teacher result and student results
    (``accs``: run -> test accuracy per seed, ``code_of(run, seed)``: its
    recorded code) in a work dir, and the ``--report-only`` argv over
    them."""
    definition = _write_definition(str(tmp_path))
    work, out = str(tmp_path / 'work'), str(tmp_path / 'out')
    base = osp.join(work, 'smoke')
    _fake_result(
        osp.join(base, 'teachers', 'pointnet', 'result.json'),
        'pointnet',
        0,
        90.0,
        role='teacher')
    for run, values in accs.items():
        for seed, acc in enumerate(values):
            _fake_result(
                osp.join(base, 'tiny', run, f'seed{seed}', 'result.json'),
                run,
                seed,
                acc,
                code=code_of(run, seed))
    argv = [
        definition, '--scale', 'smoke', '--work-dir', work, '--out', out,
        '--report-only'
    ]
    return definition, work, out, argv


def test_report_only_arithmetic_on_fabricated_results(tmp_path, capsys):
    """FABRICATED result.json files (no training): checks the report's
    mean ± std against the CSV for 3 seeds, and that a malformed
    result.json is reported, left out and treated as not done."""
    accs = {'lsr-ema': [50.0, 55.5, 61.25], 'lsr-ema-kdr': [70.0, 72.0]}
    commits = {
        'lsr-ema': dict(commit='a' * 40, dirty=False),
        'lsr-ema-kdr': dict(commit='b' * 40, dirty=True)
    }
    definition, work, out, argv = _fake_grid(tmp_path, accs,
                                             lambda run, seed: commits[run])
    base = osp.join(work, 'smoke')
    bad = osp.join(base, 'tiny', 'lsr-ema-kdr', 'seed2', 'result.json')
    os.makedirs(osp.dirname(bad))
    with open(bad, 'w') as f:
        f.write('{"schema": 1, "run": ')  # cut short
    outcome = CLI.main(argv)
    printed = capsys.readouterr().out
    report = outcome['report']
    assert outcome['summary'] is None  # nothing trained
    assert f'wrote {report["markdown"]}' in printed
    assert 'malformed result.json' in printed and bad in printed
    rows = _csv_rows(report['csv'])
    assert len(rows) == 1 + 3 + 2
    with open(report['markdown']) as f:
        md = f.read()
    for run, values in accs.items():
        from_csv = [
            float(r['test_overall_acc']) for r in rows if r['run'] == run
        ]
        assert from_csv == values
        want = (f'{statistics.fmean(from_csv):.2f} ± '
                f'{statistics.stdev(from_csv):.2f}')
        line = next(ln for ln in md.splitlines() if f'| `{run}` |' in ln)
        assert f'| {len(values)} | {want} |' in line, (line, want)
    assert '55.58 ± 5.63' in md  # by hand: mean 55.583, s = 5.626
    # the code each run was trained at is named, runs grouped by commit
    code = next(ln for ln in md.splitlines() if ln.startswith('- Code: '))
    assert 'not recorded (1 run: `teacher:pointnet` seed 0)' in code
    assert ('aaaaaaa (3 runs: `lsr-ema` seed 0, `lsr-ema` seed 1, '
            '`lsr-ema` seed 2)') in code
    assert 'bbbbbbb with uncommitted changes (2 runs: ' in code
    assert bad in md
    # the malformed run is not done: its status says why
    plan = expand(
        load_experiment(definition),
        get_scale('smoke'),
        work,
        seeds=[2],
        only=['lsr-ema-kdr'])
    status = job_status(plan.students[0])
    assert status.state == 'pending' and 'malformed' in status.problem


def test_report_keeps_run_records_for_a_fresh_clone(tmp_path):
    """FABRICATED result.json files: the report copies each into
    ``runs/<experiment>/``; with the work dirs deleted, --report-only gives
    the same CSV and markdown from those records, a new result in a work
    dir replaces its record, and a malformed record is named and left
    out."""
    definition, work, out, argv = _fake_grid(tmp_path,
                                             {'lsr-ema': [50.0, 60.0]})
    base = osp.join(work, 'smoke')
    first = CLI.main(argv)['report']
    records = osp.join(out, 'runs', 'tiny')
    assert sorted(
        osp.relpath(p, records) for p in glob.glob(
            osp.join(records, '**', '*.json'), recursive=True)) == [
                'lsr-ema/seed0.json', 'lsr-ema/seed1.json',
                'teachers/pointnet.json'
            ]
    with open(first['csv']) as f:
        csv_before = f.read()
    with open(first['markdown']) as f:
        md_before = f.read()
    shutil.rmtree(work)
    again = CLI.main(argv)['report']
    with open(again['csv']) as f:
        assert f.read() == csv_before
    with open(again['markdown']) as f:
        assert f.read() == md_before
    assert again['missing'] == ['lsr-ema-kdr']
    # a rerun's result in a work dir wins over the record, and is kept
    _fake_result(
        osp.join(base, 'tiny', 'lsr-ema', 'seed1', 'result.json'), 'lsr-ema',
        1, 70.0)
    rows = _csv_rows(CLI.main(argv)['report']['csv'])
    assert [
        float(r['test_overall_acc']) for r in rows if r['run'] == 'lsr-ema'
    ] == [50.0, 70.0]
    with open(osp.join(records, 'lsr-ema', 'seed1.json')) as f:
        assert json.load(f)['test_overall_acc'] == 70.0
    with open(osp.join(records, 'lsr-ema', 'seed0.json'), 'w') as f:
        f.write('{"schema": ')
    report = CLI.main(argv)['report']
    assert any('seed0.json' in p and 'malformed' in p
               for p in report['problems'])
    assert [
        r['seed'] for r in _csv_rows(report['csv']) if r['run'] == 'lsr-ema'
    ] == ['1']


def test_records_imported_from_an_old_report_csv(tmp_path):
    """A report written before run records were kept (its ``runs/`` and
    work dirs gone): import_report_csv.py rebuilds a record per CSV row with
    the commit its ``- Code:`` line names; the regenerated CSV is the same,
    the markdown names the imported runs, and the curve plots, which would
    have nothing to draw, are not written."""
    definition, work, out, argv = _fake_grid(
        tmp_path, {'lsr-ema': [50.0, 61.25]},
        lambda run, seed: dict(commit='c' * 40, dirty=seed == 1))
    first = CLI.main(argv)['report']
    assert any(p.endswith('_val_error.png') for p in first['plots'])
    with open(first['csv']) as f:
        csv_before = f.read()
    shutil.rmtree(work)
    shutil.rmtree(osp.join(out, 'runs'))
    for png in first['plots']:
        os.remove(png)
    importer = load_tool('experiments/import_report_csv')
    written = importer.main([definition, '--out', out])
    assert len(written) == 3
    assert importer.main([definition, '--out', out]) == []  # never replaced
    with open(osp.join(out, 'runs', 'tiny', 'lsr-ema', 'seed1.json')) as f:
        record = json.load(f)
    assert record['code'] == dict(commit='c' * 7, dirty=True)
    assert record['val_acc_curve'] == [] and record['imported_from']
    again = CLI.main(argv)['report']
    with open(again['csv']) as f:
        assert f.read() == csv_before
    assert not any('_val_error' in p or '_train_loss' in p
                   for p in again['plots'])
    with open(again['markdown']) as f:
        md = f.read()
    assert ('- Imported: 3 run(s) are known only from an earlier report' in md)
    assert 'ccccccc with uncommitted changes (1 run: `lsr-ema` seed 1)' in md
    with pytest.raises(SystemExit, match='no such report'):
        importer.main([definition, '--out', str(tmp_path / 'nowhere')])


@pytest.mark.parametrize(
    'definition', DEFINITIONS, ids=[osp.basename(p) for p in DEFINITIONS])
def test_shipped_definitions_expand(definition, tmp_path, capsys):
    expected = dict(
        table3_norms=28,
        table4_methods=16,
        table5_ablation=24,
        table6_backbones=12,
        fig2_temperature=20,
        recipe_ablation=8,
        kdr_weights=2)
    name = osp.splitext(osp.basename(definition))[0]
    for scale in ('smoke', 'cpu', 'paper'):
        outcome = CLI.main([
            definition, '--scale', scale, '--dry-run', '--work-dir',
            str(tmp_path)
        ])
        plan = outcome['plan']
        seeds = get_scale(scale).seeds
        assert len(plan.students) == expected[name] * len(seeds)
        assert all(s.state == 'pending' for s in outcome['statuses'].values())
    printed = capsys.readouterr().out
    assert 'python tools/train.py configs/' in printed
    assert not osp.exists(osp.join(str(tmp_path), 'smoke', 'data'))


def test_unknown_scale_and_unmatched_pattern(tmp_path):
    definition = DEFINITIONS[0]
    with pytest.raises(
            ExperimentError,
            match="unknown scale 'huge'.*smoke, cpu, cpu_long, "
            'paper'):
        CLI.main([definition, '--scale', 'huge', '--dry-run'])
    with pytest.raises(
            ExperimentError, match=r"--only 'nothing\*' matches no run"):
        CLI.main([
            definition, '--scale', 'smoke', '--dry-run', '--only', 'nothing*',
            '--work-dir',
            str(tmp_path)
        ])


_OK_RUN = ("dict(name='a', config='configs/pointnet/"
           "pointnet_bin_lsr-ema-kdr_modelnet40.py', teacher='pointnet')")
_TEACHER = ("teachers = dict(pointnet=dict(config='configs/pointnet/"
            "pointnet_fp_modelnet40.py'))\n")


@pytest.mark.parametrize('text, message', [
    (_TEACHER + f'runs = [{_OK_RUN}]\nrun = []\n',
     r"unknown top-level keys \['run'\]"),
    (_TEACHER + "runs = [dict(name='a', config='configs/nope.py', "
     "teacher='pointnet')]\n", r"runs\[0\] \('a'\): config 'configs/nope.py'"
     ' not found'),
    (_TEACHER + "runs = [dict(name='a', config='configs/pointnet/"
     "pointnet_bin_lsr-ema_modelnet40.py', teacher='dgcnn')]\n",
     r"teacher 'dgcnn' is not in teachers \(pointnet\)"),
    (_TEACHER + f'runs = [{_OK_RUN}, {_OK_RUN}]\n', r"duplicate run name 'a'"),
    (_TEACHER + "runs = [dict(name='a', config='configs/pointnet/"
     "pointnet_bin_lsr-ema-kdr_modelnet40.py', teacher='pointnet', "
     "cfg_options={'model.distill.lamda': 0.0})]\n",
     r"cfg option 'model.distill.lamda' names a key"),
    (_TEACHER + "runs = [dict(name='a', config='configs/pointnet/"
     "pointnet_bin_lsr-ema-kdr_modelnet40.py', teacher='pointnet', "
     "paper=dict(table='T4', backbone='PointNet', method='LSR+EMA+KD'))]\n",
     r"no row 'T4 PointNet LSR\+EMA\+KD'"),
    (_TEACHER + "runs = [dict(name='a', config='configs/pointnet/"
     "pointnet_fp_modelnet40.py', teacher='pointnet')]\n",
     r'is not a student'),
    (_TEACHER + "runs = [dict(name='a', config='configs/pointnet/"
     "pointnet_bin_lsr-ema-kdr_modelnet40.py', teacher='pointnet', "
     "cfg_options={'model.distill.reg_norm': 'a b'})]\n",
     r'cannot be passed through --cfg-options'),
    ('runs = []\n', r'no `teachers`'),
])
def test_bad_definitions_name_file_and_entry(tmp_path, text, message):
    path = str(tmp_path / 'bad.py')
    with open(path, 'w') as f:
        f.write(text)
    with pytest.raises(ExperimentError, match=message) as info:
        load_experiment(path)
    assert str(info.value).startswith(path)


def test_bad_scales_file(tmp_path):
    path = tmp_path / 'scales.py'
    path.write_text("tiny = dict(num_points=64, batch_size=8)\n")
    with pytest.raises(
            ExperimentError, match=r"scale 'tiny'.*missing \['data'"):
        get_scale('tiny', str(path))


def test_report_from_no_results_says_what_is_missing(tmp_path):
    definition = load_experiment(DEFINITIONS[0])
    scale = get_scale('smoke')
    report = make_report(definition, scale, str(tmp_path / 'work'),
                         str(tmp_path / 'out'), 'python tools/...')
    assert report['rows'] == 0 and report['plots'] == []
    assert len(report['missing']) == 1 + len(definition.runs)
