# Copyright (c) mmbinpc contributors. All rights reserved.
"""tools/analysis/complexity.py, tools/deploy/export_packed.py and
tools/deploy/benchmark.py end to end on a tiny config."""
import importlib.util
import json
import os
import re

import pytest
import torch

from mmbinpc.binary import build_binarized
from mmbinpc.deploy.runtime import PackedModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))

CONFIG = '''
model = dict(
    type='PointClassifier',
    backbone=dict(type='PointNet', channels=(16, 16, 16, 32, 64),
                  input_transform=False, feature_transform=False),
    head=dict(type='PointClsHead', in_channels=64, num_classes=4,
              mid_channels=(32, 16)),
    binarize=dict(method='xnor', aggregation='ema'))
'''


def load_tool(rel_path):
    path = os.path.join(ROOT, rel_path)
    spec = importlib.util.spec_from_file_location(
        'tool_' + os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def trained(tmp_path):
    from mmengine.config import Config
    cfg_path = tmp_path / 'tiny_bin.py'
    cfg_path.write_text(CONFIG)
    model = build_binarized(Config.fromfile(str(cfg_path)).model)
    with torch.no_grad():  # non-trivial BN statistics to fold
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    return str(cfg_path), str(ckpt), model.eval()


def test_complexity_tool_json(trained, tmp_path, capsys):
    cfg_path, _, _ = trained
    out = tmp_path / 'c.json'
    totals = load_tool('tools/analysis/complexity.py').main(
        [cfg_path, '--points', '64', '--json',
         str(out)])
    data = json.loads(out.read_text())
    assert set(data) >= {
        'flops', 'bops', 'ops', 'params', 'storage_bytes', 'speedup',
        'compression'
    }
    assert {k: data[k] for k in totals} == pytest.approx(totals)
    # the record says how, where and from which commit it was made
    assert data['command'].startswith('python tools/analysis/complexity.py ')
    assert data['command'].endswith(f'--json {out}')
    assert {'code', 'host', 'date', 'layers', 'reference'} <= set(data)
    assert data['speedup_with_other_ops'] > 1
    assert data['bops'] > 0 and data['speedup'] > 1
    assert data['compression'] > 1
    assert 'BOPs' in capsys.readouterr().out


def test_complexity_tool_cfg_options_are_data(trained, tmp_path):
    """--cfg-options values are parsed as data, never evaluated: a Python
    expression stays a string, and a real override changes the count."""
    cfg_path, _, _ = trained
    tool = load_tool('tools/analysis/complexity.py')
    marker = tmp_path / 'executed'
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    base = tool.main([
        cfg_path, '--points', '64', '--quiet', '--cfg-options', f'note={code}'
    ])
    assert not marker.exists()
    wider = tool.main([
        cfg_path, '--points', '64', '--quiet', '--cfg-options',
        'model.head.num_classes=40'
    ])
    assert wider['params'] > base['params']


def test_export_then_benchmark(trained, tmp_path, capsys):
    cfg_path, ckpt, model = trained
    out = str(tmp_path / 'tiny.packed')
    summary = load_tool('tools/deploy/export_packed.py').main(
        [cfg_path, ckpt, out, '--points', '64'])
    assert os.path.getsize(out) == summary.file_bytes
    printed = capsys.readouterr().out
    assert 'size ratio' in printed and 'binary_dense' in printed
    packed = PackedModel.load(out)
    assert packed.meta['source']['config'] == os.path.basename(cfg_path)
    pts = torch.rand(8, 64, 3) * 2 - 1
    with torch.no_grad():
        ref = model._forward(dict(points=pts))
    assert (packed(pts.numpy()).argmax(-1) == ref.argmax(-1).numpy()).all()

    res_path = tmp_path / 'bench.json'
    results = load_tool('tools/deploy/benchmark.py').main([
        cfg_path, ckpt, '--packed', out, '--points', '64', '--batch-sizes',
        '1', '2', '--repeats', '2', '--warmup', '1', '--json',
        str(res_path)
    ])
    data = json.loads(res_path.read_text())
    for key in ('fp32_ms_b1', 'binary_torch_ms_b1', 'packed_ms_b1',
                'speedup_b1', 'binary_layers_speedup', 'size_ratio',
                'speedup_b2', 'speedup_b1_warm', 'packed_binary_layers_ms_b1'):
        assert key in data and data[key] > 0
    assert data['model'] == 'PointNet'
    # the time by op adds up to the shares, and the binary layers' time is
    # the binary_dense op's
    assert sum(data['packed_op_share_b1'].values()) == pytest.approx(1.0)
    assert set(data['packed_op_ms_b1']) == {'dense', 'binary_dense'}
    assert data['packed_binary_layers_ms_b1'] == \
        data['packed_op_ms_b1']['binary_dense']
    assert data['pred_agreement_b1'] == 1.0
    # every speed-up is baseline time / packed time of the same statistic
    for bs, sfx in (('1', ''), ('2', ''), ('1', '_warm'), ('2', '_warm')):
        ms = {k: data[f'{k}_ms_b{bs}{sfx}'] for k in ('fp32', 'packed')}
        low = {k: data[f'{k}_ms_b{bs}{sfx}_min'] for k in ('fp32', 'packed')}
        assert data[f'speedup_b{bs}{sfx}'] == pytest.approx(ms['fp32'] /
                                                            ms['packed'])
        assert data[f'speedup_b{bs}{sfx}_min'] == pytest.approx(low['fp32'] /
                                                                low['packed'])
        assert data[f'speedup_vs_binary_torch_b{bs}{sfx}'] == pytest.approx(
            data[f'binary_torch_ms_b{bs}{sfx}'] / ms['packed'])
    assert data['binary_layers_speedup'] == pytest.approx(
        data['fp32_binary_layers_ms_b1'] / data['packed_binary_layers_ms_b1'])
    assert data['size_ratio'] == pytest.approx(results['size_ratio'])
    printed = capsys.readouterr().out
    assert 'packed vs FP32' in printed and 'CPU:' in printed
    assert 'interleaved' in printed and 'back to back' in printed
    assert 'time by op' in printed


def test_export_tool_errors(trained, tmp_path):
    cfg_path, _, _ = trained
    tool = load_tool('tools/deploy/export_packed.py')
    with pytest.raises(SystemExit, match='not found'):
        tool.main([cfg_path, str(tmp_path / 'nope.pth'), str(tmp_path / 'o')])


def test_distiller_config_and_checkpoint(tmp_path):
    from mmbinpc.deploy.builder import (build_model, deploy_model_cfgs,
                                        load_weights)
    student = dict(
        type='PointClassifier',
        backbone=dict(
            type='PointNet',
            channels=(8, 8, 8, 16, 32),
            input_transform=False,
            feature_transform=False),
        head=dict(
            type='PointClsHead',
            in_channels=32,
            num_classes=3,
            mid_channels=(16, )))
    distiller = dict(
        type='BinaryDistiller',
        teacher=student,
        teacher_ckpt='unused.pth',
        binarize=dict(method='bnn', aggregation='max'))
    bin_cfg, fp_cfg = deploy_model_cfgs(distiller)
    assert bin_cfg['type'] == 'PointClassifier'
    assert bin_cfg['binarize'] == dict(method='bnn', aggregation='max')
    assert 'binarize' not in fp_cfg
    trained = build_model(bin_cfg)
    state = {f'student.{k}': v for k, v in trained.state_dict().items()}
    state.update({
        f'teacher.{k}': v
        for k, v in build_model(fp_cfg).state_dict().items()
    })
    ckpt = tmp_path / 'distiller.pth'
    torch.save(dict(state_dict=state), ckpt)
    model = build_model(bin_cfg)
    load_weights(model, str(ckpt))
    for k, v in trained.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    with pytest.raises(ValueError, match='does not match the model'):
        load_weights(
            build_model(fp_cfg
                        | dict(head=dict(student['head'], num_classes=7))),
            str(ckpt))


def test_predict_tool(trained, tmp_path, capsys):
    import numpy as np

    cfg_path, ckpt, model = trained
    packed = str(tmp_path / 'tiny.packed')
    load_tool('tools/deploy/export_packed.py').main(
        [cfg_path, ckpt, packed, '--points', '64'])
    tool = load_tool('tools/deploy/predict.py')
    rng = np.random.default_rng(0)
    files = []
    for i in range(2):  # ModelNet text files with normals
        path = tmp_path / f'shape_{i}.txt'
        rows = rng.uniform(-1, 1, (100, 6))
        path.write_text('\n'.join(','.join(f'{v:.6f}' for v in row)
                                  for row in rows) + '\n')
        files.append(str(path))
    path = tmp_path / 'shape_2.npy'  # an xyz array
    np.save(path, rng.uniform(-1, 1, (80, 3)).astype(np.float32))
    files.append(str(path))
    names = tmp_path / 'names.txt'  # a 3-class data set, a 4-way head
    names.write_text('cup\nchair\nlamp\n')
    out_json = tmp_path / 'pred.json'
    results = tool.main([
        packed, *files, '--classes',
        str(names), '--topk', '2', '--json',
        str(out_json)
    ])

    # the PyTorch binary model on the same points: the first 64 xyz rows,
    # centred and scaled into the unit sphere as the test pipeline does
    clouds = torch.from_numpy(
        np.stack([tool.read_cloud(f, 3)[:64] for f in files])).double()
    clouds = clouds - clouds.mean(dim=1, keepdim=True)
    clouds = (clouds / clouds.norm(dim=-1).amax(dim=1)[:, None, None]).float()
    with torch.no_grad():
        scores = model._forward(dict(points=clouds)).softmax(-1)
    assert [r['file'] for r in results] == files
    for res, score in zip(results, scores):
        top = score.topk(2)
        assert [b['index'] for b in res['top']] == top.indices.tolist()
        assert [b['name'] for b in res['top']
                ] == [['cup', 'chair', 'lamp', '3'][i] for i in top.indices]
        assert [b['score'] for b in res['top']] == pytest.approx(
            top.values.tolist(), abs=1e-4)
    saved = json.loads(out_json.read_text())
    assert saved['points'] == 64 and saved['results'] == results
    printed = capsys.readouterr().out
    assert 'shape_0.txt: ' in printed
    assert 'names 3 of the model\'s 4 outputs' in printed


def test_predict_tool_errors(trained, tmp_path, capsys):
    import numpy as np

    cfg_path, ckpt, _ = trained
    packed = str(tmp_path / 'tiny.packed')
    load_tool('tools/deploy/export_packed.py').main(
        [cfg_path, ckpt, packed, '--points', '64'])
    tool = load_tool('tools/deploy/predict.py')
    cloud = tmp_path / 'c.npy'
    np.save(cloud, np.zeros((70, 3), np.float32))

    def fails(argv, pattern, model=packed):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            tool.main([model, *argv])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert re.search(pattern, err), err

    fails([str(tmp_path / 'missing.txt')], 'missing.txt.*does not exist')
    fails([str(tmp_path)], 'is a directory')
    fails([str(cloud), '--points', '500'], 'fewer than num_points=500')
    fails([str(cloud), '--points', '0'], '--points must be >= 1, got 0')
    fails([str(cloud), '--points', '-5'], '--points must be >= 1, got -5')
    fails([str(cloud), '--threads', '0'], '--threads must be >= 1')
    fails([str(cloud), '--topk', '0'], '--topk must be >= 1')
    flat = tmp_path / 'flat.npy'
    np.save(flat, np.zeros((70, 2), np.float32))
    fails([str(flat)], '2 values per point, the model needs 3')
    huge = tmp_path / 'huge.npy'  # finite in float64, inf in float32
    np.save(huge, np.full((70, 3), 1e300))
    fails([str(huge)], 'huge.npy: values that are not finite in float32')
    bad = tmp_path / 'bad.txt'
    bad.write_text('0,0,0\n1,x,2\n')
    fails([str(bad)], r'bad.txt:2: non-numeric')
    names = tmp_path / 'names.txt'
    names.write_text('cup\nchair\nlamp\nbed\nsofa\n')
    fails([str(cloud), '--classes', str(names)],
          'names 5 classes, the model has only 4 outputs')
    broken = tmp_path / 'broken.packed'
    broken.write_bytes(open(packed, 'rb').read()[:500])
    fails([str(cloud)], 'broken.packed.*truncated', model=str(broken))


def test_predict_tool_replays_test_preprocessing(trained, tmp_path):
    """A shifted and scaled copy of a cloud gets the same prediction: the
    tool normalises into the unit sphere as the test pipeline does."""
    import numpy as np

    cfg_path, ckpt, _ = trained
    packed = str(tmp_path / 'tiny.packed')
    load_tool('tools/deploy/export_packed.py').main(
        [cfg_path, ckpt, packed, '--points', '64'])
    tool = load_tool('tools/deploy/predict.py')
    rng = np.random.default_rng(3)
    base = rng.uniform(-1, 1, (64, 3)).astype(np.float32)
    np.save(tmp_path / 'a.npy', base)
    np.save(tmp_path / 'b.npy', base * 7.5 + np.float32(40))
    a, b = tool.main([
        packed,
        str(tmp_path / 'a.npy'),
        str(tmp_path / 'b.npy'), '--topk', '4'
    ])
    assert [t['index'] for t in a['top']] == [t['index'] for t in b['top']]
    assert [t['score']
            for t in a['top']] == pytest.approx([t['score'] for t in b['top']],
                                                abs=1e-4)


def test_benchmark_models_report(tmp_path):
    """The table is made from the recorded JSON files: the speed-ups as
    recorded, the point-op share summed over the point ops."""
    tool = load_tool('tools/deploy/benchmark_models.py')
    base = dict(
        cpu='Test CPU',
        cpu_count=2,
        torch_version='2.x',
        numba_version='0.x',
        fp32_ms_b1=40.0,
        packed_ms_b1=4.0,
        speedup_b1=10.0,
        speedup_b1_warm=12.5,
        binary_layers_speedup=20.0,
        pred_agreement_b1=1.0,
        size_ratio=24.0)
    shares = dict(binary_dense=0.5, knn=0.25, fps=0.125, dense=0.125)
    with open(tmp_path / 'dgcnn_t1.json', 'w') as f:
        json.dump(dict(base, packed_op_share_b1=shares), f)
    table = tool.main(['--report-only', '--out', str(tmp_path)])
    assert (tmp_path / 'packed_runtime.md').read_text() == table
    row = next(line for line in table.splitlines()
               if line.startswith('| DGCNN classifier'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    assert cells[1:] == [
        '1024', '1', '40.0', '4.00', '**10.0×**', '12.5×', '20.0×', '50%',
        '38%', '100.0%', '24.0×'
    ]
    assert 'Test CPU' in table
    with pytest.raises(SystemExit):
        tool.parse_args(['--checkpoint', 'nomodel=x.pth'])
