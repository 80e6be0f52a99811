"""A 3-D view of a stack's in-focus volume, drawn in numpy (Qt-free, no OpenGL).

The in-focus voxels of a :class:`~livefocus.preview._state.StackVolume` (its subsampled
``raw * mask`` planes) are turned about the vertical axis (``azimuth``), tilted towards the
viewer (``elevation``: 0 looks from the side, 90 from above) and projected orthographically;
a voxel nearer the viewer hides those behind it (a z-buffer). Each voxel is coloured by its
height (viridis, lowest plane dark) and shaded by its intensity.

Why by hand: pyqtgraph's 3-D items need an OpenGL context, which the offscreen platform of
the tests and of headless screenshots does not give; a point splat of at most
:data:`MAX_POINTS` voxels costs a few ms in numpy and draws in an ordinary ``ImageItem``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livefocus.preview._sizes import VIEW3D_SIDE

__all__ = [
    "MAX_POINTS",
    "View",
    "VoxelCache",
    "plane_voxels",
    "render_volume",
    "render_volume_reference",
    "voxels",
]

#: Viridis at nine evenly spaced heights (interpolated to 256 entries below).
_VIRIDIS_ANCHORS = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 145, 140),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
#: (256, 3) colours of the heights, lowest first.
VIRIDIS = np.stack(
    [np.interp(np.linspace(0, 8, 256), np.arange(9), _VIRIDIS_ANCHORS[:, k]) for k in range(3)],
    axis=1,
)


@dataclass(frozen=True)
class View:
    """How the 3-D view is drawn.

    ``azimuth`` / ``elevation``: degrees (0 / 0 looks along the frame's rows from its last
    row; elevation 90 from above, the frame as drawn). ``z_per_um``: frame pixels per µm
    along z (1 / pixel size for the true scale); None stretches the stack's z range to half
    the frame's longer side. ``size``: the square image's side. ``levels``: the intensity
    range shaded from dim to full (None: the voxels' own 1-99.5 percentiles).
    """

    azimuth: float = 30.0
    elevation: float = 30.0
    z_per_um: float | None = None
    size: int = VIEW3D_SIDE
    levels: tuple[float, float] | None = None


#: Grey of the stack box's edges.
EDGE_GREY = (90, 90, 90)
#: Most voxels drawn (beyond, every k-th is: the view stays cheap while a stack grows).
MAX_POINTS = 100_000


def plane_voxels(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and values of a plane's in-focus (non-zero) pixels."""
    arr = np.asarray(plane)
    ys, xs = np.nonzero(arr)
    return ys, xs, arr[ys, xs].astype(np.float64)


class VoxelCache:
    """Each plane's in-focus pixels, found once per plane (a stack's planes never change once
    stored; a new array for a z index, or a new stack, replaces them)."""

    def __init__(self) -> None:
        self._planes: dict[int, tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def get(self, planes: dict[int, np.ndarray]) -> dict[int, tuple[np.ndarray, ...]]:
        """z -> (rows, columns, values) of ``planes``; entries of other planes are dropped."""
        for z in [z for z in self._planes if z not in planes]:
            del self._planes[z]
        out: dict[int, tuple[np.ndarray, ...]] = {}
        for z, plane in planes.items():
            held = self._planes.get(z)
            if held is None or held[0] != id(plane):
                held = (id(plane), plane_voxels(plane))
                self._planes[z] = held
            out[z] = held[1]
        return out


def voxels(
    planes: dict[int, np.ndarray],
    z_um: dict[int, float],
    factor: int,
    z_per_um: float,
    cache: VoxelCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The in-focus voxels of a stack: ``(N, 3)`` float64 x, y, z in frame pixels (z: the
    plane's µm times ``z_per_um``) and their ``(N,)`` intensities; planes' zero pixels are
    outside the masks. At most :data:`MAX_POINTS` (evenly thinned)."""
    found = (
        cache.get(planes) if cache is not None else {z: plane_voxels(p) for z, p in planes.items()}
    )
    points: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for z in sorted(found):
        ys, xs, value = found[z]
        if ys.size == 0:
            continue
        zz = np.full(ys.size, float(z_um[z]) * z_per_um)
        points.append(np.stack([xs * float(factor), ys * float(factor), zz], axis=1))
        values.append(value)
    if not points:
        return np.zeros((0, 3)), np.zeros(0)
    xyz, value = np.concatenate(points), np.concatenate(values)
    if len(value) > MAX_POINTS:
        keep = np.linspace(0, len(value) - 1, MAX_POINTS).astype(np.intp)
        xyz, value = xyz[keep], value[keep]
    return xyz, value


def _rotated(
    p: np.ndarray, azimuth: float, elevation: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen right, screen up and the distance from the viewer (larger: farther) of points
    ``p`` (N, 3: x, y, z about the box's centre)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    # turn about z: x to the right, y towards the viewer at azimuth 0 (the frame's rows run
    # towards the viewer, so from above the frame is seen as drawn)
    x1 = p[:, 0] * math.cos(a) - p[:, 1] * math.sin(a)
    y1 = p[:, 0] * math.sin(a) + p[:, 1] * math.cos(a)
    # tilt: at elevation 90 the viewer looks down z, at 0 along y
    up = p[:, 2] * math.cos(e) - y1 * math.sin(e)
    far = -(y1 * math.cos(e) + p[:, 2] * math.sin(e))
    return x1, up, far


def _box(frame_shape: tuple[int, int], z_range: tuple[float, float]) -> np.ndarray:
    """(8, 3) corners of the stack's box: the frame by the planes' z range."""
    ny, nx = frame_shape
    return np.array(
        [(x, y, z) for x in (0.0, nx) for y in (0.0, ny) for z in z_range], dtype=np.float64
    )


class _Screen:
    """Where the stack's box falls on a square screen at one angle: the box fills it."""

    def __init__(
        self,
        frame_shape: tuple[int, int],
        z_range: tuple[float, float],
        azimuth: float,
        elevation: float,
    ) -> None:
        corners = _box(frame_shape, z_range)
        self.z_range = z_range
        self.centre = corners.mean(axis=0)
        self.azimuth, self.elevation = azimuth, elevation
        right, up, _ = _rotated(corners - self.centre, azimuth, elevation)
        self.half = 1.02 * max(float(np.abs(right).max()), float(np.abs(up).max()), 1.0)

    def project(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Screen column and row in [0, 1] and the distance from the viewer of points."""
        right, up, far = _rotated(xyz - self.centre, self.azimuth, self.elevation)
        return (right + self.half) / (2 * self.half), (self.half - up) / (2 * self.half), far


def _prepare(
    planes: dict[int, np.ndarray],
    z_um: dict[int, float],
    factor: int,
    frame_shape: tuple[int, int],
    view: View,
    cache: VoxelCache | None,
) -> tuple[np.ndarray, np.ndarray, _Screen, int, np.ndarray]:
    """The voxels, their values, the screen, the splat side (screen pixels a voxel covers)
    and the image with the box's edges drawn (what both renderers share)."""
    zs = [float(z_um[z]) for z in planes] or [0.0]
    span = max(zs) - min(zs)
    z_per_um = view.z_per_um
    if z_per_um is None:  # the z range stretched to half the frame's longer side
        z_per_um = 0.5 * max(frame_shape) / span if span > 0 else 1.0
    xyz, value = voxels(planes, z_um, factor, z_per_um, cache)
    z_range = (min(zs) * z_per_um, max(zs) * z_per_um)
    screen = _Screen(frame_shape, z_range, view.azimuth, view.elevation)
    splat = max(1, math.ceil(factor * view.size / (2 * screen.half)))
    image = np.zeros((view.size, view.size, 3), np.uint8)
    _draw_edges(image, screen, frame_shape, z_range)
    return xyz, value, screen, splat, image


def _pixels(u: np.ndarray, v: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Screen rows and columns of points at ``u``, ``v`` in [0, 1] (clipped to the image)."""
    rows = np.clip((v * size).astype(np.intp), 0, size - 1)
    cols = np.clip((u * size).astype(np.intp), 0, size - 1)
    return rows, cols


def _draw_edges(
    image: np.ndarray, screen: _Screen, frame_shape: tuple[int, int], z_range: tuple[float, float]
) -> None:
    """The box's 12 edges in grey (behind every voxel)."""
    size = image.shape[0]
    corners = _box(frame_shape, z_range)
    for i in range(8):
        for j in range(i + 1, 8):
            if int(np.count_nonzero(corners[i] != corners[j])) != 1:
                continue  # not an edge (the z range may be flat: then edges coincide)
            line = np.linspace(corners[i], corners[j], 2 * size)
            u, v, _ = screen.project(line)
            image[_pixels(u, v, size)] = EDGE_GREY


def render_volume(
    planes: dict[int, np.ndarray],
    z_um: dict[int, float],
    factor: int,
    frame_shape: tuple[int, int],
    view: View = View(),
    cache: VoxelCache | None = None,
) -> np.ndarray:
    """A stack's in-focus voxels as ``view`` sees them: a ``(size, size, 3)`` uint8 RGB
    image, black where no voxel is seen.

    ``planes``: z index -> the plane's ``raw * mask`` subsampled by ``factor`` (zero outside
    the mask), ``z_um``: z index -> the plane's µm, ``frame_shape``: the full frames' (Y, X).
    ``cache`` keeps each plane's voxels between calls (:class:`VoxelCache`).
    """
    xyz, value, screen, splat, image = _prepare(planes, z_um, factor, frame_shape, view, cache)
    if value.size == 0:
        return image
    size = view.size
    u, v, far = screen.project(xyz)
    rows, cols = _pixels(u, v, size)
    colour = _colours(xyz[:, 2], value, view.levels, screen.z_range)
    # rank: the farthest first, ties in voxel order; each pixel shows its highest rank
    order = np.argsort(-far, kind="stable")
    rank = np.empty(order.size, np.intp)
    rank[order] = np.arange(order.size)
    where = np.concatenate(
        [
            np.minimum(rows + dy, size - 1) * size + np.minimum(cols + dx, size - 1)
            for dy in range(splat)
            for dx in range(splat)
        ]
    )
    shown = np.full(size * size, -1, np.intp)  # the highest rank at each pixel
    np.maximum.at(shown, where, np.tile(rank, splat * splat))
    seen = shown >= 0
    image.reshape(-1, 3)[seen] = colour[order[shown[seen]]]
    return image


def render_volume_reference(
    planes: dict[int, np.ndarray],
    z_um: dict[int, float],
    factor: int,
    frame_shape: tuple[int, int],
    view: View = View(),
) -> np.ndarray:
    """:func:`render_volume` as a plain loop with an explicit depth buffer (the referee)."""
    xyz, value, screen, splat, image = _prepare(planes, z_um, factor, frame_shape, view, None)
    if value.size == 0:
        return image
    size = view.size
    u, v, far = screen.project(xyz)
    colour = _colours(xyz[:, 2], value, view.levels, screen.z_range)
    nearest = np.full((size, size), np.inf)
    drawn = np.full((size, size), -1, np.intp)  # the voxel each pixel shows
    for i in range(value.size):
        col = min(max(int(u[i] * size), 0), size - 1)
        row = min(max(int(v[i] * size), 0), size - 1)
        for dy in range(splat):
            for dx in range(splat):
                r, c = min(row + dy, size - 1), min(col + dx, size - 1)
                # nearer wins; at equal distance the later voxel (as the stable sort gives)
                if far[i] < nearest[r, c] or (far[i] == nearest[r, c] and i > drawn[r, c]):
                    nearest[r, c] = far[i]
                    drawn[r, c] = i
                    image[r, c] = colour[i]
    return image


def _colours(
    z: np.ndarray,
    value: np.ndarray,
    levels: tuple[float, float] | None,
    z_range: tuple[float, float],
) -> np.ndarray:
    """(N, 3) uint8: viridis by height over ``z_range`` (the stack's planes), dimmed to half
    for the lowest intensity."""
    lo_z, hi_z = z_range
    height = (z - lo_z) / (hi_z - lo_z) if hi_z > lo_z else np.full(z.shape, 0.5)
    if levels is None:
        lo, hi = (float(q) for q in np.percentile(value, [1.0, 99.5]))
    else:
        lo, hi = (float(q) for q in levels)
    if not hi > lo:
        hi = lo + 1.0
    shade = 0.5 + 0.5 * np.clip((value - lo) / (hi - lo), 0.0, 1.0)
    base = VIRIDIS[np.clip((height * 255).astype(np.intp), 0, 255)].astype(np.float64)
    out: np.ndarray = np.clip(base * shade[:, None], 0, 255).astype(np.uint8)
    return out
