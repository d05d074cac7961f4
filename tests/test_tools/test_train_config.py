# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/train.py opens ``mmdet3d::`` config paths."""
import os.path as osp
import sys

import pytest

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'tools'))

import train as train_tool  # noqa: E402

SCOPED = 'mmdet3d::dgcnn/dgcnn_4xb32-cosine-100e_s3dis-seg_test-area5.py'


def test_train_builds_config_from_mmdet3d_path():
    cfg = train_tool.build_config(train_tool.parse_args([SCOPED]))
    assert cfg.model.type == 'EncoderDecoder3D'
    assert cfg.model.backbone.type == 'DGCNNBackbone'
    assert osp.basename(cfg.work_dir) == \
        'dgcnn_4xb32-cosine-100e_s3dis-seg_test-area5'


def test_unknown_config_path_names_it():
    with pytest.raises(FileNotFoundError, match='configs/nope.py'):
        train_tool.build_config(train_tool.parse_args(['configs/nope.py']))
