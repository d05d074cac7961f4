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

With ``--config`` the extracted weights are checked against the student that
config builds: every parameter and buffer present, no unknown key, no tensor
of another shape, or the tool exits with status 1
(``--allow-partial-checkpoint`` writes them anyway). Files are written
atomically (temporary file, then rename).
"""
import argparse
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional

import torch

PREFIX = 'student.'


def student_state_dict(state_dict: Dict[str, torch.Tensor],
                       path: str = '<checkpoint>') -> OrderedDict:
    """The ``student.*`` entries of a distiller state dict, prefix removed.

    Args:
        state_dict (dict): State dict of a ``BinaryDistiller`` (a leading
            ``module.`` from a DDP wrapper is allowed).
        path (str): The checkpoint file, for the error message.

    Returns:
        OrderedDict: The student's state dict.

    Raises:
        CheckpointMismatchError: If there is no ``student.`` entry.
    """
    from mmbinpc.errors import CheckpointMismatchError
    out = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key.startswith(PREFIX):
            out[key[len(PREFIX):]] = value
    if not out:
        some = ', '.join(list(state_dict)[:4])
        raise CheckpointMismatchError(
            path, f'holds no student.* weights, so it is not a '
            f'BinaryDistiller checkpoint (its {len(state_dict)} keys include '
            f'{some})', 'Give the checkpoint of a distiller run (its work '
            'dir\'s best_*.pth or epoch_*.pth); a plain model\'s checkpoint '
            'needs no extraction')
    return out


def build_student(cfg) -> torch.nn.Module:
    """Build the plain student of :func:`student_config` (mmdet3d scope)."""
    import copy

    from mmdet3d.registry import MODELS
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        return MODELS.build(copy.deepcopy(cfg.model))


def student_config(config: str):
    """Turn a distiller training config into the plain student's config.

    Args:
        config (str): Path of a config whose model is a BinaryDistiller.

    Returns:
        mmengine.Config: The same config with ``model`` replaced by the
        student model config (``type='Binarized'`` around the student when
        the distiller binarizes it) and the teacher hook removed.
    """
    from mmengine.config import Config, ConfigDict

    from mmbinpc.models.distillers import BinaryDistiller, load_model_config
    cfg = Config.fromfile(config)
    model = cfg.model
    if model.get('type') != 'BinaryDistiller':
        raise ValueError(f'{config!r} does not train a BinaryDistiller')
    teacher_cfg, _ = load_model_config(model['teacher'])
    student, binarize = BinaryDistiller.student_config(teacher_cfg,
                                                       model.get('student'),
                                                       model.get('binarize'))
    if binarize is not None:  # the 'Binarized' factory builds it anywhere
        student = dict(type='Binarized', model=student, **binarize)
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
            out_config: Optional[str] = None,
            allow_partial: bool = False) -> Dict[str, str]:
    """Extract the student; optionally check it and write its plain config.

    Args:
        ckpt (str): Distiller checkpoint.
        out (str): Output checkpoint path.
        config (str, optional): The distiller's training config. The
            extracted weights must fit the student it builds.
        out_config (str, optional): Where to write the student config
            (default: OUT with ``.py``).
        allow_partial (bool): Write weights that do not fit the config's
            student (a warning instead of an error).

    Returns:
        dict[str, str]: ``checkpoint`` and (with ``config``) ``config`` paths.

    Raises:
        CheckpointMismatchError: Unreadable file, no student weights, or
            (with ``config``) weights that do not fit its student.
    """
    import logging

    from mmengine.logging import print_log

    from mmbinpc.apis.checkpoint import (check_state, checkpoint_state,
                                         read_checkpoint)
    from mmbinpc.engine.atomic_io import atomic_torch_save, atomic_write_text
    checkpoint = read_checkpoint(ckpt)
    student = student_state_dict(checkpoint_state(checkpoint, ckpt), ckpt)
    cfg = None
    if config is not None:
        cfg = student_config(config)
        match = check_state(
            build_student(cfg),
            student,
            ckpt,
            allow_partial,
            fix=(f'Give the checkpoint of a run of {config}, or the config '
                 'that run used; --allow-partial-checkpoint extracts anyway'),
            checkpoint=checkpoint)
        if not match.ok:
            print_log(
                f'the student of {ckpt} does not fit {config}: '
                f'{match.describe()}',
                logger='current',
                level=logging.WARNING)
    meta = dict(checkpoint.get('meta', {}) or {})
    meta['extracted_from'] = osp.abspath(ckpt)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    atomic_torch_save(dict(meta=meta, state_dict=student), out)
    written = dict(checkpoint=out)
    if cfg is not None:
        out_config = out_config or osp.splitext(out)[0] + '.py'
        if out_config.endswith('.py'):
            atomic_write_text(cfg.pretty_text, out_config)
        else:
            cfg.dump(out_config)
        written['config'] = out_config
    return written


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a student-only checkpoint from a BinaryDistiller '
        'checkpoint')
    parser.add_argument('ckpt', help='BinaryDistiller checkpoint')
    parser.add_argument('out', help='output student checkpoint')
    parser.add_argument(
        '--config',
        help='the distiller training config; '
        'writes the plain student config next to OUT')
    parser.add_argument('--out-config', help='where to write that config')
    parser.add_argument(
        '--allow-partial-checkpoint',
        action='store_true',
        help='with --config: extract even when the weights do not fit the '
        'student that config builds (parameters or buffers missing, unknown '
        'keys, tensors of another shape). Without it any mismatch exits '
        'with status 1')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, str]:
    """Run the tool; returns what :func:`extract` wrote."""
    args = parse_args(argv)
    written = extract(args.ckpt, args.out, args.config, args.out_config,
                      args.allow_partial_checkpoint)
    for kind, path in written.items():
        print(f'wrote student {kind}: {path}')
    return written


if __name__ == '__main__':
    from mmbinpc.errors import MMBinPCFileError
    try:
        main()
    except MMBinPCFileError as err:
        sys.exit(f'error: {err}')
