"""GraSPI-equivalent graph descriptors of two- and three-phase 2D images and 3D voxel volumes.

Conventions, matched to py-graspi 0.3 (``py_graspi/graph.py``, ``py_graspi/descriptors.py``):

* Phase ids: 0 = donor D (py-graspi "black"), 1 = acceptor A ("white"), 2 = mixed M ("gray";
  py-graspi's text input spells it 3, see :func:`to_graspi_text`).
* Array axis 0 is the electrode normal (``y`` rows of a 2D image, ``z`` of a ``(Z, Y, X)``
  volume). py-graspi joins the *last* slice along it (index ``L - 1``) to the anode ("red"
  meta-vertex), which collects D, and the *first* slice (index 0) to the cathode ("blue"),
  which collects A. Both meta-vertex edges have weight 0.
* Graph: 8-connected in 2D, edge weights 1 and sqrt(2); 26-connected in 3D with 1, sqrt(2),
  sqrt(3). Caveat: py-graspi 0.3 builds 3D graphs from only 10 of the 13 forward offsets (it
  omits ``(dx, dy, dz) = (0, 1, -1), (+-1, 1, -1)``); ``neighbourhood="py-graspi"`` reproduces
  that, the default ``"full"`` uses all 26 neighbours. In 2D both are identical.
* Connected: a phase voxel is connected to its electrode if an in-phase path reaches the
  electrode slice (same-phase edges only, as py-graspi's same-colour filtered graph).
* Tortuosity: ``t = d / s`` with ``d`` the shortest in-phase path length to the electrode
  meta-vertex and ``s`` the shortest path on the *unfiltered* lattice, i.e. the straight
  distance in voxel steps to the electrode slice (``L - 1 - i`` for the anode, ``i`` for the
  cathode, voxel centres). ``s == 0`` counts as ``t = 1``. A voxel counts towards
  ``CT_f_D_tort1`` / ``CT_f_A_tort1`` when ``t < 1 + 1/L`` (strict), ``L = shape[0]``; the
  fraction is over connected voxels of the phase.
* Interface ``STAT_e``: number of face-adjacent (first-order) D-A voxel pairs; py-graspi does
  not count diagonal pairs there. ``CT_e_conn`` counts those whose D voxel is connected to the
  anode and A voxel to the cathode.

Where py-graspi reports 0 for an undefined ratio (no connected voxels, empty phase), this module
reports NaN. The DISS_* and ABS_wf_D descriptors are not implemented.

Shortest paths use ``skimage.graph.MCP_Geometric`` (a compiled Dijkstra on the voxel grid) with
every in-phase electrode voxel as a start: per-voxel cost 1 and out-of-phase cost inf make the
step cost ``length * (1 + 1) / 2 = length``, i.e. exact graph distances with weights
1/sqrt(2)/sqrt(3) (verified against ``scipy.sparse.csgraph.dijkstra`` in the tests).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric

from ._validate import as_labels

__all__ = [
    "GraspiDescriptors",
    "graspi_descriptors",
    "to_graspi_text",
    "DONOR",
    "ACCEPTOR",
    "MIXED",
]

DONOR, ACCEPTOR, MIXED = 0, 1, 2

# py-graspi 0.3 forward offsets as (dx, dy, dz); x is the fastest-varying index.
_GRASPI_OFFSETS_XYZ = [
    (-1, -1, 0), (-1, 0, 0), (0, -1, 0), (0, 0, -1), (-1, -1, -1),
    (-1, 0, -1), (0, -1, -1), (1, -1, -1), (1, 0, -1), (1, -1, 0),
]  # fmt: skip


@dataclass(frozen=True)
class GraspiDescriptors:
    """GraSPI-style descriptors; field names follow the py-graspi / 3D-paper attribute names."""

    n_phases: int
    STAT_n: int
    STAT_e: int
    STAT_n_D: int
    STAT_n_A: int
    STAT_n_M: int
    STAT_CC_D: int
    STAT_CC_A: int
    STAT_CC_D_An: int
    STAT_CC_A_Ca: int
    ABS_f_D: float
    vol_frac_D: float
    vol_frac_A: float
    vol_frac_M: float
    CT_f_conn_D_An: float
    CT_f_conn_A_Ca: float
    CT_e_conn: int
    CT_f_e_conn: float
    CT_n_D_adj_An: int
    CT_n_A_adj_Ca: int
    CT_f_D_tort1: float
    CT_f_A_tort1: float

    def to_row(self) -> dict[str, float | int]:
        """Flat dict of descriptors; ``vol_frac_M``/``STAT_n_M`` only for three-phase input."""
        row = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if self.n_phases == 2:
            del row["vol_frac_M"], row["STAT_n_M"]
        return row


def _offsets(ndim: int, neighbourhood: str) -> np.ndarray:
    if neighbourhood == "full" or ndim == 2:
        offs = [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]
        return np.array(offs)
    fwd = [(dz, dy, dx) for dx, dy, dz in _GRASPI_OFFSETS_XYZ]
    return np.array(fwd + [tuple(-v for v in o) for o in fwd])


def _structure(offsets: np.ndarray) -> np.ndarray:
    s = np.zeros((3,) * offsets.shape[1], dtype=bool)
    s[(1,) * offsets.shape[1]] = True
    for o in offsets:
        s[tuple(o + 1)] = True
    return s


def _electrode_distance(phase: np.ndarray, start_index: int, offsets: np.ndarray) -> np.ndarray:
    """Shortest in-phase path length from every phase voxel to slice ``start_index`` of axis 0.

    Returns inf outside the phase and for voxels with no in-phase path.
    """
    starts = np.argwhere(phase[start_index])
    if starts.size == 0:
        return np.full(phase.shape, np.inf)
    starts = np.column_stack([np.full(len(starts), start_index), starts])
    costs = np.where(phase, 1.0, np.inf)
    mcp = MCP_Geometric(costs, offsets=offsets)
    cum, _ = mcp.find_costs(starts)
    return np.where(phase, cum, np.inf)


def _safe_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def graspi_descriptors(
    volume: np.ndarray,
    n_phases: int | None = None,
    neighbourhood: Literal["full", "py-graspi"] = "full",
) -> GraspiDescriptors:
    """Compute GraSPI-equivalent descriptors of a 2D image or 3D volume of phase ids.

    Parameters
    ----------
    volume : (Y, X) or (Z, Y, X) integer array with values 0 (D), 1 (A) and, for three-phase
        input, 2 (M). Axis 0 is the electrode normal (see module docstring).
    n_phases : 2 or 3; default 3 if any voxel is 2, else 2.
    neighbourhood : ``"full"`` (26-neighbour 3D graph) or ``"py-graspi"`` (py-graspi 0.3's
        incomplete 3D neighbourhood). Identical in 2D.

    Returns
    -------
    GraspiDescriptors
        Ratios with a zero denominator (empty phase, nothing connected, no interface) are NaN.

    Raises
    ------
    ValueError
        Non-integer dtype, ndim not 2/3, values outside the phase ids, ``n_phases=2`` with
        voxels of phase 2, axis 0 shorter than 2, or unknown ``neighbourhood``.
    """
    vol = as_labels(volume, name="volume", ndim=(2, 3))
    if neighbourhood not in ("full", "py-graspi"):
        raise ValueError(f"neighbourhood must be 'full' or 'py-graspi', got {neighbourhood!r}")
    vmin, vmax = int(vol.min()), int(vol.max())
    if vmin < 0 or vmax > 2:
        raise ValueError(f"volume values must be phase ids in {{0, 1, 2}}, got [{vmin}, {vmax}]")
    if n_phases is None:
        n_phases = 3 if vmax == 2 else 2
    if n_phases not in (2, 3):
        raise ValueError(f"n_phases must be 2 or 3, got {n_phases}")
    if n_phases == 2 and vmax == 2:
        raise ValueError("n_phases=2 but the volume contains mixed-phase (2) voxels")
    length = vol.shape[0]
    if length < 2:
        raise ValueError(f"axis 0 (electrode normal) must have at least 2 voxels, got {length}")

    offsets = _offsets(vol.ndim, neighbourhood)
    structure = _structure(offsets)
    donor = vol == DONOR
    acceptor = vol == ACCEPTOR
    n_d, n_a = int(donor.sum()), int(acceptor.sum())
    n_m = int(vol.size - n_d - n_a)

    # Straight (unconstrained lattice) distance to each electrode slice along axis 0.
    idx = np.arange(length, dtype=np.float64).reshape((-1,) + (1,) * (vol.ndim - 1))
    tol = 1.0 + 1.0 / length
    stats = {}
    for name, mask, electrode, straight in (
        ("D", donor, length - 1, (length - 1) - idx),
        ("A", acceptor, 0, idx),
    ):
        dist = _electrode_distance(mask, electrode, offsets)
        conn = np.isfinite(dist)
        s = np.broadcast_to(straight, vol.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Same float expression as py-graspi (d / s < 1 + 1/L); s == 0 counts as t = 1.
            straight_ok = conn & ((s == 0) | (dist / np.where(s == 0, 1.0, s) < tol))
        labels, n_cc = ndimage.label(mask, structure=structure)
        on_electrode = np.unique(labels[electrode])
        stats[name] = {
            "conn": conn,
            "n_conn": int(conn.sum()),
            "n_tort1": int(straight_ok.sum()),
            "n_cc": int(n_cc),
            "n_cc_el": int(np.count_nonzero(on_electrode)),
            "n_adj": int(mask[electrode].sum()),
        }

    # Face-adjacent D-A pairs along every axis, and those with both ends connected.
    stat_e = 0
    e_conn = 0
    cd, ca = stats["D"]["conn"], stats["A"]["conn"]
    for ax in range(vol.ndim):
        lo = [slice(None)] * vol.ndim
        hi = [slice(None)] * vol.ndim
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        lo_t, hi_t = tuple(lo), tuple(hi)
        da = donor[lo_t] & acceptor[hi_t]
        ad = acceptor[lo_t] & donor[hi_t]
        stat_e += int(da.sum() + ad.sum())
        e_conn += int((da & cd[lo_t] & ca[hi_t]).sum() + (ad & ca[lo_t] & cd[hi_t]).sum())

    n_total = vol.size
    return GraspiDescriptors(
        n_phases=n_phases,
        STAT_n=n_d + n_a,
        STAT_e=stat_e,
        STAT_n_D=n_d,
        STAT_n_A=n_a,
        STAT_n_M=n_m,
        STAT_CC_D=stats["D"]["n_cc"],
        STAT_CC_A=stats["A"]["n_cc"],
        STAT_CC_D_An=stats["D"]["n_cc_el"],
        STAT_CC_A_Ca=stats["A"]["n_cc_el"],
        ABS_f_D=_safe_div(n_d, n_d + n_a),
        vol_frac_D=n_d / n_total,
        vol_frac_A=n_a / n_total,
        vol_frac_M=n_m / n_total,
        CT_f_conn_D_An=_safe_div(stats["D"]["n_conn"], n_d),
        CT_f_conn_A_Ca=_safe_div(stats["A"]["n_conn"], n_a),
        CT_e_conn=e_conn,
        CT_f_e_conn=_safe_div(e_conn, stat_e),
        CT_n_D_adj_An=stats["D"]["n_adj"],
        CT_n_A_adj_Ca=stats["A"]["n_adj"],
        CT_f_D_tort1=_safe_div(stats["D"]["n_tort1"], stats["D"]["n_conn"]),
        CT_f_A_tort1=_safe_div(stats["A"]["n_tort1"], stats["A"]["n_conn"]),
    )


def to_graspi_text(volume: np.ndarray) -> str:
    """Serialise a phase-id array in py-graspi's ``.txt`` input format.

    Header ``X Y`` (2D) or ``X Y Z`` (3D), then the values in C order of the ``(Y, X)`` /
    ``(Z, Y, X)`` array, one ``X``-row per line; mixed phase 2 is written as py-graspi's 3.
    """
    vol = as_labels(volume, name="volume", ndim=(2, 3))
    out = np.where(vol == MIXED, 3, vol)
    header = " ".join(str(s) for s in out.shape[::-1])
    rows = out.reshape(-1, out.shape[-1])
    return header + "\n" + "\n".join(" ".join(map(str, r)) for r in rows.tolist()) + "\n"
