# Copyright (c) mmbinpc contributors. All rights reserved.
"""Every "mean ± std" figure in README.md, docs/*.md and the config
folders' READMEs has a committed record behind it.

A figure written ``a ± b`` is backed when a committed results file
reproduces it to the decimals quoted:

* a report CSV under ``docs/results/`` (the experiment runner's), where one
  run's test accuracies over its seeds (overall or mean class) have mean
  ``a`` and sample standard deviation ``b``; or
* a JSON record under ``docs/results/`` with sibling keys ``<x>mean`` and
  ``<x>std`` equal to ``a`` and ``b`` (e.g. ``tools/analysis/
  pooling_match.py``'s per-site statistics).
"""
import csv
import glob
import json
import os.path as osp
import re
import statistics
from typing import Iterator, List, Tuple

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAGES = [osp.join(REPO, 'README.md')] + sorted(
    glob.glob(osp.join(REPO, 'docs', '*.md'))) + sorted(
        glob.glob(osp.join(REPO, 'configs', '*', 'README.md')))
FIGURE = re.compile(r'(?<![\d.])(\d+\.\d+) ± (\d+\.\d+)(?![\d.])')
ACCURACIES = ('test_overall_acc', 'test_mean_class_acc')

Pair = Tuple[float, float]


def csv_pairs(path: str) -> List[Pair]:
    """(mean, std) of every run's accuracies over its seeds in a report."""
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
    values = {}
    for row in rows:
        for column in ACCURACIES:
            text = row.get(column) or ''
            if 'run' in row and text:
                values.setdefault((row['run'], column), []).append(float(text))
    return [(statistics.mean(v), statistics.stdev(v)) for v in values.values()
            if len(v) >= 2]


def json_pairs(path: str) -> List[Pair]:
    """(mean, std) of every dict with sibling ``*mean`` / ``*std`` keys."""
    with open(path, encoding='utf-8') as f:
        record = json.load(f)
    pairs = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                other = key[:-4] + 'std' if key.endswith('mean') else None
                if other in node and isinstance(value, (int, float)) \
                        and isinstance(node[other], (int, float)):
                    pairs.append((float(value), float(node[other])))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(record)
    return pairs


def evidence() -> List[Pair]:
    results = osp.join(REPO, 'docs', 'results', '**')
    pairs = []
    for path in glob.glob(osp.join(results, '*.csv'), recursive=True):
        pairs += csv_pairs(path)
    for path in glob.glob(osp.join(results, '*.json'), recursive=True):
        pairs += json_pairs(path)
    return pairs


def _matches(quoted: str, value: float) -> bool:
    """Whether ``value`` rounds to ``quoted`` at its decimals."""
    decimals = len(quoted.split('.')[1])
    return abs(value - float(quoted)) <= 0.5 * 10**-decimals + 1e-9


def figures(text: str) -> Iterator[Tuple[str, str]]:
    for match in FIGURE.finditer(text):
        yield match.group(1), match.group(2)


def unbacked(text: str, pairs: List[Pair]) -> List[str]:
    """The ``a ± b`` figures of ``text`` that no pair reproduces."""
    return [
        f'{a} ± {b}' for a, b in figures(text)
        if not any(_matches(a, m) and _matches(b, s) for m, s in pairs)
    ]


EVIDENCE = evidence()


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, REPO))
def test_every_mean_std_figure_has_a_record(page):
    with open(page, encoding='utf-8') as f:
        missing = unbacked(f.read(), EVIDENCE)
    assert not missing, (
        f'{osp.relpath(page, REPO)} quotes {missing}, which no report CSV '
        'or JSON record under docs/results reproduces: commit the record '
        '(tools/experiments/run.py --report-only, or the tool\'s --json) or '
        'correct the figure')


def test_the_checker_reproduces_and_rejects(tmp_path):
    report = tmp_path / 'report.csv'
    report.write_text('run,seed,test_overall_acc,test_mean_class_acc\n'
                      'a,0,90.0,80.0\na,1,92.0,80.0\na,2,94.0,83.0\n'
                      'b,0,50.0,50.0\n')
    record = tmp_path / 'record.json'
    record.write_text(json.dumps({'site': {'x_mean': 0.976, 'x_std': 0.0917}}))
    pairs = csv_pairs(str(report)) + json_pairs(str(record))
    text = ('a: 92.0 ± 2.0 and 92 ± 2 (no decimals: not a figure), '
            'mAcc 81.0 ± 1.7, site 0.98 ± 0.09; wrong: 92.0 ± 2.1, '
            '91.9 ± 2.0, 0.98 ± 0.2, 50.0 ± 0.0 (one seed has no spread)')
    assert list(figures(text))[:2] == [('92.0', '2.0'), ('81.0', '1.7')]
    assert unbacked(text, pairs) == [
        '92.0 ± 2.1', '91.9 ± 2.0', '0.98 ± 0.2', '50.0 ± 0.0'
    ]


def test_the_checker_reads_the_committed_reports():
    assert len(EVIDENCE) >= 30
    assert sum(
        len(list(figures(open(p, encoding='utf-8').read())))
        for p in PAGES) >= 50


def test_deployment_speed_table_is_the_recorded_one():
    """docs/deployment.md's speed table is the one benchmark_models.py made
    from the committed JSON records, and each row's speed-up is its record's
    FP32 time over its packed time."""
    out = osp.join(REPO, 'docs', 'results', 'deploy')
    with open(osp.join(out, 'packed_runtime.md'), encoding='utf-8') as f:
        recorded = [
            line for line in f.read().splitlines()
            if line.startswith('| ') and '×' in line
        ]
    with open(osp.join(REPO, 'docs', 'deployment.md'), encoding='utf-8') as f:
        page = f.read().splitlines()
    assert recorded and all(line in page for line in recorded)
    for path in sorted(glob.glob(osp.join(out, '*_t[0-9].json'))):
        with open(path) as f:
            r = json.load(f)
        assert r['speedup_b1'] == pytest.approx(r['fp32_ms_b1'] /
                                                r['packed_ms_b1'])
        row = f'| {r["fp32_ms_b1"]:.1f} | {r["packed_ms_b1"]:.2f} | ' \
            f'**{r["speedup_b1"]:.1f}×** |'
        assert any(row in line for line in recorded), path
