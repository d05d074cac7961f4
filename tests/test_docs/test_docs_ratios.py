# Copyright (c) mmbinpc contributors. All rights reserved.
"""Every measured ratio ("40.1×", "24.7x") in README.md, docs/*.md and the
config folders' READMEs is a ratio in a committed record.

**What counts as a ratio figure.** A number with decimals written directly
before ``×`` or ``x`` (``40.1×``, ``1.16x``), not followed by a letter or
digit; in a range ``a-b×`` with decimals on both ends, both ends. Not
figures: whole numbers (``40×``, ``3x3``, ``64×64``, ``1 × K``: sizes,
config factors and rounded prose; they are audited by hand), and a factor
written with a space (``1.0 × the layer's multiplier``).

**Targets and other people's figures are not ours to back.** A figure is
skipped when the 24 characters before it (same line) contain ``target``,
``≤``, ``≥``, ``<=``, ``>=``, ``at least``, ``at most`` or ``paper``
(``target <= 1.3x``, ``≥ 20×``, "the paper's 1.5×").

**Backed** means reproduced at its quoted decimals (``|value − figure| ≤
half a unit of its last decimal``) by a *ratio* in a committed file under
``docs/results/``:

* a JSON value (any depth) whose key contains ``speedup``, ``ratio``,
  ``compression`` or ``_vs_`` (``tools/deploy/benchmark.py``'s
  ``speedup_b1`` and ``size_ratio``, ``tools/analysis/complexity.py``'s
  ``speedup`` and ``compression``, ``tools/benchmark/point_ops_step.py``'s
  ``speedup``, ``tools/benchmark/train_step.py``'s ``binary_vs_fp32`` and
  ``kdr_vs_binary``);
* a CSV cell in a column so named;
* a table cell ending in ``×`` or ``x`` of a generated markdown table
  (every ``*.md`` there except the hand-written ``README.md`` files), e.g.
  ``deploy/packed_runtime.md`` or ``cpu/point_ops_speedups.md``.

Matching ratios only (not every number in a record) keeps the check able to
fail: a record holds thousands of timings, and one of them is near almost
any one-decimal figure.

**Known unrecorded figures.** :data:`UNRECORDED` lists, page by page, the
figures that are printouts of one run with no committed record (a
terminal transcript quoted on the page). The list must match the pages
exactly: a new unbacked figure fails, and so does an entry whose figure has
gone (or has since been backed).
"""
import csv
import glob
import json
import os.path as osp
import re
from typing import Dict, Iterator, List, Tuple

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAGES = [osp.join(REPO, 'README.md')] + sorted(
    glob.glob(osp.join(REPO, 'docs', '*.md'))) + sorted(
        glob.glob(osp.join(REPO, 'configs', '*', 'README.md')))
RESULTS = osp.join(REPO, 'docs', 'results')

RATIO = re.compile(r'(?<![\w.])(?:(\d+\.\d+)[-–])?(\d+\.\d+)[×x](?![\w×])')
NOT_OURS = re.compile(r'target|≤|≥|<=|>=|at least|at most|paper', re.I)
CONTEXT = 24
RATIO_KEY = re.compile(r'speedup|ratio|compression|_vs_', re.I)
RATIO_CELL = re.compile(r'^\**(\d+(?:\.\d+)?)[×x]\**$')

#: page -> figures quoted there that no record backs, with why
UNRECORDED: Dict[str, Tuple[List[str], str]] = {
    'README.md': (['24.1x'], 'the demo printout (one `make demo` run, '
                  '2026-11-30): the packed file against the FP32 teacher; '
                  'tools/demo.py writes no record'),
}


def ratio_figures(text: str) -> Iterator[Tuple[str, str]]:
    """``(number, as written)`` of each ratio figure of ``text``, targets
    skipped: ``('24.7', '24.7×')``; a range gives both ends."""
    for match in RATIO.finditer(text):
        line_start = text.rfind('\n', 0, match.start()) + 1
        before = text[max(line_start, match.start() - CONTEXT):match.start()]
        if NOT_OURS.search(before):
            continue
        unit = match.group(0)[-1]
        for number in filter(None, match.group(1, 2)):
            yield number, number + unit


def _json_ratios(node, key: str = '') -> Iterator[float]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_ratios(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from _json_ratios(v, key)
    elif isinstance(node, (int, float)) and not isinstance(node, bool) \
            and RATIO_KEY.search(key):
        yield float(node)


def record_ratios(path: str) -> List[float]:
    """The ratios a committed results file holds (see the module doc)."""
    if path.endswith('.json'):
        with open(path, encoding='utf-8') as f:
            return list(_json_ratios(json.load(f)))
    if path.endswith('.csv'):
        with open(path, newline='', encoding='utf-8') as f:
            rows = list(csv.DictReader(f))
        values = []
        for row in rows:
            for column, text in row.items():
                if column and RATIO_KEY.search(column):
                    try:
                        values.append(float(text))
                    except (TypeError, ValueError):
                        pass
        return values
    values = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.startswith('|'):
                for cell in line.strip().strip('|').split('|'):
                    match = RATIO_CELL.match(cell.strip())
                    if match:
                        values.append(float(match.group(1)))
    return values


def evidence() -> List[float]:
    paths = [
        p for ext in ('json', 'csv', 'md') for p in glob.glob(
            osp.join(RESULTS, '**', f'*.{ext}'), recursive=True)
        if osp.basename(p) != 'README.md'
    ]
    return [v for p in sorted(paths) for v in record_ratios(p)]


def _matches(quoted: str, value: float) -> bool:
    decimals = len(quoted.split('.')[1])
    return abs(value - float(quoted)) <= 0.5 * 10**-decimals + 1e-9


def unbacked(text: str, ratios: List[float]) -> List[str]:
    """The ratio figures of ``text`` (as written) that no recorded ratio
    reproduces."""
    return [
        written for number, written in ratio_figures(text)
        if not any(_matches(number, v) for v in ratios)
    ]


EVIDENCE = evidence()


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, REPO))
def test_every_ratio_figure_has_a_record(page):
    name = osp.relpath(page, REPO)
    with open(page, encoding='utf-8') as f:
        text = f.read()
    missing = unbacked(text, EVIDENCE)
    known = UNRECORDED.get(name, ([], ''))[0]
    assert sorted(missing) == sorted(known), (
        f'{name} quotes {sorted(missing)} as ratios, but no recorded ratio '
        f'under docs/results reproduces them (known unrecorded: '
        f'{sorted(known)}): commit the tool\'s record (its --json, or the '
        'report a tool makes from records), or reword the figure')


def test_the_checker_reproduces_and_rejects(tmp_path):
    record = tmp_path / 'r.json'
    record.write_text(
        json.dumps({
            'speedup_b1': 8.3399,
            'size_ratio': 23.79,
            'median_ms': 12.8,  # a timing, not a ratio
            'rows': [{
                'compression': 24.73
            }]
        }))
    report = tmp_path / 'table.md'
    report.write_text('| a | **2.078×** | 1.303x | 5.3 |\n')
    table = tmp_path / 't.csv'
    table.write_text('run,speedup,ms\na,1.0752,2.0\n')
    ratios = sum((record_ratios(str(p)) for p in (record, report, table)), [])
    assert sorted(ratios) == [1.0752, 1.303, 2.078, 8.3399, 23.79, 24.73]
    text = ('PointNet 8.3× (8.34x too), files 23.8-24.7× smaller, FPS 2.1×, '
            'kNN 1.3x, step 1.08×; targets: target <= 1.5x, ≥ 12.0×; sizes '
            '3x3, 64×64, 40× (whole), 1.0 × the rate. Wrong: 12.8× (a '
            'timing, not a ratio), 8.4×, 23.7-24.7×, 5.3× (not a ratio '
            'cell), 1.07x.')
    written = [w for _, w in ratio_figures(text)]
    assert written[:6] == ['8.3×', '8.34x', '23.8×', '24.7×', '2.1×', '1.3x']
    assert '12.0×' not in written and '1.5x' not in written  # targets
    missing = unbacked(text, ratios)
    assert missing == ['12.8×', '8.4×', '23.7×', '5.3×', '1.07x']


def test_the_checker_reads_the_committed_records():
    assert len(EVIDENCE) >= 50
    assert sum(
        len(list(ratio_figures(open(p, encoding='utf-8').read())))
        for p in PAGES) >= 60


def test_point_op_speedups_are_the_generated_ones():
    """docs/results/cpu/point_ops_speedups.md is what
    tools/benchmark/point_ops_report.py makes from the records it names."""
    import importlib.util
    path = osp.join(REPO, 'tools', 'benchmark', 'point_ops_report.py')
    spec = importlib.util.spec_from_file_location('point_ops_report', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    table = osp.join(RESULTS, 'cpu', 'point_ops_speedups.md')
    with open(table, encoding='utf-8') as f:
        page = f.read()
    command = re.search(r'Generated by `([^`]+)`', page).group(1)
    args = tool.parse_args(command.split()[2:])
    assert args.out == 'docs/results/cpu/point_ops_speedups.md'
    records = [osp.join(REPO, p) for p in args.records]
    remade = tool.render(records, command)
    assert remade == page, f'a point_ops record changed: rerun {command}'
