# Copyright (c) mmbinpc contributors. All rights reserved.
"""The docs point at evidence that exists: every relative link and every
results file they name is in the repository, and every measured-figure
record under docs/results says how, when, where and from which commit it
was made."""
import csv
import glob
import json
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAGES = [osp.join(REPO, 'README.md')] + sorted(
    glob.glob(osp.join(REPO, 'docs', '*.md'))) + sorted(
        glob.glob(osp.join(REPO, 'configs', '*', 'README.md')))
LINK = re.compile(r'\]\(([^)\s]+)\)')
RESULT_PATH = re.compile(r'`((?:docs/)?results/[^`\s]+\.(?:json|csv|md|png))`')


def _targets(page):
    with open(page, encoding='utf-8') as f:
        text = f.read()
    for target in LINK.findall(text):
        if re.match(r'^[a-z]+:', target) or target.startswith('#'):
            continue  # a URL or an anchor on the same page
        yield target.split('#')[0], osp.dirname(page)
    for path in RESULT_PATH.findall(text):
        base = REPO if path.startswith('docs/') else osp.join(REPO, 'docs')
        yield path, base


def _missing(page):
    """Targets of ``page`` with no file (a glob pattern: no match)."""
    missing = []
    for target, base in _targets(page):
        path = osp.normpath(osp.join(base, target))
        found = glob.glob(path) if '*' in target else osp.exists(path)
        if not found:
            missing.append(target)
    return missing


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, REPO))
def test_every_link_and_results_file_exists(page):
    missing = _missing(page)
    assert not missing, f'{osp.relpath(page, REPO)} names {missing}'


def test_the_checker_finds_what_is_missing(tmp_path):
    (tmp_path / 'here.md').write_text('x')
    page = tmp_path / 'page.md'
    page.write_text('[ok](here.md) [gone](gone.md#part) [web](https://x.y) '
                    '[anchor](#top) `results/cpu/none_*.json` '
                    '`docs/results/cpu/table4_methods.csv`')
    assert _missing(str(page)) == ['gone.md', 'results/cpu/none_*.json']


RECORDS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'docs', 'results', '**', '*.json'), recursive=True)
    if f'{osp.sep}runs{osp.sep}' not in p)  # run records: checked below
RUN_RECORDS = sorted(
    glob.glob(
        osp.join(REPO, 'docs', 'results', '*', 'runs', '*', '**', '*.json'),
        recursive=True))


@pytest.mark.parametrize('path', RECORDS, ids=lambda p: osp.relpath(p, REPO))
def test_measured_records_say_how_and_where(path):
    with open(path) as f:
        record = json.load(f)
    for key in ('command', 'code', 'date', 'host'):
        assert key in record, f'{osp.relpath(path, REPO)} lacks {key!r}'
    assert record['command'].startswith('python tools/')
    assert re.fullmatch(r'[0-9a-f]{40}', record['code']['commit'] or '')
    # the tool it names exists
    tool = record['command'].split()[1]
    assert osp.isfile(osp.join(REPO, tool)), tool


def test_the_checker_sees_the_records():
    assert len(RECORDS) >= 10 and len(PAGES) >= 15
    assert len(RUN_RECORDS) >= 100


def test_run_records_are_the_rows_of_their_report():
    """Each run record (an experiment report's copy of a ``result.json``,
    ``docs/results/<scale>/runs/<experiment>/``) is a valid result and is
    a row of its report's CSV with the same accuracies, and every CSV row
    has its record, so ``run.py --report-only`` regenerates the report."""
    from mmbinpc.experiments.runner import read_result
    by_report = {}
    for path in RUN_RECORDS:
        rel = osp.relpath(path, osp.join(REPO, 'docs', 'results'))
        scale, _, experiment = rel.split(osp.sep)[:3]
        rec = read_result(path)
        key = (rec['role'], rec['run'], str(rec['seed']))
        by_report.setdefault((scale, experiment), {})[key] = rec
    for (scale, experiment), records in by_report.items():
        report = osp.join(REPO, 'docs', 'results', scale, f'{experiment}.csv')
        with open(report, newline='', encoding='utf-8') as f:
            rows = {
                (r['role'], r['run'], r['seed']): r
                for r in csv.DictReader(f)
            }
        assert set(rows) == set(records), (report, set(rows) ^ set(records))
        for key, row in rows.items():
            for column in ('test_overall_acc', 'test_mean_class_acc',
                           'best_val_acc'):
                assert float(row[column]) == records[key][column], (report,
                                                                    key)
