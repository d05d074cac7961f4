# Copyright (c) mmbinpc contributors. All rights reserved.
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
from mmdet3d.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmbinpc.models.distillers import find_config_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'create_synthetic_s3dis.py')


def test_layout_matches_mmdet3d_and_dataset_reads_it(tmp_path):
    out = tmp_path / 's3dis'
    subprocess.run([
        sys.executable, TOOL,
        str(out), '--areas', '1', '5', '--rooms-per-area', '2',
        '--points-per-room', '600', '--num-points', '256'
    ],
                   check=True,
                   capture_output=True)
    info = pickle.load(open(out / 's3dis_infos_Area_1.pkl', 'rb'))
    assert info['metainfo']['dataset'] == 's3dis'
    entry = info['data_list'][0]
    assert entry['lidar_points'] == dict(
        num_pts_feats=6, lidar_path='Area_1_office_1.bin')
    assert entry['pts_semantic_mask_path'] == 'Area_1_office_1.bin'
    pts = np.fromfile(
        out / 'points' / 'Area_1_office_1.bin',
        dtype=np.float32).reshape(-1, 6)
    sem = np.fromfile(
        out / 'semantic_mask' / 'Area_1_office_1.bin', dtype=np.int64)
    assert len(pts) == len(sem) == 600
    assert sem.min() >= 0 and sem.max() <= 12 and len(np.unique(sem)) == 13
    assert 0 <= pts[:, 3:].min() and pts[:, 3:].max() <= 255
    idxs = np.load(out / 'seg_info' / 'Area_1_resampled_scene_idxs.npy')
    assert idxs.dtype == np.int32 and set(idxs.tolist()) == {0, 1}
    assert np.load(out / 'seg_info' /
                   'Area_1_label_weight.npy').shape == (13, )

    # mmdet3d's own S3DIS seg dataset config reads it unchanged.
    cfg = Config.fromfile(
        find_config_file('mmdet3d::_base_/datasets/s3dis-seg.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(
        data_root=str(out),
        ann_files=['s3dis_infos_Area_1.pkl'],
        scene_idxs=['seg_info/Area_1_resampled_scene_idxs.npy'])
    ds_cfg.pipeline[3]['num_points'] = 128
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        dataset = DATASETS.build(ds_cfg)
        assert len(dataset) == len(idxs)
        item = dataset[0]
    points = item['inputs']['points']
    assert points.shape == (128, 9)  # xyz rgb normalized-xyz
    mask = item['data_samples'].gt_pts_seg.pts_semantic_mask
    assert mask.shape == (128, ) and int(mask.max()) <= 13
