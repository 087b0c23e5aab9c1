"""Benchmark microgen.descriptors against porespy 3.2 / scikit-image / py-graspi 0.3.

Run: ``PYTHONPATH=workflow python3 benchmarks/bench_descriptors.py [--n 100] [--graspi-n 3]``.

Part 1: ``n`` binary 512x512 images (thresholded blurred noise), S2 + lineal path + particle
descriptors, ours vs porespy doing the equivalent work in the same process, and a check that
the results agree:
  * S2: ``porespy.metrics.two_point_correlation(im, bins=0..r_max)``; ours ``two_point_correlation``
    (its radial average differs by definition, so equality is checked on the lag map re-binned
    the porespy way).
  * L: ``porespy.filters.distance_transform_lin(mode="reverse")`` gives, for every pixel, the
    in-phase run length remaining to its right (itself included); ``L_x(r) = #(>= r + 1) /
    (H (W - r))`` from a histogram, same for y.
  * particles: ``skimage.measure.label`` + ``regionprops`` (area, equivalent diameter, axes,
    centroid) + cKDTree NND; ours ``particle_descriptors``.
Part 2: GraSPI-equivalent descriptors on a 64^3 volume (ours only) and on 2D morphologies,
ours vs py-graspi (run in a temporary directory, it writes ``./test_results``).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from microgen.descriptors import (
    graspi_descriptors,
    lineal_path,
    particle_descriptors,
    to_graspi_text,
    two_point_correlation,
)

R_MAX = 64


def make_images(n: int, size: int = 512, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.standard_normal((size, size)), 3.0)
        out.append(field > np.quantile(field, 0.8))  # ~20 % particle phase
    return out


def porespy_s2(ps, im):
    return ps.metrics.two_point_correlation(im, bins=np.arange(0, R_MAX + 2)).probability_scaled


def porespy_lineal(ps, im):
    res = []
    h, w = im.shape
    r = np.arange(R_MAX + 1)
    for axis, n_lines, n_len in ((1, h, w), (0, w, h)):
        rem = ps.filters.distance_transform_lin(im, axis=axis, mode="reverse").astype(np.int64)
        hist = np.bincount(rem[rem > 0].ravel(), minlength=n_len + 2)
        ge = np.cumsum(hist[::-1])[::-1]  # ge[k] = #(remaining >= k)
        res.append(ge[r + 1] / (n_lines * (n_len - r)))
    return res


def skimage_particles(im):
    from skimage.measure import label, regionprops

    props = regionprops(label(im, connectivity=2))
    area = np.array([p.area for p in props], dtype=float)
    diam = np.array([p.equivalent_diameter_area for p in props])
    major = np.array([p.axis_major_length for p in props])
    minor = np.array([p.axis_minor_length for p in props])
    cents = np.array([p.centroid for p in props])
    nnd = cKDTree(cents).query(cents, k=2)[0][:, 1].mean() if len(props) > 1 else np.nan
    return area, diam, major, minor, nnd


def bench_images(n: int) -> None:
    import porespy as ps

    logging.getLogger("porespy").setLevel(logging.ERROR)
    ims = make_images(n)
    labels = [im.astype(np.uint8) * 2 for im in ims]
    # Warm-up outside the timings: porespy's numba kernels compile on first call.
    porespy_s2(ps, ims[0][:128, :128])
    porespy_lineal(ps, ims[0][:128, :128])
    t = dict.fromkeys(("s2", "l", "p", "ps_s2", "ps_l", "sk_p"), 0.0)
    max_dev = dict.fromkeys(("s2", "l", "d"), 0.0)
    lags = np.arange(-R_MAX, R_MAX + 1)
    dist = np.hypot(lags[:, None], lags[None, :])
    for im, lab in zip(ims, labels, strict=True):
        t0 = time.perf_counter()
        s2 = two_point_correlation(im, r_max=R_MAX)
        t1 = time.perf_counter()
        lp = lineal_path(im, r_max=R_MAX)
        t2 = time.perf_counter()
        pd_ = particle_descriptors(lab, pixel_size_um=0.1)
        t3 = time.perf_counter()
        ref_s2 = porespy_s2(ps, im)
        t4 = time.perf_counter()
        ref_l = porespy_lineal(ps, im)
        t5 = time.perf_counter()
        ref_p = skimage_particles(im)
        t6 = time.perf_counter()
        for k, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5), strict=True):
            t[k] += dt
        rebinned = [s2.lag_map[(dist >= b) & (dist < b + 1)].mean() for b in range(R_MAX + 1)]
        max_dev["s2"] = max(max_dev["s2"], np.abs(np.array(rebinned) - ref_s2).max())
        max_dev["l"] = max(
            max_dev["l"], np.abs(lp.x - ref_l[0]).max(), np.abs(lp.y - ref_l[1]).max()
        )
        max_dev["d"] = max(max_dev["d"], np.abs(pd_.diameters_px - ref_p[1]).max())
    ours = t["s2"] + t["l"] + t["p"]
    theirs = t["ps_s2"] + t["ps_l"] + t["sk_p"]
    print(f"## {n} images 512x512, r_max={R_MAX} (ms per image)")
    for name, a, b in (
        ("S2", t["s2"], t["ps_s2"]),
        ("lineal path", t["l"], t["ps_l"]),
        ("particles", t["p"], t["sk_p"]),
        ("all", ours, theirs),
    ):
        print(f"{name:12s} ours {1e3 * a / n:8.2f}  reference {1e3 * b / n:8.2f}  x{b / a:6.1f}")
    print(
        f"max |diff|: S2 (porespy binning) {max_dev['s2']:.2e}, L {max_dev['l']:.2e}, "
        f"diameters {max_dev['d']:.2e}"
    )


def bench_graspi(n2d: int) -> None:
    rng = np.random.default_rng(1)
    field = ndimage.gaussian_filter(rng.standard_normal((64, 64, 64)), 2.0)
    vol = (field > 0).astype(np.uint8)
    graspi_descriptors(vol)  # warm-up (imports, first-call allocation)
    reps = 3
    t0 = time.perf_counter()
    for _ in range(reps):
        graspi_descriptors(vol)
    print(f"## GraSPI-equivalent, 64^3 two-phase: {(time.perf_counter() - t0) / reps:.3f} s")
    try:
        import py_graspi as pg
    except ImportError:
        print("py-graspi not installed; skipping comparison")
        return
    cwd = os.getcwd()
    t_ours = t_ref = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            for i in range(n2d):
                f = ndimage.gaussian_filter(rng.standard_normal((60, 60)), 2.0)
                im = (f > np.quantile(f, (0.3, 0.5, 0.7)[i % 3])).astype(np.uint8)
                with open("m.txt", "w") as fh:
                    fh.write(to_graspi_text(im))
                t0 = time.perf_counter()
                ref = pg.compute_descriptors(pg.generateGraph("m.txt"), "m.txt")
                t1 = time.perf_counter()
                ours = graspi_descriptors(im)
                t2 = time.perf_counter()
                t_ref += t1 - t0
                t_ours += t2 - t1
                assert abs(ours.CT_f_D_tort1 - ref["CT_f_D_tort1"]) < 1e-12
                assert abs(ours.CT_f_A_tort1 - ref["CT_f_A_tort1"]) < 1e-12
        finally:
            os.chdir(cwd)
    print(
        f"## 60x60 2D, {n2d} images: ours {1e3 * t_ours / n2d:.2f} ms, "
        f"py-graspi {1e3 * t_ref / n2d:.1f} ms, x{t_ref / t_ours:.0f} (tort1 values equal)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="number of 512x512 images")
    ap.add_argument("--graspi-n", type=int, default=3, help="number of 2D py-graspi runs")
    args = ap.parse_args()
    bench_images(args.n)
    bench_graspi(args.graspi_n)


if __name__ == "__main__":
    main()
