# Copyright (c) mmbinpc contributors. All rights reserved.
"""What the tools share: reading checkpoints and loading them strictly,
and preparing a config for the Runner."""
from .allocator import keep_freed_memory
from .checkpoint import (ALLOW_PARTIAL_FLAG, ALLOW_PARTIAL_HELP, TOOL_FIX,
                         StateMatch, build_from_checkpoint,
                         check_checkpoint_file, check_state, checkpoint_state,
                         load_checkpoint_checked, load_state_checked,
                         match_state, read_checkpoint, select_student,
                         trained_binary)
from .launch import set_max_epochs, setup_cpu_distributed, warn_if_synthetic

__all__ = [
    'ALLOW_PARTIAL_FLAG', 'ALLOW_PARTIAL_HELP', 'TOOL_FIX', 'StateMatch',
    'build_from_checkpoint', 'check_checkpoint_file', 'check_state',
    'checkpoint_state', 'load_checkpoint_checked', 'load_state_checked',
    'match_state', 'read_checkpoint', 'select_student', 'trained_binary',
    'set_max_epochs', 'setup_cpu_distributed', 'warn_if_synthetic',
    'keep_freed_memory'
]
