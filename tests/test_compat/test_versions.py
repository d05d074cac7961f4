# Copyright (c) mmbinpc contributors. All rights reserved.
import warnings

import pytest

import mmbinpc
from mmbinpc import compat


def test_version_string():
    assert mmbinpc.__version__.count('.') == 2


def test_installed_stack_is_within_tested_ranges():
    assert compat.check_versions(warn=False) == []


def test_out_of_range_version_warns_with_supported_range(monkeypatch):
    monkeypatch.setitem(compat.TESTED_VERSIONS, 'mmengine', ('9.0.0', '9.1.0'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        problems = compat.check_versions()
    assert len(problems) == 1
    assert 'mmengine>=9.0.0,<9.1.0' in problems[0]
    assert any('mmengine>=9.0.0,<9.1.0' in str(w.message) for w in caught)


def test_missing_package_is_reported(monkeypatch):
    monkeypatch.setitem(compat.TESTED_VERSIONS, 'not-a-package-xyz',
                        ('1.0.0', '2.0.0'))
    problems = compat.check_versions(warn=False)
    assert problems == [
        'not-a-package-xyz is not installed; mmbinpc needs '
        'not-a-package-xyz>=1.0.0,<2.0.0.'
    ]


@pytest.mark.parametrize('n,expected', [(1024, 3.2044), (20, 1.8242)])
def test_ema_offset_is_exported(n, expected):
    assert mmbinpc.ema_offset(n) == pytest.approx(expected, abs=1e-4)
