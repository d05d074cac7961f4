# Copyright (c) mmbinpc contributors. All rights reserved.
import math

import numpy as np
import pytest
import torch
from mmdet3d.registry import TRANSFORMS
from mmdet3d.structures import DepthPoints


def _points(n=50, normals=True):
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(n, 3)).astype(np.float32) + 3.0
    if not normals:
        return xyz
    nrm = rng.normal(size=(n, 3))
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    return np.concatenate([xyz, nrm.astype(np.float32)], axis=1)


def _apply(cfg, array, wrap=True):
    t = TRANSFORMS.build(cfg)
    pts = DepthPoints(array.copy(), points_dim=array.shape[1]) if wrap \
        else array.copy()
    out = t(dict(points=pts))
    res = out['points']
    if wrap:
        assert isinstance(res, DepthPoints)
        res = res.tensor.numpy()
    return res, out


@pytest.mark.parametrize('wrap', [True, False])
def test_normalize_to_unit_sphere(wrap):
    arr = _points()
    out, _ = _apply(dict(type='NormalizePointsToUnitSphere'), arr, wrap)
    np.testing.assert_allclose(out[:, :3].mean(0), 0, atol=1e-5)
    assert np.linalg.norm(out[:, :3], axis=1).max() == pytest.approx(1, 1e-5)
    np.testing.assert_allclose(out[:, 3:], arr[:, 3:])


def test_anisotropic_scale_keeps_normals_perpendicular_to_surface():
    # Points on the plane x + y + z = 1 with normal (1,1,1)/sqrt(3).
    rng = np.random.default_rng(1)
    uv = rng.normal(size=(20, 2))
    e1 = np.array([1, -1, 0]) / math.sqrt(2)
    e2 = np.array([1, 1, -2]) / math.sqrt(6)
    xyz = np.array([1, 1, 1]) / 3 + uv[:, :1] * e1 + uv[:, 1:] * e2
    nrm = np.repeat(np.ones((1, 3)) / math.sqrt(3), 20, 0)
    arr = np.concatenate([xyz, nrm], 1).astype(np.float32)
    out, res = _apply(
        dict(type='RandomAnisotropicScale', scale_range=(0.5, 2.0)), arr)
    scale = res['pcd_scale_factor']
    np.testing.assert_allclose(out[:, :3], arr[:, :3] * scale, rtol=1e-5)
    tangent = out[1:, :3] - out[:1, :3]
    assert np.abs((tangent * out[1:, 3:]).sum(1)).max() < 1e-4
    np.testing.assert_allclose(
        np.linalg.norm(out[:, 3:], axis=1), 1, rtol=1e-5)


def test_rotate_up_axis_rotates_normals_and_keeps_height():
    arr = _points()
    out, res = _apply(dict(type='RandomRotateUpAxis', axis=1), arr)
    np.testing.assert_allclose(out[:, 1], arr[:, 1], atol=1e-5)
    np.testing.assert_allclose(out[:, 4], arr[:, 4], atol=1e-5)
    # Rotation preserves norms and the angle between xyz and normal.
    np.testing.assert_allclose(
        np.linalg.norm(out[:, :3], axis=1),
        np.linalg.norm(arr[:, :3], axis=1),
        rtol=1e-5)
    np.testing.assert_allclose(
        (out[:, :3] * out[:, 3:]).sum(1), (arr[:, :3] * arr[:, 3:]).sum(1),
        atol=1e-4)
    assert 'pcd_rotation_angle' in res


def test_shift_and_dropout():
    arr = _points(normals=False)
    out, res = _apply(dict(type='RandomShift', shift_range=0.5), arr)
    np.testing.assert_allclose(
        out - arr, np.broadcast_to(res['pcd_trans'], arr.shape), atol=1e-5)
    assert np.abs(res['pcd_trans']).max() <= 0.5
    np.random.seed(3)
    out, _ = _apply(
        dict(type='RandomPointDropout', max_dropout_ratio=0.99), arr)
    assert out.shape == arr.shape
    dropped = (out == arr[0]).all(1)
    assert dropped[0] and dropped[1:].any()
    kept = ~dropped
    np.testing.assert_array_equal(out[kept], arr[kept])


def test_mmdet3d_shuffle_and_jitter_work_on_dataset_points():
    arr = _points()
    out, _ = _apply(dict(type='PointShuffle'), arr)
    assert sorted(map(tuple, out)) == sorted(map(tuple, arr))
    out, _ = _apply(
        dict(type='RandomJitterPoints', jitter_std=0.01, clip_range=0.05), arr)
    assert np.abs(out[:, :3] - arr[:, :3]).max() <= 0.05 + 1e-6
    np.testing.assert_array_equal(out[:, 3:], arr[:, 3:])


def test_pack_without_label_and_bad_args():
    out = TRANSFORMS.build(dict(type='PackClsInputs'))(
        dict(points=_points(normals=False), shape_id='x'))
    assert isinstance(out['inputs']['points'], torch.Tensor)
    assert 'gt_label' not in out['data_samples']
    assert out['data_samples'].metainfo['shape_id'] == 'x'
    with pytest.raises(ValueError, match='scale_range'):
        TRANSFORMS.build(
            dict(type='RandomAnisotropicScale', scale_range=(0, 1)))
    with pytest.raises(ValueError, match='with_normals'):
        _apply(
            dict(type='RandomRotateUpAxis', with_normals=True),
            _points(normals=False))
