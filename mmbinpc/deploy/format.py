# Copyright (c) mmbinpc contributors. All rights reserved.
"""The packed model file: its schema, writing and validated reading.

A packed file is data only. It is an uncompressed ``.npz`` archive (read
with ``allow_pickle=False``) holding

* ``__meta__``: UTF-8 JSON (see :func:`validate_meta`): format name and
  version, the model's architecture as a plain JSON config (no Python
  text: nothing in it is executed, and its ``type`` names may only be
  plain names of registered modules, so nothing is imported because the
  file names it), the tracing input, the preprocessing of the test
  pipeline, and one entry per packed binary layer and per folded BatchNorm;
* per packed binary layer ``<layer>.weight_words`` ((O, ceil(C / 64))
  uint64 sign bits), ``<layer>.out_scale`` and ``<layer>.out_shift`` ((O,)
  float32), and ``<layer>.threshold`` ((C,) float32) when the binarizer
  has a learned input threshold;
* ``fp/<key>``: the remaining FP32 tensors of the state dict.

:func:`read_packed` checks all of it - the archive, the JSON, every field's
type and range, and every array's dtype, shape and finiteness against the
layer that will read it - before anything is built or any kernel runs;
every problem is a :class:`~mmbinpc.errors.PackedFormatError` naming the
file, the part and what to do.
"""
import json
import os
import re
import tempfile
import zipfile
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from mmbinpc.errors import PackedFormatError
from .bitpack import num_words
from .preprocess import STEPS

FORMAT_NAME = 'mmbinpc-packed'
FORMAT_VERSION = 2
META_KEY = '__meta__'
#: Packed binary layer kinds (see :class:`~.packed_layers.PackedBinaryLayer`).
LAYER_KINDS = ('conv1d', 'conv2d', 'linear')
#: Activation scale modes of a packed binary layer.
SCALE_MODES = ('none', 'mean_abs')
#: Pooling modes a packed layer can fuse.
POOL_MODES = ('max', 'ema')
#: Test-pipeline steps recorded in the file and replayed by predict.py.
PREPROCESS_STEPS = tuple(STEPS)
#: Largest meta JSON accepted (bytes); real files hold a few kB.
MAX_META_BYTES = 16 * 1024 * 1024
#: dtypes an ``fp/`` tensor may have.
FP_DTYPES = (np.dtype(np.float32), np.dtype(np.int64))

_TYPE_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
#: Config keys that would make building the model read or run other files
#: (a teacher config, checkpoints, imports); never part of an export.
FORBIDDEN_KEYS = frozenset({
    'teacher', 'teacher_ckpt', 'pretrained', 'checkpoint', 'init_cfg',
    'custom_imports', '_base_', 'ckpt', 'filename'
})
#: The fix named by every packed-file error.
REEXPORT_FIX = ('re-export it from its config and checkpoint with '
                'tools/deploy/export_packed.py')


# ------------------------------------------------------------ model config
def plain_config(cfg: Any) -> Any:
    """A model config as plain JSON values (dicts, lists, str, numbers).

    Tuples become lists; anything else that is not a JSON value (a class,
    a function, an object) is refused, since the file must describe the
    architecture by names only.

    Raises:
        TypeError: For a value JSON cannot hold.
    """
    if isinstance(cfg, Mapping):
        out = {}
        for key, value in cfg.items():
            if not isinstance(key, str):
                raise TypeError(f'config key {key!r} is not a string')
            out[key] = plain_config(value)
        return out
    if isinstance(cfg, (list, tuple)):
        return [plain_config(v) for v in cfg]
    if cfg is None or isinstance(cfg, (bool, int, float, str)):
        return cfg
    raise TypeError(f'config value {cfg!r} ({type(cfg).__name__}) cannot be '
                    f'stored in a packed file: use registered type names')


def check_model_config(cfg: Any, path: str, where: str = 'model_cfg') -> None:
    """Every ``type`` in the stored config is a plain registered-type name.

    A dotted or scoped name (``'pkg.module.Class'``, ``'mmdet.X'``) could
    make a registry import a module named by the file, and keys such as
    ``teacher``, ``init_cfg`` or ``custom_imports`` would read other files
    while building, so both are refused.
    """
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key in FORBIDDEN_KEYS:
                raise PackedFormatError(
                    path, f'{where} has the key {key!r}, which would make '
                    f'loading read other files', REEXPORT_FIX)
            if key == 'type' and not (isinstance(value, str)
                                      and _TYPE_NAME.match(value)):
                raise PackedFormatError(
                    path, f'{where}.type is {value!r}, not a plain '
                    f'registered type name (no dots or scopes)', REEXPORT_FIX)
            check_model_config(value, path, f'{where}.{key}')
    elif isinstance(cfg, list):
        for i, value in enumerate(cfg):
            check_model_config(value, path, f'{where}[{i}]')


# -------------------------------------------------------------------- meta
def _need(cond: bool, path: str, problem: str) -> None:
    if not cond:
        raise PackedFormatError(path, problem, REEXPORT_FIX)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_count(value: Any, high: int = 1 << 24) -> bool:
    return _is_int(value) and 0 < value <= high


def _check_fields(obj: Any, fields: Dict[str, Any], path: str,
                  where: str) -> None:
    _need(isinstance(obj, dict), path, f'{where} is not a JSON object')
    missing = [k for k in fields if k not in obj]
    _need(not missing, path, f'{where} lacks {", ".join(missing)}')
    for key, check in fields.items():
        _need(
            check(obj[key]), path,
            f'{where}.{key} has an invalid value {obj[key]!r}')


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) < 512


def _is_opt_name(value: Any) -> bool:
    return value is None or _is_name(value)


def _is_bounds(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int,
                       float)) and not isinstance(v, bool) and not np.isnan(v)
        for v in value) and value[0] <= value[1])


def validate_meta(meta: Any, path: str) -> Dict[str, Any]:
    """Check the decoded ``__meta__`` of ``path`` field by field.

    Returns:
        dict: ``meta`` itself.

    Raises:
        PackedFormatError: For the first field that is missing, of the
            wrong type or out of range.
    """
    _need(isinstance(meta, dict), path, '__meta__ is not a JSON object')
    _need(
        meta.get('format') == FORMAT_NAME, path,
        f'format is {meta.get("format")!r}, not {FORMAT_NAME!r}: not an '
        f'mmbinpc packed model')
    version = meta.get('version')
    if version != FORMAT_VERSION:
        raise PackedFormatError(
            path, f'packed format version {version!r} is not the one this '
            f'mmbinpc reads ({FORMAT_VERSION}; version 1 stored the model '
            f'config as Python text, which is no longer executed)',
            REEXPORT_FIX)
    _check_fields(
        meta,
        dict(
            model_cfg=lambda v: isinstance(v, dict) and 'type' in v,
            trace=lambda v: isinstance(v, dict),
            preprocess=lambda v: isinstance(v, list),
            binary_layers=lambda v: isinstance(v, list),
            fp_folded=lambda v: isinstance(v, list)), path, 'meta')
    check_model_config(meta['model_cfg'], path)
    _check_fields(
        meta['trace'],
        dict(
            num_points=_is_count, in_channels=lambda v: _is_count(v, 1 << 16)),
        path, 'meta.trace')
    for i, step in enumerate(meta['preprocess']):
        _need(
            step in PREPROCESS_STEPS, path,
            f'meta.preprocess[{i}] is {step!r}; known steps: '
            f'{", ".join(PREPROCESS_STEPS)}')
    names = set()
    for i, entry in enumerate(meta['binary_layers']):
        where = f'meta.binary_layers[{i}]'
        _check_fields(
            entry,
            dict(
                name=_is_name,
                kind=lambda v: v in LAYER_KINDS,
                in_channels=lambda v: _is_count(v, 1 << 20),
                out_channels=lambda v: _is_count(v, 1 << 20),
                binarizer=_is_name,
                scale_mode=lambda v: v in SCALE_MODES,
                threshold=lambda v: isinstance(v, bool),
                folded_bn=_is_opt_name,
                act=lambda v: v is None or isinstance(v, dict),
                pool=lambda v: v is None or isinstance(v, dict)), path, where)
        _need(entry['name'] not in names, path,
              f'{where}: layer {entry["name"]!r} is listed twice')
        names.add(entry['name'])
        if entry['act'] is not None:
            _check_fields(entry['act'], dict(name=_is_name, bounds=_is_bounds),
                          path, f'{where}.act')
        if entry['pool'] is not None:
            _check_fields(entry['pool'],
                          dict(name=_is_name, mode=lambda v: v in POOL_MODES),
                          path, f'{where}.pool')
            _need(
                entry['kind'] == 'conv1d', path,
                f'{where}: a fused pooling needs a conv1d layer, the '
                f'layer is {entry["kind"]}')
    for i, entry in enumerate(meta['fp_folded']):
        _check_fields(entry, dict(name=_is_name, folded_bn=_is_name), path,
                      f'meta.fp_folded[{i}]')
    return meta


# ------------------------------------------------------------------ arrays
def _expected_arrays(
        meta: Dict[str, Any]) -> Dict[str, Tuple[np.dtype, Tuple[int, ...]]]:
    """Name -> (dtype, shape) of every binary-layer array the meta needs."""
    u64, f32 = np.dtype(np.uint64), np.dtype(np.float32)
    expect = {}
    for entry in meta['binary_layers']:
        name, c, o = entry['name'], entry['in_channels'], entry['out_channels']
        expect[f'{name}.weight_words'] = (u64, (o, num_words(c)))
        expect[f'{name}.out_scale'] = (f32, (o, ))
        expect[f'{name}.out_shift'] = (f32, (o, ))
        if entry['threshold']:
            expect[f'{name}.threshold'] = (f32, (c, ))
    return expect


def validate_arrays(meta: Dict[str, Any], arrays: Dict[str, np.ndarray],
                    path: str) -> None:
    """Every array the layers read exists with its dtype and shape.

    Binary-layer arrays must match their meta entry exactly, ``fp/``
    tensors must be float32 (or int64 counters) and every float must be
    finite; an array nobody reads is an error too (a file edited by hand
    or written by another tool).

    Raises:
        PackedFormatError: Naming the first array that is wrong.
    """
    expect = _expected_arrays(meta)
    for key, (dtype, shape) in expect.items():
        _need(key in arrays, path, f'array {key!r} is missing')
        value = arrays[key]
        _need(
            value.dtype == dtype and value.shape == shape, path,
            f'array {key!r} is {value.dtype} {tuple(value.shape)}, the '
            f'layer needs {dtype} {shape}')
    for key, value in arrays.items():
        if key == META_KEY or key in expect:
            continue
        _need(
            key.startswith('fp/') and len(key) > 3, path,
            f'array {key!r} is not read by any layer')
        _need(
            value.dtype in FP_DTYPES, path,
            f'array {key!r} has dtype {value.dtype}; FP tensors are '
            f'float32 (int64 for counters)')
    for key, value in arrays.items():
        if value.dtype == np.float32:
            _need(
                bool(np.isfinite(value).all()), path,
                f'array {key!r} holds non-finite values')


# ---------------------------------------------------------------- file I/O
def write_packed(path: str, meta: Dict[str, Any],
                 arrays: Dict[str, np.ndarray]) -> None:
    """Validate and write a packed file atomically (temp file + rename).

    Raises:
        PackedFormatError: If ``meta`` / ``arrays`` are inconsistent (a bug
            of the exporter; nothing is written).
    """
    meta = validate_meta(json.loads(json.dumps(meta)), path)
    validate_arrays(meta, arrays, path)
    payload = dict(arrays)
    payload[META_KEY] = np.frombuffer(
        json.dumps(meta).encode('utf-8'), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.packed-', dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_archive(path: str) -> Tuple[bytes, Dict[str, np.ndarray]]:
    if os.path.isdir(path):
        raise PackedFormatError(
            path, 'is a directory', 'give the .packed file written by '
            'tools/deploy/export_packed.py')
    if not os.path.isfile(path):
        raise PackedFormatError(
            path, 'does not exist', 'write one with '
            'tools/deploy/export_packed.py CONFIG CHECKPOINT OUT')
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            _need(f'{META_KEY}.npy' in names, path,
                  'no __meta__ entry: not an mmbinpc packed model')
            bad = [n for n in names if not n.endswith('.npy')]
            _need(not bad, path, f'unexpected archive members {bad[:3]}')
            broken = zf.testzip()
            _need(broken is None, path,
                  f'archive member {broken!r} is corrupted (CRC mismatch)')
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        odd = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
        _need(not odd, path, f'archive members {odd[:3]} are not arrays')
    except PackedFormatError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise PackedFormatError(
            path, f'not a readable archive ({err}); the '
            f'file is truncated or not a packed model', REEXPORT_FIX) from None
    except (ValueError, OSError, KeyError, NotImplementedError, RuntimeError,
            MemoryError) as err:
        raise PackedFormatError(
            path, f'an array cannot be read '
            f'({type(err).__name__}: {err})', REEXPORT_FIX) from None
    meta_array = arrays.pop(META_KEY)
    _need(
        meta_array.dtype == np.uint8 and meta_array.ndim == 1
        and meta_array.size <= MAX_META_BYTES, path,
        '__meta__ is not a UTF-8 byte array')
    return meta_array.tobytes(), arrays


def decode_meta(raw: bytes, path: str) -> Dict[str, Any]:
    """Parse and validate the ``__meta__`` bytes of ``path``."""
    try:
        meta = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PackedFormatError(
            path, f'__meta__ is not valid JSON '
            f'({type(err).__name__}: {err})', REEXPORT_FIX) from None
    return validate_meta(meta, path)


def read_packed(path: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Read and fully validate a packed file.

    Returns:
        tuple: ``(meta, arrays)``; ``arrays`` maps names to arrays (the
        ``__meta__`` entry removed).

    Raises:
        PackedFormatError: If anything about the file is wrong.
    """
    raw, arrays = _read_archive(path)
    meta = decode_meta(raw, path)
    validate_arrays(meta, arrays, path)
    return meta, arrays


def read_meta(path: str) -> Dict[str, Any]:
    """The validated JSON description stored in a packed file."""
    return read_packed(path)[0]


def layer_names(meta: Dict[str, Any]) -> List[str]:
    """Names of the packed binary layers, in file order."""
    return [e['name'] for e in meta['binary_layers']]
