"""Procedural humanoid surface behind :mod:`humanbench.bodymodels.synthetic`.

The surface is assembled from rings (closed vertex loops) joined by triangle
strips.  Branches come from cutting a loop with chords (trunk -> legs,
trunk -> arms + neck, knuckles -> fingers) or from opening a one-strip hole in
a tube (thumb root, eyes, mouth).  Every operation keeps the surface an
oriented 2-manifold without creating handles, so Euler's formula fixes the
face count from the vertex count: a closed genus-0 piece has ``F = 2V - 4``,
each extra closed component costs 4 faces and a hole with a boundary of ``b``
edges costs ``b - 2`` faces.

Conventions: metres, y up, the body faces +z, its left side is +x.  A ring is
ordered right-handed about the direction in which its tube grows, which makes
every face wind counter-clockwise seen from outside.  Left limbs are built
directly; right limbs are their mirror images (x -> -x, ring order reversed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

FINGERS = ("index", "middle", "pinky", "ring", "thumb")
SMPLX_JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "jaw", "left_eye_smplhf", "right_eye_smplhf",
) + tuple(f"{side}_{f}{k}" for side in ("left", "right") for f in FINGERS for k in (1, 2, 3))
LABELS = SMPLX_JOINTS
LABEL_ID = {name: i for i, name in enumerate(LABELS)}
REGIONS = ("body", "head", "left_eye", "right_eye", "left_hand", "right_hand")
REGION_ID = {name: i for i, name in enumerate(REGIONS)}

X, Y, Z = np.eye(3)
MIRROR = np.array([-1.0, 1.0, 1.0])


@dataclass(frozen=True)
class BodySpec:
    """Scalar body proportions; 1.0 / 0.0 is the neutral adult."""

    stature: float = 1.0   # global scale about the pelvis
    leg: float = 1.0       # leg length
    arm: float = 1.0       # arm length
    torso: float = 1.0     # pelvis-to-neck length
    shoulder: float = 1.0  # shoulder breadth
    hip: float = 1.0       # pelvis breadth
    waist: float = 1.0     # waist breadth
    girth: float = 1.0     # all body radii (weight)
    limb: float = 1.0      # limb radii (muscle)
    belly: float = 0.0     # abdominal protrusion (m)
    chest: float = 0.0     # chest / bust projection (m)
    head: float = 1.0      # head size
    neck: float = 1.0      # neck length
    hand: float = 1.0      # hand size
    foot: float = 1.0      # foot size


@dataclass(frozen=True)
class Resolution:
    """Vertex counts of the rings of every part (topology only)."""

    trunk: tuple[int, ...]         # ring sizes from the crotch ring to the armpit ring
    neck: tuple[int, int, int]     # (blend rings, neck rings, ring size)
    head: tuple[int, int]          # (rings, ring size)
    arm: tuple[int, int]           # (rings shoulder..wrist, ring size)
    palm: int                      # ring size of the 4 palm rings
    finger: tuple[int, int]        # (rings, ring size) per finger incl. thumb
    leg: tuple[int, int]           # (rings hip..ankle, ring size)
    foot: tuple[int, int]          # (heel fan rings, forefoot rings)
    chord: tuple[int, int]         # interior vertices of (crotch, shoulder) chords
    face_holes: bool = False       # SMPL-X: mouth slit and eye openings
    eyeballs: tuple[int, int] = (0, 0)  # (rings, ring size) of each eyeball, 0 = none


@dataclass
class Humanoid:
    """Output of :func:`build_humanoid`; arrays indexed by vertex id."""

    verts: np.ndarray      # (V, 3) float64
    faces: np.ndarray      # (F, 3) int64
    label: np.ndarray      # (V,) int, index into LABELS: rigid part of each vertex
    region: np.ndarray     # (V,) int, index into REGIONS
    joints: dict[str, np.ndarray] = field(default_factory=dict)     # name -> (3,)
    points: dict[str, np.ndarray] = field(default_factory=dict)     # surface landmarks -> (3,)
    tips: dict[str, int] = field(default_factory=dict)              # name -> vertex id


# --------------------------------------------------------------------------- mesh builder
class MeshBuilder:
    """Accumulates vertices, per-vertex tags and outward-wound triangles."""

    def __init__(self, with_faces: bool = True, capacity: int = 16000) -> None:
        self.with_faces = with_faces
        self.pos = np.zeros((capacity, 3))
        self.label = np.zeros(capacity, dtype=np.int64)
        self.region = np.zeros(capacity, dtype=np.int64)
        self.faces: list[np.ndarray] = []
        self.n = 0

    def add(self, pts: np.ndarray, label: np.ndarray | str, region: str) -> np.ndarray:
        """Append (k, 3) points; returns their (k,) ids."""
        pts = np.atleast_2d(pts)
        ids = np.arange(self.n, self.n + len(pts))
        self.pos[ids] = pts
        self.label[ids] = LABEL_ID[label] if isinstance(label, str) else label
        self.region[ids] = REGION_ID[region]
        self.n += len(pts)
        return ids

    def loft(self, a: np.ndarray, b: np.ndarray, axis: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        """Join loop ``a`` to the next loop ``b`` (any sizes), merging by angle about ``axis``."""
        if not self.with_faces:
            return
        alpha, a = _polar(self.pos[a], a, axis)
        beta, b = _polar(self.pos[b], b, axis)
        m, n = len(a), len(b)
        keys = np.concatenate([np.append(alpha[1:], alpha[0] + 2 * np.pi),
                               np.append(beta[1:], beta[0] + 2 * np.pi)])
        is_a = np.argsort(keys, kind="stable") < m
        i = np.cumsum(is_a) - is_a
        j = np.cumsum(~is_a) - ~is_a
        tri_a = np.stack([a[i % m], a[(i + 1) % m], b[j % n]], 1)
        tri_b = np.stack([a[i % m], b[(j + 1) % n], b[j % n]], 1)
        self.faces.append(np.where(is_a[:, None], tri_a, tri_b))

    def strip(self, a: np.ndarray, b: np.ndarray, holes: tuple[tuple[int, int], ...] = ()) -> list[np.ndarray]:
        """Quad strip between aligned equal-size loops; each hole ``(k0, k)`` leaves k columns open.

        Returns the holes' boundary loops, oriented like the faces they replace.
        """
        n = len(a)
        cols = np.arange(n)
        for k0, k in holes:
            cols = np.setdiff1d(cols, (k0 + np.arange(k)) % n)
        nxt = (cols + 1) % n
        self.faces.append(np.stack([a[cols], a[nxt], b[cols]], 1))
        self.faces.append(np.stack([a[nxt], b[nxt], b[cols]], 1))
        loops = []
        for k0, k in holes:
            t = np.arange(k + 1)
            loops.append(np.concatenate([a[(k0 + t) % n], b[(k0 + k - t) % n]]))
        return loops

    def cap(self, loop: np.ndarray, pole: np.ndarray, label: str, region: str, end: bool = True) -> int:
        """Close ``loop`` with a fan to a new pole vertex after (end) or before it."""
        p = int(self.add(pole, label, region)[0])
        if not self.with_faces:
            return p
        nxt = np.roll(loop, -1)
        tri = np.stack([loop, nxt, np.full_like(loop, p)], 1) if end else \
            np.stack([np.full_like(loop, p), nxt, loop], 1)
        self.faces.append(tri)
        return p

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (V, 3) positions and (F, 3) faces (empty without faces)."""
        faces = np.concatenate(self.faces) if self.faces else np.zeros((0, 3))
        return self.pos[: self.n].copy(), faces.astype(np.int64)


def _polar(pts: np.ndarray, ids: np.ndarray, axis: tuple[np.ndarray, np.ndarray, np.ndarray]):
    """Angles (k,) of loop points about axis=(centre, f, u), unwrapped from the smallest one."""
    c, f, u = axis
    v = _cross(f, u)
    d = pts - c
    ang = np.arctan2(d @ v, d @ u) % (2 * np.pi)
    start = int(np.argmin(ang))
    ang = np.unwrap(np.roll(ang, -start))
    return np.maximum.accumulate(ang), np.roll(ids, -start)


def cut(loop: np.ndarray, a: int, b: int, chord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a loop by a chord from vertex a to vertex b through the ``chord`` ids.

    Returns (arc a->b + chord back, arc b->a + chord), both oriented like ``loop``.
    """
    loop = np.asarray(loop)
    ia, ib = int(np.flatnonzero(loop == a)[0]), int(np.flatnonzero(loop == b)[0])
    rolled = np.roll(loop, -ia)
    k = (ib - ia) % len(loop)
    return (np.concatenate([rolled[: k + 1], chord[::-1]]),
            np.concatenate([rolled[k:], rolled[:1], chord]))


# --------------------------------------------------------------------------- geometry helpers
def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (faster than np.cross for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _unit(v: np.ndarray) -> np.ndarray:
    """A 3-vector scaled to unit length."""
    return v / np.sqrt(v @ v)


def frame(f: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (f, u, v) with u closest to ``up`` and u x v = f."""
    f = _unit(f)
    u = _unit(up - (up @ f) * f)
    return f, u, _cross(f, u)


def ring(c: np.ndarray, f: np.ndarray, up: np.ndarray, theta: np.ndarray,
         ru: tuple[float, float], rv: tuple[float, float], expo: float = 1.0) -> np.ndarray:
    """(n, 3) points of a super-ellipse about centre c, right-handed about f.

    ``ru``/``rv`` give the (positive, negative) half-axes along u and v.
    """
    _, u, v = frame(f, up)
    cu, sv = np.cos(theta), np.sin(theta)
    a = np.where(cu >= 0, ru[0], ru[1]) * np.sign(cu) * np.abs(cu) ** expo
    b = np.where(sv >= 0, rv[0], rv[1]) * np.sign(sv) * np.abs(sv) ** expo
    return c + a[:, None] * u + b[:, None] * v


def resample(pts: np.ndarray, axis: tuple[np.ndarray, np.ndarray, np.ndarray], theta: np.ndarray) -> np.ndarray:
    """Points of a loop interpolated at angles ``theta`` about axis (periodic, linear)."""
    ang, order = _polar(pts, np.arange(len(pts)), axis)
    p = pts[order]
    ang = np.append(ang, ang[0] + 2 * np.pi)
    p = np.vstack([p, p[:1]])
    t = (theta - ang[0]) % (2 * np.pi) + ang[0]
    return np.stack([np.interp(t, ang, p[:, k]) for k in range(3)], 1)


def _thetas(n: int, phase: float = 0.0) -> np.ndarray:
    """(n,) evenly spaced ring angles starting at ``phase``."""
    return phase + 2 * np.pi * np.arange(n) / n


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -k * np.logaddexp(-a / k, -b / k)


def _interp_rows(table: np.ndarray, x: float | np.ndarray) -> np.ndarray:
    """Linear interpolation of every column of ``table[:, 1:]`` at x (column 0 = abscissa)."""
    return np.array([np.interp(x, table[:, 0], table[:, k]) for k in range(1, table.shape[1])])


# --------------------------------------------------------------------------- body tables
# Trunk rows: (y above pelvis, half width, front depth, back depth, centre z).
TRUNK = np.array([
    [-0.110, 0.158, 0.075, 0.105, 0.015],
    [-0.055, 0.160, 0.085, 0.108, 0.015],
    [0.025, 0.150, 0.095, 0.092, 0.010],
    [0.105, 0.138, 0.098, 0.080, 0.005],
    [0.175, 0.134, 0.098, 0.078, 0.000],
    [0.245, 0.140, 0.100, 0.085, 0.000],
    [0.305, 0.150, 0.104, 0.092, -0.005],
    [0.355, 0.156, 0.104, 0.092, -0.010],
])
# Leg rows: (distance from hip, half width, front, back, outward shift, forward shift).
LEG = np.array([
    [0.10, 0.080, 0.082, 0.088, 0.012, 0.000],
    [0.17, 0.074, 0.078, 0.080, 0.008, 0.000],
    [0.25, 0.066, 0.070, 0.070, 0.004, 0.000],
    [0.33, 0.057, 0.061, 0.058, 0.000, 0.000],
    [0.39, 0.051, 0.057, 0.050, 0.000, 0.000],
    [0.44, 0.050, 0.050, 0.058, 0.000, 0.000],
    [0.51, 0.052, 0.045, 0.068, 0.000, 0.000],
    [0.60, 0.046, 0.040, 0.058, 0.000, 0.000],
    [0.69, 0.037, 0.036, 0.044, 0.000, 0.000],
    [0.76, 0.031, 0.034, 0.036, 0.000, 0.000],
    [0.79, 0.030, 0.035, 0.035, 0.000, 0.000],
])
# Arm rows: (distance from shoulder, up, down, front, back, centre lift).
ARM = np.array([
    [0.020, 0.056, 0.052, 0.056, 0.056, 0.000],
    [0.070, 0.052, 0.048, 0.050, 0.052, -0.002],
    [0.120, 0.047, 0.044, 0.045, 0.047, -0.004],
    [0.180, 0.042, 0.040, 0.041, 0.042, -0.004],
    [0.230, 0.038, 0.037, 0.038, 0.038, -0.003],
    [0.255, 0.036, 0.036, 0.040, 0.036, -0.002],
    [0.290, 0.038, 0.037, 0.044, 0.040, 0.000],
    [0.350, 0.035, 0.034, 0.040, 0.036, 0.000],
    [0.420, 0.028, 0.027, 0.032, 0.030, 0.000],
    [0.505, 0.020, 0.020, 0.028, 0.028, 0.000],
])
# Palm rings: (distance from wrist, up, down, front, back).
PALM = np.array([
    [0.015, 0.018, 0.017, 0.033, 0.032],
    [0.040, 0.017, 0.016, 0.041, 0.039],
    [0.065, 0.016, 0.015, 0.044, 0.042],
    [0.085, 0.014, 0.013, 0.044, 0.042],
])
# Head rows: (y above head joint, half width, front, back, centre z rel. head joint).
HEAD = np.array([
    [-0.050, 0.060, 0.075, 0.063, -0.035],
    [-0.045, 0.063, 0.092, 0.065, -0.032],
    [-0.035, 0.066, 0.100, 0.068, -0.030],
    [-0.015, 0.070, 0.100, 0.075, -0.030],
    [0.015, 0.074, 0.100, 0.088, -0.030],
    [0.045, 0.077, 0.100, 0.095, -0.030],
    [0.080, 0.079, 0.096, 0.099, -0.030],
    [0.110, 0.078, 0.092, 0.099, -0.033],
    [0.135, 0.070, 0.080, 0.090, -0.035],
    [0.150, 0.058, 0.064, 0.075, -0.035],
    [0.160, 0.040, 0.044, 0.053, -0.035],
    [0.167, 0.022, 0.024, 0.030, -0.035],
])
HEAD_TOP = 0.170
# Face relief: (azimuth, height above head joint, sigma azimuth, sigma height, amplitude m).
FACE_BUMPS = np.array([
    [0.40, 0.080, 0.16, 0.012, -0.007], [-0.40, 0.080, 0.16, 0.012, -0.007],    # eye sockets
    [0.36, 0.098, 0.22, 0.009, 0.004], [-0.36, 0.098, 0.22, 0.009, 0.004],      # brow ridge
    [0.70, 0.055, 0.25, 0.018, 0.005], [-0.70, 0.055, 0.25, 0.018, 0.005],      # cheekbones
    [0.00, 0.019, 0.25, 0.006, 0.006], [0.00, 0.003, 0.22, 0.006, 0.005],       # lips
    [0.00, 0.011, 0.30, 0.003, -0.003], [0.00, -0.028, 0.22, 0.012, 0.006],     # mouth line, chin
    [1.62, 0.055, 0.13, 0.022, 0.014], [-1.62, 0.055, 0.13, 0.022, 0.014],      # ears
])
NOSE = np.array([[0.026, 0.0], [0.033, 0.012], [0.045, 0.024], [0.060, 0.015], [0.078, 0.008], [0.090, 0.0]])
EYE_Y, EYE_AZ, MOUTH_Y = 0.080, 0.40, 0.011
# Fingers (left hand): (MCP offset along the hand from the knuckle line, z, spread angle,
# phalanx lengths, half width, half thickness).
FINGER_GEOM = {
    "index": (-0.004, 0.027, 0.07, (0.043, 0.025, 0.022), 0.0095, 0.0085),
    "middle": (0.000, 0.008, 0.0, (0.047, 0.029, 0.024), 0.0098, 0.0088),
    "ring": (-0.003, -0.011, -0.07, (0.044, 0.028, 0.023), 0.0092, 0.0082),
    "pinky": (-0.012, -0.029, -0.16, (0.034, 0.020, 0.021), 0.0082, 0.0074),
}
THUMB_GEOM = ((0.6, -0.15, 0.78), (0.048, 0.034, 0.030), 0.0125, 0.0105)


def skeleton(spec: BodySpec) -> dict[str, np.ndarray]:
    """Rest positions (before the stature scale) of the 22 body joints, left side +x."""
    t, sh, hp, lg, am = spec.torso, spec.shoulder, spec.hip, spec.leg, spec.arm
    j = {"pelvis": np.array([0.0, -0.225, 0.02])}
    j["spine1"] = j["pelvis"] + np.array([0.0, 0.115, -0.015]) * t
    j["spine2"] = j["spine1"] + np.array([0.0, 0.135, 0.0]) * t
    j["spine3"] = j["spine2"] + np.array([0.0, 0.055, 0.025]) * t
    j["neck"] = j["spine3"] + np.array([0.0, 0.215 * t, -0.04])
    j["head"] = j["neck"] + np.array([0.0, 0.07 * spec.neck, 0.05])
    for s, side in ((1.0, "left"), (-1.0, "right")):
        m = np.array([s, 1.0, 1.0])
        hip = j["pelvis"] + m * [0.068 * hp, -0.085, -0.005]
        knee = hip + m * [0.035 * hp, -0.39 * lg, -0.005]
        ankle = knee + m * [-0.015, -0.40 * lg, -0.035]
        collar = j["spine3"] + m * [0.075 * sh, 0.125 * t, -0.035]
        shoulder = collar + m * [0.095 * sh, 0.025, -0.01]
        elbow = shoulder + m * [0.255 * am, -0.012, -0.02]
        wrist = elbow + m * [0.25 * am, 0.008, 0.0]
        j.update({f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle,
                  f"{side}_collar": collar, f"{side}_shoulder": shoulder,
                  f"{side}_elbow": elbow, f"{side}_wrist": wrist})
    return j


# --------------------------------------------------------------------------- assembly
class _Assembler:
    """Builds one humanoid; topology depends only on the Resolution."""

    def __init__(self, spec: BodySpec, res: Resolution, with_faces: bool) -> None:
        self.spec, self.res = spec, res
        self.b = MeshBuilder(with_faces)
        self.j = skeleton(spec)
        self.points: dict[str, np.ndarray] = {}
        self.tips: dict[str, int] = {}

    # ---- helpers
    def side_ring(self, pts: np.ndarray, s: float) -> np.ndarray:
        """Left-side ring as is; right side mirrored and reversed (keeps orientation)."""
        return pts if s > 0 else (pts * MIRROR)[::-1]

    def add_ring(self, pts: np.ndarray, s: float, label: str, region: str) -> np.ndarray:
        """Add a left-side ring on side s; returns its ids."""
        return self.b.add(self.side_ring(pts, s), label, region)

    def tube(self, prev: np.ndarray, rings: list[tuple[np.ndarray, str]], axes, s: float, region: str) -> np.ndarray:
        """Add left-side rings (pts, label), loft each to its predecessor; returns the last loop."""
        for (pts, label), (c, f, u) in zip(rings, axes):
            ids = self.add_ring(pts, s, label, region)
            m = MIRROR if s < 0 else np.ones(3)
            self.b.loft(prev, ids, (c * m, f * m, u * m))
            prev = ids
        return prev

    # ---- trunk
    def trunk(self) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal rings from the crotch to the armpits; returns (bottom ring, top ring)."""
        sp, pel = self.spec, self.j["pelvis"]
        t = TRUNK.copy()
        t[:, 0] *= sp.torso
        n_rings = len(self.res.trunk)
        ys = np.linspace(t[0, 0], t[-1, 0], n_rings)
        loops = []
        for y, n in zip(ys, self.res.trunk):
            hx, zf, zb, cz = _interp_rows(t, y)
            w_hip = np.clip((0.06 - y) / 0.12, 0, 1)
            w_waist = np.exp(-((y - 0.15) / 0.07) ** 2)
            w_sh = np.clip((y - 0.2) / 0.15, 0, 1)
            hx *= sp.girth * (1 + (sp.hip - 1) * w_hip + (sp.waist - 1) * w_waist + (sp.shoulder - 1) * w_sh)
            zf = zf * sp.girth + sp.belly * np.exp(-((y - 0.12) / 0.08) ** 2)
            zb *= sp.girth
            th = _thetas(n)
            c = pel + np.array([0.0, y, cz])
            pts = ring(c, Y, Z, th, (zf, zb), (hx, hx), expo=0.85)
            bust = sp.chest * np.exp(-((y - 0.30 * sp.torso) / 0.045) ** 2)
            bump = bust * (np.exp(-((th - 0.45) / 0.3) ** 2) + np.exp(-((th - 2 * np.pi + 0.45) / 0.3) ** 2))
            pts[:, 2] += bump
            ids = self.b.add(pts, self.spine_label(pel[1] + y), "body")
            if loops:
                self.b.loft(loops[-1], ids, (c, Y, Z))
            loops.append(ids)
        return loops[0], loops[-1]

    def spine_label(self, y: float) -> str:
        """Rigid part of a trunk ring at height y."""
        for name in ("spine3", "spine2", "spine1"):
            if y >= self.j[name][1]:
                return name
        return "pelvis"

    # ---- legs
    def legs(self, bottom: np.ndarray) -> None:
        """Cut the crotch ring front-to-back through a crotch chord; builds both legs."""
        b, n = self.b, len(bottom)
        front, back = bottom[0], bottom[n // 2]
        pf, pb = b.pos[front], b.pos[back]
        m = self.res.chord[0]
        tt = np.arange(1, m + 1) / (m + 1)
        pts = (1 - tt)[:, None] * pf + tt[:, None] * pb
        pts[:, 0] = 0.0
        pts[:, 1] -= 0.045 * np.sin(np.pi * tt) + 0.005
        chord = b.add(pts, "pelvis", "body")
        right, left = cut(bottom[::-1], front, back, chord)
        self.leg(left, 1.0)
        self.leg(right, -1.0)

    def leg(self, root: np.ndarray, s: float) -> None:
        """Thigh and shank rings along hip -> knee -> ankle, then the foot."""
        sp, side = self.spec, "left" if s > 0 else "right"
        hip, knee, ankle = (self.j[f"left_{k}"] for k in ("hip", "knee", "ankle"))
        seg = [np.linalg.norm(knee - hip), np.linalg.norm(ankle - knee)]
        table = LEG.copy()
        table[:, 0] *= sp.leg
        table[:, 1:4] *= sp.girth * sp.limb ** 0.5
        n_r, n = self.res.leg
        ds = np.linspace(table[0, 0], table[-1, 0], n_r)
        rings, axes = [], []
        for d in ds:
            w, zf, zb, ox, oz = _interp_rows(table, d)
            if d < seg[0]:
                c, f, lab = hip + (knee - hip) * d / seg[0], knee - hip, "hip"
            else:
                c, f, lab = knee + (ankle - knee) * (d - seg[0]) / seg[1], ankle - knee, "knee"
            c = c + np.array([ox, 0.0, oz])
            rings.append((ring(c, f, Z, _thetas(n), (zf, zb), (w, w), 0.9), f"{side}_{lab}"))
            axes.append((c, _unit(f), frame(f, Z)[1]))
        # blend from the cut loop to the first thigh ring
        first = rings[0][0]
        c0, f0, u0 = axes[0]
        lift = c0 + f0 * -0.035
        mid = 0.5 * (resample(self.side_ring(self.b.pos[root], s), (lift, f0, u0), _thetas(n)) + first)
        rings.insert(0, (mid - f0 * 0.01, f"{side}_hip"))
        axes.insert(0, (lift, f0, u0))
        last = self.tube(root, rings, axes, s, "body")
        self.foot(last, rings[-1][0], s)

    def foot(self, prev: np.ndarray, ankle_ring: np.ndarray, s: float) -> None:
        """Heel rings fanning about a hinge in front of the ankle, forefoot rings, toe cap."""
        side, fs, aj = "left" if s > 0 else "right", self.spec.foot, self.j["left_ankle"]
        y_sole, z_heel = aj[1] - 0.072 * fs, aj[2] - 0.05 * fs
        foot_joint = np.array([aj[0] + 0.02, y_sole + 0.022, z_heel + 0.185 * fs])
        self.j[f"{side}_foot"] = foot_joint * [s, 1, 1]
        hinge, heel = self.heel_rings(ankle_ring, y_sole, z_heel, side)
        fore, (tip, h) = self.forefoot_rings(hinge, y_sole, z_heel, foot_joint[2], side)
        last = self.tube(prev, heel[0] + fore[0], heel[1] + fore[1], s, "body")
        m = MIRROR if s < 0 else np.ones(3)
        self.b.cap(last, (tip - Y * 0.3 * h) * m, f"{side}_foot", "body")
        prefix = "L" if s > 0 else "R"
        self.points[prefix + "Heel"] = np.array([aj[0], y_sole + 0.012, z_heel + 0.004]) * m
        for name, off in (("BigToe", [-0.022, 0.0, 0.0]), ("SmallToe", [0.03, 0.0, -0.03])):
            p = tip + np.array(off) * fs
            p[1] = y_sole + 0.012
            self.points[prefix + name] = p * m

    def heel_rings(self, ankle_ring: np.ndarray, y_sole: float, z_heel: float, side: str):
        """Rings in planes through a hinge (x-parallel line in front of the ankle), from down to forward."""
        fs, n, n_fan = self.spec.foot, self.res.leg[1], self.res.foot[0]
        ac = ankle_ring.mean(0)
        half_w = 0.5 * np.ptp(ankle_ring[:, 0])
        eps = 0.008
        hinge = np.array([ac[0], ac[1], ac[2] + 0.5 * np.ptp(ankle_ring[:, 2]) + eps])
        rings, axes = [], []
        for phi in 0.5 * np.pi * np.arange(1, n_fan + 1) / n_fan:
            d = np.array([0.0, -np.sin(phi), -np.cos(phi)])
            to_sole = (hinge[1] - y_sole) / max(np.sin(phi), 1e-6)
            to_heel = (hinge[2] - z_heel) / max(np.cos(phi), 1e-6)
            half = 0.5 * (_smin(to_sole, to_heel, 0.012) - eps)
            w = half_w + (0.040 * fs - half_w) * np.sin(phi) ** 2
            c = hinge + d * (eps + half)
            fwd = np.array([0.0, -np.cos(phi), np.sin(phi)])
            rings.append((ring(c, fwd, -d, _thetas(n), (half, half), (w, w), 0.8), f"{side}_ankle"))
            axes.append((c, fwd, -d))
        return hinge, (rings, axes)

    def forefoot_rings(self, hinge: np.ndarray, y_sole: float, z_heel: float, z_joint: float, side: str):
        """Forward rings from the instep to the toes plus two rounding rings; returns them, (tip, height)."""
        fs, n, n_fwd = self.spec.foot, self.res.leg[1], self.res.foot[1]
        z_toe = z_heel + 0.255 * fs
        rings, axes = [], []
        for z in np.linspace(hinge[2] + 0.02 * fs, z_toe - 0.03 * fs, n_fwd):
            t = (z - hinge[2]) / (z_toe - hinge[2])
            h = np.interp(t, [0, 0.55, 1], [hinge[1] - y_sole, 0.042 * fs, 0.024 * fs])
            w = np.interp(t, [0, 0.6, 1], [0.040, 0.048, 0.043]) * fs
            c = np.array([hinge[0] + 0.012 * t, y_sole + 0.5 * h, z])
            lab = "foot" if z > z_joint - 0.015 * fs else "ankle"
            rings.append((ring(c, Z, Y, _thetas(n), (0.5 * h, 0.5 * h), (w, w), 0.7), f"{side}_{lab}"))
            axes.append((c, Z, Y))
        r_t = 0.03 * fs
        for alpha in (0.45, 0.9):
            cc = c + Z * (r_t * np.sin(alpha)) - Y * (0.25 * h * np.sin(alpha))
            rings.append((ring(cc, Z, Y, _thetas(n), (0.5 * h * np.cos(alpha),) * 2, (w * np.cos(alpha),) * 2, 0.8),
                          f"{side}_foot"))
            axes.append((cc, Z, Y))
        return (rings, axes), (c + Z * r_t, h)

    # ---- arms and hands
    def arms(self, top: np.ndarray) -> np.ndarray:
        """Cut the armpit ring into both arm roots and the neck root; builds the arms."""
        b, sp = self.b, self.spec
        th = _thetas(len(top))
        a = int(top[np.argmin(np.abs(th - np.radians(55)))])
        z = int(top[np.argmin(np.abs(th - np.radians(125)))])
        m = self.res.chord[1]
        al = np.pi * np.arange(1, m + 1) / (m + 1)
        pa, pz = b.pos[a], b.pos[z]
        pts = np.stack([np.full(m, 0.148 * sp.shoulder * sp.girth ** 0.3),
                        pa[1] + 0.125 * sp.torso * np.sin(al),
                        pa[2] + (pz[2] - pa[2]) * (1 - np.cos(al)) / 2], 1)
        left_chord = b.add(pts, "left_collar", "body")
        right_chord = b.add((pts * MIRROR)[::-1], "right_collar", "body")
        mirror_id = {int(i): int(top[(-k) % len(top)]) for k, i in enumerate(top)}
        left, rest = cut(top, a, z, left_chord)
        right, neck = cut(rest, mirror_id[z], mirror_id[a], right_chord)
        self.arm(left, 1.0)
        self.arm(right, -1.0)
        return neck

    def arm(self, root: np.ndarray, s: float) -> None:
        """Arm rings along shoulder -> elbow -> wrist, then the hand."""
        sp, side = self.spec, "left" if s > 0 else "right"
        sh, el, wr = (self.j[f"left_{k}"] for k in ("shoulder", "elbow", "wrist"))
        seg = [np.linalg.norm(el - sh), np.linalg.norm(wr - el)]
        table = ARM.copy()
        table[:, 0] = np.interp(table[:, 0], [0, 0.255, 0.505], [0, seg[0], seg[0] + seg[1]])
        table[:, 1:5] *= sp.girth ** 0.7 * sp.limb ** 0.5
        n_r, n = self.res.arm
        rings, axes = [], []
        for d in np.linspace(table[0, 0], table[-1, 0], n_r):
            up, down, fr, bk, lift = _interp_rows(table, d)
            if d < seg[0]:
                c, f, lab = sh + (el - sh) * d / seg[0], el - sh, "shoulder"
            else:
                c, f, lab = el + (wr - el) * (d - seg[0]) / seg[1], wr - el, "elbow"
            c = c + Y * lift
            rings.append((ring(c, f, Y, _thetas(n), (up, down), (fr, bk), 0.95), f"{side}_{lab}"))
            axes.append((c, _unit(f), frame(f, Y)[1]))
        c0, f0, u0 = axes[0]
        mid_c = c0 - f0 * 0.03
        loop = resample(self.side_ring(self.b.pos[root], s), (mid_c, f0, u0), _thetas(n))
        rings.insert(0, (0.5 * (loop + rings[0][0]) - f0 * 0.006, f"{side}_collar"))
        axes.insert(0, (mid_c, f0, u0))
        rings[-1] = (rings[-1][0], f"{side}_wrist")
        last = self.tube(root, rings, axes, s, "body")
        self.hand(last, wr, _unit(wr - el), s)

    def hand(self, prev: np.ndarray, wr: np.ndarray, hdir: np.ndarray, s: float) -> None:
        """Four palm rings, a thumb through a palm hole, four fingers split off the knuckle ring."""
        sp, side, b = self.spec, "left" if s > 0 else "right", self.b
        hs = sp.hand
        m = MIRROR if s < 0 else np.ones(3)
        n = self.res.palm
        palm = []
        for d, up, down, fr, bk in PALM:
            c = wr + hdir * d * hs
            ids = self.add_ring(ring(c, hdir, Y, _thetas(n), (up * hs, down * hs), (fr * hs, bk * hs), 0.6),
                                s, f"{side}_wrist", f"{side}_hand")
            if not palm:
                b.loft(prev, ids, (c * m, hdir * m, Y))
            palm.append((ids, c))
        # thumb hole: 3 columns of the first palm strip around the front-palmar direction
        k0 = int(round(np.arctan2(0.9, -0.45) / (2 * np.pi) * n - 0.5)) - 1
        if s < 0:
            k0 = n - 4 - k0
        hole = b.strip(palm[0][0], palm[1][0], ((k0, 3),))[0]
        b.strip(palm[1][0], palm[2][0])
        b.strip(palm[2][0], palm[3][0])
        tdir, lengths, hw, ht = THUMB_GEOM
        tdir = _unit(np.array(tdir))
        centre = b.pos[hole].mean(0) * m
        self.digit(hole, centre - tdir * 0.018 * hs, tdir, np.array(lengths) * hs, hw * hs, ht * hs, s, "thumb")
        # knuckle ring -> four fingers through three webs
        knuckle, kc = palm[3]
        loop = knuckle
        for first, second in (("index", "middle"), ("middle", "ring"), ("ring", "pinky")):
            zb = 0.5 * (FINGER_GEOM[first][1] + FINGER_GEOM[second][1]) * hs
            pts = b.pos[knuckle]
            dorsal = knuckle[np.argmin(np.abs(pts[:, 2] - zb) + 10 * (pts[:, 1] < kc[1]))]
            palmar = knuckle[np.argmin(np.abs(pts[:, 2] - zb) + 10 * (pts[:, 1] > kc[1]))]
            web = b.add((kc + hdir * 0.012 * hs + Z * (zb - kc[2])) * m, f"{side}_wrist", f"{side}_hand")
            if s > 0:
                finger_loop, loop = cut(loop, int(dorsal), int(palmar), web)
            else:
                finger_loop, loop = cut(loop, int(palmar), int(dorsal), web)
            self.finger(finger_loop, kc, hdir, first, s)
        self.finger(loop, kc, hdir, "pinky", s)
        self.j[f"{side}_hand"] = (kc - hdir * 0.01 * hs) * m

    def finger(self, root: np.ndarray, kc: np.ndarray, hdir: np.ndarray, name: str, s: float) -> None:
        """One finger rooted at its knuckle loop (kc: knuckle ring centre, hdir: hand direction)."""
        off, z, spread, lengths, hw, ht = FINGER_GEOM[name]
        hs = self.spec.hand
        base = kc + hdir * (off - 0.003) * hs
        base[2] = kc[2] + z * hs
        c, sn = np.cos(spread), np.sin(spread)
        fdir = _unit(np.array([hdir[0] * c - hdir[2] * sn, hdir[1], hdir[0] * sn + hdir[2] * c]))
        self.digit(root, base, fdir, np.array(lengths) * hs, hw * hs, ht * hs, s, name)

    def digit(self, root: np.ndarray, base: np.ndarray, fdir: np.ndarray, lengths: np.ndarray,
              hw: float, ht: float, s: float, name: str) -> None:
        """Finger/thumb tube from its root loop, three joints, rounded tip (left-side coordinates)."""
        side = "left" if s > 0 else "right"
        n_r, n = self.res.finger
        cum = np.concatenate([[0.0], np.cumsum(lengths)])
        total, r_tip = cum[-1], 0.8 * ht
        rings, axes = [], []

        def radius(d: float) -> tuple[float, float]:
            k = 1.0 - 0.22 * d / total
            return ht * k, hw * k

        for d in np.linspace(0.016 if name != "thumb" else 0.03, total - r_tip, n_r):
            rt, rw = radius(d)
            if name == "thumb":
                rt, rw = rt * (1 + 0.3 * np.exp(-d / 0.02)), rw * (1 + 0.3 * np.exp(-d / 0.02))
            k = min(int(np.searchsorted(cum, d, side="right")), 3)
            c = base + fdir * d
            rings.append((ring(c, fdir, Y, _thetas(n), (rt, rt), (rw, rw)), f"{side}_{name}{k}"))
            axes.append((c, fdir, frame(fdir, Y)[1]))
        rt, rw = radius(total - r_tip)
        for alpha in (0.6, 1.1):
            c = base + fdir * (total - r_tip + r_tip * np.sin(alpha))
            rings.append((ring(c, fdir, Y, _thetas(n), (rt * np.cos(alpha),) * 2, (rw * np.cos(alpha),) * 2),
                          f"{side}_{name}3"))
            axes.append((c, fdir, frame(fdir, Y)[1]))
        last = self.tube(root, rings, axes, s, f"{side}_hand")
        m = MIRROR if s < 0 else np.ones(3)
        self.tips[f"{side}_{name}"] = self.b.cap(last, (base + fdir * total) * m, f"{side}_{name}3", f"{side}_hand")
        for k in range(3):
            self.j[f"{side}_{name}{k + 1}"] = (base + fdir * cum[k]) * m

    # ---- neck, head, eyes
    def head_point(self, theta: np.ndarray, y_rel: np.ndarray) -> np.ndarray:
        """Head surface points (k, 3) at azimuth theta (0 = front, +x = left) and height above the head joint."""
        hs, hj = self.spec.head, self.j["head"]
        rows = np.vstack([HEAD, [HEAD_TOP, 0.0, 0.0, 0.0, -0.035]])
        yr = np.asarray(y_rel, dtype=float) / hs
        hx, zf, zb, cz = (np.interp(yr, rows[:, 0], rows[:, k]) for k in range(1, 5))
        th = np.asarray(theta, dtype=float)
        cu, sv = np.cos(th), np.sin(th)
        z = np.where(cu >= 0, zf, zb) * np.sign(cu) * np.abs(cu) ** 0.9
        x = hx * np.sign(sv) * np.abs(sv) ** 0.9
        wrapped = (th + np.pi) % (2 * np.pi) - np.pi
        bump = np.zeros_like(yr)
        for az, y0, sa, sy, amp in FACE_BUMPS:
            bump = bump + amp * np.exp(-((wrapped - az) / sa) ** 2 - ((yr - y0) / sy) ** 2)
        bump = bump + np.interp(yr, NOSE[:, 0], NOSE[:, 1], left=0, right=0) * np.exp(-(wrapped / 0.085) ** 2)
        pts = np.stack([x + bump * sv, yr, cz + z + bump * cu], -1) * hs
        return hj + pts

    def neck_head(self, root: np.ndarray) -> None:
        """Shoulder-to-neck blend rings, neck rings, then the head."""
        sp, b = self.spec, self.b
        hj = self.j["head"]
        n_blend, n_neck, n = self.res.neck
        neck_rows = np.array([[-0.095, 0.062, 0.064, 0.070, -0.045],
                              [-0.075, 0.056, 0.053, 0.062, -0.045],
                              [-0.060, 0.057, 0.055, 0.062, -0.042]])
        neck_y = np.linspace(-0.095, -0.06, n_neck) * sp.neck
        th = _thetas(n)

        def neck_ring(yr: float) -> np.ndarray:
            hx, zf, zb, cz = _interp_rows(neck_rows, yr / sp.neck)
            g = sp.girth ** 0.5
            return ring(hj + np.array([0.0, yr, cz]), Y, Z, th, (zf * g, zb * g), (hx * g, hx * g))

        target = neck_ring(neck_y[0])
        axis = (np.array([0.0, b.pos[root][:, 1].mean(), hj[2] - 0.045]), Y, Z)
        loop = resample(b.pos[root], axis, th)
        prev = root
        for k in range(1, n_blend + 1):
            t = k / (n_blend + 1)
            sh, sv = t ** 2, 1 - (1 - t) ** 2
            pts = loop + (target - loop) * np.array([sh, sv, sh])
            labels = np.array([self.upper_label(p) for p in pts])
            ids = b.add(pts, labels, "body")
            b.loft(prev, ids, axis)
            prev = ids
        for yr in neck_y:
            pts = neck_ring(yr)
            ids = b.add(pts, np.array([self.upper_label(p) for p in pts]), "body")
            b.loft(prev, ids, (hj + Y * yr, Y, Z))
            prev = ids
        self.head(prev)

    def upper_label(self, p: np.ndarray) -> int:
        """Rigid part of a neck-tube point below the head."""
        if p[1] >= self.j["neck"][1]:
            return LABEL_ID["neck"]
        if abs(p[0]) > 0.07 * self.spec.shoulder:
            return LABEL_ID["left_collar" if p[0] > 0 else "right_collar"]
        return LABEL_ID["spine3"]

    def head_rows(self, n_rings: int) -> np.ndarray:
        """Heights (above the head joint) of the head rings, evenly spaced along the face profile."""
        hs = self.spec.head
        yy = np.linspace(HEAD[0, 0], HEAD_TOP, 400)
        front = np.interp(yy, np.append(HEAD[:, 0], HEAD_TOP), np.append(HEAD[:, 2] + HEAD[:, 4], -0.035))
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(yy), np.diff(front)))])
        return np.interp(np.arange(n_rings) / n_rings * arc[-1], arc, yy) * hs

    def head(self, prev: np.ndarray) -> None:
        """Head rings up to a crown pole (SMPL-X: mouth and eye openings, eyeballs) and landmarks."""
        b, hj, hs = self.b, self.j["head"], self.spec.head
        n_rings, n = self.res.head
        th = _thetas(n, phase=np.pi / n)
        ys = self.head_rows(n_rings)
        wrapped = (th + np.pi) % (2 * np.pi) - np.pi
        holes_at = {}
        if self.res.face_holes:
            step = 2 * np.pi / n
            c_eye = int(round(EYE_AZ / step - 2.5))
            holes_at[int(np.searchsorted(ys, EYE_Y * hs)) - 1] = [(c_eye, 4), (n - 5 - c_eye, 4)]
            holes_at[int(np.searchsorted(ys, MOUTH_Y * hs)) - 1] = [(n - 4, 7)]
        all_pts = self.head_point(np.tile(th, n_rings), np.repeat(ys, n)).reshape(n_rings, n, 3)
        rings = []
        for k, yr in enumerate(ys):
            ids = b.add(all_pts[k], self.head_labels(wrapped, yr / hs), "head")
            if rings:
                if k - 1 in holes_at:
                    b.strip(rings[-1], ids, holes_at[k - 1])
                else:
                    b.strip(rings[-1], ids)
            else:
                b.loft(prev, ids, (hj + Y * yr, Y, Z))
            rings.append(ids)
        self.tips["head_top"] = b.cap(rings[-1], self.head_point(np.zeros(1), np.full(1, HEAD_TOP * hs))[0],
                                      "head", "head")
        self.j["jaw"] = hj + np.array([0.0, 0.040, -0.020]) * hs
        for name, az, yr in (("nose", 0.0, 0.045), ("lear", 1.62, 0.055), ("rear", -1.62, 0.055),
                             ("leye", EYE_AZ, EYE_Y), ("reye", -EYE_AZ, EYE_Y)):
            self.points[name] = self.head_point(np.array([az]), np.array([yr * hs]))[0]
        if b.with_faces:
            self.face_landmarks()
        if self.res.eyeballs[0]:
            for s, side in ((1.0, "left"), (-1.0, "right")):
                self.eyeball(s, side)

    def head_labels(self, wrapped: np.ndarray, yr: float) -> np.ndarray:
        """Rigid part of head-ring points at azimuths ``wrapped`` and normalised height yr."""
        back = (1 - np.cos(wrapped)) / 2
        lab = np.where(yr > -0.055 + 0.055 * back, LABEL_ID["head"], LABEL_ID["neck"])
        jaw_line = MOUTH_Y + 0.03 * np.clip((np.abs(wrapped) - 0.3) / 0.9, 0, 1)
        is_jaw = (yr < jaw_line) & (np.abs(wrapped) < 1.35) & (lab == LABEL_ID["head"])
        return np.where(is_jaw, LABEL_ID["jaw"], lab)

    def eyeball(self, s: float, side: str) -> None:
        """A closed sphere behind the eye opening; its front pole is the pupil."""
        b, hs = self.b, self.spec.head
        n_r, n = self.res.eyeballs
        r = 0.0115 * hs
        surf = self.head_point(np.array([s * EYE_AZ]), np.array([EYE_Y * hs]))[0]
        c = surf - Z * (r + 0.0015 * hs)
        self.j[f"{side}_eye_smplhf"] = c
        label, region = f"{side}_eye_smplhf", f"{side}_eye"
        prev = None
        for k in range(1, n_r + 1):
            psi = np.pi * k / (n_r + 1)
            cc = c - Z * r * np.cos(psi)
            ids = b.add(ring(cc, Z, Y, _thetas(n), (r * np.sin(psi),) * 2, (r * np.sin(psi),) * 2), label, region)
            if prev is None:
                b.cap(ids, c - Z * r, label, region, end=False)
            else:
                b.loft(prev, ids, (cc, Z, Y))
            prev = ids
        self.tips[f"{side[0]}eye"] = b.cap(prev, c + Z * r, label, region)

    def face_landmarks(self) -> None:
        """51 static iBUG landmarks and 79 yaw bins x 17 contour points on the head surface.

        Bin i holds a head yaw of i degrees (i <= 39) or 39 - i degrees; the contour
        runs along the jaw line over the part of the head visible from the front.
        """
        hs = self.spec.head
        az, yr = LANDMARKS_51[:, 0], LANDMARKS_51[:, 1] * hs
        self.points["lmk"] = self.head_point(az, yr)
        yaw = np.radians(np.where(np.arange(79) <= 39, np.arange(79), 39 - np.arange(79)))
        lo = np.maximum(-1.45, yaw - np.pi / 2 + 0.15)
        hi = np.minimum(1.45, yaw + np.pi / 2 - 0.15)
        phi = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, 17)
        y = -0.040 + 0.085 * (np.abs(phi) / 1.45) ** 1.6
        self.points["contour"] = self.head_point(phi.ravel(), y.ravel() * hs).reshape(79, 17, 3)


def _lmk_table() -> np.ndarray:
    """(51, 2) azimuth / height-above-head-joint of the iBUG-68 points 17..67 (subject's right = -x)."""
    brow_r = [(-0.62, 0.095), (-0.50, 0.102), (-0.38, 0.104), (-0.26, 0.102), (-0.14, 0.098)]
    brow_l = [(-a, y) for a, y in brow_r[::-1]]
    nose = [(0.0, 0.082), (0.0, 0.072), (0.0, 0.060), (0.0, 0.047),
            (-0.16, 0.036), (-0.08, 0.033), (0.0, 0.031), (0.08, 0.033), (0.16, 0.036)]
    eye_r = [(-0.56, 0.080), (-0.46, 0.085), (-0.34, 0.085), (-0.24, 0.080), (-0.34, 0.075), (-0.46, 0.075)]
    eye_l = [(0.24, 0.080), (0.34, 0.085), (0.46, 0.085), (0.56, 0.080), (0.46, 0.075), (0.34, 0.075)]
    outer = [(-0.28, 0.011), (-0.18, 0.020), (-0.08, 0.024), (0.0, 0.022), (0.08, 0.024), (0.18, 0.020),
             (0.28, 0.011), (0.18, 0.000), (0.08, -0.004), (0.0, -0.005), (-0.08, -0.004), (-0.18, 0.000)]
    inner = [(-0.24, 0.011), (-0.10, 0.014), (0.0, 0.015), (0.10, 0.014),
             (0.24, 0.011), (0.10, 0.008), (0.0, 0.007), (-0.10, 0.008)]
    return np.array(brow_r + brow_l + nose + eye_r + eye_l + outer + inner)


LANDMARKS_51 = _lmk_table()


def build_humanoid(spec: BodySpec, res: Resolution, with_faces: bool = True) -> Humanoid:
    """Generate the humanoid for ``spec``; vertex ids and faces depend only on ``res``.

    ``with_faces=False`` skips triangulation (faces come back empty) for speed.
    """
    asm = _Assembler(spec, res, with_faces)
    bottom, top = asm.trunk()
    asm.legs(bottom)
    neck = asm.arms(top)
    asm.neck_head(neck)
    verts, faces = asm.b.mesh()
    pel = asm.j["pelvis"]

    def scale(p: np.ndarray) -> np.ndarray:
        return pel + spec.stature * (p - pel)

    return Humanoid(
        verts=scale(verts), faces=faces,
        label=asm.b.label[: asm.b.n].copy(), region=asm.b.region[: asm.b.n].copy(),
        joints={k: scale(v) for k, v in asm.j.items()},
        points={k: scale(v) for k, v in asm.points.items()},
        tips=dict(asm.tips),
    )


def with_counts(res: Resolution, n_vertices: int) -> Resolution:
    """Spread the vertex surplus/deficit over the inner trunk rings to get exactly ``n_vertices``."""
    n_now = build_humanoid(BodySpec(), res, with_faces=False).verts.shape[0]
    trunk = np.array(res.trunk)
    step, extra = divmod(n_vertices - n_now, len(trunk) - 2)
    trunk[1:-1] += step
    trunk[1:1 + extra] += 1
    if trunk.min() < 8:
        raise ValueError(f"resolution too fine for {n_vertices} vertices")
    return replace(res, trunk=tuple(int(k) for k in trunk))
