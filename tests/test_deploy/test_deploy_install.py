# Copyright (c) mmbinpc contributors. All rights reserved.
"""The runtime and predict.py work where only requirements/deploy.txt is
installed: run them in a Python whose PyTorch, mmcv, mmengine, mmdet,
mmdet3d and SciPy imports fail."""
import json
import os
import subprocess
import sys

import numpy as np
import torch

from mmbinpc.deploy import pack_signs
from mmbinpc.deploy.converter import GraphBuilder
from mmbinpc.deploy.runtime import FORMAT_NAME, FORMAT_VERSION, write_graph
from .helpers import build_trained, export_and_load, pointnet_cfg, torch_logits

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
HEAVY = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmdet3d', 'scipy', 'h5py',
         'matplotlib')

RUN = '''
import json, sys
for name in {heavy!r}:
    sys.modules[name] = None  # importing it now raises ImportError
import numpy as np
from mmbinpc.deploy.runtime import PackedModel
out = {{}}
for key, path in {files!r}.items():
    out[key] = PackedModel.load(path)(np.load(path + '.input.npy')).tolist()
sys.argv = ['predict.py'] + {argv!r}
import runpy
runpy.run_path({predict!r}, run_name='__main__')
loaded = sorted(k for k, v in sys.modules.items()
                if v is not None and k.split('.')[0] in {heavy!r})
print('RESULT', json.dumps(dict(out=out, heavy=loaded)))
'''


def segmentation_file(path):
    """A small per-point graph (dense -> binary -> dense): (B, N, 4) logits."""
    rng = np.random.default_rng(0)
    b = GraphBuilder(3)
    w0 = rng.standard_normal((16, 3)).astype(np.float32)
    x = b.add('fc0', 'dense', ['points'],
              dict(in_channels=3, out_channels=16, clamp=[-1.0, 1.0]),
              dict(weight=w0, bias=np.zeros(16, np.float32)))
    w1 = rng.standard_normal((8, 16))
    x = b.add(
        'bin1', 'binary_dense', [x],
        dict(
            in_channels=16,
            out_channels=8,
            input='float',
            scale_mode='none',
            clamp=None,
            output='float'),
        dict(
            weight_bits=pack_signs(w1),
            out_scale=np.full(8, 0.5, np.float32),
            out_shift=np.zeros(8, np.float32),
            threshold=np.zeros(16, np.float32)))
    w2 = rng.standard_normal((4, 8)).astype(np.float32)
    out = b.add('cls', 'dense', [x],
                dict(in_channels=8, out_channels=4, clamp=None),
                dict(weight=w2, bias=np.zeros(4, np.float32)))
    meta = dict(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        task='segmentation',
        input=dict(channels=3, num_points=32),
        num_classes=4,
        preprocess=[],
        source=dict(model='toy'),
        nodes=b.nodes,
        output=out)
    write_graph(path, meta, b.arrays)

    def reference(pts):
        h = np.clip(pts @ w0.T, -1, 1)
        signs = np.where(h >= 0, 1.0, -1.0) @ np.where(w1 >= 0, 1.0, -1.0).T
        return (0.5 * signs) @ w2.T

    return reference


def test_runtime_and_predict_without_torch(tmp_path):
    model = build_trained(pointnet_cfg('lsr', 'ema', tnets=True), steps=1)
    summary, _ = export_and_load(model, tmp_path, 'cls.packed')
    seg_path = str(tmp_path / 'seg.packed')
    seg_reference = segmentation_file(seg_path)
    rng = np.random.default_rng(1)
    cls_in = rng.uniform(-1, 1, (3, 64, 3)).astype(np.float32)
    seg_in = rng.uniform(-1, 1, (2, 32, 3)).astype(np.float32)
    np.save(summary.path + '.input.npy', cls_in)
    np.save(seg_path + '.input.npy', seg_in)
    cloud_txt = tmp_path / 'cloud.txt'
    np.savetxt(cloud_txt, seg_in[0], delimiter=',', fmt='%.6f')
    cloud_npy = tmp_path / 'cloud.npy'
    np.save(cloud_npy, seg_in[1])
    code = RUN.format(
        heavy=HEAVY,
        files=dict(cls=summary.path, seg=seg_path),
        argv=[seg_path, str(cloud_txt),
              str(cloud_npy)],
        predict=os.path.join(ROOT, 'tools', 'deploy', 'predict.py'))
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, '-c', code],
                          capture_output=True,
                          text=True,
                          env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split('RESULT ', 1)[1])
    assert result['heavy'] == []  # nothing heavy was imported
    cls_out = np.array(result['out']['cls'])
    ref = torch_logits(model, torch.from_numpy(cls_in))
    np.testing.assert_allclose(cls_out, ref, rtol=1e-4, atol=1e-4)
    seg_out = np.array(result['out']['seg'])
    assert seg_out.shape == (2, 32, 4)
    np.testing.assert_allclose(
        seg_out, seg_reference(seg_in), rtol=1e-4, atol=1e-4)
    # predict.py wrote one label per point next to each cloud
    labels_txt = np.loadtxt(tmp_path / 'cloud.labels.txt', dtype=np.int64)
    labels_npy = np.load(tmp_path / 'cloud.labels.npy')
    np.testing.assert_array_equal(labels_txt, seg_out[0].argmax(-1))
    np.testing.assert_array_equal(labels_npy, seg_out[1].argmax(-1))
    assert 'cloud.labels.txt' in proc.stdout
