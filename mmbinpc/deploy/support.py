# Copyright (c) mmbinpc contributors. All rights reserved.
"""What the packed engine can run, and clear errors for what it cannot."""
from torch import nn

from mmbinpc.binary.aggregation import PointPool

#: input scale kinds (``BinarizerSpec.input_scale``) the packed kernels run:
#: none, or XNOR-Net's per-point β = mean |x − t|. The input bit is
#: ``x >= t`` with ``t`` from ``Binarizer.input_threshold()`` (react's
#: learned threshold and/or the running centre of ``center_input=True``);
#: every weight scale kind folds into the per-channel output scale.
ENGINE_INPUT_SCALES = ('none', 'mean_abs')

#: leaf modules the engine runs (as packed layers, folded away or in torch)
_LEAF_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d,
               nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.PReLU,
               nn.Identity, nn.Dropout, nn.Dropout2d, nn.Tanh, nn.Sigmoid,
               PointPool)
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# mmcv/mmdet3d classes that are plain containers of supported layers
_ALLOWED_FOREIGN = ('ConvModule', )
# parts of a model that are not run by ``_forward`` (pre-processing)
_IGNORED_CHILDREN = ('data_preprocessor', )


class NotSupportedError(NotImplementedError):
    """A model part the packed engine cannot run (yet)."""


def packed_input_scale(binarizer: nn.Module, label: str) -> str:
    """The packed input scale mode of a binarizer, read from its spec.

    Args:
        binarizer (nn.Module): A layer's binarizer.
        label (str): The layer's name, for the error.

    Returns:
        str: One of :data:`ENGINE_INPUT_SCALES`.

    Raises:
        NotSupportedError: The binarizer declares no spec, or an input
            scale the kernels do not run.
    """
    spec = getattr(binarizer, 'spec', None)
    bname = getattr(binarizer, 'name', type(binarizer).__name__)
    scale = getattr(spec, 'input_scale', None)
    if scale not in ENGINE_INPUT_SCALES:
        raise NotSupportedError(
            f'not supported yet: {label} (binarizer {bname!r}, input scale '
            f'{scale!r}); the packed engine runs binarizers whose spec has '
            f'input_scale in {ENGINE_INPUT_SCALES}')
    return scale


def _is_binarizer(module: nn.Module) -> bool:
    return isinstance(module, nn.Module) and hasattr(
        module, 'weight_parts') and hasattr(module, 'input_parts')


def check_supported(model: nn.Module) -> None:
    """Raise :class:`NotSupportedError` for any part the engine cannot run.

    Supported: point-wise Conv1d (kernel 1), 1x1 Conv2d and Linear layers
    (FP32 or binary), BatchNorm, common activations, dropout, PointPool
    sites and mmbinpc's own container modules (PointClassifier, PointNet,
    TNet, PointClsHead) and subclasses of them. Everything else - mmdet3d's
    PointNet++/DGCNN modules with their FPS/ball-query/kNN ops,
    convolutions with a spatial kernel - is reported by name.

    Args:
        model (nn.Module): The model to check.

    Raises:
        NotSupportedError: ``not supported yet: <name> (<type>) ...``.
    """
    skip_prefixes = []
    for name, module in model.named_modules():
        if any(name == p or name.startswith(p + '.') for p in skip_prefixes):
            continue
        if name.split('.')[-1] in _IGNORED_CHILDREN and name.count('.') == 0:
            skip_prefixes.append(name)
            continue
        label = name or type(model).__name__
        if _is_binarizer(module):
            skip_prefixes.append(name)
            packed_input_scale(module, label)
            continue
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            k = module.kernel_size
            pad = module.padding
            pointwise = (
                all(s == 1 for s in k) and module.groups == 1
                and all(s == 1 for s in module.stride)
                and all(d == 1 for d in module.dilation)
                and (isinstance(pad, str) or all(p == 0 for p in pad)))
            if not pointwise:
                raise NotSupportedError(
                    f'not supported yet: {label} ({type(module).__name__} '
                    f'kernel={k}, stride={module.stride}, padding='
                    f'{module.padding}, groups={module.groups}); the packed '
                    f'engine runs point-wise (1x1) convolutions only')
            continue
        if isinstance(module, _LEAF_TYPES + _CONTAINERS) or \
                type(module).__name__ in _ALLOWED_FOREIGN:
            continue
        foreign = [
            c for c in type(module).__mro__ if c.__module__.split('.')[0] in
            ('mmdet3d', 'mmdet', 'mmcv') and c.__name__ not in _ALLOWED_FOREIGN
        ]
        # mmbinpc's containers and subclasses of them (their forward code
        # runs in PyTorch on the module engine)
        if not foreign and any(
                c.__module__.startswith('mmbinpc.')
                for c in type(module).__mro__):
            continue
        raise NotSupportedError(
            f'not supported yet: {label} ({type(module).__name__}); the '
            f'packed engine runs PointNet-style classifiers (point-wise '
            f'convs, linear layers, BN, PointPool); PointNet++/DGCNN ops '
            f'(FPS, ball query, kNN, grouping) are not implemented')
