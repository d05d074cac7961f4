# Copyright (c) mmbinpc contributors. All rights reserved.
"""Write a binary (optionally KDR-distilled) version of a point-model config.

The result is a short, readable config that inherits SRC through ``_base_``
and changes only the model, so it works for any mmdet3d point config
(``mmdet3d::...`` paths included) and for mmbinpc's own configs::

    # plain binary model, trained from scratch with the task loss
    python tools/convert_config.py \\
        mmdet3d::pointnet2/pointnet2_ssg_2xb16-cosine-50e_s3dis-seg.py \\
        -o configs/my/pn2_xnor.py --method xnor --aggregation max

    # binary student distilled from SRC's trained FP32 model (KDR)
    python tools/convert_config.py configs/dgcnn/dgcnn_fp_modelnet40.py \\
        -o configs/my/dgcnn_lsr_kdr.py --method lsr --aggregation ema \\
        --kdr --teacher-ckpt work_dirs/dgcnn_fp_modelnet40

Without ``--kdr`` but with ``--teacher-ckpt`` the student is still wrapped in
a ``BinaryDistiller`` with λ = η = 0: initialised from the teacher and trained
with the task loss only (the paper's "plain" binary baseline).
"""
import argparse
import os
import os.path as osp
import pprint
import sys
from typing import List, Optional, Sequence

from mmbinpc.binary import binarizer_names
from mmbinpc.binary.convert import AGGREGATIONS
from mmbinpc.models.losses.pooling_norm_loss import REG_NORMS as NORMS

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_LAMBDA = 0.5
DEFAULT_ETA = 0.1


def _base_path(src: str, out: str) -> str:
    """``src`` as written in OUT's ``_base_`` (relative to OUT's folder)."""
    if '::' in src:
        return src
    return osp.relpath(osp.abspath(src), osp.dirname(osp.abspath(out)))


def _teacher_path(src: str) -> str:
    """``src`` as the distiller's ``teacher`` (cwd- or repo-relative)."""
    if '::' in src:
        return src
    absolute = osp.abspath(src)
    rel = osp.relpath(absolute, REPO_ROOT)
    return absolute if rel.startswith('..') else rel


def _fmt(value, indent: int = 0) -> str:
    """Python source for ``value`` in the ``dict(key=value)`` style."""
    pad = ' ' * (indent + 4)
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            flat = 'dict(' + ', '.join(f'{k}={_fmt(v)}'
                                       for k, v in value.items()) + ')'
            if len(flat) + indent <= 72 and '\n' not in flat:
                return flat
            items = [
                f'{pad}{k}={_fmt(v, indent + 4)}' for k, v in value.items()
            ]
            return 'dict(\n' + ',\n'.join(items) + ')'
        return pprint.pformat(value)
    if isinstance(value, (list, tuple)):
        inner = [_fmt(v, indent + 4) for v in value]
        flat = ', '.join(inner)
        op, cl = ('[', ']') if isinstance(value, list) else ('(', ')')
        if len(flat) + indent <= 72 and '\n' not in flat:
            return op + flat + (',' if isinstance(value, tuple)
                                and len(value) == 1 else '') + cl
        return op + '\n' + ',\n'.join(pad + i for i in inner) + cl
    return repr(value)


def _load(src: str):
    from mmengine.config import Config

    from mmbinpc.models.distillers import find_config_file
    if '::' not in src and not osp.isfile(src):
        raise FileNotFoundError(f'config {src!r} not found')
    return Config.fromfile(find_config_file(src))


# yapf: disable
def render(src: str,
           out: str,
           method: str,
           aggregation: str,
           kdr: bool = False,
           teacher_ckpt: Optional[str] = None,
           reg_norm: str = '1',
           temperature: float = 2.0,
           lambda_: float = DEFAULT_LAMBDA,
           eta: float = DEFAULT_ETA,
           command: Optional[str] = None,
           center_inputs: Sequence[str] = ()) -> str:
    # yapf: enable
    """The text of the converted config.

    Args:
        src (str): Source config path (``mmdet3d::`` allowed).
        out (str): Where the result will be written (for ``_base_``).
        method (str): Binarizer name.
        aggregation (str): ``'max'`` or ``'ema'``.
        kdr (bool): Distil from SRC's trained FP32 model. Defaults to False.
        teacher_ckpt (str, optional): Teacher checkpoint file or work dir.
        reg_norm (str): Table 1 norm for L_reg. Defaults to '1'.
        temperature (float): Distillation temperature. Defaults to 2.0.
        lambda_ (float): λ. Defaults to 0.5.
        eta (float): η. Defaults to 0.1.
        command (str, optional): Command line recorded in the header.
        center_inputs (sequence[str]): Patterns of binary layers whose
            input sign is centred (``binarize(center_inputs=...)``; for the
            layer that reads a max-pooled feature, docs/recipe.md).
            Defaults to ().

    Returns:
        str: Config file text.
    """
    if method not in binarizer_names():  # every registered binarizer
        raise ValueError(f'unknown --method {method!r}; valid: '
                         f'{", ".join(binarizer_names())}')
    if aggregation not in AGGREGATIONS:
        raise ValueError(f'unknown --aggregation {aggregation!r}; valid: '
                         f'{", ".join(AGGREGATIONS)}')
    if reg_norm not in NORMS:
        raise ValueError(f'unknown --reg-norm {reg_norm!r}; valid: '
                         f'{", ".join(NORMS)}')
    cfg = _load(src)
    if 'model' not in cfg:
        raise ValueError(f'{src!r} has no `model` to convert')
    if cfg.model.get('type') == 'BinaryDistiller':
        raise ValueError(f'{src!r} is already a BinaryDistiller config')
    binarize = dict(method=method, aggregation=aggregation)
    if center_inputs:
        binarize['center_inputs'] = list(center_inputs)
    recipe = _recipe_lines(cfg)
    lines: List[str] = [
        '# Generated by tools/convert_config.py from', f'#   {src}',
        f'# by: {command}' if command else '#',
        f'_base_ = [{_base_path(src, out)!r}]', '',
        "custom_imports = dict(imports=['mmbinpc'], "
        'allow_failed_imports=False)', '',
        '# Kill-safe checkpoints and a resume that reproduces the '
        'uninterrupted run', '# (docs/security_and_reliability.md).',
        "default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'),",
        "                     rng_state=dict(type='RNGStateHook'))", ''
    ]
    if not kdr and teacher_ckpt is None:
        options = ', '.join(f'{k}={_fmt(v)}' for k, v in binarize.items())
        lines += [
            "# The same model, built binary by mmbinpc's 'Binarized' factory",
            '# (see docs/configs.md).',
            "model = dict(_delete_=True, type='Binarized', "
            'model={{_base_.model}},', f'             {options})', ''
        ] + recipe
        return '\n'.join(lines)
    if kdr and teacher_ckpt is None:
        name = osp.splitext(osp.basename(src.split('::')[-1]))[0]
        teacher_ckpt = osp.join('work_dirs', name)
    distill = dict(
        temperature=float(temperature),
        lambda_=float(lambda_) if kdr else 0.0,
        eta=float(eta) if kdr else 0.0,
        reg_norm=reg_norm,
        pairs='auto')
    model = dict(
        _delete_=True,
        type='BinaryDistiller',
        teacher=_teacher_path(src),
        teacher_ckpt=teacher_ckpt,
        binarize=binarize,
        init_student_from_teacher=True,
        distill=distill)
    hooks = list(cfg.get('custom_hooks', []) or [])
    hooks = [h.to_dict() if hasattr(h, 'to_dict') else dict(h) for h in hooks]
    hooks.append(dict(type='TeacherValHook'))
    what = ('L = λ·L_DS + (1−λ)·L_CE + η·L_reg'
            if kdr else 'plain binary baseline: λ = η = 0, L = L_CE')
    lines += [
        f'# Binary student distilled from the FP32 model of SRC ({what}).',
        '# Train the teacher first: python tools/train.py ' +
        (src if '::' in src else _teacher_path(src)), f'model = {_fmt(model)}',
        '', '# Logs the teacher\'s validation metrics once, as teacher/...',
        f'custom_hooks = {_fmt(hooks)}', ''
    ] + recipe
    return '\n'.join(lines)


#: Training-pipeline transforms binary students train without.
STUDENT_DROPPED_TRANSFORMS = ('RandomPointDropout', )


def _recipe_lines(cfg) -> List[str]:
    """The binary-student recipe (docs/recipe.md) as config lines.

    Scale-relative latent learning rates (the source's optimizer is kept, the
    constructor is added) and, when the source's training pipeline has one,
    that pipeline without point dropout.
    """
    lines = [
        '# Binary-student recipe (docs/recipe.md): scale-relative learning',
        '# rates for the latent weights, no decay on them or on the scales.',
        "optim_wrapper = dict(constructor='BinaryOptimWrapperConstructor',",
        "                     paramwise_cfg=dict(latent_lr='scaled',",
        '                                        latent_decay_mult=0.0))', ''
    ]
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    pipeline = dataset.get('pipeline')
    if not isinstance(pipeline, (list, tuple)):
        return lines
    kept = [
        dict(t) for t in pipeline
        if dict(t).get('type') not in STUDENT_DROPPED_TRANSFORMS
    ]
    if len(kept) == len(pipeline):
        return lines
    return lines + [
        '# The source pipeline without point dropout (it repeats one point',
        "# in place of dropped ones, which skews EMA's pooled sign balance).",
        f'train_dataloader = dict(dataset=dict(pipeline={_fmt(kept, 4)}))', ''
    ]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a binary / KDR version of a point-model config')
    parser.add_argument('src', help='source config (mmdet3d:: paths allowed)')
    parser.add_argument('-o', '--out', required=True, help='output config')
    parser.add_argument(
        '--method',
        required=True,
        choices=binarizer_names(),
        help='a registered binarizer')
    parser.add_argument('--aggregation', required=True, choices=AGGREGATIONS)
    parser.add_argument(
        '--kdr',
        action='store_true',
        help='distil from the trained FP32 model of SRC')
    parser.add_argument(
        '--teacher-ckpt',
        default=None,
        help='teacher checkpoint or work dir (default with '
        '--kdr: work_dirs/<SRC name>)')
    parser.add_argument('--reg-norm', default='1', choices=NORMS)
    parser.add_argument('--temperature', type=float, default=2.0)
    parser.add_argument(
        '--lambda', dest='lambda_', type=float, default=DEFAULT_LAMBDA)
    parser.add_argument('--eta', type=float, default=DEFAULT_ETA)
    parser.add_argument(
        '--center-inputs',
        nargs='+',
        default=[],
        metavar='PATTERN',
        help='binary layers (name patterns) whose input sign is centred: '
        'the layer reading a max-pooled feature, e.g. the head\'s first '
        'layer (docs/recipe.md)')
    parser.add_argument(
        '--force', action='store_true', help='overwrite OUT if it exists')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    if osp.exists(args.out) and not args.force:
        raise SystemExit(f'{args.out} exists; pass --force to overwrite it')
    text = render(
        args.src,
        args.out,
        args.method,
        args.aggregation,
        args.kdr,
        args.teacher_ckpt,
        args.reg_norm,
        args.temperature,
        args.lambda_,
        args.eta,
        command=' '.join(['python', 'tools/convert_config.py'] +
                         list(argv if argv is not None else sys.argv[1:])),
        center_inputs=args.center_inputs)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    print(f'wrote {args.out}')
    return args.out


if __name__ == '__main__':
    main()
