# Copyright (c) mmbinpc contributors. All rights reserved.
"""Route mmcv's point-op autograd Functions to the CPU versions.

mmcv 2.1.0 implements ``furthest_point_sample``, ``ball_query``, ``knn``,
``grouping_operation``, ``gather_points``, ``three_nn`` and
``three_interpolate`` as ``torch.autograd.Function`` subclasses whose
``forward`` calls a CUDA-only extension. :func:`patch_mmcv_point_ops`
replaces the ``forward``/``backward`` staticmethods of those classes with
wrappers that send CPU tensors to :mod:`mmbinpc.ops` and everything else to
the original implementation. Because the classes themselves change, every
module that did ``from mmcv.ops import knn`` (the name is bound to
``KNN.apply``) is covered. Patching is idempotent and reversible.
"""
import functools
import importlib
import warnings
from typing import Callable, Dict, List, Optional, Tuple

from torch import Tensor

from .gathering import (gather_points, gather_points_backward,
                        grouping_operation, grouping_operation_backward,
                        stack_grouping_operation,
                        stack_grouping_operation_backward, three_interpolate,
                        three_interpolate_backward)
from .neighbors import ball_query, knn, stack_ball_query, three_nn
from .sampling import furthest_point_sample, furthest_point_sample_with_dist

_CPU_FLAG = '_mmbinpc_cpu'
_ORIGINAL = '_mmbinpc_original'


def _no_grads(count: int) -> Callable:

    def backward(ctx, *grads):
        return (None, ) * count

    return backward


def _fps_forward(ctx, points_xyz, num_points):
    idx = furthest_point_sample(points_xyz, num_points)
    ctx.mark_non_differentiable(idx)
    return idx


def _fps_dist_forward(ctx, points_dist, num_points):
    idx = furthest_point_sample_with_dist(points_dist, num_points)
    ctx.mark_non_differentiable(idx)
    return idx


def _ball_query_forward(ctx,
                        min_radius,
                        max_radius,
                        sample_num,
                        xyz,
                        center_xyz,
                        xyz_batch_cnt=None,
                        center_xyz_batch_cnt=None):
    if xyz_batch_cnt is not None and center_xyz_batch_cnt is not None:
        # Like mmcv, the stacked form ignores min_radius.
        idx = stack_ball_query(max_radius, sample_num, xyz, center_xyz,
                               xyz_batch_cnt, center_xyz_batch_cnt)
    else:
        idx = ball_query(min_radius, max_radius, sample_num, xyz, center_xyz)
    ctx.mark_non_differentiable(idx)
    return idx


def _knn_forward(ctx, k, xyz, center_xyz=None, transposed=False):
    idx = knn(k, xyz, center_xyz, transposed)
    ctx.mark_non_differentiable(idx)
    return idx


def _grouping_forward(ctx,
                      features,
                      indices,
                      features_batch_cnt=None,
                      indices_batch_cnt=None):
    if features_batch_cnt is not None and indices_batch_cnt is not None:
        out = stack_grouping_operation(features, indices, features_batch_cnt,
                                       indices_batch_cnt)
        ctx.mmbinpc_saved = (indices, features.shape[0], features_batch_cnt,
                             indices_batch_cnt)
        return out
    out = grouping_operation(features, indices)
    ctx.mmbinpc_saved = (indices, features.shape[2])
    return out


def _grouping_backward(ctx, grad_out):
    if len(ctx.mmbinpc_saved) == 4:
        indices, num_points, f_cnt, i_cnt = ctx.mmbinpc_saved
        grad = stack_grouping_operation_backward(grad_out, indices, f_cnt,
                                                 i_cnt, num_points)
        return grad, None, None, None
    indices, num_points = ctx.mmbinpc_saved
    return grouping_operation_backward(grad_out, indices, num_points), None


def _gather_forward(ctx, features, indices):
    out = gather_points(features, indices)
    ctx.mmbinpc_saved = (indices, features.shape[2])
    return out


def _gather_backward(ctx, grad_out):
    indices, num_points = ctx.mmbinpc_saved
    return gather_points_backward(grad_out, indices, num_points), None


def _three_nn_forward(ctx, target, source):
    dist, idx = three_nn(target, source)
    ctx.mark_non_differentiable(idx)
    return dist, idx


def _three_interp_forward(ctx, features, indices, weight):
    out = three_interpolate(features, indices, weight)
    ctx.mmbinpc_saved = (indices, weight, features.shape[2])
    return out


def _three_interp_backward(ctx, grad_out):
    indices, weight, num_points = ctx.mmbinpc_saved
    grad = three_interpolate_backward(grad_out, indices, weight, num_points)
    # Like mmcv's CUDA op: no gradient for the indices or the weights.
    return grad, None, None


#: (module, class, CPU forward, CPU backward) for every patched Function.
_TABLE: List[Tuple[str, str, Callable, Callable]] = [
    ('mmcv.ops.furthest_point_sample', 'FurthestPointSampling', _fps_forward,
     _no_grads(2)),
    ('mmcv.ops.furthest_point_sample', 'FurthestPointSamplingWithDist',
     _fps_dist_forward, _no_grads(2)),
    ('mmcv.ops.ball_query', 'BallQuery', _ball_query_forward, _no_grads(7)),
    ('mmcv.ops.knn', 'KNN', _knn_forward, _no_grads(4)),
    ('mmcv.ops.group_points', 'GroupingOperation', _grouping_forward,
     _grouping_backward),
    ('mmcv.ops.gather_points', 'GatherPoints', _gather_forward,
     _gather_backward),
    ('mmcv.ops.three_nn', 'ThreeNN', _three_nn_forward, _no_grads(2)),
    ('mmcv.ops.three_interpolate', 'ThreeInterpolate', _three_interp_forward,
     _three_interp_backward),
]


def _on_cpu(args: tuple, kwargs: dict) -> bool:
    """Whether the first tensor argument lives on the CPU."""
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, Tensor):
            return value.device.type == 'cpu'
    return False


def _own_storage(result):
    """Copy outputs that are views.

    autograd forbids in-place changes to a view returned by a custom
    Function, and mmdet3d changes grouped features in place; mmcv's kernels
    always return fresh tensors.
    """
    if isinstance(result, tuple):
        return tuple(_own_storage(item) for item in result)
    if isinstance(result, Tensor) and result._is_view():
        return result.clone()
    return result


def _wrap(original_fwd: Callable, original_bwd: Callable, cpu_fwd: Callable,
          cpu_bwd: Callable) -> Tuple[Callable, Callable]:

    @functools.wraps(original_fwd)
    def forward(ctx, *args, **kwargs):
        if _on_cpu(args, kwargs):
            setattr(ctx, _CPU_FLAG, True)
            return _own_storage(cpu_fwd(ctx, *args, **kwargs))
        return original_fwd(ctx, *args, **kwargs)

    @functools.wraps(original_bwd)
    def backward(ctx, *grads):
        if getattr(ctx, _CPU_FLAG, False):
            return cpu_bwd(ctx, *grads)
        return original_bwd(ctx, *grads)

    return forward, backward


def _function_classes() -> Dict[str, type]:
    classes = {}
    for module_name, cls_name, _, _ in _TABLE:
        module = importlib.import_module(module_name)
        classes[cls_name] = getattr(module, cls_name)
    return classes


def patch_mmcv_point_ops() -> Optional[List[str]]:
    """Make mmcv's point ops run on CPU tensors; idempotent.

    Returns:
        list[str] | None: Names of the patched Function classes, or None
        when mmcv's ops cannot be imported (a warning says why).
    """
    try:
        classes = _function_classes()
    except (ImportError, AttributeError, OSError) as exc:
        warnings.warn(
            f'mmbinpc.ops: could not import mmcv point ops ({exc}); the CPU '
            f'versions are available in mmbinpc.ops but mmcv is not '
            f'patched. Install mmcv 2.1.0 built with ops (mmcv, not '
            f'mmcv-lite).')
        return None
    for _, cls_name, cpu_fwd, cpu_bwd in _TABLE:
        cls = classes[cls_name]
        if _ORIGINAL in cls.__dict__:
            continue  # already patched
        original = (cls.__dict__['forward'], cls.__dict__['backward'])
        fwd, bwd = _wrap(cls.forward, cls.backward, cpu_fwd, cpu_bwd)
        setattr(cls, _ORIGINAL, original)
        cls.forward = staticmethod(fwd)
        cls.backward = staticmethod(bwd)
    return [name for _, name, _, _ in _TABLE]


def unpatch_mmcv_point_ops() -> None:
    """Restore mmcv's original Functions (a no-op without mmcv's ops)."""
    try:
        classes = _function_classes()
    except (ImportError, AttributeError, OSError):
        return
    for cls in classes.values():
        original = cls.__dict__.get(_ORIGINAL)
        if original is None:
            continue
        cls.forward, cls.backward = original
        delattr(cls, _ORIGINAL)


def is_patched() -> bool:
    """Whether every mmcv point-op Function is currently patched."""
    try:
        classes = _function_classes()
    except (ImportError, AttributeError, OSError):
        return False
    return all(_ORIGINAL in cls.__dict__ for cls in classes.values())
