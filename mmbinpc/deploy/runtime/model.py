# Copyright (c) mmbinpc contributors. All rights reserved.
"""Run a packed graph: :class:`PackedModel`."""
import os
import threading
import time
from typing import Any, Dict, List, Tuple

import numpy as np

from .graph import INPUT, count_ops, read_graph
from .ops import OPS, Op


class PackedModel:
    """A packed binary point-cloud model, run by NumPy and Numba only.

    Use :meth:`load`. Calling the model on points (B, N, C) returns logits:
    (B, K) for a classifier, (B, N, K) for a segmentor. The nodes run in
    file order; a value is dropped after its last reader. The ops keep work
    arrays between calls, so calls take turns on a lock (one forward pass
    at a time per model; load the file twice to run two at once).

    Args:
        meta (dict): The validated description (see
            :mod:`~mmbinpc.deploy.runtime.graph`).
        arrays (dict): Its validated arrays.
        path (str): The file it came from.
    """

    def __init__(self,
                 meta: Dict[str, Any],
                 arrays: Dict[str, np.ndarray],
                 path: str = '') -> None:
        self.meta = meta
        self.path = path
        grouped: Dict[str, Dict[str, np.ndarray]] = {}
        for key, value in arrays.items():
            node, role = key.split('/', 1)
            grouped.setdefault(node, {})[role] = value
        self.nodes: List[Tuple[Op, List[str]]] = []
        last_use: Dict[str, int] = {}
        for i, node in enumerate(meta['nodes']):
            op = OPS[node['op']](node['name'], node['attrs'],
                                 grouped.get(node['name'], {}))
            self.nodes.append((op, node['inputs']))
            for v in node['inputs']:
                last_use[v] = i
        # values to drop after each node (their last reader)
        self._drop: List[List[str]] = [[] for _ in self.nodes]
        for value, i in last_use.items():
            if value != meta['output']:
                self._drop[i].append(value)
        self.in_channels = meta['input']['channels']
        self.task = meta['task']
        self._lock = threading.Lock()
        #: op name -> seconds, accumulated while :attr:`timing` is on
        self.timing = False
        self.op_seconds: Dict[str, float] = {}

    @classmethod
    def load(cls, path: str) -> 'PackedModel':
        """Read, validate and prepare a file written by
        ``tools/deploy/export_packed.py``.

        Raises:
            PackedFormatError: If the file is not a valid packed model.
        """
        meta, arrays = read_graph(path)
        return cls(meta, arrays, path)

    @property
    def num_classes(self) -> int:
        return self.meta['num_classes']

    @property
    def file_bytes(self) -> int:
        """Size of the packed file (0 when not loaded from one)."""
        return os.path.getsize(self.path) if self.path else 0

    def node_arrays(self, name: str) -> Dict[str, np.ndarray]:
        """Role -> array of the node ``name`` (as stored)."""
        for op, _ in self.nodes:
            if op.name == name:
                return op.arrays
        raise KeyError(name)

    def __call__(self, points: Any) -> np.ndarray:
        """Logits for a batch of clouds.

        Args:
            points (array-like): (B, N, C) points, or (N, C) for one cloud;
                anything ``np.asarray`` reads (a CPU tensor too).

        Returns:
            np.ndarray: float32 logits, (B, K) or (B, N, K) (a new array).
        """
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim == 2:
            pts = pts[None]
        if pts.ndim != 3 or pts.shape[-1] != self.in_channels:
            raise ValueError(f'points must be (B, N, {self.in_channels}), '
                             f'got shape {pts.shape}')
        if pts.shape[1] == 0:
            raise ValueError('cannot run a model on clouds of 0 points')
        if not np.isfinite(pts).all():
            raise ValueError('points hold NaN or infinite values')
        with self._lock:
            return np.array(self._forward(np.ascontiguousarray(pts)))

    def _forward(self, pts: np.ndarray) -> np.ndarray:
        values: Dict[str, Any] = {INPUT: pts}
        timing = self.timing
        for i, (op, inputs) in enumerate(self.nodes):
            if timing:
                t0 = time.perf_counter()
            values[op.name] = op(*[values[v] for v in inputs])
            if timing:
                self.op_seconds[op.op] = self.op_seconds.get(
                    op.op, 0.0) + time.perf_counter() - t0
            for v in self._drop[i]:
                del values[v]
        return values[self.meta['output']]

    def predict(self, points: Any) -> np.ndarray:
        """Predicted classes: (B,) or (B, N) int64."""
        return self(points).argmax(axis=-1)

    def storage_bytes(self) -> Dict[str, int]:
        """Bytes of the stored arrays, by op."""
        out: Dict[str, int] = {}
        for op, _ in self.nodes:
            size = sum(a.nbytes for a in op.arrays.values())
            out[op.op] = out.get(op.op, 0) + size
        return out

    def summary(self) -> List[Dict[str, Any]]:
        """One row per node: name, op, inputs and attributes."""
        return [
            dict(name=op.name, op=op.op, inputs=list(inputs), **op.attrs)
            for op, inputs in self.nodes
        ]

    def __repr__(self) -> str:
        ops = ', '.join(f'{n} {op}' for op, n in count_ops(self.meta))
        return (f'PackedModel({self.path!r}, {self.task}, '
                f'{self.num_classes} classes: {ops})')
