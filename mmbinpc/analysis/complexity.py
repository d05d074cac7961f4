# Copyright (c) mmbinpc contributors. All rights reserved.
"""Per-layer operation, parameter and storage counts of FP32 and 1-bit models.

Convention (the paper's Table 7 / Larq / Bi-Real / ReActNet one):

* **FLOPs** are the FP32 multiply-accumulates (1 MAC = 1 FLOP) of the weight
  layers (Conv/Linear), plus the arithmetic binary layers add around their
  XNOR-popcount: one multiply-add per output element for the output affine
  (weight scale α, bias and folded BatchNorm) and, for XNOR-Net's per-point
  activation scale β, one op per input element (mean |x|) and one per output
  element (× β). BatchNorm is folded into the preceding layer at inference
  (the packed engine does it), so it adds no FLOPs of its own; EMA's shift
  and average pooling's mean count one op per pooled output.
* **Other ops**: arithmetic in the forward code outside layers (T-Net's
  ``bmm`` that applies the predicted transform, ``+ identity``, the
  orthogonality regulariser) is listed row by row and totalled as
  ``other_flops``, not in FLOPs. It is the same in the FP32 and the binary
  model.
* **BOPs** are the binary multiply-accumulates of layers whose weights *and*
  inputs are binarized (XNOR + popcount). A binary layer with an FP input
  (``binarize_input=False``) is counted as FLOPs.
* **OPs** = FLOPs + BOPs / 64.
* **Storage**: 1 bit per binary weight, 32 bits for every other stored
  number (biases, weight scales, BatchNorm's scale and shift, learned
  thresholds). **Parameters** count ``nn.Parameter`` elements (BN running
  statistics are buffers and not counted).
* **Point ops** (FPS, ball query, kNN, interpolation) are listed separately
  with an estimate of their distance evaluations; they are not part of
  FLOPs/BOPs.

Counts are for one forward call of the given input, so use batch size 1 for
per-sample figures.
"""
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from mmbinpc.binary.aggregation import PointPool
from mmbinpc.binary.layers import is_binary_layer

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
             nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d)

# functions/methods counted as multiply-accumulates: out.numel() * inner dim
_MATMUL_FUNCS = {
    torch.matmul, torch.bmm, torch.mm, torch.Tensor.matmul, torch.Tensor.bmm,
    torch.Tensor.mm, torch.Tensor.__matmul__, torch.Tensor.__rmatmul__,
    torch.baddbmm, torch.addmm
}
# element-wise arithmetic: one FLOP per output element
_ELEMENTWISE_FUNCS = {
    torch.add, torch.sub, torch.mul, torch.div, torch.Tensor.add,
    torch.Tensor.sub, torch.Tensor.mul, torch.Tensor.div, torch.Tensor.add_,
    torch.Tensor.sub_, torch.Tensor.mul_, torch.Tensor.div_,
    torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.__iadd__,
    torch.Tensor.__sub__, torch.Tensor.__rsub__, torch.Tensor.__isub__,
    torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.__imul__,
    torch.Tensor.__truediv__, torch.Tensor.__itruediv__
}

#: class name -> (point op label, estimator name); matched on the class name
#: so that mmcv/mmdet3d are not imported here.
POINT_OP_MODULES = {
    'PointsSampler': 'sampling (FPS)',
    'DFPSSampler': 'D-FPS',
    'FFPSSampler': 'F-FPS',
    'FSSampler': 'FS sampling',
    'QueryAndGroup': 'ball query / kNN + grouping',
    'GroupAll': 'group all',
    'PointFPModule': 'three_nn + interpolation',
    'DGCNNGFModule': 'kNN + grouping',
    'DilatedKNN': 'dilated kNN (PointCNN)',
}


@dataclass
class LayerCount:
    """Counts of one module (or one functional op inside a module).

    Attributes:
        name (str): Module name (``<module>.<op>`` for functional ops).
        type (str): Module class or function name.
        precision (str): ``'fp32'``, ``'1-bit'`` (weights and inputs),
            ``'1-bit w'`` (binary weights, FP input) or ``'-'``.
        macs (int): FP multiply-accumulates (FLOPs).
        bops (int): Binary multiply-accumulates.
        params (int): Parameter elements.
        storage_bits (int): Bits needed to store the parameters for
            inference.
        calls (int): Number of times the module ran.
    """
    name: str
    type: str
    precision: str = '-'
    macs: int = 0
    bops: int = 0
    params: int = 0
    storage_bits: int = 0
    calls: int = 0


@dataclass
class PointOpCount:
    """One point operation (not part of FLOPs/BOPs).

    Attributes:
        name (str): Module name.
        op (str): What it does (FPS, ball query, kNN, ...).
        distance_evals (int): Estimated point-to-point distance evaluations.
        calls (int): Number of calls.
    """
    name: str
    op: str
    distance_evals: int = 0
    calls: int = 0


@dataclass
class ComplexityReport:
    """Per-layer counts and totals of one model for one forward call.

    Attributes:
        layers (list[LayerCount]): Rows in execution order.
        point_ops (list[PointOpCount]): Point operations, listed apart.
        other_ops (list[LayerCount]): Arithmetic of the forward code outside
            layers (matmul, element-wise), listed apart.
        reference (ComplexityReport, optional): The FP32 version of the same
            model, used for :attr:`speedup` and :attr:`compression`.
    """
    layers: List[LayerCount] = field(default_factory=list)
    point_ops: List[PointOpCount] = field(default_factory=list)
    other_ops: List[LayerCount] = field(default_factory=list)
    reference: Optional['ComplexityReport'] = None

    @property
    def flops(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def other_flops(self) -> int:
        """FLOPs of the forward code outside layers (not in :attr:`flops`)."""
        return sum(r.macs for r in self.other_ops)

    @property
    def bops(self) -> int:
        return sum(r.bops for r in self.layers)

    @property
    def ops(self) -> float:
        """FLOPs + BOPs / 64."""
        return self.flops + self.bops / 64

    @property
    def params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def storage_bytes(self) -> float:
        return sum(r.storage_bits for r in self.layers) / 8

    @property
    def speedup(self) -> float:
        """OPs of the reference divided by ours (1.0 without reference)."""
        if self.reference is None:
            return 1.0
        return self.reference.ops / self.ops if self.ops else math.inf

    @property
    def compression(self) -> float:
        """Storage of the reference divided by ours (1.0 without one)."""
        if self.reference is None:
            return 1.0
        ref = self.reference.storage_bytes
        return ref / self.storage_bytes if self.storage_bytes else math.inf

    def totals(self) -> Dict[str, float]:
        """The totals, keyed as in ``complexity.py --json``."""
        return dict(
            flops=self.flops,
            bops=self.bops,
            ops=self.ops,
            params=self.params,
            storage_bytes=self.storage_bytes,
            speedup=self.speedup,
            compression=self.compression,
            other_flops=self.other_flops)

    def to_dict(self) -> Dict[str, Any]:
        """Totals plus the per-layer and point-op rows."""
        out: Dict[str, Any] = dict(self.totals())
        out['layers'] = [asdict(r) for r in self.layers]
        out['point_ops'] = [asdict(r) for r in self.point_ops]
        out['other_ops'] = [asdict(r) for r in self.other_ops]
        return out

    def table(self) -> str:
        """A readable per-layer table followed by the totals."""
        head = ('name', 'type', 'precision', 'MACs', 'BOPs', 'params',
                'storage bits')
        rows = [(r.name, r.type, r.precision, f'{r.macs:,}', f'{r.bops:,}',
                 f'{r.params:,}', f'{r.storage_bits:,}') for r in self.layers]
        widths = [
            max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
            for i, h in enumerate(head)
        ]
        fmt = '  '.join('{:<%d}' % w if i < 3 else '{:>%d}' % w
                        for i, w in enumerate(widths))
        lines = [fmt.format(*head), fmt.format(*('-' * w for w in widths))]
        lines += [fmt.format(*row) for row in rows]
        if self.other_ops:
            lines += ['', 'other ops in the forward code (not in FLOPs):']
            for r in self.other_ops:
                lines.append(f'  {r.name}  {r.macs:,} ({r.calls} call(s))')
        if self.point_ops:
            lines += ['', 'point ops (not in FLOPs/BOPs):']
            for p in self.point_ops:
                lines.append(f'  {p.name}  {p.op}  ~{p.distance_evals:,} '
                             f'distance evaluations ({p.calls} call(s))')
        lines += [
            '',
            f'FLOPs (FP MACs): {self.flops:,} ({self.flops / 1e6:.2f} M)',
            f'BOPs:            {self.bops:,} ({self.bops / 1e6:.2f} M)',
            f'OPs = FLOPs + BOPs/64: {self.ops / 1e6:.2f} M',
            f'other ops (not in OPs): {self.other_flops:,}',
            f'parameters:      {self.params:,} ({self.params / 1e6:.3f} M)',
            f'storage:         {self.storage_bytes:,.0f} bytes '
            f'({self.storage_bytes / 2**20:.3f} MiB)',
        ]
        if self.reference is not None:
            lines += [
                f'speed-up vs FP32 (OPs):      {self.speedup:.2f}x',
                f'compression vs FP32 (bytes): {self.compression:.2f}x'
            ]
        return '\n'.join(lines)

    def __str__(self) -> str:
        return self.table()


# --------------------------------------------------------------------------
def _first_tensor(obj: Any) -> Optional[Tensor]:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (list, tuple)):
        for item in obj:
            t = _first_tensor(item)
            if t is not None:
                return t
    if isinstance(obj, dict):
        for item in obj.values():
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


def _linear_macs(module: nn.Module, out: Tensor) -> int:
    """MACs of a conv/linear producing ``out`` (bias not counted)."""
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    per_out = module.in_channels // module.groups * math.prod(
        module.kernel_size)
    return out.numel() * per_out


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _binary_layer_counts(module: nn.Module, x: Tensor, out: Tensor,
                         row: LayerCount) -> None:
    macs = _linear_macs(module, out)
    binarizer = module.binarizer
    spec = getattr(binarizer, 'spec', None)
    if spec is None:
        raise TypeError(f'{type(binarizer).__name__} declares no '
                        'BinarizerSpec; register it with register_binarizer')
    out_channels, in_channels = module.weight.shape[:2]
    # floats beside the bits, as the binarizer declares them: its weight
    # scale, and an input threshold per channel when it learns one or
    # centres its input (the packed file stores either as a threshold)
    scale_floats = spec.scale_floats(out_channels)
    extra = spec.threshold_floats(in_channels)
    if not extra and getattr(binarizer, 'center_input', False):
        extra = in_channels
    bias = module.bias.numel() if module.bias is not None else 0
    row.params += _own_params(module)
    row.storage_bits += module.weight.numel() + 32 * (
        bias + scale_floats + extra)
    if not getattr(module, 'binarize_input', True):
        row.precision = '1-bit w'
        row.macs += macs
        return
    row.precision = '1-bit'
    row.bops += macs
    row.macs += out.numel()  # output affine: α, bias, folded BN
    in_scale = None
    if hasattr(binarizer, 'input_parts'):
        _, in_scale = binarizer.input_parts(x, dim=module.channel_dim) \
            if hasattr(module, 'channel_dim') else binarizer.input_parts(x)
    if in_scale is not None:
        row.macs += x.numel() + out.numel()  # β = mean|x|, then out * β


class _FunctionCounter(TorchFunctionMode):
    """Counts matmul and element-wise arithmetic outside counted modules."""

    def __init__(self, tracker: '_Tracker') -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tracker = self.tracker
        if tracker.inside_counted or tracker.in_hook or not tracker.stack:
            return out
        if func in _MATMUL_FUNCS and isinstance(out, Tensor):
            a = args[-2] if func in (torch.baddbmm, torch.addmm) else args[0]
            if isinstance(a, Tensor) and func is torch.Tensor.__rmatmul__:
                a = args[1]
            inner = a.shape[-1] if isinstance(a, Tensor) else 1
            tracker.add_function(func, out.numel() * inner)
        elif func in _ELEMENTWISE_FUNCS and isinstance(out, Tensor) and all(
                isinstance(a, Tensor) for a in args[:2]):
            tracker.add_function(func, out.numel())
        return out


class _Tracker:
    """Forward hooks + a torch function mode that fill a report."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.names = {
            m: n or type(model).__name__
            for n, m in model.named_modules()
        }
        self.stack: List[nn.Module] = []
        self.counted_depth = 0
        self.rows: Dict[str, LayerCount] = {}
        self.point_ops: Dict[str, PointOpCount] = {}
        self.other: Dict[str, LayerCount] = {}
        self.handles: list = []
        self.in_hook = False  # our own counting code runs torch ops too

    @property
    def inside_counted(self) -> bool:
        return self.counted_depth > 0

    @staticmethod
    def is_counted(module: nn.Module) -> bool:
        return (isinstance(module, _CONV_TYPES + (nn.Linear, ) + _BN_TYPES)
                or isinstance(module, PointPool)
                or type(module).__name__ in POINT_OP_MODULES)

    def row(self, name: str, type_name: str) -> LayerCount:
        if name not in self.rows:
            self.rows[name] = LayerCount(name=name, type=type_name)
        return self.rows[name]

    def add_function(self, func: Callable, macs: int) -> None:
        owner = self.names[self.stack[-1]]
        fname = getattr(func, '__name__', str(func)).strip('_')
        key = f'{owner}.{fname}'
        if key not in self.other:
            self.other[key] = LayerCount(name=key, type=fname)
        row = self.other[key]
        row.precision = 'fp32'
        row.macs += macs
        row.calls += 1

    # hooks ------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        self.stack.append(module)
        if self.is_counted(module):
            self.counted_depth += 1

    def post_hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        self.in_hook = True
        try:
            self._post_hook(module, args, out)
        finally:
            self.in_hook = False

    def _post_hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        self.stack.pop()
        if not self.is_counted(module):
            return
        self.counted_depth -= 1
        if self.counted_depth > 0:
            return  # nested inside another counted module
        name = self.names[module]
        type_name = type(module).__name__
        if type_name in POINT_OP_MODULES:
            self._point_op(name, type_name, args, out)
            return
        x = _first_tensor(args)
        y = _first_tensor(out)
        if y is None:
            return
        row = self.row(name, type_name)
        first_call = row.calls == 0
        row.calls += 1
        if is_binary_layer(module):
            if first_call:
                _binary_layer_counts(module, x, y, row)
            else:  # params/storage once, operations per call
                tmp = LayerCount(name, type_name)
                _binary_layer_counts(module, x, y, tmp)
                row.macs += tmp.macs
                row.bops += tmp.bops
            return
        params = _own_params(module) if first_call else 0
        row.params += params
        row.storage_bits += 32 * params
        if isinstance(module, _CONV_TYPES + (nn.Linear, )):
            row.precision = 'fp32'
            row.macs += _linear_macs(module, y)
        elif isinstance(module, _BN_TYPES):
            row.precision = 'fp32'  # folded into the previous layer: 0 MACs
        elif isinstance(module, PointPool):
            # max/avg reductions are comparisons/adds of data movement
            # size; only the EMA shift and the mean's division are counted
            if 'ema' in module.mode:
                row.macs += y.numel() if '+' not in module.mode \
                    else y.numel() // 2
            if 'avg' in module.mode:
                row.macs += y.numel() if module.mode == 'avg' \
                    else y.numel() // 2

    def _point_op(self, name: str, type_name: str, args: tuple,
                  out: Any) -> None:
        tensors = [a for a in args if isinstance(a, Tensor)]
        evals = 0
        if len(tensors) >= 1:
            n = tensors[0].shape[1] if tensors[0].dim() >= 2 else 1
            y = _first_tensor(out)
            if type_name in ('PointsSampler', 'DFPSSampler', 'FFPSSampler',
                             'FSSampler'):
                m = y.shape[-1] if y is not None else 0
                evals = tensors[0].shape[0] * n * m
            elif type_name in ('QueryAndGroup',
                               'DilatedKNN') and len(tensors) >= 2:
                m = tensors[1].shape[1]
                evals = tensors[0].shape[0] * n * m
            elif type_name == 'PointFPModule' and len(tensors) >= 2:
                evals = tensors[0].shape[0] * tensors[0].shape[1] * \
                    tensors[1].shape[1]
            elif type_name == 'DGCNNGFModule':
                x = tensors[0]  # (B, N, C)
                evals = x.shape[0] * x.shape[1] * x.shape[1]
        op = self.point_ops.setdefault(
            name, PointOpCount(name, POINT_OP_MODULES[type_name]))
        op.distance_evals += int(evals)
        op.calls += 1

    def __enter__(self) -> '_Tracker':
        for module in self.model.modules():
            self.handles.append(
                module.register_forward_pre_hook(self.pre_hook))
            self.handles.append(module.register_forward_hook(self.post_hook))
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def count_complexity(
        model: nn.Module,
        forward: Callable[[], Any],
        reference: Optional[ComplexityReport] = None) -> ComplexityReport:
    """Run ``forward()`` once and count every layer of ``model``.

    Args:
        model (nn.Module): The model whose modules are counted (hooks are
            registered on all its submodules, then removed).
        forward (Callable): Runs one forward pass of ``model``, e.g.
            ``lambda: model._forward(inputs)``. Run under ``torch.no_grad``.
        reference (ComplexityReport, optional): Report of the FP32 version of
            the same model, for the speed-up and compression ratios.

    Returns:
        ComplexityReport: The rows (in execution order) and totals.
    """
    was_training = model.training
    model.eval()
    tracker = _Tracker(model)
    try:
        with tracker, _FunctionCounter(tracker), torch.no_grad():
            forward()
    finally:
        model.train(was_training)
    return ComplexityReport(
        layers=list(tracker.rows.values()),
        point_ops=list(tracker.point_ops.values()),
        other_ops=list(tracker.other.values()),
        reference=reference)


def _in_channels(model: nn.Module, default: int = 3) -> int:
    backbone = getattr(model, 'backbone', model)
    for attr in ('in_channels', 'in_channels_'):
        value = getattr(backbone, attr, None)
        if isinstance(value, int):
            return value
    return default


def model_forward(model: nn.Module,
                  num_points: int = 1024,
                  in_channels: Optional[int] = None,
                  batch_size: int = 1,
                  seed: int = 0) -> Tuple[Callable[[], Any], Tensor]:
    """A ``forward()`` closure for a classifier or mmdet3d segmentor.

    Args:
        model (nn.Module): A model with ``_forward(batch_inputs_dict)``.
        num_points (int): Points per cloud. Defaults to 1024.
        in_channels (int, optional): Channels per point; read from
            ``model.backbone.in_channels`` when None.
        batch_size (int): Clouds per call. Defaults to 1.
        seed (int): Seed of the random input. Defaults to 0.

    Returns:
        tuple: ``(forward, points)`` with points (B, N, C).
    """
    if not hasattr(model, '_forward'):
        raise TypeError(f'{type(model).__name__} has no _forward(); pass a '
                        f'forward closure to count_complexity instead')
    channels = in_channels or _in_channels(model)
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(
        batch_size, num_points, channels, generator=gen) * 2 - 1

    def forward() -> Any:
        return model._forward(dict(points=list(points.unbind(0))))

    return forward, points
