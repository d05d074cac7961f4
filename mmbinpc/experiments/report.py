# Copyright (c) mmbinpc contributors. All rights reserved.
"""Reports from ``result.json`` files: CSV, markdown and PNG plots.

Everything here reads the finished runs' ``result.json`` files (and the
experiment definition for the order, labels and plots); nothing trains, so
``--report-only`` regenerates a report at any time.

Work dirs hold checkpoints and are not committed, so each report also keeps
a copy of every ``result.json`` it read, its *run records*, under
``<report dir>/runs/<experiment>/`` (``<run>/seed<k>.json``,
``teachers/<name>.json``; a few KB each). :func:`collect` falls back to a
run's record when its work dir has no ``result.json``, so a report
regenerated on a fresh clone (or after the work dirs were cleaned) keeps
every run it showed, curves included; a result in a work dir replaces its
record.

Plots (``plots`` in a definition), written as ``<experiment>_<name>.png``:

* ``dict(type='bars')``: per setting, our test accuracy (mean ± std over
  seeds) beside the paper's figure.
* ``dict(type='curves', curve='val_error'|'val_acc'|'train_loss',
  panel=<tag or tags>, series=<tag>, teacher=True)``: per-epoch curves,
  one panel per value of the ``panel`` tags, one line (mean over seeds,
  band ± std) per run, plus the panel's FP32 teacher.
* ``dict(type='xy', x=<tag>, series=<tag>, metric='test_overall_acc')``:
  the metric (mean ± std) against a numeric tag, one line per series.
"""
import csv
import json
import math
import os
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .grid import Experiment, Scale, student_dir, teacher_dir
from .runner import DataInfo, read_result, write_json_atomic

CSV_COLUMNS = ('role', 'experiment', 'run', 'label', 'seed', 'scale',
               'test_overall_acc', 'test_mean_class_acc', 'best_val_acc',
               'best_val_epoch', 'final_val_acc', 'epochs', 'wall_minutes',
               'paper_table', 'paper_backbone', 'paper_method',
               'paper_setting', 'paper_acc', 'tags', 'config', 'cfg_options',
               'command', 'resumed_from', 'work_dir', 'finished_at')


@dataclass
class Setting:
    """One row of the report: a teacher or a run, with its seeds' results.

    Attributes:
        key (str): ``teacher:<name>`` or the run name.
        label (str): Display name.
        role (str): ``'teacher'`` or ``'student'``.
        spec (object): The TeacherSpec or RunSpec.
        results (list[dict]): ``result.json`` contents, by seed.
        paper (float, optional): The paper's figure.
    """

    key: str
    label: str
    role: str
    spec: Any
    results: List[Dict[str, Any]] = field(default_factory=list)
    paper: Optional[float] = None

    def values(self, metric: str) -> List[float]:
        """The metric of every seed."""
        return [
            float(r[metric]) for r in self.results if r.get(metric) is not None
        ]


@dataclass
class Collected:
    """The results of an experiment at a scale.

    Attributes:
        settings (list[Setting]): Teachers first, then runs in order.
        problems (list[str]): Malformed or missing files.
    """

    settings: List[Setting]
    problems: List[str]

    def setting(self, key: str) -> Setting:
        """A setting by key."""
        return next(s for s in self.settings if s.key == key)


def mean_std(
        values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (n − 1; None below 2 values)."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else None


def format_mean_std(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± std`` (just the mean for one value, ``—`` for none)."""
    mean, std = mean_std(values)
    if mean is None:
        return '—'
    if std is None:
        return f'{mean:.{digits}f}'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def records_dir(out_dir: str, experiment: Experiment) -> str:
    """Where a report keeps the run records of ``experiment``."""
    return osp.join(out_dir, 'runs', experiment.name)


def _teacher_record(records: str, name: str) -> str:
    return osp.join(records, 'teachers', f'{name}.json')


def _student_record(records: str, run: str, seed: int) -> str:
    return osp.join(records, run, f'seed{seed}.json')


def _seeds_in(folder: str, prefix: str, suffix: str = '') -> List[int]:
    found = []
    if osp.isdir(folder):
        for entry in os.listdir(folder):
            if not (entry.startswith(prefix) and entry.endswith(suffix)):
                continue
            digits = entry[len(prefix):len(entry) - len(suffix)]
            if digits.isdigit():
                found.append(int(digits))
    return found


def collect(experiment: Experiment,
            work_root: str,
            seeds: Optional[Sequence[int]] = None,
            records: Optional[str] = None) -> Collected:
    """Read the ``result.json`` files of an experiment.

    Args:
        experiment (Experiment): The definition.
        work_root (str): ``<work_dir>/<scale>``.
        seeds (Sequence[int], optional): Keep only these student seeds
            (default: every ``seed*`` directory or record found).
        records (str, optional): The report's run records
            (:func:`records_dir`), read where a work dir has no
            ``result.json``.

    Returns:
        Collected: Settings with their results; malformed files are listed
        in ``problems`` and left out.
    """
    problems: List[str] = []
    settings = []

    def read_first(*paths: Optional[str]) -> None:
        for path in paths:
            if path is None or not osp.isfile(path):
                continue
            try:
                setting.results.append(read_result(path))
            except ValueError as err:
                problems.append(str(err))
            return

    for name, spec in experiment.teachers.items():
        if not any(r.teacher == name for r in experiment.runs):
            continue
        setting = Setting(
            f'teacher:{name}',
            spec.label,
            'teacher',
            spec,
            paper=experiment.paper.get(spec.paper))
        read_first(
            osp.join(teacher_dir(work_root, name), 'result.json'), records
            and _teacher_record(records, name))
        settings.append(setting)
    for run in experiment.runs:
        setting = Setting(
            run.name,
            run.label,
            'student',
            run,
            paper=experiment.paper.get(run.paper))
        run_dir = osp.dirname(
            student_dir(work_root, experiment.name, run.name, 0))
        found = set(_seeds_in(run_dir, 'seed'))
        if records:
            found.update(
                _seeds_in(osp.join(records, run.name), 'seed', '.json'))
        for seed in sorted(found):
            if seeds is not None and seed not in seeds:
                continue
            read_first(
                osp.join(run_dir, f'seed{seed}', 'result.json'), records
                and _student_record(records, run.name, seed))
        settings.append(setting)
    return Collected(settings, problems)


def write_records(records: str, collected: Collected) -> List[str]:
    """Keep a copy of every collected result as a run record.

    Returns:
        list[str]: The records written or rewritten.
    """
    written = []
    for setting in collected.settings:
        for res in setting.results:
            if setting.role == 'teacher':
                path = _teacher_record(records, setting.key.split(':', 1)[1])
            else:
                path = _student_record(records, setting.key, res['seed'])
            if osp.isfile(path):
                with open(path) as f:
                    if json.load(f) == res:
                        continue
            os.makedirs(osp.dirname(path), exist_ok=True)
            write_json_atomic(path, res)
            written.append(path)
    return written


# -------------------------------------------------------------------- CSV
def write_csv(path: str, collected: Collected) -> int:
    """One row per finished run x seed (teachers too, ``role=teacher``).

    Returns:
        int: Rows written.
    """
    rows = 0
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for setting in collected.settings:
            for res in setting.results:
                paper = res.get('paper') or {}
                writer.writerow(
                    dict(
                        role=res['role'],
                        experiment=res.get('experiment', ''),
                        run=res['run'],
                        label=setting.label,
                        seed=res['seed'],
                        scale=res['scale'],
                        test_overall_acc=res['test_overall_acc'],
                        test_mean_class_acc=res['test_mean_class_acc'],
                        best_val_acc=res['best_val_acc'],
                        best_val_epoch=res['best_val_epoch'],
                        final_val_acc=res['final_val_acc'],
                        epochs=res.get('epochs', ''),
                        wall_minutes=f'{res["wall_minutes"]:.3f}',
                        paper_table=paper.get('table', ''),
                        paper_backbone=paper.get('backbone', ''),
                        paper_method=paper.get('method', ''),
                        paper_setting=paper.get('setting', ''),
                        paper_acc=''
                        if setting.paper is None else setting.paper,
                        tags=json.dumps(res.get('tags') or {}, sort_keys=True),
                        config=res['config'],
                        cfg_options=json.dumps(
                            res['cfg_options'], sort_keys=True),
                        command=res['command'],
                        resumed_from=res.get('resumed_from') or '',
                        work_dir=res.get('work_dir', ''),
                        finished_at=res.get('finished_at', '')))
                rows += 1
    return rows


# --------------------------------------------------------------- markdown
def _md_cell(text: Any) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def _code_line(collected: Collected) -> str:
    """Which commits the runs were trained at (from their result.json)."""
    by_commit: Dict[str, List[str]] = {}
    for setting in collected.settings:
        for res in setting.results:
            code = res.get('code') or {}
            commit = code.get('commit')
            key = 'not recorded' if not commit else (
                commit[:7] +
                (' with uncommitted changes' if code.get('dirty') else ''))
            by_commit.setdefault(
                key, []).append(f'`{setting.key}` seed {res.get("seed")}')
    if not by_commit:
        return 'no runs.'
    parts = [
        f'{key} ({len(runs)} run{"s" if len(runs) > 1 else ""}: '
        f'{", ".join(runs)})' for key, runs in by_commit.items()
    ]
    return 'commit ' + '; '.join(parts) + '.'


def _imported_line(collected: Collected) -> List[str]:
    """The runs whose record was rebuilt from an earlier report's CSV
    (``tools/experiments/import_report_csv.py``): they have no curves."""
    imported = [(s.key, r.get('seed'), r['imported_from'])
                for s in collected.settings for r in s.results
                if r.get('imported_from')]
    if not imported:
        return []
    sources = sorted({src for _, _, src in imported})
    runs = ', '.join(f'`{key}` seed {seed}' for key, seed, _ in imported)
    return [
        f'- Imported: {len(imported)} run(s) are known only from an earlier '
        f'report ({"; ".join(sources)}), their work dirs gone before run '
        'records were kept: their test and validation figures are that '
        "report's, their per-epoch curves are lost (absent from the curve "
        f'plots): {runs}.'
    ]


def write_markdown(path: str, experiment: Experiment, scale: Scale,
                   collected: Collected, command: str,
                   data: Optional[DataInfo], plots: Sequence[str]) -> None:
    """The report: one row per setting, ours (mean ± std, n) beside the
    paper's figure, then the commands and the plots."""
    lines = [f'# {experiment.title}', '']
    if experiment.description:
        lines += [experiment.description, '']
    seeds = sorted({
        r['seed']
        for s in collected.settings if s.role == 'student' for r in s.results
    })
    lines += [
        f'- Scale: `{scale.name}` ({scale.description}); '
        f'{scale.num_points} points per shape, batch {scale.batch_size}, '
        f'teacher {scale.teacher_epochs} epochs (seed 0), students '
        f'{scale.student_epochs} epochs; seeds found: '
        f'{", ".join(map(str, seeds)) or "none"}.',
        f'- Data: {data.description if data else scale.data_root}.',
        f'- Code: {_code_line(collected)}',
        *_imported_line(collected),
        f'- Produced by: `{command}`. Regenerate this report from the '
        'result.json files alone with the same command plus '
        '`--report-only`; where a work dir is gone, its run\'s copy under '
        f'`runs/{experiment.name}/` (committed with the report) is read.',
        '- Ours: overall accuracy (OA) and mean class accuracy (mAcc) on '
        'the **test** split of the checkpoint that was best on the '
        '**validation** split (held out of the training files); mean ± '
        'sample standard deviation (n − 1) over n seeds.',
        f'- Paper: Zhao et al. (2023), real ModelNet40, GPU, 200 epochs '
        f'({experiment.paper.path}); its key is in the last column.',
        '',
    ]
    if data is not None and data.synthetic:
        lines += [
            '> **SYNTHETIC DATA - NOT ModelNet40.** Our numbers are '
            'on generated shapes with a short schedule; compare them '
            'with each other, not with the paper\'s column.', ''
        ]
    lines += [
        '| setting | run | n | ours OA % | ours mAcc % | best val OA % '
        '(epoch) | paper OA % | paper key |',
        '|---|---|---:|---:|---:|---:|---:|---|',
    ]
    for s in collected.settings:
        epochs = [str(r['best_val_epoch']) for r in s.results]
        best = format_mean_std(s.values('best_val_acc'))
        paper_key = s.spec.paper.label() if s.spec.paper else ''
        lines.append('| ' + ' | '.join(
            _md_cell(c)
            for c in (s.label, f'`{s.key}`', len(s.results),
                      format_mean_std(s.values('test_overall_acc')),
                      format_mean_std(s.values('test_mean_class_acc')),
                      f'{best} ({", ".join(epochs)})' if epochs else best,
                      '—' if s.paper is None else f'{s.paper:.1f}',
                      paper_key)) + ' |')
    missing = [s.key for s in collected.settings if not s.results]
    if missing:
        lines += [
            '', f'Not run yet ({len(missing)}): ' +
            ', '.join(f'`{m}`' for m in missing) + '.'
        ]
    if collected.problems:
        lines += ['', 'Left out (malformed result.json):', ''
                  ] + [f'- {p}' for p in collected.problems]
    if plots:
        lines += ['', '## Plots', '']
        for plot in plots:
            lines += [f'![{osp.basename(plot)}]({osp.basename(plot)})', '']
    lines += [
        '', '## Commands', '',
        'Each setting\'s training command (the first seed found; the '
        'other seeds differ only in `randomness.seed` and the work '
        'dir). `tools/test.py` then evaluates the best_*.pth on the '
        'test split; every run\'s exact commands are in the CSV and '
        'its result.json.', ''
    ]
    for s in collected.settings:
        if s.results:
            lines += [
                f'- `{s.key}`:', '', '  ```bash',
                f'  {s.results[0]["command"]}', '  ```'
            ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines).rstrip() + '\n')


# ------------------------------------------------------------------ plots
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)  # the Agg backend, without pyplot's global state
    return fig


def _bars(path: str, experiment: Experiment, collected: Collected,
          plot: Dict[str, Any], synthetic: bool) -> bool:
    rows = [s for s in collected.settings if s.results]
    if not rows:
        return False
    fig = _figure(8, 1.2 + 0.42 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    pos = list(range(len(rows)))[::-1]
    ours = [mean_std(s.values('test_overall_acc')) for s in rows]
    ax.barh([p + 0.2 for p in pos], [m for m, _ in ours],
            height=0.4,
            xerr=[0 if sd is None else sd for _, sd in ours],
            label='ours (mean ± std)',
            color='tab:blue',
            capsize=3)
    ax.barh([p - 0.2 for p in pos],
            [math.nan if s.paper is None else s.paper for s in rows],
            height=0.4,
            label='paper',
            color='tab:gray')
    ax.set_yticks(pos)
    ax.set_yticklabels([s.label for s in rows], fontsize=8)
    ax.set_xlabel('test overall accuracy (%)')
    ax.set_xlim(0, 100)
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(
        plot.get('title') or _title(experiment, synthetic), fontsize=10)
    fig.savefig(path, bbox_inches='tight')
    return True


def _title(experiment: Experiment, synthetic: bool) -> str:
    return experiment.title + ('\n(ours: SYNTHETIC data)' if synthetic else '')


def _curve(result: Dict[str, Any], kind: str) -> List[Optional[float]]:
    if kind == 'train_loss':
        return list(result['train_loss_curve'])
    acc = result['val_acc_curve']
    if kind == 'val_acc':
        return list(acc)
    return [None if a is None else 100.0 - a for a in acc]


def _mean_curve(
    curves: Sequence[Sequence[Optional[float]]]
) -> Tuple[List[int], List[float], List[float]]:
    epochs, means, stds = [], [], []
    for index in range(max(len(c) for c in curves)):
        vals = [
            c[index] for c in curves if index < len(c) and c[index] is not None
        ]
        if vals:
            mean, std = mean_std(vals)
            epochs.append(index + 1)
            means.append(mean)
            stds.append(std or 0.0)
    return epochs, means, stds


def _curves(path: str, experiment: Experiment, collected: Collected,
            plot: Dict[str, Any], synthetic: bool) -> bool:
    panels: Dict[Tuple, List[Setting]] = {}
    kind = plot['curve']
    for s in collected.settings:
        if s.role == 'student' and any(_curve(r, kind) for r in s.results):
            key = tuple(s.spec.tags.get(t) for t in plot['panel'])
            panels.setdefault(key, []).append(s)
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = _figure(5 * cols, 3.6 * rows + 0.6)
    ylabel = dict(
        val_error='validation error (%)',
        val_acc='validation accuracy (%)',
        train_loss='mean training loss')[kind]
    for index, (key, members) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, index + 1)
        lines = list(members)
        if plot.get('teacher') and kind != 'train_loss':
            for tname in dict.fromkeys(m.spec.teacher for m in members):
                teacher = collected.setting(f'teacher:{tname}')
                if teacher.results:
                    lines.insert(0, teacher)
        for s in lines:
            curves = [_curve(r, kind) for r in s.results]
            curves = [c for c in curves if c]  # imported runs have none
            if not curves:
                continue
            epochs, means, stds = _mean_curve(curves)
            name = s.label if s.role == 'teacher' or 'series' not in plot \
                else str(s.spec.tags.get(plot['series'], s.label))
            style = '--' if s.role == 'teacher' else '-'
            line, = ax.plot(epochs, means, style, marker='.', label=name)
            if len(s.results) > 1:
                ax.fill_between(
                    epochs, [m - d for m, d in zip(means, stds)],
                    [m + d for m, d in zip(means, stds)],
                    color=line.get_color(),
                    alpha=0.15)
        ax.set_title(
            ' / '.join(str(k) for k in key) or experiment.name, fontsize=9)
        ax.set_xlabel('epoch')
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        plot.get('title') or _title(experiment, synthetic), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return True


def _xy(path: str, experiment: Experiment, collected: Collected,
        plot: Dict[str, Any], synthetic: bool) -> bool:
    series: Dict[str, List[Tuple[float, Setting]]] = {}
    for s in collected.settings:
        if s.role == 'student' and s.results:
            name = str(s.spec.tags.get(plot.get('series'), experiment.name))
            series.setdefault(name, []).append(
                (float(s.spec.tags[plot['x']]), s))
    if not series:
        return False
    fig = _figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    metric = plot['metric']
    for name, points in series.items():
        points.sort(key=lambda p: p[0])
        stats = [mean_std(s.values(metric)) for _, s in points]
        ax.errorbar([x for x, _ in points], [m for m, _ in stats],
                    yerr=[sd or 0.0 for _, sd in stats],
                    marker='o',
                    capsize=3,
                    label=name)
        paper = [(x, s.paper) for x, s in points if s.paper is not None]
        if paper:
            ax.plot([x for x, _ in paper], [v for _, v in paper],
                    'x--',
                    label=f'{name} (paper)')
    ax.set_xlabel(plot['x'])
    ax.set_ylabel(metric.replace('_', ' ') + ' (%)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        plot.get('title') or _title(experiment, synthetic), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return True


PLOTTERS = dict(bars=_bars, curves=_curves, xy=_xy)


# ------------------------------------------------------------------- main
def make_report(experiment: Experiment,
                scale: Scale,
                work_root: str,
                out_dir: str,
                command: str,
                data: Optional[DataInfo] = None,
                seeds: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Write ``<experiment>.csv``, ``<experiment>.md``, the PNG plots and
    the run records (``runs/<experiment>/``).

    Args:
        experiment (Experiment): The definition.
        scale (Scale): The scale.
        work_root (str): ``<work_dir>/<scale>``.
        out_dir (str): Where the report goes.
        command (str): The command that produced it (quoted in the report).
        data (DataInfo, optional): The data the runs used.
        seeds (Sequence[int], optional): Only these student seeds.

    Returns:
        dict: ``csv``, ``markdown``, ``plots`` (paths), ``rows``,
        ``missing`` (settings without results) and ``problems``.
    """
    os.makedirs(out_dir, exist_ok=True)
    records = records_dir(out_dir, experiment)
    collected = collect(experiment, work_root, seeds, records)
    write_records(records, collected)
    synthetic = bool(data and data.synthetic)
    base = osp.join(out_dir, experiment.name)
    rows = write_csv(f'{base}.csv', collected)
    plots = []
    for plot in experiment.plots:
        path = f'{base}_{plot["name"]}.png'
        if PLOTTERS[plot['type']](path, experiment, collected, plot,
                                  synthetic):
            plots.append(path)
    write_markdown(f'{base}.md', experiment, scale, collected, command, data,
                   plots)
    return dict(
        csv=f'{base}.csv',
        markdown=f'{base}.md',
        plots=plots,
        rows=rows,
        problems=collected.problems,
        missing=[s.key for s in collected.settings if not s.results])


__all__ = [
    'collect', 'make_report', 'records_dir', 'write_records', 'mean_std',
    'format_mean_std', 'write_csv', 'write_markdown', 'Setting', 'Collected'
]
