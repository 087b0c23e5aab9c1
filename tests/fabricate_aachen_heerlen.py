"""Write a FABRICATED Aachen-Heerlen sample in the release's format (tests/data/aachen-heerlen).

The real A-H files (Iren et al. 2021, figshare collection 5185004) cannot be reached from the
development machines; this seeded script writes a small stand-in big enough to run the
schema-transfer DAG (segmenter, generation, Table 7, Figs 15 and D1) end to end::

    python tests/fabricate_aachen_heerlen.py OUT

It writes, under ``OUT``, ``nature_scidata_steel_metadata.csv`` (one row per image, every
variable of ``resources/schemas/aachen-heerlen.yaml``), the semicolon-separated polygon
table ``nature_scidata_heerlen_aachen_steel_annotations_polygon.csv`` (``image_url;point;
polygon``, Python-literal ``(x, y)`` vertex lists, one MA island per row) and ``PNG/``
(8-bit gray 128 × 128 micrographs).

What the images show, so that conditions matter: a textured bainitic matrix (smoothed
noise with oblique laths, mid gray) carrying bright martensite-austenite islands, each an
irregular polygon whose vertices lie on a jittered ellipse. The MA area fraction a condition
aims at grows with the transformation temperature and differs per steel type
(:func:`target_fraction`); island radius grows with temperature (:func:`island_radius`), so
hot conditions have fewer, larger islands. Islands are placed until the polygons' area
reaches the target (overlaps are allowed and merge).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

METADATA_FILE = "nature_scidata_steel_metadata.csv"
POLYGON_FILE = "nature_scidata_heerlen_aachen_steel_annotations_polygon.csv"
SIDE = 128
SEED = 2025
#: Images per steel type: five seen types (Table D1's training types) and four unseen ones.
IMAGES_PER_TYPE = {"1": 6, "CFB2": 5, "5": 5, "10": 5, "11": 5, "2": 4, "3": 3, "8": 3, "12": 4}
#: MA area fraction of a type at 350 °C, and its gain per 100 °C.
TYPE_FRACTION = {"1": 0.04, "CFB2": 0.06, "5": 0.08, "10": 0.10, "11": 0.05, "2": 0.07,
                 "3": 0.03, "8": 0.05, "12": 0.09}  # fmt: skip
GAIN_PER_100C = 0.04
TEMPERATURES = (350, 400, 450, 500)
DISTANCES = (0, 3, 9)


def target_fraction(steel_type: str, temperature: float) -> float:
    """MA area fraction a condition aims at: the type's base at 350 °C plus
    :data:`GAIN_PER_100C` per 100 °C above it."""
    return TYPE_FRACTION[steel_type] + GAIN_PER_100C * (temperature - 350) / 100


def island_radius(temperature: float) -> float:
    """Mean island radius in pixels: 3 px at 350 °C, growing 1.5 px per 50 °C."""
    return 3.0 + 1.5 * (temperature - 350) / 50


def island(rng: np.random.Generator, centre: np.ndarray, radius: float) -> list[tuple]:
    """Vertices ``(x, y)`` of an irregular convex-ish island around ``centre``."""
    n = int(rng.integers(7, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    aspect = rng.uniform(1.0, 2.0)
    tilt = rng.uniform(0, np.pi)
    r = radius * rng.uniform(0.8, 1.2, n)
    x, y = r * aspect**0.5 * np.cos(angles), r / aspect**0.5 * np.sin(angles)
    xr = centre[0] + x * np.cos(tilt) - y * np.sin(tilt)
    yr = centre[1] + x * np.sin(tilt) + y * np.cos(tilt)
    return [(round(float(a), 1), round(float(b), 1)) for a, b in zip(xr, yr, strict=True)]


def polygon_area(vertices: list[tuple]) -> float:
    """Shoelace area of a polygon in pixels²."""
    x, y = np.asarray(vertices).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def micrograph(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """A gray micrograph of a mask: textured matrix, bright islands with a soft rim."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    laths = 10 * np.sin((xx * np.cos(0.7) + yy * np.sin(0.7)) / rng.uniform(2.5, 4.0))
    matrix = 95 + laths + 18 * gaussian_filter(rng.normal(0, 1, mask.shape), 1.5) * 3
    bright = gaussian_filter(mask.astype(float), 0.8)
    image = matrix * (1 - bright) + (205 + 8 * rng.normal(0, 1, mask.shape)) * bright
    return np.clip(image, 0, 255).astype(np.uint8)


def fabricate(out: str | Path, seed: int = SEED) -> Path:
    """Write the sample under ``out`` (created) and return it."""
    from microgen.data.aachen_heerlen import polygons_to_mask

    out = Path(out)
    (out / "PNG").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    meta = ["image_url,type,temperature,distance,orientation,angle"]
    polys = ["image_url;point;polygon"]
    k = 0
    for t, (steel_type, n) in enumerate(IMAGES_PER_TYPE.items()):
        for j in range(n):
            k += 1
            name = f"IMG_{k:05d}.png"
            temperature = TEMPERATURES[(j + t) % len(TEMPERATURES)]
            distance = DISTANCES[j % len(DISTANCES)]
            orientation, angle = ("V", "P") if j % 2 == 0 else ("H", "S")
            meta.append(f"{name},{steel_type},{temperature},{distance},{orientation},{angle}")
            target = target_fraction(steel_type, temperature) * SIDE * SIDE
            islands, area = [], 0.0
            while area < target:
                centre = rng.uniform(4, SIDE - 4, 2)
                vertices = island(rng, centre, island_radius(temperature))
                islands.append(vertices)
                area += polygon_area(vertices)
                point = (int(centre[0]), int(centre[1]))
                polys.append(f"{name};{point};{vertices!r}")
            mask = polygons_to_mask(islands, (SIDE, SIDE))
            Image.fromarray(micrograph(rng, mask), mode="L").save(out / "PNG" / name)
    (out / METADATA_FILE).write_text("\n".join(meta) + "\n", encoding="utf-8")
    (out / POLYGON_FILE).write_text("\n".join(polys) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/fabricate_aachen_heerlen.py OUT")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
    print(fabricate(sys.argv[1]))
