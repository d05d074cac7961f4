# Copyright (c) mmbinpc contributors. All rights reserved.
"""The paper's reported figures (``paper_tables.csv``), looked up by key.

The CSV has the columns ``table,backbone,method,setting,metric,value``; one
row is one number of Zhao et al. (2023), Tables 3-7, measured by the authors
on the real ModelNet40 with a GPU. An experiment run names the row it
reproduces with a :class:`PaperKey`.
"""
import csv
import os.path as osp
from dataclasses import dataclass
from typing import Dict, Optional

from .errors import ExperimentError

COLUMNS = ('table', 'backbone', 'method', 'setting', 'metric', 'value')


@dataclass(frozen=True)
class PaperKey:
    """Which of the paper's figures a run reproduces.

    Attributes:
        table (str): Table id, e.g. ``'T4'``.
        backbone (str): e.g. ``'PointNet'``.
        method (str): e.g. ``'XNOR+MAX+KDR'``.
        setting (str): e.g. ``'reg=fro'`` (empty when the table has none).
        metric (str): The metric column. Defaults to ``'acc'``.
    """

    table: str
    backbone: str
    method: str
    setting: str = ''
    metric: str = 'acc'

    def label(self) -> str:
        """A short human-readable name, e.g. ``T3 PointNet XNOR+MAX reg=1``."""
        parts = [self.table, self.backbone, self.method, self.setting]
        return ' '.join(p for p in parts if p)

    def as_dict(self) -> Dict[str, str]:
        """The key as a plain dict (for JSON and CSV)."""
        return dict(
            table=self.table,
            backbone=self.backbone,
            method=self.method,
            setting=self.setting,
            metric=self.metric)


class PaperTable:
    """The rows of a ``paper_tables.csv``.

    Args:
        path (str): The CSV file.

    Raises:
        ExperimentError: If the file is missing or malformed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        if not osp.isfile(path):
            raise ExperimentError(
                f'{path}: paper table not found. It holds the paper\'s '
                f'figures (columns {",".join(COLUMNS)}); copy the rows you '
                'need from /work/shared/reference/paper_tables.csv or set '
                'paper_csv in the experiment definition.')
        self.values: Dict[PaperKey, float] = {}
        with open(path, newline='') as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ExperimentError(
                    f'{path}: expected the header {",".join(COLUMNS)}, got '
                    f'{",".join(reader.fieldnames or [])!r}')
            for line, row in enumerate(reader, start=2):
                key = PaperKey(row['table'], row['backbone'], row['method'],
                               row['setting'], row['metric'])
                try:
                    self.values[key] = float(row['value'])
                except (TypeError, ValueError):
                    raise ExperimentError(
                        f'{path}, line {line}: value {row["value"]!r} is not '
                        'a number')

    def get(self, key: Optional[PaperKey]) -> Optional[float]:
        """The paper's figure for ``key`` (None for no key)."""
        return None if key is None else self.values.get(key)

    def __contains__(self, key: PaperKey) -> bool:
        return key in self.values

    def near(self, key: PaperKey, limit: int = 6) -> str:
        """Existing keys of the same table, for error messages."""
        same = [
            k for k in self.values
            if k.table == key.table and k.metric == key.metric
        ]
        shown = ', '.join(f'({k.backbone!r}, {k.method!r}, {k.setting!r})'
                          for k in same[:limit])
        more = f' and {len(same) - limit} more' if len(same) > limit else ''
        return (f'rows of {key.table} (backbone, method, setting): '
                f'{shown}{more}'
                if same else f'no rows of table {key.table!r} with metric '
                f'{key.metric!r}')
