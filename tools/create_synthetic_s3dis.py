# Copyright (c) mmbinpc contributors. All rights reserved.
"""Write a small generated indoor data set in mmdet3d's processed S3DIS layout.

The output is what mmdet3d 1.4's ``tools/create_data.py s3dis`` leaves behind
(after its ``update_infos_to_v2`` step), so ``S3DISSegDataset`` and the
upstream S3DIS segmentation configs read it unchanged::

    OUT_DIR/
      points/Area_{a}_{room}.bin          float32 (N, 6): xyz + rgb (0-255)
      semantic_mask/Area_{a}_{room}.bin   int64 (N,): class ids 0-12
      instance_mask/Area_{a}_{room}.bin   int64 (N,): instance ids, 1-based
      s3dis_infos_Area_{a}.pkl            dict(metainfo=..., data_list=[...])
      seg_info/Area_{a}_resampled_scene_idxs.npy   int32 scene indexes
      seg_info/Area_{a}_label_weight.npy           float32 (13,)

Each room is a box (floor, ceiling, four walls) holding furniture boxes of the
13 S3DIS classes, sampled on their surfaces with per-class colours plus noise,
so a segmentation network can learn something in a few iterations. Scene
indexes and label weights follow mmdet3d's ``S3DISSegData`` formulas
(``num_iter = total_points // num_points``; scene ``i`` repeated
``round(p_i · num_iter)`` times; weight ``1 / ln(1.2 + class_frequency)``),
except that every scene is repeated at least once so tiny data sets are never
empty.

Example:
    python tools/create_synthetic_s3dis.py data/s3dis --rooms-per-area 2
    python tools/train.py configs/dgcnn/dgcnn_bin_kdr_s3dis-seg.py
"""
import argparse
import os
import os.path as osp
import pickle
from typing import Dict, List, Sequence, Tuple

import numpy as np

CLASSES = ('ceiling', 'floor', 'wall', 'beam', 'column', 'window', 'door',
           'table', 'chair', 'sofa', 'bookcase', 'board', 'clutter')
# Detection classes mmdet3d's converter keeps as boxes (raw ids 7-11).
DET_CLASSES = ('table', 'chair', 'sofa', 'bookcase', 'board')
DET_CAT_IDS = (7, 8, 9, 10, 11)
ROOM_TYPES = ('office', 'conferenceRoom', 'hallway', 'lounge', 'storage')

# Base colour of each class (RGB, 0-255).
_COLOURS = np.array(
    [[200, 200, 190], [120, 100, 80], [180, 180, 170], [150, 140, 120],
     [170, 160, 150], [90, 140, 200], [140, 90, 60], [160, 110, 70],
     [60, 60, 70], [150, 40, 40], [110, 80, 50], [230, 230, 230],
     [100, 150, 100]],
    dtype=np.float32)

# (class, size range (dx, dy, dz) in metres, placement) for furniture.
_OBJECTS: Tuple[Tuple[str, Tuple[float, float, float], str], ...] = (
    ('table', (1.2, 0.8, 0.75), 'floor'),
    ('chair', (0.5, 0.5, 0.9), 'floor'),
    ('chair', (0.5, 0.5, 0.9), 'floor'),
    ('sofa', (1.8, 0.9, 0.8), 'floor'),
    ('bookcase', (1.0, 0.4, 1.9), 'wall'),
    ('board', (1.6, 0.05, 1.0), 'wall_high'),
    ('door', (0.9, 0.06, 2.1), 'wall'),
    ('window', (1.2, 0.06, 1.0), 'wall_high'),
    ('column', (0.4, 0.4, -1.0), 'corner'),
    ('beam', (-1.0, 0.3, 0.3), 'ceiling'),
    ('clutter', (0.4, 0.3, 0.3), 'floor'),
)


def _sample_box_surface(rng: np.random.Generator, lo: np.ndarray,
                        hi: np.ndarray, n: int) -> np.ndarray:
    """Sample ``n`` points uniformly on the surface of an axis-aligned box."""
    size = np.maximum(hi - lo, 1e-3)
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
    face_p = np.repeat(areas, 2) / (2 * areas.sum())
    faces = rng.choice(6, size=n, p=face_p)
    pts = lo + rng.random((n, 3)) * size
    axis = faces // 2
    side = faces % 2
    pts[np.arange(n), axis] = np.where(side == 0, lo[axis], hi[axis])
    return pts


def _room(
    rng: np.random.Generator, num_points: int, origin: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Generate one room: points (N, 6), semantic (N,), instance (N,)."""
    dims = np.array(
        [rng.uniform(3.0, 5.0),
         rng.uniform(3.0, 5.0),
         rng.uniform(2.6, 3.0)])
    # Room shell: floor, ceiling, four walls, sized by area.
    shell = [
        (CLASSES.index('floor'), [0, 0, 0], [dims[0], dims[1], 0]),
        (CLASSES.index('ceiling'), [0, 0,
                                    dims[2]], [dims[0], dims[1], dims[2]]),
        (CLASSES.index('wall'), [0, 0, 0], [dims[0], 0, dims[2]]),
        (CLASSES.index('wall'), [0, dims[1], 0], [dims[0], dims[1], dims[2]]),
        (CLASSES.index('wall'), [0, 0, 0], [0, dims[1], dims[2]]),
        (CLASSES.index('wall'), [dims[0], 0, 0], [dims[0], dims[1], dims[2]]),
    ]
    boxes = []
    for name, size, where in _OBJECTS:
        size = np.array(size, dtype=np.float64) * rng.uniform(0.85, 1.15, 3)
        if size[2] < 0:
            size[2] = dims[2]
        if size[0] < 0:
            size[0] = dims[0]
        lo = np.zeros(3)
        if where == 'floor':
            lo[:2] = rng.uniform([0.3, 0.3], dims[:2] - size[:2] - 0.3)
        elif where in ('wall', 'wall_high'):
            lo[0] = rng.uniform(0.2, max(0.21, dims[0] - size[0] - 0.2))
            lo[1] = 0.0 if rng.random() < 0.5 else dims[1] - size[1]
            lo[2] = 0.0 if where == 'wall' else rng.uniform(0.9, 1.2)
        elif where == 'corner':
            lo[:2] = [0.0, 0.0] if rng.random() < 0.5 else dims[:2] - size[:2]
        else:  # ceiling beam spanning x
            lo[1] = rng.uniform(0.5, dims[1] - size[1] - 0.5)
            lo[2] = dims[2] - size[2]
        boxes.append((CLASSES.index(name), lo, lo + size))
    items = [(c, np.array(lo, float), np.array(hi, float))
             for c, lo, hi in shell] + boxes
    # Split the point budget: 45 % shell (by area), 55 % furniture.
    shell_area = np.array(
        [np.prod(np.sort(hi - lo)[1:]) for _, lo, hi in items[:len(shell)]])
    n_shell = int(num_points * 0.45)
    counts = list(np.floor(shell_area / shell_area.sum() * n_shell))
    n_obj = num_points - int(sum(counts))
    per_obj = np.full(len(boxes), n_obj // len(boxes))
    per_obj[:n_obj - per_obj.sum()] += 1
    counts += list(per_obj)

    xyz, sem, ins, instances = [], [], [], []
    for inst_id, ((cls, lo, hi), n) in enumerate(zip(items, counts), 1):
        n = int(n)
        if n <= 0:
            continue
        pts = _sample_box_surface(rng, lo, hi, n)
        pts += rng.normal(0.0, 0.005, pts.shape)
        xyz.append(pts)
        sem.append(np.full(n, cls, dtype=np.int64))
        ins.append(np.full(n, inst_id, dtype=np.int64))
        if cls in DET_CAT_IDS:
            box = np.concatenate([(pts.min(0) + pts.max(0)) / 2,
                                  pts.max(0) - pts.min(0)]) + np.concatenate(
                                      [origin, np.zeros(3)])
            instances.append((DET_CAT_IDS.index(cls), box))
    xyz = np.concatenate(xyz) + origin
    sem = np.concatenate(sem)
    ins = np.concatenate(ins)
    rgb = _COLOURS[sem] + rng.normal(0.0, 12.0, (len(sem), 3))
    points = np.concatenate([xyz, np.clip(rgb, 0, 255)], axis=1)
    order = rng.permutation(len(points))
    return (points[order].astype(np.float32), sem[order], ins[order],
            instances)


def _scene_idxs_and_label_weight(
        semantic_masks: Sequence[np.ndarray],
        num_points: int) -> Tuple[np.ndarray, np.ndarray]:
    """mmdet3d ``S3DISSegData`` formulas (each scene kept at least once)."""
    num_classes = len(CLASSES)
    counts = np.zeros(num_classes + 1)
    sizes = []
    for mask in semantic_masks:
        sizes.append(len(mask))
        counts += np.histogram(mask, range(num_classes + 2))[0]
    sample_prob = np.array(sizes) / float(np.sum(sizes))
    num_iter = int(np.sum(sizes) / float(num_points))
    scene_idxs: List[int] = []
    for idx in range(len(semantic_masks)):
        repeat = max(1, int(round(sample_prob[idx] * num_iter)))
        scene_idxs.extend([idx] * repeat)
    weight = counts[:-1].astype(np.float32)
    weight = weight / weight.sum()
    weight = (1.0 / np.log(1.2 + weight)).astype(np.float32)
    return np.array(scene_idxs, dtype=np.int32), weight


def _info(sample_idx: int, name: str,
          instances: List[Tuple[int, np.ndarray]]) -> dict:
    """One ``data_list`` entry, keys as ``update_s3dis_infos`` writes them."""
    return dict(
        sample_idx=sample_idx,
        lidar_points=dict(num_pts_feats=6, lidar_path=f'{name}.bin'),
        instances=[
            dict(bbox_3d=box.tolist(), bbox_label_3d=np.int64(label))
            for label, box in instances
        ],
        pts_semantic_mask_path=f'{name}.bin',
        pts_instance_mask_path=f'{name}.bin')


def create_synthetic_s3dis(out_dir: str,
                           areas: Sequence[int] = (1, 2, 3, 4, 5, 6),
                           rooms_per_area: int = 2,
                           points_per_room: int = 8192,
                           num_points: int = 4096,
                           seed: int = 0) -> Dict[str, List[str]]:
    """Write the generated data set.

    Args:
        out_dir (str): Output directory (the configs' ``data_root``).
        areas (Sequence[int]): Area numbers to write (1-6). Defaults to all.
        rooms_per_area (int): Rooms per area. Defaults to 2.
        points_per_room (int): Points in each room. Defaults to 8192.
        num_points (int): Points per training patch, used for the resampled
            scene indexes as mmdet3d does. Defaults to 4096.
        seed (int): Random seed. Defaults to 0.

    Returns:
        dict[str, list[str]]: Room names written for each ``Area_{a}``.
    """
    if rooms_per_area < 1 or points_per_room < 64 or num_points < 1:
        raise ValueError('need rooms_per_area >= 1, points_per_room >= 64 and '
                         'num_points >= 1')
    bad = [a for a in areas if a not in range(1, 7)]
    if bad:
        raise ValueError(f'S3DIS areas are 1-6, got {bad}')
    rng = np.random.default_rng(seed)
    for sub in ('points', 'semantic_mask', 'instance_mask', 'seg_info'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    written: Dict[str, List[str]] = {}
    for area in areas:
        split = f'Area_{area}'
        data_list, masks, names = [], [], []
        for r in range(rooms_per_area):
            kind = ROOM_TYPES[r % len(ROOM_TYPES)]
            room = f'{kind}_{r // len(ROOM_TYPES) + 1}'
            name = f'{split}_{room}'
            origin = np.array([6.0 * r, 6.0 * (area - 1), 0.0])
            points, sem, ins, instances = _room(rng, points_per_room, origin)
            points.tofile(osp.join(out_dir, 'points', f'{name}.bin'))
            sem.tofile(osp.join(out_dir, 'semantic_mask', f'{name}.bin'))
            ins.tofile(osp.join(out_dir, 'instance_mask', f'{name}.bin'))
            data_list.append(_info(r, name, instances))
            masks.append(sem)
            names.append(room)
        metainfo = dict(
            categories={
                c: i
                for i, c in enumerate(DET_CLASSES)
            },
            dataset='s3dis',
            info_version='1.1')
        with open(osp.join(out_dir, f's3dis_infos_{split}.pkl'), 'wb') as f:
            pickle.dump(dict(metainfo=metainfo, data_list=data_list), f)
        scene_idxs, weight = _scene_idxs_and_label_weight(masks, num_points)
        np.save(
            osp.join(out_dir, 'seg_info', f'{split}_resampled_scene_idxs.npy'),
            scene_idxs)
        np.save(
            osp.join(out_dir, 'seg_info', f'{split}_label_weight.npy'), weight)
        written[split] = names
    return written


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a small generated indoor data set in the layout '
        "mmdet3d's S3DISSegDataset reads (no download).")
    parser.add_argument('out_dir', help='output directory, e.g. data/s3dis')
    parser.add_argument(
        '--areas',
        type=int,
        nargs='+',
        default=[1, 2, 3, 4, 5, 6],
        help='areas to write')
    parser.add_argument('--rooms-per-area', type=int, default=2)
    parser.add_argument('--points-per-room', type=int, default=8192)
    parser.add_argument(
        '--num-points',
        type=int,
        default=4096,
        help='points per training patch (scene resampling)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    written = create_synthetic_s3dis(args.out_dir, args.areas,
                                     args.rooms_per_area, args.points_per_room,
                                     args.num_points, args.seed)
    total = sum(len(v) for v in written.values())
    print(f'wrote {total} rooms ({args.points_per_room} points each) in '
          f'{len(written)} areas to {args.out_dir}')


if __name__ == '__main__':
    main()
