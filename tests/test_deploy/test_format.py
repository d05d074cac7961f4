# Copyright (c) mmbinpc contributors. All rights reserved.
"""The packed file is data only, validated before anything runs."""
import io
import json
import sys
import zipfile

import numpy as np
import pytest
import torch

from mmbinpc.binary import build_binarized
from mmbinpc.deploy import PackedModel, export_packed, read_packed
from mmbinpc.deploy.format import FORMAT_VERSION
from mmbinpc.deploy.preprocess import apply_preprocess, normalize_unit_sphere
from mmbinpc.errors import PackedFormatError

CFG = dict(
    type='PointClassifier',
    backbone=dict(
        type='PointNet',
        channels=(16, 16, 16, 32, 64),
        input_transform=False,
        feature_transform=False),
    head=dict(
        type='PointClsHead',
        in_channels=64,
        num_classes=4,
        mid_channels=(32, 16)),
    binarize=dict(method='lsr', aggregation='ema'))


@pytest.fixture(scope='module')
def packed_file(tmp_path_factory):
    torch.manual_seed(0)
    model = build_binarized(CFG).eval()
    path = str(tmp_path_factory.mktemp('fmt') / 'model.packed')
    export_packed(
        model, path, CFG, num_points=32, preprocess=['normalize_unit_sphere'])
    return path, model


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


def test_meta_is_json_data(packed_file):
    path, _ = packed_file
    meta, arrays = read_packed(path)
    assert meta['version'] == FORMAT_VERSION
    assert meta['model_cfg']['backbone']['channels'] == [16, 16, 16, 32, 64]
    assert meta['preprocess'] == ['normalize_unit_sphere']
    assert meta['trace'] == dict(num_points=32, in_channels=3)
    assert '__meta__' not in arrays
    assert all(isinstance(v, np.ndarray) for v in arrays.values())


def test_loaded_model_matches_the_source(packed_file):
    path, model = packed_file
    pts = torch.rand(4, 32, 3) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=pts))
    out = PackedModel.load(path)(pts)
    assert (out.argmax(-1) == ref.argmax(-1)).all()


def test_python_in_the_file_is_never_executed(packed_file, tmp_path):
    """Version 1 stored the config as Python text; a file that still does
    (or names a module to import) is refused before anything runs."""
    path, _ = packed_file
    marker = tmp_path / 'executed'
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n"
    v1 = rewrite(path, tmp_path / 'v1.packed',
                 lambda m: dict(m, version=1, model_cfg=code))
    with pytest.raises(PackedFormatError, match='version 1 .* re-export'):
        PackedModel.load(v1)
    text = rewrite(path, tmp_path / 'text.packed',
                   lambda m: dict(m, model_cfg=code))
    with pytest.raises(PackedFormatError, match='model_cfg has an invalid'):
        PackedModel.load(text)
    imports = rewrite(
        path, tmp_path / 'imports.packed', lambda m: dict(
            m,
            model_cfg=dict(
                m['model_cfg'],
                custom_imports=dict(imports=['mmbinpc_never_imported']))))
    with pytest.raises(PackedFormatError, match="'custom_imports'"):
        PackedModel.load(imports)
    dotted = rewrite(
        path, tmp_path / 'dotted.packed', lambda m: dict(
            m,
            model_cfg=dict(
                m['model_cfg'], type='mmbinpc_never_imported.Model')))
    with pytest.raises(PackedFormatError, match='not a plain registered'):
        PackedModel.load(dotted)
    assert not marker.exists()
    assert 'mmbinpc_never_imported' not in sys.modules


@pytest.mark.parametrize('key,edit,match', [
    ('out_scale', lambda a: a[:-1], r"out_scale' is float32 \(15,\), the "
     r'layer needs float32 \(16,\)'),
    ('out_shift', lambda a: a.astype(np.float64), 'is float64'),
    ('weight_words', lambda a: a.astype(np.int64), 'needs uint64'),
    ('out_scale',
     lambda a: np.where(np.arange(a.size) == 0, np.nan, a).astype(np.float32),
     'non-finite'),
])
def test_arrays_are_checked_against_their_layer(packed_file, tmp_path, key,
                                                edit, match):
    path, _ = packed_file
    meta, _ = read_packed(path)
    layer = meta['binary_layers'][0]['name']

    def change(arrays):
        arrays[f'{layer}.{key}'] = edit(arrays[f'{layer}.{key}'])

    bad = rewrite(path, tmp_path / 'bad.packed', edit_arrays=change)
    with pytest.raises(PackedFormatError, match=match) as err:
        PackedModel.load(bad)
    assert 'bad.packed' in str(err.value)


def test_widened_architecture_is_refused_before_allocating(
        packed_file, tmp_path):
    path, _ = packed_file

    def widen(meta):
        meta['model_cfg']['backbone']['channels'][-1] = 1 << 22
        meta['model_cfg']['head']['in_channels'] = 1 << 22

    bad = rewrite(path, tmp_path / 'wide.packed', widen)
    with pytest.raises(
            PackedFormatError, match='parameters but the file '
            'stores'):
        PackedModel.load(bad)


def test_truncated_flipped_and_foreign_files(packed_file, tmp_path):
    path, _ = packed_file
    data = open(path, 'rb').read()
    cases = {
        'trunc.packed': data[:len(data) // 3],
        'flip.packed': data[:2000] + bytes([data[2000] ^ 0xFF]) + data[2001:],
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
    with pytest.raises(PackedFormatError, match='does not exist'):
        PackedModel.load(str(tmp_path / 'missing.packed'))


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
