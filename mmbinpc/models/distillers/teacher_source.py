# Copyright (c) mmbinpc contributors. All rights reserved.
"""Where the FP32 teacher comes from: its config and its checkpoint."""
import glob
import os.path as osp
import re
from typing import Optional, Tuple, Union

from mmengine.config import Config, ConfigDict
from torch import nn

REPO_ROOT = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def scoped_config_path(path: str) -> str:
    """File of a ``package::relative/path.py`` config (e.g. ``mmdet3d::``).

    Args:
        path (str): The scoped path.

    Returns:
        str: Absolute path of the config inside the installed package.
    """
    from mmengine.utils import get_installed_path, is_installed
    package, _, relative = path.partition('::')
    if not package or not relative:
        raise FileNotFoundError(f'cannot resolve config {path!r}: write '
                                'package::relative/path.py')
    if not is_installed(package):
        raise FileNotFoundError(f'cannot resolve config {path!r}: package '
                                f'{package!r} is not installed')
    # where OpenMMLab packages install their configs (mim's layout)
    found = osp.join(get_installed_path(package), '.mim', 'configs', relative)
    if not osp.isfile(found):
        raise FileNotFoundError(f'config {path!r} not found ({found})')
    return found


def find_config_file(path: str) -> str:
    """Locate a config file given as written in a config.

    ``mmdet3d::...`` paths resolve to the file inside the installed package
    (as mmengine resolves them in ``_base_``). Other paths are tried as given
    (relative to the working directory) and
    then relative to the mmbinpc repository root, so ``configs/...`` works
    from any directory.

    Args:
        path (str): The config path.

    Returns:
        str: A path :meth:`mmengine.Config.fromfile` can open.

    Raises:
        FileNotFoundError: If the file exists in neither place.
    """
    if '::' in path:
        return scoped_config_path(path)
    if osp.isfile(path):
        return path
    in_repo = osp.join(REPO_ROOT, path)
    if osp.isfile(in_repo):
        return in_repo
    raise FileNotFoundError(
        f'config {path!r} not found (looked in the working directory '
        f'and in {REPO_ROOT})')


def load_model_config(
        source: Union[str, dict]) -> Tuple[ConfigDict, Optional[str]]:
    """The model config of a teacher given as a dict or a config path.

    Args:
        source (str | dict): A model config dict, or the path of a full
            config file (``mmdet3d::`` paths included) whose ``model`` is
            used.

    Returns:
        tuple[ConfigDict, str | None]: The model config (a copy) and the
        config path (None for a dict).
    """
    if isinstance(source, str):
        path = find_config_file(source)
        cfg = Config.fromfile(path)
        if 'model' not in cfg:
            raise ValueError(f'teacher config {source!r} has no `model`')
        return ConfigDict(cfg.model.to_dict()), source
    if isinstance(source, dict):
        return ConfigDict(dict(source)), None
    raise TypeError('teacher must be a model config dict or a config file '
                    f'path, got {type(source).__name__}')


def train_command(config_path: Optional[str]) -> str:
    """The command that trains the teacher, for error messages."""
    if config_path is None:
        return ('python tools/train.py <the teacher config file> '
                '(the teacher was given as a dict; train a config holding '
                'that model)')
    if config_path.startswith('mmdet3d::'):
        return (f'python tools/train.py {config_path} (or mim train mmdet3d '
                f'{config_path.split("::", 1)[1]})')
    return f'python tools/train.py {config_path}'


def default_work_dir(config_path: str) -> str:
    """The work directory ``tools/train.py`` uses for a config by default."""
    name = osp.splitext(osp.basename(config_path.split('::')[-1]))[0]
    return osp.join('work_dirs', name)


def _number(path: str) -> int:
    found = re.findall(r'(\d+)', osp.basename(path))
    return int(found[-1]) if found else -1


def resolve_checkpoint(ckpt: Optional[str],
                       config_path: Optional[str] = None) -> str:
    """Resolve ``teacher_ckpt``: a checkpoint file or a work directory.

    A work directory resolves to its best checkpoint (``best_*.pth``, the
    newest if several), else the one named in ``last_checkpoint``, else the
    ``epoch_*.pth`` / ``iter_*.pth`` with the highest number.

    Args:
        ckpt (str | None): File or directory.
        config_path (str, optional): The teacher's config path, used to say
            how to train the teacher when nothing is found.

    Returns:
        str: Path of an existing checkpoint file.

    Raises:
        FileNotFoundError: Nothing usable found; the message gives the
            ``tools/train.py`` command that produces it.
    """
    how = train_command(config_path)
    if ckpt is None:
        where = (
            default_work_dir(config_path) if config_path
            and '::' not in config_path else 'work_dirs/<teacher>')
        raise FileNotFoundError(
            'BinaryDistiller needs a trained FP32 teacher: set teacher_ckpt '
            f'to its checkpoint file or work directory (e.g. {where!r}). '
            f'Train the teacher first with:\n    {how}')
    if osp.isdir(ckpt):
        best = sorted(
            glob.glob(osp.join(ckpt, 'best_*.pth')), key=osp.getmtime)
        if best:
            return best[-1]
        last = osp.join(ckpt, 'last_checkpoint')
        if osp.isfile(last):
            with open(last) as f:
                named = f.read().strip()
            for cand in (named, osp.join(ckpt, osp.basename(named))):
                if cand and osp.isfile(cand):
                    return cand
        found = glob.glob(osp.join(ckpt, 'epoch_*.pth')) + glob.glob(
            osp.join(ckpt, 'iter_*.pth'))
        if found:
            return max(found, key=_number)
        raise FileNotFoundError(
            f'teacher work directory {ckpt!r} holds no checkpoint (no '
            'best_*.pth, last_checkpoint, epoch_*.pth or iter_*.pth). Train '
            f'the teacher first with:\n    {how} --work-dir {ckpt}')
    if not osp.isfile(ckpt):
        raise FileNotFoundError(
            f'teacher checkpoint {ckpt!r} does not exist. Train the teacher '
            f'first with:\n    {how}\nthen set teacher_ckpt to the '
            'checkpoint file or to the work directory.')
    return ckpt


def load_teacher(teacher: nn.Module,
                 ckpt: Optional[str],
                 config_path: Optional[str] = None) -> str:
    """Resolve ``teacher_ckpt``, verify the file and load it into ``teacher``.

    The file must be readable and fit the teacher exactly: every parameter
    and buffer loaded, no key the teacher lacks, no tensor of another shape.
    A student (``BinaryDistiller``) checkpoint given as the teacher's fails
    here with a message that says so.

    Args:
        teacher (nn.Module): The built FP32 teacher.
        ckpt (str | None): ``teacher_ckpt``: a file or a work directory.
        config_path (str, optional): The teacher's config path, for the
            messages (how to train it).

    Returns:
        str: The checkpoint file that was loaded.

    Raises:
        FileNotFoundError: No checkpoint (see :func:`resolve_checkpoint`).
        CheckpointMismatchError: The file is unreadable (e.g. truncated by
            a killed run) or does not fit the teacher; the message names the
            file and what to do.
    """
    import logging

    from mmengine.logging import print_log

    from mmbinpc.apis.checkpoint import (checkpoint_state, load_state_checked,
                                         read_checkpoint, trained_binary)
    path = resolve_checkpoint(ckpt, config_path)
    how = train_command(config_path)
    if osp.isdir(ckpt):
        unreadable = (
            f'teacher_ckpt={ckpt!r} is a work directory and this is the '
            'checkpoint picked from it (the newest best_*.pth, else the one '
            'named in last_checkpoint, else the highest epoch_*.pth). Delete '
            'or move this file, or set teacher_ckpt to another checkpoint '
            f'file of that run; or train the teacher again:\n    {how}')
    else:
        unreadable = ('Set teacher_ckpt to another checkpoint of the teacher '
                      f'run, or train the teacher again:\n    {how}')
    checkpoint = read_checkpoint(path, fix=unreadable)
    state = checkpoint_state(checkpoint, path)
    what = config_path or 'the teacher model config'
    load_state_checked(
        teacher,
        state,
        path,
        checkpoint=checkpoint,
        fix=(f'teacher_ckpt must be a checkpoint of the FP32 teacher ({what}),'
             f' as written by:\n    {how}'))
    if trained_binary(checkpoint):
        print_log(
            f'teacher checkpoint {path} was written by a run whose '
            'config binarizes its model; the teacher is meant to be '
            'the FP32 model',
            logger='current',
            level=logging.WARNING)
    return path
