# Copyright (c) mmbinpc contributors. All rights reserved.
"""A small fuzz run of the packed-model and data-set loaders.

tools/analysis/fuzz_loaders.py with its defaults (1000 packed, 200 data
mutants) is the full run; here a few dozen of each, seeded, so a loader
that lets a non-project exception through fails the suite.
"""
import os

from mmbinpc.experiments.runner import load_tool

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_fuzz_run_has_no_failures(tmp_path, capsys):
    tool = load_tool('analysis/fuzz_loaders')
    results = tool.main([
        '--packed', '40', '--data', '30', '--seed', '3', '--work-dir',
        str(tmp_path)
    ])
    for kind, count in (('packed', 40), ('data', 30)):
        outcomes = results[kind]
        assert sum(outcomes.values()) == count
        assert not [k for k in outcomes if k.startswith('FAIL')], outcomes
        # the mutants are not all trivially rejected or accepted
        assert any(k.startswith('rejected') for k in outcomes)
    assert any(k.startswith('ok') for k in results['data'])
    assert '0 failures' in capsys.readouterr().out


def test_fuzz_detects_a_loader_that_leaks_other_exceptions(
        tmp_path, monkeypatch):
    """The harness itself can fail: a loader raising a bare KeyError is
    reported as a failure, not counted as a rejection."""
    tool = load_tool('analysis/fuzz_loaders')
    from mmbinpc.deploy import PackedModel

    def leaky(path, engine='auto'):
        raise KeyError('weight_words')

    monkeypatch.setattr(PackedModel, 'load', staticmethod(leaky))
    outcomes = tool.fuzz('packed', 5, 0, str(tmp_path), log=lambda m: None)
    assert sum(v for k, v in outcomes.items() if k.startswith('FAIL')) == 5
