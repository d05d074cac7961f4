# Copyright (c) mmbinpc contributors. All rights reserved.
"""``keep_freed_memory``: glibc keeps freed activations for the next step.

The effect is checked where it matters: a child process that allocates and
frees a 64 MiB tensor ten times page-faults on every allocation by default
and only on the first with the thresholds raised.
"""
import platform
import subprocess
import sys

import pytest

from mmbinpc.apis import keep_freed_memory
from mmbinpc.apis.allocator import ENV

GLIBC = platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc'

CHILD = r'''
import resource, sys
import torch
from mmbinpc.apis import keep_freed_memory
print(keep_freed_memory(sys.argv[1] == 'on'), file=sys.stderr)
x = torch.ones(16, 1024, 1024)
y = x * 2  # the heap grows once
del y
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    y = x * 2
    del y
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
'''


def _faults(setting: str) -> int:
    out = subprocess.run([sys.executable, '-c', CHILD, setting],
                         capture_output=True,
                         text=True,
                         check=True,
                         env={'PATH': '/usr/bin:/bin'})
    return int(out.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason='glibc mallopt only')
def test_freed_activations_are_reused_without_page_faults():
    pages = 64 * 2**20 // 4096  # one 64 MiB tensor in 4 KiB pages
    off, on = _faults('off'), _faults('on')
    msg = f'page faults off: {off}, on: {on}; one tensor: {pages} pages'
    assert off > 5 * pages, msg  # glibc hands each one back to the kernel
    assert on < pages // 2, msg  # kept in the heap: no new pages


def test_switches_and_their_reasons(monkeypatch):
    monkeypatch.setenv(ENV, '0')
    assert keep_freed_memory().startswith(f'off ({ENV}=0)')
    monkeypatch.setenv(ENV, 'maybe')
    with pytest.raises(ValueError, match=ENV):
        keep_freed_memory()
    monkeypatch.delenv(ENV)
    monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.trim_threshold=1')
    assert 'GLIBC_TUNABLES' in keep_freed_memory()
    monkeypatch.delenv('GLIBC_TUNABLES')
    if GLIBC:
        assert keep_freed_memory().startswith('on (')
