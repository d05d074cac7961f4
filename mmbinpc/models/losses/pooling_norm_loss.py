# Copyright (c) mmbinpc contributors. All rights reserved.
"""Pooling-output regularizer L_reg (the paper's Eq. 11 and Table 1).

``L_reg = g(h_q − h_f)``: a matrix norm of the difference between the binary
student's and the FP32 teacher's output at a pooling (aggregation) site.

Table 1 norms of a matrix ``H`` (``M × N``):

========== ======================================= ================
name       formula                                 batch exponent e
========== ======================================= ================
``'fro'``  ``sqrt(Σ_ij h_ij²)``                    1/2
``'1'``    ``max_j Σ_i |h_ij|`` (max column sum)   1
``'2'``    ``σ_max(H)`` (largest singular value)   1/2
``'l1'``   ``Σ_ij |h_ij|`` (entrywise)             1
``'nuclear'`` ``Σ_k σ_k(H)``                       1/2
``'inf'``  ``max_i Σ_j |h_ij|`` (max row sum)      0
========== ======================================= ================

Which matrix is normed:

* A global feature ``(B, C)`` (also ``(B, C, 1, ...)``) forms one ``B × C``
  matrix, rows = samples. Its norm is divided by ``B**e`` (column above), the
  power for which a batch of ``B`` identical rows gives the same value as one
  row. So the loss does not grow or shrink with the batch size for the same
  per-sample error, and the weight η keeps its meaning when the batch size
  changes.
* A local pooling output ``(B, C, N, ...)`` forms one ``C × N`` matrix per
  sample (trailing axes flattened); the per-sample norms are averaged over the
  batch, which is batch-size independent by construction.

Several sites are combined by their mean (``reduction='mean'``, default) or
their sum. The SVD-based norms use :func:`torch.linalg.svdvals`, whose
backward pass is ``U diag(∂L/∂σ) Vᴴ`` with no ``1 / (σ_i² − σ_j²)`` terms, so
gradients stay finite for repeated or zero singular values.

Gradients and subgradients
--------------------------
Where the norm is differentiable (no zero entries for the entrywise and
column/row-sum norms, a unique maximum, distinct non-zero singular values)
autograd returns the gradient of ``g`` at ``H = h_q − h_f``:

* ``'fro'``: ``H / ‖H‖_F``;
* ``'l1'``: ``sign(H)``;
* ``'1'``: ``sign(h_ij)`` in the column ``j*`` of largest abs sum, 0
  elsewhere; ``'inf'``: the same for the row of largest abs sum;
* ``'2'``: ``u₁ v₁ᵀ`` (top singular pair); ``'nuclear'``: ``U Vᵀ`` (thin SVD).

At the non-smooth points autograd picks one element of the subdifferential
``∂g(H) = {G : ⟨G, H⟩ = g(H), g*(G) ≤ 1}`` (``g*`` the dual norm), namely:

* ``sign(0) = 0``: a zero entry of ``H`` gets no gradient in ``'l1'``,
  ``'1'`` and ``'inf'``;
* ties in the max (``'1'``, ``'inf'``): :func:`torch.amax` splits the
  gradient evenly, so each of the ``k`` tied columns (rows) gets
  ``sign(h_ij) / k``;
* ``H = 0`` (student equals teacher): ``'fro'``, ``'1'``, ``'inf'`` and
  ``'l1'`` return exactly 0; ``'2'`` returns ``u₁ v₁ᵀ`` and ``'nuclear'``
  returns ``U Vᵀ`` for whatever orthonormal bases LAPACK returns for the zero
  matrix, i.e. a non-zero gradient of unit spectral norm in an arbitrary
  direction (a valid subgradient, but not the minimum-norm one, 0);
* a repeated largest singular value (``'2'``): ``u₁ v₁ᵀ`` for LAPACK's choice
  of basis of the top singular subspaces, one element of
  ``{U₁ S V₁ᵀ : S ⪰ 0, tr S = 1}``;
* zero singular values (``'nuclear'``, rank-deficient ``H``): ``U Vᵀ`` keeps
  the singular vectors of the zero singular values, i.e.
  ``U_r V_rᵀ + W`` with ``W`` orthogonal to the range of ``H`` on both sides
  and ``‖W‖₂ = 1`` (the unique part ``U_r V_rᵀ`` plus an arbitrary one).

``pooling_norm`` scales these by ``1 / B**e`` (global) or ``1 / B`` (local,
batch mean). The teacher output is detached and gets no gradient.
"""
from typing import Dict, List, Optional, Sequence

import torch
from mmdet3d.registry import MODELS
from torch import Tensor, nn

REG_NORMS = ('fro', '1', '2', 'l1', 'nuclear', 'inf')

# B**e divides the norm of a (B, C) global-feature matrix (see module doc).
BATCH_EXPONENT: Dict[str, float] = {
    'fro': 0.5,
    '1': 1.0,
    '2': 0.5,
    'l1': 1.0,
    'nuclear': 0.5,
    'inf': 0.0
}


def check_norm(norm: str) -> str:
    """Validate a Table 1 norm name.

    Args:
        norm (str): The name.

    Returns:
        str: ``norm`` unchanged (as a string).

    Raises:
        ValueError: If ``norm`` is not one of :data:`REG_NORMS`.
    """
    norm = str(norm)
    if norm not in REG_NORMS:
        raise ValueError(f'unknown reg_norm {norm!r}; valid names: '
                         f'{", ".join(repr(n) for n in REG_NORMS)}')
    return norm


def matrix_norm(h: Tensor, norm: str) -> Tensor:
    """Table 1 norm of each matrix in a batch.

    Args:
        h (Tensor): Matrices of shape ``(..., M, N)``.
        norm (str): One of :data:`REG_NORMS`.

    Returns:
        Tensor: Norms of shape ``h.shape[:-2]``.

    Examples:
        >>> import torch
        >>> h = torch.tensor([[1., -2.], [3., 4.]])
        >>> [float(matrix_norm(h, n)) for n in ('1', 'inf', 'l1')]
        [6.0, 7.0, 10.0]
    """
    norm = check_norm(norm)
    if h.dim() < 2:
        raise ValueError(
            f'matrix_norm needs (..., M, N), got {tuple(h.shape)}')
    if norm == 'fro':
        return torch.linalg.matrix_norm(h, ord='fro')
    if norm == '1':
        return h.abs().sum(dim=-2).amax(dim=-1)
    if norm == 'inf':
        return h.abs().sum(dim=-1).amax(dim=-1)
    if norm == 'l1':
        return h.abs().sum(dim=(-2, -1))
    sv = torch.linalg.svdvals(h)  # descending, shape (..., min(M, N))
    if norm == '2':
        return sv[..., 0]
    return sv.sum(dim=-1)  # nuclear


def pooling_norm(student: Tensor, teacher: Tensor, norm: str = '1') -> Tensor:
    """L_reg of one pooling site, batch-scaled as in the module doc.

    Args:
        student (Tensor): Student pooling output, ``(B, C)`` (global) or
            ``(B, C, N, ...)`` (local).
        teacher (Tensor): Teacher output of the same shape (detached here).
        norm (str): One of :data:`REG_NORMS`. Defaults to '1'.

    Returns:
        Tensor: Scalar loss.
    """
    norm = check_norm(norm)
    if student.shape != teacher.shape:
        raise ValueError(
            f'pooling outputs differ in shape: student '
            f'{tuple(student.shape)} vs teacher {tuple(teacher.shape)}')
    if student.dim() < 2:
        raise ValueError('a pooling output needs a batch and a channel axis, '
                         f'got shape {tuple(student.shape)}')
    diff = student - teacher.detach()
    b, c = diff.shape[:2]
    diff = diff.reshape(b, c, -1)
    if diff.shape[-1] == 1:  # global feature: one B x C matrix
        scale = float(b)**BATCH_EXPONENT[norm]
        return matrix_norm(diff.squeeze(-1), norm) / scale
    return matrix_norm(diff, norm).mean()  # one C x N matrix per sample


@MODELS.register_module()
class PoolingNormLoss(nn.Module):
    """Norm of student-minus-teacher pooling outputs over paired sites.

    Args:
        norm (str): Table 1 norm: 'fro', '1', '2', 'l1', 'nuclear' or 'inf'.
            Defaults to '1' (the paper's choice).
        reduction (str): 'mean' or 'sum' over sites. Defaults to 'mean'.
        loss_weight (float): Multiplier (η). Defaults to 1.0.
    """

    def __init__(self,
                 norm: str = '1',
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.norm = check_norm(norm)
        if reduction not in ('mean', 'sum'):
            raise ValueError(
                f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self.loss_weight = float(loss_weight)

    def per_site(self,
                 student_outs: Sequence[Tensor],
                 teacher_outs: Sequence[Tensor],
                 names: Optional[Sequence[str]] = None) -> List[Tensor]:
        """Unweighted loss of each site.

        Args:
            student_outs (Sequence[Tensor]): Student outputs, one per site.
            teacher_outs (Sequence[Tensor]): Teacher outputs, same order.
            names (Sequence[str], optional): Site names for error messages.

        Returns:
            list[Tensor]: One scalar per site.
        """
        if len(student_outs) != len(teacher_outs):
            raise ValueError(f'{len(student_outs)} student pooling outputs '
                             f'but {len(teacher_outs)} teacher outputs')
        if len(student_outs) == 0:
            raise ValueError('no pooling outputs to regularize')
        names = list(names) if names is not None else [
            f'site {i}' for i in range(len(student_outs))
        ]
        losses = []
        for name, s, t in zip(names, student_outs, teacher_outs):
            if s.shape != t.shape:
                raise ValueError(
                    f'pooling site {name!r}: student output shape '
                    f'{tuple(s.shape)} differs from teacher output shape '
                    f'{tuple(t.shape)}')
            losses.append(pooling_norm(s, t, self.norm))
        return losses

    def forward(self,
                student_outs: Sequence[Tensor],
                teacher_outs: Sequence[Tensor],
                names: Optional[Sequence[str]] = None) -> Tensor:
        """Weighted L_reg over all sites.

        Args:
            student_outs (Sequence[Tensor]): Student outputs, one per site.
            teacher_outs (Sequence[Tensor]): Teacher outputs, same order.
            names (Sequence[str], optional): Site names for error messages.

        Returns:
            Tensor: Scalar loss.
        """
        total = torch.stack(self.per_site(student_outs, teacher_outs, names))
        total = total.mean() if self.reduction == 'mean' else total.sum()
        return self.loss_weight * total

    def extra_repr(self) -> str:
        return (f'norm={self.norm!r}, reduction={self.reduction!r}, '
                f'loss_weight={self.loss_weight}')


__all__ = [
    'REG_NORMS', 'BATCH_EXPONENT', 'check_norm', 'matrix_norm', 'pooling_norm',
    'PoolingNormLoss'
]
