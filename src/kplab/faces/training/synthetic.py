"""Procedural cartoon faces with exact keypoints, deterministic by seed.

A face is first described in an upright *canonical* frame whose keypoints start at the real data's
mean shape (faces15.npz, Kaggle framing) and vary per face. Every drawn feature is built from those
points (the pupil is a disc centred on the eye-centre point, the lid curves end at the corners, the
brow centre line ends at the brow points, the lip outlines pass through the mouth points), then all
vertices *and* the keypoints go through one pose warp:

    x' = cx + (x - cx) cos(yaw) + depth(x, y) sin(yaw)        (yaw-like turn of a rounded face)
    p'' = c + s R(roll) (p' - c) + t                           (scale, in-plane rotation, shift)

so the keypoints are exact by construction. Polygons are rasterised at 4x resolution and box-averaged
(sub-pixel accurate coverage); a feature centred on keypoint value u lands on array position
u - PIXEL_CENTRE. Backgrounds, hair, glasses, occluders, lighting, blur and noise vary per face.

`synthetic_faces(n, seed)`: face i depends only on (seed, i), so a larger n extends a smaller one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

from kplab.faces.training.faceset import FaceSet
from kplab.faces.training.layout import IMAGE_SIZE, KAGGLE15, PIXEL_CENTRE, Layout

# Mean keypoints of faces15.npz in pixels, KAGGLE15 order ("left" = subject's left = image right).
MEAN_SHAPE = np.array([
    (65.3, 37.4), (30.0, 37.6), (58.3, 37.7), (71.9, 37.1), (36.8, 37.9), (23.4, 37.3),
    (57.7, 26.0), (79.3, 28.2), (37.3, 26.1), (15.3, 28.5), (48.5, 58.3), (62.5, 76.3),
    (33.7, 76.5), (48.5, 72.1), (48.7, 83.7),
])
MEAN_SHAPE.flags.writeable = False
# Indices into MEAN_SHAPE / KAGGLE15.
L_EYE, R_EYE, L_IN, L_OUT, R_IN, R_OUT, L_BROW_IN, L_BROW_OUT, R_BROW_IN, R_BROW_OUT = range(10)
NOSE, MOUTH_L, MOUTH_R, LIP_TOP, LIP_BOTTOM = range(10, 15)
EYES = ((L_EYE, L_IN, L_OUT), (R_EYE, R_IN, R_OUT))
BROWS = ((L_BROW_IN, L_BROW_OUT), (R_BROW_IN, R_BROW_OUT))

FACE_CENTRE = np.array([48.0, 50.0])  # pivot of the pose warp (canonical pixels)
FACE_CENTRE.flags.writeable = False
YAW_SD = 0.2  # radians
YAW_SHRINK = 1 - YAW_SD**2 / 2  # E[cos(yaw)] for yaw ~ N(0, YAW_SD), to second order
SUPERSAMPLE = 4  # rasterise at 4x and box-average: coverage centroids within ~0.06 px
LARGE_AREA = 40 * 40  # shapes whose window is larger are drawn at 1x (only big, keypoint-free shapes)
MARGIN = 3.0  # keypoints stay this far inside the image


@dataclass(frozen=True)
class Pose:
    """The warp from the canonical frame to the image (see the module docstring)."""

    yaw: float  # radians; positive turns the nose towards image right
    roll: float  # radians, in-plane rotation
    scale: float
    shift: np.ndarray  # (2,) pixels
    face_depth: float  # bulge of the face (pixels) that the yaw turns sideways
    nose_depth: float  # extra height of the nose ridge
    nose: np.ndarray  # (2,) canonical nose tip, where the ridge peaks
    half_width: float  # canonical half width of the head, where the face bulge reaches 0


@dataclass(frozen=True)
class FaceSpec:
    """Everything needed to draw one face; `render_face` is a pure function of it."""

    points: np.ndarray  # (15, 2) canonical keypoints, KAGGLE15 order
    pose: Pose
    head_centre: np.ndarray  # (2,)
    head_axes: np.ndarray  # (2,) half width, half height
    jaw_taper: float  # 0: ellipse; larger: narrower chin
    skin: float  # grey level of the skin before lighting
    hair: float | None  # hair grey, None for bald
    hair_length: float  # canonical y where the hair at the sides ends
    hairline: float  # canonical y of the fringe's lowest middle point
    hairline_curve: float  # how far the fringe drops towards the temples
    hair_wave: tuple[float, float, float]  # amplitude, frequency, phase of the fringe edge
    ears: bool
    neck: float  # neck grey
    clothes: float  # clothes grey
    lid_up: float  # upper-lid height above the corner line (pixels)
    lid_down: float
    iris_radius: float
    pupil_radius: float
    sclera: float
    iris: float
    pupil: float
    brow_arch: float
    brow_width: float
    brow: float  # brow grey
    nose_width: float
    mouth_line: float  # canonical y of the line between the lips at the centre
    mouth_open: float  # gap between the lips at the centre (pixels)
    lips: float  # lip grey
    glasses: tuple[float, float, float, float] | None  # frame grey, frame width, lens grey, lens alpha
    background: float
    clutter: tuple  # ((kind, points (M, 2), grey, width), ...) in image pixels
    occluders: tuple  # ((points (M, 2), grey, stroke width or 0 to fill), ...) in image pixels
    light: np.ndarray  # (2,) multiplicative gradient per 48 px, image x and y
    contrast: float
    gamma: float
    blur: float  # Gaussian sigma in pixels (0: none)
    noise: float  # Gaussian noise sigma in grey levels
    noise_seed: int

    def keypoints(self) -> np.ndarray:
        """(15, 2) float32 image keypoints (KAGGLE15 order, pixels): where `render_face` draws them."""
        return _warp(self.points, self.pose).astype(np.float32)


def synthetic_faces(n: int, seed: int, layout: Layout = KAGGLE15) -> FaceSet:
    """`n` faces, deterministic by `seed` (face i depends only on seed and i)."""
    missing = [name for name in layout.names if name not in KAGGLE15.names]
    if missing:
        raise ValueError(f"synthetic faces know only the Kaggle keypoints; layout {layout.name} asks for {missing}")
    pick = [KAGGLE15.index(name) for name in layout.names]
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    keypoints = np.empty((n, layout.n_points, 2), np.float32)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        images[i], points = render_face(sample_face(np.random.default_rng(child)))
        keypoints[i] = points[pick]
    names = np.array([f"synthetic:seed {seed}:{i}" for i in range(n)])
    return FaceSet(images, keypoints, layout, names=names, source=f"synthetic faces (seed {seed})")


# ------------------------------------------------------------------------------------------------ sampling

def sample_face(rng: np.random.Generator) -> FaceSpec:
    """Draw one random face description."""
    points = _sample_shape(rng)
    head_centre = np.array([48.0, 51.0]) + rng.normal(0, [1.0, 1.5])
    head_axes = np.array([rng.uniform(37, 44), rng.uniform(44, 54)])
    skin = rng.uniform(75, 190)
    brow_y = points[[L_BROW_IN, L_BROW_OUT, R_BROW_IN, R_BROW_OUT], 1].min()
    hairline = rng.uniform(-4, min(14.0, brow_y - 9))
    open_ = 0.0 if rng.random() < 0.65 else rng.uniform(1.0, 6.0)
    mouth_line, open_ = _mouth_line(points, open_, rng)
    pupil_radius = rng.uniform(1.1, 1.7)
    gaze = _gaze_offset(points)
    iris = rng.uniform(25, 0.8 * skin)
    brow = rng.uniform(0.1, 0.7) * skin
    return FaceSpec(
        points=points, pose=_sample_pose(points, head_axes[0], rng), head_centre=head_centre, head_axes=head_axes,
        jaw_taper=rng.uniform(0.0, 0.2), skin=skin,
        hair=None if rng.random() < 0.12 else rng.choice([rng.uniform(10, 70), rng.uniform(60, 230)]),
        hair_length=rng.uniform(20, 120), hairline=hairline,
        hairline_curve=rng.uniform(0, max(0.0, brow_y - 8 - hairline)),
        hair_wave=(rng.uniform(0, 2.5), rng.uniform(0.15, 0.6), rng.uniform(0, 2 * np.pi)),
        ears=rng.random() < 0.7, neck=skin * rng.uniform(0.6, 0.9), clothes=rng.uniform(10, 240),
        lid_up=pupil_radius + gaze + rng.uniform(1.2, 2.5),
        lid_down=pupil_radius + gaze + rng.uniform(0.6, 1.5),
        iris_radius=pupil_radius + rng.uniform(1.3, 2.3), pupil_radius=pupil_radius,
        sclera=rng.uniform(max(skin, 150), 245), iris=iris,
        pupil=rng.uniform(0, 0.5) * min(iris, 0.6 * brow),  # darker than the iris and the lash line
        brow_arch=rng.uniform(0.5, 3.5), brow_width=rng.uniform(1.5, 4.0),
        brow=brow, nose_width=rng.uniform(3.5, 6.0),
        mouth_line=mouth_line, mouth_open=open_, lips=skin * rng.uniform(0.5, 0.8),
        glasses=_sample_glasses(rng), background=rng.uniform(20, 235),
        clutter=_sample_clutter(rng), occluders=_sample_occluders(rng, skin),
        light=rng.normal(0, 0.2, 2), contrast=rng.uniform(0.7, 1.25), gamma=np.exp(rng.normal(0, 0.2)),
        blur=max(0.0, rng.uniform(-0.4, 1.0)), noise=rng.uniform(0.5, 7.0),
        noise_seed=int(rng.integers(2**31)),
    )


def _sample_shape(rng) -> np.ndarray:
    """(15, 2) canonical keypoints: the mean shape with per-face proportions and a little asymmetry."""
    p = MEAN_SHAPE.copy()
    mid = 48.0
    p[:, 0] = mid + (p[:, 0] - mid) / YAW_SHRINK  # the yaw turn narrows faces by cos(yaw) on average
    upper = slice(0, 10)  # eyes and brows move together
    p[upper, 0] = mid + (p[upper, 0] - mid) * rng.normal(1, 0.05)
    p[upper, 1] += rng.normal(0, 1.0)
    for centre, inner, outer in EYES:
        p[[inner, outer]] = p[centre] + (p[[inner, outer]] - p[centre]) * rng.normal(1, 0.08)
    for inner, outer in BROWS:
        p[[inner, outer], 1] -= rng.normal(0, 1.2)
        p[outer] = p[inner] + (p[outer] - p[inner]) * rng.normal(1, 0.1)
    p[NOSE, 1] += rng.normal(0, 1.8)
    mouth = slice(MOUTH_L, LIP_BOTTOM + 1)
    p[mouth, 1] += rng.normal(0, 1.3)
    p[[MOUTH_L, MOUTH_R], 0] = mid + (p[[MOUTH_L, MOUTH_R], 0] - mid) * rng.normal(1, 0.1)
    corner_y = p[[MOUTH_L, MOUTH_R], 1].mean()
    p[LIP_TOP, 1] = corner_y - (corner_y - p[LIP_TOP, 1]) * rng.normal(1, 0.12)
    p[LIP_BOTTOM, 1] = corner_y + (p[LIP_BOTTOM, 1] - corner_y) * rng.normal(1, 0.09)
    p += rng.normal(0, 0.5, p.shape)
    for centre, inner, outer in EYES:  # the pupil sits between the corners, near their line
        axis = p[outer] - p[inner]
        t = np.clip(np.dot(p[centre] - p[inner], axis) / np.dot(axis, axis), 0.38, 0.62)
        foot = p[inner] + t * axis
        normal = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
        p[centre] = foot + normal * np.clip(np.dot(p[centre] - foot, normal), -0.6, 0.6)
    return p


def _gaze_offset(p) -> float:
    """How far the pupils sit off their corner line (the lids must clear them by that much more)."""
    worst = 0.0
    for centre, inner, outer in EYES:
        axis = p[outer] - p[inner]
        normal = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
        worst = max(worst, abs(np.dot(p[centre] - p[inner], normal)))
    return worst


def _mouth_line(p, open_: float, rng) -> tuple[float, float]:
    """Centre y of the line between the lips, and the mouth opening, both leaving >= 2 px of lip."""
    top, bottom = p[LIP_TOP, 1], p[LIP_BOTTOM, 1]
    open_ = min(open_, max(0.0, bottom - top - 5.0))
    corner_y = p[[MOUTH_L, MOUTH_R], 1].mean()
    line = np.clip(corner_y + rng.uniform(-0.5, 1.5), top + 2.0 + open_ / 2, bottom - 2.5 - open_ / 2)
    return float(line), float(open_)


def _sample_pose(points, half_width: float, rng) -> Pose:
    """A random pose that keeps every keypoint at least MARGIN pixels inside the image."""
    for _ in range(20):
        pose = Pose(yaw=np.clip(rng.normal(0, YAW_SD), -0.5, 0.5), roll=np.clip(rng.normal(0, 0.08), -0.3, 0.3),
                    scale=np.clip(rng.normal(1, 0.07), 0.85, 1.2), shift=np.clip(rng.normal(0, 2.0, 2), -6, 6),
                    face_depth=rng.uniform(10, 18), nose_depth=rng.uniform(6, 12), nose=points[NOSE],
                    half_width=half_width)
        warped = _warp(points, pose)
        if (warped >= MARGIN).all() and (warped <= IMAGE_SIZE - MARGIN).all():
            return pose
    return replace(pose, yaw=0.0, roll=0.0, scale=1.0, shift=np.zeros(2))  # upright and centred fits


def _sample_glasses(rng):
    if rng.random() > 0.15:
        return None
    return (rng.uniform(0, 255), rng.choice([0.75, 1.0, 1.5]), rng.uniform(0, 120), rng.uniform(0, 0.5))


def _sample_clutter(rng) -> tuple:
    """Random background shapes (image pixels): filled ellipses/boxes and lines."""
    shapes = []
    for _ in range(rng.integers(2, 9)):
        centre, size = rng.uniform(-10, 106, 2), rng.uniform(4, 40, 2)
        angle = rng.uniform(0, np.pi)
        kind = rng.choice(["ellipse", "box", "line"])
        if kind == "ellipse":
            shapes.append(("fill", _ellipse(centre, size, angle), rng.uniform(0, 255), 0.0))
        elif kind == "box":
            shapes.append(("fill", _box(centre, size, angle), rng.uniform(0, 255), 0.0))
        else:
            d = np.array([np.cos(angle), np.sin(angle)]) * size[0] * 2
            shapes.append(("line", np.stack([centre - d, centre + d]), rng.uniform(0, 255), rng.uniform(1, 4)))
    return tuple(shapes)


def _sample_occluders(rng, skin: float) -> tuple:
    """Sometimes a bar (a microphone, a pen) or a hand-like blob over part of the face (image pixels)."""
    if rng.random() > 0.25:
        return ()
    if rng.random() < 0.5:
        centre = rng.uniform(20, 76, 2)
        angle = rng.uniform(0, np.pi)
        return ((_box(centre, (rng.uniform(30, 70), rng.uniform(2, 7)), angle), rng.uniform(0, 255), 0.0),)
    palm = rng.uniform([10, 55], [86, 110])
    tone = skin * rng.uniform(0.8, 1.2)
    angle = rng.uniform(-0.6, 0.6)  # fingers point up, spread around `angle`
    parts = [(_ellipse(palm, rng.uniform([9, 11], [13, 15]), angle), tone)]
    for k in range(4):
        a = angle + (k - 1.5) * 0.25
        direction = np.array([np.sin(a), -np.cos(a)])
        length = rng.uniform(7, 11)
        tip_centre = palm + direction * (10 + length)
        parts.append((_ellipse(tip_centre, (rng.uniform(2.2, 3.2), length), a), tone))
    # All outlines first, then all fills: only the outline of the whole hand stays visible.
    return tuple((points, tone * 0.45, 2.0) for points, _ in parts) + tuple((points, g, 0.0) for points, g in parts)


# ------------------------------------------------------------------------------------------------ geometry

def _warp(points, pose: Pose) -> np.ndarray:
    """Canonical points (M, 2) -> image keypoint coordinates (M, 2) (see the module docstring)."""
    depth = _depth(points, pose)  # (M,)
    x = FACE_CENTRE[0] + (points[:, 0] - FACE_CENTRE[0]) * np.cos(pose.yaw) + depth * np.sin(pose.yaw)
    turned = np.stack([x, points[:, 1]], axis=1) - FACE_CENTRE  # (M, 2)
    c, s = np.cos(pose.roll), np.sin(pose.roll)
    rotation = np.array([[c, -s], [s, c]])
    return FACE_CENTRE + pose.shift + pose.scale * turned @ rotation.T


def _depth(points, pose: Pose) -> np.ndarray:
    """Height of the face surface above its silhouette: a rounded face plus a nose ridge.

    depth = F max(0, 1 - (dx / W)^2) + N exp(-dx_n^2 / (2 3.5^2)) ramp(y), where the ramp rises from the
    eyes to the nose tip and falls off below it.
    """
    x, y = points[:, 0], points[:, 1]
    face = pose.face_depth * np.clip(1 - ((x - FACE_CENTRE[0]) / pose.half_width) ** 2, 0, None)
    nose_x, nose_y = pose.nose
    eye_y = nose_y - 18.0
    ramp = np.where(y <= nose_y, np.clip((y - eye_y) / (nose_y - eye_y), 0, 1), np.exp(-((y - nose_y) ** 2) / 8.0))
    ridge = pose.nose_depth * np.exp(-((x - nose_x) ** 2) / (2 * 3.5**2)) * ramp
    return face + ridge


@functools.cache
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)  # (n, 2)
    circle.flags.writeable = False
    return circle


@functools.cache
def _bezier_weights(n: int) -> np.ndarray:
    """(n, 3) Bernstein weights of a quadratic Bezier at n evenly spaced t in [0, 1]."""
    t = np.linspace(0, 1, n)
    weights = np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2], axis=1)
    weights.flags.writeable = False
    return weights


def _ellipse(centre, axes, angle=0.0, n=32) -> np.ndarray:
    local = _unit_circle(n) * axes  # (n, 2)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        local = local @ np.array([[c, s], [-s, c]])  # rotate by angle
    return local + centre


def _box(centre, size, angle) -> np.ndarray:
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.asarray(size) / 2
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(centre) + corners @ np.array([[c, -s], [s, c]]).T


def _curve(a, through, b, n=12) -> np.ndarray:
    """Quadratic Bezier from a to b passing through `through` at its middle (t = 1/2): (n, 2)."""
    a, through, b = np.asarray(a, float), np.asarray(through, float), np.asarray(b, float)
    control = 2 * through - (a + b) / 2  # B(1/2) = a/4 + control/2 + b/4 = through
    return _bezier_weights(n) @ np.stack([a, control, b])


def _up_normal(a, b) -> np.ndarray:
    """Unit normal of segment a-b pointing up the image (towards smaller y)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    normal = np.array([d[1], -d[0]]) / np.linalg.norm(d)
    return normal if normal[1] <= 0 else -normal


def _stroke_polygon(centre_line, width_start, width_end) -> np.ndarray:
    """A tapered band around a polyline: (2M, 2) polygon."""
    tangent = np.gradient(centre_line, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    half = np.linspace(width_start, width_end, len(centre_line))[:, None] / 2
    return np.concatenate([centre_line + normal * half, (centre_line - normal * half)[::-1]])


# ------------------------------------------------------------------------------------------------ drawing

@dataclass
class _Shape:
    """One item of a face's display list."""

    points: np.ndarray  # (M, 2) canonical pixels (face=True) or image keypoint coordinates
    grey: float
    alpha: float = 1.0
    width: float = 0.0  # 0: filled polygon; > 0: polyline stroked this wide (pixels)
    closed: bool = True
    face: bool = True  # attached to the face: goes through the pose warp
    clip: str | None = None  # draw only inside the coverage saved under this name
    save: str | None = None  # keep this shape's full-image coverage under this name
    shaded: bool = False  # darken towards the rim (the head)


def render_face(spec: FaceSpec, clean: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Draw a face: (96, 96) uint8 image and (15, 2) float32 keypoints (KAGGLE15 order, pixels).

    clean=True leaves out clutter, glasses, occluders, lighting, blur and noise (for tests that look
    at the drawn features themselves).
    """
    shapes = _head(spec) + _eyes(spec) + _brows(spec) + _nose(spec) + _mouth(spec)
    if not clean and spec.glasses is not None:
        shapes += _glasses(spec)
    # The keypoints and every face-attached vertex go through the same warp (one call for the vertices).
    canonical = [s.points for s in shapes if s.face]
    warped = _warp(np.concatenate(canonical), spec.pose)
    pieces = iter(np.split(warped, np.cumsum([len(c) for c in canonical])[:-1]))
    for shape in shapes:
        if shape.face:
            shape.points, shape.face = next(pieces), False
    if not clean:
        shapes += [_Shape(points, grey, width=width, face=False) for points, grey, width in spec.occluders]
    canvas = _Canvas(_background(spec, clean))
    for shape in shapes:
        canvas.draw(shape)
    image = canvas.image if clean else _photometric(canvas.image, spec)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), spec.keypoints()


class _Canvas:
    """A float grey image; polygons in keypoint coordinates are blended in with sub-pixel coverage."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.saved: dict[str, np.ndarray] = {}

    def draw(self, shape: _Shape) -> None:
        found = _coverage(shape.points, shape.closed, shape.width)
        if shape.save:
            self.saved[shape.save] = full = np.zeros_like(self.image)
            if found is not None:
                full[found[0]] = found[1]
        if found is None:
            return
        window, cover = found
        if shape.clip:
            cover = cover * self.saved[shape.clip][window]
        region = self.image[window]  # a view: blending writes through
        if shape.shaded:  # a blurred silhouette darkens the skin towards the rim
            rim = cv2.GaussianBlur(self.saved[shape.save], (0, 0), 7.0)[window]
            region += cover * (shape.grey * (0.65 + 0.35 * rim) - region)
        else:
            region += (shape.alpha * cover) * (np.float32(shape.grey) - region)


def _coverage(points, closed: bool, width: float):
    """(window slices, (h, w) coverage in [0, 1]) of a filled polygon or stroked polyline, or None.

    Rasterised at SUPERSAMPLE x resolution with 4 fraction bits and box-averaged back down.
    """
    points = points - PIXEL_CENTRE  # keypoint coordinates -> array positions
    pad = width / 2 + 1
    (lx, ly), (hx, hy) = points.min(0).tolist(), points.max(0).tolist()
    x0, y0 = max(math.floor(lx - pad), 0), max(math.floor(ly - pad), 0)
    x1, y1 = min(math.ceil(hx + pad) + 1, IMAGE_SIZE), min(math.ceil(hy + pad) + 1, IMAGE_SIZE)
    if x1 <= x0 or y1 <= y0:
        return None
    # Large shapes (head, hair, clutter) carry no keypoint: plain anti-aliasing is enough there.
    s = SUPERSAMPLE if (x1 - x0) * (y1 - y0) <= LARGE_AREA else 1
    # Coarse position u is fine position (u + 1/2) s - 1/2; times 16 for cv2's shift=4.
    fine = np.round((points - (x0, y0)) * (16 * s) + 8 * (s - 1)).astype(np.int32)
    mask = np.zeros(((y1 - y0) * s, (x1 - x0) * s), np.uint8)
    if width:
        cv2.polylines(mask, [fine], closed, 255, max(1, round(width * s)), cv2.LINE_AA, shift=4)
    else:
        cv2.fillPoly(mask, [fine], 255, cv2.LINE_AA, shift=4)
    if s > 1:
        mask = cv2.resize(mask, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return (slice(y0, y1), slice(x0, x1)), mask * np.float32(1 / 255)


def _background(spec: FaceSpec, clean: bool) -> np.ndarray:
    image = np.full((IMAGE_SIZE, IMAGE_SIZE), spec.background, np.float32)
    if clean:
        return image
    canvas = _Canvas(image)
    for kind, points, grey, width in spec.clutter:
        canvas.draw(_Shape(points, grey, width=width, closed=kind != "line", face=False))
    return cv2.GaussianBlur(canvas.image, (0, 0), 1.2)  # out of focus behind the face


def _eye_level(spec) -> float:
    return float(spec.points[[L_EYE, R_EYE], 1].mean())


def _head(spec) -> list[_Shape]:
    c, (a, b) = spec.head_centre, spec.head_axes
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    taper = 1 - spec.jaw_taper * np.clip(np.sin(t), 0, None) ** 2  # narrower towards the chin
    shapes = [_Shape(_ellipse(c + (0, b + 30), (2.3 * a, 34)), spec.clothes),
              _Shape(_box(c + (0, b * 0.8), (1.1 * a, b), 0.0), spec.neck)]
    if spec.hair is not None:  # hair behind the head: the top of a larger ellipse, straight sides
        half = np.linspace(np.pi, 2 * np.pi, 24)
        top = c + np.stack([(a + 5) * np.cos(half), (b + 6) * np.sin(half)], axis=1)
        sides = np.array([[c[0] + a + 5, spec.hair_length], [c[0] - a - 5, spec.hair_length]])
        shapes.append(_Shape(np.concatenate([top, sides]), spec.hair))
    if spec.ears:
        shapes += [_Shape(_ellipse((c[0] + side * a * 0.97, _eye_level(spec) + 9), (4.5, 9.0)), spec.skin * 0.85)
                   for side in (-1, 1)]
    outline = c + np.stack([a * np.cos(t) * taper, b * np.sin(t)], axis=1)  # (64, 2)
    shapes.append(_Shape(outline, spec.skin, save="head", shaded=True))
    if spec.hair is not None:  # fringe: from above the image down to a wavy, curved hairline
        amp, freq, phase = spec.hair_wave
        xs = np.linspace(c[0] - a - 6, c[0] + a + 6, 40)
        edge = spec.hairline + spec.hairline_curve * ((xs - c[0]) / a) ** 2 + amp * np.sin(freq * xs + phase)
        fringe = np.concatenate([np.stack([xs, edge], axis=1), [[xs[-1], -30.0], [xs[0], -30.0]]])
        shapes.append(_Shape(fringe, spec.hair, clip="head"))
    return shapes


def _eyes(spec) -> list[_Shape]:
    p, shapes = spec.points, []
    for k, (centre, inner, outer) in enumerate(EYES):
        up = _up_normal(p[inner], p[outer])
        mid = (p[inner] + p[outer]) / 2
        along = p[outer] - p[inner]
        socket = _ellipse(mid + up * 1.5, (np.linalg.norm(along) * 0.8, 6.5), np.arctan2(along[1], along[0]))
        upper = _curve(p[inner], mid + up * spec.lid_up, p[outer], 16)
        lower = _curve(p[inner], mid - up * spec.lid_down, p[outer], 16)
        opening = f"eye{k}"
        shapes += [
            _Shape(socket, spec.skin * 0.6, 0.25),
            _Shape(np.concatenate([upper, lower[-2:0:-1]]), spec.sclera, save=opening),
            _Shape(_ellipse(p[centre], (spec.iris_radius,) * 2), spec.iris, clip=opening),
            _Shape(_ellipse(p[centre], (spec.pupil_radius,) * 2, n=24), spec.pupil, clip=opening),
            _Shape(upper, spec.brow * 0.6, 0.8, width=1.0, closed=False),  # lash line
        ]
    return shapes


def _brows(spec) -> list[_Shape]:
    p, shapes = spec.points, []
    for inner, outer in BROWS:
        arch = (p[inner] + p[outer]) / 2 + _up_normal(p[inner], p[outer]) * spec.brow_arch
        line = _curve(p[inner], arch, p[outer], 16)  # its ends are the keypoints
        shapes.append(_Shape(_stroke_polygon(line, spec.brow_width, spec.brow_width * 0.55), spec.brow))
    return shapes


def _nose(spec) -> list[_Shape]:
    tip, w = spec.points[NOSE], spec.nose_width
    side = 1 if spec.light[0] < 0 else -1  # the shaded side of the ridge faces away from the light
    ridge = np.array([[tip[0] + side * 2.5, _eye_level(spec) + 5], [tip[0] + side * w * 0.8, tip[1] - 2]])
    return [
        _Shape(_stroke_polygon(ridge, 1.5, 2.5), spec.skin * 0.6, 0.3),
        _Shape(_ellipse(tip + (0, -0.5), (2.6, 2.0)), min(255.0, spec.skin * 1.2), 0.5),  # tip highlight
        _Shape(_curve(tip + (-w, 0), tip + (0, 2.8), tip + (w, 0)), spec.skin * 0.5, 0.45, width=1.0, closed=False),
        *[_Shape(_ellipse(tip + (s * w * 0.55, 1.4), (1.6, 1.0), s * 0.3, n=16), spec.skin * 0.35, 0.9)
          for s in (-1, 1)],  # nostrils
    ]


def _mouth(spec) -> list[_Shape]:
    p = spec.points
    left, right = p[MOUTH_R], p[MOUTH_L]  # image left, image right
    centre_x = (p[LIP_TOP, 0] + p[LIP_BOTTOM, 0]) / 2
    gap = spec.mouth_open / 2
    top_outline = _curve(left, p[LIP_TOP], right, 16)  # passes through the lip keypoints
    bottom_outline = _curve(left, p[LIP_BOTTOM], right, 16)
    line_top = _curve(left, (centre_x, spec.mouth_line - gap), right, 16)
    line_bottom = _curve(left, (centre_x, spec.mouth_line + gap), right, 16)
    shapes = [_Shape(np.concatenate([top_outline, line_top[-2:0:-1]]), spec.lips),
              _Shape(np.concatenate([line_bottom, bottom_outline[-2:0:-1]]), spec.lips * 1.08),
              _Shape(bottom_outline, spec.lips * 0.7, 0.35, width=1.0, closed=False)]
    if spec.mouth_open > 0.5:
        teeth = _box((centre_x, spec.mouth_line - gap + spec.mouth_open * 0.2),
                     (np.linalg.norm(right - left) * 0.5, spec.mouth_open * 0.4), 0.0)
        shapes += [_Shape(np.concatenate([line_top, line_bottom[-2:0:-1]]), spec.lips * 0.25, save="inside"),
                   _Shape(teeth, 200.0, clip="inside")]
    shapes.append(_Shape(line_top, spec.lips * 0.4, 0.7, width=1.0, closed=False))
    return shapes


def _glasses(spec) -> list[_Shape]:
    frame, frame_width, lens, lens_alpha = spec.glasses
    p, shapes, rims = spec.points, [], []
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    # A superellipse |x/a|^4 + |y/b|^4 = 1: a rounded rectangle.
    unit = np.stack([np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.5, np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.5], 1)
    for centre, inner, outer in EYES:
        mid = (p[inner] + p[outer]) / 2
        half = np.array([np.linalg.norm(p[outer] - p[inner]) / 2 + 4.5, 7.0])
        rim = mid + half * unit
        rims.append(rim)
        outward = np.sign(p[outer, 0] - p[inner, 0])
        hinge = mid + (outward * half[0], -2.0)
        temple = np.array([hinge, (spec.head_centre[0] + outward * spec.head_axes[0], hinge[1])])
        shapes += [_Shape(rim, lens, lens_alpha), _Shape(rim, frame, width=frame_width),
                   _Shape(temple, frame, width=frame_width, closed=False)]
    a, b = rims[1][np.argmax(rims[1][:, 0])], rims[0][np.argmin(rims[0][:, 0])]  # the rims' inner sides
    shapes.append(_Shape(_curve(a, (a + b) / 2 + (0, -1.5), b, 8), frame, width=frame_width, closed=False))
    return shapes


def _photometric(image, spec) -> np.ndarray:
    """Lighting gradient, contrast, gamma, blur and sensor noise."""
    coords = (np.arange(IMAGE_SIZE, dtype=np.float32) + np.float32(PIXEL_CENTRE - 48.0)) / np.float32(48.0)
    gx, gy = np.float32(spec.light[0]), np.float32(spec.light[1])
    light = np.clip(1 + gx * coords[None, :] + gy * coords[:, None], 0.3, 1.7)  # (96, 96)
    image = np.clip((image * light - 110) * np.float32(spec.contrast) + 110, 0, 255)
    image = 255 * (image * np.float32(1 / 255)) ** np.float32(spec.gamma)
    if spec.blur > 0.2:
        image = cv2.GaussianBlur(image, (0, 0), spec.blur)
    noise = np.random.default_rng(spec.noise_seed).standard_normal(image.shape, dtype=np.float32)
    return image + np.float32(spec.noise) * noise
