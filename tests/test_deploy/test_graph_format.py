# Copyright (c) mmbinpc contributors. All rights reserved.
"""The packed file is data only and is checked completely before it runs."""
import io
import json
import sys
import zipfile

import numpy as np
import pytest

from mmbinpc.deploy.runtime import FORMAT_VERSION, PackedModel, read_graph
from mmbinpc.deploy.runtime.preprocess import (apply_preprocess,
                                               normalize_unit_sphere)
from mmbinpc.errors import PackedFormatError
from .helpers import build_trained, export_and_load, pointnet_cfg


@pytest.fixture(scope='module')
def packed_file(tmp_path_factory):
    model = build_trained(pointnet_cfg('lsr', 'ema', num_classes=4), steps=1)
    tmp = tmp_path_factory.mktemp('fmt')
    summary, _ = export_and_load(
        model, tmp, preprocess=['normalize_unit_sphere'])
    return summary.path, model


def rewrite(src, dst, edit_meta=None, edit_arrays=None):
    """Copy a packed file with its meta / arrays edited."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop('__meta__').tobytes())
    if edit_meta:
        meta = edit_meta(meta) or meta
    if edit_arrays:
        edit_arrays(arrays)
    payload = dict(arrays)
    payload['__meta__'] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(dst, 'wb') as f:
        np.savez(f, **payload)
    return str(dst)


def test_meta_is_a_json_graph(packed_file):
    path, _ = packed_file
    meta, arrays = read_graph(path)
    assert meta['version'] == FORMAT_VERSION == 3
    assert meta['task'] == 'classification' and meta['num_classes'] == 4
    assert meta['input'] == dict(channels=3, num_points=64)
    assert meta['preprocess'] == ['normalize_unit_sphere']
    assert meta['source']['binarizers'] == 'lsr'
    assert [n['op'] for n in meta['nodes']].count('binary_dense') == 6
    assert meta['output'] == meta['nodes'][-1]['name'] == 'head.fc_cls'
    assert all(
        k.split('/')[0] in {n['name']
                            for n in meta['nodes']} for k in arrays)


def edit_node(name, **changes):

    def edit(meta):
        node = next(n for n in meta['nodes'] if n['name'] == name)
        for key, value in changes.items():
            if key in node:
                node[key] = value
            else:
                node['attrs'][key] = value

    return edit


@pytest.mark.parametrize('edit,match', [
    (lambda m: dict(m, version=2), r'version 2 is not the one this mmbinpc '
     r'reads \(3.*re-export'),
    (lambda m: dict(m, format='other'), "not 'mmbinpc-packed'"),
    (lambda m: dict(m, task='detection'), 'meta.task has an invalid'),
    (edit_node('backbone.mlp.1.0', op='os.system'), "unknown op 'os.system'"),
    (edit_node('backbone.mlp.1.0',
               inputs=['later']), r"reads \['later'\], not defined before it"),
    (edit_node('backbone.mlp.1.0',
               in_channels=17), 'binary_dense reads 17 channels'),
    (edit_node('backbone.mlp.1.0',
               output='sum'), "attrs.output has an invalid value 'sum'"),
    (edit_node('backbone.mlp.1.0', gain=2), 'unknown attrs gain'),
    (edit_node('backbone.mlp.2.0',
               output='float'), "declares bits input, its input is float"),
    (lambda m: edit_node('head.fc_cls', out_channels=7)
     (m) or dict(m, num_classes=7),
     r"array 'head.fc_cls/weight' is float32 \(4, 16\), the node needs "
     r'float32 \(7, 16\)'),
    (lambda m: dict(m, num_classes=9), 'needs float logits of 2 axes and 9'),
    (lambda m: dict(m, preprocess=['jitter']), "preprocess.0. is 'jitter'"),
])
def test_graph_is_checked_before_anything_runs(packed_file, tmp_path, edit,
                                               match):
    path, _ = packed_file
    bad = rewrite(path, tmp_path / 'bad.packed', edit)
    with pytest.raises(PackedFormatError, match=match) as err:
        PackedModel.load(bad)
    assert 'bad.packed' in str(err.value)


@pytest.mark.parametrize('key,edit,match', [
    ('backbone.mlp.1.0/weight_bits', lambda a: a.astype(np.int64),
     'needs uint64'),
    ('backbone.mlp.4.0/out_scale', lambda a: a[:-1], r'is float32 \(63,\), '
     r'the node needs float32 \(64,\)'),
    ('backbone.mlp.2.0/limit', lambda a: a.astype(np.int32), 'needs int64'),
    ('head.fc_cls/bias', lambda a: a.astype(np.float64), 'is float64'),
    ('head.fc_cls/bias',
     lambda a: np.where(np.arange(a.size) == 0, np.nan, a).astype(np.float32),
     'non-finite'),
])
def test_arrays_are_checked_against_their_node(packed_file, tmp_path, key,
                                               edit, match):
    path, _ = packed_file

    def change(arrays):
        arrays[key] = edit(arrays[key])

    bad = rewrite(path, tmp_path / 'bad.packed', edit_arrays=change)
    with pytest.raises(PackedFormatError, match=match):
        PackedModel.load(bad)
    extra = rewrite(
        path,
        tmp_path / 'extra.packed',
        edit_arrays=lambda a: a.update({'payload/x': np.zeros(3)}))
    with pytest.raises(PackedFormatError, match='not read by any node'):
        PackedModel.load(extra)


def test_old_files_and_code_in_the_file_are_refused(packed_file, tmp_path):
    """Versions 1 and 2 rebuilt the model from a stored config (1 as Python
    text); such files are refused with the fix, nothing is imported."""
    path, _ = packed_file
    marker = tmp_path / 'executed'
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n"
    for version in (1, 2):
        old = rewrite(
            path, tmp_path / f'v{version}.packed', lambda m: dict(
                format='mmbinpc-packed',
                version=version,
                model_cfg=code if version == 1 else dict(
                    type='mmbinpc_never_imported.Model')))
        with pytest.raises(
                PackedFormatError,
                match=f'version {version} is not the one.*export_packed.py'):
            PackedModel.load(old)
    assert not marker.exists()
    assert 'mmbinpc_never_imported' not in sys.modules


def test_truncated_flipped_and_foreign_files(packed_file, tmp_path):
    path, _ = packed_file
    data = open(path, 'rb').read()
    # a byte inside the largest array's data (covered by its CRC)
    with zipfile.ZipFile(path) as zf:
        big = max(zf.infolist(), key=lambda i: i.compress_size)
    mid = big.header_offset + 30 + len(big.filename) + big.compress_size // 2
    cases = {
        'trunc.packed': data[:len(data) // 3],
        'flip.packed': data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:],
        'empty.packed': b'',
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(PackedFormatError, match=name):
            PackedModel.load(str(tmp_path / name))
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, 'a') as zf:
        zf.writestr('payload.pkl', b'\x80\x04N.')
    (tmp_path / 'extra.packed').write_bytes(buf.getvalue())
    with pytest.raises(PackedFormatError, match='unexpected archive members'):
        PackedModel.load(str(tmp_path / 'extra.packed'))
    with pytest.raises(PackedFormatError, match='is a directory'):
        PackedModel.load(str(tmp_path))
    with pytest.raises(
            PackedFormatError,
            match='missing.packed: does not exist.*export_packed.py'):
        PackedModel.load(str(tmp_path / 'missing.packed'))
    bogus = tmp_path / 'bogus.npz'
    np.savez(bogus, x=np.zeros(3))
    with pytest.raises(
            PackedFormatError,
            match='bogus.npz: no __meta__ entry: not an mmbinpc '
            'packed model'):
        PackedModel.load(str(bogus))


def test_normalize_unit_sphere_matches_the_transform():
    from mmdet3d.structures import DepthPoints

    from mmbinpc.datasets.transforms import NormalizePointsToUnitSphere
    rng = np.random.default_rng(0)
    pts = (rng.normal(size=(50, 6)) * 3 + 5).astype(np.float32)
    results = dict(points=DepthPoints(pts.copy(), points_dim=6))
    ref = NormalizePointsToUnitSphere()(results)['points'].tensor.numpy()
    out = normalize_unit_sphere(pts)
    np.testing.assert_array_equal(out, ref)
    assert np.linalg.norm(out[:, :3], axis=1).max() == pytest.approx(1)
    np.testing.assert_array_equal(out[:, 3:], pts[:, 3:])
    with pytest.raises(ValueError, match='unknown preprocessing step'):
        apply_preprocess(pts, ['jitter'])
