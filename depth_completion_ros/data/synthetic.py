"""Seeded synthetic scenes for training and demos: outdoor streets with a spinning LiDAR, indoor rooms with a Kinect.

Scenes are built from analytic primitives (ground plane, axis-aligned boxes, vertical cylinders, spheres) and
rendered by vectorised ray casting in numpy: one Python loop over *primitives*, never over pixels or rays.

World frame: x right, y forward (driving direction), z up; the ground is z = 0. The camera is a pinhole in the
usual optical frame (x right, y down, z forward). Depth is the camera z coordinate in metres, float32, 0 = none.

Sensors:
- street: a 64-beam spinning LiDAR (HDL-64E-like elevations, +2 deg .. -24.3 deg, 0.1728 deg azimuth step), mounted
  behind and above the camera as on the KITTI rig. Its returns (with range noise and dropouts) are projected into
  the camera with a z-buffer, so the parallax / see-through artefacts of real rigs appear naturally.
- room: a Kinect-v1-like structured-light sensor registered to the colour camera: projector shadows beside
  foreground objects, holes on dark or shiny surfaces and at grazing angles, noise growing with depth squared,
  disparity and millimetre quantisation, an optional registration border.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from depth_completion_ros.core.camera import CameraModel
from depth_completion_ros.core.projection import project_points
from depth_completion_ros.core.transforms import RigidTransform

# Material ids: they drive texture, LiDAR reflectivity and Kinect dropouts.
SKY, ROAD, SIDEWALK, FACADE, CAR, CAR_CABIN, POLE, TRUNK, FOLIAGE, GRASS, WALL, FLOOR, CEILING, WOOD, FABRIC, \
    SHINY, DARK = range(17)

_KITTI_FX, _KITTI_W, _KITTI_H, _KITTI_CY = 721.5377, 1242, 375, 172.85
_NYU_FX, _NYU_FY, _NYU_W, _NYU_H = 518.0, 519.0, 640, 480
# Camera optical axes expressed in the world (columns): optical x = world x, optical y = -world z, optical z = world y.
_R_WORLD_OPTICAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# Optical from LiDAR axes (x forward, y left, z up): optical x = -lidar y, optical y = -lidar z, optical z = lidar x.
_R_OPTICAL_LIDAR = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass
class SyntheticFrame:
    rgb: np.ndarray            # HxWx3 uint8
    gt_depth: np.ndarray       # HxW float32 m, 0 = no ground truth (sky)
    sparse: np.ndarray         # HxW float32 m: the simulated sensor projected into the camera (0 = none)
    camera: CameraModel
    points: np.ndarray | None  # Nx4 float32 (x, y, z, intensity) in the LiDAR frame (street scenes)
    T_cam_lidar: RigidTransform | None   # LiDAR -> camera optical frame
    kind: str                  # 'street' | 'room'


@dataclass
class _Scene:
    """Primitive soup. Each primitive has a material and an RGB albedo in 0..1."""
    boxes: list[tuple[float, ...]] = field(default_factory=list)       # xmin ymin zmin xmax ymax zmax
    box_attr: list[tuple[int, tuple[float, float, float]]] = field(default_factory=list)
    cylinders: list[tuple[float, ...]] = field(default_factory=list)   # cx cy radius zmin zmax
    cyl_attr: list[tuple[int, tuple[float, float, float]]] = field(default_factory=list)
    spheres: list[tuple[float, ...]] = field(default_factory=list)     # cx cy cz radius
    sph_attr: list[tuple[int, tuple[float, float, float]]] = field(default_factory=list)
    ground: tuple[int, tuple[float, float, float]] | None = None        # z = 0 plane (street)
    room: tuple[float, ...] | None = None                              # enclosing box seen from inside
    room_attr: tuple[float, float, float] = (0.8, 0.8, 0.8)
    road_half_width: float = 4.0

    def add_box(self, lo: tuple[float, float, float], hi: tuple[float, float, float], material: int,
                colour: tuple[float, float, float]) -> None:
        self.boxes.append((*lo, *hi))
        self.box_attr.append((material, colour))

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays; a global primitive id indexes ``material``/``albedo``: ground, room, boxes, cyls, spheres."""
        attrs = [self.ground or (GRASS, (0.3, 0.3, 0.3))]
        attrs.append((WALL, self.room_attr))
        attrs += self.box_attr + self.cyl_attr + self.sph_attr
        return {
            'boxes': np.asarray(self.boxes, np.float32).reshape(-1, 6),
            'cylinders': np.asarray(self.cylinders, np.float32).reshape(-1, 5),
            'spheres': np.asarray(self.spheres, np.float32).reshape(-1, 4),
            'material': np.array([a[0] for a in attrs], np.int32),
            'albedo': np.array([a[1] for a in attrs], np.float32),
        }


# ----------------------------------------------------------------------------------------------------------------
# Ray casting
# ----------------------------------------------------------------------------------------------------------------

_TILE = 8  # rays are culled per 8x8 tile of the ray grid against each primitive's bounding sphere


def _bounding_spheres(scene: _Scene, arr: dict[str, np.ndarray]) -> np.ndarray:
    """(P, 4) centre + radius for boxes, cylinders, spheres, in global-id order after the ground and room."""
    b, c, sp = arr['boxes'], arr['cylinders'], arr['spheres']
    box_c = (b[:, :3] + b[:, 3:]) / 2
    box_r = np.linalg.norm(b[:, 3:] - b[:, :3], axis=1) / 2
    cyl_c = np.stack([c[:, 0], c[:, 1], (c[:, 3] + c[:, 4]) / 2], 1)
    cyl_r = np.hypot(c[:, 2], (c[:, 4] - c[:, 3]) / 2)
    return np.concatenate([np.concatenate([box_c, box_r[:, None]], 1), np.concatenate([cyl_c, cyl_r[:, None]], 1),
                           sp]).astype(np.float32)


def _cast(scene: _Scene, origin: np.ndarray, dirs_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of rays ``origin + t*dirs`` for an (Hg, Wg, 3) grid of directions (need not be unit).

    Returns flat (Hg*Wg) t (inf = miss), primitive id (-1 = miss) and unit normal. Rays are grouped into tiles;
    each tile gets a bounding cone, and a primitive is only intersected with the tiles its bounding sphere
    touches, so the cost grows with screen coverage, not with primitives x rays.
    """
    arr = scene.arrays()
    hg, wg, _ = dirs_grid.shape
    th, tw = -(-hg // _TILE), -(-wg // _TILE)
    padded = np.pad(dirs_grid.astype(np.float32), ((0, th * _TILE - hg), (0, tw * _TILE - wg), (0, 0)), mode='edge')
    # (tiles, rays per tile) per component: contiguous gathers per primitive.
    tiles = padded.reshape(th, _TILE, tw, _TILE, 3).transpose(0, 2, 1, 3, 4).reshape(th * tw, _TILE * _TILE, 3)
    dx, dy, dz = (np.ascontiguousarray(tiles[..., i]) for i in range(3))
    unit = tiles / np.linalg.norm(tiles, axis=2, keepdims=True)
    axis = unit.mean(axis=1)
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    cone_cos = np.clip((unit * axis[:, None]).sum(2).min(axis=1), -1, 1)
    cone_angle = np.arccos(cone_cos)
    o = origin.astype(np.float32)
    best_t = np.full(dx.shape, np.inf, np.float32)
    best_id = np.full(dx.shape, -1, np.int32)
    eps = np.float32(1e-3)

    def take(t: np.ndarray, prim: int, sel: np.ndarray | slice) -> None:
        current = best_t[sel]
        closer = (t > eps) & (t < current)
        best_t[sel] = np.where(closer, t, current)
        best_id[sel] = np.where(closer, prim, best_id[sel])

    def slab(lo: np.ndarray, hi: np.ndarray, ddx: np.ndarray, ddy: np.ndarray, ddz: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        t_near, t_far = None, None
        for comp, o_a, lo_a, hi_a in ((ddx, o[0], lo[0], hi[0]), (ddy, o[1], lo[1], hi[1]), (ddz, o[2], lo[2], hi[2])):
            inv = 1.0 / comp
            t1, t2 = (lo_a - o_a) * inv, (hi_a - o_a) * inv
            tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near = tn if t_near is None else np.maximum(t_near, tn)
            t_far = tf if t_far is None else np.minimum(t_far, tf)
        return t_near, t_far

    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if scene.ground is not None:  # plane z = 0, seen from above
            take(np.where(dz < 0, -o[2] / dz, np.inf).astype(np.float32), 0, slice(None))
        if scene.room is not None:  # enclosing box seen from inside: the exit distance
            _, t_far = slab(np.array(scene.room[:3], np.float32), np.array(scene.room[3:], np.float32), dx, dy, dz)
            take(t_far, 1, slice(None))
        spheres = _bounding_spheres(scene, arr)
        to_centre = spheres[:, :3] - o
        dist = np.linalg.norm(to_centre, axis=1)
        ang_radius = np.where(dist > spheres[:, 3], np.arcsin(np.clip(spheres[:, 3] / dist.clip(1e-6), 0, 1)), np.pi)
        centre_angle = np.arccos(np.clip((to_centre / dist.clip(1e-6)[:, None]) @ axis.T, -1, 1))   # (P, tiles)
        visible = centre_angle <= cone_angle[None] + ang_radius[:, None] + 1e-3
        n_box, n_cyl = len(arr['boxes']), len(arr['cylinders'])
        for k in range(len(spheres)):
            sel = np.flatnonzero(visible[k])
            if sel.size == 0:
                continue
            ddx, ddy, ddz = dx[sel], dy[sel], dz[sel]
            if k < n_box:
                box = arr['boxes'][k]
                t_near, t_far = slab(box[:3], box[3:], ddx, ddy, ddz)
                t = np.where(t_far >= t_near, t_near, np.inf)
            elif k < n_box + n_cyl:
                cx, cy, r, z0, z1 = arr['cylinders'][k - n_box]
                ox, oy = o[0] - cx, o[1] - cy
                a = ddx * ddx + ddy * ddy
                b = ox * ddx + oy * ddy
                disc = b * b - a * (ox * ox + oy * oy - r * r)
                t = (-b - np.sqrt(disc)) / a
                z = o[2] + t * ddz
                t = np.where((disc > 0) & (z >= z0) & (z <= z1), t, np.inf)
            else:
                cx, cy, cz, r = arr['spheres'][k - n_box - n_cyl]
                ox, oy, oz = o[0] - cx, o[1] - cy, o[2] - cz
                a = ddx * ddx + ddy * ddy + ddz * ddz
                b = ox * ddx + oy * ddy + oz * ddz
                disc = b * b - a * (ox * ox + oy * oy + oz * oz - r * r)
                t = np.where(disc > 0, (-b - np.sqrt(disc)) / a, np.inf)
            take(t.astype(np.float32), 2 + k, sel)

    def unpad(values: np.ndarray) -> np.ndarray:
        grid = values.reshape(th, tw, _TILE, _TILE).transpose(0, 2, 1, 3).reshape(th * _TILE, tw * _TILE)
        return grid[:hg, :wg].reshape(-1)

    t_flat, id_flat = unpad(best_t), unpad(best_id)
    d_flat = dirs_grid.reshape(-1, 3).astype(np.float32)
    return t_flat, id_flat, _normals(scene, arr, o, d_flat, t_flat, id_flat)


def _normals(scene: _Scene, arr: dict[str, np.ndarray], o: np.ndarray, d: np.ndarray, t: np.ndarray,
             prim: np.ndarray) -> np.ndarray:
    """Unit surface normals at the hits (zeros for misses); computed once per ray for its nearest primitive."""
    n = np.zeros_like(d)
    hit = np.isfinite(t)
    p = o + d * np.where(hit, t, 0)[:, None]
    n[prim == 0, 2] = 1.0
    n_box, n_cyl = len(arr['boxes']), len(arr['cylinders'])
    box_sel = (prim >= 1) & (prim < 2 + n_box)
    if box_sel.any():
        idx = prim[box_sel]
        bounds = np.concatenate([np.asarray(scene.room or (0,) * 6, np.float32)[None], arr['boxes']])[idx - 1]
        # The face whose plane the hit lies on: smallest distance to either bound, per axis.
        q = p[box_sel]
        dist = np.minimum(np.abs(q - bounds[:, :3]), np.abs(q - bounds[:, 3:]))
        axis = dist.argmin(axis=1)
        rows = np.arange(len(idx))
        nb = np.zeros((len(idx), 3), np.float32)
        nb[rows, axis] = -np.sign(d[box_sel][rows, axis])
        n[box_sel] = nb
    cyl_sel = (prim >= 2 + n_box) & (prim < 2 + n_box + n_cyl)
    if cyl_sel.any():
        c = arr['cylinders'][prim[cyl_sel] - 2 - n_box]
        v = p[cyl_sel, :2] - c[:, :2]
        n[cyl_sel, :2] = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-6)
    sph_sel = prim >= 2 + n_box + n_cyl
    if sph_sel.any():
        s = arr['spheres'][prim[sph_sel] - 2 - n_box - n_cyl]
        v = p[sph_sel] - s[:, :3]
        n[sph_sel] = v / np.linalg.norm(v, axis=1, keepdims=True).clip(1e-6)
    return n


def _hash_noise(p: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Blocky value noise in [0, 1) from integer lattice cells of ``p * scale`` (cheap, deterministic)."""
    c = np.floor(p * scale).astype(np.int64)
    h = (c[:, 0] * 73856093) ^ (c[:, 1] * 19349663) ^ (c[:, 2] * 83492791) ^ (seed * 2654435761)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h ^ (h >> 16)) & 0xFFFF).astype(np.float32) / 65536.0


def _camera_rays(K: np.ndarray, width: int, height: int, R_world_cam: np.ndarray) -> np.ndarray:
    """World-frame ray directions scaled so that t equals the camera z depth."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float32) + 0.5, np.arange(height, dtype=np.float32) + 0.5)
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    return (rays_cam @ R_world_cam.T.astype(np.float32)).astype(np.float32).reshape(height, width, 3)


def _yaw(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-optical rotation for a camera looking along +y, then yawed (about z), pitched, rolled."""
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])      # pitch about world x (positive = up)
    ry = np.array([[cr, 0, sr], [0, 1, 0], [-sr, 0, cr]])      # roll about the forward axis
    return rz @ rx @ ry @ _R_WORLD_OPTICAL


def _shade(scene: _Scene, p: np.ndarray, normal: np.ndarray, prim: np.ndarray, t: np.ndarray, d: np.ndarray,
           rng_seed: int, sun: np.ndarray, sky_top: np.ndarray, sky_bottom: np.ndarray,
           haze_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Procedural albedo x Lambertian light. Returns linear RGB (N,3), albedo grey level, and a 'glass' flag."""
    arr = scene.arrays()
    hit = prim >= 0
    mat = np.where(hit, arr['material'][prim.clip(0)], SKY)
    albedo = arr['albedo'][prim.clip(0)].copy()
    # Texture coordinates on the face: drop the normal's dominant axis.
    axis = np.abs(normal).argmax(axis=1)
    uv = np.where((axis == 0)[:, None], p[:, [1, 2]], np.where((axis == 1)[:, None], p[:, [0, 2]], p[:, [0, 1]]))
    fine = _hash_noise(p, 8.0, rng_seed)
    coarse = _hash_noise(p, 1.3, rng_seed + 1)
    grain = 0.8 + 0.25 * fine + 0.15 * coarse
    glass = np.zeros(len(p), bool)

    road = mat == ROAD
    lane = road & (((np.abs(p[:, 0]) < 0.07) & (np.mod(p[:, 1], 9.0) < 3.0))
                   | (np.abs(np.abs(p[:, 0]) - (scene.road_half_width - 0.3)) < 0.07))
    albedo[lane] = 0.85
    sidewalk = mat == SIDEWALK
    tiles = (np.mod(uv[:, 0], 0.6) < 0.03) | (np.mod(uv[:, 1], 0.6) < 0.03)
    albedo[sidewalk & tiles] *= 0.6
    facade = (mat == FACADE) & (axis != 2)
    along = uv[:, 0]
    window = facade & (np.mod(along, 3.1) > 0.9) & (np.mod(along, 3.1) < 2.3) & (np.mod(p[:, 2], 3.2) > 1.0) \
        & (np.mod(p[:, 2], 3.2) < 2.6) & (p[:, 2] > 2.0)
    albedo[window] = np.array([0.12, 0.15, 0.2], np.float32) + 0.1 * coarse[window, None]
    glass |= window
    cabin_glass = (mat == CAR_CABIN) & (axis != 2)
    albedo[cabin_glass] = np.array([0.06, 0.07, 0.09], np.float32)
    glass |= cabin_glass
    albedo[mat == FOLIAGE] *= (0.6 + 0.8 * fine[mat == FOLIAGE])[:, None]
    albedo *= grain[:, None]
    albedo[mat == SHINY] *= 0.9

    lambert = np.clip(normal @ sun.astype(np.float32), 0, None)
    sky_light = 0.5 + 0.5 * normal[:, 2]
    light = 0.25 + 0.2 * sky_light + 0.85 * lambert
    if scene.room is not None:  # indoor: a point light near the ceiling plus strong ambient
        light = 0.45 + 0.55 * np.clip((normal * -d / np.linalg.norm(d, axis=1, keepdims=True)).sum(1), 0, None)
    colour = albedo * light[:, None]
    # Sky: vertical gradient; haze blends distant surfaces towards the horizon colour.
    elev = d[:, 2] / np.linalg.norm(d, axis=1)
    sky = sky_bottom + (sky_top - sky_bottom) * np.clip(elev * 3.0, 0, 1)[:, None]
    if scene.room is None:
        fog = (1.0 - np.exp(-np.where(hit, t, 1e9) / haze_m))[:, None]
        colour = np.where(hit[:, None], colour * (1 - fog) + sky_bottom * fog, sky)
    grey = albedo.mean(axis=1)
    return colour, grey, glass


def _to_uint8(colour_linear: np.ndarray, exposure: float, noise_sigma: float, rng: np.random.Generator,
              shape: tuple[int, int]) -> np.ndarray:
    img = np.clip(colour_linear * exposure, 0, 1) ** (1 / 2.2) * 255.0
    img = img.reshape(*shape, 3) + rng.normal(0.0, noise_sigma, (*shape, 3)).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# Street
# ----------------------------------------------------------------------------------------------------------------

def _street_scene(rng: np.random.Generator, y_start: float, y_end: float) -> _Scene:
    s = _Scene()
    half = float(rng.uniform(3.5, 6.0))
    s.road_half_width = half
    s.ground = (ROAD, tuple(rng.uniform(0.22, 0.32) * np.ones(3)))
    sidewalk_w = float(rng.uniform(1.5, 4.0))
    kerb_h = float(rng.uniform(0.1, 0.2))
    for side in (-1, 1):
        x0, x1 = sorted((side * half, side * (half + sidewalk_w)))
        s.add_box((x0, y_start, 0.0), (x1, y_end, kerb_h), SIDEWALK, tuple(rng.uniform(0.45, 0.6) * np.ones(3)))
        # Facades: a row of buildings with random setback, width, height and colour, with occasional gaps.
        y = y_start
        while y < y_end:
            width = float(rng.uniform(6, 22))
            if rng.random() < 0.15:  # gap / side street
                y += width
                continue
            setback = float(rng.uniform(0, 3))
            xa = side * (half + sidewalk_w + setback)
            xb = xa + side * rng.uniform(8, 15)
            colour = tuple(float(c) for c in rng.uniform(0.3, 0.8) * rng.uniform(0.75, 1.0, 3))
            s.add_box((min(xa, xb), y, 0.0), (max(xa, xb), y + width, float(rng.uniform(5, 20))), FACADE, colour)
            y += width + float(rng.uniform(0, 1.5))
        # Parked cars along the kerb.
        y = y_start + float(rng.uniform(0, 6))
        while y < y_end:
            if rng.random() < 0.7:
                length, width, height = rng.uniform(3.8, 4.8), rng.uniform(1.6, 1.9), rng.uniform(1.35, 1.6)
                xc = side * (half - width / 2 - rng.uniform(0.2, 0.5))
                colour = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
                s.add_box((xc - width / 2, y, 0.25), (xc + width / 2, y + length, height * 0.6), CAR, colour)
                cabin_lo = y + length * rng.uniform(0.2, 0.3)
                s.add_box((xc - width * 0.45, cabin_lo, height * 0.6), (xc + width * 0.45, cabin_lo + length * 0.5,
                          height), CAR_CABIN, colour)
                s.add_box((xc - width * 0.4, y + 0.4, 0.0), (xc + width * 0.4, y + length - 0.4, 0.25), DARK,
                          (0.05, 0.05, 0.05))  # wheels / underbody
                y += length + float(rng.uniform(0.5, 3))
            else:
                y += float(rng.uniform(4, 12))
        # Poles and trees on the sidewalk.
        y = y_start + float(rng.uniform(0, 10))
        while y < y_end:
            x = side * (half + rng.uniform(0.3, 0.8) * sidewalk_w)
            if rng.random() < 0.5:
                s.cylinders.append((x, y, float(rng.uniform(0.06, 0.15)), 0.0, float(rng.uniform(3, 8))))
                s.cyl_attr.append((POLE, tuple(rng.uniform(0.3, 0.6) * np.ones(3))))
            else:
                trunk_h = float(rng.uniform(1.5, 3.5))
                s.cylinders.append((x, y, float(rng.uniform(0.12, 0.3)), 0.0, trunk_h + 0.5))
                s.cyl_attr.append((TRUNK, (0.3, 0.22, 0.15)))
                r = float(rng.uniform(1.2, 2.8))
                s.spheres.append((x, y, trunk_h + r * 0.8, r))
                s.sph_attr.append((FOLIAGE, (0.18, float(rng.uniform(0.3, 0.5)), 0.12)))
            y += float(rng.uniform(6, 20))
        for _ in range(int((y_end - y_start) / 15)):  # low bushes between sidewalk and facades
            x = side * (half + sidewalk_w + rng.uniform(0.3, 1.5))
            s.spheres.append((x, float(rng.uniform(y_start, y_end)), float(rng.uniform(-0.2, 0.4)),
                              float(rng.uniform(0.5, 1.2))))
            s.sph_attr.append((FOLIAGE, (0.2, 0.4, 0.15)))
    # A few cars in the driving lanes ahead.
    for _ in range(int(rng.integers(0, 4))):
        y = float(rng.uniform(y_start + 12, y_end))
        xc = float(rng.choice([-1, 1]) * half / 2)
        colour = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
        s.add_box((xc - 0.9, y, 0.25), (xc + 0.9, y + 4.3, 0.9), CAR, colour)
        s.add_box((xc - 0.8, y + 1.2, 0.9), (xc + 0.8, y + 3.2, 1.45), CAR_CABIN, colour)
    return s


# HDL-64E: upper block 32 beams +2 .. -8.33 deg (1/3 deg), lower block 32 beams -8.83 .. -24.33 deg (1/2 deg).
LIDAR_ELEVATIONS_DEG = np.concatenate([2.0 - np.arange(32) / 3.0, -8.83 - np.arange(32) * 0.5])
LIDAR_AZIMUTH_STEP_DEG = 0.1728
# LiDAR origin relative to the camera in the world frame (right, forward, up): behind and above, as on KITTI.
LIDAR_OFFSET_M = np.array([0.0, -0.30, 0.20])


def _lidar_scan(scene: _Scene, origin: np.ndarray, yaw: float, rng: np.random.Generator, seed: int,
                azimuth_half_fov_deg: float, max_range: float = 120.0) -> np.ndarray:
    """One sweep (restricted to the sector around the camera's view). Returns Nx4 (x fwd, y left, z up, I)."""
    az = np.deg2rad(np.arange(-azimuth_half_fov_deg, azimuth_half_fov_deg, LIDAR_AZIMUTH_STEP_DEG))
    el = np.deg2rad(LIDAR_ELEVATIONS_DEG + rng.normal(0, 0.02, LIDAR_ELEVATIONS_DEG.size))
    az_grid, el_grid = np.meshgrid(az + rng.uniform(0, np.deg2rad(LIDAR_AZIMUTH_STEP_DEG)), el)
    # LiDAR frame: x forward, y left, z up; the LiDAR is yawed with the vehicle.
    dirs_lidar = np.stack([np.cos(el_grid) * np.cos(az_grid), np.cos(el_grid) * np.sin(az_grid), np.sin(el_grid)],
                          -1).astype(np.float32)
    r_world_lidar = _yaw(yaw) @ _R_WORLD_OPTICAL @ _R_OPTICAL_LIDAR
    dirs_world = dirs_lidar @ r_world_lidar.T.astype(np.float32)
    t, prim, normal = _cast(scene, origin, dirs_world)
    dirs_world, dirs_lidar = dirs_world.reshape(-1, 3), dirs_lidar.reshape(-1, 3)
    p = origin + dirs_world * np.where(np.isfinite(t), t, 0)[:, None]
    _, grey, glass = _shade(scene, p, normal, prim, t, dirs_world, seed, np.array([0, 0, 1.0]), np.zeros(3),
                            np.zeros(3), 1e9)
    cos_inc = np.abs((normal * dirs_world).sum(1))
    # Dropouts: random loss, grazing incidence, dark and specular (glass) surfaces, out of range.
    p_drop = 0.03 + 0.5 * (cos_inc < 0.08) + 0.35 * (grey < 0.08) + 0.6 * glass
    keep = np.isfinite(t) & (t < max_range) & (rng.random(t.size) > p_drop)
    rng_m = t[keep] + rng.normal(0.0, 0.02, keep.sum()).astype(np.float32)
    xyz = dirs_lidar[keep] * rng_m[:, None]
    intensity = np.clip(grey[keep] * (0.3 + 0.7 * cos_inc[keep]) + rng.normal(0, 0.03, keep.sum()), 0, 1)
    return np.concatenate([xyz, intensity[:, None]], 1).astype(np.float32)


def _street_intrinsics(width: int, height: int) -> tuple[float, float, float, float]:
    # KITTI-like field of view at any size: fx scales with the width, the horizon sits at KITTI's relative row.
    fx = _KITTI_FX * width / _KITTI_W
    return fx, fx, width / 2.0, _KITTI_CY / _KITTI_H * height


def _render_street(scene: _Scene, seed: int, cam_pos: np.ndarray, yaw: float, pitch: float, roll: float,
                   width: int, height: int, intrinsics: tuple[float, float, float, float],
                   style: dict) -> SyntheticFrame:
    rng = np.random.default_rng([seed, 1, int(cam_pos[1] * 1000)])
    fx, fy, cx, cy = intrinsics
    r_world_cam = _rotation(yaw, pitch, roll)
    rgb, gt, camera = _camera_view(scene, seed, cam_pos, r_world_cam, intrinsics, width, height, style, rng)
    lidar_origin = cam_pos + _yaw(yaw) @ LIDAR_OFFSET_M
    half_fov = float(np.rad2deg(np.arctan(max(cx, width - cx) / fx))) + 8.0
    points = _lidar_scan(scene, lidar_origin.astype(np.float32), yaw, rng, seed, half_fov)
    T_cam_lidar = _camera_from_lidar(r_world_cam, cam_pos, yaw, lidar_origin)
    sparse = project_points(T_cam_lidar.apply(points[:, :3].astype(np.float64)), camera, min_range=0.1)
    return SyntheticFrame(rgb=rgb, gt_depth=gt, sparse=sparse.astype(np.float32), camera=camera, points=points,
                          T_cam_lidar=T_cam_lidar, kind='street')


def _camera_view(scene: _Scene, seed: int, cam_pos: np.ndarray, r_world_cam: np.ndarray,
                 intrinsics: tuple[float, float, float, float], width: int, height: int, style: dict,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, CameraModel]:
    """(rgb, ground-truth depth, camera model) of one camera at ``cam_pos`` looking along ``r_world_cam``."""
    fx, fy, cx, cy = intrinsics
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    dirs = _camera_rays(K, width, height, r_world_cam)
    t, prim, normal = _cast(scene, cam_pos, dirs)
    dirs = dirs.reshape(-1, 3)
    p = cam_pos + dirs * np.where(np.isfinite(t), t, 0)[:, None]
    colour, _, _ = _shade(scene, p, normal, prim, t, dirs, seed, style['sun'], style['sky_top'],
                          style['sky_bottom'], style['haze_m'])
    rgb = _to_uint8(colour, style['exposure'], 2.0, rng, (height, width))
    gt = np.where(np.isfinite(t) & (t < 300.0), t, 0.0).astype(np.float32).reshape(height, width)
    return rgb, gt, CameraModel.from_intrinsics(fx, fy, cx, cy, width, height, frame_id='camera')


def _camera_from_lidar(r_world_cam: np.ndarray, cam_pos: np.ndarray, yaw: float,
                       lidar_origin: np.ndarray) -> RigidTransform:
    """LiDAR -> camera: the LiDAR frame is yawed with the vehicle only; the camera also has pitch and roll."""
    r_world_lidar = _yaw(yaw) @ _R_WORLD_OPTICAL @ _R_OPTICAL_LIDAR
    return RigidTransform(rotation=r_world_cam.T @ r_world_lidar, translation=r_world_cam.T @ (lidar_origin - cam_pos))


# A car's camera rig around the roof LiDAR for street_rig_sequence: (offset to the right of the first camera in m,
# yaw in rad, focal length scale). cam1 is a narrower stereo partner 0.54 m to the right (KITTI's baseline),
# cam2/cam3 look 40 degrees to either side with a wider lens.
RIG_CAMERAS = ((0.0, 0.0, 1.0), (0.54, 0.0, 1.25), (-0.3, np.deg2rad(40.0), 0.8), (0.3, -np.deg2rad(40.0), 0.8))


def street_rig_sequence(seed: int, n_frames: int, n_cameras: int = 2, width: int = 1242, height: int = 375,
                        rate_hz: float = 10.0, speed_mps: float = 8.0) -> Iterator[list[SyntheticFrame]]:
    """Consecutive frames of one drive seen by ``n_cameras`` cameras of :data:`RIG_CAMERAS` (own intrinsics and
    extrinsics) around one LiDAR: per frame one list, the same scan (``points``) in every entry."""
    if not 1 <= n_cameras <= len(RIG_CAMERAS):
        raise ValueError(f'the synthetic rig has 1 to {len(RIG_CAMERAS)} cameras, not {n_cameras}')
    rng = np.random.default_rng([seed, 0])
    length = n_frames * speed_mps / rate_hz
    scene = _street_scene(rng, -15.0, length + 110.0)
    x = float(rng.uniform(-0.3, 0.3)) * scene.road_half_width
    style = _street_style(rng)
    fx, fy, cx, cy = _street_intrinsics(width, height)
    rig = RIG_CAMERAS[:n_cameras]
    # The scan covers every camera's view: the widest half field of view plus its yaw.
    half_fov = max(float(np.rad2deg(np.arctan(max(cx, width - cx) / (fx * scale)) + abs(yaw)))
                   for _offset, yaw, scale in rig) + 8.0
    for i in range(n_frames):
        base = np.array([x, i * speed_mps / rate_hz, 1.65], np.float32)
        frame_rng = np.random.default_rng([seed, 1, int(base[1] * 1000)])
        # A rigid rig, no suspension bounce: one static transform per camera holds for the whole drive (a bounce
        # pitches each camera about its own axis, which no single LiDAR motion can stand for in a bag).
        pitch = -0.01
        lidar_origin = base + LIDAR_OFFSET_M
        views = []
        for offset, yaw, scale in rig:
            cam_pos = (base + np.array([offset, 0.0, 0.0])).astype(np.float32)
            r_world_cam = _rotation(yaw, pitch, 0.0)
            intrinsics = (fx * scale, fy * scale, cx, cy)
            rgb, gt, camera = _camera_view(scene, seed, cam_pos, r_world_cam, intrinsics, width, height, style,
                                           frame_rng)
            views.append((rgb, gt, camera, _camera_from_lidar(r_world_cam, cam_pos, 0.0, lidar_origin)))
        points = _lidar_scan(scene, lidar_origin.astype(np.float32), 0.0, frame_rng, seed, min(half_fov, 180.0))
        frames = []
        for rgb, gt, camera, T_cam_lidar in views:
            sparse = project_points(T_cam_lidar.apply(points[:, :3].astype(np.float64)), camera, min_range=0.1)
            frames.append(SyntheticFrame(rgb=rgb, gt_depth=gt, sparse=sparse.astype(np.float32), camera=camera,
                                         points=points, T_cam_lidar=T_cam_lidar, kind='street'))
        yield frames


def _street_style(rng: np.random.Generator) -> dict:
    sun_az, sun_el = rng.uniform(0, 2 * np.pi), rng.uniform(np.deg2rad(20), np.deg2rad(65))
    return {
        'sun': np.array([np.cos(sun_el) * np.cos(sun_az), np.cos(sun_el) * np.sin(sun_az), np.sin(sun_el)]),
        'sky_top': np.array([0.25, 0.45, 0.85]) * rng.uniform(0.8, 1.1),
        'sky_bottom': np.array([0.75, 0.8, 0.9]) * rng.uniform(0.8, 1.05),
        'haze_m': float(rng.uniform(150, 400)),
        'exposure': float(rng.uniform(0.8, 1.25)),
    }


def street_frame(seed: int, width: int = 1242, height: int = 375,
                 intrinsics: tuple[float, float, float, float] | None = None) -> SyntheticFrame:
    """One street scene seen from a car. ``intrinsics`` (fx, fy, cx, cy) overrides the KITTI-like default."""
    rng = np.random.default_rng([seed, 0])
    scene = _street_scene(rng, -15.0, 110.0)
    cam = np.array([rng.uniform(-0.4, 0.4) * scene.road_half_width, 0.0, rng.uniform(1.55, 1.75)], np.float32)
    return _render_street(scene, seed, cam, float(rng.normal(0, 0.06)), float(rng.normal(-0.01, 0.02)),
                          float(rng.normal(0, 0.01)), width, height, intrinsics or _street_intrinsics(width, height),
                          _street_style(rng))


def street_sequence(seed: int, n_frames: int, width: int = 1242, height: int = 375,
                    rate_hz: float = 10.0, speed_mps: float = 8.0,
                    moving_car_mps: float | None = None) -> Iterator[SyntheticFrame]:
    """Consecutive frames of one drive: the same street, camera moving forward at ``speed_mps``.

    ``moving_car_mps``: plant a car in the next lane, 18 m ahead in frame 0, driving forward at that speed
    (negative: oncoming), the one thing in the scene that moves (to test accumulation over frames)."""
    import copy

    rng = np.random.default_rng([seed, 0])
    length = n_frames * speed_mps / rate_hz
    scene = _street_scene(rng, -15.0, length + 110.0)
    x = float(rng.uniform(-0.3, 0.3)) * scene.road_half_width
    style = _street_style(rng)
    lane = -0.5 * scene.road_half_width if x > 0 else 0.5 * scene.road_half_width
    for i in range(n_frames):
        cam = np.array([x, i * speed_mps / rate_hz, 1.65], np.float32)
        pitch = -0.01 + 0.004 * np.sin(i * 0.7)  # suspension bounce
        frame_scene = scene
        if moving_car_mps is not None:
            frame_scene = copy.deepcopy(scene)
            y = 18.0 + i * moving_car_mps / rate_hz
            frame_scene.add_box((lane - 0.9, y, 0.25), (lane + 0.9, y + 4.3, 0.9), CAR, (0.7, 0.1, 0.1))
            frame_scene.add_box((lane - 0.8, y + 1.2, 0.9), (lane + 0.8, y + 3.2, 1.45), CAR_CABIN, (0.7, 0.1, 0.1))
        yield _render_street(frame_scene, seed, cam, 0.0, pitch, 0.0, width, height,
                             _street_intrinsics(width, height), style)


# ----------------------------------------------------------------------------------------------------------------
# Room
# ----------------------------------------------------------------------------------------------------------------

def _room_scene(rng: np.random.Generator) -> tuple[_Scene, tuple[float, float, float]]:
    s = _Scene()
    w, d, h = rng.uniform(3.5, 7.0), rng.uniform(4.0, 9.0), rng.uniform(2.4, 3.0)
    s.room = (-w / 2, -1.0, 0.0, w / 2, d, h)
    s.room_attr = tuple(float(c) for c in rng.uniform(0.55, 0.9) * rng.uniform(0.85, 1.0, 3))

    def rand_colour(lo: float = 0.1, hi: float = 0.9) -> tuple[float, float, float]:
        return tuple(float(c) for c in rng.uniform(lo, hi, 3))

    s.add_box((-w / 2, -1.0, -0.01), (w / 2, d, 0.0), FLOOR, rand_colour(0.3, 0.6))
    s.add_box((-w / 2, -1.0, h - 0.01), (w / 2, d, h + 0.01), CEILING, (0.9, 0.9, 0.88))
    # Furniture along the walls and in the room: cabinets, sofas, shelves, tables (top + legs), clutter.
    for _ in range(int(rng.integers(3, 7))):
        kind = rng.choice(['cabinet', 'sofa', 'shelf', 'table'])
        fw, fd = rng.uniform(0.6, 2.0), rng.uniform(0.4, 1.0)
        along_wall = rng.random() < 0.6
        if along_wall:
            side = rng.choice([-1, 1])
            x0 = side * w / 2 - (fd if side > 0 else 0)
            y0 = rng.uniform(0.8, d - fw)
            lo, hi = (x0, y0), (x0 + fd, y0 + fw)
        else:
            x0, y0 = rng.uniform(-w / 2 + 0.3, w / 2 - fw - 0.3), rng.uniform(1.2, d - fd - 0.3)
            lo, hi = (x0, y0), (x0 + fw, y0 + fd)
        material = rng.choice([WOOD, FABRIC, DARK, SHINY], p=[0.45, 0.3, 0.15, 0.1])
        colour = (0.04, 0.04, 0.05) if material == DARK else rand_colour()
        if kind == 'table':
            top = rng.uniform(0.7, 0.8)
            s.add_box((lo[0], lo[1], top - 0.04), (hi[0], hi[1], top), material, colour)
            for lx, ly in ((lo[0], lo[1]), (hi[0] - 0.06, lo[1]), (lo[0], hi[1] - 0.06), (hi[0] - 0.06,
                                                                                             hi[1] - 0.06)):
                s.add_box((lx, ly, 0.0), (lx + 0.06, ly + 0.06, top - 0.04), material, colour)
            surface = top
        else:
            height = {'cabinet': rng.uniform(0.8, 2.0), 'sofa': rng.uniform(0.4, 0.9),
                      'shelf': rng.uniform(1.2, 2.2)}[str(kind)]
            s.add_box((lo[0], lo[1], 0.0), (hi[0], hi[1], height), material, colour)
            surface = height
        for _ in range(int(rng.integers(0, 4))):  # clutter on top
            cx, cy = rng.uniform(lo[0] + 0.1, hi[0] - 0.1), rng.uniform(lo[1] + 0.1, hi[1] - 0.1)
            size = rng.uniform(0.05, 0.25)
            shape = rng.integers(0, 3)
            clutter_mat = int(rng.choice([WOOD, SHINY, DARK, FABRIC]))
            if shape == 0:
                s.add_box((cx - size, cy - size, surface), (cx + size, cy + size, surface + rng.uniform(0.05, 0.4)),
                          clutter_mat, rand_colour())
            elif shape == 1:
                s.cylinders.append((cx, cy, size * 0.6, surface, surface + float(rng.uniform(0.1, 0.4))))
                s.cyl_attr.append((clutter_mat, rand_colour()))
            else:
                s.spheres.append((cx, cy, surface + size, size))
                s.sph_attr.append((clutter_mat, rand_colour()))
    for _ in range(int(rng.integers(2, 8))):  # floor clutter: boxes, balls, bins
        cx, cy, size = rng.uniform(-w / 2 + 0.3, w / 2 - 0.3), rng.uniform(1.0, d - 0.3), rng.uniform(0.1, 0.35)
        if rng.random() < 0.5:
            s.add_box((cx - size, cy - size, 0.0), (cx + size, cy + size, 2 * size), WOOD, rand_colour())
        else:
            s.spheres.append((cx, cy, size, size))
            s.sph_attr.append((FABRIC, rand_colour()))
    return s, (float(w), float(d), float(h))


def _kinect(gt: np.ndarray, grey: np.ndarray, material: np.ndarray, cos_inc: np.ndarray, fx: float,
            rng: np.random.Generator, border: bool) -> np.ndarray:
    """Kinect-v1-like depth registered to the camera: shadows, holes, depth^2 noise, quantisation."""
    height, width = gt.shape
    baseline = 0.075
    depth = gt.copy()
    valid = depth > 0
    # Projector shadows: pixel u is unseen by the projector (to the right of the camera) when a nearer surface
    # within the disparity difference occludes it. One pass per offset k, vectorised over the image.
    inv = np.where(valid, 1.0 / np.maximum(depth, 1e-3), 0.0)
    shadow = np.zeros_like(valid)
    for k in range(1, 48):
        nearer_inv = np.zeros_like(inv)
        nearer_inv[:, :-k] = inv[:, k:]
        shadow |= valid & (fx * baseline * (nearer_inv - inv) > k)
    # Edge dropouts: unstable pattern matching at depth discontinuities.
    edge = np.zeros_like(valid)
    rel_jump = np.abs(np.diff(depth, axis=1)) > 0.04 * depth[:, 1:]
    edge[:, 1:] |= rel_jump
    edge[:, :-1] |= rel_jump
    rel_jump = np.abs(np.diff(depth, axis=0)) > 0.04 * depth[1:]
    edge[1:] |= rel_jump
    edge[:-1] |= rel_jump
    edge = edge & (rng.random(edge.shape) < 0.8)
    dark = (grey < 0.07) & (rng.random(grey.shape) < 0.85)
    shiny = (material == SHINY) & (rng.random(grey.shape) < 0.6)
    grazing = (cos_inc < 0.15) & (rng.random(grey.shape) < 0.7)
    out_of_range = (depth < 0.5) | (depth > rng.uniform(6.0, 9.5))
    speckle = rng.random(depth.shape) < 0.01
    holes = shadow | edge | dark | shiny | grazing | out_of_range | speckle
    noisy = depth + rng.normal(0.0, 1.0, depth.shape) * (0.0012 + 0.0019 * (depth - 0.4).clip(0) ** 2)
    # Disparity quantised to 1/8 px (steps grow as depth^2), then stored in whole millimetres.
    fb = fx * baseline
    disparity = np.round(fb / np.maximum(noisy, 0.3) * 8.0) / 8.0
    quant = np.round(fb / np.maximum(disparity, 1e-3) * 1000.0) / 1000.0
    out = np.where(valid & ~holes, quant, 0.0).astype(np.float32)
    if border:  # the black band left by depth-to-colour registration
        out[:, : int(rng.integers(6, 40))] = 0
        out[: int(rng.integers(4, 30))] = 0
    return out


def room_frame(seed: int, width: int = 640, height: int = 480,
               intrinsics: tuple[float, float, float, float] | None = None, border: bool = True) -> SyntheticFrame:
    """An indoor room seen by an RGB-D camera; ``sparse`` is the simulated (registered) Kinect depth."""
    rng = np.random.default_rng([seed, 2])
    scene, (w, d, h) = _room_scene(rng)
    if intrinsics is None:
        intrinsics = (_NYU_FX * width / _NYU_W, _NYU_FY * width / _NYU_W, (325.5 / _NYU_W) * width,
                      (253.5 / _NYU_H) * height)
    fx, fy, cx, cy = intrinsics
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    cam = np.array([rng.uniform(-w / 4, w / 4), rng.uniform(-0.8, 0.5), rng.uniform(1.0, 1.7)], np.float32)
    r_world_cam = _rotation(float(rng.normal(0, 0.3)), float(rng.uniform(-0.45, 0.05)), float(rng.normal(0, 0.03)))
    dirs = _camera_rays(K, width, height, r_world_cam)
    t, prim, normal = _cast(scene, cam, dirs)
    dirs = dirs.reshape(-1, 3)
    p = cam + dirs * np.where(np.isfinite(t), t, 0)[:, None]
    colour, grey, _ = _shade(scene, p, normal, prim, t, dirs, seed, np.zeros(3), np.zeros(3), np.zeros(3), 1e9)
    rgb = _to_uint8(colour, float(rng.uniform(0.8, 1.2)), 2.5, rng, (height, width))
    gt = np.where(np.isfinite(t), t, 0.0).astype(np.float32).reshape(height, width)
    material = scene.arrays()['material'][prim.clip(0)].reshape(height, width)
    cos_inc = (np.abs((normal * dirs).sum(1)) / np.linalg.norm(dirs, axis=1)).reshape(height, width)
    sparse = _kinect(gt, grey.reshape(height, width), material, cos_inc, fx, rng, border)
    camera = CameraModel.from_intrinsics(fx, fy, cx, cy, width, height, frame_id='camera')
    return SyntheticFrame(rgb=rgb, gt_depth=gt, sparse=sparse, camera=camera, points=None, T_cam_lidar=None,
                          kind='room')
