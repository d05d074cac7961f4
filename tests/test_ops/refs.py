# Copyright (c) mmbinpc contributors. All rights reserved.
"""Brute-force reference implementations (plain Python loops, tiny inputs).

They follow the loop structure of mmcv's CUDA kernels one point at a time
and share no code with mmbinpc.ops.
"""
import torch


def _d2(a, b):
    return sum((float(x) - float(y))**2 for x, y in zip(a, b))


def fps_ref(xyz, num):
    out = []
    for pts in xyz.tolist():
        temp = [1e10] * len(pts)
        picked = [0]
        for _ in range(1, num):
            last = pts[picked[-1]]
            best, besti = -1.0, 0
            for k, p in enumerate(pts):
                temp[k] = min(temp[k], _d2(p, last))
                if temp[k] > best:
                    best, besti = temp[k], k
            picked.append(besti)
        out.append(picked[:num])
    return torch.tensor(out, dtype=torch.int32).view(len(out), num)


def fps_dist_ref(dist, num):
    out = []
    for mat in dist.tolist():
        temp = [1e10] * len(mat)
        picked = [0]
        for _ in range(1, num):
            row = mat[picked[-1]]
            best, besti = -1.0, 0
            for k in range(len(mat)):
                temp[k] = min(temp[k], row[k])
                if temp[k] > best:
                    best, besti = temp[k], k
            picked.append(besti)
        out.append(picked[:num])
    return torch.tensor(out, dtype=torch.int32).view(len(out), num)


def ball_query_ref(min_r, max_r, nsample, xyz, center):
    out = []
    for pts, ctrs in zip(xyz.tolist(), center.tolist()):
        rows = []
        for c in ctrs:
            slots = [0] * nsample
            cnt = 0
            for k, p in enumerate(pts):
                d2 = _d2(c, p)
                if d2 == 0 or min_r**2 <= d2 < max_r**2:
                    if cnt == 0:
                        slots = [k] * nsample
                    slots[cnt] = k
                    cnt += 1
                    if cnt >= nsample:
                        break
            rows.append(slots)
        out.append(rows)
    return torch.tensor(out, dtype=torch.int32)


def knn_ref(k, xyz, center):
    """(B, k, M) neighbours sorted by (distance, index); index 0 padding."""
    out = []
    for pts, ctrs in zip(xyz.tolist(), center.tolist()):
        rows = []
        for c in ctrs:
            order = sorted(range(len(pts)), key=lambda i: (_d2(c, pts[i]), i))
            nbrs = order[:k] + [0] * max(0, k - len(pts))
            rows.append(nbrs)
        out.append(rows)
    return torch.tensor(out, dtype=torch.int32).transpose(1, 2)


def three_nn_ref(target, source):
    dists, idxs = [], []
    for tgt, src in zip(target.tolist(), source.tolist()):
        drow, irow = [], []
        for t in tgt:
            order = sorted(range(len(src)), key=lambda i: (_d2(t, src[i]), i))
            order = order[:3]
            drow.append([_d2(t, src[i])**0.5 for i in order])
            irow.append(order)
        dists.append(drow)
        idxs.append(irow)
    return (torch.tensor(dists, dtype=torch.float64),
            torch.tensor(idxs, dtype=torch.int32))


def gather_ref(features, idx):
    B, C, _ = features.shape
    M = idx.shape[1]
    out = features.new_zeros(B, C, M)
    for b in range(B):
        for m in range(M):
            out[b, :, m] = features[b, :, int(idx[b, m])]
    return out


def group_ref(features, idx):
    B, C, _ = features.shape
    _, M, K = idx.shape
    out = features.new_zeros(B, C, M, K)
    for b in range(B):
        for m in range(M):
            for k in range(K):
                out[b, :, m, k] = features[b, :, int(idx[b, m, k])]
    return out


def interp_ref(features, idx, weight):
    B, C, _ = features.shape
    N = idx.shape[1]
    out = features.new_zeros(B, C, N)
    for b in range(B):
        for n in range(N):
            for j in range(3):
                out[b, :, n] += weight[b, n, j] * features[b, :,
                                                           int(idx[b, n, j])]
    return out


def stack_ball_query_ref(radius, nsample, xyz, center, xyz_cnt, center_cnt):
    out = []
    n0 = m0 = 0
    for n, m in zip(xyz_cnt.tolist(), center_cnt.tolist()):
        pts = xyz[n0:n0 + n].tolist()
        for c in center[m0:m0 + m].tolist():
            slots = [0] * nsample
            cnt = 0
            for k, p in enumerate(pts):
                if _d2(c, p) < radius**2:
                    if cnt == 0:
                        slots = [k] * nsample
                    slots[cnt] = k
                    cnt += 1
                    if cnt >= nsample:
                        break
            if cnt == 0:
                slots[0] = -1
            out.append(slots)
        n0, m0 = n0 + n, m0 + m
    return torch.tensor(out, dtype=torch.int32).view(-1, nsample)


def stack_group_ref(features, idx, feat_cnt, idx_cnt):
    out = features.new_zeros(idx.shape[0], features.shape[1], idx.shape[1])
    n0 = m0 = 0
    for n, m in zip(feat_cnt.tolist(), idx_cnt.tolist()):
        for row in range(m0, m0 + m):
            for k in range(idx.shape[1]):
                out[row, :, k] = features[n0 + int(idx[row, k])]
        n0, m0 = n0 + n, m0 + m
    return out
