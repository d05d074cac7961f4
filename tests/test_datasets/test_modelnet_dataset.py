# Copyright (c) mmbinpc contributors. All rights reserved.
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet3d.structures import DepthPoints

from mmbinpc.datasets import ModelNet40Dataset
from mmbinpc.modelnet_io import farthest_point_sample

CLASSES = ['flower_pot', 'chair']


def write_txt_dataset(root,
                      n_points=12,
                      subset='modelnet40',
                      train=(2, 1),
                      test=(1, 1),
                      rng=None):
    """Text-format dataset: ids like flower_pot_0001, rows x,y,z,nx,ny,nz."""
    rng = rng or np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    splits = {'train': [], 'test': []}
    for c, cls in enumerate(CLASSES):
        os.makedirs(osp.join(root, cls), exist_ok=True)
        k = 0
        for split, counts in (('train', train), ('test', test)):
            for _ in range(counts[c]):
                k += 1
                sid = f'{cls}_{k:04d}'
                pts = rng.normal(size=(n_points, 6)).astype(np.float32)
                pts[:, 0] = np.arange(n_points) + 100 * c  # recognisable
                np.savetxt(
                    osp.join(root, cls, sid + '.txt'),
                    pts,
                    fmt='%.6f',
                    delimiter=',')
                splits[split].append(sid)
    with open(osp.join(root, f'{subset}_shape_names.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    for split, ids in splits.items():
        with open(osp.join(root, f'{subset}_{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    return splits


def write_h5_dataset(root, with_normal=True, n_points=16):
    import h5py
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(osp.join(root, 'shape_names.txt'), 'w') as f:
        f.write('\n'.join(CLASSES) + '\n')
    for split, sizes in (('train', (3, 2)), ('test', (2, ))):
        names = []
        for i, b in enumerate(sizes):
            name = f'ply_data_{split}{i}.h5'
            with h5py.File(osp.join(root, name), 'w') as f:
                f['data'] = rng.normal(size=(b, n_points, 3)).astype('f4')
                f['label'] = (np.arange(b) % 2).reshape(b, 1).astype('u1')
                if with_normal:
                    f['normal'] = rng.normal(size=(b, n_points,
                                                   3)).astype('f4')
            names.append(f'data/modelnet40_ply_hdf5_2048/{name}')
        with open(osp.join(root, f'{split}_files.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')


def test_text_format_loads_with_labels_and_points(tmp_path):
    root = str(tmp_path / 'mn')
    splits = write_txt_dataset(root)
    ds = ModelNet40Dataset(
        root, split='train', num_points=8, use_normals=True, cache=False)
    assert ds.resolved_format == 'normal_resampled'
    assert ds.metainfo['classes'] == tuple(CLASSES)
    assert len(ds) == 3
    info = ds.get_data_info(2)
    assert info['shape_id'] == splits['train'][2] == 'chair_0001'
    assert info['gt_label'] == 1
    assert isinstance(info['points'], DepthPoints)
    pts = info['points'].tensor.numpy()
    assert pts.shape == (8, 6)
    np.testing.assert_allclose(pts[:, 0], np.arange(8) + 100)  # first 8 rows
    xyz_only = ModelNet40Dataset(root, split='test', num_points=8, cache=False)
    assert xyz_only.get_data_info(0)['points'].tensor.shape == (8, 3)


def test_pipeline_output_packs_label(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    ds = ModelNet40Dataset(
        root,
        num_points=8,
        cache=False,
        pipeline=[
            dict(type='NormalizePointsToUnitSphere'),
            dict(type='PackClsInputs')
        ])
    out = ds[2]
    assert out['inputs']['points'].shape == (8, 3)
    assert out['inputs']['points'].dtype == torch.float32
    assert out['data_samples'].gt_label.dim() == 0
    assert out['data_samples'].gt_label.item() == 1
    assert out['data_samples'].metainfo['shape_id'] == 'chair_0001'


def test_modelnet10_lists(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root, subset='modelnet10')
    ds = ModelNet40Dataset(
        root, subset='modelnet10', split='test', num_points=4, cache=False)
    assert len(ds) == 2


def test_sampling_methods(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root, n_points=40)
    fps = ModelNet40Dataset(
        root, num_points=10, sample_method='fps', cache=False)
    pts = fps.get_data_info(0)['points'].tensor.numpy()
    assert pts.shape == (10, 3) and len(np.unique(pts[:, 0])) == 10
    rnd = ModelNet40Dataset(
        root, num_points=10, sample_method='random', cache=False)
    a = rnd.get_data_info(0)['points'].tensor.numpy()[:, 0]
    b = rnd.get_data_info(0)['points'].tensor.numpy()[:, 0]
    assert len(np.unique(a)) == 10 and not np.array_equal(a, b)
    assert set(a) <= set(np.arange(40, dtype=np.float32))


def test_farthest_point_sample_spreads_points():
    xyz = np.array([[0, 0, 0], [0.1, 0, 0], [1, 0, 0], [0, 1, 0]], 'f4')
    assert farthest_point_sample(xyz, 3).tolist() == [0, 2, 3]


def test_cache_is_written_reused_and_invalidated(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    cache_dir = str(tmp_path / 'cache')
    ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)
    files = os.listdir(cache_dir)
    assert len(files) == 1 and files[0].endswith('.npz')
    # A second build reads the cache, not the text: corrupt a shape file
    # without changing its size or mtime -> still loads the cached values.
    path = osp.join(root, 'chair', 'chair_0001.txt')
    st = os.stat(path)
    text = open(path).read()
    with open(path, 'w') as f:
        f.write(text.replace('1', 'x', 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    ds = ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)
    assert ds.get_data_info(2)['points'].tensor[0, 0].item() == 100.0
    # Touching the file invalidates the cache -> the bad row is reported.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match='chair_0001.txt:1: non-numeric'):
        ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)


def test_hdf5_format(tmp_path):
    root = str(tmp_path / 'h5')
    write_h5_dataset(root)
    ds = ModelNet40Dataset(
        root, split='train', num_points=16, use_normals=True, cache=False)
    assert ds.resolved_format == 'hdf5'
    assert len(ds) == 5
    assert ds.metainfo['classes'] == tuple(CLASSES)
    info = ds.get_data_info(3)
    assert info['points'].tensor.shape == (16, 6)
    assert info['gt_label'] == 0 and info['shape_id'] == 'ply_data_train1.h5:0'
    test = ModelNet40Dataset(
        root, split='test', num_points=8, cache_dir=str(tmp_path / 'c'))
    assert len(test) == 2 and test.get_data_info(1)['gt_label'] == 1


# ---------------------------------------------------------------- bad input
def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match='create_synthetic_modelnet'):
        ModelNet40Dataset(str(tmp_path / 'nothing'))


def test_unrecognised_root(tmp_path):
    with pytest.raises(FileNotFoundError, match='neither'):
        ModelNet40Dataset(str(tmp_path))


def test_missing_list_file(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    os.remove(osp.join(root, 'modelnet40_test.txt'))
    with pytest.raises(FileNotFoundError, match='modelnet40_test.txt'):
        ModelNet40Dataset(root, split='test', cache=False)


def test_listed_id_without_file(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    os.remove(osp.join(root, 'chair', 'chair_0001.txt'))
    with pytest.raises(
            FileNotFoundError, match=r'modelnet40_train.txt:3: .*chair_0001'):
        ModelNet40Dataset(root, num_points=8, cache=False)


def test_id_with_unknown_class(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    with open(osp.join(root, 'modelnet40_train.txt'), 'a') as f:
        f.write('sofa_0001\n')
    with pytest.raises(ValueError, match=r'modelnet40_train.txt:4: .*sofa'):
        ModelNet40Dataset(root, num_points=8, cache=False)


@pytest.mark.parametrize('bad_line, message', [
    ('1,2,3,4,5', r':3: expected 6 comma-separated values .* found 5'),
    ('1,2,3,4,5,6,7', r':3: expected 6 .* found 7'),
    ('1,2,abc,4,5,6', r':3: non-numeric'),
    ('1 2 3 4 5 6', r':3: expected 6 .* found 1'),
    ('1,2,nan,4,5,6', r':3: non-finite'),
])
def test_bad_rows_name_file_and_line(tmp_path, bad_line, message):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    path = osp.join(root, 'flower_pot', 'flower_pot_0002.txt')
    lines = open(path).read().splitlines()
    lines[2] = bad_line
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match='flower_pot_0002.txt' + message):
        ModelNet40Dataset(root, num_points=8, cache=False)


def test_too_few_points(tmp_path):
    root = str(tmp_path / 'mn')
    write_txt_dataset(root, n_points=5)
    with pytest.raises(
            ValueError, match='has 5 points, fewer than '
            'num_points=8'):
        ModelNet40Dataset(root, num_points=8, cache=False)


def test_hdf5_errors(tmp_path):
    root = str(tmp_path / 'h5')
    write_h5_dataset(root, with_normal=False)
    with pytest.raises(KeyError, match='no "normal" dataset'):
        ModelNet40Dataset(root, num_points=8, use_normals=True, cache=False)
    os.remove(osp.join(root, 'ply_data_test0.h5'))
    with pytest.raises(
            FileNotFoundError, match=r'test_files.txt:1: .*ply_data_test0.h5'):
        ModelNet40Dataset(root, split='test', num_points=8, cache=False)


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match='split'):
        ModelNet40Dataset(str(tmp_path), split='val')
    with pytest.raises(ValueError, match='sample_method'):
        ModelNet40Dataset(str(tmp_path), sample_method='grid')


# ---------------------------------------------------------------------------
# The validation split carved from the training files
# ---------------------------------------------------------------------------
def test_val_split_is_disjoint_stratified_and_reproducible(tmp_path):
    write_txt_dataset(str(tmp_path), train=(10, 6), test=(1, 1))
    kwargs = dict(data_root=str(tmp_path), num_points=8, val_fraction=0.3)
    full = ModelNet40Dataset(
        split='train', num_points=8, data_root=str(tmp_path))
    train = ModelNet40Dataset(split='train', **kwargs)
    val = ModelNet40Dataset(split='val', **kwargs)
    test = ModelNet40Dataset(split='test', **kwargs)

    def ids(ds):
        return [ds.get_data_info(i)['shape_id'] for i in range(len(ds))]

    train_ids, val_ids = ids(train), ids(val)
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == sorted(ids(full))
    # round(0.3 * 10) = 3 flower pots and round(0.3 * 6) = 2 chairs
    labels = [val.get_data_info(i)['gt_label'] for i in range(len(val))]
    assert sorted(labels) == [0, 0, 0, 1, 1]
    assert len(test) == 2 and not set(ids(test)) & set(val_ids)
    # same seed -> same choice; another seed -> another one
    again = ModelNet40Dataset(split='val', **kwargs)
    assert ids(again) == val_ids
    other = ModelNet40Dataset(split='val', val_seed=5, **kwargs)
    assert set(ids(other)) != set(val_ids)


def test_val_split_keeps_one_training_shape_per_class(tmp_path):
    from mmbinpc.datasets.modelnet import holdout_indices
    held = holdout_indices([0, 0, 1, 2, 2, 2], 0.9)
    # never all of a class, at least one when the class has two or more
    assert len([i for i in held if i < 2]) == 1
    assert 2 not in held
    assert len([i for i in held if i >= 3]) == 2


def test_val_split_needs_a_fraction(tmp_path):
    write_txt_dataset(str(tmp_path))
    with pytest.raises(ValueError, match='val_fraction > 0'):
        ModelNet40Dataset(data_root=str(tmp_path), split='val', num_points=8)
    with pytest.raises(ValueError, match=r'val_fraction must be in \[0, 1\)'):
        ModelNet40Dataset(
            data_root=str(tmp_path),
            split='train',
            num_points=8,
            val_fraction=1.0)


def test_planted_pickle_cache_is_never_executed(tmp_path):
    """A pickle planted under the cache's name runs no code: the cache is
    an .npz read without pickle, so the foreign file is ignored and
    replaced by a rebuilt one."""
    import pickle

    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    cache_dir = str(tmp_path / 'cache')
    ds = ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)
    (name, ) = os.listdir(cache_dir)
    marker = tmp_path / 'executed'

    class Payload:

        def __reduce__(self):
            return (open, (str(marker), 'w'))

    with open(osp.join(cache_dir, name), 'wb') as f:
        pickle.dump(dict(fingerprint='x', payload=Payload()), f)
    again = ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)
    assert not marker.exists()
    assert np.array_equal(
        again.get_data_info(2)['points'].tensor.numpy(),
        ds.get_data_info(2)['points'].tensor.numpy())
    with np.load(osp.join(cache_dir, name), allow_pickle=False) as data:
        assert sorted(data.files) == ['meta', 'points']


@pytest.mark.parametrize(
    'edit', ['truncate', 'fingerprint', 'labels', 'lengths', 'dtype'])
def test_damaged_cache_is_rebuilt(tmp_path, edit):
    import json

    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    cache_dir = str(tmp_path / 'cache')
    ref = ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)
    (name, ) = os.listdir(cache_dir)
    path = osp.join(cache_dir, name)
    if edit == 'truncate':
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 2])
    else:
        with np.load(path) as npz:
            meta = json.loads(npz['meta'].tobytes())
            points = npz['points']
        if edit == 'fingerprint':
            meta['fingerprint'] = '0' * 40
        elif edit == 'labels':
            meta['labels'][0] = 99
        elif edit == 'lengths':
            meta['lengths'][0] += 1
        else:
            points = points.astype(np.float64)
        np.savez(
            open(path, 'wb'),
            meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            points=points)
    ds = ModelNet40Dataset(root, num_points=8, cache_dir=cache_dir)
    for i in range(len(ref)):
        assert ds.get_data_info(i)['gt_label'] == ref.get_data_info(
            i)['gt_label']
        assert np.array_equal(
            ds.get_data_info(i)['points'].tensor.numpy(),
            ref.get_data_info(i)['points'].tensor.numpy())


def test_duplicate_class_name_is_an_error(tmp_path):
    from mmbinpc.errors import DatasetFormatError
    root = str(tmp_path / 'mn')
    write_txt_dataset(root)
    names = osp.join(root, 'modelnet40_shape_names.txt')
    with open(names, 'a') as f:
        f.write(CLASSES[0] + '\n')
    with pytest.raises(
            DatasetFormatError,
            match=rf'shape_names.txt: class {CLASSES[0]!r} is '
            r'listed twice'):
        ModelNet40Dataset(root, num_points=8, cache=False)


def test_bad_shape_files_name_the_file(tmp_path):
    from mmbinpc.errors import DatasetFormatError
    from mmbinpc.modelnet_io import parse_points_txt, read_lines
    latin = tmp_path / 'latin.txt'
    latin.write_bytes(b'0,0,0\n1,2,3\n4,5,\xe96\n')
    with pytest.raises(
            DatasetFormatError,
            match=r'latin.txt: line 3: byte 0xe9 .* not UTF-8'):
        parse_points_txt(str(latin), columns=3)
    huge = tmp_path / 'huge.txt'
    huge.write_text('0,0,0\n1,1e39,2\n')
    with pytest.raises(
            ValueError, match=r'huge.txt:2: a value beyond the '
            r'float32 range'):
        parse_points_txt(str(huge), columns=3)
    with pytest.raises(DatasetFormatError, match='is a directory'):
        parse_points_txt(str(tmp_path), columns=3)
    with pytest.raises(
            DatasetFormatError, match='class-name list is a '
            'directory'):
        read_lines(str(tmp_path), 'class-name list')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_lines(str(tmp_path / 'nope.txt'), 'class-name list')
