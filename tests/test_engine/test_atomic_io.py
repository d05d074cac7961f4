# Copyright (c) mmbinpc contributors. All rights reserved.
"""mmbinpc.engine.atomic_io: temp file + fsync + rename, and the mmengine
file backend that uses it."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from mmbinpc.engine.atomic_io import (AtomicLocalBackend, atomic_torch_save,
                                      atomic_write_bytes, atomic_write_text,
                                      remove_stale_temp_files, temp_path)


def test_writes_replace_whole_files(tmp_path):
    path = tmp_path / 'sub' / 'a.bin'
    atomic_write_bytes(b'first', path)
    assert path.read_bytes() == b'first'
    atomic_write_bytes(b'second, longer', path)
    assert path.read_bytes() == b'second, longer'
    atomic_write_text('naïve', tmp_path / 't.txt')
    assert (tmp_path / 't.txt').read_text(encoding='utf-8') == 'naïve'
    assert sorted(os.listdir(tmp_path)) == ['sub', 't.txt']
    assert os.listdir(tmp_path / 'sub') == ['a.bin']


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / 'w.pth'
    atomic_torch_save({'w': torch.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):  # a lambda cannot be pickled
        atomic_torch_save({'w': torch.zeros(3), 'f': lambda: 0}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ['w.pth']
    assert torch.equal(torch.load(path)['w'], torch.ones(3))


def test_temp_names_are_hidden_and_not_checkpoints(tmp_path):
    name = os.path.basename(temp_path(tmp_path / 'best_acc_epoch_3.pth'))
    assert name.startswith('.best_acc_epoch_3.pth.')
    assert name.endswith('.part') and str(os.getpid()) in name


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, '-c', 'import os; '
         'print(os.getpid())'],
        capture_output=True,
        text=True,
        check=True).stdout.strip()
    stale = tmp_path / f'.epoch_2.pth.{dead}.0123abcd.part'
    mine = tmp_path / f'.epoch_3.pth.{os.getpid()}.0123abcd.part'
    other = tmp_path / '.epoch_2.pth.notours'
    for p in (stale, mine, other):
        p.write_bytes(b'x')
    removed = remove_stale_temp_files(tmp_path)
    assert removed == [str(stale)]
    assert mine.exists() and other.exists() and not stale.exists()
    assert remove_stale_temp_files(tmp_path / 'missing') == []


def test_mmengine_saves_through_the_registered_backend(tmp_path):
    args = dict(backend='local_atomic')
    backend = get_file_backend(str(tmp_path), backend_args=args)
    assert isinstance(backend, AtomicLocalBackend)
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'state_dict': {
        'w': torch.arange(4.)
    }},
                    path,
                    backend_args=args)
    assert torch.equal(torch.load(path)['state_dict']['w'], torch.arange(4.))
    backend.put_text('epoch_1.pth', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth', 'last_checkpoint']
