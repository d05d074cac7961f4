# Copyright (c) mmbinpc contributors. All rights reserved.
"""Rebuild the run records of a committed report from its CSV.

Reports keep a copy of each run's ``result.json`` (their *run records*,
``<report dir>/runs/<experiment>/``) so that ``run.py --report-only`` on a
fresh clone keeps every run. Reports written before that have only their
CSV and markdown; when their work dirs are gone, regenerating the report
would drop their runs. This tool writes a record for every CSV row that has
none, from the row itself and the commit the report's ``- Code:`` line names
for it, marked ``imported_from``; the report then names those runs and
leaves them out of its curve plots (the CSV holds no per-epoch values).
Nothing is trained, and an existing record is never replaced::

    python tools/experiments/import_report_csv.py \\
        configs/experiments/table6_backbones.py --scale cpu
"""
import argparse
import csv
import json
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

from mmbinpc.analysis import code_version
from mmbinpc.experiments import ExperimentError, load_experiment
from mmbinpc.experiments.report import records_dir
from mmbinpc.experiments.runner import SCHEMA, write_json_atomic

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

FLOATS = ('test_overall_acc', 'test_mean_class_acc', 'best_val_acc',
          'final_val_acc', 'wall_minutes')
INTS = ('seed', 'best_val_epoch', 'epochs')
JSONS = ('tags', 'cfg_options')
CODE_PART = re.compile(
    r'(?P<commit>[0-9a-f]{7,40}|not recorded)(?P<dirty> with uncommitted '
    r'changes)? \(\d+ runs?: (?P<runs>[^)]*)\)')
RUN_SEED = re.compile(r'`(?P<key>[^`]+)` seed (?P<seed>\d+)')


def code_by_run(markdown: str) -> Dict[Tuple[str, int], Dict]:
    """``(setting key, seed) -> {'commit', 'dirty'}`` from a report's
    ``- Code:`` line (commits as the report abbreviates them)."""
    line = next(
        (ln for ln in markdown.splitlines() if ln.startswith('- Code: ')), '')
    found = {}
    for part in CODE_PART.finditer(line):
        commit = part['commit']
        code = None if commit == 'not recorded' else dict(
            commit=commit, dirty=bool(part['dirty']))
        for run in RUN_SEED.finditer(part['runs']):
            found[(run['key'], int(run['seed']))] = code
    return found


def record_from_row(row: Dict[str, str], code: Optional[Dict],
                    source: str) -> Dict:
    """A run record from one report CSV row."""
    rec: Dict = dict(schema=SCHEMA)
    for key in ('role', 'experiment', 'run', 'scale', 'config', 'command',
                'work_dir', 'finished_at', 'resumed_from'):
        rec[key] = row[key] or None
    for key in FLOATS:
        rec[key] = float(row[key])
    for key in INTS:
        rec[key] = int(row[key]) if row[key] else None
    for key in JSONS:
        rec[key] = json.loads(row[key] or '{}')
    paper = {
        k: row[f'paper_{k}']
        for k in ('table', 'backbone', 'method', 'setting')
        if row.get(f'paper_{k}')
    }
    rec.update(
        label=row['label'],
        paper=paper or None,
        options=[],
        train_argv=[],
        val_acc_curve=[],
        train_loss_curve=[],
        checkpoint=None,
        code=code,
        imported_from=source)
    return rec


def import_csv(definition: str, out_dir: str) -> List[str]:
    """Write the missing run records of ``<out_dir>/<experiment>.csv``.

    Returns:
        list[str]: The records written.

    Raises:
        ExperimentError: The report is missing or a row is malformed.
    """
    experiment = load_experiment(definition)
    base = osp.join(out_dir, experiment.name)
    for ext in ('csv', 'md'):
        if not osp.isfile(f'{base}.{ext}'):
            raise ExperimentError(
                f'{base}.{ext}: no such report; give the --out (or --scale) '
                'that the report was written to')
    with open(f'{base}.md', encoding='utf-8') as f:
        codes = code_by_run(f.read())
    with open(f'{base}.csv', newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    records = records_dir(out_dir, experiment)
    head = code_version(REPO)['commit']
    source = (f'{osp.relpath(base, REPO)}.csv at commit '
              f'{head[:7] if head else "unknown"}')
    written = []
    for number, row in enumerate(rows, start=2):
        try:
            key = (f'teacher:{row["run"]}'
                   if row['role'] == 'teacher' else row['run'])
            seed = int(row['seed'])
            rec = record_from_row(row, codes.get((key, seed)), source)
        except (KeyError, ValueError) as err:
            raise ExperimentError(
                f'{base}.csv line {number}: malformed report row ({err}); '
                'regenerate the report or fix the row') from err
        if row['role'] == 'teacher':
            path = osp.join(records, 'teachers', f'{row["run"]}.json')
        else:
            path = osp.join(records, row['run'], f'seed{seed}.json')
        if osp.exists(path):
            continue
        os.makedirs(osp.dirname(path), exist_ok=True)
        write_json_atomic(path, rec)
        written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> List[str]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('definition', help='experiment definition')
    parser.add_argument(
        '--scale', default='cpu', help='report dir docs/results/<scale>')
    parser.add_argument('--out', help='report dir (overrides --scale)')
    args = parser.parse_args(argv)
    out = args.out or osp.join('docs', 'results', args.scale)
    try:
        written = import_csv(args.definition, out)
    except ExperimentError as err:
        raise SystemExit(f'error: {err}')
    for path in written:
        print(f'wrote {path}')
    print(f'{len(written)} record(s) written')
    return written


if __name__ == '__main__':
    main()
