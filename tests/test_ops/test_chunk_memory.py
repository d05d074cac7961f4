# Copyright (c) mmbinpc contributors. All rights reserved.
"""The chunk budget really bounds the memory of the pairwise work of the
brute-force backend (the compiled one keeps no pairwise temporaries)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from mmbinpc.ops import chunking

MIB = 2**20

# Runs in a fresh interpreter: a long test session keeps freed heap memory
# resident, which later allocations reuse without raising the RSS peak.
_MEASURE = textwrap.dedent('''
    import json
    import torch
    from mmbinpc.ops import ball_query, chunk_budget
    from mmbinpc.ops.neighbors import set_backend
    set_backend('brute_force')

    def status_mib(field):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024.0

    def peak_extra_mib(fn):
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # reset VmHWM to the current RSS
        before = status_mib('VmRSS')
        fn()
        return status_mib('VmHWM') - before

    torch.manual_seed(0)
    xyz = torch.rand(4, 4096, 3)
    center = xyz[:, :256].contiguous()
    run = lambda: ball_query(0., 0.2, 16, xyz, center)
    ref = run()
    with chunk_budget(8 * 2**20):
        small = peak_extra_mib(run)
        same = torch.equal(run(), ref)
    with chunk_budget(2**40):  # one block: 4 * 256 * 4096 pairs
        large = peak_extra_mib(run)
    print(json.dumps(dict(small=small, large=large, same=same)))
''')


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
    if not os.access('/proc/self/clear_refs', os.W_OK):
        pytest.skip('cannot reset the RSS high-water mark on this system')
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        # glibc: mmap (and unmap on free) every block over 64 KiB.
        MALLOC_MMAP_THRESHOLD_='65536')
    res = subprocess.run([sys.executable, '-c', _MEASURE],
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    small, large = got['small'], got['large']
    assert got['same'], 'chunked and unchunked results differ'
    # Unchunked, the distance and difference temporaries alone take
    # 2 x 16 MiB; the measurement must see them ...
    assert large > 24, (small, large)
    # ... and the 8 MiB budget (about 0.4 M pairs per block) must cut the
    # peak well below that.
    assert small < 12 and small < large / 3, (small, large)
