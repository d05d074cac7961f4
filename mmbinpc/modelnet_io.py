# Copyright (c) mmbinpc contributors. All rights reserved.
"""Readers for the two community ModelNet formats, point sampling and cache.

Every reader raises an error naming the file (and line, for text files) on
bad input: nothing is skipped silently. Malformed content is a
:class:`~mmbinpc.errors.DatasetFormatError`; a missing file a
``FileNotFoundError``.

The split cache is data only (an ``.npz`` archive read with
``allow_pickle=False`` plus a JSON description): a planted or damaged cache
file is ignored and rebuilt, never executed.

NumPy only (no PyTorch): the dataset (:mod:`mmbinpc.datasets.modelnet`)
and the deploy tools (``tools/deploy/predict.py``, run where only
``requirements/deploy.txt`` is installed) read clouds with it.
"""
import hashlib
import json
import os
import os.path as osp
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmbinpc.errors import DatasetFormatError

SAMPLE_METHODS = ('first', 'random', 'fps')
CACHE_VERSION = 2


def read_lines(path: str, what: str) -> List[str]:
    """Non-empty stripped lines of a text file.

    Args:
        path (str): The file.
        what (str): What the file is, for the error message.

    Returns:
        list[str]: The lines.
    """
    return [
        line.strip() for line in read_text(path, what).splitlines()
        if line.strip()
    ]


def read_text(path: str, what: str) -> str:
    """The UTF-8 text of a file, with errors that name it.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        DatasetFormatError: If it is a directory or not UTF-8 text.
    """
    if osp.isdir(path):
        raise DatasetFormatError(path, f'the {what} is a directory',
                                 'give the file itself')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path!r} does not exist')
    with open(path, 'rb') as f:
        raw = f.read()
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        raise DatasetFormatError(
            path, f'line {line}: byte 0x{raw[err.start]:02x} at offset '
            f'{err.start} is not UTF-8 text', f'the {what} must be plain '
            f'text; re-export or re-download it') from None


def unique_names(names: List[str], path: str) -> List[str]:
    """``names`` if no name repeats; a repeated class name would shift the
    labels of every class after it."""
    seen: Dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise DatasetFormatError(
                path, f'class {name!r} is listed twice (lines {seen[name]} '
                f'and {i} of the non-empty lines)', 'each class name must '
                'appear once; remove the duplicate')
        seen[name] = i
    return names


def parse_points_txt(path: str, columns: int = 6) -> np.ndarray:
    """Parse a ``modelnet40_normal_resampled`` shape file.

    Rows are ``x,y,z,nx,ny,nz`` separated by commas.

    Args:
        path (str): The shape file.
        columns (int): Values per row. Defaults to 6.

    Returns:
        np.ndarray: (N, columns) float32.

    Raises:
        FileNotFoundError: If the file is missing.
        ValueError: Naming ``file:line`` for a row with the wrong number of
            values, a non-numeric or non-finite value, or an empty file.
    """
    text = read_text(path, 'shape file')
    lines = text.splitlines()
    commas = [line.count(',') for line in lines]
    rows = sum(1 for line in lines if line.strip())
    arr = None
    if rows and all(c == columns - 1
                    for c, line in zip(commas, lines) if line.strip()):
        try:
            with np.errstate(over='ignore'):  # checked below, per line
                arr = np.array(
                    text.replace(',', ' ').split(), dtype=np.float32)
        except ValueError:
            arr = None
    if arr is not None and arr.size == rows * columns and \
            np.isfinite(arr).all():
        return arr.reshape(rows, columns)
    # Slow path: find the first bad line and say what is wrong with it.
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.strip().split(',')
        if len(fields) != columns:
            raise ValueError(
                f'{path}:{lineno}: expected {columns} comma-separated values '
                f'(x,y,z,nx,ny,nz), found {len(fields)} in {line[:80]!r}')
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise ValueError(f'{path}:{lineno}: non-numeric value in '
                             f'{line[:80]!r}') from None
        if not np.isfinite(values).all():
            raise ValueError(f'{path}:{lineno}: non-finite value in '
                             f'{line[:80]!r}')
        with np.errstate(over='ignore'):
            if not np.isfinite(np.asarray(values, np.float32)).all():
                raise ValueError(f'{path}:{lineno}: a value beyond the '
                                 f'float32 range (+-3.4e38) in '
                                 f'{line[:80]!r}')
    if rows:
        raise ValueError(f'{path}: cannot parse its points')
    raise ValueError(f'{path}: no points (the file is empty)')


def farthest_point_sample(xyz: np.ndarray, num: int) -> np.ndarray:
    """Deterministic farthest point sampling, starting at point 0.

    Args:
        xyz (np.ndarray): (N, 3) coordinates.
        num (int): Number of points to keep (<= N).

    Returns:
        np.ndarray: (num,) int64 indices.
    """
    n = xyz.shape[0]
    idx = np.zeros(num, dtype=np.int64)
    dist = np.full(n, np.inf, dtype=np.float64)
    xyz = xyz.astype(np.float64)
    far = 0
    for i in range(num):
        idx[i] = far
        d = ((xyz - xyz[far])**2).sum(axis=1)
        np.minimum(dist, d, out=dist)
        far = int(dist.argmax())
    return idx


def sample_points(points: np.ndarray,
                  num: int,
                  method: str,
                  source: str = '',
                  rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Pick ``num`` points of one shape.

    Args:
        points (np.ndarray): (N, C) points.
        num (int): Number of points.
        method (str): 'first' (the first ``num`` rows), 'random' (uniform
            without replacement) or 'fps' (farthest point sampling).
        source (str): Where the shape comes from, for error messages.
        rng (np.random.Generator, optional): For 'random'; defaults to
            numpy's global RNG.

    Returns:
        np.ndarray: (num, C).
    """
    if method not in SAMPLE_METHODS:
        raise ValueError(f'unknown sample_method {method!r}; valid: '
                         f'{", ".join(SAMPLE_METHODS)}')
    if points.shape[0] < num:
        raise ValueError(f'{source}: has {points.shape[0]} points, fewer than '
                         f'num_points={num}; lower num_points')
    if method == 'first':
        return points[:num]
    if method == 'fps':
        return points[farthest_point_sample(points[:, :3], num)]
    if rng is None:
        choice = np.random.choice(points.shape[0], num, replace=False)
    else:
        choice = rng.choice(points.shape[0], num, replace=False)
    return points[choice]


# --------------------------------------------------------------------------
# modelnet40_normal_resampled
# --------------------------------------------------------------------------
def shape_file(root: str, shape_id: str) -> str:
    """Path of ``<class>/<id>.txt`` for an id like ``flower_pot_0001``."""
    return osp.join(root, shape_id.rsplit('_', 1)[0], f'{shape_id}.txt')


def list_normal_resampled(
        root: str, subset: str,
        split: str) -> Tuple[List[str], List[str], List[int]]:
    """Classes, shape ids and labels of one split.

    Args:
        root (str): The ``modelnet40_normal_resampled`` directory.
        subset (str): List prefix, 'modelnet40' or 'modelnet10'.
        split (str): 'train' or 'test'.

    Returns:
        tuple: (class names, shape ids, labels).
    """
    names_file = osp.join(root, f'{subset}_shape_names.txt')
    list_file = osp.join(root, f'{subset}_{split}.txt')
    classes = unique_names(
        read_lines(names_file, 'class-name list'), names_file)
    ids = read_lines(list_file, 'split list')
    if not classes:
        raise DatasetFormatError(names_file, 'names no classes',
                                 'list one class name per line')
    if not ids:
        raise DatasetFormatError(list_file, 'lists no shapes',
                                 'list one shape id per line')
    index = {name: i for i, name in enumerate(classes)}
    labels = []
    for lineno, shape_id in enumerate(ids, start=1):
        cls = shape_id.rsplit('_', 1)[0]
        if '_' not in shape_id or cls not in index:
            raise ValueError(
                f'{list_file}:{lineno}: shape id {shape_id!r} does not start '
                f'with a class of {names_file} followed by _<number>')
        path = shape_file(root, shape_id)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{list_file}:{lineno}: shape {shape_id!r} has no file '
                f'{path!r}')
        labels.append(index[cls])
    return classes, ids, labels


# --------------------------------------------------------------------------
# modelnet40_ply_hdf5_2048
# --------------------------------------------------------------------------
def _import_h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError('reading modelnet40_ply_hdf5_2048 needs h5py: '
                          'pip install h5py') from None
    return h5py


def hdf5_files(root: str, split: str) -> List[str]:
    """The ``.h5`` files of a split, from ``<split>_files.txt``.

    Entries are matched by file name inside ``root`` (the lists hold paths
    relative to the original download directory).
    """
    list_file = osp.join(root, f'{split}_files.txt')
    files = []
    for lineno, entry in enumerate(
            read_lines(list_file, 'HDF5 file list'), start=1):
        path = osp.join(root, osp.basename(entry))
        if not osp.isfile(path):
            raise FileNotFoundError(f'{list_file}:{lineno}: {entry!r} has no '
                                    f'file {path!r}')
        files.append(path)
    if not files:
        raise ValueError(f'{list_file} lists no files')
    return files


def read_hdf5(path: str, need_normals: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Points (B, N, 3 or 6) and labels (B,) of one ``.h5`` file."""
    h5py = _import_h5py()
    try:
        f = h5py.File(path, 'r')
    except OSError as err:
        raise OSError(f'{path}: not a readable HDF5 file ({err})') from None
    with f:
        for key in ('data', 'label'):
            if key not in f:
                raise KeyError(f'{path}: missing dataset {key!r} (found '
                               f'{sorted(f.keys())})')
        data = np.asarray(f['data'], dtype=np.float32)
        label = np.asarray(f['label']).reshape(-1).astype(np.int64)
        normal = np.asarray(f['normal'], dtype=np.float32) \
            if 'normal' in f else None
    if data.ndim != 3 or data.shape[2] != 3:
        raise ValueError(f'{path}: dataset "data" must be (B, N, 3), got '
                         f'{data.shape}')
    if label.shape[0] != data.shape[0]:
        raise ValueError(f'{path}: {label.shape[0]} labels for '
                         f'{data.shape[0]} shapes')
    if need_normals:
        if normal is None:
            raise KeyError(f'{path}: use_normals=True but the file has no '
                           f'"normal" dataset; set use_normals=False')
        if normal.shape != data.shape:
            raise ValueError(f'{path}: "normal" shape {normal.shape} differs '
                             f'from "data" {data.shape}')
        data = np.concatenate([data, normal], axis=2)
    if not np.isfinite(data).all():
        raise ValueError(f'{path}: non-finite coordinates')
    return data, label


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------
def fingerprint(files: Sequence[str], extra: Sequence[object]) -> str:
    """A hash of file names, sizes, mtimes and options."""
    h = hashlib.sha1(repr((CACHE_VERSION, tuple(extra))).encode())
    for path in files:
        st = os.stat(path)
        h.update(f'{path}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return h.hexdigest()


def load_cache(path: str, key: str) -> Optional[Dict]:
    """The cached split if ``path`` is a valid cache matching ``key``.

    Anything else - a missing, truncated, foreign or edited file, another
    fingerprint - gives None and the caller rebuilds the split. Nothing is
    unpickled: the file is an ``.npz`` read with ``allow_pickle=False``
    whose JSON part is checked field by field.
    """
    if not osp.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if sorted(data.files) != ['meta', 'points']:
                return None
            meta = json.loads(data['meta'].tobytes().decode('utf-8'))
            points = data['points']
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile,
            UnicodeDecodeError, RecursionError):
        return None
    return _split_from_cache(meta, points, key)


def _split_from_cache(meta: object, points: np.ndarray,
                      key: str) -> Optional[Dict]:
    if not isinstance(meta, dict) or meta.get('fingerprint') != key:
        return None
    classes, ids = meta.get('classes'), meta.get('ids')
    labels, lengths = meta.get('labels'), meta.get('lengths')
    lists = (classes, ids, labels, lengths)
    if not all(isinstance(v, list) for v in lists):
        return None
    if not (all(isinstance(c, str) for c in classes + ids)
            and all(type(v) is int for v in labels + lengths)):
        return None
    if len({len(ids), len(labels), len(lengths)}) != 1 or \
            any(not 0 <= lab < len(classes) for lab in labels) or \
            any(n <= 0 for n in lengths):
        return None
    if points.dtype != np.float32 or points.ndim != 2 or \
            points.shape[0] != sum(lengths) or \
            not np.isfinite(points).all():
        return None
    split = np.split(points, np.cumsum(lengths)[:-1]) if lengths else []
    return dict(
        fingerprint=key,
        classes=classes,
        ids=ids,
        labels=labels,
        points=list(split))


def save_cache(path: str, data: Dict) -> bool:
    """Write the cache atomically (temp file, then rename).

    Returns:
        bool: False if the directory is not writable (the dataset then
        works without a cache).
    """
    shapes = list(data['points'])
    channels = shapes[0].shape[1] if shapes else 0
    meta = dict(
        fingerprint=data['fingerprint'],
        classes=list(data['classes']),
        ids=list(data['ids']),
        labels=[int(v) for v in data['labels']],
        lengths=[int(p.shape[0]) for p in shapes])
    points = (
        np.concatenate(shapes).astype(np.float32, copy=False)
        if shapes else np.zeros((0, channels), np.float32))
    tmp = f'{path}.{os.getpid()}.tmp'
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(tmp, 'wb') as f:
            np.savez(
                f,
                meta=np.frombuffer(
                    json.dumps(meta).encode('utf-8'), dtype=np.uint8),
                points=points)
        os.replace(tmp, path)
        return True
    except OSError:
        if osp.exists(tmp):
            os.remove(tmp)
        return False
