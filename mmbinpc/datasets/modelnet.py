# Copyright (c) mmbinpc contributors. All rights reserved.
"""ModelNet40 / ModelNet10 classification dataset (both community formats)."""
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
from mmdet3d.registry import DATASETS, TRANSFORMS
from mmdet3d.structures import DepthPoints
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmbinpc import modelnet_io as mio

FORMATS = ('normal_resampled', 'hdf5')


def detect_format(data_root: str) -> str:
    """'normal_resampled' or 'hdf5', from the files found in ``data_root``."""
    if not osp.isdir(data_root):
        raise FileNotFoundError(
            f'ModelNet data root {data_root!r} does not exist. Put ModelNet40 '
            f'there (see docs/datasets.md) or generate the synthetic stand-in:'
            f' python tools/create_synthetic_modelnet.py {data_root}')
    names = set(os.listdir(data_root))
    if any(
            n.endswith('_shape_names.txt') and n != 'shape_names.txt'
            for n in names):
        return 'normal_resampled'
    if 'shape_names.txt' in names or any(n.endswith('.h5') for n in names):
        return 'hdf5'
    raise FileNotFoundError(
        f'{data_root!r} holds neither modelnet40_normal_resampled files '
        f'(modelnet40_shape_names.txt, modelnet40_train.txt, ...) nor '
        f'modelnet40_ply_hdf5_2048 files (shape_names.txt, train_files.txt, '
        f'ply_data_*.h5); see docs/datasets.md')


SPLITS = ('train', 'val', 'test')


def holdout_indices(labels: Sequence[int],
                    fraction: float,
                    seed: int = 0) -> set:
    """Indices held out of a training list as its validation split.

    Per class, ``round(fraction * n)`` shapes (at least one when the class
    has two or more and ``fraction > 0``, never all of them), chosen by a
    seeded shuffle, so the choice depends only on the labels, the fraction
    and the seed.

    Args:
        labels (Sequence[int]): Class label of each training shape.
        fraction (float): Share held out per class, in [0, 1).
        seed (int): Seed of the choice. Defaults to 0.

    Returns:
        set[int]: The held-out indices.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    held = set()
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        count = int(round(fraction * len(members)))
        if fraction > 0 and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        held.update(int(i) for i in rng.permutation(members)[:count])
    return held


@DATASETS.register_module()
class ModelNet40Dataset(BaseDataset):
    """ModelNet40 (or ModelNet10) point-cloud classification.

    Reads ``modelnet40_normal_resampled`` (text shapes with normals) or
    ``modelnet40_ply_hdf5_2048`` (HDF5, needs ``h5py``). The parsed,
    sampled split is cached in one ``.npz`` file per split (``cache_dir``;
    data only, never unpickled), keyed
    by the list, the shape files' sizes and mtimes, and the options, so later
    runs and epochs do not re-parse text.

    Each sample is a dict with ``points`` (a ``DepthPoints`` with
    ``num_points`` rows of xyz, plus normals if ``use_normals``),
    ``gt_label`` (int), ``shape_id`` and ``sample_idx``.

    Args:
        data_root (str): The dataset directory.
        split (str): 'train', 'val' or 'test'. 'val' is a held-out part of
            the training files (``val_fraction`` of each class), for picking
            checkpoints without looking at the test split; 'train' then
            leaves those shapes out. Defaults to 'train'.
        data_format (str): 'auto', 'normal_resampled' or 'hdf5'.
            Defaults to 'auto'.
        subset (str): List prefix for the text format: 'modelnet40' or
            'modelnet10'. Defaults to 'modelnet40'.
        num_points (int): Points per sample. Defaults to 1024.
        sample_method (str): 'first' (first rows, as PointNet++/BiPointNet),
            'random' (a fresh uniform subset on every access) or 'fps'
            (farthest point sampling, computed once and cached).
            Defaults to 'first'.
        use_normals (bool): Append normals (6 channels). Defaults to False.
        val_fraction (float): Share of each class's training shapes held
            out as the 'val' split (0 keeps them all in 'train'; 'val' needs
            a value in (0, 1)). Defaults to 0.
        val_seed (int): Seed of the held-out choice; 'train' and 'val' must
            use the same value. Defaults to 0.
        cache (bool): Use the split cache. Defaults to True.
        cache_dir (str, optional): Where to keep it. Defaults to
            ``<data_root>/cache``; if that is not writable the dataset works
            uncached.
        pipeline (Sequence): Transforms. Defaults to ().
        test_mode (bool): Defaults to False.
        metainfo (dict, optional): Overrides, e.g. ``classes``.
        indices (int or Sequence[int], optional): Use a subset.
        serialize_data (bool): See mmengine's BaseDataset. Defaults to True.
        max_refetch (int): See mmengine's BaseDataset. Defaults to 1000.
    """

    METAINFO = dict(classes=None)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 data_format: str = 'auto',
                 subset: str = 'modelnet40',
                 num_points: int = 1024,
                 sample_method: str = 'first',
                 use_normals: bool = False,
                 val_fraction: float = 0.0,
                 val_seed: int = 0,
                 cache: bool = True,
                 cache_dir: Optional[str] = None,
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: bool = False,
                 metainfo: Optional[dict] = None,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 max_refetch: int = 1000) -> None:
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        if not 0.0 <= float(val_fraction) < 1.0:
            raise ValueError(f'val_fraction must be in [0, 1), got '
                             f'{val_fraction}')
        if split == 'val' and not float(val_fraction) > 0:
            raise ValueError(
                "split='val' is carved from the training files and needs "
                'val_fraction > 0 (e.g. 0.1); set val_fraction on the train '
                'and val datasets alike')
        if data_format not in FORMATS + ('auto', ):
            raise ValueError(f'data_format must be auto or one of {FORMATS}, '
                             f'got {data_format!r}')
        if sample_method not in mio.SAMPLE_METHODS:
            raise ValueError(f'sample_method must be one of '
                             f'{mio.SAMPLE_METHODS}, got {sample_method!r}')
        if int(num_points) < 1:
            raise ValueError(f'num_points must be >= 1, got {num_points}')
        self.split = split
        # the files a split reads: 'val' is carved from the training files
        self.file_split = 'train' if split == 'val' else split
        self.val_fraction = float(val_fraction)
        self.val_seed = int(val_seed)
        self.data_format = data_format
        self.subset = subset
        self.num_points = int(num_points)
        self.sample_method = sample_method
        self.use_normals = use_normals
        self.cache = cache
        self.cache_dir = cache_dir
        super().__init__(
            ann_file='',
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=dict(),
            indices=indices,
            serialize_data=serialize_data,
            # Built from mmdet3d's registry so that unscoped names work
            # without a default scope too.
            pipeline=[
                TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline
            ],
            test_mode=test_mode,
            max_refetch=max_refetch)

    # ------------------------------------------------------------------ #
    @property
    def num_channels(self) -> int:
        """Channels per point: 3 (xyz) or 6 (with normals)."""
        return 6 if self.use_normals else 3

    def _cache_path(self, fmt: str) -> str:
        stored = 'all' if self.sample_method == 'random' else \
            f'{self.sample_method}{self.num_points}'
        name = f'{self.subset if fmt == "normal_resampled" else "h5"}_' \
            f'{self.file_split}_{stored}_{self.num_channels}ch.npz'
        cache_dir = self.cache_dir or osp.join(self.data_root, 'cache')
        return osp.join(cache_dir, name)

    def _stored_points(self, points: np.ndarray, source: str) -> np.ndarray:
        """What the cache holds for a shape: all points for 'random',
        the deterministic sample otherwise."""
        points = np.ascontiguousarray(
            points[:, :self.num_channels], dtype=np.float32)
        if self.sample_method == 'random':
            if points.shape[0] < self.num_points:
                raise ValueError(
                    f'{source}: has {points.shape[0]} points, fewer than '
                    f'num_points={self.num_points}; lower num_points')
            return points
        return mio.sample_points(points, self.num_points, self.sample_method,
                                 source)

    def _read_normal_resampled(self, root: str) -> dict:
        classes, ids, labels = mio.list_normal_resampled(
            root, self.subset, self.file_split)
        files = [mio.shape_file(root, i) for i in ids]
        key = mio.fingerprint([
            osp.join(root, f'{self.subset}_shape_names.txt'),
            osp.join(root, f'{self.subset}_{self.file_split}.txt')
        ] + files, ('normal_resampled', self.sample_method, self.num_points,
                    self.num_channels))
        cached = self._try_cache('normal_resampled', key)
        if cached is not None:
            return cached
        points = [
            self._stored_points(mio.parse_points_txt(path), path)
            for path in files
        ]
        return dict(
            fingerprint=key,
            classes=classes,
            ids=ids,
            labels=labels,
            points=points)

    def _read_hdf5(self, root: str) -> dict:
        names_file = osp.join(root, 'shape_names.txt')
        classes = mio.unique_names(
            mio.read_lines(names_file, 'class-name list'), names_file)
        files = mio.hdf5_files(root, self.file_split)
        key = mio.fingerprint(
            [
                osp.join(root, 'shape_names.txt'),
                osp.join(root, f'{self.file_split}_files.txt')
            ] + files,
            ('hdf5', self.sample_method, self.num_points, self.num_channels))
        cached = self._try_cache('hdf5', key)
        if cached is not None:
            return cached
        ids, labels, points = [], [], []
        for path in files:
            data, label = mio.read_hdf5(path, self.use_normals)
            for j, (shape, lab) in enumerate(zip(data, label)):
                source = f'{path}[{j}]'
                if not 0 <= lab < len(classes):
                    raise ValueError(
                        f'{source}: label {lab} outside the {len(classes)} '
                        f'classes of shape_names.txt')
                ids.append(f'{osp.basename(path)}:{j}')
                labels.append(int(lab))
                points.append(self._stored_points(shape, source))
        return dict(
            fingerprint=key,
            classes=classes,
            ids=ids,
            labels=labels,
            points=points)

    def _try_cache(self, fmt: str, key: str) -> Optional[dict]:
        if not self.cache:
            return None
        cached = mio.load_cache(self._cache_path(fmt), key)
        if cached is not None:
            cached['from_cache'] = True
        return cached

    def load_data_list(self) -> List[dict]:
        """Read (or load from cache) the split."""
        fmt = self.data_format
        if fmt == 'auto':
            fmt = detect_format(self.data_root)
        elif not osp.isdir(self.data_root):
            detect_format(self.data_root)  # raises the helpful error
        self.resolved_format = fmt
        if fmt == 'normal_resampled':
            split = self._read_normal_resampled(self.data_root)
        else:
            split = self._read_hdf5(self.data_root)
        if self.cache and not split.get('from_cache'):
            if not mio.save_cache(self._cache_path(fmt), split):
                print_log(
                    f'ModelNet40Dataset: cannot write the cache '
                    f'{self._cache_path(fmt)}; working uncached',
                    logger='current')
        classes = self._metainfo.get('classes')
        if classes is None:
            self._metainfo['classes'] = tuple(split['classes'])
        elif len(classes) != len(split['classes']):
            raise ValueError(
                f'metainfo gives {len(classes)} classes but the dataset has '
                f'{len(split["classes"])}')
        keep = range(len(split['ids']))
        if self.file_split == 'train' and self.val_fraction > 0:
            held_out = holdout_indices(split['labels'], self.val_fraction,
                                       self.val_seed)
            keep = sorted(held_out) if self.split == 'val' else [
                i for i in keep if i not in held_out
            ]
        if not keep:
            raise ValueError(f'the {self.split} split of {self.data_root!r} '
                             f'is empty')
        return [
            dict(
                points=split['points'][i],
                gt_label=int(split['labels'][i]),
                shape_id=split['ids'][i]) for i in keep
        ]

    def get_data_info(self, idx: int) -> dict:
        """The sample dict with ``points`` as ``DepthPoints``."""
        info = super().get_data_info(idx)
        points = info['points']
        if self.sample_method == 'random':
            points = mio.sample_points(points, self.num_points, 'random',
                                       info['shape_id'])
        info['points'] = DepthPoints(
            np.array(points, dtype=np.float32), points_dim=points.shape[1])
        info['num_pts_feats'] = points.shape[1]
        return info
