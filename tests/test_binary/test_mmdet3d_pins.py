# Copyright (c) mmbinpc contributors. All rights reserved.
"""The mmdet3d code that mmbinpc's pooling sites replace is the code they
were written against (mmdet3d 1.4.0).

``LocalPoolSite._pool_features`` (DGCNN's GF modules, the pooled SA
modules) and the DGCNN FA adapter's ``forward``
(:mod:`mmbinpc.binary.aggregation`) compute what these mmdet3d methods
compute, through a ``PointPool``. If mmdet3d changes one of them, this test
fails: re-read the new code, update mmbinpc's version, then the hash.
"""
import hashlib
import inspect
import textwrap

import pytest
from mmdet3d.models.layers.dgcnn_modules.dgcnn_fa_module import DGCNNFAModule
from mmdet3d.models.layers.dgcnn_modules.dgcnn_gf_module import \
    BaseDGCNNGFModule
from mmdet3d.models.layers.pointnet_modules.point_sa_module import \
    BasePointSAModule

PINNED = {
    'DGCNNFAModule.forward': (DGCNNFAModule.forward, '5df57983b4efc502'),
    'BaseDGCNNGFModule._pool_features':
    (BaseDGCNNGFModule._pool_features, '370dbcefa6de907b'),
    'BasePointSAModule._pool_features':
    (BasePointSAModule._pool_features, '9ab723f71bbf934f'),
}


def source_hash(function) -> str:
    source = textwrap.dedent(inspect.getsource(function))
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@pytest.mark.parametrize('name', sorted(PINNED))
def test_replaced_mmdet3d_code_is_unchanged(name):
    function, pinned = PINNED[name]
    assert source_hash(function) == pinned, (
        f'mmdet3d changed {name}; check mmbinpc.binary.aggregation against '
        'it, then update the hash here')


def test_the_hash_sees_a_change():

    def pool(x):
        return x.max(-1)[0]

    def pool_changed(x):
        return x.amax(-1)

    assert source_hash(pool) != source_hash(pool_changed)
