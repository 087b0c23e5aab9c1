"""Pixel-space primitives of the synthetic generator: smooth noise, per-key hashing, the Voronoi
tessellation of grains, random sequential particle placement and ellipse rasterising."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .laws import PARTICLE_ASPECT_MAX

__all__ = ["Grains", "hash_uniform", "place_particles", "raster_ellipses", "smooth_noise"]

#: Minimum gap (px) between circumscribed circles so that particles never 8-connect.
PARTICLE_GAP_PX = 1.5
_PLACEMENT_ROUNDS = 10


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], corr_px: float) -> np.ndarray:
    """Unit-variance smooth noise with correlation length ~``corr_px`` (cubic upsampling).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (draws one coarse normal grid).
    shape : tuple of int
        (height, width) in pixels.
    corr_px : float
        Correlation length in pixels (at least 1).

    Returns
    -------
    numpy.ndarray
        float64 (H, W) noise with zero mean and unit standard deviation.
    """
    h, w = shape
    corr = max(float(corr_px), 1.0)
    gh, gw = int(math.ceil(h / corr)) + 4, int(math.ceil(w / corr)) + 4
    coarse = rng.standard_normal((gh, gw))
    yy = np.arange(h) / corr + 1.5
    xx = np.arange(w) / corr + 1.5
    out = ndimage.map_coordinates(
        coarse, np.meshgrid(yy, xx, indexing="ij"), order=3, mode="nearest"
    )
    s = out.std()
    return out / s if s > 0 else out


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def hash_uniform(*keys: np.ndarray) -> np.ndarray:
    """Deterministic uniform [0, 1) per integer key tuple (splitmix64 mixing).

    Unlike a random generator, the value of a key does not depend on which other keys are
    asked for, so per-lath properties can be computed pixel-wise.

    Parameters
    ----------
    *keys : numpy.ndarray
        Integer keys (broadcast against each other).

    Returns
    -------
    numpy.ndarray
        float64 values in [0, 1), one per broadcast key tuple.
    """
    with np.errstate(over="ignore"):
        h = np.uint64(0x9E3779B97F4A7C15)
        for k in keys:
            h = h ^ np.asarray(k).astype(np.int64).astype(np.uint64)
            h = (h ^ (h >> np.uint64(30))) * _M1
            h = (h ^ (h >> np.uint64(27))) * _M2
            h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


class Grains:
    """Voronoi tessellation of prior-austenite grains in pixel coordinates.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (seed count, seed positions, then the boundary warp).
    shape : tuple of int
        (height, width) in pixels.
    size_px : float
        Mean grain size (square root of the mean grain area) in pixels.
    warp : bool, optional
        Bend the boundaries with smooth noise, default True.

    Attributes
    ----------
    boundary_dist : numpy.ndarray
        (H, W) distance of each pixel centre to its grain boundary, in pixels.
    label : numpy.ndarray
        (H, W) grain index of each pixel.
    seeds : numpy.ndarray
        (n, 2) seed positions (y, x), including seeds outside the frame.
    n : int
        Number of seeds.
    """

    def __init__(
        self, rng: np.random.Generator, shape: tuple[int, int], size_px: float, warp: bool = True
    ) -> None:
        h, w = shape
        margin = min(2.0 * size_px, 2.0 * max(h, w))
        area = (h + 2 * margin) * (w + 2 * margin)
        n = max(int(rng.poisson(area / size_px**2)), 2)
        seeds = np.column_stack(
            [
                rng.uniform(-margin, h + margin, n),
                rng.uniform(-margin, w + margin, n),
            ]
        )
        tree = cKDTree(seeds)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
        if warp:
            # Real boundaries are curved; warping the query points bends the Voronoi edges.
            corr = max(size_px / 2.0, 4.0)
            yy = yy + 0.12 * size_px * smooth_noise(rng, (h, w), corr)
            xx = xx + 0.12 * size_px * smooth_noise(rng, (h, w), corr)
        pts = np.column_stack([yy.ravel(), xx.ravel()])
        d, idx = tree.query(pts, k=2)
        s1, s2 = seeds[idx[:, 0]], seeds[idx[:, 1]]
        # Distance to the bisector of the two nearest seeds = distance to the grain boundary.
        sep = np.linalg.norm(s2 - s1, axis=1)
        bd = (d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * np.maximum(sep, 1e-9))
        self.boundary_dist = bd.reshape(h, w)
        self.label = idx[:, 0].reshape(h, w)
        self.seeds = seeds
        self.n = n


def place_particles(
    rng: np.random.Generator,
    shape: tuple[int, int],
    allowed: np.ndarray | None,
    radii_px: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Random sequential placement without overlap (circumscribed circles + gap).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random generator (aspect ratios, angles, then candidate positions per round).
    shape : tuple of int
        (height, width) in pixels; centres are drawn in a margin around it too.
    allowed : numpy.ndarray or None
        (H, W) bool, where particles may lie; None for everywhere.
    radii_px : numpy.ndarray
        Equivalent radii in pixels.

    Returns
    -------
    tuple
        Centres (y, x) (m, 2), semi-axes a and b (m,), angles (m,) of the ``m`` placed
        particles, largest first, and the number of particles dropped.
    """
    h, w = shape
    n = radii_px.size
    order = np.argsort(-radii_px, kind="stable")  # big first: packs better, keeps PSD unbiased
    r = radii_px[order]
    q = rng.uniform(1.0, PARTICLE_ASPECT_MAX, n)
    a, b = r * np.sqrt(q), r / np.sqrt(q)
    ang = rng.uniform(0.0, np.pi, n)
    big_r = np.maximum(a, 0.71)
    if allowed is not None:
        free_dist = ndimage.distance_transform_edt(allowed)
    margin = float(big_r.max()) if n else 0.0
    pos = np.zeros((n, 2))
    placed = np.zeros(n, dtype=bool)
    pending = np.arange(n)
    for _ in range(_PLACEMENT_ROUNDS):
        if pending.size == 0:
            break
        cand = np.column_stack(
            [
                rng.uniform(-margin, h + margin, pending.size),
                rng.uniform(-margin, w + margin, pending.size),
            ]
        )
        ok = np.ones(pending.size, dtype=bool)
        if allowed is not None:
            iy = np.clip(cand[:, 0].astype(int), 0, h - 1)
            ix = np.clip(cand[:, 1].astype(int), 0, w - 1)
            ok = free_dist[iy, ix] >= big_r[pending] + 1.0
        cidx = pending[ok]
        pos[cidx] = cand[ok]
        acc = np.flatnonzero(placed)
        allidx = np.concatenate([acc, cidx])
        if allidx.size > 1 and cidx.size:
            tree = cKDTree(pos[allidx])
            pairs = tree.query_pairs(2 * margin + PARTICLE_GAP_PX, output_type="ndarray")
            if pairs.size:
                i, j = allidx[pairs[:, 0]], allidx[pairs[:, 1]]
                dist = np.linalg.norm(pos[i] - pos[j], axis=1)
                clash = dist < big_r[i] + big_r[j] + PARTICLE_GAP_PX
                i, j = i[clash], j[clash]
                # A new candidate loses against a placed particle; among two candidates the
                # later (smaller) one loses.
                lose = np.where(placed[i], j, np.where(placed[j], i, np.maximum(i, j)))
                bad = np.zeros(n, dtype=bool)
                bad[lose] = True
                cidx = cidx[~bad[cidx]]
        placed[cidx] = True
        pending = pending[~placed[pending]]
    keep = placed
    return pos[keep], a[keep], b[keep], ang[keep], int(n - keep.sum())


def raster_ellipses(
    mask: np.ndarray, value: int, pos: np.ndarray, a: np.ndarray, b: np.ndarray, ang: np.ndarray
) -> None:
    """Paint ellipses by pixel-centre sampling; the pixel holding the centre is always set.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) class-id mask, painted in place.
    value : int
        Class id to paint.
    pos : numpy.ndarray
        (m, 2) centres (y, x) in pixels.
    a, b : numpy.ndarray
        (m,) semi-major and semi-minor axes in pixels.
    ang : numpy.ndarray
        (m,) angles of the major axis in radians.
    """
    h, w = mask.shape
    if pos.shape[0] == 0:
        return
    half = np.ceil(a).astype(int) + 1
    for hb in np.unique(half):
        sel = half == hb
        off = np.arange(-hb, hb + 1)
        cy, cx = pos[sel, 0], pos[sel, 1]
        iy0, ix0 = np.floor(cy).astype(int), np.floor(cx).astype(int)
        py = iy0[:, None, None] + off[None, :, None]
        px = ix0[:, None, None] + off[None, None, :]
        dy = py + 0.5 - cy[:, None, None]
        dx = px + 0.5 - cx[:, None, None]
        c, s = np.cos(ang[sel])[:, None, None], np.sin(ang[sel])[:, None, None]
        u = dx * c + dy * s
        v = -dx * s + dy * c
        inside = (u / a[sel, None, None]) ** 2 + (v / b[sel, None, None]) ** 2 <= 1.0
        inside[:, hb, hb] = True
        py = np.broadcast_to(py, inside.shape)
        px = np.broadcast_to(px, inside.shape)
        ok = inside & (py >= 0) & (py < h) & (px >= 0) & (px < w)
        mask[py[ok], px[ok]] = value
