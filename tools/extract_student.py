# Copyright (c) mmbinpc contributors. All rights reserved.
"""Write a student-only checkpoint from a BinaryDistiller checkpoint.

The result holds the binary student's weights under the names of a plain
model, so it loads into a config whose ``model`` is the student with a
``binarize=dict(...)`` key. With ``--config`` that config is written too
(next to OUT, same name with ``.py``, or ``--out-config``)::

    python tools/extract_student.py work_dirs/dgcnn_bin_kdr/epoch_2.pth \\
        work_dirs/dgcnn_bin_kdr/student.pth --config configs/dgcnn_bin_kdr.py
    python tools/test.py work_dirs/dgcnn_bin_kdr/student.py \\
        work_dirs/dgcnn_bin_kdr/student.pth
"""
import argparse
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional

import torch

PREFIX = 'student.'


def student_state_dict(state_dict: Dict[str, torch.Tensor]) -> OrderedDict:
    """The ``student.*`` entries of a distiller state dict, prefix removed.

    Args:
        state_dict (dict): State dict of a ``BinaryDistiller`` (a leading
            ``module.`` from a DDP wrapper is allowed).

    Returns:
        OrderedDict: The student's state dict.

    Raises:
        KeyError: If there is no ``student.`` entry.
    """
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith(PREFIX):
            out[key[len(PREFIX):]] = value
    if not out:
        some = ', '.join(list(state_dict)[:5])
        raise KeyError(
            'no student.* weights in this checkpoint (is it a '
            f'BinaryDistiller checkpoint?); first keys: {some}')
    return out


def student_config(config: str):
    """Turn a distiller training config into the plain student's config.

    Args:
        config (str): Path of a config whose model is a BinaryDistiller.

    Returns:
        mmengine.Config: The same config with ``model`` replaced by the
        student model config carrying ``binarize=...`` and the teacher hook
        removed.
    """
    from mmengine.config import Config, ConfigDict

    from mmbinpc.models.distillers import BinaryDistiller, load_model_config
    cfg = Config.fromfile(config)
    model = cfg.model
    if model.get('type') != 'BinaryDistiller':
        raise ValueError(f'{config!r} does not train a BinaryDistiller')
    teacher_cfg, _ = load_model_config(model['teacher'])
    student, binarize = BinaryDistiller.student_config(
        teacher_cfg, model.get('student'), model.get('binarize'))
    if binarize is not None:
        student['binarize'] = binarize
    cfg.model = ConfigDict(student)
    hooks = [
        h for h in cfg.get('custom_hooks', []) or []
        if h.get('type') != 'TeacherValHook'
    ]
    cfg.custom_hooks = hooks
    cfg.load_from = None
    return cfg


def extract(ckpt: str,
            out: str,
            config: Optional[str] = None,
            out_config: Optional[str] = None) -> Dict[str, str]:
    """Extract the student; optionally write its plain config.

    Args:
        ckpt (str): Distiller checkpoint.
        out (str): Output checkpoint path.
        config (str, optional): The distiller's training config.
        out_config (str, optional): Where to write the student config
            (default: OUT with ``.py``).

    Returns:
        dict[str, str]: ``checkpoint`` and (with ``config``) ``config`` paths.
    """
    from mmbinpc.compat import load_checkpoint_file
    checkpoint = load_checkpoint_file(ckpt, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    student = student_state_dict(state)
    meta = dict(checkpoint.get('meta', {}) or {})
    meta['extracted_from'] = osp.abspath(ckpt)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=student), out)
    written = dict(checkpoint=out)
    if config is not None:
        cfg = student_config(config)
        out_config = out_config or osp.splitext(out)[0] + '.py'
        cfg.dump(out_config)
        written['config'] = out_config
    return written


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a student-only checkpoint from a BinaryDistiller '
        'checkpoint')
    parser.add_argument('ckpt', help='BinaryDistiller checkpoint')
    parser.add_argument('out', help='output student checkpoint')
    parser.add_argument('--config', help='the distiller training config; '
                        'writes the plain student config next to OUT')
    parser.add_argument('--out-config', help='where to write that config')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    written = extract(args.ckpt, args.out, args.config, args.out_config)
    for kind, path in written.items():
        print(f'wrote student {kind}: {path}')


if __name__ == '__main__':
    main()
