# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/demo.py --quick: the main job end to end on the smoke scale.

Real training (mmengine Runner through the experiment runner), real export
and the packed engine; tiny data, so accuracies are meaningless and are only
compared with what the runs recorded.
"""
import json
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools'))
import demo  # noqa: E402


@pytest.fixture(autouse=True)
def _single_thread():
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_demo_table_matches_the_runs(tmp_path, capsys):
    work = str(tmp_path / 'work')
    rows = demo.main(['--quick', '--work-dir', work, '--jobs', '1'])
    out = capsys.readouterr().out
    assert [r['model'] for r in rows] == [
        'PointNet FP32 (teacher)', 'PointNet binary LSR+EMA, plain',
        'PointNet binary LSR+EMA, KDR', 'PointNet binary KDR, packed engine'
    ]
    runs = {
        'teacher': osp.join(work, 'smoke', 'teachers', 'pointnet'),
        'lsr-ema': osp.join(work, 'smoke', 'table4_methods', 'lsr-ema',
                            'seed0'),
        'lsr-ema-kdr': osp.join(work, 'smoke', 'table4_methods',
                                'lsr-ema-kdr', 'seed0'),
    }
    for row, run in zip(rows, runs.values()):
        with open(osp.join(run, 'result.json')) as f:
            result = json.load(f)
        # the table shows each run's recorded test metrics, not new ones
        assert row['overall_acc'] == result['test_overall_acc']
        assert row['mean_class_acc'] == result['test_mean_class_acc']
    packed = rows[-1]
    # the packed engine predicts what the PyTorch KDR student predicts
    assert packed['agreement'] == 1.0
    assert packed['overall_acc'] == rows[2]['overall_acc']
    assert 1 < rows[0]['storage_kb'] / rows[2]['storage_kb']
    assert osp.isfile(
        osp.join(work, 'demo', 'pointnet_bin_lsr-ema-kdr.packed'))
    gap = rows[2]['overall_acc'] - rows[1]['overall_acc']
    verdict = ('KDR beat plain' if gap > 0 else 'KDR did NOT beat plain'
               if gap < 0 else 'KDR tied plain')
    assert verdict in out
    # a second demo finds the runs done and retrains nothing
    again = demo.main(['--quick', '--work-dir', work, '--jobs', '1'])
    assert '[skip]  lsr-ema/seed0' in capsys.readouterr().out
    assert [r['overall_acc'] for r in again] == [r['overall_acc']
                                                 for r in rows]
