# Copyright (c) mmbinpc contributors. All rights reserved.
"""Soft-target distillation loss L_DS (the paper's Eq. 2-3, Hinton's form).

``L_DS = T² · KL(softmax(t / T) ‖ softmax(s / T))`` averaged over samples (or,
for segmentation, over the labelled points).

The paper writes L_DS as a cross entropy with ``log₂``. With ``p_t`` fixed
(the teacher is frozen), ``H₂(p_t, p_s) = (KL(p_t ‖ p_s) + H(p_t)) / ln 2``:
the entropy term carries no gradient and the ``1 / ln 2`` factor only rescales
the loss (it can be folded into λ). We use the natural-log KL divergence, which
is zero when the student matches the teacher, and multiply by ``T²`` so that
gradient magnitudes do not shrink as ``T`` grows (Hinton et al., 2015).
"""
from typing import Optional

import torch.nn.functional as F
from mmdet3d.registry import MODELS
from torch import Tensor, nn


def soft_target_loss(student_logits: Tensor,
                     teacher_logits: Tensor,
                     temperature: float = 2.0,
                     labels: Optional[Tensor] = None,
                     ignore_index: Optional[int] = None) -> Tensor:
    """Hinton's soft-target loss ``T² · KL(p_t ‖ p_s)`` at temperature ``T``.

    Args:
        student_logits (Tensor): Student class scores, ``(B, K)`` for
            classification or ``(B, K, N...)`` per point (class axis 1).
        teacher_logits (Tensor): Teacher scores, same shape. Treated as
            constants (detached).
        temperature (float): Softmax temperature ``T > 0``. Defaults to 2.0.
        labels (Tensor, optional): Ground-truth labels shaped like the logits
            without the class axis; only used to drop entries equal to
            ``ignore_index``. Defaults to None.
        ignore_index (int, optional): Label value whose points are left out.
            Defaults to None (keep everything).

    Returns:
        Tensor: Scalar loss, the mean over samples (or kept points) of the
        per-entry ``T² · KL``. Zero (with a gradient path) when no entry is
        kept.

    Examples:
        >>> import torch
        >>> s = torch.tensor([[0., 0.]]); t = torch.tensor([[0., 0.]])
        >>> float(soft_target_loss(s, t))
        0.0
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            'student and teacher logits differ in shape: student '
            f'{tuple(student_logits.shape)} vs teacher '
            f'{tuple(teacher_logits.shape)}; both models must predict the '
            'same classes for the same inputs')
    if student_logits.dim() < 2:
        raise ValueError('logits need a batch and a class axis, got shape '
                         f'{tuple(student_logits.shape)}')
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    # KL(p_t || p_s) summed over the class axis -> one value per entry.
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    if labels is not None and ignore_index is not None:
        if labels.shape != kl.shape:
            raise ValueError(
                f'labels of shape {tuple(labels.shape)} do not match the '
                f'logits {tuple(student_logits.shape)} without their class '
                f'axis ({tuple(kl.shape)})')
        keep = labels != ignore_index
        if not bool(keep.any()):
            return kl.sum() * 0.0
        kl = kl[keep]
    return kl.mean() * (t * t)


@MODELS.register_module()
class SoftTargetLoss(nn.Module):
    """Module form of :func:`soft_target_loss` with a loss weight.

    Args:
        temperature (float): Softmax temperature. Defaults to 2.0.
        loss_weight (float): Multiplier of the result. Defaults to 1.0.
        ignore_index (int, optional): Label to leave out (segmentation).
            Defaults to None.
    """

    def __init__(self,
                 temperature: float = 2.0,
                 loss_weight: float = 1.0,
                 ignore_index: Optional[int] = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = float(temperature)
        self.loss_weight = float(loss_weight)
        self.ignore_index = ignore_index

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                labels: Optional[Tensor] = None) -> Tensor:
        """Weighted soft-target loss.

        Args:
            student_logits (Tensor): ``(B, K)`` or ``(B, K, N...)``.
            teacher_logits (Tensor): Same shape as ``student_logits``.
            labels (Tensor, optional): Labels for ``ignore_index`` masking.

        Returns:
            Tensor: Scalar loss.
        """
        return self.loss_weight * soft_target_loss(
            student_logits, teacher_logits, self.temperature, labels,
            self.ignore_index)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, '
                f'loss_weight={self.loss_weight}')


__all__ = ['soft_target_loss', 'SoftTargetLoss']
