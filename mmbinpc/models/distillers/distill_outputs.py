# Copyright (c) mmbinpc contributors. All rights reserved.
"""What a :class:`BinaryDistiller` hands each extra distillation loss."""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

from torch import Tensor, nn


@dataclass
class DistillOutputs:
    """One batch of teacher and student outputs.

    Attributes:
        student_logits (Tensor): ``(B, K)`` (classifiers) or ``(B, K, N)``
            (segmentors, per point), with gradient.
        teacher_logits (Tensor, optional): The teacher's, same shape, no
            gradient; None when no loss needed the teacher.
        data_samples (list): The batch's data samples (labels).
        site_names (list[str]): Paired pooling sites, in order.
        student_pooled (list[Tensor]): The student's pooling outputs at those
            sites (as L_reg sees them), with gradient; empty unless a loss
            set ``needs_pooling``.
        teacher_pooled (list[Tensor]): The teacher's, no gradient.
    """

    student_logits: Tensor
    teacher_logits: Optional[Tensor]
    data_samples: list
    site_names: List[str] = field(default_factory=list)
    student_pooled: List[Tensor] = field(default_factory=list)
    teacher_pooled: List[Tensor] = field(default_factory=list)


def loss_key(loss: nn.Module) -> str:
    """Log key of an extra loss: its ``loss_name``, else ``loss_<snake>``."""
    name = getattr(loss, 'loss_name', None)
    if name:
        return name if name.startswith('loss') else f'loss_{name}'
    snake = re.sub(r'(?<!^)(?=[A-Z])', '_', type(loss).__name__).lower()
    snake = snake[:-5] if snake.endswith('_loss') else snake
    return f'loss_{snake}'


def named_terms(loss: nn.Module,
                value: Union[Tensor, Dict[str, Tensor]]) -> Dict[str, Tensor]:
    """An extra loss's return value as logged terms (``loss_*`` keys)."""
    if isinstance(value, Tensor):
        return {loss_key(loss): value}
    if isinstance(value, dict) and all(
            isinstance(k, str) and k.startswith('loss')
            and isinstance(v, Tensor) for k, v in value.items()):
        return dict(value)
    raise TypeError(f'{type(loss).__name__} returned {type(value).__name__}; '
                    'an extra distillation loss returns a scalar tensor or '
                    'a dict of loss_* tensors')
