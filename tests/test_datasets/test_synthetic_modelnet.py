# Copyright (c) mmbinpc contributors. All rights reserved.
import math
import os.path as osp

import numpy as np
import pytest

from mmbinpc.datasets import ModelNet40Dataset
from mmbinpc.datasets import synthetic_modelnet as syn


def test_generated_dataset_loads_through_dataset_class(tmp_path, capsys):
    root = str(tmp_path / 'syn')
    summary = syn.write_synthetic_modelnet(
        root,
        num_classes=4,
        train_per_class=3,
        test_per_class=2,
        num_points=200,
        seed=0)
    assert summary == dict(classes=4, train=12, test=8)
    assert 'SYNTHETIC DATA - NOT ModelNet40' in capsys.readouterr().out
    assert syn.is_synthetic(root)
    train = ModelNet40Dataset(root, num_points=128, use_normals=True)
    test = ModelNet40Dataset(root, split='test', num_points=128)
    assert len(train) == 12 and len(test) == 8
    assert train.metainfo['classes'] == tuple(list(syn.FAMILIES)[:4])
    assert sorted({train.get_data_info(i)['gt_label']
                   for i in range(12)}) == [0, 1, 2, 3]
    pts = train.get_data_info(0)['points'].tensor.numpy()
    np.testing.assert_allclose(
        np.linalg.norm(pts[:, 3:], axis=1), 1, atol=1e-4)
    assert np.linalg.norm(pts[:, :3], axis=1).max() < 1.1


def test_generator_is_deterministic(tmp_path):
    a = syn.make_instance('mug', 64, np.random.default_rng(5))
    b = syn.make_instance('mug', 64, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    c = syn.make_instance('mug', 64, np.random.default_rng(6))
    assert not np.array_equal(a, c)


@pytest.mark.parametrize('surface', [
    syn.Frustum((0, 0, 0), 0.5, 0.2, 1.0),
    syn.Frustum((0.3, 0, 0), 0.2, 0.2, 1.0, axis=(1, 1, 0)),
    syn.Ellipsoid((0, 0, 0), (0.5, 0.2, 0.3)),
    syn.TorusArc((0, 0, 0), 0.5, 0.1, axis=(0, 0, 1)),
])
def test_curved_surface_normals_are_outward_and_perpendicular(surface):
    rng = np.random.default_rng(0)
    pts, nrm = surface.sample(2000, rng)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1, atol=1e-6)
    # Outward: moving along the normal leaves the solid. Check with the
    # analytic implicit functions.
    if isinstance(surface, syn.Ellipsoid):
        f = lambda p: ((p / surface.radii)**2).sum(1) - 1  # noqa: E731
    elif isinstance(surface, syn.TorusArc):

        def f(p):
            q = (p - surface.c) @ surface.rot
            ring = np.sqrt(q[:, 0]**2 + q[:, 2]**2) - surface.R
            return ring**2 + q[:, 1]**2 - surface.r**2
    else:

        def f(p):
            q = (p - surface.base) @ surface.rot
            t = q[:, 1] / surface.h
            r = surface.r0 + (surface.r1 - surface.r0) * t
            return np.sqrt(q[:, 0]**2 + q[:, 2]**2) - r

    np.testing.assert_allclose(f(pts), 0, atol=1e-6)
    assert (f(pts + 1e-3 * nrm) > 0).all()
    assert (f(pts - 1e-3 * nrm) < 0).all()


def test_area_weighting_is_uniform_on_a_cylinder():
    rng = np.random.default_rng(0)
    parts = syn.cylinder((0, 0, 0), 0.5, 2.0)
    pts, nrm = syn.sample_surfaces(parts, 20000, rng)
    side = 2 * math.pi * 0.5 * 2.0
    caps = 2 * math.pi * 0.25
    on_caps = (np.abs(nrm[:, 1]) > 0.99).mean()
    assert on_caps == pytest.approx(caps / (side + caps), abs=0.02)
    # Box faces point away from the centre.
    for face in syn.box((0, 0, 0), (1, 2, 3)):
        assert np.dot(face.n, face.c) > 0


def test_every_family_generates_unit_normals():
    rng = np.random.default_rng(0)
    for family in syn.FAMILIES:
        arr = syn.make_instance(family, 128, rng)
        assert arr.shape == (128, 6) and np.isfinite(arr).all(), family
        np.testing.assert_allclose(
            np.linalg.norm(arr[:, 3:], axis=1), 1, atol=1e-4, err_msg=family)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='shape families'):
        syn.write_synthetic_modelnet(str(tmp_path), num_classes=99, log=None)
    with pytest.raises(ValueError, match='unknown shape families'):
        syn.write_synthetic_modelnet(str(tmp_path), classes=['x'], log=None)
    assert not osp.exists(osp.join(str(tmp_path), syn.SYNTHETIC_MARKER))


def test_cli_tool_writes_and_refuses_to_overwrite_real_data(tmp_path, capsys):
    import importlib.util
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        '_create_synthetic_modelnet',
        osp.join(repo, 'tools', 'create_synthetic_modelnet.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'syn')
    args = [
        out, '--classes', '2', '--train-per-class', '1', '--test-per-class',
        '1', '--points', '32'
    ]
    assert tool.main(args) == dict(classes=2, train=2, test=2)
    assert 'NOT ModelNet40' in capsys.readouterr().out
    assert tool.main(args)['train'] == 2  # synthetic: may be regenerated
    real = tmp_path / 'real'
    real.mkdir()
    (real / 'modelnet40_shape_names.txt').write_text('airplane\n')
    with pytest.raises(SystemExit, match='refusing to overwrite'):
        tool.main([str(real)] + args[1:])
