# Copyright (c) mmbinpc contributors. All rights reserved.
"""The ops of a packed graph and how the runtime executes them.

Every op is a class registered in :data:`OPS` under the name the file uses.
It declares what a node of its kind must hold - attributes (:attr:`Op.ATTRS`,
each with a check), arrays (:meth:`Op.array_specs`, dtype and shape worked
out from the attributes) and the values it reads and writes
(:meth:`Op.infer`) - so that a file is checked completely before anything
runs, and it executes on NumPy arrays with the Numba kernels of
:mod:`mmbinpc.deploy.kernels`.

Values flowing between ops are channel-last:

* ``float``: float32 arrays ``(B, N, C)`` (points), ``(B, N, K, C)`` (each
  point's K neighbours) or ``(B, C)`` (one row per cloud);
* ``bits``: :class:`Bits`, the same rows binarized for the next binary
  layer and packed 64 channels to a word (written directly by the binary
  layer before it, see :class:`BinaryDense`);
* ``index``: int32 neighbour indices ``(B, N, K)``.

Every op keeps its work arrays between calls (one set per input shape),
so a stream of same-sized clouds allocates almost nothing; the arrays a
call returns are reused by the next call, which is why
:class:`~mmbinpc.deploy.runtime.model.PackedModel` runs one call at a time
and copies the final output.
"""
from typing import Any, Callable, Dict, List, NamedTuple, Tuple, Type

import numpy as np

from mmbinpc.stats import ema_offset
from .. import kernels as xk
from ..kernels import points as pk

#: Pooling modes of :class:`Pool` (a fused pooling in :class:`BinaryDense`
#: is ``'max'`` or ``'ema'``).
POOL_MODES = ('max', 'ema', 'avg', 'max+avg', 'ema+avg')
#: Outputs of a binary layer.
BINARY_OUTPUTS = ('float', 'bits', 'max', 'ema')
#: Input activation scales of a binary layer (XNOR-Net's β = mean |x - t|).
SCALE_MODES = ('none', 'mean_abs')
#: Spaces a kNN searches: the last three channels (xyz) or all of them.
KNN_SPACES = ('xyz', 'features')
#: The largest kNN k (mmcv's CUDA kernel limit).
KNN_MAX_K = 100


class ValueInfo(NamedTuple):
    """What a value is, for checking a graph before it runs.

    Attributes:
        kind (str): ``'float'``, ``'bits'`` or ``'index'``.
        ndim (int): Number of axes, the channel axis included.
        channels (int): Size of the last axis (for ``bits``: the channels
            before packing; for ``index``: K).
    """
    kind: str
    ndim: int
    channels: int


class GraphError(ValueError):
    """A node that is not a valid op (the file reader names the file)."""


class Bits:
    """Rows binarized and packed for the next binary layer.

    Args:
        words (np.ndarray): (M, ceil(C / 64)) uint64.
        lead (tuple[int]): The leading shape of the rows (``M`` = product).
        channels (int): C.
    """

    __slots__ = ('words', 'lead', 'channels')

    def __init__(self, words: np.ndarray, lead: Tuple[int, ...],
                 channels: int) -> None:
        self.words = words
        self.lead = lead
        self.channels = channels

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.lead + (self.channels, )


# ------------------------------------------------------------ attr checks
def is_count(value: Any, high: int = 1 << 20) -> bool:
    """A positive int at most ``high`` (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and \
        0 < value <= high


def is_clamp(value: Any) -> bool:
    """None, or ``[lo, hi]`` numbers (``null`` for an open end), lo <= hi."""
    if value is None:
        return True
    if not (isinstance(value, list) and len(value) == 2):
        return False
    ends = [v for v in value if v is not None]
    if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            and np.isfinite(v) for v in ends):
        return False
    return None in value or value[0] <= value[1]


def one_of(*choices: str) -> Callable[[Any], bool]:
    return lambda v: v in choices


def clamp_bounds(value: Any) -> Tuple[float, float]:
    """``[lo, hi]`` (or None) as float bounds; None ends are infinite."""
    if value is None:
        return -np.inf, np.inf
    lo, hi = value
    return (-np.inf if lo is None else float(lo),
            np.inf if hi is None else float(hi))


# --------------------------------------------------------------------- ops
OPS: Dict[str, Type['Op']] = {}


def register(cls: Type['Op']) -> Type['Op']:
    """Class decorator: make ``cls`` runnable under ``cls.op``."""
    OPS[cls.op] = cls
    return cls


class Op:
    """Base of the ops: attribute checking and work arrays.

    Args:
        name (str): The node's name (for messages).
        attrs (dict): Its attributes, checked by :meth:`check_attrs`.
        arrays (dict): Role -> array, checked against :meth:`array_specs`.
    """

    op = ''
    #: number of inputs; None: one or more (``infer`` checks the count)
    arity = 1
    #: attribute -> check
    ATTRS: Dict[str, Callable[[Any], bool]] = {}

    def __init__(self, name: str, attrs: Dict[str, Any],
                 arrays: Dict[str, np.ndarray]) -> None:
        self.name = name
        self.attrs = attrs
        self.arrays = arrays
        self._work: Dict[Any, np.ndarray] = {}

    # -- checks, used by the file reader before anything is built --------
    @classmethod
    def check_attrs(cls, attrs: Any) -> None:
        """Raise :class:`GraphError` for a missing, unknown or bad one."""
        if not isinstance(attrs, dict):
            raise GraphError('attrs is not a JSON object')
        missing = [k for k in cls.ATTRS if k not in attrs]
        if missing:
            raise GraphError(f'attrs lack {", ".join(missing)}')
        unknown = [k for k in attrs if k not in cls.ATTRS]
        if unknown:
            raise GraphError(f'unknown attrs {", ".join(unknown)}')
        for key, check in cls.ATTRS.items():
            if not check(attrs[key]):
                raise GraphError(f'attrs.{key} has an invalid value '
                                 f'{attrs[key]!r}')
        cls.check_combination(attrs)

    @classmethod
    def check_combination(cls, attrs: Dict[str, Any]) -> None:
        """Constraints between attributes (valid ones each)."""

    @classmethod
    def array_specs(
            cls,
            attrs: Dict[str,
                        Any]) -> Dict[str, Tuple[np.dtype, Tuple[int, ...]]]:
        """Role -> (dtype, shape) of every array the node must hold."""
        return {}

    @classmethod
    def infer(cls, attrs: Dict[str, Any],
              inputs: List[ValueInfo]) -> ValueInfo:
        """The output of the node for these inputs (raise
        :class:`GraphError` if it cannot take them)."""
        raise NotImplementedError

    # -- execution -------------------------------------------------------
    def work(self,
             tag: Any,
             shape: Tuple[int, ...],
             dtype: Any = np.float32) -> np.ndarray:
        """A work array of this op kept between calls (uninitialised)."""
        buf = self._work.get(tag)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            if len(self._work) > 32:  # many input shapes: keep it bounded
                self._work.clear()
            buf = self._work[tag] = np.empty(shape, dtype=dtype)
        return buf

    def __call__(self, *values: Any) -> Any:
        raise NotImplementedError


def _float_input(op: str,
                 info: ValueInfo,
                 channels: int,
                 min_ndim: int = 2) -> None:
    if info.kind != 'float' or info.ndim < min_ndim:
        raise GraphError(f'{op} reads float features of at least {min_ndim} '
                         f'axes, its input is {info.kind} with {info.ndim}')
    if info.channels != channels:
        raise GraphError(f'{op} reads {channels} channels, its input has '
                         f'{info.channels}')


_F32 = np.dtype(np.float32)
_U64 = np.dtype(np.uint64)
_I64 = np.dtype(np.int64)


def _rows(x: np.ndarray) -> np.ndarray:
    """(M, C) C-contiguous float32 rows of a channel-last array."""
    return np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float32)


@register
class Dense(Op):
    """An FP32 point-wise layer (1x1 conv or linear) with its BatchNorm
    folded in and a following Hardtanh/ReLU as a clamp:
    ``clamp(x @ weight.T + bias)`` on the last axis.

    Arrays: ``weight`` (O, C) and ``bias`` (O,) float32.
    """

    op = 'dense'
    ATTRS = dict(in_channels=is_count, out_channels=is_count, clamp=is_clamp)

    @classmethod
    def array_specs(cls, attrs):
        c, o = attrs['in_channels'], attrs['out_channels']
        return dict(weight=(_F32, (o, c)), bias=(_F32, (o, )))

    @classmethod
    def infer(cls, attrs, inputs):
        _float_input(cls.op, inputs[0], attrs['in_channels'])
        return ValueInfo('float', inputs[0].ndim, attrs['out_channels'])

    def __init__(self, name, attrs, arrays):
        super().__init__(name, attrs, arrays)
        self.weight_t = np.ascontiguousarray(arrays['weight'].T)
        self.bias = np.ascontiguousarray(arrays['bias'])
        self.lo, self.hi = clamp_bounds(attrs['clamp'])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # a Numba loop, not NumPy's BLAS: the FP layers a binary model
        # keeps are narrow (raw coordinates in, or one row per cloud), and
        # BLAS's own thread pool would compete with PyTorch's and Numba's
        rows = _rows(x)
        out = self.work('out', (rows.shape[0], self.weight_t.shape[1]))
        xk.dense_rows(rows, self.weight_t, self.bias, self.lo, self.hi, out)
        return out.reshape(x.shape[:-1] + (out.shape[1], ))


@register
class BinaryDense(Op):
    """A binary point-wise layer: XNOR + popcount on packed words.

    For an input row binarized as ``bits(x) = x >= threshold`` (with
    XNOR-Net's β = mean |x − threshold| when ``scale_mode='mean_abs'``,
    else β = 1) and output channel ``o``, with ``d`` the Hamming distance
    between the row's and the channel's weight bits over ``C`` inputs::

        y[o] = clamp((C - 2 d) * out_scale[o] * β + out_shift[o])

    ``out_scale`` / ``out_shift`` hold the weight scale, the bias and a
    folded BatchNorm. What is written (``output``):

    * ``'float'``: ``y``;
    * ``'bits'``: the next binary layer's input bits ``y >= t_next``, as
      ``d <= limit[o]`` (the exporter works out ``limit`` and complements
      the weight bits of the channels whose slope is negative);
    * ``'max'`` / ``'ema'``: the max of ``y`` over the second-to-last axis
      (the points of a cloud, or a point's neighbours), minus δ*(n) for
      ``'ema'``; with β = 1 each group's rows are first reduced to their
      distinct ones (binary rows repeat; the max does not change).

    The input is float rows (``input='float'``; the layer packs them with
    ``threshold``) or the bits the previous layer wrote (``'bits'``).

    Arrays: ``weight_bits`` (O, ceil(C / 64)) uint64; ``out_scale`` and
    ``out_shift`` (O,) float32, or ``limit`` (O,) int64 for ``'bits'``;
    ``threshold`` (C,) float32 for float input.
    """

    op = 'binary_dense'
    ATTRS = dict(
        in_channels=is_count,
        out_channels=is_count,
        input=one_of('float', 'bits'),
        scale_mode=one_of(*SCALE_MODES),
        clamp=is_clamp,
        output=one_of(*BINARY_OUTPUTS))

    @classmethod
    def check_combination(cls, attrs):
        if attrs['scale_mode'] != 'none' and (attrs['input'] == 'bits'
                                              or attrs['output'] == 'bits'):
            raise GraphError('a layer with an activation scale needs float '
                             'input and a float output')

    @classmethod
    def array_specs(cls, attrs):
        c, o = attrs['in_channels'], attrs['out_channels']
        specs = dict(weight_bits=(_U64, (o, (c + 63) // 64)))
        if attrs['output'] == 'bits':
            specs['limit'] = (_I64, (o, ))
        else:
            specs['out_scale'] = (_F32, (o, ))
            specs['out_shift'] = (_F32, (o, ))
        if attrs['input'] == 'float':
            specs['threshold'] = (_F32, (c, ))
        return specs

    @classmethod
    def infer(cls, attrs, inputs):
        info = inputs[0]
        if info.kind != attrs['input']:
            raise GraphError(f'binary_dense declares {attrs["input"]} input, '
                             f'its input is {info.kind}')
        pooled = attrs['output'] in ('max', 'ema')
        if info.ndim < (3 if pooled else 2) or \
                info.channels != attrs['in_channels']:
            raise GraphError(f'binary_dense reads {attrs["in_channels"]} '
                             f'channels, its input is {info}')
        kind = 'bits' if attrs['output'] == 'bits' else 'float'
        return ValueInfo(kind, info.ndim - pooled, attrs['out_channels'])

    def __init__(self, name, attrs, arrays):
        super().__init__(name, attrs, arrays)
        self.n_in = attrs['in_channels']
        self.n_out = attrs['out_channels']
        self.output = attrs['output']
        self.lo, self.hi = clamp_bounds(attrs['clamp'])
        self.scale_code = (
            xk.SCALE_MEAN_ABS
            if attrs['scale_mode'] == 'mean_abs' else xk.SCALE_NONE)
        # (W, O): output channels contiguous for the vectorised inner loop
        self.weight_t = np.ascontiguousarray(arrays['weight_bits'].T)
        self.threshold = arrays.get('threshold')
        if self.output == 'bits':
            self.limit = np.full((self.n_out + 63) // 64 * 64, -1, np.int64)
            self.limit[:self.n_out] = arrays['limit']
        else:
            self.out_scale = np.ascontiguousarray(arrays['out_scale'])
            self.out_shift = np.ascontiguousarray(arrays['out_shift'])
        self.flipped = None
        if self.output in ('max', 'ema') and self.scale_code == xk.SCALE_NONE:
            self.flipped = xk.flip_negative_channels(self.weight_t, self.n_in,
                                                     self.out_scale)

    def _packed(self, x: Any) -> Tuple[np.ndarray, np.ndarray, tuple]:
        """Packed words, β and the leading shape of the input rows."""
        if isinstance(x, Bits):  # β = 1: the writer had no input scale
            ones = self.work('ones', (x.words.shape[0], ))
            ones.fill(1.0)
            return x.words, ones, x.lead
        rows = _rows(x)
        m = rows.shape[0]
        words = self.work('words', (m, self.weight_t.shape[0]), np.uint64)
        beta = self.work('beta', (m, ))
        xk.pack_input_into(rows, self.threshold, self.scale_code, words, beta)
        return words, beta, x.shape[:-1]

    def __call__(self, x: Any) -> Any:
        words, beta, lead = self._packed(x)
        m = words.shape[0]
        threads = xk.get_num_threads()
        if self.output == 'bits':
            out = self.work('bits', (m, self.limit.shape[0] // 64), np.uint64)
            xk.xnor_gemm_bits(words, self.weight_t, self.limit, out, threads)
            return Bits(out, lead, self.n_out)
        if self.output == 'float':
            out = self.work('out', (m, self.n_out))
            xk.xnor_gemm_affine(words, beta, self.n_in, self.weight_t,
                                self.out_scale, self.out_shift, self.lo,
                                self.hi, 0, out, threads)
            return out.reshape(lead + (self.n_out, ))
        group = lead[-1]
        if group == 0:
            raise ValueError(f'{self.name}: cannot pool over 0 elements')
        out = self.work('pooled', (m // group, self.n_out))
        if self.flipped is not None:
            xk.xnor_gemm_maxpool_flipped(
                words, self.n_in, self.flipped, self.out_scale, self.out_shift,
                self.lo, self.hi, group, out,
                self.work('part', (threads, self.n_out), np.int64),
                self.work('table', (xk.dedup_table_size(group), ), np.int32),
                self.work('uniq', (group, words.shape[1]), np.uint64))
        else:  # with an activation scale: the max of the floats
            out.fill(-np.inf)
            xk.xnor_gemm_affine(words, beta, self.n_in, self.weight_t,
                                self.out_scale, self.out_shift, self.lo,
                                self.hi, group, out, threads)
        if self.output == 'ema':
            out -= np.float32(ema_offset(group))
        return out.reshape(lead[:-1] + (self.n_out, ))


@register
class Pool(Op):
    """Pool float features over the second-to-last axis (the points of a
    cloud, or a point's neighbours): ``max``, ``avg``, ``ema`` (max − δ*(n))
    or the max/EMA and the average concatenated on the channels."""

    op = 'pool'
    ATTRS = dict(mode=one_of(*POOL_MODES), channels=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        _float_input(cls.op, inputs[0], attrs['channels'], min_ndim=3)
        both = '+' in attrs['mode']
        return ValueInfo('float', inputs[0].ndim - 1,
                         attrs['channels'] * (2 if both else 1))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mode = self.attrs['mode']
        n = x.shape[-2]
        if n == 0:
            raise ValueError(f'{self.name}: cannot pool over 0 elements')
        parts = []
        if mode != 'avg':
            top = x.max(axis=-2)
            if mode.startswith('ema'):
                top -= np.float32(ema_offset(n))
            parts.append(top)
        if mode in ('avg', 'max+avg', 'ema+avg'):
            parts.append(x.mean(axis=-2, dtype=np.float32))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, -1)


@register
class Transform(Op):
    """A T-Net's alignment: the first ``k`` channels of every point times
    ``(T + I)``, where ``T`` is the (B, k * k) output of the T-Net's last
    layer; the other channels pass through."""

    op = 'transform'
    arity = 2
    ATTRS = dict(k=lambda v: is_count(v, 1 << 12))

    @classmethod
    def infer(cls, attrs, inputs):
        x, t = inputs
        k = attrs['k']
        if x.kind != 'float' or x.ndim != 3 or x.channels < k:
            raise GraphError(f'transform needs (B, N, >= {k}) float points, '
                             f'got {x}')
        if t != ValueInfo('float', 2, k * k):
            raise GraphError(f'transform needs a (B, {k * k}) float matrix, '
                             f'got {t}')
        return x

    def __call__(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        k = self.attrs['k']
        out = self.work('out', x.shape)
        xk.transform_rows(
            np.ascontiguousarray(x),
            np.ascontiguousarray(t).reshape(-1, k, k), out)
        return out


@register
class KNN(Op):
    """The ``k`` nearest points of every point of a cloud (itself
    included), nearest first, ties to the smaller index - mmcv's ``knn``.

    ``space='xyz'`` searches the last three channels (DGCNN's D-KNN) with
    the grid kernel of :mod:`mmbinpc.deploy.kernels.points`;
    ``'features'`` all channels (F-KNN) with the kernel the training-time
    CPU op uses (:func:`~mmbinpc.deploy.kernels.points.knn_features`), so
    both find the same neighbours bit for bit.
    When the cloud has fewer than ``k`` points the missing neighbours are
    index 0, as in mmcv.
    """

    op = 'knn'
    ATTRS = dict(
        k=lambda v: is_count(v, KNN_MAX_K - 1), space=one_of(*KNN_SPACES))

    @classmethod
    def infer(cls, attrs, inputs):
        x = inputs[0]
        need = 3 if attrs['space'] == 'xyz' else 1
        if x.kind != 'float' or x.ndim != 3 or x.channels < need:
            raise GraphError(f'knn needs (B, N, C) float points, got {x}')
        return ValueInfo('index', 3, attrs['k'])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        k = self.attrs['k']
        b, n, _ = x.shape
        idx = self.work('idx', (b, n, k), np.int32)
        found = min(k, n)
        if found < k:
            idx.fill(0)
        if n == 0:
            return idx
        if self.attrs['space'] == 'xyz':
            pts = np.ascontiguousarray(x[..., -3:], dtype=np.float32)
            near = self.work('near', (b, n, found), np.int32)
            d2 = self.work('d2', (b, n, found))
            pk.KNN_XYZ[0](pts, pts, found, near, d2)
            idx[..., :found] = near
            return idx
        parallel = xk.get_num_threads() > 1
        for i in range(b):
            idx[i, :, :found] = pk.knn_features(x[i], x[i], found, parallel)
        return idx


@register
class EdgeFeatures(Op):
    """DGCNN's edge features: for every point ``i`` and neighbour ``j`` the
    channels ``[x_j − x_i, x_i]`` (B, N, K, 2C)."""

    op = 'edge_features'
    arity = 2
    ATTRS = dict(channels=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        x, idx = inputs
        _float_input(cls.op, x, attrs['channels'], min_ndim=3)
        if x.ndim != 3 or idx.kind != 'index':
            raise GraphError(f'edge_features needs (B, N, C) points and '
                             f'indices, got {x} and {idx}')
        return ValueInfo('float', 4, 2 * attrs['channels'])

    def __call__(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        b, n, c = x.shape
        k = idx.shape[-1]
        out = self.work('out', (b, n, k, 2 * c))
        batch = np.arange(b)[:, None, None]
        np.subtract(x[batch, idx], x[:, :, None, :], out=out[..., :c])
        out[..., c:] = x[:, :, None, :]
        return out


@register
class Concat(Op):
    """Concatenate float values on the channels."""

    op = 'concat'
    arity = None
    ATTRS = dict(channels=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        if len(inputs) < 2 or any(i.kind != 'float' or i.ndim != inputs[0].ndim
                                  for i in inputs):
            raise GraphError(f'concat needs two or more float values of one '
                             f'rank, got {inputs}')
        total = sum(i.channels for i in inputs)
        if total != attrs['channels']:
            raise GraphError(f'concat declares {attrs["channels"]} channels, '
                             f'its inputs have {total}')
        return ValueInfo('float', inputs[0].ndim, total)

    def __call__(self, *values: np.ndarray) -> np.ndarray:
        lead = values[0].shape[:-1]
        out = self.work('out', lead + (self.attrs['channels'], ))
        start = 0
        for v in values:
            out[..., start:start + v.shape[-1]] = v
            start += v.shape[-1]
        return out


@register
class Slice(Op):
    """Channels ``start:stop`` of a float value (e.g. a cloud's xyz)."""

    op = 'slice'
    ATTRS = dict(
        start=lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <=
        v < (1 << 20),
        stop=is_count)

    @classmethod
    def check_combination(cls, attrs):
        if attrs['start'] >= attrs['stop']:
            raise GraphError('slice needs start < stop')

    @classmethod
    def infer(cls, attrs, inputs):
        x = inputs[0]
        if x.kind != 'float' or x.channels < attrs['stop']:
            raise GraphError(f'slice {attrs["start"]}:{attrs["stop"]} of '
                             f'{x}')
        return ValueInfo('float', x.ndim, attrs['stop'] - attrs['start'])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x[..., self.attrs['start']:self.attrs['stop']]


def radius_sq(radius: float) -> float:
    """``r * r`` rounded as mmcv's kernels round it (in float32)."""
    r = np.float32(radius)
    return float(r * r)


@register
class FPS(Op):
    """Furthest point sampling on the last three channels: ``num`` indices
    per cloud, starting at index 0 (mmcv's D-FPS; repeats when the cloud
    has fewer points)."""

    op = 'fps'
    ATTRS = dict(num=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        x = inputs[0]
        if x.kind != 'float' or x.ndim != 3 or x.channels < 3:
            raise GraphError(f'fps needs (B, N, >= 3) float points, got {x}')
        return ValueInfo('index', 2, attrs['num'])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        num = self.attrs['num']
        out = self.work('idx', (x.shape[0], num), np.int32)
        out.fill(0)
        if num > 1 and x.shape[1]:
            pts = np.ascontiguousarray(x[..., -3:], dtype=np.float32)
            pk.FURTHEST_POINT_SAMPLE[0](pts, num, out)
        return out


@register
class Gather(Op):
    """The rows ``idx`` (B, S) of every cloud: (B, N, C) -> (B, S, C)."""

    op = 'gather'
    arity = 2
    ATTRS = dict(channels=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        x, idx = inputs
        _float_input(cls.op, x, attrs['channels'], min_ndim=3)
        if x.ndim != 3 or idx.kind != 'index' or idx.ndim != 2:
            raise GraphError(f'gather needs (B, N, C) values and (B, S) '
                             f'indices, got {x} and {idx}')
        return ValueInfo('float', 3, attrs['channels'])

    def __call__(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return x[np.arange(x.shape[0])[:, None], idx]


@register
class BallQuery(Op):
    """Up to ``nsample`` points within ``radius`` of every centre, mmcv's
    ``ball_query``: points scanned in index order, a hit when ``d² == 0`` or
    ``min_radius² <= d² < radius²``; the first hit fills every slot, later
    hits the next ones; a centre without a hit gets zeros. Inputs: the
    points and the centres (their last three channels)."""

    op = 'ball_query'
    arity = 2
    ATTRS = dict(
        radius=lambda v: isinstance(v, (int, float)) and not isinstance(
            v, bool) and np.isfinite(v) and v > 0,
        min_radius=lambda v: isinstance(v, (int, float)) and not isinstance(
            v, bool) and np.isfinite(v) and v >= 0,
        nsample=lambda v: is_count(v, 1 << 12))

    @classmethod
    def check_combination(cls, attrs):
        if attrs['min_radius'] >= attrs['radius']:
            raise GraphError('ball_query needs min_radius < radius')

    @classmethod
    def infer(cls, attrs, inputs):
        if any(v.kind != 'float' or v.ndim != 3 or v.channels < 3
               for v in inputs):
            raise GraphError(f'ball_query needs (B, N, >= 3) points and '
                             f'centres, got {inputs}')
        return ValueInfo('index', 3, attrs['nsample'])

    def __call__(self, x: np.ndarray, centres: np.ndarray) -> np.ndarray:
        k = self.attrs['nsample']
        b, s = centres.shape[:2]
        idx = self.work('idx', (b, s, k), np.int32)
        idx.fill(0)
        count = self.work('count', (b, s), np.int32)
        pk.BALL_QUERY_XYZ[0](
            np.ascontiguousarray(centres[..., -3:], dtype=np.float32),
            np.ascontiguousarray(x[..., -3:], dtype=np.float32),
            radius_sq(self.attrs['min_radius']),
            radius_sq(self.attrs['radius']), True, k, idx, count)
        return idx


@register
class Group(Op):
    """PointNet++ grouping: for every centre its neighbours' xyz relative
    to the centre (divided by ``radius`` when ``normalize``), followed by
    their features: inputs xyz (B, N, 3), centres (B, S, 3), indices
    (B, S, K) and optionally features (B, N, C) -> (B, S, K, 3 + C). With
    ``use_xyz=False`` only the features."""

    op = 'group'
    arity = None
    ATTRS = dict(
        use_xyz=lambda v: isinstance(v, bool),
        normalize=lambda v: v is None or
        (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0),
        channels=lambda v: isinstance(v, int) and not isinstance(
            v, bool) and 0 <= v < (1 << 20))

    @classmethod
    def infer(cls, attrs, inputs):
        if len(inputs) not in (3, 4):
            raise GraphError('group takes xyz, centres, indices and '
                             'optionally features')
        xyz, centres, idx = inputs[:3]
        if xyz != ValueInfo('float', 3, 3) or \
                centres != ValueInfo('float', 3, 3) or idx.kind != 'index' \
                or idx.ndim != 3:
            raise GraphError(f'group needs (B, N, 3) xyz, (B, S, 3) centres '
                             f'and (B, S, K) indices, got {inputs[:3]}')
        feats = inputs[3].channels if len(inputs) == 4 else 0
        if len(inputs) == 4 and inputs[3].kind != 'float':
            raise GraphError(f'group features must be float, got {inputs[3]}')
        if feats != attrs['channels']:
            raise GraphError(f'group declares {attrs["channels"]} feature '
                             f'channels, its input has {feats}')
        out = feats + (3 if attrs['use_xyz'] else 0)
        if out == 0:
            raise GraphError('group without xyz needs features')
        return ValueInfo('float', 4, out)

    def __call__(self, xyz, centres, idx, feats=None):
        b, s, k = idx.shape
        c = 0 if feats is None else feats.shape[-1]
        use_xyz = self.attrs['use_xyz']
        width = c + (3 if use_xyz else 0)
        out = self.work('out', (b, s, k, width))
        batch = np.arange(b)[:, None, None]
        start = 0
        if use_xyz:
            np.subtract(
                xyz[batch, idx], centres[:, :, None, :], out=out[..., :3])
            if self.attrs['normalize'] is not None:
                out[..., :3] /= np.float32(self.attrs['normalize'])
            start = 3
        if feats is not None:
            out[..., start:] = feats[batch, idx]
        return out


@register
class GroupAll(Op):
    """PointNet++'s group-all layer: every point of a cloud as the
    neighbours of one centre (not made relative): xyz (B, N, 3) and
    optionally features (B, N, C) -> (B, 1, N, 3 + C)."""

    op = 'group_all'
    arity = None
    ATTRS = dict(
        use_xyz=lambda v: isinstance(v, bool),
        channels=lambda v: isinstance(v, int) and not isinstance(v, bool) and 0
        <= v < (1 << 20))

    @classmethod
    def infer(cls, attrs, inputs):
        if len(inputs) not in (1, 2) or inputs[0] != ValueInfo('float', 3, 3):
            raise GraphError(f'group_all needs (B, N, 3) xyz and optionally '
                             f'features, got {inputs}')
        feats = inputs[1].channels if len(inputs) == 2 else 0
        if feats != attrs['channels']:
            raise GraphError(f'group_all declares {attrs["channels"]} '
                             f'feature channels, its input has {feats}')
        out = feats + (3 if attrs['use_xyz'] else 0)
        if out == 0:
            raise GraphError('group_all without xyz needs features')
        return ValueInfo('float', 4, out)

    def __call__(self, xyz, feats=None):
        parts = ([xyz] if self.attrs['use_xyz'] else []) + \
            ([] if feats is None else [feats])
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, -1)
        return out[:, None]


@register
class Expand(Op):
    """One row per cloud repeated at every point: (B, C) and a (B, N, ...)
    value giving N -> (B, N, C) (DGCNN's global feature next to each
    point's)."""

    op = 'expand'
    arity = 2
    ATTRS = dict(channels=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        g, like = inputs
        _float_input(cls.op, g, attrs['channels'])
        if g.ndim != 2 or like.ndim != 3:
            raise GraphError(f'expand needs (B, C) rows and a (B, N, ...) '
                             f'value, got {g} and {like}')
        return ValueInfo('float', 3, attrs['channels'])

    def __call__(self, g: np.ndarray, like: Any) -> np.ndarray:
        n = like.shape[1]
        return np.broadcast_to(g[:, None, :], (g.shape[0], n, g.shape[1]))


@register
class Interpolate(Op):
    """PointNet++ feature propagation: every target point's features as
    the inverse-distance weighted sum of its three nearest source points'
    (mmcv's ``three_nn`` + ``three_interpolate``: weights ``1 / (d +
    1e-8)`` normalised to sum 1; missing neighbours of a source with fewer
    than three points get weight 0). Inputs: target xyz (B, n, 3), source
    xyz (B, m, 3), source features (B, m, C) -> (B, n, C)."""

    op = 'interpolate'
    arity = 3
    ATTRS = dict(channels=is_count)

    @classmethod
    def infer(cls, attrs, inputs):
        target, source, feats = inputs
        if target != ValueInfo('float', 3, 3) or \
                source != ValueInfo('float', 3, 3):
            raise GraphError(f'interpolate needs (B, n, 3) and (B, m, 3) '
                             f'xyz, got {target} and {source}')
        _float_input(cls.op, feats, attrs['channels'], min_ndim=3)
        if feats.ndim != 3:
            raise GraphError(f'interpolate needs (B, m, C) features, got '
                             f'{feats}')
        return ValueInfo('float', 3, attrs['channels'])

    def __call__(self, target: np.ndarray, source: np.ndarray,
                 feats: np.ndarray) -> np.ndarray:
        b, n = target.shape[:2]
        m = source.shape[1]
        found = min(3, m)
        idx = self.work('idx', (b, n, 3), np.int32)
        idx.fill(0)
        d2 = self.work('d2', (b, n, 3))
        d2.fill(np.inf)  # mmcv starts from 1e40: inf in float32
        if found:
            near = self.work('near', (b, n, found), np.int32)
            near_d2 = self.work('near_d2', (b, n, found))
            pk.KNN_XYZ[0](np.ascontiguousarray(target, dtype=np.float32),
                          np.ascontiguousarray(source, dtype=np.float32),
                          found, near, near_d2)
            idx[..., :found] = near
            d2[..., :found] = near_d2
        recip = np.float32(1.0) / (np.sqrt(d2) + np.float32(1e-8))
        norm = (recip[..., 0] + recip[..., 1]) + recip[..., 2]
        weight = recip / norm[..., None]
        batch = np.arange(b)[:, None]
        out = self.work('out', (b, n, feats.shape[-1]))
        np.multiply(feats[batch, idx[..., 0]], weight[..., 0:1], out=out)
        for j in (1, 2):
            out += feats[batch, idx[..., j]] * weight[..., j:j + 1]
        return out
