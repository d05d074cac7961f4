# Copyright (c) mmbinpc contributors. All rights reserved.
"""The chunk budget really bounds the memory of the pairwise work."""
import ctypes
import ctypes.util

import pytest
import torch

from mmbinpc.ops import ball_query, chunk_budget, chunking

MIB = 2**20


def _status_mib(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def _map_large_blocks():
    """Make glibc mmap (and unmap on free) every block over 64 KiB.

    Otherwise freed tensors stay resident in the heap and a later run can
    reuse them without raising the resident-set high-water mark.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c'))
        m_mmap_threshold = -3
        ok = libc.mallopt(m_mmap_threshold, 64 * 1024)
    except (OSError, AttributeError, TypeError):
        ok = 0
    if not ok:
        pytest.skip('needs glibc mallopt to measure peak memory')


def _peak_extra_mib(fn):
    """Resident-set high-water mark during ``fn`` minus the RSS before it."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
    except OSError:
        pytest.skip('cannot reset the RSS high-water mark on this system')
    before = _status_mib('VmRSS')
    fn()
    return _status_mib('VmHWM') - before


def test_typical_ball_query_blocks_stay_within_half_a_gigabyte():
    # 16 x 1024 centres over 4096 points in float32 with the default budget.
    per_pair = 3 * 4 + 8
    blocks = list(chunking.iter_blocks(16, 1024, 4096, per_pair))
    largest = max((b.stop - b.start) * (m.stop - m.start) * 4096 * per_pair
                  for b, m in blocks)
    output = 16 * 1024 * 32 * 4
    assert largest <= chunking.CHUNK_BYTES
    assert largest + output < 512 * MIB


def test_small_budget_lowers_the_measured_peak():
    _map_large_blocks()
    xyz = torch.rand(4, 4096, 3)
    center = xyz[:, :256].contiguous()
    run = lambda: ball_query(0., 0.2, 16, xyz, center)  # noqa: E731
    run()
    with chunk_budget(8 * MIB):
        small = _peak_extra_mib(run)
        ref = run()
    with chunk_budget(2**40):  # one block: 4 * 256 * 4096 pairs
        large = _peak_extra_mib(run)
        assert torch.equal(run(), ref)
    # Unchunked, the distance and difference temporaries alone take
    # 2 x 16 MiB; the measurement must see them ...
    assert large > 24, (small, large)
    # ... and the 8 MiB budget (about 0.4 M pairs per block) must cut the
    # peak well below that.
    assert small < 12 and small < large / 3, (small, large)
