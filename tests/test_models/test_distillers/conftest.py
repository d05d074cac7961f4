# Copyright (c) mmbinpc contributors. All rights reserved.
"""Fixtures of the distiller tests."""
import pytest
from distill_helpers import save_teacher, tiny_classifier


@pytest.fixture
def teacher_cfg():
    return tiny_classifier()


@pytest.fixture
def teacher_ckpt(tmp_path, teacher_cfg):
    return save_teacher(teacher_cfg, str(tmp_path / 'teacher.pth'))


@pytest.fixture
def tnet_cfg():
    """With PointNet's input T-Net: two pooling sites."""
    return tiny_classifier(tnet=True)


@pytest.fixture
def tnet_ckpt(tmp_path, tnet_cfg):
    return save_teacher(tnet_cfg, str(tmp_path / 'tnet_teacher.pth'))
