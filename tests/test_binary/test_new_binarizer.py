# Copyright (c) mmbinpc contributors. All rights reserved.
"""Adding a binarizer is one registered class with its BinarizerSpec:
binarize(), tools/convert_config.py, the packed exporter and the complexity
counter pick it up with no other change."""
import pytest
import torch
from mmengine.config import Config
from torch import Tensor

from mmbinpc.analysis import count_complexity, model_forward
from mmbinpc.binary import (BINARIZERS, Binarizer, binarize, build_binarized,
                            register_binarizer)
from mmbinpc.binary.binarizers import BinarizerSpec
from mmbinpc.deploy.converter import export_packed
from mmbinpc.deploy.runtime import PackedModel
from mmbinpc.experiments.runner import load_tool

NAME = 'toymax'


@pytest.fixture
def toy_binarizer():
    """``sign(W) · max_c |W|`` per output channel, ``sign(a)`` inputs."""

    @register_binarizer(NAME)
    class ToyMaxBinarizer(Binarizer):
        spec = BinarizerSpec(
            weight='sign(W)·max_c|W|',
            activation='sign(a)',
            backward='clipped STE',
            weight_scale='per_channel',
            source='a test')

        def weight_scale(self, weight: Tensor) -> Tensor:
            return weight.detach().abs().reshape(weight.shape[0], -1).amax(1)

    yield ToyMaxBinarizer
    BINARIZERS.module_dict.pop(NAME)


def _pointnet(**binarize_options):
    return dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet',
            channels=(16, 16, 16, 32, 64),
            input_transform=False,
            feature_transform=False),
        head=dict(
            type='PointClsHead',
            in_channels=64,
            num_classes=5,
            mid_channels=(32, 16)),
        binarize=binarize_options)


def test_a_spec_is_required():
    with pytest.raises(TypeError, match='declares no spec'):

        @register_binarizer('nospec')
        class NoSpec(Binarizer):
            pass

    assert 'nospec' not in BINARIZERS.module_dict
    with pytest.raises(ValueError, match='weight_scale must be one of'):
        BinarizerSpec(
            weight='w', activation='a', backward='b', weight_scale='per_point')


def test_new_binarizer_everywhere(toy_binarizer, tmp_path):
    # binarize(): every hidden layer gets it
    model = build_binarized(_pointnet(method=NAME, aggregation='max'))
    names = {
        m.binarizer.name
        for m in model.modules() if hasattr(m, 'binarizer')
    }
    assert names == {NAME}
    layer = model.backbone.mlp[1][0]
    w = layer.weight.detach()
    expected = torch.sign(w) + (w == 0)  # sign(0) = +1
    expected = expected * w.abs().reshape(w.shape[0], -1).amax(1).reshape(
        -1, 1, 1)
    assert torch.equal(layer.binarizer.forward_weight(layer.weight), expected)

    # the packed engine runs it and predicts what PyTorch predicts
    model.eval()
    path = str(tmp_path / 'toy.packed')
    export_packed(model, path, num_points=32)
    points = torch.rand(6, 32, 3) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=points))
    out = torch.from_numpy(PackedModel.load(path)(points.numpy()))
    assert torch.equal(ref.argmax(-1), out.argmax(-1))
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max())

    # the complexity counter stores one float per output channel for it
    plain = build_binarized(_pointnet(method='bnn', aggregation='max'))
    counts = count_complexity(model, model_forward(model, 32)[0])
    bnn_counts = count_complexity(plain, model_forward(plain, 32)[0])
    binary_out = sum(m.weight.shape[0] for m in model.modules()
                     if hasattr(m, 'binarizer'))
    assert counts.storage_bytes - bnn_counts.storage_bytes == 4 * binary_out

    # tools/convert_config.py offers it
    out_cfg = tmp_path / 'toy.py'
    src = tmp_path / 'fp.py'
    fp = _pointnet()
    del fp['binarize']
    src.write_text(f'model = {fp!r}\n')
    load_tool('convert_config').main([
        str(src), '-o',
        str(out_cfg), '--method', NAME, '--aggregation', 'max'
    ])
    built = build_binarized(Config.fromfile(str(out_cfg)).model)
    assert built.binarize_report.method == NAME


def test_docs_table_lists_every_binarizer():
    """docs/binarization.md's table has one row per registered binarizer."""
    import os.path as osp
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    with open(osp.join(repo, 'docs', 'binarization.md')) as f:
        rows = [line for line in f if line.startswith('| `')]
    listed = {row.split('`')[1] for row in rows}
    names = set(BINARIZERS.module_dict)
    assert names <= listed, names - listed
    # and a spec for each, with its paper
    assert all(cls.spec.source for cls in BINARIZERS.module_dict.values())


def test_binarize_rejects_unknown_names(toy_binarizer):
    model = build_binarized(_pointnet(method=NAME))
    with pytest.raises(ValueError, match=f'valid binarizers: .*{NAME}'):
        binarize(model, method='nothere')
