# Copyright (c) mmbinpc contributors. All rights reserved.
"""Model configs and checkpoints for the deployment and analysis tools."""
import copy
from typing import Any, Dict, Optional, Tuple

from torch import nn


def _plain(cfg: Any) -> Dict[str, Any]:
    """A deep-copied plain dict of a (Config)dict."""
    if hasattr(cfg, 'to_dict'):
        cfg = cfg.to_dict()
    return copy.deepcopy(dict(cfg))


def deploy_model_cfgs(model_cfg: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The deployable (binary) model config and its FP32 counterpart.

    A distiller config (``BinaryDistiller`` with ``teacher``/``student``)
    deploys its student: ``student`` (default: the teacher's model config)
    plus the distiller's ``binarize`` options. Any other model config is
    deployed as it is; a ``type='Binarized'`` factory config is read as its
    ``model`` with ``binarize=`` set to the factory's options. The FP32
    counterpart is the same config without the ``binarize`` key.

    Args:
        model_cfg (dict): ``cfg.model`` of a config file.

    Returns:
        tuple[dict, dict]: ``(binary_cfg, fp32_cfg)``.
    """
    cfg = _plain(model_cfg)
    if cfg.get('type') == 'Binarized':  # the factory: its model + options
        options = {k: v for k, v in cfg.items() if k not in ('type', 'model')}
        cfg = dict(_plain(cfg['model']), binarize=options)
    if 'Distiller' in str(cfg.get('type', '')):
        student = cfg.get('student') or cfg.get('teacher')
        if isinstance(student, str):  # a config path, mmdet3d:: included
            from mmbinpc.models.distillers.teacher_source import \
                load_model_config
            student = load_model_config(student)[0]
        if student is None:
            raise ValueError('the distiller config has neither student nor '
                             'teacher; cannot tell which model to deploy')
        student = _plain(student)
        student.pop('init_cfg', None)
        if cfg.get('binarize') is not None:
            student['binarize'] = copy.deepcopy(cfg['binarize'])
        cfg = student
    fp = copy.deepcopy(cfg)
    fp.pop('binarize', None)
    return cfg, fp


def build_model(model_cfg: Dict[str, Any]) -> nn.Module:
    """Build a model config with mmdet3d's registry (``binarize=`` aware,
    see :func:`mmbinpc.binary.build_binarized`)."""
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    from mmengine.registry import DefaultScope

    import mmbinpc  # noqa: F401
    from mmbinpc.binary import build_binarized
    register_all_modules(init_default_scope=False)
    # mmdet3d configs name their types without scope (Det3DDataPreprocessor)
    with DefaultScope.overwrite_default_scope('mmdet3d'):
        model = build_binarized(copy.deepcopy(model_cfg), MODELS)
    model.eval()
    return model


def load_weights(model: nn.Module,
                 checkpoint: Optional[str],
                 strict: bool = True) -> None:
    """Load a training checkpoint (or a distiller's) into ``model``.

    Keys prefixed ``student.`` (a distiller checkpoint) are used with the
    prefix removed and the teacher's keys are ignored.

    Args:
        model (nn.Module): Target model.
        checkpoint (str, optional): Path; None leaves the weights as built.
        strict (bool): Require every model key. Defaults to True.
    """
    if checkpoint is None:
        return
    from mmengine.runner.checkpoint import _load_checkpoint

    import mmbinpc  # noqa: F401  (compat: weights_only loading)
    ckpt = _load_checkpoint(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if any(k.startswith('student.') for k in state):
        state = {
            k[len('student.'):]: v
            for k, v in state.items() if k.startswith('student.')
        }
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(
            f'checkpoint {checkpoint} does not match the model: {err}; use '
            f'the config the checkpoint was trained with') from None
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if strict and (missing or unexpected):
        raise ValueError(
            f'checkpoint {checkpoint} does not match the model: missing '
            f'{missing[:5]}{"..." if len(missing) > 5 else ""}, unexpected '
            f'{unexpected[:5]}{"..." if len(unexpected) > 5 else ""}; use the '
            f'config the checkpoint was trained with')
