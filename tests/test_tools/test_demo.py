# Copyright (c) mmbinpc contributors. All rights reserved.
"""``tools/demo.py --quick``: the README's main job, end to end at the
smoke scale (about 30 s: teacher, plain and KDR students, packed export)."""
import json
import os.path as osp

from mmbinpc.experiments.runner import load_tool


def _result(work_dir, *parts):
    with open(osp.join(work_dir, 'smoke', *parts, 'result.json')) as f:
        return json.load(f)


def test_quick_demo_end_to_end(tmp_path, capsys):
    demo = load_tool('demo')
    work_dir = str(tmp_path / 'exp')
    rows = demo.main(['--quick', '--work-dir', work_dir, '--jobs', '1'])
    out = capsys.readouterr().out
    assert [r['run']
            for r in rows[:3]] == ['pointnet', 'lsr-ema', 'lsr-ema-kdr']
    # the table's accuracies are the runs' own test results
    files = [
        _result(work_dir, 'teachers', 'pointnet'),
        _result(work_dir, 'table4_methods', 'lsr-ema', 'seed0'),
        _result(work_dir, 'table4_methods', 'lsr-ema-kdr', 'seed0')
    ]
    for row, result in zip(rows, files):
        assert row['overall_acc'] == result['test_overall_acc']
    assert files[2]['config'].endswith('_lsr-ema-kdr_modelnet40.py')
    # the packed engine predicts what the PyTorch KDR student predicts on
    # every test shape, so it scores the same
    packed = rows[3]
    assert packed['agreement'] == 1.0
    assert packed['overall_acc'] == rows[2]['overall_acc']
    assert packed['storage_kb'] < rows[0]['storage_kb'] / 20
    assert osp.isfile(
        osp.join(work_dir, 'demo', 'pointnet_bin_lsr-ema-kdr.packed'))
    gap = rows[2]['overall_acc'] - rows[1]['overall_acc']
    verdict = ('KDR beat plain' if gap > 0 else
               'KDR did NOT beat plain' if gap < 0 else 'KDR tied plain')
    assert f'{verdict} in this run ({gap:+.2f} points on smoke data)' in out
    # a second demo finds the runs done and retrains nothing
    again = demo.main(['--quick', '--work-dir', work_dir, '--jobs', '1'])
    assert [r['overall_acc']
            for r in again[:3]] == [r['overall_acc'] for r in rows[:3]]
    assert _result(work_dir, 'table4_methods', 'lsr-ema-kdr',
                   'seed0')['finished_at'] == files[2]['finished_at']
