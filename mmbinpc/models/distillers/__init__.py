# Copyright (c) mmbinpc contributors. All rights reserved.
"""Teacher-student distillation of binary point networks (KDR)."""
# TeacherValHook lives with the other Runner hooks; kept importable here.
from mmbinpc.engine.hooks.teacher_val_hook import TeacherValHook
from .binary_distiller import DISTILL_DEFAULTS, BinaryDistiller
from .distill_outputs import DistillOutputs
from .teacher_source import (find_config_file, load_model_config, load_teacher,
                             resolve_checkpoint, scoped_config_path,
                             train_command)

__all__ = [
    'BinaryDistiller', 'DISTILL_DEFAULTS', 'DistillOutputs', 'TeacherValHook',
    'find_config_file', 'load_model_config', 'load_teacher',
    'resolve_checkpoint', 'scoped_config_path', 'train_command'
]
