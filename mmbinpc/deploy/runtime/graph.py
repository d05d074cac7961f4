# Copyright (c) mmbinpc contributors. All rights reserved.
"""The packed model file: a graph of ops and their arrays (data only).

A packed file is an uncompressed ``.npz`` archive, read with
``allow_pickle=False``, holding

* ``__meta__``: UTF-8 JSON::

    {"format": "mmbinpc-packed", "version": 3,
     "task": "classification" | "segmentation",
     "input": {"channels": C, "num_points": N},   # N: the export's trace
     "num_classes": K,
     "preprocess": ["normalize_unit_sphere", ...],
     "source": {"model": ..., "binarizer": ..., ...},   # informational
     "nodes": [{"name": ..., "op": ..., "inputs": [...], "attrs": {...}}],
     "output": <node name>}

  The graph input is the value ``"points"`` (B, N, C); every node reads
  values defined before it and defines the value named after itself;
* ``<node>/<role>``: each node's arrays (see the ops in
  :mod:`mmbinpc.deploy.runtime.ops`).

:func:`read_graph` checks everything - the archive, the JSON, every node's
op, attributes and inputs, the kind and width of every value flowing
between nodes, and every array's dtype, shape and finiteness - before any
kernel runs; each problem is a :class:`~mmbinpc.errors.PackedFormatError`
naming the file, the part and the fix. Loading builds nothing from a
registry and imports nothing named by the file: op names select classes of
a fixed table.
"""
import json
import os
import tempfile
import zipfile
from typing import Any, Dict, List, Tuple

import numpy as np

from mmbinpc.errors import PackedFormatError
from .ops import OPS, GraphError, ValueInfo
from .preprocess import STEPS

FORMAT_NAME = 'mmbinpc-packed'
FORMAT_VERSION = 3
META_KEY = '__meta__'
#: Name of the graph's input value.
INPUT = 'points'
TASKS = ('classification', 'segmentation')
#: Largest meta JSON accepted (bytes); real files hold a few kB.
MAX_META_BYTES = 16 * 1024 * 1024
#: Largest number of nodes accepted.
MAX_NODES = 10_000
#: The fix named by every packed-file error.
REEXPORT_FIX = ('re-export it from its config and checkpoint with '
                'tools/deploy/export_packed.py')


def _need(cond: bool, path: str, problem: str) -> None:
    if not cond:
        raise PackedFormatError(path, problem, REEXPORT_FIX)


def _is_count(value: Any, high: int = 1 << 24) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and \
        0 < value <= high


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) < 256 and \
        '/' not in value and value.isprintable()


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def validate_meta(meta: Any, path: str) -> Dict[str, Any]:
    """Check the decoded ``__meta__`` of ``path``, the graph included.

    Returns:
        dict: ``meta`` itself.

    Raises:
        PackedFormatError: For the first problem found.
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
            f'mmbinpc reads ({FORMAT_VERSION}: a graph of ops run without '
            f'PyTorch; versions 1 and 2 rebuilt the model from its config)',
            REEXPORT_FIX)
    fields = dict(
        task=lambda v: v in TASKS,
        input=lambda v: isinstance(v, dict),
        num_classes=lambda v: _is_count(v, 1 << 16),
        preprocess=lambda v: isinstance(v, list),
        source=lambda v: isinstance(v, dict) and all(
            isinstance(k, str) and _is_scalar(x) for k, x in v.items()),
        nodes=lambda v: isinstance(v, list) and 0 < len(v) <= MAX_NODES,
        output=_is_name)
    for key, check in fields.items():
        _need(key in meta, path, f'meta lacks {key!r}')
        _need(
            check(meta[key]), path,
            f'meta.{key} has an invalid value {str(meta[key])[:80]!r}')
    inp = meta['input']
    for key, high in (('channels', 1 << 16), ('num_points', 1 << 24)):
        _need(
            _is_count(inp.get(key), high), path,
            f'meta.input.{key} has an invalid value {inp.get(key)!r}')
    for i, step in enumerate(meta['preprocess']):
        _need(
            step in STEPS, path, f'meta.preprocess[{i}] is {step!r}; known '
            f'steps: {", ".join(STEPS)}')
    values = {INPUT: ValueInfo('float', 3, inp['channels'])}
    for i, node in enumerate(meta['nodes']):
        where = f'meta.nodes[{i}]'
        _need(isinstance(node, dict), path, f'{where} is not a JSON object')
        keys = set(node) ^ {'name', 'op', 'inputs', 'attrs'}
        _need(not keys, path, f'{where} has or lacks {sorted(keys)}')
        name = node['name']
        _need(_is_name(name), path, f'{where}.name is invalid: {name!r}')
        where = f'node {name!r}'
        _need(name not in values, path, f'{where} is defined twice')
        _need(
            node['op'] in OPS, path, f'{where} has the unknown op '
            f'{node["op"]!r}; known: {", ".join(sorted(OPS))}')
        op = OPS[node['op']]
        inputs = node['inputs']
        _need(
            isinstance(inputs, list)
            and all(isinstance(v, str) for v in inputs), path,
            f'{where}: inputs is not a list of names')
        _need((len(inputs) >= 1) if op.arity is None else
              (len(inputs) == op.arity), path, f'{where}: {node["op"]} takes '
              f'{op.arity or "one or more"} inputs, got {len(inputs)}')
        unknown = [v for v in inputs if v not in values]
        _need(not unknown, path,
              f'{where} reads {unknown}, not defined before it')
        try:
            op.check_attrs(node['attrs'])
            values[name] = op.infer(node['attrs'], [values[v] for v in inputs])
        except GraphError as err:
            raise PackedFormatError(path, f'{where} ({node["op"]}): {err}',
                                    REEXPORT_FIX) from None
    out = values.get(meta['output'])
    _need(out is not None, path,
          f'meta.output {meta["output"]!r} is not a node')
    ndim = 2 if meta['task'] == 'classification' else 3
    _need(
        out == ValueInfo('float', ndim, meta['num_classes']), path,
        f'the output {meta["output"]!r} is {out}, a {meta["task"]} model '
        f'needs float logits of {ndim} axes and {meta["num_classes"]} '
        f'classes')
    return meta


def _expected_arrays(
        meta: Dict[str, Any]) -> Dict[str, Tuple[np.dtype, Tuple[int, ...]]]:
    """Archive name -> (dtype, shape) of every array the nodes read."""
    expect = {}
    for node in meta['nodes']:
        specs = OPS[node['op']].array_specs(node['attrs'])
        for role, spec in specs.items():
            expect[f'{node["name"]}/{role}'] = spec
    return expect


def validate_arrays(meta: Dict[str, Any], arrays: Dict[str, np.ndarray],
                    path: str) -> None:
    """Every array the nodes read exists with its dtype and shape, no other
    array is present and every float is finite.

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
            f'node needs {dtype} {shape}')
        if value.dtype.kind == 'f':
            _need(
                bool(np.isfinite(value).all()), path,
                f'array {key!r} holds non-finite values')
    extra = sorted(k for k in arrays if k not in expect)
    _need(not extra, path, f'arrays {extra[:3]} are not read by any node')


# ---------------------------------------------------------------- file I/O
def write_graph(path: str, meta: Dict[str, Any],
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


def read_graph(path: str) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Read and fully validate a packed file.

    Returns:
        tuple: ``(meta, arrays)``; ``arrays`` maps ``<node>/<role>`` to
        arrays (the ``__meta__`` entry removed).

    Raises:
        PackedFormatError: If anything about the file is wrong.
    """
    raw, arrays = _read_archive(path)
    meta = decode_meta(raw, path)
    validate_arrays(meta, arrays, path)
    return meta, arrays


def count_ops(meta: Dict[str, Any]) -> List[Tuple[str, int]]:
    """(op, number of nodes) of a graph, in order of first use."""
    counts: Dict[str, int] = {}
    for node in meta['nodes']:
        counts[node['op']] = counts.get(node['op'], 0) + 1
    return list(counts.items())
