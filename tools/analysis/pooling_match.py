# Copyright (c) mmbinpc contributors. All rights reserved.
"""Can the pooling regulariser L_reg do anything for this student?

Usage:
    python tools/analysis/pooling_match.py CONFIG [CHECKPOINT] \
        [--batches 4] [--batch-size 32] [--json OUT] \
        [--cfg-options KEY=VALUE ...]

CONFIG is a ``BinaryDistiller`` config. Without CHECKPOINT the student is
measured as training starts (the teacher's weights, binarized); with one,
as trained. On a few training batches, with the student in training mode
as L_reg sees it, the tool reports for every paired pooling site:

* the student's and the teacher's pooled values (mean, std, share > 0);
* ``corr``: Pearson correlation of the two over all (sample, channel)
  entries, and ``channel_corr``: of their per-channel batch means;
* ``offset_share``: the part of the squared difference that per-channel
  constant offsets explain (what a shift of each channel could remove);
* L_reg of the site under each Table 1 norm (unweighted);

and, for every loss term of the distiller (``loss_ce``, ``loss_ds``,
``loss_reg``, ...), the norm of its gradient with respect to the student's
parameters. A regulariser whose gradient is a small fraction of the task
loss's, on outputs uncorrelated with the teacher's, leaves training as it
would be without it (docs/results.md, "What L_reg does here"). The
checkpoint on disk and the model's BatchNorm statistics are not changed.
"""
import argparse
import copy
import datetime
import json
import sys
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='student vs teacher pooling outputs and the gradient '
        'of each distillation loss term')
    parser.add_argument('config', help='a BinaryDistiller config')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        default=None,
        help='its checkpoint (default: the student as '
        'training starts)')
    parser.add_argument(
        '--batches',
        type=int,
        default=4,
        help='training batches to average over (default 4)')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=32,
        help='clouds per batch (default 32)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the batch order and augmentation '
        '(default 0)')
    parser.add_argument('--json', default=None, help='write the result here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default=None,
        help='override config keys')
    return parser.parse_args(argv)


def site_statistics(student, teacher) -> Dict[str, float]:
    """How far one site's student output is from the teacher's.

    Args:
        student (Tensor): ``(B, C, ...)`` pooled student output.
        teacher (Tensor): The teacher's, same shape.

    Returns:
        dict: the statistics listed in the module doc, plus ``l_reg`` (a
        dict norm -> unweighted L_reg of this site).
    """
    from mmbinpc.models.losses.pooling_norm_loss import REG_NORMS, pooling_norm
    if student.shape != teacher.shape:
        raise ValueError(f'student output {tuple(student.shape)} and teacher '
                         f'output {tuple(teacher.shape)} differ in shape')
    s = student.detach().double().reshape(student.shape[0], student.shape[1],
                                          -1)
    t = teacher.detach().double().reshape(s.shape)
    # channels as columns: (B * positions, C)
    s_rows = s.transpose(1, 2).reshape(-1, s.shape[1])
    t_rows = t.transpose(1, 2).reshape(-1, s.shape[1])

    def corr(a, b) -> float:
        a, b = a - a.mean(), b - b.mean()
        den = float(a.norm() * b.norm())
        # undefined (None) when either side is constant
        return float((a * b).sum()) / den if den > 0 else None

    diff = s_rows - t_rows
    total = float((diff**2).sum())
    offset = float((diff.mean(0)**2).sum()) * diff.shape[0]
    return dict(
        shape=list(student.shape),
        student_mean=float(s.mean()),
        student_std=float(s.std()),
        student_positive=float((s > 0).double().mean()),
        teacher_mean=float(t.mean()),
        teacher_std=float(t.std()),
        teacher_positive=float((t > 0).double().mean()),
        corr=corr(s_rows.flatten(), t_rows.flatten()),
        channel_corr=corr(s_rows.mean(0), t_rows.mean(0)),
        offset_share=offset / total if total > 0 else None,
        l_reg={
            n: float(pooling_norm(student.detach(), teacher.detach(), n))
            for n in REG_NORMS
        },
        mean_abs_diff=float(diff.abs().mean()),
    )


def term_gradient_norms(
        losses: Mapping,
        params: Sequence,
        keys: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """Euclidean norm of each loss term's gradient over ``params``.

    Args:
        losses (Mapping): Loss name -> scalar tensor (one graph).
        params (Sequence[Tensor]): The parameters to differentiate by.
        keys (Iterable[str], optional): The terms. Defaults to every key
            that contains ``'loss'``.

    Returns:
        dict: term -> gradient norm (0.0 for a term with no path to
        ``params``).
    """
    import torch
    keys = [k for k in losses if 'loss' in k] if keys is None else list(keys)
    out = {}
    for key in keys:
        value = losses[key]
        if not value.requires_grad:
            out[key] = 0.0
            continue
        grads = torch.autograd.grad(
            value, list(params), retain_graph=True, allow_unused=True)
        out[key] = float(
            sum(float(g.double().norm()**2) for g in grads
                if g is not None)**0.5)
    return out


def _mean_of(dicts: List[dict]) -> dict:
    """Entry-wise mean of dicts of floats (nested dicts too); lists kept.

    A statistic that is undefined (None) in some batches is the mean of the
    others, or None if it is undefined in all.
    """
    out = {}
    for key, first in dicts[0].items():
        if isinstance(first, dict):
            out[key] = _mean_of([d[key] for d in dicts])
        elif isinstance(first, list):
            out[key] = first
        else:
            values = [d[key] for d in dicts if d[key] is not None]
            out[key] = sum(values) / len(values) if values else None
    return out


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return 'undefined' if value is None else f'{value:.{digits}f}'


def measure(model, batches: Sequence[Tuple[dict, list]]) -> dict:
    """Site statistics and term gradient norms averaged over ``batches``.

    Args:
        model (BinaryDistiller): The distiller; its state is restored.
        batches (Sequence): ``(inputs, data_samples)`` pairs, preprocessed.

    Returns:
        dict: ``sites`` (site -> statistics) and ``gradient_norms`` (term ->
        norm), means over the batches.
    """
    if not hasattr(model, 'pooling_outputs'):
        raise TypeError(f'{type(model).__name__} is not a BinaryDistiller; '
                        'pooling_match needs a -kdr style config whose model '
                        'has a teacher and a student')
    if not batches:
        raise ValueError('no batches to measure')
    state = copy.deepcopy(model.state_dict())
    steps = model._steps
    model.train()
    params = [p for p in model.student.parameters() if p.requires_grad]
    sites: Dict[str, List[dict]] = {}
    grads: List[dict] = []
    try:
        for inputs, samples in batches:
            names, s_outs, t_outs = model.pooling_outputs(inputs, samples)
            for name, s, t in zip(names, s_outs, t_outs):
                sites.setdefault(name, []).append(site_statistics(s, t))
            grads.append(
                term_gradient_norms(model.loss(inputs, samples), params))
    finally:
        model.load_state_dict(state)
        model._steps = steps
    return dict(
        sites={
            n: _mean_of(v)
            for n, v in sites.items()
        },
        gradient_norms=_mean_of(grads))


def main(argv=None) -> dict:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmengine.runner.utils import set_random_seed

    from mmbinpc.analysis import code_version, host_info
    from mmbinpc.apis import build_from_checkpoint
    from mmbinpc.engine.atomic_io import atomic_write_text
    if args.batches < 1 or args.batch_size < 1:
        raise SystemExit('--batches and --batch-size must be >= 1')
    if args.checkpoint:
        cfg, model = build_from_checkpoint(args.config, args.checkpoint,
                                           args.cfg_options)
    else:
        cfg = Config.fromfile(args.config)
        if args.cfg_options:
            cfg.merge_from_dict(args.cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmdet3d'))
        from mmdet3d.registry import MODELS
        model = MODELS.build(cfg.model)
    loader_cfg = cfg.train_dataloader
    loader_cfg.update(
        num_workers=0,
        persistent_workers=False,
        batch_size=args.batch_size,
        sampler=dict(type='DefaultSampler', shuffle=True, seed=args.seed))
    set_random_seed(args.seed)  # the augmentations draw from the globals
    batches = []
    for batch in Runner.build_dataloader(loader_cfg):
        data = model.data_preprocessor(batch, True)
        batches.append((data['inputs'], data['data_samples']))
        if len(batches) == args.batches:
            break
    result = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        distill={
            k: v
            for k, v in model.distill_cfg.items()
        } if hasattr(model, 'distill_cfg') else None,
        batches=len(batches),
        batch_size=args.batch_size,
        seed=args.seed,
        command='python tools/analysis/pooling_match.py ' +
        ' '.join(sys.argv[1:] if argv is None else argv),
        **measure(model, batches),
        code=code_version(),
        host=host_info(),
        date=datetime.datetime.now().isoformat(timespec='seconds'))
    what = args.checkpoint or 'the student at initialisation'
    print(f'{what}: {len(batches)} training batches of {args.batch_size}')
    for name, st in result['sites'].items():
        print(f"  {name}: corr {_fmt(st['corr'])}, channel corr "
              f"{_fmt(st['channel_corr'])}, offset share "
              f"{_fmt(st['offset_share'], 2)}, student mean "
              f"{st['student_mean']:.2f}"
              f" std {st['student_std']:.2f}, teacher mean "
              f"{st['teacher_mean']:.2f} std {st['teacher_std']:.2f}, "
              f"L_reg('1') {st['l_reg']['1']:.3f}")
    print('  gradient norm over the student\'s parameters: ' +
          ', '.join(f'{k} {v:.4g}'
                    for k, v in result['gradient_norms'].items()))
    if args.json:
        atomic_write_text(json.dumps(result, indent=1), args.json)
    return result


if __name__ == '__main__':
    main()
