# Copyright (c) mmbinpc contributors. All rights reserved.
"""Model configs and checkpoints for the deployment and analysis tools."""
import copy
import io
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .converter.layers import NotSupportedError


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


def state_dict_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())`` (the FP32 checkpoint
    weights), measured in memory."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


#: Test-pipeline transforms and the packed-file step that replays each
#: (None: nothing to replay on a raw cloud).
PIPELINE_STEPS = {
    'NormalizePointsToUnitSphere': 'normalize_unit_sphere',
    'PackClsInputs': None,
}


def preprocess_steps(pipeline: Sequence[Any]) -> List[str]:
    """The steps ``predict.py`` replays for a test pipeline.

    Args:
        pipeline (Sequence[dict]): The test dataloader's pipeline configs.

    Returns:
        list[str]: Step names, in order (see
        :data:`~mmbinpc.deploy.runtime.preprocess.STEPS`).

    Raises:
        NotSupportedError: For a transform the packed runtime cannot
            replay, so that predictions never run on differently
            preprocessed clouds.
    """
    steps = []
    for transform in pipeline:
        kind = transform.get('type') if hasattr(transform, 'get') else None
        if kind not in PIPELINE_STEPS:
            raise NotSupportedError(
                f'not supported yet: the test pipeline step {kind!r}; a '
                f'packed model replays only '
                f'{", ".join(sorted(PIPELINE_STEPS))}')
        if PIPELINE_STEPS[kind] is not None:
            steps.append(PIPELINE_STEPS[kind])
    return steps
