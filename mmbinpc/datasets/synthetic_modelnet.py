# Copyright (c) mmbinpc contributors. All rights reserved.
"""Procedurally generated shapes in the ``modelnet40_normal_resampled`` layout.

THIS IS NOT MODELNET40. It is a stand-in so that the whole pipeline (data,
training, binarization, distillation, deployment) runs without downloading
anything. Shapes are families of furniture/containers/vehicles assembled
from boxes, frustums, disks, ellipsoids, tori and planar polygons, with
points sampled uniformly over the surface (by area) and analytic outward
normals. Per instance the proportions vary, the shape is rotated about the
up axis (y, as in ModelNet), scaled anisotropically, noised, and sometimes
cut by a plane (a partial surface). Several families are deliberately
close (table/desk/stool/bench/chair; cup/mug/bottle/vase/flower_pot/bowl),
so the classes are not trivially separable.
"""
import math
import os
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

SYNTHETIC_MARKER = 'SYNTHETIC_NOT_MODELNET40.txt'
BANNER = (
    '#' * 78 + '\n'
    '#  SYNTHETIC DATA - NOT ModelNet40. Procedurally generated shapes\n'
    '#  in the modelnet40_normal_resampled layout, to run the pipeline only.\n'
    '#  Accuracies measured on it say nothing about ModelNet40.\n' + '#' * 78)

Array = np.ndarray


# ---------------------------------------------------------------------------
# Surfaces: each samples points uniformly by area, with outward normals.
# ---------------------------------------------------------------------------
class Surface:
    """A sampled surface patch: ``area`` and ``sample(n, rng)``."""

    area: float = 0.0

    def sample(self, n: int, rng: np.random.Generator) -> Tuple[Array, Array]:
        raise NotImplementedError


def _unit(v: Array) -> Array:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frame(axis: Sequence[float]) -> Array:
    """Rotation whose y column is ``axis`` (maps local y to ``axis``)."""
    y = _unit(np.asarray(axis, dtype=np.float64))
    helper = np.array([1.0, 0, 0]) if abs(y[0]) < 0.9 else np.array(
        [0, 0, 1.0])
    x = _unit(np.cross(helper, y))
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=1)


class Parallelogram(Surface):
    """``center + a*u + b*v`` for a, b in [-1, 1], normal along ``u x v``."""

    def __init__(self, center, u, v, flip: bool = False) -> None:
        self.c, self.u, self.v = (
            np.asarray(x, dtype=np.float64) for x in (center, u, v))
        normal = np.cross(self.u, self.v)
        self.area = 4.0 * float(np.linalg.norm(normal))
        self.n = _unit(-normal if flip else normal)

    def sample(self, n, rng):
        ab = rng.uniform(-1, 1, size=(n, 2))
        pts = self.c + ab[:, :1] * self.u + ab[:, 1:] * self.v
        return pts, np.repeat(self.n[None], n, axis=0)


class Triangle(Surface):
    """Triangle ``a, b, c``; the normal is ``(b-a) x (c-a)``."""

    def __init__(self, a, b, c) -> None:
        self.a, self.b, self.c = (
            np.asarray(x, dtype=np.float64) for x in (a, b, c))
        normal = np.cross(self.b - self.a, self.c - self.a)
        self.area = 0.5 * float(np.linalg.norm(normal))
        self.n = _unit(normal)

    def sample(self, n, rng):
        r1, r2 = rng.random((2, n, 1))
        s = np.sqrt(r1)
        pts = (1 - s) * self.a + s * (1 - r2) * self.b + s * r2 * self.c
        return pts, np.repeat(self.n[None], n, axis=0)


class Frustum(Surface):
    """Lateral surface of a (truncated) cone along ``axis`` from ``base``."""

    def __init__(self,
                 base,
                 r0: float,
                 r1: float,
                 h: float,
                 axis=(0, 1, 0),
                 inward: bool = False) -> None:
        self.base = np.asarray(base, dtype=np.float64)
        self.r0, self.r1, self.h = r0, r1, h
        self.rot = _frame(axis)
        self.sign = -1.0 if inward else 1.0
        self.area = math.pi * (r0 + r1) * math.hypot(h, r1 - r0)

    def sample(self, n, rng):
        u, theta = rng.random(n), rng.uniform(0, 2 * math.pi, n)
        r0, r1 = self.r0, self.r1
        if abs(r1 - r0) < 1e-9:
            r, t = np.full(n, r0), u
        else:  # density proportional to the radius
            r = np.sqrt(r0**2 + u * (r1**2 - r0**2))
            t = (r - r0) / (r1 - r0)
        c, s = np.cos(theta), np.sin(theta)
        pts = np.stack([r * c, t * self.h, r * s], axis=1)
        nrm = _unit(
            np.stack([self.h * c, np.full(n, r0 - r1), self.h * s], axis=1))
        return (pts @ self.rot.T + self.base, self.sign * (nrm @ self.rot.T))


class Disk(Surface):
    """Disk (or annulus) of radius ``r`` with normal ``normal``."""

    def __init__(self,
                 center,
                 r: float,
                 normal=(0, 1, 0),
                 r_in: float = 0.0) -> None:
        self.c = np.asarray(center, dtype=np.float64)
        self.r, self.r_in = r, r_in
        self.rot = _frame(normal)
        self.n = _unit(np.asarray(normal, dtype=np.float64))
        self.area = math.pi * (r**2 - r_in**2)

    def sample(self, n, rng):
        rad = np.sqrt(rng.uniform(self.r_in**2, self.r**2, n))
        theta = rng.uniform(0, 2 * math.pi, n)
        pts = np.stack([rad * np.cos(theta),
                        np.zeros(n), rad * np.sin(theta)],
                       axis=1)
        return pts @ self.rot.T + self.c, np.repeat(self.n[None], n, axis=0)


class Ellipsoid(Surface):
    """Ellipsoid with semi-axes ``radii``; ``y_range`` keeps a band of it
    (as fractions of the y radius, e.g. (-1, 0) for a bowl)."""

    def __init__(self,
                 center,
                 radii,
                 y_range=(-1.0, 1.0),
                 inward: bool = False) -> None:
        self.c = np.asarray(center, dtype=np.float64)
        self.radii = np.asarray(radii, dtype=np.float64)
        self.y_range = y_range
        self.sign = -1.0 if inward else 1.0
        a, b, c = self.radii
        p = 1.6075  # Knud Thomsen's approximation of the surface area
        full = 4 * math.pi * (((a * b)**p + (a * c)**p +
                               (b * c)**p) / 3)**(1 / p)
        self.area = full * (y_range[1] - y_range[0]) / 2  # exact for spheres

    def sample(self, n, rng):
        out_p, out_n, have = [], [], 0
        max_scale = self.radii.max()
        while have < n:
            m = 2 * (n - have) + 16
            # Uniform on the sphere's band, then stretched and thinned by
            # the local area scale (rejection) to be uniform on the ellipsoid.
            y = rng.uniform(*self.y_range, m)
            theta = rng.uniform(0, 2 * math.pi, m)
            rr = np.sqrt(np.clip(1 - y**2, 0, None))
            unit = np.stack([rr * np.cos(theta), y, rr * np.sin(theta)], 1)
            grad = unit / self.radii
            scale = np.linalg.norm(grad * self.radii.prod(), axis=1)
            keep = rng.random(m) < scale / (max_scale**2 * 1.0001)
            unit, grad = unit[keep], grad[keep]
            out_p.append(unit * self.radii)
            out_n.append(_unit(grad))
            have += len(unit)
        pts = np.concatenate(out_p)[:n] + self.c
        return pts, self.sign * np.concatenate(out_n)[:n]


class TorusArc(Surface):
    """Torus (major ``R``, minor ``r``) in the plane normal to ``axis``,
    keeping the angles ``arc`` (radians) around the axis."""

    def __init__(self,
                 center,
                 R: float,
                 r: float,
                 axis=(0, 1, 0),
                 arc=(0.0, 2 * math.pi)) -> None:
        self.c = np.asarray(center, dtype=np.float64)
        self.R, self.r, self.arc = R, r, arc
        self.rot = _frame(axis)
        self.area = 4 * math.pi**2 * R * r * (arc[1] - arc[0]) / (2 * math.pi)

    def sample(self, n, rng):
        out_p, out_n, have = [], [], 0
        while have < n:
            m = 2 * (n - have) + 16
            theta = rng.uniform(*self.arc, m)
            phi = rng.uniform(0, 2 * math.pi, m)
            keep = rng.random(m) < (self.R + self.r * np.cos(phi)) / (
                self.R + self.r)
            theta, phi = theta[keep], phi[keep]
            nrm = np.stack([
                np.cos(phi) * np.cos(theta),
                np.sin(phi),
                np.cos(phi) * np.sin(theta)
            ], 1)
            ring = np.stack(
                [np.cos(theta),
                 np.zeros_like(theta),
                 np.sin(theta)], 1) * self.R
            out_p.append(ring + self.r * nrm)
            out_n.append(nrm)
            have += len(theta)
        pts = np.concatenate(out_p)[:n] @ self.rot.T + self.c
        return pts, np.concatenate(out_n)[:n] @ self.rot.T


def box(center, size, skip: Sequence[str] = ()) -> List[Surface]:
    """The six faces of an axis-aligned box (faces named '+x', '-y', ...)."""
    c = np.asarray(center, dtype=np.float64)
    h = np.asarray(size, dtype=np.float64) / 2
    faces = []
    for axis in range(3):
        i, j = [a for a in range(3) if a != axis]
        for sign, tag in ((1, '+'), (-1, '-')):
            if f'{tag}{"xyz"[axis]}' in skip:
                continue
            off = np.zeros(3)
            off[axis] = sign * h[axis]
            u, v = np.zeros(3), np.zeros(3)
            u[i], v[j] = h[i], h[j]
            face = Parallelogram(c + off, u, v)
            if np.dot(face.n, off) < 0:
                face = Parallelogram(c + off, u, v, flip=True)
            faces.append(face)
    return faces


def cylinder(base, r: float, h: float, axis=(0, 1, 0),
             caps=(True, True)) -> List[Surface]:
    """Closed (or open-ended) cylinder along ``axis`` from ``base``."""
    axis = _unit(np.asarray(axis, dtype=np.float64))
    base = np.asarray(base, dtype=np.float64)
    parts: List[Surface] = [Frustum(base, r, r, h, axis)]
    if caps[0]:
        parts.append(Disk(base, r, -axis))
    if caps[1]:
        parts.append(Disk(base + h * axis, r, axis))
    return parts


# ---------------------------------------------------------------------------
# Shape families. Each takes an rng and returns a list of surfaces with y up
# and the shape resting on y = 0.
# ---------------------------------------------------------------------------
def _legs(rng, xs, zs, top_y, thick, round_legs):
    parts = []
    for x in xs:
        for z in zs:
            if round_legs:
                parts += cylinder((x, 0, z),
                                  thick / 2,
                                  top_y,
                                  caps=(True, False))
            else:
                parts += box((x, top_y / 2, z), (thick, top_y, thick),
                             skip=('+y', ))
    return parts


def _table(rng,
           w_range=(1.0, 1.6),
           d_range=(0.6, 1.0),
           h_range=(0.6, 0.9),
           inset_max=0.12):
    w, d, h = (rng.uniform(*r) for r in (w_range, d_range, h_range))
    top_t = rng.uniform(0.03, 0.07)
    thick = rng.uniform(0.04, 0.09)
    ins = rng.uniform(0.0, inset_max)
    xs = (-w / 2 + thick / 2 + ins, w / 2 - thick / 2 - ins)
    zs = (-d / 2 + thick / 2 + ins, d / 2 - thick / 2 - ins)
    return box((0, h - top_t / 2, 0),
               (w, top_t, d)) + _legs(rng, xs, zs, h - top_t, thick,
                                      rng.random() < 0.4)


def make_table(rng):
    return _table(rng)


def make_desk(rng):
    """A table with a drawer block under one side."""
    parts = _table(
        rng,
        w_range=(1.1, 1.6),
        d_range=(0.55, 0.8),
        h_range=(0.65, 0.85),
        inset_max=0.02)
    top = max(p.c[1] for p in parts if isinstance(p, Parallelogram))
    w = max(abs(p.c[0]) for p in parts if isinstance(p, Parallelogram)) * 2
    bw = rng.uniform(0.3, 0.45) * w
    bh = rng.uniform(0.3, 0.9) * top
    side = rng.choice([-1, 1])
    parts += box((side * (w / 2 - bw / 2), top - 0.05 - bh / 2, 0),
                 (bw, bh, rng.uniform(0.45, 0.75)))
    return parts


def make_stool(rng):
    r = rng.uniform(0.18, 0.3)
    h = rng.uniform(0.45, 0.8)
    t = rng.uniform(0.03, 0.06)
    n_legs = int(rng.choice([3, 4]))
    parts = cylinder((0, h - t, 0), r, t)
    spread = rng.uniform(0.0, 0.12)
    for k in range(n_legs):
        a = 2 * math.pi * k / n_legs
        top = np.array([0.75 * r * math.cos(a), h - t, 0.75 * r * math.sin(a)])
        foot = top * np.array([1 + spread / r, 0, 1 + spread / r])
        parts += cylinder(
            foot,
            rng.uniform(0.015, 0.03),
            float(np.linalg.norm(top - foot)),
            axis=top - foot,
            caps=(True, False))
    return parts


def make_bench(rng):
    w, d, h = rng.uniform(1.4, 2.2), rng.uniform(0.3,
                                                 0.5), rng.uniform(0.35, 0.5)
    t = rng.uniform(0.04, 0.08)
    parts = box((0, h - t / 2, 0), (w, t, d))
    if rng.random() < 0.5:  # slab legs
        for x in (-w / 2 + 0.15, w / 2 - 0.15):
            parts += box((x, (h - t) / 2, 0), (0.05, h - t, d * 0.9),
                         skip=('+y', ))
    else:
        thick = rng.uniform(0.04, 0.07)
        parts += _legs(rng, (-w / 2 + 0.1, w / 2 - 0.1),
                       (-d / 2 + 0.05, d / 2 - 0.05), h - t, thick, False)
    return parts


def make_chair(rng):
    w, d = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6)
    h = rng.uniform(0.4, 0.5)
    t = rng.uniform(0.03, 0.07)
    back_h = rng.uniform(0.35, 0.6)
    thick = rng.uniform(0.03, 0.06)
    parts = box((0, h - t / 2, 0), (w, t, d))
    parts += box((0, h + back_h / 2, -d / 2 + 0.02), (w, back_h, 0.04))
    parts += _legs(rng, (-w / 2 + thick, w / 2 - thick),
                   (-d / 2 + thick, d / 2 - thick), h - t, thick,
                   rng.random() < 0.3)
    return parts


def make_sofa(rng):
    w, d = rng.uniform(1.4, 2.2), rng.uniform(0.7, 1.0)
    seat_h, back_h = rng.uniform(0.35, 0.5), rng.uniform(0.3, 0.5)
    arm_w = rng.uniform(0.1, 0.25)
    arm_h = seat_h + rng.uniform(0.1, 0.25)
    back_d = rng.uniform(0.15, 0.3)
    parts = box((0, seat_h / 2, 0), (w, seat_h, d))
    parts += box((0, (seat_h + back_h) / 2 + seat_h / 2, -d / 2 + back_d / 2),
                 (w, seat_h + back_h, back_d))
    for s in (-1, 1):
        parts += box((s * (w / 2 + arm_w / 2), arm_h / 2, 0),
                     (arm_w, arm_h, d))
    return parts


def make_bed(rng):
    w, length = rng.uniform(1.0, 1.8), rng.uniform(1.9, 2.2)
    mh = rng.uniform(0.35, 0.55)
    hb = rng.uniform(0.4, 0.8)
    parts = box((0, mh / 2, 0), (w, mh, length))
    parts += box((0, (mh + hb) / 2, -length / 2 - 0.03), (w, mh + hb, 0.06))
    if rng.random() < 0.5:  # foot board
        fb = rng.uniform(0.05, 0.25)
        parts += box((0, (mh + fb) / 2, length / 2 + 0.03), (w, mh + fb, 0.06))
    return parts


def make_bookshelf(rng):
    w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.25,
                                                 0.4), rng.uniform(1.2, 2.0)
    t = 0.03
    parts = box((0, h / 2, -d / 2 + t / 2), (w, h, t))  # back
    for s in (-1, 1):
        parts += box((s * (w / 2 - t / 2), h / 2, 0), (t, h, d))
    n_shelves = int(rng.integers(3, 6))
    for k in range(n_shelves + 1):
        y = t / 2 + k * (h - t) / n_shelves
        parts += box((0, y, 0), (w - 2 * t, t, d - t))
    return parts


def make_dresser(rng):
    w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.4,
                                                 0.6), rng.uniform(0.7, 1.2)
    leg = rng.uniform(0.0, 0.12)
    parts = box((0, leg + h / 2, 0), (w, h, d))
    n = int(rng.integers(2, 5))
    for k in range(n):  # drawer handles
        y = leg + (k + 0.5) * h / n
        parts += box((0, y, d / 2 + 0.015), (w * 0.3, 0.03, 0.03),
                     skip=('-z', ))
    if leg > 0.02:
        parts += _legs(rng, (-w / 2 + 0.05, w / 2 - 0.05),
                       (-d / 2 + 0.05, d / 2 - 0.05), leg, 0.05, False)
    return parts


def make_monitor(rng):
    w, h = rng.uniform(0.5, 0.8), rng.uniform(0.3, 0.5)
    t = rng.uniform(0.02, 0.06)
    neck = rng.uniform(0.08, 0.2)
    base_w = rng.uniform(0.15, 0.3)
    parts = box((0, 0.01, 0), (base_w, 0.02, base_w * 0.8))
    parts += box((0, neck / 2 + 0.02, -0.02), (0.05, neck, 0.03))
    parts += box((0, neck + h / 2, 0), (w, h, t))
    return parts


def make_lamp(rng):
    base_r = rng.uniform(0.1, 0.18)
    pole_h = rng.uniform(0.35, 0.7)
    shade_h = rng.uniform(0.15, 0.3)
    r_top = rng.uniform(0.06, 0.12)
    r_bot = r_top + rng.uniform(0.05, 0.15)
    parts = cylinder((0, 0, 0), base_r, 0.03)
    parts += cylinder((0, 0.03, 0), 0.015, pole_h, caps=(False, True))
    parts.append(Frustum((0, pole_h - shade_h / 2, 0), r_bot, r_top, shade_h))
    return parts


def _container(rng, r0, r1, h, handle=False, closed_top=False):
    parts: List[Surface] = [
        Frustum((0, 0, 0), r0, r1, h),
        Disk((0, 0, 0), r0, (0, -1, 0))
    ]
    if closed_top:
        parts.append(Disk((0, h, 0), r1, (0, 1, 0)))
    if handle:
        R = rng.uniform(0.3, 0.45) * h
        parts.append(
            TorusArc((max(r0, r1), h / 2, 0),
                     R,
                     rng.uniform(0.015, 0.03),
                     axis=(0, 0, 1),
                     arc=(-math.pi / 2, math.pi / 2)))
    return parts


def make_cup(rng):
    r0 = rng.uniform(0.2, 0.3)
    return _container(rng, r0, r0 * rng.uniform(1.0, 1.35),
                      rng.uniform(0.5, 0.9))


def make_mug(rng):
    r0 = rng.uniform(0.2, 0.3)
    return _container(
        rng,
        r0,
        r0 * rng.uniform(0.95, 1.1),
        rng.uniform(0.45, 0.8),
        handle=True)


def make_flower_pot(rng):
    r1 = rng.uniform(0.25, 0.35)
    h = rng.uniform(0.3, 0.5)
    parts = _container(rng, r1 * rng.uniform(0.6, 0.8), r1, h)
    parts.append(
        Ellipsoid((0, h + 0.2, 0),
                  (r1 * rng.uniform(0.8, 1.3), rng.uniform(
                      0.15, 0.35), r1 * rng.uniform(0.8, 1.3)),
                  y_range=(-0.6, 1.0)))
    return parts


def make_bottle(rng):
    r = rng.uniform(0.12, 0.2)
    h = rng.uniform(0.5, 0.8)
    sh = rng.uniform(0.08, 0.2)
    nr = rng.uniform(0.035, 0.06)
    nh = rng.uniform(0.1, 0.25)
    parts = cylinder((0, 0, 0), r, h, caps=(True, False))
    parts.append(Frustum((0, h, 0), r, nr, sh))
    parts += cylinder((0, h + sh, 0), nr, nh, caps=(False, True))
    return parts


def make_vase(rng):
    r0 = rng.uniform(0.1, 0.18)
    rm = rng.uniform(0.2, 0.32)
    r1 = rng.uniform(0.08, 0.2)
    h0, h1 = rng.uniform(0.2, 0.45), rng.uniform(0.25, 0.5)
    return [
        Disk((0, 0, 0), r0, (0, -1, 0)),
        Frustum((0, 0, 0), r0, rm, h0),
        Frustum((0, h0, 0), rm, r1, h1)
    ]


def make_bowl(rng):
    r = rng.uniform(0.35, 0.5)
    depth = rng.uniform(0.15, 0.3)
    cut = rng.uniform(-0.15, 0.0)
    return [
        Ellipsoid((0, depth, 0), (r, depth, r), y_range=(-1.0, cut)),
        Disk((0, 0.005, 0), r * 0.35, (0, -1, 0))
    ]


def make_cone(rng):
    r = rng.uniform(0.2, 0.4)
    h = rng.uniform(0.5, 1.0)
    parts: List[Surface] = [
        Frustum((0, 0, 0), r, r * rng.uniform(0, 0.1), h),
        Disk((0, 0, 0), r, (0, -1, 0))
    ]
    if rng.random() < 0.5:  # square base plate (traffic cone)
        parts += box((0, -0.02, 0), (2.4 * r, 0.04, 2.4 * r))
    return parts


def make_tent(rng):
    w, l, h = rng.uniform(0.8, 1.4), rng.uniform(1.0,
                                                 2.0), rng.uniform(0.6, 1.1)
    a, b = np.array([-w / 2, 0, 0]), np.array([w / 2, 0, 0])
    top = np.array([0, h, 0])
    dz = np.array([0, 0, l / 2])
    parts: List[Surface] = []
    for lo in (a, b):  # two sloped roof panels
        mid = (lo + top) / 2
        u, v = (top - lo) / 2, dz
        panel = Parallelogram(mid, u, v)
        if np.dot(panel.n, mid - np.array([0, h / 3, 0])) < 0:
            panel = Parallelogram(mid, u, v, flip=True)
        parts.append(panel)
    parts.append(Triangle(a + dz, b + dz, top + dz))
    parts.append(Triangle(b - dz, a - dz, top - dz))
    return parts


def make_airplane(rng):
    L = rng.uniform(1.6, 2.4)
    r = rng.uniform(0.08, 0.14)
    span = rng.uniform(1.4, 2.4)
    chord = rng.uniform(0.25, 0.45)
    x = np.array([1.0, 0, 0])
    parts = cylinder((-L / 2, 0, 0), r, L * 0.8, axis=x, caps=(True, False))
    parts.append(Frustum((L * 0.3, 0, 0), r, 0.02, L * 0.2, axis=x))
    wing_x = rng.uniform(-0.1, 0.15) * L
    sweep = rng.uniform(0.0, 0.3)
    parts += box((wing_x, 0, 0), (chord, 0.03, span))
    parts += box((wing_x - sweep * 0.5, 0, 0), (chord * 0.6, 0.03, span * 0.2))
    parts += box((-L / 2 + 0.1, 0, 0), (chord * 0.6, 0.02, span * 0.35))
    parts += box((-L / 2 + 0.1, r + 0.15, 0), (chord * 0.6, 0.3, 0.02))
    return parts


def make_car(rng):
    L, w = rng.uniform(1.6, 2.2), rng.uniform(0.7, 0.9)
    h = rng.uniform(0.25, 0.4)
    wr = rng.uniform(0.12, 0.18)
    parts = box((0, wr + h / 2, 0), (L, h, w))
    cab_l = rng.uniform(0.4, 0.6) * L
    parts += box((rng.uniform(-0.15, 0.05) * L, wr + h + 0.15, 0),
                 (cab_l, 0.3, w * 0.9))
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts += cylinder((sx * L * 0.32, wr, sz * (w / 2 + 0.02) - 0.04),
                              wr,
                              0.08,
                              axis=(0, 0, 1))
    return parts


def make_door(rng):
    w, h, t = rng.uniform(0.7, 1.0), rng.uniform(1.8,
                                                 2.2), rng.uniform(0.03, 0.06)
    parts = box((0, h / 2, 0), (w, h, t))
    knob = Ellipsoid((w * 0.4, h * 0.48, t / 2 + 0.04), (0.035, 0.035, 0.035))
    parts += [
        knob,
        Ellipsoid((w * 0.4, h * 0.48, -t / 2 - 0.04), (0.035, 0.035, 0.035))
    ]
    if rng.random() < 0.5:  # frame
        parts += box((0, h + 0.04, 0), (w + 0.16, 0.08, t * 2))
    return parts


def make_guitar(rng):
    t = rng.uniform(0.08, 0.12)
    r1, r2 = rng.uniform(0.18, 0.25), rng.uniform(0.13, 0.18)
    parts: List[Surface] = [
        Ellipsoid((0, r1, 0), (r1, r1, t / 2)),
        Ellipsoid((0, 2 * r1 + r2 * 0.6, 0), (r2, r2, t / 2))
    ]
    neck = rng.uniform(0.5, 0.8)
    top = 2 * r1 + r2 * 1.4
    parts += box((0, top + neck / 2, 0), (0.06, neck, 0.04))
    parts += box((0, top + neck + 0.08, 0), (0.1, 0.16, 0.04))
    return parts


FAMILIES: Dict[str, Callable[[np.random.Generator], List[Surface]]] = {
    'table': make_table,
    'chair': make_chair,
    'stool': make_stool,
    'bench': make_bench,
    'cup': make_cup,
    'bottle': make_bottle,
    'vase': make_vase,
    'bowl': make_bowl,
    'lamp': make_lamp,
    'monitor': make_monitor,
    'mug': make_mug,
    'desk': make_desk,
    'bookshelf': make_bookshelf,
    'dresser': make_dresser,
    'sofa': make_sofa,
    'bed': make_bed,
    'flower_pot': make_flower_pot,
    'cone': make_cone,
    'tent': make_tent,
    'airplane': make_airplane,
    'car': make_car,
    'door': make_door,
    'guitar': make_guitar,
}
"""Class name -> generator, in the order classes are taken (``--classes K``
uses the first K). The first ten are four legged-furniture and four
container families plus a lamp and a monitor."""


# ---------------------------------------------------------------------------
# Sampling one instance
# ---------------------------------------------------------------------------
def sample_surfaces(parts: Sequence[Surface], n: int,
                    rng: np.random.Generator) -> Tuple[Array, Array]:
    """``n`` points spread over ``parts`` in proportion to their areas."""
    areas = np.array([p.area for p in parts], dtype=np.float64)
    counts = rng.multinomial(n, areas / areas.sum())
    pts, nrm = [], []
    for part, k in zip(parts, counts):
        if k:
            p, q = part.sample(int(k), rng)
            pts.append(p)
            nrm.append(q)
    return np.concatenate(pts), _unit(np.concatenate(nrm))


def make_instance(family: str,
                  num_points: int,
                  rng: np.random.Generator,
                  noise: float = 0.006,
                  partial_prob: float = 0.25,
                  aniso: float = 0.12) -> Array:
    """One shape as an (N, 6) float32 array ``x, y, z, nx, ny, nz``.

    The shape is built by its family's generator, scaled anisotropically by
    up to ``±aniso`` per axis (normals transformed consistently), rotated
    by a uniform angle about the up (y) axis, with probability
    ``partial_prob`` cut by a random plane that removes 15-40 % of the
    surface, centred and scaled into the unit sphere, and jittered with
    Gaussian noise of std ``noise`` (normals are left exact).
    """
    parts = FAMILIES[family](rng)
    pts, nrm = sample_surfaces(parts, 2 * num_points, rng)
    scale = rng.uniform(1 - aniso, 1 + aniso, 3)
    pts = pts * scale
    nrm = _unit(nrm / scale)
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    pts, nrm = pts @ rot.T, nrm @ rot.T
    if rng.random() < partial_prob:
        direction = _unit(rng.normal(size=3) * np.array([1, 0.3, 1]))
        proj = (pts - pts.mean(0)) @ direction
        keep = proj < np.quantile(proj, 1 - rng.uniform(0.15, 0.4))
        pts, nrm = pts[keep], nrm[keep]
    choice = rng.choice(len(pts), num_points, replace=len(pts) < num_points)
    pts, nrm = pts[choice], nrm[choice]
    pts = pts - pts.mean(axis=0)
    pts = pts / np.sqrt((pts**2).sum(1)).max()
    pts = pts + rng.normal(scale=noise, size=pts.shape)
    return np.concatenate([pts, nrm], axis=1).astype(np.float32)


def write_synthetic_modelnet(
        out_dir: str,
        num_classes: int = 10,
        train_per_class: int = 40,
        test_per_class: int = 10,
        num_points: int = 2048,
        seed: int = 0,
        noise: float = 0.006,
        partial_prob: float = 0.25,
        classes: Optional[Sequence[str]] = None,
        log: Optional[Callable[[str], None]] = print) -> Dict[str, int]:
    """Write a synthetic dataset in the ``modelnet40_normal_resampled`` layout.

    Files: ``modelnet40_shape_names.txt``, ``modelnet40_train.txt``,
    ``modelnet40_test.txt``, ``<class>/<class>_<0001>.txt`` (rows
    ``x,y,z,nx,ny,nz``) and the marker ``SYNTHETIC_NOT_MODELNET40.txt``.

    Args:
        out_dir (str): Output directory (created; existing files of the
            same names are overwritten).
        num_classes (int): Number of classes (the first K of
            :data:`FAMILIES`). Defaults to 10.
        train_per_class (int): Training shapes per class. Defaults to 40.
        test_per_class (int): Test shapes per class. Defaults to 10.
        num_points (int): Points per shape file. Defaults to 2048.
        seed (int): RNG seed; the output is a function of the arguments.
        noise (float): Std of the coordinate noise. Defaults to 0.006.
        partial_prob (float): Probability of a partial (cut) shape.
            Defaults to 0.25.
        classes (Sequence[str], optional): Explicit family names instead of
            the first ``num_classes``.
        log (callable, optional): Where to print the banner and progress.

    Returns:
        dict: ``classes``, ``train`` and ``test`` counts.
    """
    if classes is None:
        if not 2 <= num_classes <= len(FAMILIES):
            raise ValueError(f'num_classes must be in [2, {len(FAMILIES)}] '
                             f'(the generator has {len(FAMILIES)} shape '
                             f'families), got {num_classes}')
        classes = list(FAMILIES)[:num_classes]
    unknown = [c for c in classes if c not in FAMILIES]
    if unknown:
        raise ValueError(f'unknown shape families {unknown}; known: '
                         f'{", ".join(FAMILIES)}')
    if train_per_class < 1 or test_per_class < 1 or num_points < 16:
        raise ValueError('need train_per_class >= 1, test_per_class >= 1 and '
                         'num_points >= 16')
    if log:
        log(BANNER)
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    splits: Dict[str, List[str]] = {'train': [], 'test': []}
    for cls in classes:
        os.makedirs(osp.join(out_dir, cls), exist_ok=True)
        total = train_per_class + test_per_class
        for k in range(total):
            shape_id = f'{cls}_{k + 1:04d}'
            arr = make_instance(
                cls, num_points, rng, noise=noise, partial_prob=partial_prob)
            np.savetxt(
                osp.join(out_dir, cls, f'{shape_id}.txt'),
                arr,
                fmt='%.6f',
                delimiter=',')
            splits['train' if k < train_per_class else 'test'].append(shape_id)
    with open(osp.join(out_dir, 'modelnet40_shape_names.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')
    for split, ids in splits.items():
        with open(osp.join(out_dir, f'modelnet40_{split}.txt'), 'w') as f:
            f.write('\n'.join(ids) + '\n')
    with open(osp.join(out_dir, SYNTHETIC_MARKER), 'w') as f:
        f.write(
            BANNER + f'\nclasses={len(classes)} train={len(splits["train"])}'
            f' test={len(splits["test"])} points={num_points} seed={seed}\n')
    summary = dict(
        classes=len(classes),
        train=len(splits['train']),
        test=len(splits['test']))
    if log:
        log(f'wrote SYNTHETIC ModelNet-format data to {out_dir}: {summary} '
            f'({num_points} points per shape)')
        log(BANNER)
    return summary


def is_synthetic(data_root: str) -> bool:
    """Whether ``data_root`` was written by write_synthetic_modelnet."""
    return osp.isfile(osp.join(data_root, SYNTHETIC_MARKER))
