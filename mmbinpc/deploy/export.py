# Copyright (c) mmbinpc contributors. All rights reserved.
"""Export a binarized model to the packed format.

The file layout, its schema and its validation live in
:mod:`mmbinpc.deploy.format`: an ``.npz`` archive of the packed sign bits,
per-channel affine maps and remaining FP32 tensors, described by a JSON
``__meta__`` entry that holds the architecture as a plain JSON config
(data only: nothing in a packed file is executed when it is loaded).
"""
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from mmbinpc.analysis.complexity import model_forward
from mmbinpc.binary.layers import is_binary_layer
from .bitpack import pack_signs
from .folding import bn_affine, fold_bn
from .format import (FORMAT_NAME, FORMAT_VERSION, PREPROCESS_STEPS,
                     plain_config, write_packed)
from .support import NotSupportedError, check_supported, packed_input_scale

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class ExportSummary:
    """What :func:`export_packed` wrote.

    Attributes:
        path (str): Output file.
        file_bytes (int): Size of the file.
        binary_layers (list[str]): Packed binary layers.
        folded_bn (dict): BatchNorm name -> the layer it was folded into.
        fused (dict): Activation / pooling module name -> the packed layer
            that computes it.
        fp_tensors (int): Number of FP32 tensors stored.
    """
    path: str
    file_bytes: int
    binary_layers: List[str] = field(default_factory=list)
    folded_bn: Dict[str, str] = field(default_factory=dict)
    fused: Dict[str, str] = field(default_factory=dict)
    fp_tensors: int = 0


# --------------------------------------------------------------------------
# Which BatchNorm directly and exclusively consumes which layer's output.
# --------------------------------------------------------------------------
def _tensors_in(obj: Any) -> List[Tensor]:
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors_in(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors_in(item)]
    return []


_ACT_TYPES = (nn.Hardtanh, nn.ReLU, nn.ReLU6)  # Hardtanh covers ReLU6
_TRACKED = (nn.Conv1d, nn.Conv2d, nn.Linear) + _BN_TYPES + _ACT_TYPES


class _ConsumerTracer(TorchFunctionMode):
    """Records which modules compute on the outputs of layers, BatchNorms and
    activations during one forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.names = {m: n for n, m in model.named_modules()}
        self.stack: List[nn.Module] = []
        self.outputs: Dict[int, Tuple[str, Tensor]] = {}
        # producer name -> one set per torch call that read its output: the
        # names of the modules running at that moment
        self.consumers: Dict[str, List[Set[str]]] = {}
        self.calls: Dict[str, int] = {}
        self.handles = []
        for module in model.modules():
            self.handles.append(module.register_forward_pre_hook(self._pre))
            self.handles.append(module.register_forward_hook(self._post))

    def _pre(self, module, args):
        self.stack.append(module)

    def _post(self, module, args, out):
        self.stack.pop()
        name = self.names[module]
        self.calls[name] = self.calls.get(name, 0) + 1
        if isinstance(module, _TRACKED) and isinstance(out, Tensor):
            self.outputs[id(out)] = (name, out)  # kept alive: ids stay unique
            self.consumers.setdefault(name, [])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for t in _tensors_in(args) + _tensors_in(kwargs):
            hit = self.outputs.get(id(t))
            if hit is not None and hit[1] is t:
                self.consumers[hit[0]].append(
                    {self.names[m]
                     for m in self.stack})
        return func(*args, **kwargs)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def exclusive_consumer(self, producer: str, modules: Dict[str, nn.Module],
                           types: tuple) -> Optional[str]:
        """The one module of ``types`` inside which every read of
        ``producer``'s output happened (both called once), else None."""
        uses = self.consumers.get(producer)
        if not uses or self.calls.get(producer) != 1:
            return None
        common = [
            n for n in set.intersection(*uses)
            if n and isinstance(modules[n], types)
        ]
        if len(common) != 1 or self.calls.get(common[0]) != 1:
            return None
        return common[0]


def find_fusions(model: nn.Module,
                 forward: Callable[[], Any]) -> Dict[str, Dict[str, Any]]:
    """Find what each conv/linear can absorb at inference.

    For each layer, follow its output through a traced forward pass: a
    BatchNorm (eval mode, running statistics) that alone reads it is folded;
    then a Hardtanh/ReLU that alone reads the result is fused as a clamp;
    then, for a Conv1d, a global ``PointPool`` in ``max``/``ema`` mode over
    the points that alone reads the result is fused as an on-the-fly max
    (the layer's full output is never written).

    Args:
        model (nn.Module): The model (eval mode).
        forward (Callable): Runs one forward pass.

    Returns:
        dict: layer name -> ``dict(bn=name|None, act=name|None,
        pool=name|None)``.
    """
    from mmbinpc.binary.aggregation import PointPool
    modules = dict(model.named_modules())
    tracer = _ConsumerTracer(model)
    try:
        with tracer, torch.no_grad():
            forward()
    finally:
        tracer.remove()
    bns = tuple(_BN_TYPES)
    result = {}
    for name, module in modules.items():
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            continue
        chain: Dict[str, Any] = dict(bn=None, act=None, pool=None)
        cur = name
        bn = tracer.exclusive_consumer(cur, modules, bns)
        if bn is not None and modules[bn].track_running_stats and \
                modules[bn].running_mean is not None:
            chain['bn'] = cur = bn
        act = tracer.exclusive_consumer(cur, modules, _ACT_TYPES)
        if act is not None:
            chain['act'] = cur = act
        pool = tracer.exclusive_consumer(cur, modules, (PointPool, ))
        if pool is not None and isinstance(module, nn.Conv1d):
            p = modules[pool]
            if p.mode in ('max', 'ema') and p.dim in (-1, 2) and \
                    not p.keepdim:
                chain['pool'] = pool
        result[name] = chain
    return result


def find_foldable_bn(model: nn.Module,
                     forward: Callable[[], Any]) -> Dict[str, str]:
    """Map each conv/linear to the BatchNorm it can absorb (see
    :func:`find_fusions`)."""
    return {
        k: v['bn']
        for k, v in find_fusions(model, forward).items() if v['bn']
    }


def act_bounds(act: nn.Module) -> Tuple[float, float]:
    """Clamp bounds of a Hardtanh/ReLU/ReLU6."""
    if isinstance(act, nn.Hardtanh):  # includes ReLU6
        return float(act.min_val), float(act.max_val)
    return 0.0, float('inf')


# --------------------------------------------------------------------------
def _layer_kind(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return 'linear'
    return 'conv2d' if isinstance(module, nn.Conv2d) else 'conv1d'


def _check_input_rule(name: str, module: nn.Module, scale_mode: str,
                      threshold: Optional[Tensor]) -> None:
    """Check our emulation of the binarizer's input side on random data."""
    gen = torch.Generator().manual_seed(0)
    c = module.weight.shape[1]
    x = torch.randn(2, c, 5, generator=gen)
    if isinstance(module, nn.Linear):
        x_in, dim = x[:, :, 0], -1
    elif isinstance(module, nn.Conv2d):
        x_in, dim = x[..., None], 1
    else:
        x_in, dim = x, 1
    sign, scale = module.binarizer.input_parts(x_in, dim=dim)
    shifted = x_in if threshold is None else x_in - (
        threshold if dim == -1 else threshold.reshape((1, -1) + (1, ) *
                                                      (x_in.dim() - 2)))
    ok = torch.equal(sign, torch.where(shifted >= 0, 1.0, -1.0))
    if scale_mode == 'none':
        ok = ok and scale is None
    else:
        ok = ok and scale is not None and torch.allclose(
            scale, shifted.abs().mean(dim=dim, keepdim=True), rtol=1e-5)
    if not ok:
        raise NotSupportedError(
            f'not supported yet: {name} (binarizer '
            f'{module.binarizer.name!r}): its input binarization does not '
            f'match the packed engine\'s rule (bit: x >= input_threshold(), '
            f'scale {scale_mode!r})')


def pack_binary_layer(
    name: str,
    module: nn.Module,
    bn: Optional[nn.Module] = None
) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Packed arrays and description of one binary layer.

    Args:
        name (str): Layer name.
        module (nn.Module): A BinConv1d/BinConv2d/BinLinear with
            ``binarize_input=True``.
        bn (nn.Module, optional): A BatchNorm to fold into the output.

    Returns:
        tuple: ``(entry, arrays)`` - the JSON description and the arrays
        keyed ``<name>.<array>``.
    """
    binarizer = module.binarizer
    bname = binarizer.name
    scale_mode = packed_input_scale(binarizer, name)
    weight = module.weight.detach().float()
    out_ch, in_ch = weight.shape[0], weight.shape[1]
    sign, scale = binarizer.weight_parts(weight)
    scale = scale.detach().double().reshape(-1)
    if scale.numel() == 1:
        scale = scale.expand(out_ch)
    if scale.numel() != out_ch:
        raise ValueError(f'{name}: weight scale has {scale.numel()} values, '
                         f'expected 1 or {out_ch}')
    shift = (
        module.bias.detach().double() if module.bias is not None else
        torch.zeros(out_ch, dtype=torch.float64))
    if bn is not None:
        bn_scale, bn_shift = bn_affine(bn)
        scale = scale * bn_scale
        shift = shift * bn_scale + bn_shift
    # a learned threshold (react) and/or the running centre (center_input)
    threshold = binarizer.input_threshold()
    if threshold is not None:
        threshold = threshold.detach().float()
    _check_input_rule(name, module, scale_mode, threshold)
    arrays = {
        f'{name}.weight_words': pack_signs(sign.reshape(out_ch, in_ch)),
        f'{name}.out_scale': scale.float().detach().numpy(),
        f'{name}.out_shift': shift.float().detach().numpy(),
    }
    if threshold is not None:
        arrays[f'{name}.threshold'] = threshold.detach().numpy()
    entry = dict(
        name=name,
        kind=_layer_kind(module),
        in_channels=in_ch,
        out_channels=out_ch,
        binarizer=bname,
        scale_mode=scale_mode,
        threshold=threshold is not None,
        folded_bn=None if bn is None else '')
    return entry, arrays


def _fold_fp_layer(module: nn.Module, bn: nn.Module) -> Tuple[Tensor, Tensor]:
    bias = module.bias
    if bias is None:
        bias = torch.zeros(module.weight.shape[0], dtype=torch.float64)
    w, b = fold_bn(module.weight, bias, bn)
    return w.float(), b.float()


def export_packed(
    model: nn.Module,
    path: str,
    model_cfg: Any,
    num_points: int = 1024,
    in_channels: Optional[int] = None,
    preprocess: Sequence[str] = ()
) -> ExportSummary:
    """Write ``model`` (a binarized model) in the packed format.

    Args:
        model (nn.Module): The binary model, weights loaded.
        path (str): Output file (``.npz`` content; any extension).
        model_cfg (dict): Config that builds the same (binarized)
            architecture; stored as plain JSON, the architecture
            description.
        num_points (int): Points of the tracing input. Defaults to 1024.
        in_channels (int, optional): Channels per point of the tracing
            input; read from the backbone when None.
        preprocess (Sequence[str]): The test pipeline's steps that
            ``tools/deploy/predict.py`` must replay on raw clouds (names in
            :data:`~mmbinpc.deploy.format.PREPROCESS_STEPS`); see
            :func:`preprocess_steps`.

    Returns:
        ExportSummary: What was written.

    Raises:
        NotSupportedError: For layers or binarizers the engine cannot run.
        TypeError: If ``model_cfg`` holds values JSON cannot store.
    """
    check_supported(model)
    unknown = [p for p in preprocess if p not in PREPROCESS_STEPS]
    if unknown:
        raise ValueError(f'unknown preprocessing steps {unknown}; known: '
                         f'{", ".join(PREPROCESS_STEPS)}')
    cfg_json = plain_config(model_cfg)
    model.eval()
    forward, points = model_forward(
        model, num_points=num_points, in_channels=in_channels)
    fusions = find_fusions(model, forward)
    modules = dict(model.named_modules())
    arrays: Dict[str, np.ndarray] = {}
    entries = []
    fp_folded = []
    consumed_keys: Set[str] = set()
    folded_bn: Dict[str, str] = {}
    for name, module in modules.items():
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            continue
        chain = fusions.get(name, {})
        bn_name = chain.get('bn')
        bn = modules[bn_name] if bn_name else None
        if is_binary_layer(module) and module.binarize_input:
            entry, layer_arrays = pack_binary_layer(name, module, bn)
            entry['folded_bn'] = bn_name
            act = chain.get('act')
            entry['act'] = None if act is None else dict(
                name=act, bounds=list(act_bounds(modules[act])))
            pool = chain.get('pool')
            entry['pool'] = None if pool is None else dict(
                name=pool, mode=modules[pool].mode)
            entries.append(entry)
            arrays.update(layer_arrays)
            consumed_keys.update(f'{name}.{k}'
                                 for k in module.state_dict().keys())
        elif bn is not None:
            if is_binary_layer(module):
                # binary weights with an FP input: stored 1 bit each, run as
                # an FP layer after unpacking (no XNOR possible)
                continue
            w, b = _fold_fp_layer(module, bn)
            arrays[f'fp/{name}.weight'] = w.detach().numpy()
            arrays[f'fp/{name}.bias'] = b.detach().numpy()
            consumed_keys.update({f'{name}.weight', f'{name}.bias'})
            fp_folded.append(dict(name=name, folded_bn=bn_name))
        else:
            continue
        if bn_name:
            folded_bn[bn_name] = name
            consumed_keys.update(f'{bn_name}.{k}'
                                 for k in bn.state_dict().keys())
    for name, module in modules.items():
        if is_binary_layer(module) and not module.binarize_input:
            raise NotSupportedError(
                f'not supported yet: {name} ({type(module).__name__} with '
                f'binarize_input=False): an FP input cannot use XNOR + '
                f'popcount')
    for key, value in model.state_dict().items():
        if key in consumed_keys or key.endswith('num_batches_tracked'):
            continue
        if key.startswith('data_preprocessor.'):
            continue
        if value.is_floating_point():
            value = value.float()
        arrays[f'fp/{key}'] = value.detach().cpu().numpy()
    meta = dict(
        format=FORMAT_NAME,
        version=FORMAT_VERSION,
        model_cfg=cfg_json,
        trace=dict(num_points=num_points, in_channels=points.shape[-1]),
        preprocess=list(preprocess),
        binary_layers=entries,
        fp_folded=fp_folded)
    write_packed(path, meta, arrays)
    file_bytes = _file_size(path)
    return ExportSummary(
        path=path,
        file_bytes=file_bytes,
        binary_layers=[e['name'] for e in entries],
        folded_bn=folded_bn,
        fused={
            e[k]['name']: e['name']
            for e in entries
            for k in ('act', 'pool') if e[k]
        },
        fp_tensors=sum(1 for k in arrays if k.startswith('fp/')))


def _file_size(path: str) -> int:
    import os
    return os.path.getsize(path)


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
        :data:`~mmbinpc.deploy.format.PREPROCESS_STEPS`).

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
