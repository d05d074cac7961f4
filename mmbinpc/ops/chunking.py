# Copyright (c) mmbinpc contributors. All rights reserved.
"""Memory budget for the pairwise-distance work of the CPU point ops.

Ball query, kNN and three-NN compare every query point with every candidate
point. Doing that in one go for typical sizes (16 x 1024 centres against
4096 points) would allocate several GB of temporaries, so the work is split
into blocks of (batch items x query points) whose temporaries fit in
:data:`CHUNK_BYTES`. The budget is a module-level setting; change it with
:func:`set_chunk_bytes` (or the :func:`chunk_budget` context manager).
"""
from contextlib import contextmanager
from typing import Iterator, Tuple

#: Upper bound, in bytes, on the temporaries one block of pairwise work may
#: allocate. With about 20-32 bytes of temporaries per (query, point) pair,
#: 192 MiB keeps a 16 x 1024 x 4096 ball query well below 0.5 GB extra.
CHUNK_BYTES: int = 192 * 2**20


def set_chunk_bytes(num_bytes: int) -> int:
    """Set the pairwise-work memory budget.

    Args:
        num_bytes (int): New budget in bytes (at least 1). A budget smaller
            than one query row still processes one query point at a time.

    Returns:
        int: The previous budget, so callers can restore it.
    """
    global CHUNK_BYTES
    if not isinstance(num_bytes, int) or isinstance(num_bytes, bool) \
            or num_bytes < 1:
        raise ValueError(
            f'chunk budget must be a positive int number of bytes, got '
            f'{num_bytes!r}; e.g. set_chunk_bytes(256 * 2**20) for 256 MiB')
    previous = CHUNK_BYTES
    CHUNK_BYTES = num_bytes
    return previous


@contextmanager
def chunk_budget(num_bytes: int) -> Iterator[None]:
    """Temporarily change :data:`CHUNK_BYTES` inside a ``with`` block.

    Args:
        num_bytes (int): Budget in bytes while the block runs.
    """
    previous = set_chunk_bytes(num_bytes)
    try:
        yield
    finally:
        set_chunk_bytes(previous)


def iter_blocks(batch: int, num_query: int, num_points: int,
                bytes_per_pair: int) -> Iterator[Tuple[slice, slice]]:
    """Split a (batch, query, point) pairwise job into memory-bounded blocks.

    Blocks cover whole batch items when a full query row fits the budget
    several times over, otherwise one batch item and a range of query points.

    Args:
        batch (int): Batch size B.
        num_query (int): Query points per batch item M.
        num_points (int): Candidate points per batch item N.
        bytes_per_pair (int): Temporary bytes needed per (query, point) pair.

    Yields:
        tuple[slice, slice]: (batch slice, query slice) of one block.
    """
    if batch == 0 or num_query == 0:
        return
    row_bytes = max(1, num_points * bytes_per_pair)
    rows = max(1, CHUNK_BYTES // row_bytes)
    if rows >= num_query:
        # Whole query rows of several batch items fit at once.
        items = max(1, rows // num_query)
        for b0 in range(0, batch, items):
            yield slice(b0, min(batch, b0 + items)), slice(0, num_query)
        return
    for b0 in range(batch):
        for m0 in range(0, num_query, rows):
            yield slice(b0, b0 + 1), slice(m0, min(num_query, m0 + rows))
