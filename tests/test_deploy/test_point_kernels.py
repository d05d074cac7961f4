# Copyright (c) mmbinpc contributors. All rights reserved.
"""The feature-space kNN kernel computes exactly its documented formula."""
import numpy as np
import pytest

from mmbinpc.deploy.kernels import points


def formula_knn(query: np.ndarray, cands: np.ndarray, k: int) -> np.ndarray:
    """``(|q|² + |p|²) − 2 q·p`` clamped at 0, every sum taken channel by
    channel in order (NumPy rounds each float32 operation alone), then the
    k smallest by (distance, index)."""
    dtype = query.dtype
    q_norm = np.zeros(len(query), dtype)
    p_norm = np.zeros(len(cands), dtype)
    dots = np.zeros((len(query), len(cands)), dtype)
    for c in range(query.shape[1]):
        q_norm += query[:, c] * query[:, c]
        p_norm += cands[:, c] * cands[:, c]
        dots += query[:, c, None] * cands[None, :, c]
    dist = np.maximum((q_norm[:, None] + p_norm[None]) - dtype.type(2) * dots,
                      dtype.type(0))
    order = np.argsort(dist, axis=1, kind='stable')  # ties: smaller index
    return order[:, :k]


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('parallel', [False, True])
def test_feature_knn_is_its_formula_across_tiles(dtype, parallel):
    """Candidates span several tiles (the last one partial), queries end in
    a partial row block, and offset features make the expansion lose digits
    to cancellation, so any reordered sum would change some neighbours."""
    rng = np.random.default_rng(0)
    num_cands = 3 * points.FEATURE_TILE + 37
    num_query = 5 * points.FEATURE_ROWS + 3
    cands = (rng.standard_normal((num_cands, 24)) * 3 + 10).astype(dtype)
    query = cands[rng.permutation(num_cands)[:num_query]].copy()
    for k in (1, 20, num_cands):
        got = points.knn_features(query, cands, k, parallel)
        np.testing.assert_array_equal(got, formula_knn(query, cands, k))
