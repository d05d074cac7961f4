# Copyright (c) mmbinpc contributors. All rights reserved.
"""Reading checkpoints and checking that they fit the model they go into.

torch and mmengine load a state dict non-strictly by default: a checkpoint of
another model loads nothing, prints a warning and the run goes on with the
model's initial weights. The tools (``tools/test.py``,
``tools/extract_student.py``, ``tools/deploy/export_packed.py``) and the
``BinaryDistiller``'s teacher loading use this module instead, so that

* a file that cannot be read (missing, a directory, truncated, not a
  checkpoint) is a :class:`~mmbinpc.errors.CheckpointMismatchError` naming it;
* a checkpoint that leaves any parameter or buffer of the model unloaded, has
  keys the model does not have, or holds tensors of another shape is a
  :class:`~mmbinpc.errors.CheckpointMismatchError` that names the file, gives
  counts and a few key names, and says what to do.

The tools accept ``--allow-partial-checkpoint`` (:data:`ALLOW_PARTIAL_FLAG`)
to load what fits anyway.
"""
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from mmbinpc.errors import CheckpointMismatchError

ALLOW_PARTIAL_FLAG = '--allow-partial-checkpoint'
ALLOW_PARTIAL_HELP = (
    'load the checkpoint even when it does not fit the model (parameters or '
    'buffers left unloaded, unknown keys, tensors of another shape): what '
    'fits is loaded, the rest keeps its initial values. Without this flag '
    'any mismatch is an error (exit 1)')
TOOL_FIX = (
    'Use the config the checkpoint was trained with (a distiller '
    'checkpoint goes with its distiller config; tools/extract_student.py '
    'writes its student for a plain binary config), or pass '
    f'{ALLOW_PARTIAL_FLAG} to load only what fits')
STUDENT_PREFIX = 'student.'
TEACHER_PREFIX = 'teacher.'
# BatchNorm's batch counter only matters with momentum=None; checkpoints
# written by older torch versions lack it and torch fills it in.
TOLERATED_MISSING = ('num_batches_tracked', )
# What a checkpoint's recorded config says about the model it trained.
_BINARY_MARKERS = re.compile(r'\bbinarize\b|BinaryDistiller|Binarized')
_SHOWN = 4  # key names shown per list in messages


@dataclass
class StateMatch:
    """How a state dict fits a model.

    Attributes:
        expected (int): Tensors the model saves (and so must be loaded).
        loaded (int): Expected tensors present with the right shape.
        missing (list[str]): Expected keys absent from the state dict.
        unexpected (list[str]): State-dict keys the model does not have.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``.
    """

    expected: int = 0
    loaded: int = 0
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every expected tensor loads and nothing is left over."""
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        """One line per kind of problem, with counts and a few names."""

        def some(keys: List[str]) -> str:
            shown = ', '.join(keys[:_SHOWN])
            return shown + (f', ... ({len(keys) - _SHOWN} more)'
                            if len(keys) > _SHOWN else '')

        def are(n: int) -> str:
            return 'is' if n == 1 else 'are'

        def tensors(n: int) -> str:
            return f'{n} tensor' + ('' if n == 1 else 's')

        parts = []
        if self.missing:
            n = len(self.missing)
            parts.append(f'{n} of the model\'s {tensors(self.expected)} '
                         f'{are(n)} not in the checkpoint '
                         f'({some(self.missing)})')
        if self.unexpected:
            n = len(self.unexpected)
            parts.append(f'{tensors(n)} of the checkpoint {are(n)} not in '
                         f'the model ({some(self.unexpected)})')
        if self.mismatched:
            n = len(self.mismatched)
            shapes = [
                f'{k} {tuple(c)} in the checkpoint vs {tuple(m)} in '
                f'the model' for k, c, m in self.mismatched
            ]
            parts.append(f'{tensors(n)} {"has" if n == 1 else "have"} '
                         f'another shape ({some(shapes)})')
        return '; '.join(parts)


def read_checkpoint(path: str,
                    map_location: Any = 'cpu',
                    fix: Optional[str] = None) -> Dict[str, Any]:
    """Load a checkpoint file (``weights_only``), any failure naming it.

    Args:
        path (str): The checkpoint file.
        map_location: Passed to :func:`torch.load`. Defaults to 'cpu'.
        fix (str, optional): What to tell the user when the file is
            unreadable (default: a generic hint).

    Returns:
        dict: The checkpoint (a raw state dict is returned as it is).

    Raises:
        CheckpointMismatchError: The file is missing, a directory, truncated,
            not a checkpoint, or holds objects outside the types mmengine
            writes (see :func:`mmbinpc.compat.load_checkpoint_file`).
    """
    import os.path as osp

    from mmbinpc.compat import load_checkpoint_file
    path = osp.expanduser(str(path))
    if osp.isdir(path):
        raise CheckpointMismatchError(
            path, 'is a directory, not a checkpoint file',
            'Give a .pth file, e.g. the best_*.pth or epoch_*.pth in it')
    if not osp.exists(path):
        raise CheckpointMismatchError(
            path, 'does not exist', fix
            or 'Check the path, or train the model first with '
            'tools/train.py')
    try:
        checkpoint = load_checkpoint_file(path, map_location=map_location)
    except Exception as err:  # torch raises many types for a broken file
        text = str(err)
        first = text.strip().splitlines()[0] if text.strip() else ''
        found = re.search(r'Unsupported global: GLOBAL (\S+)', text)
        if found or 'HistoryBuffer statistics' in text:
            what = found.group(1) if found else 'a getattr call'
            raise CheckpointMismatchError(
                path, f'holds a Python object ({what}) besides tensors and '
                'the types mmengine writes, so it is not loaded: loading it '
                'could run code', 'Use a checkpoint written by tools/train.py '
                '(see docs/security_and_reliability.md); if you trust the '
                'file, allow the type with torch.serialization.'
                'add_safe_globals') from err
        if 'Weights only load failed' in text:
            first = text.strip().splitlines()[-3] if len(
                text.strip().splitlines()) > 3 else first
        detail = f'{type(err).__name__}: {first.split(". ")[0]}'
        if osp.getsize(path) == 0:
            detail = 'the file is empty'
        raise CheckpointMismatchError(
            path, f'cannot be read: it is truncated, corrupted or not a torch '
            f'checkpoint ({detail})', fix
            or 'A run killed while writing it leaves such a file; use another '
            'checkpoint of the run (e.g. an epoch_*.pth) or train again'
        ) from err
    if not isinstance(checkpoint, Mapping):
        raise CheckpointMismatchError(
            path, f'holds a {type(checkpoint).__name__}, not a checkpoint '
            'dict', fix or 'Give a checkpoint written by tools/train.py')
    return dict(checkpoint)


def checkpoint_state(checkpoint: Mapping[str, Any],
                     path: str = '<checkpoint>') -> 'OrderedDict':
    """The model state dict of a checkpoint, DDP ``module.`` prefix removed.

    Args:
        checkpoint (dict): An mmengine checkpoint (``state_dict`` key) or a
            raw state dict.
        path (str): The file, for the error message.

    Returns:
        OrderedDict: Key to tensor.

    Raises:
        CheckpointMismatchError: If there is no state dict of tensors.
    """
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise CheckpointMismatchError(
            path, 'holds no model weights (no state_dict)',
            'Give a checkpoint written by tools/train.py')
    out = OrderedDict()
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise CheckpointMismatchError(
                path, f'its state_dict entry {key!r} is a '
                f'{type(value).__name__}, not a tensor',
                'Give a checkpoint written by tools/train.py')
        out[key[len('module.'):] if key.startswith('module.') else key] = \
            value
    return out


def select_student(state: Mapping[str, torch.Tensor]) -> 'OrderedDict':
    """The ``student.*`` entries of a distiller state dict, prefix removed.

    A state dict without any ``student.`` key is returned unchanged.
    """
    if not any(k.startswith(STUDENT_PREFIX) for k in state):
        return OrderedDict(state)
    return OrderedDict((k[len(STUDENT_PREFIX):], v) for k, v in state.items()
                       if k.startswith(STUDENT_PREFIX))


def _module_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """Every parameter and persistent buffer of ``model`` by state-dict name.

    Unlike ``model.state_dict()`` this ignores state-dict hooks, so it also
    lists tensors a model leaves out of its checkpoints on purpose (the
    ``BinaryDistiller``'s frozen teacher): loading those is allowed.
    """
    tensors = {}
    for prefix, module in model.named_modules():
        dot = prefix + '.' if prefix else ''
        for name, param in module._parameters.items():
            if param is not None:
                tensors[dot + name] = param
        skip = getattr(module, '_non_persistent_buffers_set', set())
        for name, buf in module._buffers.items():
            if buf is not None and name not in skip:
                tensors[dot + name] = buf
    return tensors


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / mmengine wrapper (the model itself if none)."""
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


def match_state(model: nn.Module, state: Mapping[str,
                                                 torch.Tensor]) -> StateMatch:
    """Compare a state dict with what ``model`` saves and can load.

    Args:
        model (nn.Module): The target model (a DDP wrapper is unwrapped).
        state (dict): Key to tensor.

    Returns:
        StateMatch: Missing, unexpected and shape-mismatched keys.
    """
    model = _unwrap(model)
    expected = model.state_dict()
    known = _module_tensors(model)
    known.update(expected)
    match = StateMatch(expected=len(expected))
    for key in expected:
        if key not in state and not key.endswith(TOLERATED_MISSING):
            match.missing.append(key)
    for key, value in state.items():
        if key not in known:
            match.unexpected.append(key)
        elif tuple(value.shape) != tuple(known[key].shape):
            match.mismatched.append(
                (key, tuple(value.shape), tuple(known[key].shape)))
        elif key in expected:
            match.loaded += 1
    return match


def _hint(model: nn.Module, state: Mapping[str, torch.Tensor],
          match: StateMatch) -> str:
    """Say what kind of checkpoint it is when the key names tell."""
    model_keys = list(_unwrap(model).state_dict())
    model_student = bool(model_keys) and all(
        k.startswith(STUDENT_PREFIX) for k in model_keys)
    ckpt_distiller = any(k.startswith(STUDENT_PREFIX) for k in state)
    if ckpt_distiller and not model_student:
        return ('It is a BinaryDistiller (teacher + student) checkpoint, '
                'and the model is a plain one')
    if model_student and not ckpt_distiller:
        prefixed = {STUDENT_PREFIX + k for k in state}
        if prefixed & set(model_keys):
            return ('It is a plain model checkpoint (e.g. the FP32 '
                    'teacher\'s), and the model is a BinaryDistiller')
    return ''


def check_state(model: nn.Module,
                state: Mapping[str, torch.Tensor],
                path: str,
                allow_partial: bool = False,
                fix: Optional[str] = None,
                checkpoint: Optional[Mapping[str, Any]] = None) -> StateMatch:
    """Raise unless ``state`` fits ``model`` exactly (or partial is allowed).

    Args:
        model (nn.Module): The target model.
        state (dict): Key to tensor.
        path (str): The checkpoint file, named in the error.
        allow_partial (bool): Return the mismatch instead of raising.
        fix (str, optional): What to do; defaults to using the config the
            checkpoint was trained with or :data:`ALLOW_PARTIAL_FLAG`.
        checkpoint (dict, optional): The whole checkpoint; its ``meta``
            (the run that wrote it) is named in the error when present.

    Returns:
        StateMatch: How the state fits.

    Raises:
        CheckpointMismatchError: Mismatch and ``allow_partial`` is False.
    """
    match = match_state(model, state)
    if match.ok or allow_partial:
        return match
    name = type(_unwrap(model)).__name__
    problem = f'does not fit the {name} model: {match.describe()}'
    meta = (checkpoint or {}).get('meta') or {}
    run = meta.get('experiment_name') if isinstance(meta, Mapping) else None
    if run:
        problem += f' (it was written by the run {run!r})'
    hint = _hint(model, state, match)
    fix = fix or TOOL_FIX
    raise CheckpointMismatchError(path, problem,
                                  f'{hint}. {fix}' if hint else fix)


def load_state_checked(model: nn.Module,
                       state: Mapping[str, torch.Tensor],
                       path: str,
                       allow_partial: bool = False,
                       fix: Optional[str] = None,
                       checkpoint: Optional[Mapping[str, Any]] = None,
                       logger: Any = 'current') -> StateMatch:
    """:func:`check_state`, then load what fits into ``model``.

    With ``allow_partial`` the tensors of another shape are skipped and the
    mismatch is logged as a warning.

    Returns:
        StateMatch: How the state fitted.
    """
    import logging

    from mmengine.logging import print_log
    match = check_state(model, state, path, allow_partial, fix, checkpoint)
    target = _unwrap(model)
    if not match.ok:
        bad = {k for k, _, _ in match.mismatched}
        state = OrderedDict((k, v) for k, v in state.items() if k not in bad)
        print_log(
            f'checkpoint {path} loaded partially '
            f'({ALLOW_PARTIAL_FLAG}): {match.describe()}',
            logger=logger,
            level=logging.WARNING)
    target.load_state_dict(state, strict=False)
    return match


def _read_state(path: str, student: bool) -> Tuple[Dict[str, Any], Any]:
    """The checkpoint of ``path`` and its state dict (the ``student.*``
    entries of a distiller checkpoint when ``student``)."""
    checkpoint = read_checkpoint(path)
    state = checkpoint_state(checkpoint, path)
    return checkpoint, select_student(state) if student else state


def load_checkpoint_checked(model: nn.Module,
                            path: str,
                            allow_partial: bool = False,
                            student: bool = False,
                            fix: Optional[str] = None) -> StateMatch:
    """Read ``path`` and load it into ``model``, every mismatch an error.

    Args:
        model (nn.Module): The target model.
        path (str): The checkpoint file.
        allow_partial (bool): Load what fits instead of raising.
        student (bool): Take the ``student.*`` entries of a distiller
            checkpoint (a plain checkpoint is used as it is).
        fix (str, optional): What to tell the user on a mismatch.

    Returns:
        StateMatch: How the checkpoint fitted.
    """
    checkpoint, state = _read_state(path, student)
    return load_state_checked(model, state, path, allow_partial, fix,
                              checkpoint)


def build_from_checkpoint(
        config: str,
        checkpoint: str,
        cfg_options: Optional[Mapping[str,
                                      Any]] = None) -> Tuple[Any, nn.Module]:
    """Build a config's model and load a checkpoint into it, strictly.

    What the analysis tools share: the config file with its
    ``--cfg-options`` merged, the default scope set, the model built from
    mmdet3d's registry and :func:`load_checkpoint_checked` (every mismatch
    an error naming the file).

    Args:
        config (str): Config file.
        checkpoint (str): Checkpoint file.
        cfg_options (Mapping, optional): Keys to override.

    Returns:
        tuple: ``(cfg, model)``; the model is in training mode as built.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    init_default_scope(cfg.get('default_scope', 'mmdet3d'))
    from mmbinpc.binary import build_binarized
    model = build_binarized(cfg.model)  # binarize= or type='Binarized'
    load_checkpoint_checked(model, checkpoint)
    return cfg, model


def check_checkpoint_file(model: nn.Module,
                          path: str,
                          allow_partial: bool = False,
                          student: bool = False,
                          fix: Optional[str] = None) -> StateMatch:
    """Read ``path`` and check that it fits ``model``, without loading it.

    For tools that let mmengine's Runner do the loading (``tools/test.py``):
    the Runner loads non-strictly, so the check comes first. With
    ``allow_partial`` a mismatch is logged as a warning instead.

    Args:
        model (nn.Module): The target model.
        path (str): The checkpoint file.
        allow_partial (bool): Warn instead of raising.
        student (bool): Check the ``student.*`` entries of a distiller
            checkpoint (a plain checkpoint is used as it is).
        fix (str, optional): What to tell the user on a mismatch.

    Returns:
        StateMatch: How the checkpoint fits.
    """
    import logging

    from mmengine.logging import print_log
    checkpoint, state = _read_state(path, student)
    match = check_state(model, state, path, allow_partial, fix, checkpoint)
    if not match.ok:
        print_log(
            f'checkpoint {path} does not fit the model and is loaded '
            f'partially ({ALLOW_PARTIAL_FLAG}): {match.describe()}',
            logger='current',
            level=logging.WARNING)
    return match


def trained_binary(checkpoint: Mapping[str, Any]) -> Optional[bool]:
    """Whether the run that wrote a checkpoint trained a binary model.

    Read from the key names (a distiller checkpoint holds ``student.*``) and
    from the config text mmengine records in ``meta['cfg']`` (looked at as
    text only, never executed).

    Returns:
        bool | None: True or False when the checkpoint tells, None when it
        does not (e.g. a raw state dict).
    """
    state = checkpoint.get('state_dict', checkpoint)
    if isinstance(state, Mapping) and any(
            isinstance(k, str) and k.startswith(STUDENT_PREFIX)
            for k in state):
        return True
    meta = checkpoint.get('meta')
    text = meta.get('cfg') if isinstance(meta, Mapping) else None
    if not isinstance(text, str) or 'model' not in text:
        return None
    return bool(_BINARY_MARKERS.search(text))


__all__ = [
    'ALLOW_PARTIAL_FLAG', 'ALLOW_PARTIAL_HELP', 'TOOL_FIX', 'StateMatch',
    'read_checkpoint', 'checkpoint_state', 'select_student', 'match_state',
    'check_state', 'load_state_checked', 'load_checkpoint_checked',
    'build_from_checkpoint', 'check_checkpoint_file', 'trained_binary'
]
